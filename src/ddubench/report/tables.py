"""Build the results tables (tidy CSV rows, ``*_paper`` beside ``*_ours``) from our modules and runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from ..analysis.params import count_parameters
from ..config import seeds_note
from ..analysis.ceiling import support_class
from ..models import CoarseNetwork, ModelSpec, build_model
from ..training.losses import CORRECTED, DEFINITIONS
from . import paper

SYNTHETIC_ARGS = {"in_channels": 1, "num_classes": 3, "subimage_size": (32, 32)}


def table8() -> pd.DataFrame:
    """Journal Table 8: parameters of the synthetic encoder-decoders and coarse networks."""
    rows: list[dict[str, Any]] = []
    for depth, params_paper in paper.TABLE8_UNET_PARAMS.items():
        model = build_model(f"unet_D{depth}", **SYNTHETIC_ARGS)
        rows.append({
            "component": "U-Net", "depth": depth, "F": None,
            "channels": paper.TABLE8_UNET_CHANNELS[depth], "bottleneck_px": paper.TABLE8_UNET_BOTTLENECK[depth],
            "kernel": "3x3", "params_paper": params_paper, "params_ours": count_parameters(model),
            "note": paper.TABLE8_ERRATA.get(("U-Net", depth), ""),
        })
    for features, params_paper in paper.TABLE8_COARSE_PARAMS.items():
        rows.append({
            "component": "coarse network", "depth": None, "F": features,
            "channels": "-".join([str(features)] * 4), "bottleneck_px": None, "kernel": "5x5",
            "params_paper": params_paper, "params_ours": count_parameters(CoarseNetwork(features)),
            "note": "",
        })
    frame = pd.DataFrame(rows)
    return frame.astype({"depth": "Int64", "F": "Int64"})


def loss_note(loss: str) -> str:
    """Which dice reduction a synthetic run trained with, and why the synthetic grid is unaffected by its fix."""
    return (f"ran {loss}: {DEFINITIONS[loss]}; journal Eq. (1) is micro. Every synthetic batch holds all three "
            f"classes, where macro equals macro_present (what macro computed before {CORRECTED}), so the "
            "synthetic grid is unaffected by that correction")


def table10(config: dict[str, Any]) -> pd.DataFrame:
    """Journal Table 10 beside the hyperparameters the configuration actually used."""
    training, synthetic = config["training"], config["synthetic"]
    ours = {**training, "loss": f"dice ({training.get('loss', 'macro')})"}
    rows = []
    for name, value_paper in paper.TABLE10.items():
        value_ours = ours.get(name)
        note = ""
        if name == "loss":
            note = loss_note(training.get("loss", "macro"))
        elif value_ours != value_paper:
            note = "reduced from the paper's value in this configuration"
        rows.append({"hyperparameter": name, "value_paper": value_paper, "value_ours": value_ours, "note": note})
    for split, count_paper in paper.SYNTHETIC_COUNTS.items():
        count = synthetic["counts"][split]
        rows.append({
            "hyperparameter": f"images_{split}_per_k", "value_paper": count_paper, "value_ours": count,
            "note": "" if count == count_paper else "reduced from the paper's value in this configuration",
        })
    extra = {
        "lr_factor": (training.get("lr_factor"), "not in the table; the text says the LR is halved"),
        "seeds": (len(config["seeds"]), f"{seeds_note(config)}; the paper reports one run"),
        "placement_rule": (synthetic["rule"], "journal = second circle in any other subimage, line width 3"),
    }
    for name, (value, note) in extra.items():
        rows.append({"hyperparameter": name, "value_paper": None, "value_ours": value, "note": note})
    return pd.DataFrame(rows).astype({"value_paper": "object", "value_ours": "object"})


def scale_note(config: dict[str, Any], paper_counts: dict[str, int] = paper.SYNTHETIC_COUNTS,
               paper_rule: str = "journal") -> str:
    """Every way a configuration departs from the paper's synthetic protocol, in one sentence (the thesis's:
    ``paper_counts`` and ``paper_rule`` of thesis §7.2; its Table 7.3 is journal Table 10)."""
    counts = config["synthetic"]["counts"]
    training = config["training"]
    parts = []
    if counts != paper_counts:
        parts.append(
            f"{counts['train']}/{counts['val']}/{counts['test']} train/val/test images per k "
            f"(paper {paper_counts['train']}/{paper_counts['val']}/{paper_counts['test']})"
        )
    for key in ("max_epochs", "min_epochs", "lr", "batch_size", "early_stopping_patience", "lr_patience", "dropout"):
        if training[key] != paper.TABLE10[key]:
            parts.append(f"{key} {training[key]} (paper {paper.TABLE10[key]})")
    if config["synthetic"]["rule"] != paper_rule:
        parts.append(f"placement rule {config['synthetic']['rule']} (paper: {paper_rule})")
    if config["synthetic"].get("line_width"):
        parts.append(f"line width {config['synthetic']['line_width']} px (paper: the rule's)")
    parts.append(seeds_note(config))
    prefix = f"config {config['run']}: "
    return prefix + ("reduced scale: " if len(parts) > 1 else "") + "; ".join(parts)


def trained_over_note(world_size: int) -> str:
    """How a row's models trained, for its note: "" for one process (every row unless it says otherwise)."""
    if world_size <= 1:
        return ""
    return (f"; trained over {world_size} torchrun ranks (subimages split across the ranks, synced BatchNorm, "
            "eager: torch.compile is single-process only)")


