"""Spatially parallel DDU-Net on 2 and 4 gloo ranks equals the single-process model exactly (float64)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import _dist_workers as workers
from _ranks import run_ranks
from ddubench.models import DDUNet, build_model
from ddubench.training.losses import dice_loss_from_terms, dice_terms

TOL = 1e-10
CASES = [(features, comm) for features in (0, 8) for comm in (True, False)]

# 4 ranks add a minute on 2 cores: marked slow (`-m slow`); 2 ranks already exercise every collective
WORLD_SIZES = [2, pytest.param(4, marks=pytest.mark.slow)]


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
    model = workers.case_model(case)
    model.train(case["train"])
    logits = model(case["x"])
    loss = dice_loss_from_terms(dice_terms(logits, case["masks"]))
    loss.backward()
    if case.get("step"):
        torch.optim.SGD(model.parameters(), lr=workers.SGD_LR).step()
    return {"logits": logits.detach(), "loss": loss.detach(),
            "grads": {n: p.grad for n, p in model.named_parameters()},
            "buffers": dict(model.named_buffers()),
            "params": {n: p.detach() for n, p in model.named_parameters()}}


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_outputs_and_gradients_equal_single_process(world_size: int, tmp_path: Path) -> None:
    cases = [_case(f, c, train) for f, c in CASES for train in (True, False)]
    results = run_ranks(world_size, workers.forward_backward, cases, tmp=tmp_path)
    for status, value in results:
        assert status == "ok", value
    for index, case in enumerate(cases):
        reference = _single_process(case)
        for rank, (_, per_case) in enumerate(results):
            got = per_case[index]
            kwargs = case["kwargs"]
            where = f"F={kwargs['features']} C={kwargs['communicate']} train={case['train']} rank {rank}"
            torch.testing.assert_close(got["logits"], reference["logits"], atol=TOL, rtol=0, msg=where)
            torch.testing.assert_close(got["loss"], reference["loss"], atol=TOL, rtol=0, msg=where)
            assert got["grads"].keys() == reference["grads"].keys()
            for name, grad in reference["grads"].items():
                torch.testing.assert_close(got["grads"][name], grad, atol=TOL, rtol=0, msg=f"{where} grad {name}")
            for name, buffer in reference["buffers"].items():
                torch.testing.assert_close(got["buffers"][name].to(buffer.dtype), buffer, atol=TOL, rtol=0,
                                           msg=f"{where} buffer {name}")


RESNET_SPECS = ("resnetddunet_R18_F16_CY", "resnetddunet_R18_F16_CY_BT")


def _resnet_cases() -> list[dict]:
    """The specs differ only in the frozen blocks' BatchNorm mode, so they share one state."""
    torch.manual_seed(1)
    kwargs = dict(in_channels=3, num_classes=7, subimage_size=(16, 16), dropout=0.0)
    model = build_model(RESNET_SPECS[0], **kwargs).double()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)  # 2 x 2 = 4 subimages of 16 px per image
    masks = torch.randint(0, 7, (2, 32, 32))
    return [{"spec": spec, "kwargs": kwargs, "state": model.state_dict(), "x": x, "masks": masks, "train": True,
             "step": True} for spec in RESNET_SPECS]


