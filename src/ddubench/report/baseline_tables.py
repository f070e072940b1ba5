"""Journal Tables 1 (random patching) and 2 (downsampling) from the DeepGlobe runs' records.

Inputs per trained model (spec, seed): its training summary (``train.json``: the prepared data it was
trained on and the training time) and its evaluation records on the training split, the test split and the
split that selects the reported repeat (``deepglobe.training.select_on``). The mIoU is recomputed from each
record's confusion matrix (one matrix over the whole split): the mean IoU of the six land-cover classes,
unknown excluded (:func:`ddubench.evaluation.metrics.scores_from_confusion`).

One row per patch/downsampled size: the mean over seeds, and the repeat with the best mIoU on the
``select_on`` split (the journal kept the best of three runs on the test set), beside the journal's values.
A run at a reduced geometry (smaller crops) is compared with the journal row of the same size-to-crop
ratio: the context a patch holds, or the share of pixels downsampling keeps, is what the tables vary.
Journal rows without a run of ours stay empty in ``_ours`` and say why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import pandas as pd
import torch

from ..data.deepglobe import CLASSES, IGNORE_INDEX
from ..errors import DataError
from ..evaluation.metrics import scores_from_confusion
from ..io import read_json
from ..models import ModelSpec
from ..models.resnet_ddunet import DOWNSAMPLING

# Journal Tables 1 and 2: size in px -> (mean IoU on the training data, mean IoU on the test set).
TABLE1_MIOU = {16: (0.3866, 0.3099), 32: (0.4651, 0.3943), 64: (0.5371, 0.4882), 128: (0.5943, 0.5691),
               256: (0.6741, 0.6342), 512: (0.7383, 0.6795), 1024: (0.7601, 0.6847)}
TABLE2_MIOU = {16: (0.5001, 0.4654), 32: (0.5875, 0.5058), 64: (0.6688, 0.5601), 128: (0.7194, 0.6582),
               256: (0.7578, 0.6896), 512: (0.7740, 0.6923), 1024: (0.7619, 0.6926)}
PAPER_CROP_TRAIN = 1024  # journal Sec. V-B: 1024 px training crops, 2048 px test images
PAPER_CROP_TEST = 2048
PAPER_EPOCHS, PAPER_BATCH, PAPER_REPEATS = 100, 12, 3  # journal Table 6 and Sec. V-B
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BaselineTable:
    """Which registered model a table reports and the spec keyword that is its size column."""

    model: str
    size_kwarg: str
    size_column: str
    paper_column: str
    paper: dict[int, tuple[float, float]]


TABLES = {
    "table1": BaselineTable("patching", "patch_size", "patch_size_px", "patch_size_paper_px", TABLE1_MIOU),
    "table2": BaselineTable("downsampling", "size", "size_px", "size_paper_px", TABLE2_MIOU),
}


@dataclass
class Run:
    """The records of one trained model: training summary and evaluation record per split."""

    summary: dict[str, Any] | None = None
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)


def land_cover_miou(record: dict[str, Any]) -> float:
    """Mean IoU over the land-cover classes from an evaluation record's confusion matrix (unknown excluded)."""
    confusion = torch.tensor(record["scores"]["confusion_matrix"], dtype=torch.int64)
    return scores_from_confusion(confusion, CLASSES, IGNORE_INDEX)["miou"]


def record_kind(path: str | Path) -> str:
    """``summary`` for a training summary (``train.json``), else the split of ``eval_<split>.json``."""
    stem = Path(path).stem
    if stem == "train":
        return "summary"
    if stem.startswith("eval_") and stem[5:] in SPLITS:
        return stem[5:]
    raise DataError(f"{path} is neither a train.json nor an eval_{{{','.join(SPLITS)}}}.json record; "
                    "pass the DeepGlobe run records of the patching/downsampling models")


