"""Split images into a grid of equal subimages (row-major order) and stitch them back."""

from __future__ import annotations

import torch

from ..errors import DataError


def grid_shape(height: int, width: int, subimage_size: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of subimages; a clear error if the image does not divide into them."""
    sub_h, sub_w = subimage_size
    if height % sub_h or width % sub_w:
        raise DataError(
            f"image size {height}x{width} does not divide into {sub_h}x{sub_w} subimages; "
            f"use an image size that is a multiple of {sub_h}x{sub_w} or change the subimage size"
        )
    return height // sub_h, width // sub_w


def split_subimages(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, C, R*h, K*w) -> (B*R*K, C, h, w), subimages of one image contiguous, row-major."""
    b, c, height, width = x.shape
    rows, cols = grid
    h, w = height // rows, width // cols
    return x.reshape(b, c, rows, h, cols, w).permute(0, 2, 4, 1, 3, 5).reshape(b * rows * cols, c, h, w)


def stitch_subimages(tiles: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`split_subimages`: (B*R*K, C, h, w) -> (B, C, R*h, K*w)."""
    n, c, h, w = tiles.shape
    rows, cols = grid
    b = n // (rows * cols)
    return tiles.reshape(b, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, rows * h, cols * w)
