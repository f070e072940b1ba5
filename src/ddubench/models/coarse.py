"""The coarse (communication) network of DDU-Net: 3 x (5x5 conv with bias -> BN -> ReLU -> Dropout2d)."""

from __future__ import annotations

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
