"""The coarse (communication) network of DDU-Net: 3 x (5x5 conv with bias -> BN -> ReLU -> Dropout2d), and the
fully connected alternative the thesis counts parameters of (Table 6.4)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelSpecError


class CoarseNetwork(nn.Sequential):
    """F -> F channels, stride 1, 'same' zero padding, so its output has the input's spatial size."""

    def __init__(self, channels: int, kernel_size: int = 5, layers: int = 3, dropout: float = 0.0) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ModelSpecError(f"coarse-network kernel {kernel_size} cannot keep the bottleneck's size with 'same' "
                                 "padding; use an odd kernel (spec key K, e.g. K3, K5, K7)")
        if layers < 1:
            raise ModelSpecError(f"a coarse network of {layers} layers exchanges nothing; use at least one "
                                 "(spec key H, e.g. H3), or F0 for no coarse network")
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [
                nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=True),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.Dropout2d(dropout),
            ]
        super().__init__(*blocks)
        self.channels = channels


class FCCoarseNetwork(nn.Module):
    """The fully connected communication network of thesis Sec. 6.2 (Table 6.4, Fig. 6.6), which the thesis
    rejects for the CNN: ``layers`` x (dense C*S*S -> C*S*S with bias -> ReLU) over the flattened C x S x S
    maps, so the input size is fixed at build time and each layer has C^2 S^4 + C S^2 parameters (Eq. 6.4)."""

    def __init__(self, channels: int, size_px: int, layers: int = 3) -> None:
        if channels < 1 or size_px < 1 or layers < 1:
            raise ModelSpecError(f"a fully connected coarse network needs channels, size and layers >= 1, got "
                                 f"{channels}, {size_px}, {layers}")
        super().__init__()
        width = channels * size_px**2
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Linear(width, width), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*blocks)
        self.channels, self.size_px = channels, size_px

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, C, S, S); only the size the network was built for is accepted."""
        if tuple(x.shape[1:]) != (self.channels, self.size_px, self.size_px):
            raise ModelSpecError(f"this fully connected coarse network takes {self.channels} x {self.size_px} x "
                                 f"{self.size_px} maps, got {tuple(x.shape[1:])}")
        return self.layers(x.flatten(1)).view_as(x)
