"""The random-number state of one process that a resumed run restores (dropout masks, random crops).

One process draws from torch's CPU generator and, when it computes on a GPU, from that device's CUDA
generator; both are captured. Under torchrun every rank has its own states (per-rank dropout seeds), so a
checkpoint stores one entry per rank and each rank restores its own.
"""

from __future__ import annotations

import torch

RngState = dict[str, torch.Tensor | None]


def capture(device: torch.device) -> RngState:
    """The CPU generator's state and, on a CUDA ``device``, that device's generator state."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def restore(state: RngState, device: torch.device) -> None:
    """Set the generators :func:`capture` read; a CUDA state is restored only onto a CUDA ``device``."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
