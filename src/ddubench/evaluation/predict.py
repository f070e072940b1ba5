"""Run a model over a split in inference mode and score it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data.registry import SegmentationSplit
from .metrics import confusion_matrix_metric, scores_from_confusion


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class ids (argmax of the logits) for a batch of [0, 1]-scaled images."""
    model.eval()
    return model(images).argmax(dim=1)


@torch.inference_mode()
def evaluate(
    model: nn.Module, split: SegmentationSplit, batch_size: int = 64, device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Scores of ``model`` on ``split`` from one confusion matrix accumulated over all of it."""
    model.eval().to(device)
    metric = confusion_matrix_metric(split.num_classes, split.ignore_index).to(device)
    for images, masks in tqdm(split.batches(batch_size), total=-(-len(split) // batch_size),
                              desc="evaluate", unit="batch", disable=not progress, leave=False):
        metric.update(model(images.to(device)).argmax(dim=1), masks.to(device))
    return scores_from_confusion(metric.compute().cpu(), split.class_names, split.ignore_index)
