"""Spatially parallel DDU-Net on 2 and 4 gloo ranks equals the single-process model exactly (float64)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import _dist_workers as workers
from _ranks import run_ranks
from ddubench.models import DDUNet
from ddubench.training.losses import dice_loss_from_terms, dice_terms

TOL = 1e-10
CASES = [(features, comm) for features in (0, 8) for comm in (True, False)]


def _case(features: int, communicate: bool, train: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    kwargs = dict(in_channels=1, num_classes=3, depth=2, base_width=4, features=features,
                  communicate=communicate, subimage_size=(16, 16), dropout=0.0)
    model = DDUNet(**kwargs).double()
    # non-trivial BatchNorm state so eval mode is tested with real running statistics
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.rand(2, 1, 32, 64, dtype=torch.float64)  # 2 x 4 = 8 subimages per image
    masks = torch.randint(0, 3, (2, 32, 64))
    return {"kwargs": kwargs, "state": model.state_dict(), "x": x, "masks": masks, "train": train}


def _single_process(case: dict) -> dict:
    model = DDUNet(**case["kwargs"]).double()
    model.load_state_dict(case["state"])
    model.train(case["train"])
    logits = model(case["x"])
    loss = dice_loss_from_terms(dice_terms(logits, case["masks"]))
    loss.backward()
    return {"logits": logits.detach(), "loss": loss.detach(),
            "grads": {n: p.grad for n, p in model.named_parameters()},
            "buffers": dict(model.named_buffers())}


@pytest.mark.parametrize("world_size", [2, 4])
def test_outputs_and_gradients_equal_single_process(world_size: int, tmp_path: Path) -> None:
    cases = [_case(f, c, train) for f, c in CASES for train in (True, False)]
    results = run_ranks(world_size, workers.forward_backward, cases, tmp=tmp_path)
    for status, value in results:
        assert status == "ok", value
    for index, case in enumerate(cases):
        reference = _single_process(case)
        for rank, (_, per_case) in enumerate(results):
            got = per_case[index]
            where = f"F={case['kwargs']['features']} C={case['kwargs']['communicate']} train={case['train']} rank {rank}"
            torch.testing.assert_close(got["logits"], reference["logits"], atol=TOL, rtol=0, msg=where)
            torch.testing.assert_close(got["loss"], reference["loss"], atol=TOL, rtol=0, msg=where)
            assert got["grads"].keys() == reference["grads"].keys()
            for name, grad in reference["grads"].items():
                torch.testing.assert_close(got["grads"][name], grad, atol=TOL, rtol=0, msg=f"{where} grad {name}")
            for name, buffer in reference["buffers"].items():
                torch.testing.assert_close(got["buffers"][name].to(buffer.dtype), buffer, atol=TOL, rtol=0,
                                           msg=f"{where} buffer {name}")


def test_local_batchnorm_differs_in_training_but_not_in_eval(tmp_path: Path) -> None:
    cases = [_case(8, True, train=True), _case(8, True, train=False)]
    results = run_ranks(2, workers.forward_backward, cases, "local", tmp=tmp_path)
    assert all(status == "ok" for status, _ in results), results
    train_ref, eval_ref = _single_process(cases[0]), _single_process(cases[1])
    assert (results[0][1][0]["logits"] - train_ref["logits"]).abs().max() > 1e-6
    torch.testing.assert_close(results[0][1][1]["logits"], eval_ref["logits"], atol=TOL, rtol=0)


@pytest.mark.parametrize("world_size", [2, 4])
def test_training_steps_match_single_process(world_size: int, tmp_path: Path) -> None:
    from ddubench.training.checkpoint import load_checkpoint
    from ddubench.training.run import train_model
    from ddubench.training.trainer import TrainConfig

    from conftest import write_tiny_dataset

    dataset = write_tiny_dataset(tmp_path / "k4", k=4)
    config = dict(lr=0.01, max_epochs=2, min_epochs=0, batch_size=8, eval_batch_size=16, dropout=0.0, seed=3)
    spec = "ddunet_D3_F4_CY"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        train_model(spec, dataset, tmp_path / "single", TrainConfig(**config), tmp_path / "single.json",
                    progress=False)
    finally:
        torch.set_default_dtype(previous)
    results = run_ranks(world_size, workers.train_distributed_float64, spec, str(dataset), str(tmp_path / "dist"),
                        str(tmp_path / "dist.json"), config, tmp=tmp_path)
    assert all(status == "ok" for status, _ in results), results
    single = load_checkpoint(tmp_path / "single/best.pt")
    spread = load_checkpoint(tmp_path / "dist/best.pt")
    assert spread["metadata"]["world_size"] == world_size and spread["epoch"] == single["epoch"] == 2
    for name, tensor in single["model"].items():
        torch.testing.assert_close(spread["model"][name], tensor, atol=1e-9, rtol=0, msg=name)
    # the distributed checkpoint is an ordinary single-process DDU-Net checkpoint
    from ddubench.models import DDUNet
    from ddubench.training.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(tmp_path / "dist/best.pt")
    assert type(model) is DDUNet


def test_failing_rank_gives_clear_errors_and_intact_checkpoints(tiny_dataset: Path, tmp_path: Path) -> None:
    from ddubench.training.checkpoint import load_checkpoint

    config = dict(lr=0.01, max_epochs=4, min_epochs=0, batch_size=8, eval_batch_size=16, dropout=0.0, seed=0)
    run_dir = tmp_path / "run"
    results = run_ranks(3, workers.train_with_failing_rank, 1, 2, "ddunet_D3_F4_CY", str(tiny_dataset),
                        str(run_dir), str(tmp_path / "summary.json"), config, tmp=tmp_path, timeout=120)
    statuses = [status for status, _ in results]
    assert statuses == ["error"] * 3, results
    assert "simulated unreadable batch" in results[1][1]
    for rank in (0, 2):
        message = results[rank][1].splitlines()[0]
        assert message.startswith("DdubenchError: rank "), message
        assert "lost contact with another rank in epoch 3" in message and "last.pt" in message
    last = load_checkpoint(run_dir / "last.pt")
    assert last["epoch"] == 2
    assert load_checkpoint(run_dir / "best.pt")["epoch"] in (1, 2)
    assert not (tmp_path / "summary.json").exists()
    assert not list(run_dir.glob(".*.tmp"))
