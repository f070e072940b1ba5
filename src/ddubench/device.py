"""Device selection: every command takes ``cpu``, ``cuda``, ``cuda:N`` or ``auto``."""

from __future__ import annotations

import torch

from .errors import DdubenchError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks the first GPU when one exists, else the CPU; a missing GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DdubenchError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DdubenchError(f"device {name!r} requested but no CUDA GPU is visible; use --device cpu or auto")
    return device
