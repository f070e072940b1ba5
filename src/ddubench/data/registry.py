"""Dataset registry: a dataset kind name -> a loader returning in-memory tensors for one split."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError
from ..io import read_json
from . import deepglobe, inria, synthetic
from .prepared import dataset_of, load_arrays


@dataclass(frozen=True)
class SegmentationSplit:
    """One split: uint8 images (N, C, H, W), integer class-id masks (N, H, W) and dataset facts.

    The tensors may be backed by memory-mapped files (DeepGlobe), so masks can be uint8; :meth:`batch`
    always returns int64 masks. ``mean``/``std`` (per channel, on the [0, 1] scale) normalise the
    images of every batch when set; ``ignore_index`` is the class left out of loss and metrics.
    """

    images: torch.Tensor
    masks: torch.Tensor
    class_names: tuple[str, ...]
    subimage_size: tuple[int, int]
    ignore_index: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def in_channels(self) -> int:
        return self.images.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, index: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Images scaled to [0, 1] (then normalised if the dataset says so) and int64 masks of ``index``."""
        images = self.images[index].to(dtype).div_(255.0)
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=dtype).view(1, -1, 1, 1)
            images.sub_(mean).div_(std)
        return images, self.masks[index].long()

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches over the split; the last one may be smaller."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            yield self.batch(order[start : start + batch_size], dtype)


def load_synthetic(path: str | Path) -> SegmentationSplit:
    """Load ``<dir>/<split>.npz`` of the synthetic task."""
    path = Path(path)
    arrays = synthetic.load_split(path)
    manifest_path = path.parent / "manifest.json"
    if not manifest_path.exists():
        raise DataError(f"{manifest_path} is missing next to {path.name}; regenerate the dataset")
    size = read_json(manifest_path)["spec"]["subimage_size"]
    return SegmentationSplit(
        images=torch.from_numpy(arrays["images"]).unsqueeze(1),
        masks=torch.from_numpy(arrays["masks"]).long(),
        class_names=synthetic.CLASSES,
        subimage_size=(size, size),
    )


def _load_prepared(path: str | Path, class_names: tuple[str, ...], **facts: object) -> SegmentationSplit:
    """One prepared crop-store split ``<dir>/<split>`` (memory-mapped); its subimage side from the manifest."""
    images, masks, manifest = load_arrays(path)
    size = manifest["spec"]["subimage"]
    return SegmentationSplit(images=torch.from_numpy(images), masks=torch.from_numpy(masks), class_names=class_names,
                             subimage_size=(size, size), **facts)


def load_deepglobe(path: str | Path) -> SegmentationSplit:
    """Load one prepared DeepGlobe split (ImageNet normalisation; 'unknown' ignored)."""
    return _load_prepared(path, deepglobe.CLASSES, ignore_index=deepglobe.IGNORE_INDEX, mean=deepglobe.IMAGENET_MEAN,
                          std=deepglobe.IMAGENET_STD)


def load_inria(path: str | Path) -> SegmentationSplit:
    """Load one prepared Inria split (RGB scaled to [0, 1] only, as the thesis)."""
    return _load_prepared(path, inria.CLASSES)


DATASETS: dict[str, Callable[[str | Path], SegmentationSplit]] = {
    "synthetic": load_synthetic,
    "deepglobe": load_deepglobe,
    "inria": load_inria,
}


def split_path(data_dir: str | Path, split: str) -> Path:
    """Where ``split`` of a dataset folder lives: ``<dir>/<split>/`` (prepared DeepGlobe or Inria) or
    ``<dir>/<split>.npz`` (synthetic)."""
    folder = Path(data_dir) / split
    return folder if folder.is_dir() else Path(data_dir) / f"{split}.npz"


def detect_kind(path: str | Path) -> str:
    """The dataset kind of a split path: a file is a synthetic split, a folder a prepared one whose manifest names
    its dataset (DeepGlobe or Inria)."""
    return dataset_of(path) if Path(path).is_dir() else "synthetic"


def load_split(kind: str | None, path: str | Path) -> SegmentationSplit:
    """Load one split of a registered dataset kind (``None``: detected from the path)."""
    kind = kind or detect_kind(path)
    if kind not in DATASETS:
        raise DataError(f"unknown dataset kind {kind!r}; known kinds: {', '.join(sorted(DATASETS))}")
    return DATASETS[kind](path)
