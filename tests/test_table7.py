"""Journal Table 7 builder: our measurements beside the paper's, ratios from ours, honest empty mIoU."""

from __future__ import annotations

import math

import pytest

from ddubench.report.table7 import PAPER_TABLE7, table7


def _record(spec: str, seconds: float, mb: float, world_size: int = 1, rank: int = 0) -> dict:
    return {"spec": spec, "label": spec, "params": 1000, "world_size": world_size, "rank": rank, "device": "cpu",
            "peak_mem_bytes": int(mb * 2**20), "time_mean_s": seconds, "time_std_s": 0.1,
            "memory_method": "test"}


ROWS = [
    {"id": "ddunet_r18_2x2", "model": "resnetddunet_R18_F256_CY", "subimage_size": 1024, "ranks": 2, "train": True},
    {"id": "glnet", "model": "glnet_G3", "ranks": 1, "train": False},
]


def test_table7_pairs_paper_and_ours_and_ratios_come_from_ours() -> None:
    records = {
        "ddunet_r18_2x2": [_record("resnetddunet_R18_F256_CY", 2.0, 100.0, 2, 0),
                           _record("resnetddunet_R18_F256_CY", 2.5, 120.0, 2, 1)],
        "glnet": [_record("glnet_G3", 10.0, 500.0)],
    }
    evals = [{"spec": "resnetddunet_R18_F256_CY", "scores": {"miou": m}} for m in (0.6, 0.7)]
    frame = table7(ROWS, records, evals, "not trained", "setting").set_index("row")
    ddu = frame.loc["ddunet_r18_2x2"]
    assert ddu["peak_mem_mb_ours"] == 120.0  # the largest rank
    assert ddu["time_s_ours"] == 2.5  # the slowest rank
    assert ddu["peak_mem_mb_paper"] == PAPER_TABLE7["ddunet_r18_2x2"][4] == 739
    assert ddu["miou_ours"] == pytest.approx(0.65)
    assert ddu["miou_ours_std"] == pytest.approx(math.sqrt(0.005))
    assert ddu["speedup_vs_glnet_ours"] == 4.0  # 10 s / 2.5 s
    assert ddu["speedup_vs_glnet_paper"] == round(3.0550 / 0.0463, 2)
    assert "share this machine's cores" in ddu["note"]
    glnet = frame.loc["glnet"]
    assert math.isnan(glnet["miou_ours"]) and "mIoU not measured: not trained" in glnet["note"]
    assert glnet["miou_paper"] == 0.696