@pytest.mark.parametrize("world_size", WORLD_SIZES)
def test_resnet_ddunet_equals_single_process_and_keeps_the_encoder_frozen(world_size: int, tmp_path: Path) -> None:
    """Frozen ResNet blocks stay frozen on every rank: no gradient, unchanged after a step, and (unless _BT)
    BatchNorm in eval mode with unchanged running statistics; everything else equals one process."""
    cases = _resnet_cases()
    results = run_ranks(world_size, workers.forward_backward, cases, tmp=tmp_path)
    assert all(status == "ok" for status, _ in results), results
    for index, case in enumerate(cases):
        reference = _single_process(case)
        frozen = [name for name, grad in reference["grads"].items() if grad is None]
        assert len(frozen) == 45 and all(name.startswith("encoder.block") for name in frozen)
        for name in frozen:  # the single process does not train its frozen blocks
            assert torch.equal(reference["params"][name], case["state"][name])
        if not case["spec"].endswith("_BT"):
            for name, buffer in reference["buffers"].items():
                if name.startswith("encoder.block"):
                    assert torch.equal(buffer, case["state"][name]), name
        for rank, (_, per_case) in enumerate(results):
            got, where = per_case[index], f"{case['spec']} rank {rank}"
            torch.testing.assert_close(got["logits"], reference["logits"], atol=TOL, rtol=0, msg=where)
            torch.testing.assert_close(got["loss"], reference["loss"], atol=TOL, rtol=0, msg=where)
            assert [n for n, g in got["grads"].items() if g is None] == frozen, where
            for name, grad in reference["grads"].items():
                if grad is not None:
                    torch.testing.assert_close(got["grads"][name], grad, atol=TOL, rtol=0, msg=f"{where} {name}")
            for name, param in reference["params"].items():
                torch.testing.assert_close(got["params"][name], param, atol=TOL, rtol=0, msg=f"{where} {name}")
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


@pytest.mark.parametrize("world_size", WORLD_SIZES)
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


