"""The thesis's positional-encoding dataset (seed 001, §6.1.3, Fig. 6.4): where are four pixels?

Each image is a black 64x64 grayscale square with 4 pixels at distinct random positions, each of its own
intensity (1/4, 2/4, 3/4, 1: the "colour" says which of the 4 points it is). The target is the 8-vector of
their coordinates, point by point in order of intensity, as (x = column, y = row) in pixels. A network that
can only see translation-invariant features cannot tell where a pixel is; how well it predicts the
coordinates measures how much positional information its padding lets in (thesis Tables 6.2 and 6.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

POINTS = 4
SIZE = 64


@dataclass(frozen=True)
class PositionalData:
    """Images (N, 1, size, size) in [0, 1] and targets (N, 2 * points): x0, y0, x1, y1, ... in pixels."""

    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


def intensities(points: int = POINTS) -> torch.Tensor:
    """The grey value of each point, in target order: 1/points, 2/points, ..., 1."""
    return torch.arange(1, points + 1, dtype=torch.float32) / points


def make_positional_data(count: int, seed: int, size: int = SIZE, points: int = POINTS) -> PositionalData:
    """``count`` images with ``points`` pixels at distinct uniformly random positions (seeded, reproducible)."""
    generator = torch.Generator().manual_seed(seed)
    # distinct positions per image: the first `points` of a random permutation of the size*size pixels
    flat = torch.rand(count, size * size, generator=generator).argsort(dim=1)[:, :points]
    rows, cols = flat // size, flat % size
    images = torch.zeros(count, 1, size * size)
    images.scatter_(2, flat.unsqueeze(1), intensities(points).expand(count, points).unsqueeze(1))
    targets = torch.stack([cols, rows], dim=2).flatten(1).float()
    return PositionalData(images.view(count, 1, size, size), targets)


def centre_distance_formula(size: int = SIZE) -> float:
    """Mean distance from the centre of a square of side ``size`` to a uniform point in it: L/6 (sqrt 2 +
    ln(1 + sqrt 2)); the no-information reference of thesis §6.1.3 as its formula gives it (24.49 for 64)."""
    return size / 6 * (math.sqrt(2) + math.log(1 + math.sqrt(2)))


def centre_predictor_mse(size: int = SIZE) -> float:
    """Mean squared error per coordinate of always predicting the centre of the pixel grid: the variance of
    a uniform integer in 0..size-1, (size^2 - 1) / 12."""
    return (size**2 - 1) / 12
