"""DDU-Net with a torchvision ResNet encoder, the DeepGlobe model of journal Sec. V-B, Fig. 12, Table 9.

Encoder (ResNet18 or ResNet50, torchvision's modules; layer4, avgpool and fc are not used):

- block1 = conv1 + bn1 + relu (stride 2), block2 = maxpool + layer1 (H/4), block3 = layer2 (H/8),
  block4 = layer3 (H/16), then the "inter-conv": two trainable 3x3 convolutions (a DoubleConv) on the
  256 (ResNet18) or 1024 (ResNet50) bottleneck channels. The coarse network exchanges the last F of them.
  ``inter_conv=False`` (spec token ``_XN``) leaves the inter-conv out, the thesis's ablation (Tables 7.11-7.13).
- Blocks 1-4 are frozen (``requires_grad = False``). Their BatchNorm layers stay in eval mode when the
  model is put in training mode (``frozen_bn="eval"``, the default), so frozen means frozen: the running
  statistics never change. ``frozen_bn="train"`` is the authors' behaviour: their code called
  ``model.train()`` on the whole model, so the frozen blocks' running statistics kept updating.
- Weights: ``weights_path=None`` keeps torchvision's random initialisation (``weights=None``); ImageNet
  weights come only from a local torchvision state-dict file (e.g. ``resnet18-f37072fd.pth``), never
  from a download.

Decoder (journal Table 9, "256-128-64-32-7" for ResNet18): three up blocks (2x2 transposed conv, concat
the skip of blocks 3, 2, 1, DoubleConv), then a 2x2 transposed conv to full resolution and a DoubleConv
without skip (ResNet's first convolution already has stride 2), and a 1x1 head.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from ..errors import CheckpointError, ModelSpecError
from .blocks import DoubleConv, Up
from .coarse import CoarseNetwork
from .ddunet import DDUNetBase
from .unet import init_he

# Output channels of block1..block4 per ResNet depth.
RESNET_CHANNELS: dict[int, tuple[int, int, int, int]] = {18: (64, 64, 128, 256), 50: (64, 256, 512, 1024)}
FROZEN_BN_MODES = ("eval", "train")
DOWNSAMPLING = 16  # blocks 1-4 halve the resolution four times


def load_resnet_state(path: str | Path, depth: int) -> dict[str, torch.Tensor]:
    """Read a torchvision ResNet state dict from a local file; a clear error names the path."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"ImageNet weights file {path} does not exist; download torchvision's resnet{depth} weights "
            "to that path yourself (ddubench never downloads) or use weights_path=None for random weights"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"ImageNet weights file {path} is unreadable ({type(err).__name__}); "
                              "replace it with a torchvision ResNet state dict") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"ImageNet weights file {path} holds a {type(state).__name__}, not a state dict; "
                              "save `model.state_dict()` of a torchvision ResNet")
    return state


def check_resnet_depth(depth: int) -> None:
    """Only ResNet18 and ResNet50 have the block layout of journal Table 9 (and its ResNet50 analogue)."""
    if depth not in RESNET_CHANNELS:
        raise ModelSpecError(f"ResNet depth R={depth} is not supported; use R18 or R50")


def torchvision_resnet(depth: int, weights_path: str | Path | None = None) -> torchvision.models.ResNet:
    """A torchvision ResNet18/50, randomly initialised or loaded from a local state-dict file."""
    check_resnet_depth(depth)
    resnet = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    if weights_path is not None:
        try:
            resnet.load_state_dict(load_resnet_state(weights_path, depth))
        except RuntimeError as err:
            raise CheckpointError(
                f"ImageNet weights file {weights_path} does not fit torchvision's resnet{depth} "
                f"({str(err).splitlines()[0]}); use the resnet{depth} weights file"
            ) from None
    return resnet


