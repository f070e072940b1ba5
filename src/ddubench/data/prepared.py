"""Prepared crop stores shared by the aerial datasets (DeepGlobe, Inria): checksummed, memory-mappable arrays.

A preparation folder ``<out>`` holds ``manifest.json``, ``split.json`` and per split ``<split>/images.npy``
(N, 3, c, c) uint8 and ``<split>/masks.npy`` (N, c, c) uint8 class ids. The manifest lists, per split, its
crops, crop side and the sha256 of both arrays; a preparation is reused only while every array still has its
recorded shape and checksum, and a new one replaces the whole folder, so the folder may hold nothing else.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DataError
from ..io import atomic_path, read_json

SPLITS = ("train", "val", "test")
ARRAYS = ("images.npy", "masks.npy")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path} is not a readable image ({err}); replace the file") from None


def decode(path: Path, modes: tuple[str, ...], convert: str, wrong_mode: str) -> tuple[np.ndarray, str]:
    """Decode a whole image whose pixel mode is one of ``modes``, converted to ``convert``; returns the pixels and
    the file's sha256. Truncation is an error naming the file; another mode is one too, ending in ``wrong_mode``."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode not in modes:
                raise DataError(f"{path} has pixel mode {image.mode}; {wrong_mode}")
            pixels = np.asarray(image.convert(convert))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path} is truncated or unreadable ({err}); replace the file") from None
    return pixels, hashlib.sha256(data).hexdigest()


@contextmanager
def crop_arrays(out_dir: Path, split: str, count: int, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Memory-mapped ``<split>/images.npy`` (count, 3, size, size) and ``masks.npy`` (count, size, size) uint8 to
    fill; both files appear, flushed, only when the block ends without an error."""
    (out_dir / split).mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / split / "images.npy") as image_tmp, atomic_path(out_dir / split / "masks.npy") as mask_tmp:
        images = np.lib.format.open_memmap(image_tmp, mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
        masks = np.lib.format.open_memmap(mask_tmp, mode="w+", dtype=np.uint8, shape=(count, size, size))
        yield images, masks
        images.flush()
        masks.flush()
        del images, masks


def array_records(out_dir: Path, split: str) -> dict[str, dict[str, str]]:
    """The manifest's ``files`` entry of one written split: relative file names and checksums."""
    return {name: {"file": f"{split}/{name}.npy", "sha256": sha256_file(out_dir / split / f"{name}.npy")}
            for name in ("images", "masks")}


def intact(manifest: dict[str, Any], out_dir: Path, splits: Sequence[str] = SPLITS) -> bool:
    """Whether every array the manifest lists is there with its recorded shape and sha256."""
    if not (out_dir / "split.json").is_file():
        return False
    for split in splits:
        entry = manifest["splits"][split]
        count, side = len(entry["crops"]), entry["crop_px"]
        shapes = {"images": (count, 3, side, side), "masks": (count, side, side)}
        for name, file in entry["files"].items():
            path = out_dir / file["file"]
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError):
                return False
            if (array.shape, array.dtype) != (shapes[name], np.uint8) or sha256_file(path) != file["sha256"]:
                return False
    return True


def _ours(name: str, own: Iterable[str]) -> bool:
    """A file a preparation writes, or the temporary file of one that a killed run left behind."""
    return any(name == own_name or (name.startswith(f".{own_name}.") and name.endswith(".tmp")) for own_name in own)


def check_own(out_dir: Path, dataset: str, splits: Sequence[str] = SPLITS) -> None:
    """``out_dir`` may hold only what a preparation writes, since a new preparation replaces it whole."""
    if not out_dir.is_dir():
        return
    foreign = []
    for path in sorted(out_dir.iterdir()):
        if path.name in splits and path.is_dir():
            foreign += [p for p in sorted(path.iterdir()) if not _ours(p.name, ARRAYS)]
        elif not _ours(path.name, ("split.json", "manifest.json")):
            foreign.append(path)
    if foreign:
        raise DataError(f"{out_dir} holds {', '.join(str(p) for p in foreign[:3])}, which no {dataset} preparation "
                        "wrote; a new preparation replaces the whole folder, so move them or choose another --out")


def load_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Memory-map one prepared split ``<out>/<split>``: images (N, 3, c, c), masks (N, c, c), the manifest."""
    path = Path(path)
    manifest_path = path.parent / "manifest.json"
    if not manifest_path.exists():
        raise DataError(f"{manifest_path} is missing next to {path.name}/; prepare the data with "
                        "`ddubench deepglobe-prepare` or `ddubench inria-prepare`, or let Snakemake build it")
    arrays = []
    for name in ("images", "masks"):
        file = path / f"{name}.npy"
        try:
            arrays.append(np.load(file, mmap_mode="c"))
        except (OSError, ValueError) as err:
            raise DataError(f"{file} is missing or unreadable ({err}); delete {path.parent} and prepare it "
                            "again") from None
    images, masks = arrays
    if images.ndim != 4 or images.shape[1] != 3 or masks.shape != (images.shape[0], *images.shape[2:]):
        raise DataError(f"{path} holds images {images.shape} and masks {masks.shape}; expected (N, 3, H, W) and "
                        "(N, H, W); delete it and prepare it again")
    return images, masks, read_json(manifest_path)


def dataset_of(path: str | Path) -> str:
    """The dataset a prepared split folder holds, from its manifest (``deepglobe`` for manifests without one)."""
    manifest_path = Path(path).parent / "manifest.json"
    if not manifest_path.is_file():
        return "deepglobe"
    return read_json(manifest_path).get("dataset", "deepglobe")
