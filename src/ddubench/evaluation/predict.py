"""Run a model over a split in inference mode and score it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data.registry import SegmentationSplit
from .breakdown import per_image_confusions
from .metrics import confusion_matrix_metric, scores_from_confusion


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class ids (argmax of the logits) for a batch of [0, 1]-scaled images."""
    model.eval()
    return model(images).argmax(dim=1)


TOLERANCE_PX = 1


def tolerant_counts(predicted: torch.Tensor, masks: torch.Tensor, num_classes: int,
                    valid: torch.Tensor | None = None, radius: int = TOLERANCE_PX) -> torch.Tensor:
    """(C, 4) counts per class for a batch: predicted pixels, predicted pixels with a true pixel of the class
    within ``radius`` px (Chebyshev), true pixels, true pixels with a predicted one within ``radius`` px.

    Thin structures (the synthetic line) lose most of their exact IoU to where their edge pixels fall; these
    counts say whether a model finds the structure up to that rasterization (ignored pixels left out).
    """
    classes = torch.arange(num_classes, device=masks.device).view(1, -1, 1, 1)
    keep = torch.ones_like(masks, dtype=torch.bool) if valid is None else valid
    pred = (predicted.unsqueeze(1) == classes) & keep.unsqueeze(1)
    true = (masks.unsqueeze(1) == classes) & keep.unsqueeze(1)

    def near(m: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.max_pool2d(m.float(), 2 * radius + 1, stride=1, padding=radius) > 0

    return torch.stack([pred.sum((0, 2, 3)), (pred & near(true)).sum((0, 2, 3)),
                        true.sum((0, 2, 3)), (true & near(pred)).sum((0, 2, 3))], dim=1)


def tolerant_scores(counts: torch.Tensor, class_names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Precision and recall per class within :data:`TOLERANCE_PX` px from :func:`tolerant_counts`."""
    def ratio(num: torch.Tensor, den: torch.Tensor) -> float | None:
        return None if den == 0 else float(num / den)

    return {"tolerance_px": TOLERANCE_PX,
            "precision": {name: ratio(counts[i, 1], counts[i, 0]) for i, name in enumerate(class_names)},
            "recall": {name: ratio(counts[i, 3], counts[i, 2]) for i, name in enumerate(class_names)}}


@torch.inference_mode()
def evaluate_per_image(
    model: nn.Module, split: SegmentationSplit, batch_size: int = 64, device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Scores of ``model`` on ``split`` from one confusion matrix accumulated over all of it (with precision
    and recall within one pixel, ``within_1px``), and the (N, C, C) confusion matrix of every image (ignored
    pixels left out of both)."""
    model.eval().to(device)
    metric = confusion_matrix_metric(split.num_classes, split.ignore_index).to(device)
    per_image, tolerant = [], torch.zeros(split.num_classes, 4, dtype=torch.int64)
    for images, masks in tqdm(split.batches(batch_size), total=-(-len(split) // batch_size),
                              desc="evaluate", unit="batch", disable=not progress, leave=False):
        predicted, masks = model(images.to(device)).argmax(dim=1), masks.to(device)
        metric.update(predicted, masks)
        valid = None if split.ignore_index is None else masks != split.ignore_index
        per_image.append(per_image_confusions(predicted, masks, split.num_classes, valid).cpu())
        tolerant += tolerant_counts(predicted, masks, split.num_classes, valid).cpu()
    scores = scores_from_confusion(metric.compute().cpu(), split.class_names, split.ignore_index)
    scores["within_1px"] = tolerant_scores(tolerant, split.class_names)
    return scores, torch.cat(per_image)


def evaluate(
    model: nn.Module, split: SegmentationSplit, batch_size: int = 64, device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Scores of ``model`` on ``split`` from one confusion matrix accumulated over all of it."""
    return evaluate_per_image(model, split, batch_size, device, progress)[0]
