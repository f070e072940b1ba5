"""Functions that tests run on every rank (importable by spawned processes)."""

from __future__ import annotations

from pathlib import Path

import torch

from ddubench.distributed.ddunet import DistributedDDUNet
from ddubench.distributed.runtime import distributed
from ddubench.distributed.training import SpatialParallel
from ddubench.models import DDUNet, build_model
from ddubench.training.losses import dice_loss_from_terms, dice_terms

SGD_LR = 0.1  # the plain step cases with ``"step": True`` take after the backward


def case_model(case: dict) -> torch.nn.Module:
    """The float64 model of a test case: ``DDUNet(**kwargs)``, or ``build_model(spec, **kwargs)`` with a spec,
    holding the case's state (built on the meta device: no time spent on an initialisation then overwritten)."""
    with torch.device("meta"):
        model = build_model(case["spec"], **case["kwargs"]) if "spec" in case else DDUNet(**case["kwargs"])
    model = model.to_empty(device="cpu").double()
    model.load_state_dict(case["state"])
    return model


def forward_backward(cases: list[dict], bn: str = "sync", device: str = "cpu") -> list[dict]:
    """For each case (model, state, batch): full logits, loss, summed gradients (None: no gradient) and, after
    an SGD step where the case asks for one, the parameters, on this rank (``device``: cpu = gloo, cuda = NCCL;
    results on the CPU)."""
    results = []
    with distributed(device=device) as ctx:
        for case in cases:
            dist_model = DistributedDDUNet(case_model(case).to(ctx.device), ctx, bn).train(case["train"])
            parallel = SpatialParallel(ctx, bn)
            x, masks = case["x"].to(ctx.device), case["masks"].to(ctx.device)
            local = dist_model(x)
            loss = dice_loss_from_terms(parallel.reduce_terms(dice_terms(local, dist_model.local_target(masks))))
            loss.backward()
            parallel.after_backward(dist_model)
            if case.get("step"):
                torch.optim.SGD(dist_model.parameters(), lr=SGD_LR).step()
            logits = dist_model.gather_output(local.detach(), x.shape[0], dist_model.grid(*x.shape[-2:]))
            results.append({
                "logits": logits.cpu(),
                "loss": loss.detach().cpu(),
                "grads": {name: None if p.grad is None else p.grad.cpu() for name, p in dist_model.named_parameters()},
                "buffers": {name: b.cpu().clone() for name, b in dist_model.named_buffers()},
                "params": {name: p.detach().cpu().clone() for name, p in dist_model.named_parameters()},
            })
    return results


def train_distributed(spec: str, data_dir: str, run_dir: str, summary: str, config: dict, bn: str = "sync") -> dict:
    """Run the real training entry point on this rank."""
    from ddubench.training.run import train_model
    from ddubench.training.trainer import TrainConfig

    with distributed(device="cpu") as ctx:
        return train_model(spec, Path(data_dir), Path(run_dir), TrainConfig(**config), Path(summary),
                           progress=False, ctx=ctx, bn=bn)


def train_distributed_float64(*args, **kwargs) -> dict:
    """:func:`train_distributed` with float64 models and data (for exact comparisons)."""
    torch.set_default_dtype(torch.float64)
    return train_distributed(*args, **kwargs)


def train_with_failing_rank(fail_rank: int, fail_epoch: int, *args, **kwargs) -> dict:
    """:func:`train_distributed`, but rank ``fail_rank`` raises a data error when epoch ``fail_epoch`` starts."""
    import os

    from ddubench.errors import DataError

    if int(os.environ["RANK"]) == fail_rank:
        _raise_when_epoch_starts(fail_epoch, DataError(f"rank {fail_rank}: simulated unreadable batch"))
    return train_distributed(*args, **kwargs)


def _raise_when_epoch_starts(epoch: int, error: Exception) -> None:
    """Make this process's Trainer raise ``error`` when epoch ``epoch`` (0-based count of finished ones) starts."""
    from ddubench.training.trainer import Trainer

    original = Trainer.train_epoch

    def raising(self, train):
        if self.epoch == epoch:
            raise error
        return original(self, train)

    Trainer.train_epoch = raising


def scaling_records(spec: str, height: int, width: int) -> list[dict]:
    """Every rank's scaling-benchmark record for one image size."""
    from ddubench.measure.scaling import gather_records, measure_rank

    with distributed(device="cpu") as ctx:
        return gather_records(measure_rank(spec, height, width, ctx, warmup=0, repeats=2))


class Killed(Exception):
    """Stands for the process being killed between two epochs."""


def train_killed_after(epochs: int, *args, **kwargs) -> dict:
    """:func:`train_distributed`, but every rank dies once ``epochs`` epochs are finished and checkpointed."""
    _raise_when_epoch_starts(epochs, Killed(f"killed after epoch {epochs}"))
    return train_distributed(*args, **kwargs)


def replica_state_after_dropout_steps(spec: str, steps: int) -> dict:
    """This rank's replica (parameters and buffers) after ``steps`` Adam steps of a DDU-Net with dropout 0.3,
    every rank seeded differently, as the trainer seeds them."""
    import os

    from ddubench.measure.train_ranks import rank_training

    with distributed(device="cpu") as ctx:
        training = rank_training(spec, ctx, (1, 4), (32, 32), batch_size=4)
        for module in training.model.modules():
            if isinstance(module, torch.nn.Dropout2d):
                module.p = 0.3
        torch.manual_seed(100 + int(os.environ["RANK"]))  # per-rank dropout streams
        for _ in range(steps):
            training.step()
        return {name: tensor.clone() for name, tensor in training.model.state_dict().items()}
