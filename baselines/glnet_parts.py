"""GLNet's building blocks: ResNet50 features, the FPN head with sharing inputs, f_agg, focal loss.

The FPN head follows the public code's layout (numbers from the notes, layers written here): 1x1 lateral
convolutions to 256 channels on C2-C5 with a bilinear top-down path ("ps0"), two rows of 3x3 smoothing
convolutions (256 -> 256 "ps1", 256 -> 128 "ps2"), the four ps2 maps upsampled to stride 4 and concatenated
(512 channels, "ps3"), a 3x3 classifier; the logits come out at 1/4 of the input resolution. There are no
activations or normalisations in the head. A head that takes the other branch's maps (``shared=True``)
concatenates them at the input of every lateral and smoothing convolution and of the final concatenation,
doubling those input channels, and reduces the 1024 concatenated channels to 512 with one more 3x3
convolution before the classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ddubench.models.resnet_ddunet import torchvision_resnet

RESNET50_CHANNELS = (256, 512, 1024, 2048)  # C2..C5, strides 4, 8, 16, 32
PS3_CHANNELS = 512
TAPS = ("c", "ps0", "ps1", "ps2")  # the maps shared between the branches, each at the four strides

# share(tap, level, own map) -> the other branch's map for that tap and level, at the own map's size
Share = Callable[[str, int, torch.Tensor], torch.Tensor]


class ResNet50Features(nn.Module):
    """torchvision's ResNet50 without avgpool and fc; returns [C2, C3, C4, C5]."""

    def __init__(self, weights_path: str | Path | None = None) -> None:
        super().__init__()
        resnet = torchvision_resnet(50, weights_path)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layers = nn.ModuleList([resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


@dataclass
class FPNOutput:
    """What a branch produces: logits (stride 4; None when not asked for), ps3 and the shareable taps."""

    logits: torch.Tensor | None
    ps3: torch.Tensor
    taps: dict[str, list[torch.Tensor]]


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class FPNHead(nn.Module):
    """The FPN segmentation head on C2-C5; ``shared=True`` adds the other branch's maps at every layer."""

    def __init__(self, num_classes: int, shared: bool = False) -> None:
        super().__init__()
        k = 2 if shared else 1
        self.shared = shared
        self.lateral = nn.ModuleList([nn.Conv2d(c * k, 256, 1) for c in RESNET50_CHANNELS])
        self.smooth1 = nn.ModuleList([nn.Conv2d(256 * k, 256, 3, padding=1) for _ in range(4)])
        self.smooth2 = nn.ModuleList([nn.Conv2d(256 * k, 128, 3, padding=1) for _ in range(4)])
        self.reduce = nn.Conv2d(2 * PS3_CHANNELS, PS3_CHANNELS, 3, padding=1) if shared else None
        self.classify = nn.Conv2d(PS3_CHANNELS, num_classes, 3, padding=1)
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)

    def forward(self, c: list[torch.Tensor], share: Share | None = None, logits: bool = True) -> FPNOutput:
        if self.shared != (share is not None):
            raise ValueError("a shared FPN head needs the other branch's maps, a plain one takes none")

        def inputs(tap: str, level: int, own: torch.Tensor) -> torch.Tensor:
            return own if share is None else torch.cat([own, share(tap, level, own)], dim=1)

        ps0: list[torch.Tensor] = [None] * 4  # type: ignore[list-item]
        ps0[3] = self.lateral[3](inputs("c", 3, c[3]))
        for level in (2, 1, 0):
            top_down = _resize(ps0[level + 1], c[level].shape[-2:])
            ps0[level] = self.lateral[level](inputs("c", level, c[level])) + top_down
        ps1 = [conv(inputs("ps0", level, x)) for level, (conv, x) in enumerate(zip(self.smooth1, ps0))]
        ps2 = [conv(inputs("ps1", level, x)) for level, (conv, x) in enumerate(zip(self.smooth2, ps1))]
        size = ps2[0].shape[-2:]
        ps3 = torch.cat([_resize(inputs("ps2", level, x), size) for level, x in enumerate(ps2)], dim=1)
        if self.reduce is not None:
            ps3 = self.reduce(ps3)
        return FPNOutput(self.classify(ps3) if logits else None, ps3, {"c": c, "ps0": ps0, "ps1": ps1, "ps2": ps2})


class Branch(nn.Module):
    """One GLNet branch: ResNet50 features and an FPN head (with sharing inputs when ``shared``)."""

    def __init__(self, num_classes: int, shared: bool, weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.backbone = ResNet50Features(weights_path)
        self.fpn = FPNHead(num_classes, shared)

    def forward(self, x: torch.Tensor, share: Share | None = None, logits: bool = True) -> FPNOutput:
        return self.fpn(self.backbone(x), share, logits)


class Aggregation(nn.Module):
    """f_agg: one 3x3 convolution on [local ps3 | global ps3 cropped to the patch] -> class logits.

    A convolution is linear in its input channels, so it is also evaluated as a local part plus a global
    part (exactly the same numbers): the local part can be taken as soon as a patch's ps3 exists and the
    512-channel map dropped, which is what keeps inference memory independent of the number of patches.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * PS3_CHANNELS, num_classes, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def local_part(self, local_ps3: torch.Tensor) -> torch.Tensor:
        return F.conv2d(local_ps3, self.conv.weight[:, :PS3_CHANNELS], self.conv.bias, padding=1)

    def global_part(self, global_ps3: torch.Tensor) -> torch.Tensor:
        return F.conv2d(global_ps3, self.conv.weight[:, PS3_CHANNELS:], None, padding=1)

    def forward(self, local_ps3: torch.Tensor, global_ps3: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([local_ps3, global_ps3], dim=1))


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float, ignore_index: int | None = None
) -> torch.Tensor:
    """Mean of ``-(1 - p_t)^gamma log p_t`` over the pixels whose target is not ``ignore_index``.

    ``p_t`` is the softmax probability of the target class (no class weighting alpha, as in GLNet's code).
    With no valid pixel the loss is 0 (still connected to the graph).
    """
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    log_pt = logits.log_softmax(dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_pt.exp()) ** gamma) * log_pt
    return (loss * valid).sum() / valid.sum().clamp_min(1)


def resize_labels(masks: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Nearest-neighbour resize of integer masks (..., H, W): output pixel ``j`` takes input ``floor((j + 0.5) H / h)``
    (PIL's and ``nearest-exact``'s rule), so ignore labels stay ignore labels."""
    height, width = masks.shape[-2:]
    rows = ((torch.arange(size[0]) * 2 + 1) * height // (2 * size[0])).to(masks.device)
    cols = ((torch.arange(size[1]) * 2 + 1) * width // (2 * size[1])).to(masks.device)
    return masks.index_select(-2, rows).index_select(-1, cols)
