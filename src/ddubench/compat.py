"""The oldest PyTorch the code runs on, checked when a command starts.

torch 2.5 is the floor: the CPU peak-memory probe uses ``torch.distributed._tools.mem_tracker.MemTracker``
(first shipped in 2.5); everything else (``init_process_group(device_id=...)``, ``torch.amp.GradScaler``,
``dist.all_gather``/``all_reduce`` with autograd wrappers of our own, ``torch.compile``) exists in 2.5 too.
A cluster's older PyTorch module stops with one line instead of failing deep inside a run.
"""

from __future__ import annotations

import re

import torch

from .errors import DdubenchError

MIN_TORCH = (2, 5)


def check_torch(version: str | None = None) -> None:
    """Raise a one-line :class:`DdubenchError` when ``version`` (default: the installed torch) is too old."""
    version = str(torch.__version__) if version is None else version
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or tuple(int(part) for part in match.groups()) < MIN_TORCH:
        floor = ".".join(map(str, MIN_TORCH))
        raise DdubenchError(f"torch {version} is too old: ddubench needs torch >= {floor} (pyproject.toml); load a "
                            f"newer PyTorch module or `pip install 'torch>={floor}'`")
