"""Inria Aerial Image Labeling (thesis §5.3.3, §7.3): tiles, the per-city split, building patches, cached crops.

Input layout, the dataset's published one (``root`` is the folder that holds ``train/``):
``<root>/train/images/<city><n>.tif`` (RGB, 5000x5000 at 0.3 m/px) and ``<root>/train/gt/<city><n>.tif``
(one channel, 255 building and 0 background); five cities of 36 tiles each (austin, chicago, kitsap, tyrol-w,
vienna). The dataset's ``test/`` folder has no ground truth and is not read.

Preparation (:func:`prepare`, thesis §7.3.2 after GLNet's procedure):

- split per city by a seeded permutation of its sorted tile numbers: ``test`` tiles for testing, ``val`` for
  validation, the rest for training (thesis: 5 / 5 / 26), recorded in ``split.json``;
- training: ``crop_train`` patches (512) on a grid whose neighbours overlap by ``overlap`` px (32), i.e. 10 x 10
  patches of a 5000 px tile; patches without a building pixel are dropped (thesis: about 11k remain);
- validation and test: ``crop_eval`` crops (2048) on a non-overlapping grid from the top-left, 2 x 2 of a 5000 px
  tile. The thesis says 2048 px crops are "extracted from the same images" without saying how many; the grid
  takes every whole one;
- masks become class ids 0 background, 1 building; a grey level other than 0 and 255 is an error naming the file;
- images are scaled to [0, 1] when batches are made, with no further normalisation (as the thesis).

Arrays and manifest are a prepared crop store (:mod:`.prepared`), built in a temporary folder that replaces
``<out>`` whole when every split is written, and reused while its arrays keep their checksums.
"""

from __future__ import annotations

import re
import time
import zlib
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

CLASSES = ("background", "building")
CITIES = ("austin", "chicago", "kitsap", "tyrol-w", "vienna")
BUILDING = 255
FAKE_MARKER = "ddubench_fake.json"  # written by the generated-tile writer; its tiles are not Inria
_NAME = re.compile(r"^([a-z][a-z-]*?)(\d+)$")


@dataclass(frozen=True)
class Tile:
    """One labelled Inria tile: city, number, and the paths of its image and ground truth."""

    city: str
    number: int
    image: Path
    gt: Path

    @property
    def id(self) -> str:
        return f"{self.city}{self.number}"


def find_tiles(root: str | Path) -> list[Tile]:
    """Every (image, gt) pair under ``root/train``, sorted by city and number; layout faults are one-line errors."""
    root = Path(root)
    images_dir, gt_dir = root / "train" / "images", root / "train" / "gt"
    if not root.is_dir():
        raise DataError(f"Inria folder {root} does not exist; unpack AerialImageDataset there (train/images/*.tif "
                        "and train/gt/*.tif) or set thesis.inria.root: null to use generated tiles")
    for folder in (images_dir, gt_dir):
        if not folder.is_dir():
            raise DataError(f"{folder} is missing; point thesis.inria.root at the folder that holds train/images/ "
                            "and train/gt/ (the unpacked AerialImageDataset)")
    images = {path.stem: path for path in images_dir.glob("*.tif")}
    truths = {path.stem: path for path in gt_dir.glob("*.tif")}
    for name in sorted(images.keys() ^ truths.keys()):
        have, want = (images[name], gt_dir / f"{name}.tif") if name in images else (truths[name],
                                                                                   images_dir / f"{name}.tif")
        raise DataError(f"{have} has no partner {want}; add it or remove {have.name}")
    if not images:
        raise DataError(f"no .tif images in {images_dir}; copy the Inria training tiles there")
    tiles = []
    for name in sorted(images):
        match = _NAME.match(name)
        if match is None:
            raise DataError(f"{images[name]}: the name is not <city><number>.tif (e.g. austin1.tif); rename it or "
                            "remove it")
        tiles.append(Tile(match.group(1), int(match.group(2)), images[name], truths[name]))
    return sorted(tiles, key=lambda t: (t.city, t.number))


