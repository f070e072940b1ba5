"""Thesis §7.3 on Inria Aerial Image Labeling: Table 7.7 (hyperparameters) and Table 7.8 (IoU of background and
building on train, val and test for the U-Net and DDU-Net with and without communication)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from ..errors import ConfigError, DdubenchError
from ..models import ModelSpec
from . import paper
from .departures import departs, departures

SPLITS = ("train", "val", "test")  # Table 7.8's column order
# our settings for what Table 7.7 does not state (augment: thesis §7.3.2's flips and quarter turns), and where
# the models run (not an experiment setting: the device, and the ranks a DDU-Net's subimages train over, as in
# the `training` section)
UNSTATED = {"lr_factor": 0.5, "eval_batch_size": 1, "loss": "macro", "augment": True}
RUNTIME = {"device": "auto", "ranks": 1, "model_ranks": {}}


def inria_training(section: dict[str, Any]) -> dict[str, Any]:
    """The training settings of the Inria models: thesis Table 7.7, then our defaults for what it leaves out, then
    the section's own ``training`` overlay (an unknown key is an error)."""
    known = {**paper.THESIS_TABLE7_7, **UNSTATED, **RUNTIME}
    unknown = sorted(set(section["training"]) - set(known))
    if unknown:
        raise ConfigError(f"thesis.inria.training has unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return {**paper.THESIS_TABLE7_7, **UNSTATED, **RUNTIME, **section["training"]}


NEVER = ("min_epochs", "early_stopping_patience", "lr_patience")  # "-" in Table 7.7: set to the epoch count


def inria_note(config: dict[str, Any]) -> str:
    """How a configuration's Inria experiment departs from the thesis's §7.3, in one sentence."""
    section = config["thesis"]["inria"]
    training = inria_training(section)
    parts = [] if section["root"] else ["GENERATED Inria-format tiles, NOT Inria: the numbers test the plumbing only"]
    if section["root"] is None and (section["fake"]["tiles_per_city"], section["fake"]["size"]) != (36, 5000):
        parts.append(f"{section['fake']['tiles_per_city']} tiles of {section['fake']['size']} px per city (Inria 36 "
                     "of 5000)")
    parts += departures(training, paper.THESIS_TABLE7_7, NEVER)
    crop, split = section["crop"], section["split"]
    if (crop["train"], crop["overlap"], crop["eval"], section["subimage"]) != (512, 32, 2048, 128):
        parts.append(f"{crop['train']} px training patches overlapping by {crop['overlap']} px, {crop['eval']} px "
                     f"val/test crops, {section['subimage']} px subimages (thesis 512 / 32 / 2048 / 128)")
    if (split["val"], split["test"]) != (5, 5):
        parts.append(f"{split['val']} val and {split['test']} test tiles per city (thesis 5 and 5)")
    parts.append(f"{len(section['seeds'])} seed(s)")
    return f"config {config['run']}: " + "; ".join(parts)


def thesis_table7_7(config: dict[str, Any]) -> pd.DataFrame:
    """Thesis Table 7.7 beside the Inria training settings this configuration used."""
    training = inria_training(config["thesis"]["inria"])
    meaning = {"early_stopping_patience": "thesis '-': no early stopping within the epochs",
               "min_epochs": "thesis '-': no minimum stopping epoch",
               "lr_patience": "thesis '-': the learning rate never decays within the epochs"}
    rows = [{"hyperparameter": name, "value_paper": "-" if name in NEVER else value, "value_ours": training[name],
             "note": "; ".join(filter(None, [meaning.get(name, ""), "changed in this configuration"
                                             if departs(training, name, value, NEVER) else ""]))}
            for name, value in paper.THESIS_TABLE7_7.items()]
    rows += [{"hyperparameter": name, "value_paper": None, "value_ours": training[name],
              "note": "not stated in the thesis; our setting"} for name in UNSTATED]
    return pd.DataFrame(rows, dtype=object)


def thesis_name(spec_text: str) -> str:
    """The thesis's name of an Inria model: a U-Net is the baseline, a DDU-Net with F > 0 communicating maps is
    "proposed w/ communication", one with F = 0 (no coarse network) "proposed w/o communication"."""
    spec = ModelSpec.parse(spec_text)
    unet, comm, nocomm = paper.THESIS_INRIA_MODELS
    if spec.name == "unet":
        return unet
    if spec.name == "ddunet" and spec.kwargs["features"] == 0:
        return nocomm
    if spec.name == "ddunet" and spec.kwargs["communicate"]:
        return comm
    raise DdubenchError(f"{spec_text} is none of the thesis's Inria models (a U-Net, a DDU-Net with F > 0 and C = Y, "
                        "or one with F = 0); fix thesis.inria.models")


def thesis_table7_8(records: list[dict[str, Any]], config: dict[str, Any]) -> pd.DataFrame:
    """Thesis Table 7.8: IoU of background and building on train, val and test (mean over seeds), the thesis's
    beside ours, one row per model."""
    rows = []
    for record in records:
        split = PurePosixPath(record["test_data"]).name
        rows.append({"model": thesis_name(record["spec"]), "split": split, "seed": record["seed"],
                     **{name: record["scores"]["iou"][name] for name in ("background", "building")}})
    if not rows:
        raise DdubenchError("no evaluation records given; pass the Inria models' eval JSONs (train, val, test)")
    frame = pd.DataFrame(rows)
    means = frame.groupby(["model", "split"])[["background", "building"]].mean()
    seeds = frame.groupby("model")["seed"].nunique()
    note = inria_note(config)
    table = []
    for model, published in paper.THESIS_TABLE7_8.items():
        row: dict[str, Any] = {"model": model}
        for name in ("background", "building"):
            for split, value in zip(SPLITS, published[name]):
                row[f"iou_{name}_{split}_paper"] = value
                row[f"iou_{name}_{split}_ours"] = (means.loc[(model, split), name] if (model, split) in means.index
                                                   else None)
        row["n_seeds"] = seeds.get(model)
        row["note"] = note
        table.append(row)
    return pd.DataFrame(table).round(4).astype({"n_seeds": "Int64"})
