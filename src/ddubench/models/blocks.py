"""U-Net building blocks as the DDU-Net paper builds them (journal Sec. III-A2, thesis Sec. 5.1.1)."""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """Two (3x3 conv without bias -> BatchNorm -> ReLU -> Dropout2d) layers with 'same' padding."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                nn.Conv2d(c_in, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
                nn.Dropout2d(dropout),
            ]
        super().__init__(*layers)


class Down(nn.Sequential):
    """2x2 max pooling followed by a DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, dropout))


class Up(nn.Module):
    """2x2 transposed conv (stride 2, with bias) halving the channels, concat [skip, up], DoubleConv.

    The skip has ``in_channels // 2`` channels (the U-Net case) unless ``skip_channels`` says otherwise.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dropout: float = 0.0, skip_channels: int | None = None
    ) -> None:
        super().__init__()
        skip = in_channels // 2 if skip_channels is None else skip_channels
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(skip + in_channels // 2, out_channels, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))
