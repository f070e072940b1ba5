"""GLNet's patch grid and the two directions of its feature sharing (global -> local, local -> global).

Coordinates: an image of ``H x W`` pixels is the continuous box ``[0, H) x [0, W)``; a feature map of
``h x w`` pixels is laid evenly over the box it describes (the global map over the whole image, a local map
over its patch), so feature pixel ``j`` has its centre at ``(j + 0.5) * H / h`` (the ``align_corners=False``
convention of ``F.interpolate``). Both directions resample bilinearly in that frame, with exact fractional
windows; the public code rounds windows to whole global feature pixels instead.

- **G -> L** (:func:`crop_features`): a global map sampled at the centres of a local map's pixels, i.e. the
  window of the patch cropped and resized to the local size (``roi_align`` with one sample per bin).
- **L -> G** (:class:`FeatureMerger`): each local map sampled at the centres of the global pixels inside its
  patch, summed on a global canvas and divided by how many patches cover each global pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

Item = tuple[int, int, int]  # (image index in the batch, top, left) of one patch


def grid_starts(length: int, patch: int, min_overlap: int) -> list[int]:
    """Patch offsets along one axis: the fewest evenly spaced patches overlapping by at least ``min_overlap``.

    The first patch starts at 0 and the last ends at the border (offsets rounded to whole pixels), as in
    the public GLNet code: 2448 px with 508 px patches and 50 px gives 6 patches 388 px apart, 2048 px 5.
    """
    if length <= patch:
        return [0]
    if not 0 <= min_overlap < patch:
        raise ValueError(f"the minimum overlap {min_overlap} px must be in [0, {patch}) for {patch} px patches")
    n = -(-length // patch)
    while patch * (n - 1) - (length - patch) < min_overlap * (n - 1):  # overlap = patch - span / (n - 1)
        n += 1
    span = length - patch
    return [(2 * i * span + n - 1) // (2 * (n - 1)) for i in range(n)]


@dataclass(frozen=True)
class PatchGrid:
    """The regular patch grid over ``height x width`` images (patches shrink to the image if it is smaller)."""

    height: int
    width: int
    patch_h: int
    patch_w: int
    tops: tuple[int, ...]
    lefts: tuple[int, ...]

    @classmethod
    def cover(cls, height: int, width: int, patch_size: int, min_overlap: int) -> PatchGrid:
        patch_h, patch_w = min(patch_size, height), min(patch_size, width)
        return cls(height, width, patch_h, patch_w, tuple(grid_starts(height, patch_h, min_overlap)),
                   tuple(grid_starts(width, patch_w, min_overlap)))

    @property
    def corners(self) -> list[tuple[int, int]]:
        """(top, left) of every patch of one image, row by row."""
        return [(top, left) for top in self.tops for left in self.lefts]

    def items(self, batch: int) -> list[Item]:
        """Every patch of a batch of images: image by image, each row by row."""
        return [(b, top, left) for b in range(batch) for top, left in self.corners]

    @cached_property
    def coverage(self) -> torch.Tensor:
        """How many patches cover each pixel, ``(H, W)`` int64 (at least 1 everywhere)."""
        rows = torch.zeros(self.height, dtype=torch.int64)
        cols = torch.zeros(self.width, dtype=torch.int64)
        for top in self.tops:
            rows[top : top + self.patch_h] += 1
        for left in self.lefts:
            cols[left : left + self.patch_w] += 1
        return rows[:, None] * cols[None, :]


def extract_patches(x: torch.Tensor, grid: PatchGrid, items: list[Item]) -> torch.Tensor:
    """The patches ``items`` of ``x`` (B, C, H, W), stacked to (len(items), C, patch_h, patch_w)."""
    return torch.stack([x[b, :, top : top + grid.patch_h, left : left + grid.patch_w] for b, top, left in items])


def merge_patches(maps: torch.Tensor, grid: PatchGrid, items: list[Item], batch: int) -> torch.Tensor:
    """Per-patch maps (n, C, h, w) put back on (batch, C, H, W) images, overlaps averaged.

    Maps at another resolution than the patch are resized bilinearly to it first (one patch at a time,
    so a full-resolution copy of every patch never exists at once).
    """
    out = maps.new_zeros(batch, maps.shape[1], grid.height, grid.width)
    size = (grid.patch_h, grid.patch_w)
    for patch_map, (b, top, left) in zip(maps, items):
        if patch_map.shape[-2:] != size:
            patch_map = F.interpolate(patch_map[None], size=size, mode="bilinear", align_corners=False)[0]
        out[b, :, top : top + grid.patch_h, left : left + grid.patch_w] += patch_map
    return out / grid.coverage.to(out)


def crop_features(
    fmap: torch.Tensor, grid: PatchGrid, items: list[Item], size: tuple[int, int] | torch.Size
) -> torch.Tensor:
    """G -> L: the window of each patch in a global map (B, C, h, w), resampled to ``size`` (n, C, *size)."""
    sy, sx = fmap.shape[-2] / grid.height, fmap.shape[-1] / grid.width
    boxes = torch.tensor(
        [[b, left * sx, top * sy, (left + grid.patch_w) * sx, (top + grid.patch_h) * sy] for b, top, left in items],
        dtype=fmap.dtype, device=fmap.device,
    )
    return roi_align(fmap, boxes, output_size=tuple(size), spatial_scale=1.0, sampling_ratio=1, aligned=True)


def interpolation_matrix(positions: torch.Tensor, length: int) -> torch.Tensor:
    """Bilinear weights (len(positions), length) sampling a 1-D signal at fractional index ``positions``.

    Positions outside ``[0, length - 1]`` take the border value, as ``F.interpolate`` does.
    """
    pos = positions.clamp(0, length - 1)
    low = pos.floor().long().clamp(max=max(length - 2, 0))
    frac = pos - low
    weights = positions.new_zeros(len(positions), length)
    rows = torch.arange(len(positions))
    weights[rows, low] = 1 - frac
    if length > 1:
        weights[rows, low + 1] += frac
    return weights


def footprint(start: int, extent: int, image: int, fsize: int, lsize: int) -> tuple[int, int, torch.Tensor]:
    """Global feature pixels ``[j0, j1)`` whose centres lie in the patch ``[start, start + extent)`` along one
    axis, and their positions in index units of the patch's local map of ``lsize`` pixels."""
    # centre of global pixel j: (2j + 1) * image / (2 fsize); inside the patch when start <= centre < start + extent
    j0 = -(-(2 * start * fsize - image) // (2 * image))
    j1 = -(-(2 * (start + extent) * fsize - image) // (2 * image))
    j0, j1 = max(j0, 0), min(j1, fsize)
    centres = (torch.arange(j0, j1, dtype=torch.float64) + 0.5) * image / fsize
    return j0, j1, (centres - start) * lsize / extent - 0.5


class FeatureMerger:
    """L -> G: accumulates local maps of patches onto global-size canvases and averages them.

    ``shapes`` maps a key (e.g. ``("c", 0)``) to the (channels, h, w) of the global map it is merged into.
    """

    def __init__(self, grid: PatchGrid, batch: int, shapes: dict[tuple[str, int], tuple[int, int, int]],
                 like: torch.Tensor) -> None:
        self.grid = grid
        self.canvas = {key: like.new_zeros(batch, *shape) for key, shape in shapes.items()}
        self._matrices: dict[tuple[int, int, int, bool], tuple[int, int, torch.Tensor]] = {}

    def _axis(
        self, start: int, fsize: int, lsize: int, rows: bool, like: torch.Tensor
    ) -> tuple[int, int, torch.Tensor]:
        key = (start, fsize, lsize, rows)
        if key not in self._matrices:
            grid = self.grid
            image, extent = (grid.height, grid.patch_h) if rows else (grid.width, grid.patch_w)
            j0, j1, pos = footprint(start, extent, image, fsize, lsize)
            self._matrices[key] = (j0, j1, interpolation_matrix(pos, lsize).to(like))
        return self._matrices[key]

    def add(self, key: tuple[str, int], maps: torch.Tensor, items: list[Item]) -> None:
        """Add the local maps (n, C, lh, lw) of patches ``items`` to the canvas of ``key``."""
        canvas = self.canvas[key]
        fh, fw = canvas.shape[-2:]
        lh, lw = maps.shape[-2:]
        for patch_map, (b, top, left) in zip(maps, items):
            r0, r1, my = self._axis(top, fh, lh, True, maps)
            c0, c1, mx = self._axis(left, fw, lw, False, maps)
            canvas[b, :, r0:r1, c0:c1] += my @ patch_map @ mx.T

    def coverage(self, fh: int, fw: int) -> torch.Tensor:
        """How many patches cover each pixel of an ``fh x fw`` global map (>= 1 everywhere)."""
        grid = self.grid
        rows = torch.zeros(fh)
        cols = torch.zeros(fw)
        for top in grid.tops:
            r0, r1, _ = footprint(top, grid.patch_h, grid.height, fh, 1)
            rows[r0:r1] += 1
        for left in grid.lefts:
            c0, c1, _ = footprint(left, grid.patch_w, grid.width, fw, 1)
            cols[c0:c1] += 1
        return rows[:, None] * cols[None, :]

    def result(self) -> dict[tuple[str, int], torch.Tensor]:
        """The merged global-size maps: canvas sums divided by the coverage."""
        return {key: canvas / self.coverage(*canvas.shape[-2:]).to(canvas) for key, canvas in self.canvas.items()}
