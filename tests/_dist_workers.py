"""Functions that tests run on every rank (importable by spawned processes)."""

from __future__ import annotations

from pathlib import Path

import torch

from ddubench.distributed.ddunet import DistributedDDUNet
from ddubench.distributed.runtime import distributed
from ddubench.distributed.training import SpatialParallel
from ddubench.models import DDUNet
from ddubench.training.losses import dice_loss_from_terms, dice_terms


def forward_backward(cases: list[dict], bn: str = "sync") -> list[dict]:
    """For each case (model kwargs, state, batch): full logits, loss and summed gradients on this rank."""
    results = []
    with distributed(device="cpu") as ctx:
        for case in cases:
            model = DDUNet(**case["kwargs"]).double()
            model.load_state_dict(case["state"])
            dist_model = DistributedDDUNet(model, ctx, bn).train(case["train"])
            parallel = SpatialParallel(ctx, bn)
            x, masks = case["x"], case["masks"]
            local = dist_model(x)
            loss = dice_loss_from_terms(parallel.reduce_terms(dice_terms(local, dist_model.local_target(masks))))
            loss.backward()
            parallel.after_backward(dist_model)
            logits = dist_model.gather_output(local.detach(), x.shape[0], dist_model.grid(*x.shape[-2:]))
            results.append({
                "logits": logits,
                "loss": loss.detach(),
                "grads": {name: p.grad.clone() for name, p in dist_model.named_parameters()},
                "buffers": {name: b.clone() for name, b in dist_model.named_buffers()},
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
    from ddubench.training.trainer import Trainer

    if int(os.environ["RANK"]) == fail_rank:
        original = Trainer.train_epoch

        def failing(self, train):
            if self.epoch == fail_epoch:
                raise DataError(f"rank {fail_rank}: simulated unreadable batch")
            return original(self, train)

        Trainer.train_epoch = failing
    return train_distributed(*args, **kwargs)


def scaling_records(spec: str, height: int, width: int) -> list[dict]:
    """Every rank's scaling-benchmark record for one image size."""
    from ddubench.measure.scaling import gather_records, measure_rank

    with distributed(device="cpu") as ctx:
        return gather_records(measure_rank(spec, height, width, ctx, warmup=0, repeats=2))
