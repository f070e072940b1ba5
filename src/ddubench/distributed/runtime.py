"""Process-group lifecycle for ranks launched by ``torchrun`` (gloo on CPU, NCCL on CUDA).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every worker; this module
reads them, picks the backend and the device of the rank, and tears the group down again.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import DdubenchError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Who this process is in the group and which device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether the torchrun environment variables are present."""
    return all(name in os.environ for name in ENV_VARS)


def init_from_env(device: str = "auto", timeout_s: float = 600.0) -> DistContext:
    """Join the process group described by torchrun's environment variables.

    ``device="auto"`` uses ``cuda:<LOCAL_RANK>`` with NCCL when CUDA is available, else the CPU with gloo;
    ``device="cpu"`` forces gloo on the CPU.
    """
    if not launched_by_torchrun():
        missing = ", ".join(name for name in ENV_VARS if name not in os.environ)
        raise DdubenchError(
            f"distributed mode needs the torchrun environment ({missing} not set); launch with "
            "`torchrun --nproc-per-node P -m ddubench ...`"
        )
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = device == "auto" and torch.cuda.is_available() or device.startswith("cuda")
    if use_cuda:
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
        backend = "nccl"
    else:
        torch_device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank, world_size, local_rank, torch_device, backend)


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed(device: str = "auto", timeout_s: float = 600.0) -> Iterator[DistContext]:
    """``with distributed() as ctx:`` joins the group on entry and leaves it on exit."""
    ctx = init_from_env(device, timeout_s)
    try:
        yield ctx
    finally:
        shutdown()


def is_collective_failure(err: BaseException) -> bool:
    """Whether ``err`` is a collective that failed because a peer rank died or timed out."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        marker in text for marker in ("Connection closed by peer", "gloo", "NCCL", "Timed out", "timed out")
    )


def owned_subimages(num_subimages: int, ctx: DistContext) -> slice:
    """The contiguous block of subimage indices (row-major) that rank ``ctx.rank`` owns."""
    if num_subimages % ctx.world_size:
        raise DdubenchError(
            f"{num_subimages} subimages cannot be shared equally by {ctx.world_size} ranks; use a number of "
            f"ranks that divides {num_subimages}"
        )
    per_rank = num_subimages // ctx.world_size
    return slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
