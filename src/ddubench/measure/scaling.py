"""Per-rank inference memory and time of DDU-Net split over P ranks (journal Table 7's columns).

Every rank builds the same randomly initialised DDU-Net (no training needed for memory and time), makes
only its own subimages of one image (batch 1, as a memory-frugal loader would), and runs the distributed
forward pass in inference mode: warm-up passes first, then timed repeats between barriers (and CUDA
synchronisation), and one pass under the peak-memory probe of :mod:`ddubench.measure.memory`. Rank 0
gathers every rank's numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ..analysis.params import count_parameters
from ..distributed.ddunet import DistributedDDUNet
from ..distributed.runtime import DistContext, owned_subimages
from ..errors import ModelSpecError
from ..models import ModelSpec, build_model
from ..models.ddunet import DDUNetBase
from .inference import timed_passes
from .memory import peak_memory


def _synchronize(ctx: DistContext) -> None:
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    dist.barrier()


def measure_rank(
    spec: str, height: int, width: int, ctx: DistContext, subimage_size: int = 32, warmup: int = 2,
    repeats: int = 5, seed: int = 0, in_channels: int | None = None, num_classes: int | None = None,
) -> dict[str, Any]:
    """This rank's peak inference memory and the forward times for one (height x width) image.

    Input channels and classes default to those of the data the model is built for (``ModelSpec.io``).
    """
    torch.manual_seed(seed)
    default_in, default_classes = ModelSpec.parse(spec).io
    in_channels, num_classes = in_channels or default_in, num_classes or default_classes
    model = build_model(spec, in_channels=in_channels, num_classes=num_classes,
                        subimage_size=(subimage_size, subimage_size))
    if not isinstance(model, DDUNetBase):
        raise ModelSpecError(f"{spec} is not a DDU-Net; only DDU-Nets split across ranks: pass a ddunet_* model")
    base = model
    model = DistributedDDUNet(model.to(ctx.device), ctx).eval()
    grid = model.grid(height, width)
    owned = owned_subimages(grid[0] * grid[1], ctx)  # an error where the ranks cannot share them equally
    n_local = owned.stop - owned.start
    tiles = torch.rand(n_local, in_channels, subimage_size, subimage_size, device=ctx.device)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return model.forward_local(tiles, 1, grid)

    memory = peak_memory(forward, ctx.device, external=[model, tiles])
    estimate = activation_estimate(base, subimage_size, grid, n_local)
    timing = timed_passes(forward, lambda: _synchronize(ctx), warmup, repeats)
    return {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "spec": str(ModelSpec.parse(spec)),
        "label": ModelSpec.parse(spec).label,
        "params": count_parameters(base),
        "height_px": height,
        "width_px": width,
        "subimages_per_rank": n_local,
        "peak_mem_bytes": memory["peak_bytes"],
        "memory_method": memory["method"],
        "estimate_bytes": estimate,
        **timing,
        "repeats": repeats,
        "warmup": warmup,
        "device": str(ctx.device),
        "backend": ctx.backend,
    }


def activation_estimate(model: DDUNetBase, subimage_size: int, grid: tuple[int, int], n_local: int) -> int | None:
    """Predicted peak for ``n_local`` stacked subimages from the analytic memory model (U-Net DDU-Nets).

    weights + n_local x the activations of one subimage alone + once the extra of stitching the whole
    grid's coarse-network maps. Stacking subimages shifts where the peak falls, so this is an estimate.
    """
    from ..analysis.memory_model import memory_model
    from ..models import DDUNet

    if not isinstance(model, DDUNet):
        return None
    size = (subimage_size, subimage_size)
    alone = memory_model(model, size, (1, 1)).inference_peak_bytes
    stitched = memory_model(model, size, grid).inference_peak_bytes
    weights = memory_model(model, size, (1, 1)).model_bytes
    return weights + n_local * (alone - weights) + (stitched - alone)


def gather_records(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's record, on every rank, in rank order."""
    records: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(records, record)
    return records
