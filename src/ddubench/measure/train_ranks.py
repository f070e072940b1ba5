"""Training-step time and per-rank peak memory of a DDU-Net split over the ranks of torchrun.

The step is the one ``ddubench train --distributed`` runs: every rank holds the same batch, runs its block
of subimages through its encoder-decoder replica (the coarse network's input is all-gathered), reduces the
dice sums, backpropagates, all-reduces the parameter gradients and takes the same Adam step. Each timed
step starts and ends at a barrier, so its time is the slowest rank's.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..distributed.runtime import DistContext
from ..training.losses import dice_loss_from_terms, dice_terms
from .memory import peak_memory

METHOD = "time.perf_counter between barriers around forward, dice loss, backward, gradient all-reduce, Adam step"


@dataclass
class RankTraining:
    """One rank's part of the spatially parallel training step, split into its phases."""

    spec: Any  # ModelSpec
    model: torch.nn.Module
    images: torch.Tensor
    masks: torch.Tensor
    local_masks: torch.Tensor
    optimizer: torch.optim.Optimizer
    parallel: Any  # SpatialParallel
    params: int

    def loss(self) -> torch.Tensor:
        """Forward of this rank's subimages and the dice loss over all ranks' sums."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.parallel.reduce_terms(dice_terms(self.model(self.images), self.local_masks))
        return dice_loss_from_terms(terms, "macro")

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()
        self.parallel.after_backward(self.model)

    def step(self) -> None:
        """One whole training step: forward, loss, backward, gradient all-reduce, Adam."""
        self.backward(self.loss())
        self.optimizer.step()

    def external(self) -> list[Any]:
        """What lives before a step and through it (for :func:`~ddubench.measure.memory.peak_memory`)."""
        state = [t for group in self.optimizer.state.values() for t in group.values() if torch.is_tensor(t)]
        return [self.model, self.images, self.masks, self.local_masks, *state]


def rank_training(
    spec_text: str, ctx: DistContext, grid: tuple[int, int], subimage: tuple[int, int], batch_size: int = 16,
    io: tuple[int, int] | None = None,
) -> RankTraining:
    """This rank's replica, batch (the same on every rank), Adam and collectives for the training step of a
    DDU-Net on ``grid`` (rows, columns) subimages of ``subimage`` (height, width) px; ``io`` = (input channels,
    classes), default the spec's data."""
    from ..analysis.params import count_parameters
    from ..distributed.collectives import broadcast_state
    from ..distributed.ddunet import DistributedDDUNet
    from ..distributed.training import SpatialParallel
    from ..models import ModelSpec, build_model

    spec = ModelSpec.parse(spec_text)
    in_channels, num_classes = io or spec.io
    (rows, cols), (height, width) = grid, subimage
    torch.manual_seed(0)  # the same weights and batch on every rank
    model = build_model(spec, in_channels=in_channels, num_classes=num_classes, subimage_size=(height, width),
                        dropout=0.1)
    params = count_parameters(model)
    images = torch.rand(batch_size, in_channels, rows * height, cols * width).to(ctx.device)
    masks = torch.randint(0, num_classes, (batch_size, rows * height, cols * width)).to(ctx.device)
    model = DistributedDDUNet(model.to(ctx.device), ctx, "sync")
    broadcast_state(model)
    model.train()
    parallel = SpatialParallel(ctx)
    return RankTraining(spec, model, images, masks, parallel.local_target(model, masks),
                        torch.optim.Adam(model.parameters(), lr=0.008), parallel, params)


def measure_rank_train_step(
    spec_text: str, k: int, ctx: DistContext, subimage_size: int = 32, batch_size: int = 16, warmup: int = 3,
    repeats: int = 10, grid: tuple[int, int] | None = None, subimage: tuple[int, int] | None = None,
    io: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """This rank's record: median/quartile step time (slowest rank), images per second, peak step memory.

    The image is ``grid`` (rows, columns; default 1 x ``k``) subimages of ``subimage`` (height, width; default
    ``subimage_size`` square) pixels with ``io`` = (input channels, classes) (default: the spec's data).
    """
    rows, cols = grid or (1, k)
    height, width = subimage or (subimage_size, subimage_size)
    training = rank_training(spec_text, ctx, (rows, cols), (height, width), batch_size, io)
    spec = training.spec
    in_channels, num_classes = training.images.shape[1], io[1] if io else spec.io[1]
    times = []
    for index in range(warmup + repeats):
        dist.barrier()
        start = time.perf_counter()
        training.step()
        dist.barrier()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    memory = peak_memory(training.step, ctx.device, external=training.external())
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    return {
        "spec": str(spec), "label": spec.label, "k": rows * cols, "grid": [rows, cols], "subimage": [height, width],
        "io": [in_channels, num_classes], "params": training.params, "mode": "distributed",
        "world_size": ctx.world_size, "rank": ctx.rank, "backend": ctx.backend, "threads": torch.get_num_threads(),
        "step_time_median_s": median, "step_time_q1_s": quartiles[0], "step_time_q3_s": quartiles[2],
        "images_per_s": batch_size / median, "warmup": warmup, "repeats": repeats, "batch_size": batch_size,
        "peak_mem_bytes": memory["peak_bytes"], "memory_method": memory["method"],
    }
