"""DeepGlobe Land Cover (journal Sec. III-D2, V-B): colour masks -> class ids, recorded split, cached crops.

Input layouts (``root`` is the folder given in the config):

- Kaggle: ``<root>/train/<id>_sat.jpg`` + ``<id>_mask.png`` side by side (the 803 labelled 2448x2448 tiles).
- torchgeo / geoap96: ``<root>/data/{training,test}_data/images/<id>_sat.jpg`` + ``.../masks/<id>_mask.png``;
  both folders are pooled before our own split.

Class ids (the authors' numbering, also torchgeo's): 0 urban, 1 agriculture, 2 rangeland, 3 forest, 4 water,
5 barren, 6 unknown. Unknown is ``IGNORE_INDEX``: left out of the loss and of every metric.

Colour rule: DeepGlobe's own instruction, each mask channel thresholded at 128, gives every pixel one of
the 8 RGB corners; the one corner that is no class, red (255, 0, 0), is an error naming the file. A pixel
is *off the palette* when some channel lies more than ``PALETTE_TOLERANCE`` (40) from its class colour:
more than lossy-compression noise, e.g. (128, 128, 128) or (10, 200, 30). Off-palette pixels keep their
thresholded class but are counted per mask (``mask_off_palette_px`` in the manifest); more than
``OFF_PALETTE_WARN`` (1%) of a mask gives a warning naming the file, more than ``OFF_PALETTE_ERROR``
(half) is an error: such a file is not a DeepGlobe colour mask.

Preprocessing (:func:`prepare`) splits the tile ids with a seeded permutation (written to ``split.json``),
cuts ``crop_train`` crops on a non-overlapping grid from the top-left for training (journal: 1024, four per
2448 tile) and one ``crop_test`` crop at the top-left for validation and test (journal: 2048), and stores
each split as memory-mappable ``<out>/<split>/images.npy`` (N, 3, c, c) uint8 and ``masks.npy`` (N, c, c)
uint8 ids, with ``manifest.json`` (parameters, ids, crop positions, class and off-palette pixel counts,
sha256 of sources and outputs). A preparation is built in a temporary folder beside ``<out>`` and replaces
it whole only when every split is written, so a failure never leaves new arrays beside an old manifest; an
existing preparation is reused only if its arrays still have the recorded shapes and checksums.
Images are normalised with the ImageNet mean/std when batches are made (scaled to [0, 1]
first), as the authors did for their ImageNet-pretrained encoder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import DataError
from ..io import atomic_dir, read_json, write_json
from ..provenance import provenance, relative_paths, repository_root, utc_now
from .prepared import SPLITS, array_records, check_own, crop_arrays, decode, image_size, intact

CLASSES = ("urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown")
COLOURS = ((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0))
IGNORE_INDEX = CLASSES.index("unknown")
THRESHOLD = 128
PALETTE_TOLERANCE = 40
OFF_PALETTE_WARN = 0.01
OFF_PALETTE_ERROR = 0.5
CONVERSION = {"threshold": THRESHOLD, "palette_tolerance": PALETTE_TOLERANCE, "off_palette_warn": OFF_PALETTE_WARN,
              "off_palette_error": OFF_PALETTE_ERROR}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FAKE_MARKER = "ddubench_fake.json"  # written by the fake-tile generator; its tiles are not DeepGlobe
LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "kaggle": (("train", "train"),),
    "torchgeo": (("data/training_data/images", "data/training_data/masks"),
                 ("data/test_data/images", "data/test_data/masks")),
}
_NO_CLASS = 255
LOG = logging.getLogger(__name__)


def _corner(rgb: Sequence[int]) -> int:
    """Index 0..7 of the RGB corner a colour thresholds to (bits R, G, B)."""
    return 4 * (rgb[0] >= THRESHOLD) + 2 * (rgb[1] >= THRESHOLD) + (rgb[2] >= THRESHOLD)


_CORNER_TO_ID = np.full(8, _NO_CLASS, np.uint8)
for _class_id, _colour in enumerate(COLOURS):
    _CORNER_TO_ID[_corner(_colour)] = _class_id


def _class_colours() -> str:
    return ", ".join(f"{name} {colour}" for name, colour in zip(CLASSES, COLOURS))


def colours_to_ids(rgb: np.ndarray, source: str | Path) -> tuple[np.ndarray, int]:
    """(H, W, 3) colour mask -> (H, W) uint8 class ids and its number of off-palette pixels (module docstring).

    Red pixels and a mostly off-palette mask are errors naming ``source``; more than 1% off the palette warns.
    """
    rgb = rgb[..., :3]
    bits = rgb >= THRESHOLD
    ids = _CORNER_TO_ID[4 * bits[..., 0] + 2 * bits[..., 1] + bits[..., 2]]
    bad = ids == _NO_CLASS
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        colour = tuple(int(v) for v in rgb[row, col])
        raise DataError(f"{source}: {int(bad.sum())} pixels (first at row {row}, column {col}: {colour}) are no "
                        f"DeepGlobe class colour after thresholding at {THRESHOLD}; fix the mask (class colours: "
                        f"{_class_colours()})")
    distance = np.abs(rgb.astype(np.int16) - np.asarray(COLOURS, np.int16)[ids]).max(axis=-1)
    off = int((distance > PALETTE_TOLERANCE).sum())
    share = off / max(ids.size, 1)
    if share > OFF_PALETTE_ERROR:
        raise DataError(f"{source}: {off} of {ids.size} pixels ({100 * share:.1f}%) are more than "
                        f"{PALETTE_TOLERANCE} away from every DeepGlobe class colour in some channel, so this is not "
                        f"a DeepGlobe colour mask (a class-id or lossy-compressed mask?); replace it with the RGB "
                        f"mask (class colours: {_class_colours()})")
    if share > OFF_PALETTE_WARN:
        LOG.warning("ddubench: warning: %s: %d of %d pixels (%.2f%%) are more than %d away from their class colour "
                    "in some channel; they keep the class of their colour thresholded at %d (counted in the "
                    "manifest as mask_off_palette_px)", source, off, ids.size, 100 * share, PALETTE_TOLERANCE,
                    THRESHOLD)
    return ids, off


def ids_to_colours(ids: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 colour mask (the inverse of :func:`colours_to_ids`)."""
    return np.asarray(COLOURS, np.uint8)[ids]


