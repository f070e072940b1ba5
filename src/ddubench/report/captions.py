"""Report captions: what the paper shows, how our result was produced, and the headline comparison.

``snakemake --report`` shows every table and figure of a run with a caption; the caption's text comes from
here, written by the workflow's ``captions`` rule from the table and its provenance sidecar, so the
comparison sentence is computed from the data that is shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import read_json, write_atomic

SYNTHETIC, DEEPGLOBE, ANALYSIS = "Journal synthetic experiments", "DeepGlobe", "Analysis (no training)"
BASELINES, SCALING, OTHER = "Baselines and Table 7", "Scaling and throughput", "Other"
THESIS = "Thesis (seed 001)"

# table or figure name -> (report section, paper item, what the paper shows)
ITEMS: dict[str, tuple[str, str, str]] = {
    "table10": (SYNTHETIC, "Journal Table 10", "the hyperparameters of the synthetic experiments"),
    "fig5_synthetic_examples": (SYNTHETIC, "Journal Fig. 5",
                                "synthetic images: two circles joined by a line, drawn across subimage borders"),
    "fig9_heatmap": (SYNTHETIC, "Journal Fig. 9", "line-class IoU of DDU-Net(3, F, Y) for each number F of "
                     "communicated feature maps and of U-Net(3), trained and tested on k subimages"),
    "fig10_depth": (SYNTHETIC, "Journal Fig. 10", "DDU-Net(D, 16, Y) against U-Net(D) for depths D = 2, 3, 4 (the "
                    "journal prints masks, no numbers, and does not say which k; ours: k = 3)"),
    "fig10_predictions": (SYNTHETIC, "Journal Fig. 10 (masks)", "the predicted masks of the Fig. 10 models"),
    "fig11_generalization": (SYNTHETIC, "Journal Fig. 11", "line-class IoU of models trained on k subimages and "
                             "tested on the 6-subimage test set"),
    "protocol_study": (SYNTHETIC, "Protocol study (ours, cf. journal Fig. 9)", "no such study: ours trains a few "
                       "Fig. 9 cells under named protocol variants, beside the paper's value and the receptive-field "
                       "ceiling"),
    "fig9_budgets": (SYNTHETIC, "Journal Fig. 9 at several budgets (ours)", "no such comparison: ours sets each "
                     "Fig. 9 cell of several runs (budgets, protocols) beside the paper's value"),
    "fig8_predictions": (SYNTHETIC, "Journal Fig. 8", "predictions of DDU-Net(3, 32, Y), U-Net(3) and "
                         "DDU-Net(3, 32, N) on test images with k = 2 (64x32)"),
    "table3": (DEEPGLOBE, "Journal Table 3", "pixel counts of the DeepGlobe land-cover classes"),
    "table6": (DEEPGLOBE, "Journal Table 6", "the hyperparameters of the DeepGlobe experiments"),
    "fig6_deepglobe_examples": (DEEPGLOBE, "Journal Fig. 6", "DeepGlobe images and their land-cover masks"),
    "fig13_deepglobe": (DEEPGLOBE, "Journal Fig. 13", "test mIoU of the ResNet18 DDU-Net(4, F, C) trained and "
                        "tested on P x P subimages"),
    "fig14_predictions": (DEEPGLOBE, "Journal Fig. 14", "DeepGlobe test crops, true masks and predictions"),
    "fig15_errors": (DEEPGLOBE, "Journal Fig. 15", "where the Fig. 14 predictions are wrong"),
    "table4": (ANALYSIS, "Journal Table 4", "receptive fields of U-Net(D) and DDU-Net(D)"),
    "table5": (ANALYSIS, "Journal Table 5", "memory of the feature maps per block of U-Net and DDU-Net"),
    "fig7_memory": (ANALYSIS, "Journal Fig. 7", "inference memory of DDU-Net against U-Net as images grow"),
    "table8": (ANALYSIS, "Journal Table 8", "parameters of the encoder-decoder and of the coarse network"),
    "table9": (ANALYSIS, "Journal Table 9", "modules, feature maps and parameters of the ResNet DDU-Nets"),
    "table1": (BASELINES, "Journal Table 1", "test mIoU of the ResNet18 U-Net trained on random s x s patches"),
    "table2": (BASELINES, "Journal Table 2", "test mIoU of the ResNet18 U-Net trained on downsampled images"),
    "table7": (BASELINES, "Journal Table 7", "parameters, peak memory per device, inference time and mIoU of "
               "DDU-Net against GLNet, FCtL and the other baselines"),
    "cnn_dnn_classification": (BASELINES, "CNN-DNN papers, Tables 1-2", "accuracy of local CNNs, their "
                               "combiners, the DNN over their outputs and a global CNN"),
    "scaling_cpu": (SCALING, "ours (cf. journal Table 7)", "nothing of this kind: DDU-Net inference over P ranks, "
                    "per-rank peak memory and time, is ours"),
    "scaling_cuda": (SCALING, "ours (cf. journal Table 7)", "nothing of this kind: DDU-Net inference over P GPUs, "
                     "per-GPU peak memory and time, is ours"),
    "train_throughput": (SCALING, "ours", "no training speeds; ours are beside the authors' code timed on this "
                         "machine kind"),
    "thesis_table6_2": (THESIS, "Thesis Table 6.2 (and Fig. 6.5)", "the validation MSE of the positional-encoding "
                        "probe (4 pixels on 64x64, fully convolutional, global average pooling) for valid, same and "
                        "full padding: more padding, more positional information"),
    "thesis_table6_3": (THESIS, "Thesis Table 6.3 (and Fig. 6.4)", "the probe's average distance between true and "
                        "predicted pixel per padding, beside a no-information reference"),
    "thesis_table6_4": (THESIS, "Thesis Table 6.4", "parameters of the CNN and of the fully connected communication "
                        "networks for 1-8 feature maps on 2x2, 4x4 and 8x8 grids"),
    "thesis_table6_5": (THESIS, "Thesis Table 6.5", "memory per block of the wide U-Net (widths 64-1024) with an "
                        "F = 256 communication network"),
    "thesis_fig6_8": (THESIS, "Thesis Figs. 6.8 and 6.9", "memory over five training iterations at 1024x1024, of "
                      "the U-Net on one GPU and of DDU-Net on two (torch's allocation recording)"),
    "thesis_fig6_10": (THESIS, "Thesis Fig. 6.10", "theoretical and measured training peak memory of the U-Net "
                       "encoder-decoder with a communication network on 64 maps, against the square resolution"),
    "thesis_table7_4": (THESIS, "Thesis Table 7.4 (and Figs. 7.3, 7.4)", "mean IoU (three classes), line-class precision, recall "
                        "and accuracy of DDU-Net with and without communication and the U-Net on 2 subimages, their "
                        "loss curves and normalised confusion matrices"),
    "thesis_fig7_5": (THESIS, "Thesis Fig. 7.5", "the true mask and the masks the three Table 7.4 models predict"),
    "thesis_fig7_6": (THESIS, "Thesis Fig. 7.6", "per-class IoU against the number of communicated maps F for "
                      "depths 2, 3 and 4 on 3 subimages, beside the U-Nets of each depth"),
    "thesis_fig7_7": (THESIS, "Thesis Fig. 7.7", "depth-2 predictions on 3 subimages: the true mask, DDU-Net with "
                      "communication and the U-Net"),
    "thesis_fig7_8": (THESIS, "Thesis Fig. 7.8", "line-class IoU of DDU-Net with and without communication and the "
                      "U-Net (depth 4, F = 16), trained on k subimages and evaluated on k' without fine-tuning"),
    "thesis_table7_11": (THESIS, "Thesis Table 7.11", "DeepGlobe test IoU per class of DDU-Net with and without "
                         "communication and the U-Net, without the two extra bottleneck convolutions"),
    "thesis_table7_12": (THESIS, "Thesis Table 7.12", "the same with the extra bottleneck convolutions"),
    "thesis_table7_13": (THESIS, "Thesis Table 7.13", "train, test and validation mIoU of the three models with and "
                         "without the extra bottleneck convolutions"),
    "thesis_fig7_15": (THESIS, "Thesis Fig. 7.15", "DeepGlobe predictions of the three models without and with the "
                       "extra bottleneck convolutions, beside the true mask and the image"),
    "thesis_fig7_15_errors": (THESIS, "Thesis Fig. 7.15 (error maps, ours)", "no error maps: ours marks each "
                              "pixel of the Fig. 7.15 predictions right or wrong, as journal Fig. 15 does"),
    "thesis_table7_7": (THESIS, "Thesis Table 7.7", "the hyperparameters of the Inria experiment"),
    "thesis_table7_8": (THESIS, "Thesis Table 7.8", "Inria IoU of background and building on train, validation and "
                        "test for the U-Net and DDU-Net with and without communication"),
    "thesis_fig5_6": (THESIS, "Thesis Fig. 5.6", "two Inria image patches with their building masks"),
    "thesis_fig7_9": (THESIS, "Thesis Fig. 7.9", "Inria 512x512 test predictions (4x4 subimages) of the three models "
                      "beside the true mask and the image"),
    "thesis_fig7_11_13": (THESIS, "Thesis Figs. 7.10-7.13", "the image, 8 feature maps after the last downsampling "
                          "block and after the second upsampling block per model, and the communication network's "
                          "input and output maps, whose subimage-border artefacts the thesis says it smooths"),
    "thesis_table7_5": (THESIS, "Thesis Table 7.5", "parameters and memory per device of the Inria U-Net and DDU-Net "
                        "over N = 1, 2, 4 devices"),
    "thesis_table7_6": (THESIS, "Thesis Table 7.6", "parameters of the Inria model's down-sampling path, up-sampling "
                        "path and communication network"),
}


def item(name: str) -> tuple[str, str, str]:
    """(section, paper item, what the paper shows) of a table or figure; unknown names go to "Other"."""
    return ITEMS.get(name, (OTHER, name, "(not described)"))


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _cells(n: int) -> str:
    return f"{n} cell" + ("" if n == 1 else "s")


def _pair_sentence(quantity: str, paper: pd.Series, ours: pd.Series) -> str:
    """One clause comparing a quantity's paper and our values over the cells that have both."""
    diff = (ours - paper).abs()
    n = len(diff)
    if ((paper % 1 == 0) & (ours % 1 == 0)).all():
        equal = int((diff == 0).sum())
        if equal == n:
            return f"{quantity}: ours equals the paper in all {_cells(n)}"
        relative = (diff / paper.abs().where(paper != 0)).max()
        worst = f"largest |ours - paper| {_number(diff.max())}" + (f" ({relative:.0%})" if pd.notna(relative) else "")
        return f"{quantity}: ours equals the paper in {equal} of {_cells(n)}, {worst}"
    clause = f"{quantity}: mean |ours - paper| = {_number(diff.mean())} over {_cells(n)}"
    if n >= 3 and paper.nunique() > 1 and ours.nunique() > 1:
        clause += f", rank correlation {paper.rank().corr(ours.rank()):.2f}"
    return clause


