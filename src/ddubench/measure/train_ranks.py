"""Training-step time and per-rank peak memory of a DDU-Net split over the ranks of torchrun.

The step is the one ``ddubench train --distributed`` runs: every rank holds the same batch, runs its block
of subimages through its encoder-decoder replica (the coarse network's input is all-gathered), reduces the
dice sums, backpropagates, all-reduces the parameter gradients and takes the same Adam step. Each timed
step starts and ends at a barrier, so its time is the slowest rank's.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.distributed as dist

from ..distributed.runtime import DistContext
from ..training.losses import dice_loss_from_terms, dice_terms
from .memory import peak_memory

METHOD = "time.perf_counter between barriers around forward, dice loss, backward, gradient all-reduce, Adam step"


def measure_rank_train_step(
    spec_text: str, k: int, ctx: DistContext, subimage_size: int = 32, batch_size: int = 16, warmup: int = 3,
    repeats: int = 10, grid: tuple[int, int] | None = None, subimage: tuple[int, int] | None = None,
    io: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """This rank's record: median/quartile step time (slowest rank), images per second, peak step memory.

    The image is ``grid`` (rows, columns; default 1 x ``k``) subimages of ``subimage`` (height, width; default
    ``subimage_size`` square) pixels with ``io`` = (input channels, classes) (default: the spec's data).
    """
    from ..analysis.params import count_parameters
    from ..distributed.collectives import broadcast_state
    from ..distributed.ddunet import DistributedDDUNet
    from ..distributed.training import SpatialParallel
    from ..models import ModelSpec, build_model

    spec = ModelSpec.parse(spec_text)
    in_channels, num_classes = io or spec.io
    rows, cols = grid or (1, k)
    height, width = subimage or (subimage_size, subimage_size)
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
    local_masks = parallel.local_target(model, masks)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.008)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        terms = parallel.reduce_terms(dice_terms(model(images), local_masks))
        dice_loss_from_terms(terms, "macro").backward()
        parallel.after_backward(model)
        optimizer.step()

    times = []
    for index in range(warmup + repeats):
        dist.barrier()
        start = time.perf_counter()
        step()
        dist.barrier()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    state = [t for group in optimizer.state.values() for t in group.values() if torch.is_tensor(t)]
    memory = peak_memory(step, ctx.device, external=[model, images, masks, local_masks, *state])
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    return {
        "spec": str(spec), "label": spec.label, "k": rows * cols, "grid": [rows, cols], "subimage": [height, width],
        "io": [in_channels, num_classes], "params": params, "mode": "distributed",
        "world_size": ctx.world_size, "rank": ctx.rank, "backend": ctx.backend, "threads": torch.get_num_threads(),
        "step_time_median_s": median, "step_time_q1_s": quartiles[0], "step_time_q3_s": quartiles[2],
        "images_per_s": batch_size / median, "warmup": warmup, "repeats": repeats, "batch_size": batch_size,
        "peak_mem_bytes": memory["peak_bytes"], "memory_method": memory["method"],
    }