# ---------------------------------------------------------------------------------------------- source files


@dataclass(frozen=True)
class Tile:
    """One labelled DeepGlobe tile: its id and the paths of its image and colour mask."""

    id: str
    image: Path
    mask: Path


def _by_id(folder: Path, suffix: str) -> dict[str, Path]:
    return {path.name[: -len(suffix)]: path for path in folder.glob(f"*{suffix}")}


def find_tiles(root: str | Path) -> tuple[str, list[Tile]]:
    """The layout name and every (image, mask) pair under ``root``, sorted by id."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"DeepGlobe folder {root} does not exist; put the Kaggle data there (train/<id>_sat.jpg "
                        "and <id>_mask.png) or set deepglobe.root: null to use generated tiles")
    layout = next((name for name, folders in LAYOUTS.items() if (root / folders[0][0]).is_dir()), None)
    if layout is None:
        raise DataError(f"{root} holds neither train/ (Kaggle layout) nor data/training_data/images/ (torchgeo "
                        "layout); point deepglobe.root at the folder that contains one of them")
    tiles: dict[str, Tile] = {}
    for image_dir, mask_dir in LAYOUTS[layout]:
        if not (root / image_dir).is_dir():
            continue
        images, masks = _by_id(root / image_dir, "_sat.jpg"), _by_id(root / mask_dir, "_mask.png")
        for tile_id in sorted(images.keys() ^ masks.keys()):
            have, folder, want = ((images[tile_id], mask_dir, f"{tile_id}_mask.png") if tile_id in images
                                  else (masks[tile_id], image_dir, f"{tile_id}_sat.jpg"))
            raise DataError(f"{have} has no partner {root / folder / want}; add it or remove {have.name}")
        for tile_id in sorted(images):
            if tile_id in tiles:
                raise DataError(f"tile id {tile_id} occurs twice: {tiles[tile_id].image} and {images[tile_id]}; "
                                "remove one of them")
            tiles[tile_id] = Tile(tile_id, images[tile_id], masks[tile_id])
    if not tiles:
        raise DataError(f"no <id>_sat.jpg images in {root / LAYOUTS[layout][0][0]}; copy the DeepGlobe tiles there")
    return layout, [tiles[tile_id] for tile_id in sorted(tiles)]


def read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """Decode an RGB image fully (truncation is an error naming the file); returns (H, W, 3) uint8 and sha256."""
    return decode(path, ("RGB", "RGBA", "P"), "RGB", "DeepGlobe images and masks are RGB colour files (a class-id "
                  "mask must be converted back to colours)")


# ---------------------------------------------------------------------------------------------- split, crops


def split_counts(total: int, sizes: dict[str, float]) -> dict[str, int]:
    """Images per split from fractions (all floats, summing to 1) or counts (all integers, summing to <= total)."""
    values = [sizes[split] for split in SPLITS]
    if all(isinstance(v, int) for v in values):
        counts = dict(zip(SPLITS, values))
        if sum(values) > total:
            raise DataError(f"the split asks for {'+'.join(map(str, values))} = {sum(values)} images but only "
                            f"{total} exist; lower deepglobe.split counts or use fractions")
    elif all(isinstance(v, float) for v in values):
        if abs(sum(values) - 1) > 1e-6:
            raise DataError(f"deepglobe.split fractions {values} sum to {sum(values):g}, not 1; fix them")
        train, val = round(values[0] * total), round(values[1] * total)
        counts = {"train": train, "val": val, "test": total - train - val}
    else:
        raise DataError(f"deepglobe.split mixes fractions and counts ({values}); give all three as fractions "
                        "(e.g. 0.7, 0.15, 0.15) or all three as image counts")
    if min(counts.values()) < 1:
        raise DataError(f"the split of {total} images gives {counts}; every split needs at least one image, "
                        "so add images or change deepglobe.split")
    return counts


def split_ids(ids: Sequence[str], sizes: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Deterministic split of ``ids``: a seeded permutation of the sorted ids, cut into train/val/test."""
    ordered = sorted(ids)
    counts = split_counts(len(ordered), sizes)
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    splits, start = {}, 0
    for split in SPLITS:
        splits[split] = sorted(shuffled[start : start + counts[split]])
        start += counts[split]
    return splits


