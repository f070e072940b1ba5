"""Evaluate trained checkpoints on a test split: scores JSON and the qualitative prediction figure."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..data.registry import load_split
from ..errors import DataError, DdubenchError
from ..io import read_json, write_atomic, write_json
from ..models import ModelSpec
from ..provenance import provenance, relative_paths, repository_root, utc_now, write_sidecar
from ..report.figures import prediction_panels
from ..training.checkpoint import model_from_checkpoint
from ..data import synthetic
from .breakdown import line_breakdown
from .metrics import scores_from_confusion
from .predict import evaluate_per_image, predict


def _dataset_k(manifest: dict[str, Any]) -> int | None:
    return manifest.get("spec", {}).get("k")


def _check_model_fits_data(checkpoint: str | Path, payload: dict[str, Any], split: Any, test_file: str | Path) -> None:
    """A model of other classes or input channels than the data scores nonsense (class ids beyond the data's
    land in the wrong cells of the confusion matrix): refuse it in one line."""
    args = payload["model_args"]
    for what, model_value, data_value in (("classes", args["num_classes"], split.num_classes),
                                          ("input channels", args["in_channels"], split.in_channels)):
        if model_value != data_value:
            raise DataError(f"{checkpoint} was trained with {model_value} {what}, {test_file} has {data_value}; "
                            "evaluate it on data of the kind it was trained on")


def evaluate_checkpoint(
    checkpoint: str | Path, test_file: str | Path, out: str | Path, dataset_kind: str | None = None,
    batch_size: int = 64, device: str = "cpu", progress: bool = True, subimage: int | None = None,
) -> dict[str, Any]:
    """Score a checkpoint on one test split and write the record (scores + what was evaluated) as JSON.

    ``subimage`` applies the model to subimages of that side instead of its training subimage size.
    """
    started, clock = utc_now(), time.perf_counter()
    if batch_size < 1:
        raise DdubenchError(f"--batch-size {batch_size}: the evaluation batch size must be at least 1")
    test_file = Path(test_file)
    model, payload = model_from_checkpoint(checkpoint, subimage)
    split = load_split(dataset_kind, test_file)
    _check_model_fits_data(checkpoint, payload, split, test_file)
    scores, per_image = evaluate_per_image(model, split, batch_size=batch_size, device=device, progress=progress)
    centres = synthetic.load_centres(test_file) if test_file.suffix == ".npz" else None
    test_manifest = read_json(test_file.parent / "manifest.json")
    record = {
        "spec": payload["spec"],
        "label": ModelSpec.parse(payload["spec"]).label,
        "seed": payload["train_config"]["seed"],
        "train_k": _dataset_k(payload["metadata"].get("train_data", {})),
        "test_k": _dataset_k(test_manifest),
        "best_epoch": payload["best_epoch"],
        "train_world_size": payload["metadata"].get("world_size", 1),
        "subimage_size": list(payload["model_args"]["subimage_size"]),
        "eval_subimage_size": [subimage, subimage] if subimage else list(payload["model_args"]["subimage_size"]),
        "checkpoint": str(checkpoint),
        "test_data": str(test_file),
        "scores": scores,
        # synthetic splits: per-image mean IoU of the line and its IoU by distance between the circles
        "line_breakdown": None if centres is None else line_breakdown(per_image, centres),
        "provenance": provenance(
            config=payload["train_config"], seeds=[payload["train_config"]["seed"]], started=started,
            wall_time_s=time.perf_counter() - clock, inputs=[str(checkpoint), str(test_file)],
        ),
    }
    record = relative_paths(record, repository_root())  # an absolute --checkpoint or --data inside the repository
    write_json(out, record)
    return record


def prediction_figure(
    checkpoints: list[str | Path], test_file: str | Path, examples: int, out_pdf: str | Path, out_csv: str | Path,
    dataset_kind: str = "synthetic",
) -> pd.DataFrame:
    """Journal Figs. 8/10 style: the first ``examples`` test images, ground truth and each model's prediction.

    Also writes a CSV with each shown example's line-class IoU per model, so the figure's content is
    checkable as numbers.
    """
    started, clock = utc_now(), time.perf_counter()
    split = load_split(dataset_kind, test_file)
    index = torch.arange(min(examples, len(split)))
    images, masks = split.batch(index)
    predictions, rows = {}, []
    for checkpoint in checkpoints:
        model, payload = model_from_checkpoint(checkpoint)
        _check_model_fits_data(checkpoint, payload, split, test_file)
        label = ModelSpec.parse(payload["spec"]).label
        predicted = predict(model, images)
        predictions[label] = predicted.numpy()
        for i in range(len(index)):
            confusion = torch.bincount(masks[i].flatten() * split.num_classes + predicted[i].flatten(),
                                       minlength=split.num_classes**2).reshape(split.num_classes, -1)
            iou = scores_from_confusion(confusion, split.class_names)["iou"]
            rows.append({"example": i, "model": label, "spec": payload["spec"], "iou_line_ours": iou["line"]})
    prediction_panels(split.images[index, 0].numpy(), masks.numpy(), predictions, split.subimage_size[1], out_pdf)
    frame = pd.DataFrame(rows)
    write_atomic(out_csv, lambda tmp: frame.to_csv(tmp, index=False))
    write_sidecar(out_csv, provenance(started=started, wall_time_s=time.perf_counter() - clock,
                                      inputs=[str(c) for c in checkpoints] + [str(test_file)]))
    return frame
