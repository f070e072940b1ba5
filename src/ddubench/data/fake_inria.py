"""Inria-format generated tiles for tests, smoke and CPU runs: NOT Inria, only its file layout and look.

Writes ``<root>/train/images/<city><n>.tif`` (RGB) and ``<root>/train/gt/<city><n>.tif`` (one channel, 255
building, 0 background), LZW-compressed, for the five Inria cities, plus ``<root>/ddubench_fake.json`` recording
the parameters, so every later table can say its numbers come from generated tiles.

A tile: ground of grass, trees and bare soil (smooth random fields, as the fake DeepGlobe tiles), a few grey
roads, and buildings: rotated rectangles of city-dependent density and size, each roof one colour with a
lighter ridge, and a shadow cast to the lower right that is ground, not building. Deterministic in (seed, city,
number).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DataError
from ..io import atomic_path, read_json, write_json
from .fake_deepglobe import smooth_field
from .inria import BUILDING, CITIES, FAKE_MARKER

# buildings per 512 x 512 px and (min, max) side in px, per city: dense downtowns to sparse Kitsap
_DENSITY = {"austin": (32, (14, 40)), "chicago": (48, (12, 34)), "kitsap": (10, (14, 36)), "tyrol-w": (14, (12, 30)),
            "vienna": (36, (20, 56))}
_ROOFS = np.array([[150, 150, 155], [170, 95, 75], [110, 100, 95], [200, 195, 185], [90, 95, 105]], np.float32)
_GROUND = np.array([[95, 120, 70], [55, 80, 50], [150, 135, 110]], np.float32)  # grass, trees, soil


def _ground(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 ground: the locally strongest of three smooth fields picks grass, trees or soil."""
    fields = np.stack([smooth_field(rng, size, max(8, size // cell)) for cell in (6, 10, 8)])
    kind = np.argmax(fields + np.array([0.4, 0.0, -0.3])[:, None, None], axis=0)
    grain = 0.6 * smooth_field(rng, size, 3) + 0.4 * rng.standard_normal((size, size)).astype(np.float32)
    return _GROUND[kind] + (10 * grain)[..., None]


def _rectangle(centre: np.ndarray, half: np.ndarray, angle: float) -> list[tuple[float, float]]:
    """Corners of a rectangle of half sides ``half`` turned by ``angle`` around ``centre`` (x, y)."""
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    return [tuple(map(float, p)) for p in corners @ turn.T + centre]


def fake_tile(rng: np.random.Generator, size: int, city: str) -> tuple[np.ndarray, np.ndarray]:
    """One generated tile: (size, size, 3) uint8 image and (size, size) uint8 ground truth (255 building)."""
    image = Image.fromarray(np.clip(_ground(rng, size), 0, 255).astype(np.uint8))
    gt = Image.new("L", (size, size), 0)
    paint, label = ImageDraw.Draw(image), ImageDraw.Draw(gt)
    for _ in range(rng.integers(1, 4)):
        y = float(rng.uniform(0, size))
        paint.line([(0, y), (size, y + rng.uniform(-size / 3, size / 3))], fill=(120, 120, 118),
                   width=int(rng.integers(6, 12)))
    per_tile, (low, high) = _DENSITY[city]
    for _ in range(rng.poisson(per_tile * (size / 512) ** 2)):
        centre, half = rng.uniform(0, size, 2), rng.uniform(low, high, 2) / 2
        angle = float(rng.choice([0.0, rng.uniform(0, np.pi / 2)]))
        roof = np.clip(_ROOFS[rng.integers(len(_ROOFS))] + rng.normal(0, 8, 3), 0, 255)
        paint.polygon(_rectangle(centre + half.max() * 0.35, half, angle), fill=(45, 48, 45))  # shadow
        paint.polygon(_rectangle(centre, half, angle), fill=tuple(int(v) for v in roof))
        paint.polygon(_rectangle(centre, half * [1.0, 0.12], angle), fill=tuple(int(v) for v in np.minimum(roof + 30, 255)))
        label.polygon(_rectangle(centre, half, angle), fill=BUILDING)
    noisy = np.asarray(image, np.float32) + rng.normal(0, 3, (size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8), np.asarray(gt)


def _save(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="TIFF", compression="tiff_lzw")


def write_fake_inria(root: str | Path, tiles_per_city: int, size: int, seed: int = 0) -> Path:
    """Write ``tiles_per_city`` generated ``size`` px tiles for each Inria city under ``root``; reuse identical ones."""
    if tiles_per_city < 3 or size < 64:
        raise DataError(f"generated Inria tiles need at least 3 tiles per city of at least 64 px, not {tiles_per_city} "
                        f"of {size} px; fix thesis.inria.fake")
    root = Path(root)
    names = [f"{city}{number}" for city in CITIES for number in range(1, tiles_per_city + 1)]
    record = {"generator": "ddubench.data.fake_inria", "tiles_per_city": tiles_per_city, "size": size, "seed": seed,
              "note": "generated Inria-format tiles, not the Inria Aerial Image Labeling dataset"}
    marker = root / FAKE_MARKER
    images, truths = root / "train" / "images", root / "train" / "gt"
    if marker.exists() and read_json(marker) == record and all(
        (images / f"{name}.tif").exists() and (truths / f"{name}.tif").exists() for name in names
    ):
        return root
    if not marker.exists() and any(folder.is_dir() and any(folder.glob("*.tif")) for folder in (images, truths)):
        raise DataError(f"{root} holds .tif tiles that no generator wrote (no {FAKE_MARKER}): perhaps the real "
                        "Inria dataset; choose another folder for generated tiles")
    for folder in (images, truths):  # tiles of an earlier, larger generation would join the split
        for stale in folder.glob("*.tif") if folder.is_dir() else ():
            if stale.stem not in names:
                stale.unlink()
    for index, city in enumerate(CITIES):
        for number in range(1, tiles_per_city + 1):
            image, gt = fake_tile(np.random.default_rng([seed, index, number]), size, city)
            _save(image, images / f"{city}{number}.tif")
            _save(gt, truths / f"{city}{number}.tif")
    write_json(marker, record)
    return root
