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


@torch.inference_mode()
def evaluate_per_image(
    model: nn.Module, split: SegmentationSplit, batch_size: int = 64, device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Scores of ``model`` on ``split`` from one confusion matrix accumulated over all of it, and the
    (N, C, C) confusion matrix of every image (ignored pixels left out of both)."""
    model.eval().to(device)
    metric = confusion_matrix_metric(split.num_classes, split.ignore_index).to(device)
    per_image = []
    for images, masks in tqdm(split.batches(batch_size), total=-(-len(split) // batch_size),
                              desc="evaluate", unit="batch", disable=not progress, leave=False):
        predicted, masks = model(images.to(device)).argmax(dim=1), masks.to(device)
        metric.update(predicted, masks)
        valid = None if split.ignore_index is None else masks != split.ignore_index
        per_image.append(per_image_confusions(predicted, masks, split.num_classes, valid).cpu())
    scores = scores_from_confusion(metric.compute().cpu(), split.class_names, split.ignore_index)
    return scores, torch.cat(per_image)


def evaluate(
    model: nn.Module, split: SegmentationSplit, batch_size: int = 64, device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Scores of ``model`` on ``split`` from one confusion matrix accumulated over all of it."""
    return evaluate_per_image(model, split, batch_size, device, progress)[0]
