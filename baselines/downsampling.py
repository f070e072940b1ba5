"""Downsampling, journal Table 2: the ResNet18 U-Net trained on training crops downsampled to s x s.

Training: every training image is resized to ``s x s`` (bilinear with antialiasing, ``align_corners=False``)
and its mask with nearest-neighbour sampling (``nearest-exact``: each output pixel takes the label at the
centre of the input region it covers, so classes are never blended); the trainer's dice loss is taken at
that size. The side of the training images is recorded in the buffer ``train_shape`` (saved with the
weights), which fixes the downsampling factor ``s / crop``.

Evaluation (``forward``): the input is downsampled by that same factor, so the network sees the ground
resolution it was trained at (a 2048 px test crop of a model trained on 1024 px crops downsampled to 256 is
predicted at 512 px), the output side rounded to the nearest multiple of 16 (the ResNet's downsampling)
when the factor does not give one. The logits are upsampled back to the input size, bilinearly by default
(``upsample="nearest"``, spec ``_UN``, repeats each low-resolution prediction instead), and the metric is
taken on the full-size argmax. The journal says neither how test images were reduced nor how predictions
were brought back to 2048 x 2048; with s equal to the crop side this model is the plain ResNet U-Net on full
images, which is consistent with its Table 2 row for 1024 (test mIoU 0.6926) sitting with the full-image
ResNet18 DDU-Net(4, 0, ·) (0.690, journal Table 7).

Spec: ``downsampling_S256`` (``_UN`` nearest upsampling, ``_R50`` ResNet50, ``_BT`` frozen BN in train mode).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ddubench.errors import DataError, ModelSpecError
from ddubench.models import register_model, register_spec_key
from ddubench.models.resnet_ddunet import DOWNSAMPLING

from .patching import Dice, resnet_unet_at

UPSAMPLE_MODES = {"B": "bilinear", "N": "nearest"}


def _upsample_mode(value: str) -> str:
    if value not in UPSAMPLE_MODES:
        raise ValueError("expected B (bilinear) or N (nearest)")
    return UPSAMPLE_MODES[value]


register_spec_key("S", "size", int)
register_spec_key("U", "upsample", _upsample_mode, lambda mode: mode[0].upper())


def resize_images(images: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing (a proper low-pass filter when shrinking)."""
    return F.interpolate(images, size=shape, mode="bilinear", align_corners=False, antialias=True)


def resize_masks(masks: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of (B, H, W) class ids (the label at each output pixel's centre)."""
    return F.interpolate(masks[:, None].to(torch.float32), size=shape, mode="nearest-exact")[:, 0].to(masks.dtype)


def upsample_logits(logits: torch.Tensor, shape: tuple[int, int], mode: str) -> torch.Tensor:
    """Logits brought back to ``shape``: bilinear interpolation or nearest-neighbour repetition."""
    if mode == "bilinear":
        return F.interpolate(logits, size=shape, mode="bilinear", align_corners=False)
    return F.interpolate(logits, size=shape, mode="nearest-exact")


class Downsampling(nn.Module):
    """A segmentation network trained on images downsampled to ``size``; predictions upsampled back.

    ``multiple``: side lengths the network accepts are multiples of it (16 for the ResNet U-Net).
    """

    def __init__(self, net: nn.Module, size: int, upsample: str = "bilinear", multiple: int = 1) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES.values():
            raise ModelSpecError(f"upsample={upsample!r} is not one of {', '.join(UPSAMPLE_MODES.values())}")
        self.net = net
        self.size = size
        self.upsample = upsample
        self.multiple = multiple
        self.register_buffer("train_shape", torch.zeros(2, dtype=torch.int64))

    def record_train_shape(self, height: int, width: int) -> None:
        """Remember the training images' size (it sets the downsampling factor); it may never change."""
        if not self.train_shape.any():
            self.train_shape.copy_(torch.tensor([height, width]))
        elif tuple(self.train_shape.tolist()) != (height, width):
            trained = "x".join(map(str, self.train_shape.tolist()))
            raise DataError(f"this downsampling model was trained on {trained} px images, not {height}x{width}; "
                            "train every downsampling model on crops of one size")

    def reduced_shape(self, height: int, width: int) -> tuple[int, int]:
        """The size an input is predicted at: scaled by ``size / training side``, to the nearest multiple."""
        if not self.train_shape.any():
            raise ModelSpecError("this downsampling model has not seen training images, so its downsampling "
                                 "factor is unknown; train it (or load a trained checkpoint) before predicting")
        sides = []
        for side, train_side in zip((height, width), self.train_shape.tolist()):
            step = train_side * self.multiple
            sides.append(self.multiple * max(1, (2 * side * self.size + step) // (2 * step)))
        return sides[0], sides[1]

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor, ignore_index: int | None, dice: Dice
    ) -> torch.Tensor:
        """Dice loss of the network on the batch downsampled to ``size x size``."""
        self.record_train_shape(images.shape[-2], images.shape[-1])
        shape = (self.size, self.size)
        return dice(self.net(resize_images(images, shape)), resize_masks(masks, shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        logits = self.net(resize_images(x, self.reduced_shape(height, width)))
        return upsample_logits(logits, (height, width), self.upsample)


@register_model(
    "downsampling",
    keys=("S",),
    optional_keys=("U", "R", "B"),
    defaults={"size": 256, "upsample": "bilinear", "resnet": 18, "frozen_bn": "eval"},
    label=lambda p: (f"ResNet{p['resnet']} U-Net, downsampled to {p['size']} px"
                     + (", nearest upsampling" if p["upsample"] == "nearest" else "")),
    io=(3, 7),
)
def build_downsampling(
    *, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float,
    weights_path: str | Path | None = None, **params
) -> Downsampling:
    """Downsampling with the ResNet U-Net (``weights_path``: local ImageNet weights; subimage size unused)."""
    size = params["size"]
    net = resnet_unet_at(size, "downsampled size S", in_channels, num_classes, dropout, weights_path, params)
    return Downsampling(net, size, params["upsample"], multiple=DOWNSAMPLING)