def _grid_key(spec: ModelSpec) -> tuple[str, int | None, str | None]:
    kwargs = spec.kwargs
    if spec.name == "unet":
        return "U-Net", None, None
    return "DDU-Net", kwargs["features"], "Y" if kwargs["communicate"] else "N"


def _paper_line_iou(table: dict[int, tuple[float, ...]], k: int, model: str, features: int | None,
                    comm: str | None) -> float | None:
    """The paper's value of a U-Net(3) or DDU-Net(3, F, Y) cell (the journal's Figs. 9 and 11 have no C = N)."""
    if k not in table:
        return None
    if model == "U-Net":
        return table[k][-1]
    if comm == "Y" and features in paper.FIG9_FEATURES:
        return table[k][paper.FIG9_FEATURES.index(features)]
    return None


def seeds_so_far_note(trained: int, planned: int | None) -> str:
    """A row's note clause when fewer of its seeds are trained than its configuration names ("" otherwise)."""
    if planned is None or trained >= planned:
        return ""
    return f"; {trained} of the {planned} seeds trained so far"


def line_iou_grid(
    records: Iterable[dict[str, Any]], paper_table: dict[int, tuple[float, ...]], depth: int, note: str,
    ceilings: dict[tuple[str, int], float] | None = None, planned_seeds: Callable[[int], int] | None = None,
    paper_test_k: int | None = None,
) -> pd.DataFrame:
    """Fig. 9 / Fig. 11 rows: mean, std (n - 1), min and max over seeds of the line-class IoU per (k, model),
    with the paper's, and the receptive-field ceiling of the model on the test k where ``ceilings`` (keyed by
    :func:`~ddubench.analysis.ceiling.support_class` and test k) has it. ``planned_seeds(k_train)``, the seeds
    the configuration names, marks rows built before all of them were trained. The paper's value sits beside
    rows tested on ``paper_test_k`` (Fig. 11: 6), or on the k they were trained on where it is None (Fig. 9)."""
    rows = []
    for record in records:
        spec = ModelSpec.parse(record["spec"])
        model, features, comm = _grid_key(spec)
        rows.append({
            "k_train": record["train_k"], "k_test": record["test_k"], "model": model, "label": spec.label,
            "depth": spec.kwargs["depth"], "F": features, "comm": comm, "seed": record["seed"],
            "iou_line": record["scores"]["iou"]["line"], "miou": record["scores"]["miou"],
            "ranks": record.get("train_world_size", 1),
            "iou_line_ceiling": (ceilings or {}).get((support_class(record["spec"]), record["test_k"])),
        })
    frame = pd.DataFrame(rows)
    keys = ["k_train", "k_test", "model", "label", "depth", "F", "comm"]
    grouped = frame.groupby(keys, dropna=False, sort=False).agg(
        iou_line_ours=("iou_line", "mean"), iou_line_ours_std=("iou_line", "std"),
        iou_line_ours_min=("iou_line", "min"), iou_line_ours_max=("iou_line", "max"),
        miou_ours=("miou", "mean"), n_seeds=("seed", "nunique"), ranks=("ranks", "max"),
        iou_line_ceiling=("iou_line_ceiling", "first"),
    ).reset_index()
    grouped.insert(
        grouped.columns.get_loc("iou_line_ours"), "iou_line_paper",
        [
            _paper_line_iou(paper_table, row.k_train, row.model, None if pd.isna(row.F) else int(row.F), row.comm)
            if row.depth == depth and row.k_test == (row.k_train if paper_test_k is None else paper_test_k) else None
            for row in grouped.itertuples()
        ],
    )
    ceiling = grouped.pop("iou_line_ceiling")
    grouped.insert(grouped.columns.get_loc("iou_line_ours"), "iou_line_ceiling", ceiling)
    above = paper.above_ceiling(grouped["iou_line_paper"].astype(float), grouped["iou_line_ceiling"].astype(float))
    planned = [planned_seeds(k) if planned_seeds else None for k in grouped["k_train"]]
    grouped["note"] = [note + trained_over_note(ranks) + seeds_so_far_note(trained, wanted) + (
        "; the paper's value is above the receptive-field ceiling of this model on this data (iou_line_ceiling)"
        if flag else "") for ranks, trained, wanted, flag in zip(grouped.pop("ranks"), grouped["n_seeds"], planned,
                                                                 above)]
    grouped = grouped.astype({"F": "Int64"})
    order = grouped["model"].map({"DDU-Net": 0, "U-Net": 1})
    return grouped.assign(_o=order).sort_values(["k_train", "_o", "F"]).drop(columns="_o").reset_index(drop=True)


def depth_table(records: Iterable[dict[str, Any]], note: str,
                planned_seeds: Callable[[int], int] | None = None) -> pd.DataFrame:
    """Journal Fig. 10 as numbers: line-class IoU of DDU-Net(D, F, Y) and U-Net(D) per depth D (``planned_seeds``
    as for :func:`line_iou_grid`).

    The journal shows Fig. 10 only as predicted masks, so there is no paper column.
    """
    frame = line_iou_grid(records, {}, depth=0, note=note, planned_seeds=planned_seeds).drop(
        columns=["iou_line_paper", "iou_line_ceiling"])
    frame["note"] = frame["note"] + "; the journal's Fig. 10 shows masks only (no numbers to compare)"
    order = frame["model"].map({"DDU-Net": 0, "U-Net": 1})
    return frame.assign(_o=order).sort_values(["depth", "_o"]).drop(columns="_o").reset_index(drop=True)