@pytest.fixture
def one_rank_group(tmp_path: Path):
    """A gloo process group of this process alone (what torchrun --nproc-per-node 1 gives)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.float16
def test_sync_batchnorm_reduces_float16_statistics_in_float32(one_rank_group) -> None:
    """66,560 float16 pixels per channel: a float16 count would be inf (max 65,504) and the mean NaN."""
    from ddubench.distributed.batchnorm import SyncBatchNorm2d

    torch.manual_seed(0)
    x = (torch.randn(1, 2, 256, 260) * 3 + 5).half()
    synced, plain = SyncBatchNorm2d(2), torch.nn.BatchNorm2d(2)
    out = synced(x)
    reference = plain(x.float())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, atol=4e-3, rtol=0)  # float16 rounding of values ~ 4
    torch.testing.assert_close(synced.running_mean, plain.running_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(synced.running_var, plain.running_var, atol=1e-4, rtol=0)


@pytest.mark.float16
def test_sync_batchnorm_under_cpu_autocast_stays_finite(one_rank_group) -> None:
    """The AMP path: float16 convolution output into SyncBatchNorm, float16 out, finite, gradients too."""
    from ddubench.distributed.batchnorm import convert_batchnorm

    torch.manual_seed(0)
    net = convert_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2)))
    with torch.autocast("cpu", dtype=torch.float16):
        out = net(torch.rand(1, 1, 256, 260) * 100)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    out.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_sync_batchnorm_keeps_no_more_for_backward_than_batchnorm(one_rank_group) -> None:
    """Built from autograd operations it kept three more full-size tensors per layer (+49% of a rank's training
    peak, thesis Fig. 6.9); the autograd function keeps the input and two per-channel vectors, like BatchNorm2d,
    and its gradients stay BatchNorm2d's."""
    from ddubench.distributed.batchnorm import SyncBatchNorm2d

    def saved_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
        seen: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            seen[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            (module(x) * upstream).sum().backward()  # the output's gradient is `upstream`
        return sum(seen.values())

    torch.manual_seed(0)
    x, upstream = torch.randn(2, 8, 64, 64), torch.randn(2, 8, 64, 64)
    synced, plain = SyncBatchNorm2d(8), torch.nn.BatchNorm2d(8)
    x_synced, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    synced_bytes, plain_bytes = saved_bytes(synced, x_synced), saved_bytes(plain, x_plain)
    assert synced_bytes <= plain_bytes + 1024, (synced_bytes, plain_bytes)  # + per-channel vectors
    torch.testing.assert_close(x_synced.grad, x_plain.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(synced.weight.grad, plain.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(synced.bias.grad, plain.bias.grad, rtol=1e-4, atol=1e-4)


def test_gather_batch_needs_no_private_torch_api(one_rank_group, monkeypatch) -> None:
    """The bottleneck exchange uses public collectives that every supported torch has (the private
    ``all_gather_single_autograd`` is missing before torch 2.12)."""
    import torch.distributed._functional_collectives as functional

    from ddubench.distributed.collectives import gather_batch

    monkeypatch.delattr(functional, "all_gather_single_autograd", raising=False)
    x = torch.arange(6.0).reshape(2, 3).requires_grad_()
    gathered = gather_batch(x)
    assert torch.equal(gathered, x.detach())
    (gathered * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]))


def test_replicas_stay_identical_with_dropout_in_the_coarse_network(tmp_path: Path) -> None:
    """Every rank runs the coarse network over the gathered map; with per-rank dropout streams its masks, its
    output and its BatchNorm running statistics differed between ranks (the saved rank-0 model then differed
    from the replicas that had evaluated). Rank 0's seed is now broadcast for the coarse network."""
    results = run_ranks(2, workers.replica_state_after_dropout_steps, "ddunet_D3_F8_CY", 3, tmp=tmp_path)
    assert [status for status, _ in results] == ["ok", "ok"], results
    (_, rank0), (_, rank1) = results
    differing = [name for name, tensor in rank0.items() if not torch.equal(tensor, rank1[name])]
    assert differing == []


def test_resumed_ranks_restore_their_own_rng_states(tmp_path: Path) -> None:
    """2 ranks with dropout, killed after epoch 1 and resumed, equal an uninterrupted run: every rank
    continues its own dropout stream (before, every rank restored rank 0's)."""
    import csv
    import tempfile

    from ddubench.training.checkpoint import load_checkpoint

    from conftest import write_tiny_dataset

    dataset = write_tiny_dataset(tmp_path / "k4", k=4)
    config = dict(lr=0.01, max_epochs=2, min_epochs=0, batch_size=8, eval_batch_size=16, dropout=0.3, seed=5)
    spec = "ddunet_D3_F4_CY"

    def run(fn, *head, name: str) -> list[tuple]:
        results = Path(tempfile.mkdtemp(dir=tmp_path))  # each launch's own rank results
        return run_ranks(2, fn, *head, spec, str(dataset), str(tmp_path / name), str(tmp_path / f"{name}.json"),
                         config, tmp=results)

    assert [status for status, _ in run(workers.train_distributed, name="whole")] == ["ok", "ok"]
    killed = run(workers.train_killed_after, 1, name="resumed")
    assert all(status == "error" and "killed after epoch 1" in value for status, value in killed), killed
    last = load_checkpoint(tmp_path / "resumed/last.pt")
    ranks = last["rng"]["ranks"]
    assert last["epoch"] == 1 and len(ranks) == 2 and ranks[0]["cuda"] is None
    assert not torch.equal(ranks[0]["torch"], ranks[1]["torch"])  # per-rank dropout seeds
    assert [status for status, _ in run(workers.train_distributed, name="resumed")] == ["ok", "ok"]

    def history(name: str) -> list[dict]:
        with (tmp_path / name / "history.csv").open() as handle:
            return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in csv.DictReader(handle)]

    assert len(history("whole")) == 2 and history("resumed") == history("whole")
    whole, resumed = load_checkpoint(tmp_path / "whole/best.pt"), load_checkpoint(tmp_path / "resumed/best.pt")
    assert resumed["epoch"] == whole["epoch"]
    for name, tensor in whole["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name


def test_ranks_that_cannot_share_the_subimages_are_refused_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    """3 subimages over 2 ranks: one line when the model is wrapped, before any collective or epoch."""
    from ddubench.distributed.runtime import DistContext
    from ddubench.errors import DdubenchError
    from ddubench.training.run import train_model
    from ddubench.training.trainer import TrainConfig

    ctx = DistContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"), backend="gloo")
    with pytest.raises(DdubenchError, match="3 subimages cannot be shared equally by 2 ranks"):
        train_model("ddunet_D3_F4_CY", tiny_dataset, tmp_path / "run", TrainConfig(max_epochs=1),
                    tmp_path / "run/train.json", progress=False, ctx=ctx)
    assert not (tmp_path / "run/history.csv").exists()
