"""DeepGlobe-format fake tiles for tests and smoke runs: NOT DeepGlobe, only its file format and look.

Writes ``<root>/train/<id>_sat.jpg`` (JPEG, quality 90) and ``<id>_mask.png`` (lossless RGB PNG in the
DeepGlobe class colours) of any size, plus ``<root>/ddubench_fake.json`` recording the parameters, so every
later table can say its numbers come from generated tiles.

Land cover: one smooth random field per class (a coarse Gaussian grid upsampled bicubically), turned into
Gumbel noise; each pixel takes the class maximising log(share) + noise. Every pixel's class is then drawn
with the class shares of journal Table 3 (unknown raised to 1% so small sets hold ignored pixels), while
neighbouring pixels share their noise and hence their class: regions with smooth, curved borders.
The satellite image paints each class with its own colour and texture (fine grain, field stripes for
agriculture) under a slow illumination field. Deterministic in (seed, tile id).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DataError
from ..io import atomic_path, read_json, write_json
from .deepglobe import CLASSES, FAKE_MARKER, ids_to_colours

_SHARES = np.array([9.35, 56.76, 10.21, 13.75, 3.74, 6.14, 1.0])  # journal Table 3 %, unknown raised to 1%
# per class: mean RGB and texture amplitude
_COLOUR = np.array([[125, 120, 118], [160, 150, 85], [150, 135, 95], [45, 75, 40], [35, 60, 100], [195, 180, 155],
                    [235, 235, 240]], np.float32)
_TEXTURE = np.array([38, 12, 18, 22, 6, 14, 4], np.float32)
_AGRICULTURE = CLASSES.index("agriculture")


def smooth_field(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """A (size, size) float32 random field, smooth over about ``cell`` pixels, standardised to unit variance."""
    coarse = rng.standard_normal((size // cell + 2, size // cell + 2)).astype(np.float32)
    side = coarse.shape[0] * cell
    field = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC))[:size, :size]
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def fake_labels(rng: np.random.Generator, size: int, region_px: int) -> np.ndarray:
    """(size, size) uint8 class ids in coherent regions about ``region_px`` across, shares as journal Table 3."""
    log_share = np.log(_SHARES / _SHARES.sum())
    scores = []
    for share in log_share:
        uniform = np.clip(1 / (1 + np.exp(-1.702 * smooth_field(rng, size, region_px))), 1e-6, 1 - 1e-6)
        scores.append(share - np.log(-np.log(uniform)))  # logistic approximation of the normal CDF, then Gumbel
    return np.argmax(np.stack(scores), axis=0).astype(np.uint8)


def fake_image(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 satellite-like image: class colour + class texture + slow illumination."""
    size = labels.shape[0]
    grain = 0.6 * smooth_field(rng, size, 3) + 0.4 * rng.standard_normal((size, size)).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    stripes = np.sin((cols * np.cos(angle) + rows * np.sin(angle)) * (2 * np.pi / 9))
    texture = np.where(labels == _AGRICULTURE, 0.5 * grain + 0.8 * stripes, grain) * _TEXTURE[labels]
    light = 12 * smooth_field(rng, size, max(size // 2, 1))
    image = _COLOUR[labels] + (texture + light)[..., None] + 4 * rng.standard_normal((size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _save(array: np.ndarray, path: Path, **options: Any) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=options.pop("format"), **options)


def write_fake_deepglobe(root: str | Path, images: int, size: int, seed: int = 0) -> Path:
    """Write ``images`` fake ``size`` x ``size`` tiles in the Kaggle layout under ``root``; reuse identical ones."""
    if images < 1 or size < 16:
        raise DataError(f"fake DeepGlobe needs at least 1 image of at least 16 px, not {images} of {size} px; "
                        "fix deepglobe.fake")
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = sorted(str(100000 + int(i)) for i in rng.choice(900000, size=images, replace=False))
    record = {"generator": "ddubench.data.fake_deepglobe", "images": images, "size": size, "seed": seed, "ids": ids,
              "note": "generated DeepGlobe-format tiles, not DeepGlobe data"}
    marker = root / FAKE_MARKER
    folder = root / "train"
    if marker.exists() and read_json(marker) == record and all(
        (folder / f"{i}_sat.jpg").exists() and (folder / f"{i}_mask.png").exists() for i in ids
    ):
        return root
    for tile_id in ids:
        tile_rng = np.random.default_rng([seed, int(tile_id)])
        labels = fake_labels(tile_rng, size, region_px=max(16, size // 6))
        _save(fake_image(tile_rng, labels), folder / f"{tile_id}_sat.jpg", format="JPEG", quality=90)
        _save(ids_to_colours(labels), folder / f"{tile_id}_mask.png", format="PNG")
    write_json(marker, record)
    return root
