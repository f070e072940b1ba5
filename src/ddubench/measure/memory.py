"""Peak memory of a workload's own tensors on one device, and the per-device share of a DDU-Net forward.

On CUDA the number is ``torch.cuda.max_memory_allocated`` of that device. On CPU there is no allocator
statistic, so PyTorch's ``MemTracker`` (a TorchDispatchMode in ``torch.distributed._tools``) follows
every tensor storage the workload creates and frees (weak-reference finalizers) plus the tensors declared
``external`` (weights, inputs); allocator caching and library scratch space (oneDNN) are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..data.tiling import split_subimages, stitch_subimages
from ..errors import DdubenchError
from ..models.ddunet import DDUNet, replace_shared_maps

CUDA_METHOD = "torch.cuda.max_memory_allocated on the device (peak statistics reset before the run)"
CPU_METHOD = (
    "torch.distributed._tools.mem_tracker.MemTracker: peak bytes of live tensor storages on the CPU "
    "(model parameters and buffers, inputs, activations); allocator caching and oneDNN scratch excluded"
)


def peak_memory(
    fn: Callable[[], Any], device: str | torch.device, external: Iterable[nn.Module | torch.Tensor] = ()
) -> dict[str, Any]:
    """Run ``fn`` once and return the peak bytes of tensors on ``device`` and the method that measured them.

    ``external`` lists what exists before ``fn`` runs and stays alive during it (the model, its inputs); a
    CUDA device counts it by itself, the CPU tracker needs it declared.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return {"peak_bytes": int(torch.cuda.max_memory_allocated(device)), "method": CUDA_METHOD}
    if device.type != "cpu":
        raise DdubenchError(f"peak memory on device {device} is not supported; use cpu or cuda[:N]")
    from torch.distributed._tools.mem_tracker import MemTracker

    external = list(external)
    # MemTracker hooks every parameter's gradient and fails on frozen ones (e.g. a frozen ResNet encoder);
    # the measured pass is inference only, so marking them trainable for its duration changes nothing.
    frozen = [p for m in external if isinstance(m, nn.Module) for p in m.parameters() if not p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(True)
    tracker = MemTracker()
    tracker.track_external(*external)
    try:
        with tracker:
            fn()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)
    peak = tracker.get_tracker_snapshot("peak").get(device, {})
    return {"peak_bytes": int(peak.get("Total", 0)), "method": CPU_METHOD}


def ddunet_rank_forward(
    model: DDUNet, tile: torch.Tensor, others: Sequence[torch.Tensor], grid: tuple[int, int], rank: int = 0
) -> torch.Tensor:
    """One rank's inference forward of DDU-Net split one subimage per rank, in a single process.

    The steps and the tensors they keep alive are those of
    :meth:`ddubench.distributed.ddunet.DistributedDDUNet.forward_local`: encoder on the rank's subimage
    ``tile`` (batch 1), all-gather of the last F bottleneck maps of every subimage, the coarse network on the
    stitched map (every rank runs it), this rank's part back into its bottleneck, decoder. ``others`` are the
    other subimages' maps in rank order; do not declare them to :func:`peak_memory`, since on a real rank they
    first exist inside the all-gather's result, which the concatenation here stands for.
    """
    if tile.shape[0] != 1:
        raise DdubenchError(f"one rank's forward takes one subimage (batch 1), got a batch of {tile.shape[0]}")
    if model.coarse is not None and model.communicate and len(others) != grid[0] * grid[1] - 1:
        raise DdubenchError(f"a {grid[0]}x{grid[1]} grid needs the maps of {grid[0] * grid[1] - 1} other subimages")
    features = model.encoder(tile)
    features[-1] = _exchange(model, features[-1], others, grid, rank)
    return model.head(model.decoder(features))


def _exchange(
    model: DDUNet, bottleneck: torch.Tensor, others: Sequence[torch.Tensor], grid: tuple[int, int], rank: int
) -> torch.Tensor:
    def communicate(shared: torch.Tensor) -> torch.Tensor:
        gathered = torch.cat([*others[:rank], shared, *others[rank:]])
        return split_subimages(model.coarse(stitch_subimages(gathered, grid)), grid)[rank : rank + 1]

    return replace_shared_maps(model, bottleneck, communicate)
