"""The scaling benchmark: per-rank peak inference memory falls as 1/P (deterministic tensor accounting)."""

from __future__ import annotations

from pathlib import Path

import _dist_workers as workers
from _ranks import run_ranks
from ddubench.report.scaling import scaling_table


def test_per_rank_memory_falls_as_one_over_p(tmp_path: Path) -> None:
    records = []
    for ranks in (1, 2, 4):
        results = run_ranks(ranks, workers.scaling_records, "ddunet_D3_F16_CY", 128, 256, tmp=tmp_path)
        assert all(status == "ok" for status, _ in results), results
        records += results[0][1]
    assert {r["subimages_per_rank"] for r in records} == {32, 16, 8}
    table = scaling_table(records).set_index("P")
    assert table.loc[1, "mem_ratio_vs_1_rank"] == 1.0
    for ranks in (2, 4):
        # weights and the gathered coarse-network input are replicated; everything else is split
        assert 1.0 <= table.loc[ranks, "ratio_over_ideal"] < 1.3
        assert table.loc[ranks, "peak_mem_mb_ours"] == table.loc[ranks, "peak_mem_mb_smallest_rank"]
    assert table["time_s_ours"].gt(0).all() and table["peak_mem_mb_paper"].isna().all()
    # the analytic activation-size estimate agrees with the measurement within 10 %
    relative = (table["peak_mem_mb_estimate"] - table["peak_mem_mb_ours"]).abs() / table["peak_mem_mb_ours"]
    assert relative.lt(0.10).all(), relative