def crop_origins(height: int, width: int, size: int, grid: bool) -> list[tuple[int, int]]:
    """(row, column) of each size x size crop: a non-overlapping grid from the top-left, or the top-left one."""
    if not grid:
        return [(0, 0)]
    return [(r * size, c * size) for r in range(height // size) for c in range(width // size)]


# ---------------------------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class PrepareSpec:
    """How to split and crop: split sizes (fractions or counts), split seed, crop sides, subimage side."""

    train: int | float = 0.7
    val: int | float = 0.15
    test: int | float = 0.15
    split_seed: int = 0
    crop_train: int = 1024
    crop_test: int = 2048
    subimage: int = 256

    def __post_init__(self) -> None:
        if self.subimage < 1:
            raise DataError(f"subimage={self.subimage} must be at least 1; fix deepglobe.subimage or --subimage")
        for name in ("crop_train", "crop_test"):
            if getattr(self, name) < self.subimage:
                raise DataError(f"{name}={getattr(self, name)} is smaller than the subimage side {self.subimage}; "
                                f"fix deepglobe.crop or --{name.replace('_', '-')}")
            if getattr(self, name) % self.subimage:
                raise DataError(f"{name}={getattr(self, name)} is not a multiple of the subimage side "
                                f"{self.subimage}; change deepglobe.crop or deepglobe.subimage")

    def crop(self, split: str) -> int:
        return self.crop_train if split == "train" else self.crop_test


def _plan_crops(split: str, tiles: list[Tile], size: int, grid: bool) -> list[tuple[Tile, list[tuple[int, int]]]]:
    """Crop origins per tile from the file headers; image/mask size mismatches and too-small tiles are errors."""
    plan = []
    for tile in tiles:
        (width, height), mask_size = image_size(tile.image), image_size(tile.mask)
        if mask_size != (width, height):
            raise DataError(f"{tile.mask} is {mask_size[0]}x{mask_size[1]} but its image {tile.image.name} is "
                            f"{width}x{height}; replace the mismatched file")
        if min(width, height) < size:
            raise DataError(f"{tile.image} is {width}x{height}, smaller than the {size}x{size} {split} crop; "
                            "lower deepglobe.crop or remove the tile")
        plan.append((tile, crop_origins(height, width, size, grid)))
    return plan


def _write_split(out_dir: Path, split: str, tiles: list[Tile], size: int, grid: bool,
                 progress: bool) -> dict[str, Any]:
    """Decode, convert and crop the tiles of one split into memory-mappable images.npy / masks.npy."""
    plan = _plan_crops(split, tiles, size, grid)
    count = sum(len(origins) for _, origins in plan)
    image_counts, crop_counts = np.zeros(len(CLASSES), np.int64), np.zeros(len(CLASSES), np.int64)
    crops, sources = [], {}
    with crop_arrays(out_dir, split, count, size) as (images, masks):
        index = 0
        for tile, origins in tqdm(plan, desc=f"deepglobe {split}", unit="tile", disable=not progress, leave=False):
            pixels, image_sha = read_rgb(tile.image)
            colours, mask_sha = read_rgb(tile.mask)
            ids, off_palette = colours_to_ids(colours, tile.mask)
            image_counts += np.bincount(ids.ravel(), minlength=len(CLASSES))
            sources[tile.id] = {"image": str(tile.image), "mask": str(tile.mask), "image_sha256": image_sha,
                                "mask_sha256": mask_sha, "mask_off_palette_px": off_palette}
            for row, col in origins:
                images[index] = pixels[row : row + size, col : col + size].transpose(2, 0, 1)
                masks[index] = ids[row : row + size, col : col + size]
                crop_counts += np.bincount(masks[index].ravel(), minlength=len(CLASSES))
                crops.append({"id": tile.id, "row": row, "col": col})
                index += 1
    files = array_records(out_dir, split)
    return {"images": len(tiles), "crops": crops, "crop_px": size, "files": files, "sources": sources,
            "class_pixels_images": image_counts.tolist(), "class_pixels_crops": crop_counts.tolist()}


def prepare(root: str | Path, out_dir: str | Path, spec: PrepareSpec, progress: bool = True) -> dict[str, Any]:
    """Split and crop the tiles under ``root`` into ``out_dir`` (see the module docstring); returns the manifest.

    An existing preparation of the same tiles (paths and byte sizes) with the same spec and colour rule is
    reused if its arrays are intact; otherwise a new one is built beside it and replaces it whole.
    """
    started, clock = utc_now(), time.perf_counter()
    out_dir = Path(out_dir)
    layout, tiles = find_tiles(root)
    # relative to the repository when inside it: records that copy the manifest name no machine's paths
    source = {"root": relative_paths(str(Path(root).resolve()), repository_root()), "layout": layout,
              "tiles": {t.id: [t.image.stat().st_size, t.mask.stat().st_size] for t in tiles}}
    wanted = {"source": source, "spec": asdict(spec), "conversion": CONVERSION}
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        old = read_json(manifest_path)
        if {key: old.get(key) for key in wanted} == wanted and intact(old, out_dir):
            return old
    check_own(out_dir, "DeepGlobe")
    marker = Path(root) / FAKE_MARKER
    ids = split_ids([t.id for t in tiles], {s: getattr(spec, s) for s in SPLITS}, spec.split_seed)
    by_id = {t.id: t for t in tiles}
    with atomic_dir(out_dir) as build:
        write_json(build / "split.json", {"seed": spec.split_seed, "sizes": {s: getattr(spec, s) for s in SPLITS},
                                          "source": source["root"], "ids": ids})
        splits = {split: _write_split(build, split, [by_id[i] for i in ids[split]], spec.crop(split),
                                      grid=split == "train", progress=progress) for split in SPLITS}
        manifest = {
            "dataset": "deepglobe", **wanted, "splits": splits,
            "fake": read_json(marker) if marker.exists() else None,
            "classes": list(CLASSES), "colours": [list(c) for c in COLOURS], "ignore_index": IGNORE_INDEX,
            "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                              "on": "images scaled to [0, 1]"},
            "provenance": provenance(started=started, wall_time_s=time.perf_counter() - clock, inputs=[str(root)]),
        }
        write_json(build / "manifest.json", manifest)
    return manifest
