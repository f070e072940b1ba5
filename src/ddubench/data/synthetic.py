"""The synthetic circles-and-line task of the DDU-Net paper (journal Sec. III-D1, thesis Sec. 5.3.1).

A (32k)x32 one-channel image holds two white circles of radius 4, each fully inside one 32x32 subimage,
in two different subimages. The mask has classes 0 background, 1 the line segment joining the circle
centres, 2 the circles (drawn over the line). Solving the line needs context from both circles, which
lie in different subimages: the task measures communication between subimages.

Two placement rules exist (paper_facts 3.1):
- ``journal``: the second circle's subimage is uniform over all other subimages, line width 3, as the
  authors' journal-era generator did; the line then spans the whole image at large k.
- ``thesis``: at most one subimage between the two circles (1 or 2 subimages apart), line width 2.

``line_width`` overrides the rule's width (e.g. the thesis placement with the journal's width 3); the
placements do not depend on it, so two widths of one rule draw the same circles.

Drawing uses Pillow's ``ImageDraw.line``/``ellipse``, the primitives the authors used, so line widths
and circle rasterisation mean the same as in the paper.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DataError
from ..io import atomic_path, read_json, write_json

CLASSES = ("background", "line", "circle")
SPLITS = ("train", "val", "test")
RULES = ("journal", "thesis")
LINE_WIDTH = {"journal": 3, "thesis": 2}


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of one synthetic dataset (one k)."""

    k: int
    rule: str = "journal"
    subimage_size: int = 32
    radius: int = 4
    seed: int = 0
    line_width: int | None = None  # None: the rule's width (LINE_WIDTH)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise DataError(f"unknown placement rule {self.rule!r}; use one of {', '.join(RULES)}")
        if self.line_width is None:
            object.__setattr__(self, "line_width", LINE_WIDTH[self.rule])
        if self.line_width < 1:
            raise DataError(f"line width {self.line_width} px draws no line; use a width of at least 1 px")
        if self.k < 2:
            raise DataError(f"k={self.k} subimages cannot hold two circles in different subimages; use k >= 2")
        if 2 * self.radius + 1 > self.subimage_size:
            raise DataError(f"a circle of radius {self.radius} does not fit a {self.subimage_size}px subimage")

    def manifest(self) -> dict[str, object]:
        """The parameters a dataset's manifest records; the line width only where it overrides the rule's,
        so the manifests (and records) of datasets written before the override existed stay valid."""
        fields = asdict(self)
        if self.line_width == LINE_WIDTH[self.rule]:
            del fields["line_width"]
        return fields

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of an image."""
        return self.subimage_size, self.subimage_size * self.k


def second_subimage_candidates(first: int, k: int, rule: str) -> list[int]:
    """The subimages the second circle may lie in given the first one's, by the placement rule."""
    if rule == "journal":
        return [s for s in range(k) if s != first]
    return [s for s in range(k) if 1 <= abs(s - first) <= 2]


def second_subimage(rng: np.random.Generator, first: int, k: int, rule: str) -> int:
    """Pick the second circle's subimage given the first one's, uniformly among the rule's candidates."""
    candidates = second_subimage_candidates(first, k, rule)
    return int(candidates[rng.integers(len(candidates))])


def draw_mask(spec: SyntheticSpec, first: tuple[int, int], second: tuple[int, int]) -> np.ndarray:
    """The (H, W) uint8 mask of circles centred at ``first`` and ``second``: the line from first to second, then
    the circles over it. The order matters for even line widths: Pillow widens such a line on one side of its
    direction, so the line from second to first covers other pixels."""
    height, width = spec.shape
    r = spec.radius
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    draw.line([tuple(first), tuple(second)], fill=1, width=spec.line_width)
    for cx, cy in (first, second):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=2)
    return np.asarray(mask)


def draw_sample(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (image, mask, centres) triple; image is uint8 0/255, mask uint8 class ids, centres (2, 2) as (x, y)
    with the first-drawn circle first."""
    height, width = spec.shape
    s, r = spec.subimage_size, spec.radius
    first = int(rng.integers(spec.k))
    second = second_subimage(rng, first, spec.k, spec.rule)
    centres = np.array(
        [[int(rng.integers(sub * s + r, (sub + 1) * s - r)), int(rng.integers(r, height - r))] for sub in (first, second)]
    )
    image = Image.new("L", (width, height), 0)
    draw_image = ImageDraw.Draw(image)
    for cx, cy in centres:
        draw_image.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    mask = draw_mask(spec, tuple(int(v) for v in centres[0]), tuple(int(v) for v in centres[1]))
    return np.asarray(image), mask, centres


def generate(spec: SyntheticSpec, split: str, count: int) -> dict[str, np.ndarray]:
    """Generate ``count`` samples of one split; deterministic in (seed, k, rule, split)."""
    rng = np.random.default_rng([spec.seed, spec.k, RULES.index(spec.rule), SPLITS.index(split)])
    height, width = spec.shape
    images = np.empty((count, height, width), np.uint8)
    masks = np.empty((count, height, width), np.uint8)
    centres = np.empty((count, 2, 2), np.int16)
    for i in range(count):
        images[i], masks[i], centres[i] = draw_sample(rng, spec)
    return {"images": images, "masks": masks, "centres": centres}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_dataset(spec: SyntheticSpec, counts: dict[str, int], out_dir: str | Path) -> Path:
    """Write ``<out_dir>/{train,val,test}.npz`` and ``manifest.json`` (parameters, counts, checksums).

    An existing dataset with the same parameters is reused while its files keep the manifest's checksums;
    otherwise it is regenerated, the manifest written last.
    """
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    wanted = {"spec": spec.manifest(), "line_width": spec.line_width, "counts": counts}
    if manifest_path.exists():
        manifest = read_json(manifest_path)
        if {key: manifest.get(key) for key in wanted} == wanted and all(
            (out_dir / f"{split}.npz").exists()
            and _sha256(out_dir / f"{split}.npz") == manifest.get("files", {}).get(split, {}).get("sha256")
            for split in counts
        ):
            return out_dir
        manifest_path.unlink()  # first: an interrupted rewrite must not leave new files under the old manifest
    files = {}
    for split, count in counts.items():
        target = out_dir / f"{split}.npz"
        with atomic_path(target) as tmp:
            with tmp.open("wb") as handle:
                np.savez_compressed(handle, **generate(spec, split, count))
        files[split] = {"file": target.name, "sha256": _sha256(target)}
    write_json(manifest_path, {**wanted, "classes": list(CLASSES), "files": files})
    return out_dir


def load_split(path: str | Path) -> dict[str, np.ndarray]:
    """Load one split written by :func:`write_dataset`; a clear error if it is missing or malformed."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"dataset file {path} does not exist; generate it with `ddubench generate-synthetic` "
            "or let Snakemake build it"
        )
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in ("images", "masks")}
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"dataset file {path} is unreadable ({err}); delete it and regenerate it") from None
    if arrays["images"].shape != arrays["masks"].shape or arrays["images"].ndim != 3:
        raise DataError(f"dataset file {path} has images {arrays['images'].shape} and masks "
                        f"{arrays['masks'].shape}; expected two (N, H, W) arrays of equal shape; regenerate it")
    return arrays


def load_centres(path: str | Path) -> np.ndarray | None:
    """The (N, 2, 2) circle centres (x, y) of one split written by :func:`write_dataset`, or None if the
    file does not hold them (not a synthetic split)."""
    with np.load(path) as data:
        return data["centres"] if "centres" in data.files else None