class ResNetEncoder(nn.Module):
    """Frozen ResNet blocks 1-4 plus the trainable inter-conv; returns [block1, block2, block3, bottleneck]."""

    def __init__(
        self, depth: int = 18, weights_path: str | Path | None = None, frozen_bn: str = "eval", dropout: float = 0.0,
        inter_conv: bool = True,
    ) -> None:
        super().__init__()
        if frozen_bn not in FROZEN_BN_MODES:
            raise ModelSpecError(f"frozen_bn={frozen_bn!r} is not one of {', '.join(FROZEN_BN_MODES)}")
        resnet = torchvision_resnet(depth, weights_path)
        self.out_channels = RESNET_CHANNELS[depth]
        self.frozen_bn = frozen_bn
        self.block1 = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu)
        self.block2 = nn.Sequential(resnet.maxpool, resnet.layer1)
        self.block3 = resnet.layer2
        self.block4 = resnet.layer3
        self.frozen_blocks().requires_grad_(False)
        # thesis Tables 7.11-7.13 compare models without it (an identity here)
        channels = self.out_channels[-1]
        self.inter_conv = DoubleConv(channels, channels, dropout) if inter_conv else nn.Identity()

    def frozen_blocks(self) -> nn.ModuleList:
        """The four pretrained ResNet blocks (their parameters never train)."""
        return nn.ModuleList([self.block1, self.block2, self.block3, self.block4])

    def train(self, mode: bool = True) -> ResNetEncoder:
        """Training mode for the inter-conv; the frozen blocks stay in eval mode unless ``frozen_bn="train"``."""
        super().train(mode)
        if self.frozen_bn == "eval":
            self.frozen_blocks().eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.block1(x)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        return [f1, f2, f3, self.inter_conv(self.block4(f3))]


class ResNetDecoder(nn.Module):
    """Up blocks with the skips of blocks 3, 2, 1, then a skip-free 2x up step; returns the full-resolution map."""

    def __init__(self, channels: tuple[int, int, int, int], dropout: float = 0.0) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.ups = nn.ModuleList([
            Up(c4, c3, dropout, skip_channels=c3),
            Up(c3, c2, dropout, skip_channels=c2),
            Up(c2, c1, dropout, skip_channels=c1),
        ])
        self.out_channels = c1 // 2
        self.final = nn.Sequential(
            nn.ConvTranspose2d(c1, c1 // 2, kernel_size=2, stride=2),
            DoubleConv(c1 // 2, c1 // 2, dropout),
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return self.final(x)


class ResNetDDUNet(DDUNetBase):
    """DDU-Net(4, F, C) with a ResNet18/50 encoder on RGB subimages of a fixed size."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 7,
        resnet: int = 18,
        features: int = 0,
        communicate: bool = True,
        subimage_size: tuple[int, int] = (256, 256),
        coarse_kernel: int = 5,
        coarse_layers: int = 3,
        dropout: float = 0.0,
        weights_path: str | Path | None = None,
        frozen_bn: str = "eval",
        inter_conv: bool = True,
    ) -> None:
        super().__init__()
        if in_channels != 3:
            raise ModelSpecError(f"a ResNet encoder takes RGB input (3 channels), not {in_channels}; "
                                 "use it on an RGB dataset such as deepglobe")
        check_resnet_depth(resnet)
        bottleneck = RESNET_CHANNELS[resnet][-1]
        if not 0 <= features <= bottleneck:
            raise ModelSpecError(f"F={features} communicated maps is outside 0..{bottleneck}, the bottleneck width "
                                 f"of ResNet{resnet}; choose F <= {bottleneck}")
        if min(subimage_size) < DOWNSAMPLING or subimage_size[0] % DOWNSAMPLING or subimage_size[1] % DOWNSAMPLING:
            raise ModelSpecError(
                f"subimage size {subimage_size[0]}x{subimage_size[1]} is not a positive multiple of {DOWNSAMPLING} "
                f"(the ResNet encoder halves it four times); use multiples of {DOWNSAMPLING}"
            )
        self.resnet = resnet
        self.features = features
        self.communicate = communicate
        self.subimage_size = tuple(subimage_size)
        self.encoder = ResNetEncoder(resnet, weights_path, frozen_bn, dropout, inter_conv)
        self.coarse = CoarseNetwork(features, coarse_kernel, coarse_layers, dropout) if features else None
        self.decoder = ResNetDecoder(self.encoder.out_channels, dropout)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, kernel_size=1)
        for part in (self.encoder.inter_conv, self.coarse, self.decoder, self.head):
            if part is not None:
                init_he(part)