@dataclass(frozen=True)
class PrepareSpec:
    """Tiles per city for validation and test, the split seed, crop sides, patch overlap, subimage side."""

    val: int = 5
    test: int = 5
    split_seed: int = 0
    crop_train: int = 512
    overlap: int = 32
    crop_eval: int = 2048
    subimage: int = 128

    def __post_init__(self) -> None:
        for name in ("val", "test", "crop_train", "crop_eval", "subimage"):
            if getattr(self, name) < 1:
                raise DataError(f"{name}={getattr(self, name)} must be at least 1; fix thesis.inria "
                                "(split.val, split.test, crop.train, crop.eval, subimage) or the command's option")
        for name in ("crop_train", "crop_eval"):
            if getattr(self, name) % self.subimage:
                raise DataError(f"{name}={getattr(self, name)} is not a multiple of the subimage side "
                                f"{self.subimage}; change thesis.inria.crop or thesis.inria.subimage")
        if not 0 <= self.overlap < self.crop_train:
            raise DataError(f"overlap {self.overlap} must lie in 0..{self.crop_train - 1} (the training crop "
                            f"{self.crop_train}); fix thesis.inria.crop.overlap")

    def crop(self, split: str) -> int:
        return self.crop_train if split == "train" else self.crop_eval


def _city_number(city: str) -> int:
    """The seed word of a city's split: its place among Inria's five, else a checksum of its name, so a city's
    split never depends on which other cities are present."""
    return CITIES.index(city) if city in CITIES else zlib.crc32(city.encode())


def split_tiles(tiles: Sequence[Tile], spec: PrepareSpec) -> dict[str, list[Tile]]:
    """Per city, a seeded permutation of its tiles cut into test, val and train (the rest)."""
    splits: dict[str, list[Tile]] = {split: [] for split in SPLITS}
    for city in sorted({tile.city for tile in tiles}):
        own = sorted((t for t in tiles if t.city == city), key=lambda t: t.number)
        if len(own) <= spec.val + spec.test:
            raise DataError(f"city {city} has {len(own)} tiles, too few for {spec.test} test and {spec.val} "
                            "validation tiles and at least one for training; lower thesis.inria.split or add tiles")
        order = np.random.default_rng([spec.split_seed, _city_number(city)]).permutation(len(own))
        shuffled = [own[i] for i in order]
        splits["test"] += shuffled[: spec.test]
        splits["val"] += shuffled[spec.test : spec.test + spec.val]
        splits["train"] += shuffled[spec.test + spec.val :]
    return {split: sorted(chosen, key=lambda t: (t.city, t.number)) for split, chosen in splits.items()}


def grid_origins(length: int, size: int, overlap: int) -> list[int]:
    """Starts of the ``size`` windows along a side of ``length`` whose neighbours overlap by ``overlap`` px."""
    stride = size - overlap
    return list(range(0, length - size + 1, stride))


def read_image(path: Path) -> tuple[np.ndarray, str]:
    """(H, W, 3) uint8 RGB of an Inria image and its sha256."""
    return decode(path, ("RGB", "RGBA"), "RGB", "Inria images are RGB files")


def read_gt(path: Path) -> tuple[np.ndarray, str]:
    """(H, W) uint8 class ids (1 building) of an Inria ground truth and its sha256; other grey levels are errors."""
    grey, digest = decode(path, ("L", "1", "P"), "L", "Inria ground truths are one-channel files (0 and 255)")
    bad = (grey != 0) & (grey != BUILDING)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{path}: {int(bad.sum())} pixels (first at row {row}, column {col}: {int(grey[row, col])}) "
                        f"are neither 0 (background) nor {BUILDING} (building); fix the mask")
    return (grey == BUILDING).astype(np.uint8), digest


def _plan(split: str, tiles: list[Tile], spec: PrepareSpec, progress: bool) -> list[tuple[Tile, list[tuple[int, int]]]]:
    """Crop origins per tile; for training only the patches that hold a building pixel (reads the ground truths)."""
    size = spec.crop(split)
    plan = []
    for tile in tqdm(tiles, desc=f"inria {split} plan", unit="tile", disable=not progress or split != "train",
                     leave=False):
        (width, height), gt_size = image_size(tile.image), image_size(tile.gt)
        if gt_size != (width, height):
            raise DataError(f"{tile.gt} is {gt_size[0]}x{gt_size[1]} but its image {tile.image.name} is "
                            f"{width}x{height}; replace the mismatched file")
        if min(width, height) < size:
            raise DataError(f"{tile.image} is {width}x{height}, smaller than the {size}x{size} {split} crop; lower "
                            "thesis.inria.crop or remove the tile")
        if split == "train":
            ids, _ = read_gt(tile.gt)
            origins = [(r, c) for r in grid_origins(height, size, spec.overlap)
                       for c in grid_origins(width, size, spec.overlap) if ids[r : r + size, c : c + size].any()]
        else:
            origins = [(r, c) for r in grid_origins(height, size, 0) for c in grid_origins(width, size, 0)]
        plan.append((tile, origins))
    return plan


