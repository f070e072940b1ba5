"""Patch geometry of FCtL (and GLNet): the regular patch grid, context crops, merging patch logits.

Grid (GLNet's rule, reused by FCtL): along an axis of ``length`` px with ``patch`` px patches, take the
smallest n with n * patch >= length, then grow n until neighbouring patches overlap by at least
``min_overlap`` px (the public code: 50). Patch i starts at i * step rounded half up, step = (length -
patch) / (n - 1), so the last is flush with the far border (``glnet_grid.grid_starts``). 2048 px with 508 px patches gives 5 patches
(step 385), 2448 px gives 6 (step 388). The 2-D grid is the product of the row and column grids.

Context crops: a ``scale`` x patch region centred on the patch, cut from the image zero-padded by
(scale - 1) / 2 patch sizes on each side, resized to the patch size (bilinear with antialiasing, like the
public code's PIL resize). The padding is zero in the model's input, which here is ImageNet-normalised like
every DeepGlobe model's of the suite: zero is the mean colour, where the public code feeds unnormalised [0, 1]
images and so pads with black.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .glnet_grid import grid_starts as axis_starts  # noqa: F401  (one grid rule for GLNet and FCtL)

Box = tuple[int, int, int]  # (image index in the batch, top, left)


def patch_boxes(batch: int, rows: list[int], cols: list[int]) -> list[Box]:
    """Every patch of every image, image by image, rows outer and columns inner (the public order)."""
    return [(b, top, left) for b in range(batch) for top in rows for left in cols]


def axis_coverage(length: int, patch: int, starts: list[int]) -> torch.Tensor:
    """How many patches cover each position of an axis."""
    count = torch.zeros(length)
    for start in starts:
        count[start : start + patch] += 1
    return count


def coverage(shape: tuple[int, int], size: tuple[int, int], rows: list[int], cols: list[int]) -> torch.Tensor:
    """(H, W) number of patches covering each pixel: the outer product of the two axes' counts."""
    return torch.outer(axis_coverage(shape[0], size[0], rows), axis_coverage(shape[1], size[1], cols))


def crop_patches(images: torch.Tensor, boxes: list[Box], size: tuple[int, int]) -> torch.Tensor:
    """Stack the ``size`` patches at ``boxes`` from ``images`` (B, C, H, W) or masks (B, H, W)."""
    height, width = size
    return torch.stack([images[b, ..., top : top + height, left : left + width] for b, top, left in boxes])


def merge_patches(patches: torch.Tensor, boxes: list[Box], out: torch.Tensor) -> None:
    """Add each patch (N, C, h, w) into ``out`` (B, C, H, W) at its box."""
    height, width = patches.shape[-2:]
    for patch, (b, top, left) in zip(patches, boxes):
        out[b, :, top : top + height, left : left + width] += patch


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing (PIL's BILINEAR when shrinking)."""
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def context_padding(size: tuple[int, int], scale: int) -> tuple[int, int]:
    """Zero padding (rows, columns) on each side that keeps a ``scale``-times context inside the image."""
    return (scale - 1) * size[0] // 2, (scale - 1) * size[1] // 2


def pad_for_context(images: torch.Tensor, size: tuple[int, int], scale: int) -> torch.Tensor:
    """The images zero-padded for :func:`context_crops` (done once per batch, shared by all patches)."""
    pad_rows, pad_cols = context_padding(size, scale)
    return F.pad(images, (pad_cols, pad_cols, pad_rows, pad_rows))


def context_crops(padded: torch.Tensor, boxes: list[Box], size: tuple[int, int], scale: int) -> torch.Tensor:
    """The ``scale`` x ``size`` regions centred on the patches at ``boxes``, resized to ``size``.

    ``padded`` comes from :func:`pad_for_context`; a patch at (top, left) of the image has its context at
    (top, left) of the padded image because the padding is (scale - 1) / 2 patch sizes.
    """
    return resize(crop_patches(padded, boxes, (scale * size[0], scale * size[1])), size)