def collect_runs(records: Iterable[tuple[str, dict[str, Any]]], splits: Iterable[str]) -> dict[tuple[str, int], Run]:
    """Group (kind, record) pairs by (canonical spec, seed); every run needs its summary and ``splits``."""
    runs: dict[tuple[str, int], Run] = {}
    for kind, record in records:
        if kind == "summary":
            key = (str(ModelSpec.parse(record["spec"])), record["provenance"]["config"]["seed"])
            runs.setdefault(key, Run()).summary = record
        else:
            key = (str(ModelSpec.parse(record["spec"])), record["seed"])
            runs.setdefault(key, Run()).evals[kind] = record
    for (spec, seed), run in runs.items():
        missing = [] if run.summary else ["train.json"]
        missing += [f"eval_{split}.json" for split in splits if split not in run.evals]
        if missing:
            raise DataError(f"{spec} seed {seed}: {', '.join(missing)} missing; pass the train.json and the "
                            f"eval_{{{','.join(splits)}}}.json records of every run")
    return runs


def read_runs(paths: Iterable[str | Path], splits: Iterable[str]) -> dict[tuple[str, int], Run]:
    """The runs recorded in ``train.json`` and ``eval_<split>.json`` files (kind from the file name)."""
    return collect_runs(((record_kind(path), read_json(path)) for path in paths), tuple(splits))


def needed_splits(select_on: str) -> tuple[str, ...]:
    """Splits every run must be evaluated on: train and test for the table, plus the selecting split."""
    return tuple(split for split in SPLITS if split in ("train", "test", select_on))


def scale_note(config: dict[str, Any]) -> str:
    """How a configuration's DeepGlobe training departs from the journal's, in one clause."""
    deepglobe = config["deepglobe"]
    training = deepglobe["training"]
    parts = [] if deepglobe["root"] else ["GENERATED DeepGlobe-format tiles, NOT DeepGlobe"]
    for name, ours, journal in (("max_epochs", training["max_epochs"], PAPER_EPOCHS),
                                ("batch_size", training["batch_size"], PAPER_BATCH),
                                ("repeats", len(training["seeds"]), PAPER_REPEATS)):
        if ours != journal:
            parts.append(f"{name} {ours} (journal {journal})")
    if not deepglobe["weights"]["resnet18"]:
        parts.append("random frozen ResNet18 blocks (no local ImageNet weights; the journal used ImageNet's)")
    return f"config {config['run']}: " + ("; ".join(parts) if parts else "the journal's protocol")


