"""Run a function on several CPU ranks (gloo), as torchrun would, and collect each rank's result."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple, out: str) -> None:
    os.environ.update({
        "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "HF_HUB_OFFLINE": "1",
    })
    import torch

    torch.set_num_threads(1)
    try:
        result = ("ok", fn(*args))
    except BaseException as err:  # report every failure to the parent, which asserts on it
        result = ("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}")
    Path(out).write_bytes(pickle.dumps(result))


def run_ranks(world_size: int, fn: Callable[..., Any], *args: Any, tmp: Path, timeout: float = 300) -> list[tuple]:
    """Start ``world_size`` processes running ``fn(*args)``; wait for all; return [(status, value)] by rank."""
    ctx = mp.get_context("spawn")
    port = free_port()
    outs = [tmp / f"rank{rank}.pkl" for rank in range(world_size)]
    procs = [ctx.Process(target=_worker, args=(rank, world_size, port, fn, args, str(outs[rank])))
             for rank in range(world_size)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
        if proc.is_alive():
            proc.kill()
    return [pickle.loads(out.read_bytes()) if out.exists() else ("missing", None) for out in outs]
