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


def test_throughput_table_compares_with_the_authors_code_anchor() -> None:
    from ddubench.report.throughput import throughput_table

    record = {"spec": "ddunet_D3_F16_CY", "label": "DDU-Net(3,16,Y)", "k": 16, "batch_size": 16, "threads": 2,
              "params": 49823, "step_time_median_s": 0.153, "step_time_q1_s": 0.15, "step_time_q3_s": 0.16,
              "images_per_s": 16 / 0.153, "repeats": 20, "warmup": 3}
    other = {**record, "spec": "ddunet_D3_F8_CY", "k": 3}
    table = throughput_table([record, other]).set_index("spec")
    assert table.loc["ddunet_D3_F16_CY", "step_time_ms_authors_code"] == 306.0
    assert table.loc["ddunet_D3_F16_CY", "speedup_vs_authors_code"] == 2.0
    assert pd.isna(table.loc["ddunet_D3_F8_CY", "speedup_vs_authors_code"])
