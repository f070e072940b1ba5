"""Parameter counting."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BatchNorm running statistics are buffers and not counted, as in the paper)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