def headline(frame: pd.DataFrame) -> str:
    """The comparison with the paper in one sentence, computed from the table's `_paper`/`_ours` pairs."""
    clauses = []
    for column in frame.columns:
        if not column.endswith("_paper") or column[: -len("_paper")] + "_ours" not in frame.columns:
            continue
        quantity = column[: -len("_paper")]
        pair = frame[[column, quantity + "_ours"]].apply(pd.to_numeric, errors="coerce").dropna()
        if len(pair):
            clauses.append(_pair_sentence(quantity, pair[column], pair[quantity + "_ours"]))
    if clauses:
        return "; ".join(clauses) + "."
    return f"{len(frame)} rows of ours; the paper gives no value to put beside them."


def _rst_text(text: str) -> str:
    """``text`` as literal reStructuredText: inline-markup characters (``|x|`` is a substitution) escaped."""
    return re.sub(r"([\\*`|_])", r"\\\1", text)


_BLOCK_START = re.compile(r"[^\w\\]|(?:\d+|[A-Za-z]|[ivxlcdmIVXLCDM]+)[.)](?:\s|$)")


def _rst_cell(text: str) -> str:
    """``text`` as the literal content of one csv-table cell: inline markup escaped as in :func:`_rst_text`, and
    a first character that could open a block (``-`` alone is a bullet list, ``1.`` or ``(a)`` an enumerated
    list, ``:a:`` a field list, ``..`` a comment) escaped too, since docutils parses each cell as a document."""
    text = _rst_text(text)
    return "\\" + text if _BLOCK_START.match(text) else text


