"""DDU-Net(D, F, C): a U-Net applied per subimage, with a coarse network exchanging bottleneck features.

Single-process reference implementation. The subimages of a batch are stacked along the batch dimension
and go through ONE encoder-decoder, which is exactly "clones with shared weights" (autograd sums the
gradients of all subimages). The last F bottleneck channels are either stitched into the global grid in
subimage order and processed jointly (C = Y, communication) or processed per subimage (C = N).

:class:`DDUNetBase` holds that split -> encode -> exchange -> decode -> stitch pass for any
encoder-decoder; :class:`DDUNet` is the paper's U-Net variant, ``resnet_ddunet`` the ResNet one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data.tiling import grid_shape, split_subimages, stitch_subimages
from ..errors import ModelSpecError
from .coarse import CoarseNetwork
from .unet import UNetDecoder, UNetEncoder, channel_widths, initialise

NORM_STATS = ("shared", "position")


def per_position(module: nn.Module, tiles: torch.Tensor | list[torch.Tensor], positions: int):
    """Apply ``module`` once per subimage position, as the authors' code does (one call per subimage).

    ``tiles`` is (B*n, ...) with the n subimages of one image contiguous (or a list of such tensors, the
    encoder levels). Each call sees the B subimages of one position, so BatchNorm normalises with that
    position's batch statistics and updates its running statistics once per position, in position order.
    The results are put back in (B*n, ...) order (a list of them when the module returns a list).
    """
    def position(x: torch.Tensor, p: int) -> torch.Tensor:
        return x.unflatten(0, (-1, positions))[:, p]

    outputs = [module([position(t, p) for t in tiles] if isinstance(tiles, list) else position(tiles, p))
               for p in range(positions)]

    def restack(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(parts, dim=1).flatten(0, 1)

    if isinstance(outputs[0], list):
        return [restack([out[level] for out in outputs]) for level in range(len(outputs[0]))]
    return restack(outputs)


def replace_shared_maps(
    model: nn.Module, bottleneck: torch.Tensor, communicate: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Put the coarse network's output in place of the last F bottleneck channels.

    ``model`` has ``coarse``, ``features`` and ``communicate`` (a DDU-Net, or one rank's share of it).
    With C = Y, ``communicate(shared)`` runs the coarse network over the maps of all subimages (however
    they are brought together: stacked in one process, or gathered across ranks) and returns this
    batch's share; with C = N the coarse network sees each subimage alone. F = 0 leaves the bottleneck as is.
    """
    if model.coarse is None:
        return bottleneck
    keep, shared = bottleneck[:, : -model.features], bottleneck[:, -model.features :]
    shared = communicate(shared) if model.communicate else model.coarse(shared)
    return torch.cat([keep, shared], dim=1)


class DDUNetBase(nn.Module):
    """The DDU-Net forward pass over subimages, shared by every encoder-decoder.

    Subclasses set ``features`` (F), ``communicate`` (C), ``subimage_size`` and the modules ``encoder``
    (subimages -> feature maps, bottleneck last), ``coarse`` (or None for F = 0), ``decoder`` (feature
    maps -> finest map) and ``head`` (finest map -> logits).
    """

    features: int
    communicate: bool
    subimage_size: tuple[int, int]
    encoder: nn.Module
    coarse: nn.Module | None
    decoder: nn.Module
    head: nn.Module

    def grid(self, x: torch.Tensor) -> tuple[int, int]:
        """Rows and columns of subimages for input ``x``."""
        return grid_shape(x.shape[-2], x.shape[-1], self.subimage_size)

    def exchange(self, bottleneck: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Replace the last F bottleneck channels of every subimage by the coarse network's output."""
        return replace_shared_maps(
            self, bottleneck, lambda shared: split_subimages(self.coarse(stitch_subimages(shared, grid)), grid)
        )

    norm_stats: str = "shared"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid(x)
        tiles = split_subimages(x, grid)
        if self.norm_stats == "position":
            positions = grid[0] * grid[1]
            features = per_position(self.encoder, tiles, positions)
            features[-1] = self.exchange(features[-1], grid)
            return stitch_subimages(per_position(lambda f: self.head(self.decoder(f)), features, positions), grid)
        features = self.encoder(tiles)
        features[-1] = self.exchange(features[-1], grid)
        return stitch_subimages(self.head(self.decoder(features)), grid)


class DDUNet(DDUNetBase):
    """DDU-Net(D, F, C) for subimages of a fixed size; the grid follows from the input size."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 3,
        depth: int = 3,
        base_width: int = 4,
        features: int = 0,
        communicate: bool = True,
        subimage_size: tuple[int, int] = (32, 32),
        coarse_kernel: int = 5,
        coarse_layers: int = 3,
        dropout: float = 0.0,
        norm_stats: str = "shared",
        init: str = "he",
    ) -> None:
        super().__init__()
        bottleneck = channel_widths(depth, base_width)[-1]
        if not 0 <= features <= bottleneck:
            raise ModelSpecError(
                f"F={features} communicated maps is outside 0..{bottleneck}, the bottleneck width of "
                f"depth {depth} with base width {base_width}; choose F <= {bottleneck}"
            )
        multiple = 2**depth
        if min(subimage_size) < multiple or subimage_size[0] % multiple or subimage_size[1] % multiple:
            raise ModelSpecError(
                f"subimage size {subimage_size[0]}x{subimage_size[1]} is not a positive multiple of 2^D = {multiple} "
                f"(depth {depth}); use subimages whose sides are multiples of {multiple} or a smaller depth"
            )
        if norm_stats not in NORM_STATS:
            raise ModelSpecError(f"norm_stats={norm_stats!r} is not one of {', '.join(NORM_STATS)}; fix the model spec")
        self.depth = depth
        self.norm_stats = norm_stats
        self.features = features
        self.communicate = communicate
        self.subimage_size = tuple(subimage_size)
        self.encoder = UNetEncoder(in_channels, depth, base_width, dropout)
        self.coarse = CoarseNetwork(features, coarse_kernel, coarse_layers, dropout) if features else None
        self.decoder = UNetDecoder(depth, base_width, dropout)
        self.head = nn.Conv2d(base_width, num_classes, kernel_size=1)
        initialise(self, init)
