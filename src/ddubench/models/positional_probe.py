"""The thesis's positional-encoding probe (seed 001, §6.1.3, Fig. 6.5): a fully convolutional network that
predicts the coordinates of the 4 pixels of :mod:`ddubench.data.positional`.

Four blocks of 3x3 convolution, ReLU and 2x2 max-pooling (channels 8, 16, 32, 64: doubling per block),
global average pooling and a 1x1 convolution 64 -> 8. The three variants differ only in the convolutions'
padding: valid (0), same (1) or full (2). The thesis does not state the activation; ReLU is ours.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelSpecError

PADDINGS = {"valid": 0, "same": 1, "full": 2}
WIDTHS = (8, 16, 32, 64)


class PositionalProbe(nn.Module):
    """Image (B, 1, H, W) -> 2 * points coordinates (B, 2 * points), with convolutions of ``padding``."""

    def __init__(self, padding: str, points: int = 4, in_channels: int = 1) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ModelSpecError(f"padding {padding!r} is not one of {', '.join(PADDINGS)}")
        self.padding = padding
        blocks, channels = [], in_channels
        for width in WIDTHS:
            blocks += [nn.Conv2d(channels, width, 3, padding=PADDINGS[padding]), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, 2 * points, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3), keepdim=True)  # global average pooling
        return self.head(pooled).flatten(1)

    def block_sizes(self, size: int) -> list[int]:
        """Side of the feature map after each block for a ``size`` x ``size`` input (thesis Fig. 6.5)."""
        sizes = []
        for _ in WIDTHS:
            size = (size + 2 * PADDINGS[self.padding] - 2) // 2
            sizes.append(size)
        return sizes