def _device(record: dict[str, Any]) -> str:
    device = record.get("device") or {}
    gpus = device.get("gpus") or []
    where = f"{len(gpus)} x {gpus[0]}" if gpus else f"{device.get('cpu', 'CPU')} ({device.get('cpu_count')} cores)"
    world = record.get("world_size") or 1
    return where + (f", {world} ranks" if world > 1 else "")


def caption(name: str, csv: str | Path, sidecar: str | Path, folder: str | Path = ".",
            table_file: str | Path | None = None) -> str:
    """The caption (reStructuredText) of one table: paper item, how ours was produced, comparison, the table.

    ``folder`` is where the caption file lives: docutils reads the table's ``:file:`` (``table_file``, default
    ``csv``) relative to it.
    """
    _, paper_item, shows = item(name)
    frame = pd.read_csv(csv)
    record = read_json(sidecar)
    config = record.get("config") or {}
    commit = (record.get("git") or {}).get("commit") or "unknown"
    seeds = ", ".join(str(s) for s in record.get("seeds") or config.get("seeds") or []) or "none"
    scale = " ".join(str(config.get("description", "")).split()) or "no configuration recorded"
    return "\n".join([
        f"**{paper_item}** (``{name}``). The paper shows {shows}.",
        "",
        f"**Ours**: run ``{config.get('run', '?')}`` from ``{record.get('config_file') or 'no config file'}``: "
        f"{_rst_text(scale)} Seeds: {seeds}. Device: {_rst_text(_device(record))}. Commit ``{commit[:10]}``; the "
        f"command and every setting are in ``{Path(sidecar).as_posix()}``.",
        "",
        f"**Comparison**: {_rst_text(headline(frame))}",
        "",
        ".. csv-table::",
        f"   :file: {Path(os.path.relpath(table_file or csv, folder)).as_posix()}",
        "   :header-rows: 1",
        "",
    ])


def write_caption(name: str, csv: str | Path, sidecar: str | Path, out: str | Path) -> Path:
    """Write the caption of ``name`` to ``out`` (included by the report's caption file), with the table it shows
    beside it (``<out>.csv``): the CSV with every cell's inline markup escaped, since docutils parses each cell
    of a csv-table as reStructuredText (a note's `code` or |x| would otherwise not read as in the CSV)."""
    out = Path(out)
    table = out.with_suffix(".csv")
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    escaped = frame.map(_rst_cell).rename(columns=_rst_cell)
    write_atomic(table, lambda tmp: escaped.to_csv(tmp, index=False))
    text = caption(name, csv, sidecar, out.parent, table_file=table)
    return write_atomic(out, lambda tmp: tmp.write_text(text))
