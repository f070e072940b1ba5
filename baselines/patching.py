"""Random patching, journal Table 1: the ResNet18 U-Net trained on random s x s patches of the training crops.

Training: each training step cuts ONE random ``s x s`` patch from every image of the batch (a uniformly
drawn top-left corner, from torch's global RNG, so a seeded run draws the same patches and a resumed run
continues the same sequence) and takes the trainer's dice loss on the network's output for the patches.

Evaluation (``forward``): the network slides over the whole image in ``s x s`` windows. Window offsets
along each axis are ``0, t, 2t, ...`` with stride ``t = s - s * overlap / 100``, plus one last window
flush with the far border when the stride does not reach it exactly. Each pixel's logits are the plain
mean of the logits of the windows covering it (:func:`coverage` gives that count per pixel). The default
``overlap = 0`` gives non-overlapping windows: on images whose sides are multiples of ``s`` (the paper's
2048 test crops and s <= 1024) every pixel is predicted exactly once, by a network that saw only its own
window, which is what a model trained on ``s x s`` patches can know. ``O50`` in the spec halves the stride.
The journal does not say how its patch-trained models were applied to the 2048 x 2048 test images.

The network is the ResNet U-Net of the DeepGlobe experiments (:class:`ResNetUNet`): DDU-Net(4, 0, N) of
``ddubench.models.resnet_ddunet`` on one whole input, frozen ResNet blocks 1-4, random weights by default.
Spec: ``patching_P256`` (``_O50`` overlap in percent, ``_R50`` ResNet50, ``_BT`` frozen BN in train mode).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ddubench.errors import DataError, ModelSpecError
from ddubench.models import register_model, register_spec_key
from ddubench.models.resnet_ddunet import DOWNSAMPLING, ResNetDDUNet

PIXELS_PER_PASS = 2048 * 2048  # windows per network call are capped at one journal test image's pixels

Dice = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

register_spec_key("P", "patch_size", int)
register_spec_key("O", "overlap", int)


class ResNetUNet(ResNetDDUNet):
    """The ResNet U-Net on a whole input (sides multiples of 16): DDU-Net(4, 0, N) with one subimage."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 7,
        resnet: int = 18,
        dropout: float = 0.0,
        weights_path: str | Path | None = None,
        frozen_bn: str = "eval",
    ) -> None:
        super().__init__(in_channels, num_classes, resnet=resnet, features=0, communicate=False,
                         subimage_size=(DOWNSAMPLING, DOWNSAMPLING), dropout=dropout, weights_path=weights_path,
                         frozen_bn=frozen_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Offsets of the windows along one axis: every ``stride`` pixels, the last one flush with the border."""
    if length < size:
        raise DataError(f"image side {length} px is smaller than the {size} px patch; "
                        f"use a patch size (P) of at most {length}")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def coverage(height: int, width: int, size: int, stride: int) -> torch.Tensor:
    """How many windows cover each pixel: the weight each pixel's logit sum is divided by."""
    counts = []
    for length in (height, width):
        axis = torch.zeros(length, dtype=torch.int64)
        for start in window_starts(length, size, stride):
            axis[start : start + size] += 1
        counts.append(axis)
    return counts[0][:, None] * counts[1][None, :]


def sliding_window(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int, stride: int,
    pixels_per_pass: int = PIXELS_PER_PASS,
) -> torch.Tensor:
    """Logits of ``net`` slid over ``x`` in ``size`` windows with ``stride``; overlaps averaged."""
    batch, _, height, width = x.shape
    windows = [(top, left) for top in window_starts(height, size, stride)
               for left in window_starts(width, size, stride)]
    per_pass = max(1, pixels_per_pass // (batch * size * size))
    total: torch.Tensor | None = None
    for first in range(0, len(windows), per_pass):
        chunk = windows[first : first + per_pass]
        logits = net(torch.cat([x[:, :, top : top + size, left : left + size] for top, left in chunk]))
        if total is None:  # at least float32, so overlaps of float16 (autocast) logits add up accurately
            dtype = torch.promote_types(logits.dtype, torch.float32)
            total = logits.new_zeros(batch, logits.shape[1], height, width, dtype=dtype)
        for i, (top, left) in enumerate(chunk):
            total[:, :, top : top + size, left : left + size] += logits[i * batch : (i + 1) * batch]
    return total / coverage(height, width, size, stride).to(total)


def random_patches(
    images: torch.Tensor, masks: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ``size x size`` patch per image and the same patch of its mask (torch's global RNG)."""
    batch, _, height, width = images.shape
    if height < size or width < size:
        raise DataError(f"training images of {height}x{width} px are smaller than the {size} px patch; "
                        f"use a patch size (P) of at most {min(height, width)}")
    corners = list(enumerate(zip(torch.randint(0, height - size + 1, (batch,)).tolist(),
                                 torch.randint(0, width - size + 1, (batch,)).tolist())))
    image_patches = torch.stack([images[i, :, top : top + size, left : left + size] for i, (top, left) in corners])
    mask_patches = torch.stack([masks[i, top : top + size, left : left + size] for i, (top, left) in corners])
    return image_patches, mask_patches


class RandomPatching(nn.Module):
    """A segmentation network trained on random ``patch_size`` patches and slid over whole images."""

    def __init__(self, net: nn.Module, patch_size: int, overlap: int = 0) -> None:
        super().__init__()
        if not 0 <= overlap < 100 or (patch_size * overlap) % 100:
            raise ModelSpecError(f"overlap O{overlap} must be a percentage 0..99 of the {patch_size} px patch "
                                 "that gives a whole-pixel stride (e.g. O0, O50)")
        self.net = net
        self.patch_size = patch_size
        self.stride = patch_size - patch_size * overlap // 100

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor, ignore_index: int | None, dice: Dice
    ) -> torch.Tensor:
        """Dice loss of the network on one random patch per image."""
        image_patches, mask_patches = random_patches(images, masks, self.patch_size)
        return dice(self.net(image_patches), mask_patches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sliding_window(self.net, x, self.patch_size, self.stride)


@register_model(
    "patching",
    keys=("P",),
    optional_keys=("O", "R", "B"),
    defaults={"patch_size": 256, "overlap": 0, "resnet": 18, "frozen_bn": "eval"},
    label=lambda p: (f"ResNet{p['resnet']} U-Net, random {p['patch_size']} px patches"
                     + (f", windows overlapping {p['overlap']}%" if p["overlap"] else "")),
    io=(3, 7),
)
def build_patching(
    *, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float,
    weights_path: str | Path | None = None, **params
) -> RandomPatching:
    """Random patching with the ResNet U-Net (``weights_path``: local ImageNet weights; subimage size unused)."""
    size = params["patch_size"]
    net = resnet_unet_at(size, "patch size P", in_channels, num_classes, dropout, weights_path, params)
    return RandomPatching(net, size, params["overlap"])


def resnet_unet_at(
    size: int, what: str, in_channels: int, num_classes: int, dropout: float, weights_path: str | Path | None,
    params: dict,
) -> ResNetUNet:
    """The ResNet U-Net of a baseline working at ``size`` px, which must be a positive multiple of 16."""
    if size < DOWNSAMPLING or size % DOWNSAMPLING:
        letter = what.split()[-1]
        raise ModelSpecError(f"{what}{size} is not a positive multiple of {DOWNSAMPLING} (the ResNet encoder "
                             f"halves it four times); use e.g. {letter}16, {letter}32, ..., {letter}1024")
    return ResNetUNet(in_channels, num_classes, resnet=params["resnet"], dropout=dropout, weights_path=weights_path,
                      frozen_bn=params["frozen_bn"])