def _protocol(spec: ModelSpec, crop_train: int, crop_test: int) -> str:
    """How this model was trained and applied to the full test crops, in words."""
    kwargs = spec.kwargs
    if spec.name == "patching":
        size = kwargs["patch_size"]
        stride = size - size * kwargs["overlap"] // 100
        overlap = "non-overlapping" if stride == size else f"stride {stride} px, overlapping logits averaged"
        return (f"trained on one random {size} px patch per {crop_train} px crop and step; "
                f"tested by sliding {size} px windows ({overlap}) over the whole {crop_test} px test crops")
    size = kwargs["size"]
    step = crop_train * DOWNSAMPLING  # the model's rounding: to the nearest multiple of 16, halves up
    test_side = DOWNSAMPLING * max(1, (2 * crop_test * size + step) // (2 * step))
    return (f"{crop_train} px crops downsampled to {size} px (bilinear, antialiased; masks nearest); "
            f"{crop_test} px test crops predicted at {test_side} px (same factor) and the logits upsampled "
            f"{kwargs['upsample']}ly to {crop_test} px")


def baseline_table(name: str, runs: dict[tuple[str, int], Run], config: dict[str, Any]) -> pd.DataFrame:
    """Journal Table 1 or 2 for ``runs`` of the DeepGlobe section of ``config`` (select_on, scale note)."""
    table = TABLES[name]
    by_spec: dict[str, list[tuple[int, Run]]] = {}
    for (spec, seed), run in sorted(runs.items()):
        if ModelSpec.parse(spec).name != table.model:
            raise DataError(f"{name} reports {table.model} models, but got records of {spec}")
        by_spec.setdefault(spec, []).append((seed, run))
    crops = {(r.summary["train_data"]["spec"]["crop_train"], r.summary["train_data"]["spec"]["crop_test"])
             for r in runs.values()}
    if len(crops) > 1:
        raise DataError(f"the runs were trained on different crop sizes {sorted(crops)}; build one table per data set")
    crop_train, crop_test = next(iter(crops)) if crops else (None, None)
    select_on = config["deepglobe"]["training"]["select_on"]
    note = scale_note(config)
    rows = [_row(table, ModelSpec.parse(spec), seeds, crop_train, crop_test, select_on, note)
            for spec, seeds in by_spec.items()]
    covered = {row[table.paper_column] for row in rows}
    rows += [_row_not_run(table, size, crop_train) for size in table.paper if size not in covered]
    rows.sort(key=lambda row: (row[table.paper_column] or row[table.size_column], row[table.size_column] or 0))
    integers = [table.size_column, "crop_train_px", "crop_test_px", table.paper_column, "repeats", "selected_seed"]
    return pd.DataFrame(rows, columns=_columns(table)).astype({column: "Int64" for column in integers})


def _columns(table: BaselineTable) -> list[str]:
    return ["model", table.size_column, "crop_train_px", "crop_test_px", table.paper_column,
            "miou_train_paper", "miou_train_ours", "miou_test_paper", "miou_test_ours", "repeats", "select_on",
            "selected_seed", "miou_train_selected_ours", "miou_test_selected_ours", "train_time_s_ours", "note"]


def _row(table: BaselineTable, spec: ModelSpec, seeds: list[tuple[int, Run]], crop_train: int, crop_test: int,
         select_on: str, note: str) -> dict[str, Any]:
    """Mean over the seeds of one spec and the selected repeat, beside the journal row of the same ratio."""
    size = spec.kwargs[table.size_kwarg]
    scaled = size * PAPER_CROP_TRAIN
    paper_size = scaled // crop_train if scaled % crop_train == 0 and scaled // crop_train in table.paper else None
    paper_train, paper_test = table.paper.get(paper_size, (None, None))
    miou = {split: {seed: land_cover_miou(run.evals[split]) for seed, run in seeds}
            for split in needed_splits(select_on)}
    selected = max(miou[select_on], key=lambda seed: (miou[select_on][seed], -seed))
    notes = [note, _protocol(spec, crop_train, crop_test)]
    if (crop_train, crop_test) != (PAPER_CROP_TRAIN, PAPER_CROP_TEST):
        notes.append(f"crops {crop_train}/{crop_test} px instead of the journal's {PAPER_CROP_TRAIN}/{PAPER_CROP_TEST}"
                     + (f": compared with its {paper_size} px row (same size-to-crop ratio)" if paper_size
                        else ": no journal row has this size-to-crop ratio"))
    notes.append(f"_ours: mean over {len(seeds)} repeat{'s' if len(seeds) > 1 else ''}; _selected_ours: the repeat "
                 f"with the best {select_on} mIoU (the journal reports the best of three on the test set)")
    return {
        "model": str(spec), table.size_column: size, "crop_train_px": crop_train, "crop_test_px": crop_test,
        table.paper_column: paper_size,
        "miou_train_paper": paper_train, "miou_train_ours": mean(miou["train"].values()),
        "miou_test_paper": paper_test, "miou_test_ours": mean(miou["test"].values()),
        "repeats": len(seeds), "select_on": select_on, "selected_seed": selected,
        "miou_train_selected_ours": miou["train"][selected], "miou_test_selected_ours": miou["test"][selected],
        "train_time_s_ours": mean(run.summary["result"]["train_time_s"] for _seed, run in seeds),
        "note": "; ".join(notes),
    }


def _row_not_run(table: BaselineTable, paper_size: int, crop_train: int | None) -> dict[str, Any]:
    """A journal row no run of ours matches: the journal's values only, and why."""
    if crop_train is None:
        why = "no runs were given"
    else:
        ours = paper_size * crop_train / PAPER_CROP_TRAIN
        why = f"the matching size at this run's {crop_train} px crops is {ours:g} px, " + (
            f"below the ResNet U-Net's minimum of {DOWNSAMPLING} px" if ours < DOWNSAMPLING
            else "not among this configuration's deepglobe_baselines sizes")
    paper_train, paper_test = table.paper[paper_size]
    return {table.size_column: None, table.paper_column: paper_size, "miou_train_paper": paper_train,
            "miou_test_paper": paper_test, "note": f"not run: {why}"}
