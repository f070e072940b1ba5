"""Report helpers: the paper comparison of a Fig. 9 grid on a hand-made table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ddubench.report.compare import compare_grid


def test_compare_grid_on_hand_made_table(tmp_path: Path) -> None:
    rows = []
    for features, paper, ours in [(0, 0.14, 0.10), (1, 0.55, 0.40), (4, 0.87, 0.60), (16, 0.92, 0.50)]:
        rows.append({"k_train": 2, "model": "DDU-Net", "F": features, "iou_line_paper": paper, "iou_line_ours": ours})
    rows.append({"k_train": 2, "model": "U-Net", "F": None, "iou_line_paper": 0.95, "iou_line_ours": 0.90})
    rows.append({"k_train": 3, "model": "U-Net", "F": None, "iou_line_paper": None, "iou_line_ours": 0.5})
    csv = tmp_path / "grid.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    result = compare_grid(csv)
    assert result["cells_compared"] == 5
    assert result["mean_abs_diff"] == pytest.approx((0.04 + 0.15 + 0.27 + 0.42 + 0.05) / 5)
    k2 = result["per_k"].set_index("k").loc[2]
    assert k2["spearman_F_paper"] == pytest.approx(1.0)
    assert k2["spearman_F_ours"] == pytest.approx(0.5)
    assert (k2["best_comm_ours"], k2["no_comm_ours"], k2["unet_ours"]) == (0.60, 0.10, 0.90)