def _write_split(out_dir: Path, split: str, tiles: list[Tile], spec: PrepareSpec, progress: bool) -> dict[str, Any]:
    """Decode and crop the tiles of one split into memory-mappable images.npy / masks.npy."""
    size = spec.crop(split)
    plan = _plan(split, tiles, spec, progress)
    count = sum(len(origins) for _, origins in plan)
    if count == 0:
        raise DataError(f"the {split} tiles ({', '.join(t.id for t in tiles[:3])}, ...) give no crop with a "
                        "building pixel; check the ground truths")
    pixel_counts = np.zeros(len(CLASSES), np.int64)
    crops, sources = [], {}
    with crop_arrays(out_dir, split, count, size) as (images, masks):
        index = 0
        for tile, origins in tqdm(plan, desc=f"inria {split}", unit="tile", disable=not progress, leave=False):
            pixels, image_sha = read_image(tile.image)
            ids, gt_sha = read_gt(tile.gt)
            # absolute(), not resolve(): a symlinked data folder inside the repository stays a relative path
            sources[tile.id] = {"image": relative_paths(str(tile.image.absolute()), repository_root()),
                                "gt": relative_paths(str(tile.gt.absolute()), repository_root()),
                                "image_sha256": image_sha, "gt_sha256": gt_sha, "patches": len(origins)}
            for row, col in origins:
                images[index] = pixels[row : row + size, col : col + size].transpose(2, 0, 1)
                masks[index] = ids[row : row + size, col : col + size]
                pixel_counts += np.bincount(masks[index].ravel(), minlength=len(CLASSES))
                crops.append({"id": tile.id, "row": row, "col": col})
                index += 1
    return {"images": len(tiles), "crops": crops, "crop_px": size, "files": array_records(out_dir, split),
            "sources": sources, "class_pixels_crops": pixel_counts.tolist()}


def prepare(root: str | Path, out_dir: str | Path, spec: PrepareSpec, progress: bool = True) -> dict[str, Any]:
    """Split and crop the tiles under ``root`` into ``out_dir`` (see the module docstring); returns the manifest.

    An existing preparation of the same tiles (names and byte sizes) with the same spec is reused while its
    arrays are intact; otherwise a new one is built beside it and replaces it whole.
    """
    started, clock = utc_now(), time.perf_counter()
    out_dir = Path(out_dir)
    tiles = find_tiles(root)
    source = {"root": relative_paths(str(Path(root).absolute()), repository_root()),
              "tiles": {t.id: [t.image.stat().st_size, t.gt.stat().st_size] for t in tiles}}
    wanted = {"source": source, "spec": asdict(spec)}
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        old = read_json(manifest_path)
        if {key: old.get(key) for key in wanted} == wanted and intact(old, out_dir):
            return old
    check_own(out_dir, "Inria")
    splits = split_tiles(tiles, spec)
    marker = Path(root) / FAKE_MARKER
    with atomic_dir(out_dir) as build:
        write_json(build / "split.json", {"seed": spec.split_seed, "per_city": {"val": spec.val, "test": spec.test},
                                          "source": source["root"],
                                          "ids": {split: [t.id for t in chosen] for split, chosen in splits.items()}})
        written = {split: _write_split(build, split, splits[split], spec, progress) for split in SPLITS}
        manifest = {
            "dataset": "inria", **wanted, "splits": written,
            "fake": read_json(marker) if marker.exists() else None,
            "classes": list(CLASSES), "normalisation": None,
            "provenance": provenance(started=started, wall_time_s=time.perf_counter() - clock, inputs=[str(root)]),
        }
        write_json(build / "manifest.json", manifest)
    return manifest
