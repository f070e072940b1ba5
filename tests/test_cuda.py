"""What only a GPU shows (marker ``cuda``; skipped without CUDA; ``make gpu-check`` runs them), plus the
float16 paths the CPU can emulate (marker ``float16``; they run everywhere).

The ``cuda`` tests are written for one GPU; those that need several NCCL ranks skip below two devices.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import _dist_workers as workers
from _ranks import run_ranks
from conftest import write_tiny_dataset

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
needs_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs (one NCCL rank each)")
SPEC = "ddunet_D3_F4_CY"
# 16 validation images of 32 x 512 = 262,144 pixels per class sum: beyond float16's 65,504
CONFIG = dict(lr=0.01, max_epochs=2, min_epochs=0, batch_size=8, eval_batch_size=16, dropout=0.2, seed=1)


def _train(data: Path, run_dir: Path, **kwargs) -> dict:
    from ddubench.training.run import train_model
    from ddubench.training.trainer import TrainConfig

    return train_model(SPEC, data, run_dir, TrainConfig(**CONFIG), run_dir / "train.json", progress=False, **kwargs)


def _history(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "history.csv").open() as handle:
        return [{k: float(v) for k, v in row.items() if k != "epoch_time_s"} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def k16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("k16"), k=16)


# ------------------------------------------------------------------------------------ CPU-emulated float16


@pytest.mark.float16
def test_ddunet_forward_under_cpu_float16_autocast_is_float16_and_finite() -> None:
    from ddubench.models import build_model

    torch.manual_seed(0)
    model = build_model(SPEC, in_channels=1, num_classes=3, subimage_size=(32, 32)).train()
    with torch.autocast("cpu", dtype=torch.float16):
        logits = model(torch.rand(2, 1, 32, 512))
    assert logits.dtype == torch.float16 and torch.isfinite(logits).all()


# ------------------------------------------------------------------------------------ one GPU


@pytest.mark.cuda
@needs_cuda
def test_amp_training_epoch_has_a_finite_validation_loss_and_writes_best(k16: Path, tmp_path: Path) -> None:
    summary = _train(k16, tmp_path / "amp", device="cuda", amp="on")
    assert summary["amp"] is True and math.isfinite(summary["result"]["best_val_loss"])
    assert all(math.isfinite(row["val_loss"]) for row in _history(tmp_path / "amp"))
    assert (tmp_path / "amp/best.pt").exists()


@pytest.mark.cuda
@needs_cuda
def test_compiled_training_on_cuda(k16: Path, tmp_path: Path) -> None:
    summary = _train(k16, tmp_path / "compiled", device="cuda", compile_model=True)
    assert summary["compiled"] is True and math.isfinite(summary["result"]["best_val_loss"])


@pytest.mark.cuda
@needs_cuda
def test_resume_on_cuda_equals_an_uninterrupted_run(k16: Path, tmp_path: Path, monkeypatch) -> None:
    """Dropout draws from the CUDA generator: last.pt must restore it (deterministic cuDNN for the comparison)."""
    from ddubench.training.checkpoint import load_checkpoint
    from ddubench.training.trainer import Trainer

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    _train(k16, tmp_path / "whole", device="cuda")
    original = Trainer.train_epoch

    def killed(self, train):
        if self.epoch == 1:
            raise workers.Killed("killed after epoch 1")
        return original(self, train)

    monkeypatch.setattr(Trainer, "train_epoch", killed)
    with pytest.raises(workers.Killed):
        _train(k16, tmp_path / "resumed", device="cuda")
    assert load_checkpoint(tmp_path / "resumed/last.pt")["rng"]["ranks"][0]["cuda"] is not None
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert _train(k16, tmp_path / "resumed", device="cuda")["resumed"] is True
    whole, resumed = _history(tmp_path / "whole"), _history(tmp_path / "resumed")
    for a, b in zip(whole, resumed, strict=True):
        assert a == pytest.approx(b, rel=1e-5)
    best_whole, best_resumed = (load_checkpoint(tmp_path / f"{n}/best.pt") for n in ("whole", "resumed"))
    for name, tensor in best_whole["model"].items():
        torch.testing.assert_close(best_resumed["model"][name], tensor, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.cuda
@needs_cuda
def test_sync_batchnorm_on_one_nccl_rank(tmp_path: Path) -> None:
    """float16 input on the GPU, 66,560 pixels per channel, over a real NCCL group of one rank."""
    import torch.distributed as dist

    from ddubench.distributed.batchnorm import SyncBatchNorm2d

    device = torch.device("cuda", 0)
    dist.init_process_group("nccl", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1,
                            device_id=device)
    try:
        torch.manual_seed(0)
        x = (torch.randn(1, 2, 256, 260, device=device) * 3 + 5).half()
        synced, plain = SyncBatchNorm2d(2).to(device), torch.nn.BatchNorm2d(2).to(device)
        out = synced(x)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), plain(x.float()), atol=4e-3, rtol=0)
        torch.testing.assert_close(synced.running_var, plain.running_var, atol=1e-4, rtol=0)
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
@needs_cuda
def test_cuda_peak_memory_is_what_the_memory_model_predicts() -> None:
    """Inference of U-Net(3) on one 1024 px image: max_memory_allocated against the analytic live-tensor peak
    (the allocator adds its rounding and cuDNN workspace, so the measurement may exceed it a little)."""
    from ddubench.analysis.memory_model import memory_model
    from ddubench.measure.memory import peak_memory
    from ddubench.models import build_model

    device = torch.device("cuda", 0)
    model = build_model("unet_D3", in_channels=3, num_classes=3, subimage_size=(1024, 1024)).eval()
    predicted = memory_model(model, (1024, 1024)).inference_peak_bytes
    model = model.to(device)
    x = torch.rand(1, 3, 1024, 1024, device=device)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    measured = peak_memory(forward, device)["peak_bytes"]
    print(f"CUDA peak {measured / 2**20:.1f} MiB, memory model {predicted / 2**20:.1f} MiB "
          f"(ratio {measured / predicted:.3f})")
    assert predicted * 0.98 <= measured <= predicted * 1.25


# ------------------------------------------------------------------------------------ several GPUs


@pytest.mark.cuda
@needs_two_gpus
def test_ddunet_on_two_nccl_ranks_equals_one_gpu(tmp_path: Path) -> None:
    from ddubench.models import DDUNet
    from ddubench.training.losses import dice_loss_from_terms, dice_terms

    torch.manual_seed(0)
    kwargs = dict(in_channels=1, num_classes=3, depth=2, base_width=4, features=8, communicate=True,
                  subimage_size=(16, 16), dropout=0.0)
    case = {"kwargs": kwargs, "state": DDUNet(**kwargs).double().state_dict(), "train": True,
            "x": torch.rand(2, 1, 32, 64, dtype=torch.float64), "masks": torch.randint(0, 3, (2, 32, 64))}
    results = run_ranks(2, workers.forward_backward, [case], "sync", "cuda", tmp=tmp_path)
    assert all(status == "ok" for status, _ in results), results
    model = workers.case_model(case).train()
    logits = model(case["x"])
    dice_loss_from_terms(dice_terms(logits, case["masks"])).backward()
    for _, (got,) in results:
        torch.testing.assert_close(got["logits"], logits.detach(), atol=1e-10, rtol=0)
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(got["grads"][name], parameter.grad, atol=1e-10, rtol=0, msg=name)
