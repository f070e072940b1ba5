"""Process-group lifecycle for ranks launched by ``torchrun`` (gloo on CPU, NCCL on CUDA).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every worker; this module
reads them, picks the backend and the device of the rank, and tears the group down again.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device
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


def rank_device(device: str, local_rank: int) -> torch.device:
    """The device of the rank with ``local_rank``: ``cuda:<LOCAL_RANK>`` for ``cuda`` (or ``auto`` with a GPU).

    Every rank gets the same ``--device``, so a fixed ``cuda:N`` cannot name each rank's GPU: it is refused
    (GPUs are chosen with CUDA_VISIBLE_DEVICES), as is a rank without a GPU of its own.
    """
    if device.startswith("cuda:"):
        raise DdubenchError(f"--device {device} under torchrun: each rank uses cuda:<LOCAL_RANK>; pass --device cuda "
                            "(or auto) and choose the GPUs with CUDA_VISIBLE_DEVICES")
    if device not in ("cuda", "auto", "cpu"):
        raise DdubenchError(f"--device {device!r} under torchrun is not cuda, auto or cpu; use one of them")
    if device == "cpu" or device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    resolve_device(device)  # a GPU asked for but not visible: one line, not a traceback
    visible = torch.cuda.device_count()
    if local_rank >= visible:
        raise DdubenchError(f"rank with LOCAL_RANK {local_rank} has no GPU of its own ({visible} visible); start at "
                            f"most {visible} ranks per node (torchrun --nproc-per-node {visible})")
    return torch.device("cuda", local_rank)


def die_with_launcher() -> None:
    """Have the kernel send this rank SIGTERM when its launcher (torchrun's agent) dies (Linux only).

    torchrun starts every worker in a session of its own, so a SIGKILL to the job's process group (Snakemake
    or a scheduler killing the job) does not reach the ranks: they would go on training into the run
    directory while a rerun starts there. ``prctl(PR_SET_PDEATHSIG)`` has no Python wrapper in the standard
    library or torch, hence the few lines of ctypes.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    launcher = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != launcher:  # the launcher died before the call: nobody is left to signal
        raise DdubenchError("the torchrun launcher of this rank has already exited; rerun the job")


def init_from_env(device: str = "auto", timeout_s: float = 600.0) -> DistContext:
    """Join the process group described by torchrun's environment variables.

    ``device`` is ``cuda``, ``auto`` or ``cpu`` (see :func:`rank_device`): NCCL on ``cuda:<LOCAL_RANK>``
    (bound to the group with ``device_id``), else gloo on the CPU.
    """
    if not launched_by_torchrun():
        missing = ", ".join(name for name in ENV_VARS if name not in os.environ)
        raise DdubenchError(
            f"distributed mode needs the torchrun environment ({missing} not set); launch with "
            "`torchrun --nproc-per-node P -m ddubench ...`"
        )
    die_with_launcher()
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    torch_device = rank_device(device, local_rank)
    backend = "nccl" if torch_device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch_device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=torch_device if backend == "nccl" else None)
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
