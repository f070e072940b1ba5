"""Thesis Tables 7.11-7.13 (§7.4.3): the DeepGlobe ablation of the ResNet DDU-Net's two extra bottleneck
convolutions, for DDU-Net with and without communication and the U-Net, from their evaluation records."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from ..errors import DdubenchError
from ..models import ModelSpec
from . import paper
from .departures import departures

SPLITS = ("train", "test", "val")  # Table 7.13's column order
NEVER = ("min_epochs", "early_stopping_patience")  # "-" in Table 7.10: no departure while they never act
KEYS = {"comm": paper.THESIS_ABLATION_MODELS[0], "nocomm": paper.THESIS_ABLATION_MODELS[1],
        "unet": paper.THESIS_ABLATION_MODELS[2]}


def ablation_note(config: dict[str, Any]) -> str:
    """How the derived thesis run departs from the thesis's §7.4 setting, in one sentence."""
    deepglobe, ablation = config["deepglobe"], config["thesis"]["deepglobe_ablation"]
    training = deepglobe["training"]
    parts = departures(training, paper.THESIS_TABLE7_10, NEVER)
    crop = deepglobe["crop"]
    if (crop["train"], crop["test"]) != (512, 2048):
        parts.append(f"{crop['train']} px training / {crop['test']} px test crops (thesis 512 / 2048)")
    if deepglobe["root"] is None:
        parts.insert(0, "GENERATED DeepGlobe-format tiles, not DeepGlobe: the numbers test the plumbing only")
    parts.append(f"DDU-Nets on {ablation['partition']}x{ablation['partition']} subimages of the training crop "
                 f"(F = {ablation['features']}), tested with the same subimage side; the U-Net on whole crops")
    parts.append(f"{len(training['seeds'])} seed(s)")
    return f"config {config['run']}: " + "; ".join(parts)


def ablation_model(record: dict[str, Any], crop_train: int) -> tuple[str, str]:
    """(thesis model name, "with" or "without" the extra convolutions) of one evaluation record: DDU-Net(4, F > 0, Y)
    is "with communication", DDU-Net(4, 0, N) on subimages "without", and on whole training crops the U-Net."""
    spec = ModelSpec.parse(record["spec"])
    if spec.name != "resnetddunet":
        raise DdubenchError(f"{record['spec']} is not a ResNet DDU-Net; pass only the ablation's records")
    extra = "with" if spec.kwargs["inter_conv"] else "without"
    if spec.kwargs["features"] and spec.kwargs["communicate"]:
        return KEYS["comm"], extra
    if spec.kwargs["features"] == 0:
        whole = record["subimage_size"][0] >= crop_train
        return KEYS["unet" if whole else "nocomm"], extra
    raise DdubenchError(f"{record['spec']} is none of the ablation's models (F > 0 with communication, or F = 0)")


def _long(records: list[dict[str, Any]], crop_train: int) -> pd.DataFrame:
    rows = []
    for record in records:
        model, extra = ablation_model(record, crop_train)
        split = PurePosixPath(record["test_data"]).name
        iou = {name: value for name, value in record["scores"]["iou"].items() if value is not None}
        rows.append({"model": model, "extra": extra, "split": split, "seed": record["seed"],
                     "miou": record["scores"]["miou"], **{f"iou_{name}": value for name, value in iou.items()}})
    if not rows:
        raise DdubenchError("no evaluation records given; pass the ablation models' eval JSONs (train, val, test)")
    return pd.DataFrame(rows)


def thesis_per_class(records: list[dict[str, Any]], crop_train: int, extra: str, note: str) -> pd.DataFrame:
    """Thesis Table 7.11 (``extra="without"``) or 7.12 (``"with"``): test IoU per class (mean over seeds) of the
    three models, the thesis's beside ours, and the column means."""
    published = paper.THESIS_TABLE7_11 if extra == "without" else paper.THESIS_TABLE7_12
    frame = _long(records, crop_train)
    test = frame[(frame["split"] == "test") & (frame["extra"] == extra)].groupby("model").mean(numeric_only=True)
    rows = []
    for name in published:
        row: dict[str, Any] = {"class": name}
        for key, model in KEYS.items():
            row[f"iou_{key}_paper"] = published[name][paper.THESIS_ABLATION_MODELS.index(model)]
            row[f"iou_{key}_ours"] = test.loc[model, f"iou_{name}"] if model in test.index else None
        rows.append(row)
    table = pd.DataFrame(rows)
    means = {"class": "mean (6 classes)", **table.drop(columns="class").mean().to_dict()}
    table = pd.concat([table, pd.DataFrame([means])], ignore_index=True)
    table["note"] = note + "; 'unknown' excluded as in the thesis; comm = proposed w/ communication, nocomm = " \
                           "proposed w/o communication (no communication network), unet = baseline U-Net"
    return table.round(4)


def thesis_table7_13(records: list[dict[str, Any]], crop_train: int, note: str) -> pd.DataFrame:
    """Thesis Table 7.13: mIoU on train, test and val (mean over seeds) of each model with and without the extra
    bottleneck convolutions, the thesis's beside ours."""
    frame = _long(records, crop_train)
    means = frame.groupby(["model", "extra", "split"])["miou"].mean()
    seeds = frame.groupby(["model", "extra"])["seed"].nunique()
    rows = []
    for model, published in paper.THESIS_TABLE7_13.items():
        row: dict[str, Any] = {"model": model}
        for extra in ("with", "without"):
            for split, value in zip(SPLITS, published[extra]):
                row[f"miou_{split}_{extra}_paper"] = value
                row[f"miou_{split}_{extra}_ours"] = means.get((model, extra, split))
            row[f"n_seeds_{extra}"] = seeds.get((model, extra))
        row["note"] = "; ".join(filter(None, [note, paper.THESIS_TABLE7_13_ERRATA.get(model, "")]))
        rows.append(row)
    return pd.DataFrame(rows).round(4).astype({"n_seeds_with": "Int64", "n_seeds_without": "Int64"})
