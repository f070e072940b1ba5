"""The scaling benchmark: per-rank peak inference memory falls as 1/P (deterministic tensor accounting)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import _dist_workers as workers
from _ranks import run_ranks
from ddubench.report.scaling import scaling_table


# P = 4 on 2 cores adds half a minute: marked slow (`-m slow`)
@pytest.mark.parametrize("rank_counts", [(1, 2), pytest.param((1, 2, 4), marks=pytest.mark.slow)])
def test_per_rank_memory_falls_as_one_over_p(rank_counts: tuple[int, ...], tmp_path: Path) -> None:
    records = []
    for ranks in rank_counts:
        results = run_ranks(ranks, workers.scaling_records, "ddunet_D3_F16_CY", 128, 256, tmp=tmp_path)
        assert all(status == "ok" for status, _ in results), results
        records += results[0][1]
    assert {r["subimages_per_rank"] for r in records} == {32 // ranks for ranks in rank_counts}
    table = scaling_table(records).set_index("P")
    assert table.loc[1, "mem_ratio_vs_1_rank"] == 1.0
    for ranks in rank_counts[1:]:
        # weights and the gathered coarse-network input are replicated; everything else is split
        assert 1.0 <= table.loc[ranks, "ratio_over_ideal"] < 1.3
        assert table.loc[ranks, "peak_mem_mb_ours"] == table.loc[ranks, "peak_mem_mb_smallest_rank"]
    assert table["time_s_ours"].gt(0).all() and table["peak_mem_mb_paper"].isna().all()
    # the analytic activation-size estimate agrees with the measurement within 10 %
    relative = (table["peak_mem_mb_estimate"] - table["peak_mem_mb_ours"]).abs() / table["peak_mem_mb_ours"]
    assert relative.lt(0.10).all(), relative


def test_cuda_rank_without_a_gpu_stops_with_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    """A torchrun rank asked for CUDA on a machine without one: one line naming the device, exit 2."""
    import torch

    from ddubench.cli import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(name, value)
    code = main(["scaling", "--model", "ddunet_D3_F16_CY", "--resolutions", "32x64", "--device", "cuda",
                 "--out", str(tmp_path / "s.json")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("ddubench: error: device 'cuda' requested but no CUDA GPU is visible")


def test_distributed_training_step_time_and_memory_per_rank(tmp_path: Path) -> None:
    """`measure step-time --distributed` over 1 and 2 gloo ranks (a 2x2 grid of RGB subimages): every rank's
    record, per-rank peak memory falling towards half (weights, optimizer state and gathered coarse input stay
    whole), and table rows."""
    import subprocess
    import sys

    from ddubench.io import read_json
    from ddubench.report.throughput import throughput_table

    payloads = []
    for ranks in (1, 2):
        out = tmp_path / f"P{ranks}.json"
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), "-m",
             "ddubench", "measure", "step-time", "--distributed", "--model", "ddunet_D3_F16_CY", "--grid", "2x2",
             "--subimage", "32x32", "--in-channels", "3", "--num-classes", "2",
             "--batch-size", "4", "--warmup", "1", "--repeats", "2", "--threads", "1", "--out", str(out)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-2000:]
        payloads.append(read_json(out))
    one, two = (p["records"] for p in payloads)
    assert [r["rank"] for r in two] == [0, 1] and {r["world_size"] for r in two} == {2}
    assert {r["backend"] for r in one + two} == {"gloo"} and {r["mode"] for r in two} == {"distributed"}
    assert two[0]["grid"] == [2, 2] and two[0]["subimage"] == [32, 32] and two[0]["io"] == [3, 2]
    peak_one, peak_two = one[0]["peak_mem_bytes"], max(r["peak_mem_bytes"] for r in two)
    assert two[0]["peak_mem_bytes"] == two[1]["peak_mem_bytes"]  # the two blocks of subimages are alike
    assert peak_one / 2 < peak_two < peak_one
    table = throughput_table(payloads).set_index("ranks")
    assert list(table.index) == [1, 2] and set(table["mode"]) == {"distributed"}
    assert table.loc[2, "peak_mem_mb_per_rank_ours"] == round(peak_two / 2**20, 2)
    assert table.loc[2, "step_time_ms_ours"] == round(max(r["step_time_median_s"] for r in two) * 1e3, 2)
    assert "2 gloo ranks" in table.loc[2, "note"]


@pytest.mark.parametrize("flags, message", [
    (["--grid", "2x2"], "--grid apply to step-time --distributed only"),
    (["--distributed", "--in-channels", "3"], "--in-channels and --num-classes go together"),
])
def test_step_time_layout_flags_are_checked_in_one_line(flags: list[str], message: str) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ddubench", "measure", "step-time", "--model", "ddunet_D3_F16_CY",
                             *flags], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_a_rank_share_that_does_not_divide_or_a_model_that_does_not_split_is_one_line() -> None:
    import torch

    from ddubench.distributed.runtime import DistContext
    from ddubench.errors import DdubenchError, ModelSpecError
    from ddubench.measure.scaling import measure_rank

    ctx = DistContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"), backend="gloo")
    with pytest.raises(DdubenchError, match="3 subimages cannot be shared equally by 2 ranks"):
        measure_rank("ddunet_D3_F4_CN", 32, 96, ctx, warmup=0, repeats=1)  # 1 x 3 subimages: one would be lost
    with pytest.raises(ModelSpecError, match="unet_D3 is not a DDU-Net"):
        measure_rank("unet_D3", 32, 64, ctx, warmup=0, repeats=1)


def test_zero_timed_passes_is_refused_by_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from ddubench.cli import main

    with pytest.raises(SystemExit):
        main(["scaling", "--model", "ddunet_D3_F16_CY", "--resolutions", "32x64", "--repeats", "0"])
    assert "--repeats: 0 must be at least 1" in capsys.readouterr().err
