"""Thesis Figs. 6.8-6.10: the CPU memory timeline (categories, phases, Adam's state as an exact oracle), the CUDA
snapshot conversion on a hand-made snapshot, the tables, and the timeline over two real torchrun ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddubench.errors import DdubenchError
from ddubench.measure.memory_timeline import (
    LocalTraining,
    compact,
    timeline_from_cuda_snapshot,
    training_timeline,
)
from ddubench.report.thesis_memory import MB, thesis_fig6_8, thesis_fig6_8_table, thesis_fig6_10

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def unet_timeline() -> tuple[LocalTraining, dict]:
    torch.set_num_threads(1)
    training = LocalTraining("unet_D2", (1, 1), (32, 32), 2, None, CPU)
    return training, training_timeline(training.loss, training.backward, training.optimizer.step, CPU,
                                       training.external(), 2)


def test_timeline_marks_every_phase_in_order(unet_timeline) -> None:
    _, record = unet_timeline
    marks = record["marks"]
    assert [(m["iteration"], m["phase"]) for m in marks] == [
        (i, phase) for i in range(2) for phase in ("forward", "backward", "optimizer")]
    assert [m["sample"] for m in marks] == sorted(m["sample"] for m in marks)
    samples = record["samples"]
    assert record["peak_bytes"] == max(s["Total"] for s in samples)
    for mark in marks:  # each sample is tagged with the phase that was running
        assert samples[mark["sample"]]["phase"] == mark["phase"]


def test_adam_state_appears_after_the_first_step_and_is_two_moments_per_weight(unet_timeline) -> None:
    training, record = unet_timeline
    samples, marks = record["samples"], record["marks"]
    weight_bytes = sum(p.numel() * p.element_size() for p in training.model.parameters())
    first_forward = samples[: marks[1]["sample"]]
    assert all(s.get("Optstate", 0) == 0 for s in first_forward)
    second_forward = samples[marks[3]["sample"]]
    steps = len(list(training.model.parameters())) * 4  # Adam's step counter: one float32 a parameter
    assert second_forward["Optstate"] == 2 * weight_bytes + steps
    assert second_forward["Parameter"] == weight_bytes
    assert max(s.get("Activation", 0) for s in first_forward) > 0


def test_cuda_snapshot_to_timeline() -> None:
    snapshot = {"segments": [{"device": 0, "blocks": [{"size": 512, "state": "active_allocated"},
                                                      {"size": 256, "state": "inactive"}]},
                             {"device": 1, "blocks": [{"size": 999, "state": "active_allocated"}]}],
                "device_traces": [[{"action": "segment_alloc", "size": 2048}, {"action": "alloc", "size": 1024},
                                   {"action": "free_requested", "size": 1024},
                                   {"action": "free_completed", "size": 1024}, {"action": "alloc", "size": 256}],
                                  []]}
    # 512 live at the end = before + 1024 - 1024 + 256, so 256 were allocated before the recording
    assert timeline_from_cuda_snapshot(snapshot, 0) == [{"Total": 1280}, {"Total": 256}, {"Total": 512}]


def test_compact_keeps_every_peak(unet_timeline) -> None:
    _, record = unet_timeline
    small = compact(record, max_points=50)
    assert len(small["samples"]) <= 50 and small["samples_total"] == len(record["samples"])
    assert max(s["Total"] for s in small["samples"]) == record["peak_bytes"]
    assert [s["op"] for s in small["samples"]] == sorted(s["op"] for s in small["samples"])
    for sample in small["samples"]:  # each kept sample is the original one at its index
        assert {k: v for k, v in sample.items() if k != "op"} == record["samples"][sample["op"]]
    peaks = small["phase_peaks"]
    assert [(p["iteration"], p["phase"]) for p in peaks] == [(m["iteration"], m["phase"]) for m in record["marks"]]
    assert max(p["Total"] for p in peaks) == record["peak_bytes"]


def test_fig6_8_table_and_figure(unet_timeline, tmp_path: Path) -> None:
    training, raw = unet_timeline
    record = compact(raw, max_points=100)
    payload = {"records": [{**record, "spec": "unet_D2", "label": "U-Net(2)", "world_size": 1, "rank": 0,
                            "grid": [1, 1], "subimage": [32, 32], "batch_size": 2, "device": "cpu"}]}
    table = thesis_fig6_8_table([payload])
    assert len(table) == 6 and list(table["phase"][:3]) == ["forward", "backward", "optimizer"]
    assert table["peak_mb_ours"].max() == pytest.approx(record["peak_bytes"] / MB, abs=1e-3)
    thesis_fig6_8([payload], tmp_path / "fig6_8.pdf")
    assert (tmp_path / "fig6_8.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(DdubenchError, match="not written by `ddubench memory-timeline`"):
        thesis_fig6_8_table([{"records": [{"spec": "x"}]}])


def test_fig6_10_theory_tracks_the_measured_training_peak() -> None:
    table = thesis_fig6_10("ddunet_D4_F64_CY_W16", [64], CPU)
    assert table.loc[0, "theory_mb_ours"] > 30  # 7.8 MB of weights x 4 (weights, gradient, 2 Adam moments) + maps
    assert 0.9 < table.loc[0, "measured_over_theory"] < 1.1


def test_memory_timeline_over_two_torchrun_ranks(tmp_path: Path) -> None:
    from ddubench.io import read_json

    out = tmp_path / "timeline.json"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ddubench",
         "memory-timeline", "--distributed", "--model", "ddunet_D3_F16_CY", "--grid", "1x2", "--subimage", "32x32",
         "--iterations", "2", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    records = read_json(out)["records"]
    assert [(r["rank"], r["world_size"], r["backend"]) for r in records] == [(0, 2, "gloo"), (1, 2, "gloo")]
    assert all(len(r["marks"]) == 6 and len(r["phase_peaks"]) == 6 and r["peak_bytes"] > 0 for r in records)
