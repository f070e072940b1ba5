"""Where a synthetic model's line errors are: per-image IoU and IoU by distance between the circle centres.

The journal explains its Fig. 9 by receptive fields (Table 4): a model finds the line only where one output
pixel's view holds both circles. Binning the test images by the distance between their circle centres and
scoring each bin from its own confusion matrix tests that explanation directly; the per-image mean IoU is
the other common way to average (the journal's Eq. 2 is the dataset-level one).

Written here because no library bins segmentation scores by a property of the image; the confusion
matrices themselves are plain bincounts, equal to torchmetrics' for the same pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Upper edges (px) of the distance bins: < 40, 40-70, 70-100, 100-130, >= 130.
DISTANCE_EDGES_PX = (40, 70, 100, 130)


def distance_bin_labels(edges: tuple[int, ...] = DISTANCE_EDGES_PX) -> list[str]:
    """``['<40', '40-70', ..., '>=130']`` for the bins :func:`distance_bins` assigns."""
    inner = [f"{a}-{b}" for a, b in zip(edges[:-1], edges[1:])]
    return [f"<{edges[0]}", *inner, f">={edges[-1]}"]


def distance_bins(centres: np.ndarray, edges: tuple[int, ...] = DISTANCE_EDGES_PX) -> np.ndarray:
    """Bin index of every image from its two circle centres (N, 2, 2) as (x, y)."""
    centres = np.asarray(centres, dtype=np.float64)
    distance = np.hypot(*(centres[:, 0] - centres[:, 1]).T)
    return np.searchsorted(np.asarray(edges, dtype=np.float64), distance, side="right")


def per_image_confusions(predicted: torch.Tensor, masks: torch.Tensor, num_classes: int,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C, C) confusion matrices, one per image (rows: true class, columns: predicted); pixels where
    ``valid`` is False (an ignore index) are left out."""
    n = masks.shape[0]
    offsets = torch.arange(n, device=masks.device).unsqueeze(1) * num_classes**2
    index = (masks.reshape(n, -1) * num_classes + predicted.reshape(n, -1)).long() + offsets
    if valid is None:
        counts = torch.bincount(index.flatten(), minlength=n * num_classes**2)
    else:
        index = index.flatten()[valid.flatten()]
        counts = torch.bincount(index, minlength=n * num_classes**2)
    return counts.reshape(n, num_classes, num_classes)


def _class_scores(confusion: torch.Tensor, cls: int) -> dict[str, float | None]:
    """IoU, precision and recall of class ``cls`` from one (C, C) matrix (None where undefined)."""
    cm = confusion.to(torch.float64)
    tp, true, pred = cm[cls, cls], cm[cls].sum(), cm[:, cls].sum()

    def ratio(num: torch.Tensor, den: torch.Tensor) -> float | None:
        return None if den == 0 else float(num / den)

    return {"iou": ratio(tp, true + pred - tp), "precision": ratio(tp, pred), "recall": ratio(tp, true)}


def line_breakdown(confusions: torch.Tensor, centres: np.ndarray, cls: int = 1) -> dict[str, Any]:
    """Per-image mean IoU of class ``cls`` and its dataset-level IoU/precision/recall per distance bin.

    The per-image mean leaves out images where the class is absent from both truth and prediction.
    """
    per_image = [_class_scores(c, cls)["iou"] for c in confusions]
    defined = [v for v in per_image if v is not None]
    bins = distance_bins(centres)
    by_distance = []
    for index, label in enumerate(distance_bin_labels()):
        members = torch.from_numpy(bins == index)
        scores = _class_scores(confusions[members].sum(0), cls) if members.any() else \
            {"iou": None, "precision": None, "recall": None}
        by_distance.append({"distance_px": label, "images": int(members.sum()), **scores})
    return {
        "class": cls,
        "per_image_mean_iou": float(np.mean(defined)) if defined else None,
        "per_image_defined": len(defined),
        "distance_edges_px": list(DISTANCE_EDGES_PX),
        "by_distance": by_distance,
    }
