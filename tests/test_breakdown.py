"""Per-image and by-distance line scores of the synthetic evaluation, on hand-made masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddubench.data.registry import load_split
from ddubench.evaluation.breakdown import distance_bin_labels, distance_bins, line_breakdown, per_image_confusions
from ddubench.evaluation.predict import evaluate_per_image
from ddubench.models import build_model


def test_distance_bins_follow_the_edges() -> None:
    # distances 30, 40 (an edge belongs to the bin above), 69.9, 100, 130, 200 along x; 50 as a 3-4-5 triangle
    centres = np.array([[[0, 0], [d, 0]] for d in (30, 40, 69.9, 100, 130, 200)] + [[[0, 0], [30, 40]]])
    assert distance_bins(centres).tolist() == [0, 1, 1, 3, 4, 4, 1]
    assert distance_bin_labels() == ["<40", "40-70", "70-100", "100-130", ">=130"]


def test_per_image_confusions_count_each_image_alone_and_leave_out_ignored_pixels() -> None:
    masks = torch.tensor([[[0, 1], [1, 2]], [[2, 2], [0, 1]]])
    predicted = torch.tensor([[[0, 1], [0, 2]], [[2, 1], [1, 1]]])
    confusions = per_image_confusions(predicted, masks, 3)
    assert confusions[0].tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert confusions[1].tolist() == [[0, 1, 0], [0, 1, 0], [0, 1, 1]]
    valid = masks != 2
    kept = per_image_confusions(predicted, masks, 3, valid)
    assert kept[0].tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert kept[1].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 0]]


def _confusion(tp: int, fp: int, fn: int) -> list[list[int]]:
    """A 3-class matrix whose line class (1) has these counts (background takes the rest)."""
    return [[10, fp, 0], [fn, tp, 0], [0, 0, 5]]


def test_line_breakdown_by_hand() -> None:
    confusions = torch.tensor([_confusion(2, 1, 1), _confusion(3, 0, 0), _confusion(0, 0, 0), _confusion(1, 3, 0)])
    centres = np.array([[[0, 0], [30, 0]], [[0, 0], [50, 0]], [[0, 0], [60, 0]], [[0, 0], [300, 0]]])
    result = line_breakdown(confusions, centres)
    # per image: 2 / 4, 3 / 3, undefined (no line anywhere), 1 / 4
    assert result["per_image_mean_iou"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert result["per_image_defined"] == 3
    bins = {row["distance_px"]: row for row in result["by_distance"]}
    assert bins["<40"] == {"distance_px": "<40", "images": 1, "iou": 0.5, "precision": 2 / 3, "recall": 2 / 3}
    assert bins["40-70"]["images"] == 2 and bins["40-70"]["iou"] == 1.0  # dataset-level over both images
    assert bins["70-100"] == {"distance_px": "70-100", "images": 0, "iou": None, "precision": None, "recall": None}
    assert bins[">=130"]["iou"] == 0.25 and bins[">=130"]["precision"] == 0.25 and bins[">=130"]["recall"] == 1.0


def test_per_image_confusions_add_up_to_the_dataset_level_matrix(tiny_dataset: Path) -> None:
    split = load_split("synthetic", tiny_dataset / "test.npz")
    torch.manual_seed(0)
    model = build_model("ddunet_D3_F4_CY", in_channels=1, num_classes=3, subimage_size=(32, 32))
    scores, per_image = evaluate_per_image(model, split, batch_size=5, progress=False)
    assert per_image.shape == (len(split), 3, 3)
    assert per_image.sum(0).tolist() == scores["confusion_matrix"]
