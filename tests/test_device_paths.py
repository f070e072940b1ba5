"""GPU and cluster code paths checked on the CPU: the torch floor, the device of a torchrun rank, the NCCL
group's device binding, `measure step-time --device`, and the CUDA generator in checkpoints."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from ddubench.cli import main
from ddubench.compat import MIN_TORCH, check_torch
from ddubench.distributed import runtime
from ddubench.errors import DdubenchError

# ------------------------------------------------------------------------------------ torch version floor


@pytest.mark.parametrize("version", ["2.5.0", "2.5.1+cu121", "2.14.1", "3.0.0a0"])
def test_supported_torch_versions_pass(version: str) -> None:
    check_torch(version)


@pytest.mark.parametrize("version", ["2.4.1", "2.4.0+cu118", "1.13.1", "nonsense"])
def test_older_torch_stops_with_one_line(version: str) -> None:
    with pytest.raises(DdubenchError, match=rf"^torch {re.escape(version)} is too old: ddubench needs torch >= 2\.5"):
        check_torch(version)


def test_the_command_line_checks_the_installed_torch_first(monkeypatch, capsys, repo_root: Path) -> None:
    monkeypatch.setattr(torch, "__version__", "2.4.1")
    assert main(["validate-config", str(repo_root / "config/smoke.yaml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddubench: error: torch 2.4.1 is too old"), lines


def test_pyproject_floor_is_the_checked_one(repo_root: Path) -> None:
    dependencies = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"torch>={MIN_TORCH[0]}.{MIN_TORCH[1]}" in dependencies


def test_no_private_functional_collectives(repo_root: Path) -> None:
    """``_functional_collectives`` names change between releases (all_gather_single_autograd is 2.12+)."""
    sources = (repo_root / "src/ddubench").rglob("*.py")
    assert not [path.name for path in sources if "_functional_collectives" in path.read_text()]


# ------------------------------------------------------------------------------------ devices under torchrun


@pytest.fixture
def two_gpus(monkeypatch) -> None:
    """Pretend two CUDA devices are visible (nothing here touches a real one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_each_rank_computes_on_its_local_gpu(two_gpus) -> None:
    assert runtime.rank_device("cuda", 1) == torch.device("cuda", 1)
    assert runtime.rank_device("auto", 0) == torch.device("cuda", 0)
    assert runtime.rank_device("cpu", 1) == torch.device("cpu")


@pytest.mark.parametrize(("device", "local_rank", "message"), [
    ("cuda:1", 0, r"^--device cuda:1 under torchrun: each rank uses cuda:<LOCAL_RANK>; pass --device cuda .*"
                  "CUDA_VISIBLE_DEVICES"),
    ("cuda", 2, r"^rank with LOCAL_RANK 2 has no GPU of its own \(2 visible\); start at most 2 ranks per node"),
    ("tpu", 0, r"^--device 'tpu' under torchrun is not cuda, auto or cpu"),
])
def test_a_device_a_rank_cannot_use_is_refused(two_gpus, device: str, local_rank: int, message: str) -> None:
    with pytest.raises(DdubenchError, match=message):
        runtime.rank_device(device, local_rank)


def test_auto_without_a_gpu_is_the_cpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert runtime.rank_device("auto", 3) == torch.device("cpu")


@pytest.mark.parametrize(("device", "backend", "device_id"), [
    ("cuda", "nccl", torch.device("cuda", 1)), ("cpu", "gloo", None),
])
def test_the_nccl_group_is_bound_to_the_ranks_gpu(two_gpus, monkeypatch, device: str, backend: str,
                                                   device_id: torch.device | None) -> None:
    calls: list[tuple] = []
    monkeypatch.setenv("RANK", "1"), monkeypatch.setenv("WORLD_SIZE", "2"), monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1"), monkeypatch.setenv("MASTER_PORT", "1")
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda b, **kw: calls.append((b, kw["device_id"])))
    ctx = runtime.init_from_env(device)
    assert (ctx.backend, ctx.device, ctx.rank, ctx.local_rank) == (backend, device_id or torch.device("cpu"), 1, 1)
    expected = [(backend, device_id)]
    assert calls == ([("set_device", device_id)] + expected if device_id else expected)


# ------------------------------------------------------------------------------------ measure step-time --device


def test_step_time_runs_on_the_requested_device(tmp_path: Path, capsys) -> None:
    out = tmp_path / "step.json"
    assert main(["measure", "step-time", "--model", "ddunet_D2_F4_CY_W4", "--k", "2", "--subimage-size", "16",
                 "--batch-size", "2", "--warmup", "0", "--repeats", "2", "--device", "cpu", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["repeats"] == 2 and record["step_time_median_s"] > 0
    assert "(eager, cpu)" in capsys.readouterr().out


def test_step_time_on_a_missing_gpu_stops_with_one_line(tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert main(["measure", "step-time", "--model", "unet_D2", "--device", "cuda:0",
                 "--out", str(tmp_path / "x.json")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["ddubench: error: device 'cuda:0' requested but no CUDA GPU is visible; use --device cpu or auto"]
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------------------------ CUDA generator in last.pt


def test_rng_state_includes_the_cuda_generator_of_a_cuda_device(monkeypatch) -> None:
    from ddubench.training import rng

    restored: list[tuple] = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: torch.tensor([7, device.index], dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state.tolist(), device)))
    state = rng.capture(torch.device("cuda", 1))
    assert state["cuda"].tolist() == [7, 1] and torch.equal(state["torch"], torch.get_rng_state())
    rng.restore(state, torch.device("cuda", 1))
    assert restored == [([7, 1], torch.device("cuda", 1))]
    rng.restore(state, torch.device("cpu"))  # a CUDA state is not forced onto a CPU run
    assert len(restored) == 1 and rng.capture(torch.device("cpu"))["cuda"] is None


def test_trainer_checkpoints_the_state_capture_returns(monkeypatch, tiny_dataset: Path, tmp_path: Path) -> None:
    """``last.pt`` holds what :func:`rng.capture` gives for the trainer's device, and resume hands it back."""
    from ddubench.training import trainer as trainer_module
    from ddubench.training.checkpoint import load_checkpoint
    from ddubench.training.run import train_model
    from ddubench.training.trainer import TrainConfig

    marker = {"torch": torch.get_rng_state(), "cuda": torch.tensor([42], dtype=torch.uint8)}
    monkeypatch.setattr(trainer_module, "capture", lambda device: marker)
    restored: list = []
    monkeypatch.setattr(trainer_module, "restore", lambda state, device: restored.append(state["cuda"].tolist()))
    config = TrainConfig(max_epochs=2, min_epochs=0, batch_size=16, eval_batch_size=16, dropout=0.1)
    original = trainer_module.Trainer.train_epoch

    def stop_after_one(self, train):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self, train)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        train_model("unet_D2_W4", tiny_dataset, tmp_path / "run", config, tmp_path / "s.json", progress=False)
    ranks = load_checkpoint(tmp_path / "run/last.pt")["rng"]["ranks"]
    assert len(ranks) == 1 and ranks[0]["cuda"].tolist() == [42]
    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", original)
    train_model("unet_D2_W4", tiny_dataset, tmp_path / "run", config, tmp_path / "s.json", progress=False)
    assert restored == [[42]]
