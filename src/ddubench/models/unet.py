"""The U-Net of the DDU-Net paper: widths c*2^i for i = 0..D, transposed-conv up path, 1x1 head."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DataError, ModelSpecError
from .blocks import DoubleConv, Down, Up


def channel_widths(depth: int, base_width: int) -> list[int]:
    """Channels of each level, from the input block down to the bottleneck: ``[c, 2c, ..., c*2^D]``."""
    if depth < 0 or base_width < 1:
        raise ModelSpecError(
            f"depth D={depth} and base width W={base_width} must satisfy D >= 0 and W >= 1; fix the model spec"
        )
    return [base_width * 2**level for level in range(depth + 1)]


class UNetEncoder(nn.Module):
    """Input block and D down blocks; returns the feature maps of every level (the last is the bottleneck)."""

    def __init__(self, in_channels: int, depth: int, base_width: int, dropout: float = 0.0) -> None:
        super().__init__()
        widths = channel_widths(depth, base_width)
        self.depth = depth
        self.out_channels = widths
        self.inc = DoubleConv(in_channels, widths[0], dropout)
        self.downs = nn.ModuleList(Down(a, b, dropout) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.inc(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        return features


class UNetDecoder(nn.Module):
    """D up blocks consuming the encoder features in reverse; returns the finest-level feature map."""

    def __init__(self, depth: int, base_width: int, dropout: float = 0.0) -> None:
        super().__init__()
        widths = channel_widths(depth, base_width)[::-1]
        self.ups = nn.ModuleList(Up(a, b, dropout) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return x


INITS = ("he", "torch")


def initialise(module: nn.Module, init: str) -> None:
    """Apply the weight initialisation ``init`` names: ``he`` (the journal's) or ``torch`` (PyTorch's defaults,
    which the modules already have when built, as in the authors' code)."""
    if init not in INITS:
        raise ModelSpecError(f"init={init!r} is not one of {', '.join(INITS)}; fix the model spec")
    if init == "he":
        init_he(module)


def init_he(module: nn.Module) -> None:
    """He (Kaiming) initialisation of conv weights, as the journal states; biases zero, BN at (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class UNet(nn.Module):
    """U-Net(D, c) applied to the whole image. Returns logits of shape (B, num_classes, H, W)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        depth: int = 3,
        base_width: int = 4,
        dropout: float = 0.0,
        init: str = "he",
    ) -> None:
        super().__init__()
        self.depth = depth
        self.encoder = UNetEncoder(in_channels, depth, base_width, dropout)
        self.decoder = UNetDecoder(depth, base_width, dropout)
        self.head = nn.Conv2d(base_width, num_classes, kernel_size=1)
        initialise(self, init)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (one halving per level)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise DataError(f"a {height}x{width} input cannot be halved {self.depth} times (depth {self.depth}); "
                            f"use images whose sides are multiples of {self.size_multiple} or a smaller depth")
        return self.head(self.decoder(self.encoder(x)))
