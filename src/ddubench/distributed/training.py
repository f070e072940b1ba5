"""Training step hooks for spatially parallel DDU-Net (one block of subimages per rank).

Every rank reads the same batch (same seed, same shuffling), keeps its own subimages, computes its local
dice sums, and the sums are reduced before the loss ratio, so the loss is the global one. After the
backward the parameter gradients are summed over ranks; every rank then takes the same Adam step, so
replicas stay identical without a broadcast. Checkpoints keep every rank's RNG states (:meth:`gather`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..training.losses import DiceTerms
from ..training.trainer import SingleProcess
from .collectives import all_reduce_gradients, average_buffers, sum_across_ranks
from .runtime import DistContext


class SpatialParallel(SingleProcess):
    """The :class:`~ddubench.training.trainer.Trainer` hooks for a :class:`DistributedDDUNet`."""

    def __init__(self, ctx: DistContext, bn: str = "sync") -> None:
        self.ctx = ctx
        self.bn = bn
        self.is_main = ctx.is_main
        self.rank = ctx.rank
        self.world_size = ctx.world_size

    def local_target(self, model: nn.Module, masks: torch.Tensor) -> torch.Tensor:
        return model.local_target(masks)

    def reduce_terms(self, terms: DiceTerms) -> DiceTerms:
        size = terms.intersection.numel()
        total = sum_across_ranks(torch.cat([terms.intersection, terms.cardinality, terms.target_count]))
        return DiceTerms(total[:size], total[size : 2 * size], total[2 * size :])

    def after_backward(self, model: nn.Module) -> None:
        all_reduce_gradients(model)

    def after_step(self, model: nn.Module) -> None:
        if self.bn == "local":
            average_buffers(model)

    def barrier(self) -> None:
        dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered
