"""Segmentation scores from one confusion matrix accumulated over a whole test set (journal Eq. 2).

The confusion matrix is torchmetrics' ``MulticlassConfusionMatrix``; IoU, precision, recall and pixel
accuracy are read off the accumulated matrix, so every image's pixels count once (dataset-level IoU,
not a mean of per-image IoUs).
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix_metric(num_classes: int, ignore_index: int | None = None) -> MulticlassConfusionMatrix:
    """A torchmetrics confusion-matrix accumulator; rows are true classes, columns predictions."""
    return MulticlassConfusionMatrix(num_classes=num_classes, ignore_index=ignore_index)


def scores_from_confusion(
    confusion: torch.Tensor, class_names: tuple[str, ...] | list[str], ignore_index: int | None = None
) -> dict[str, Any]:
    """Per-class IoU/precision/recall, mean IoU and pixel accuracy from a (C, C) confusion matrix.

    A class absent from both ground truth and predictions has an undefined IoU (None) and is left out
    of the mean. The ``ignore_index`` class (DeepGlobe's unknown) has no ground-truth pixels in the
    matrix and no scores; pixels of other classes predicted as it count as errors of their true class.
    """
    cm = confusion.to(torch.float64)
    tp = cm.diag()
    true_count, pred_count = cm.sum(1), cm.sum(0)
    union = true_count + pred_count - tp

    def ratio(num: torch.Tensor, den: torch.Tensor) -> list[float | None]:
        return [None if d == 0 else float(n / d) for n, d in zip(num, den)]

    iou, precision, recall = ratio(tp, union), ratio(tp, pred_count), ratio(tp, true_count)
    if ignore_index is not None:
        iou[ignore_index] = precision[ignore_index] = recall[ignore_index] = None
    defined = [v for v in iou if v is not None]
    total = float(cm.sum())
    return {
        "classes": list(class_names),
        "iou": dict(zip(class_names, iou)),
        "precision": dict(zip(class_names, precision)),
        "recall": dict(zip(class_names, recall)),
        "miou": sum(defined) / len(defined) if defined else None,
        "pixel_accuracy": float(tp.sum()) / total if total else None,
        "confusion_matrix": confusion.to(torch.int64).tolist(),
    }
