"""Networks inside FCtL (public code, DeepGlobe branch): VGG16 encoders, the FCN-8s head, context attention.

- :class:`VGGEncoder` is torchvision's VGG16 ``features`` with FCN-8s' two changes: the first convolution
  pads by 100 px and every max-pool rounds up (``ceil_mode``), so any input size yields an output that can
  be cropped back to it. It returns pool3 (256 ch, stride 8), pool4 (512, 16) and pool5 (512, 32).
- :class:`FCN8sHead` is FCN-8s (Long et al.): conv6 (7x7, 4096) and conv7 (1x1, 4096) with ReLU and
  dropout 0.5, a class score, then two 2x and one 8x fixed bilinear up-samplings that add the pool4 and
  pool3 scores (scaled by 0.01 and 1e-4 first, as in the public code). The up-sampling kernels are
  non-trainable, so they are buffers here and not parameters.
- :class:`ContextAttention` is the public FCtL block as it is used: ``x + gamma * A`` where ``A`` is
  softmax(q(x)^T k(c)) over the context's positions applied to v(c); 1x1 convolutions for q, k (bias) and
  v (no bias), ``gamma`` starts at 0. As in the public code, query and key are used as they are (not
  mean-centred) and the similarity is not scaled.
- :class:`ContextGate` weighs the three attention branches per element: a 1x1 convolution per branch, a
  joint 1x1 convolution over their concatenation, a 1x1 convolution with sigmoid per branch, and a softmax
  across the branches.

Convolutions run in the channels-last layout (oneDNN's faster path on CPU; the same numbers up to
rounding): the modules convert their weights when built and :class:`VGGEncoder` its input.

Weights: random by default (torchvision's VGG initialisation; conv6/conv7 normal(0, 0.01) like the fully
connected layers they are copied from); ImageNet weights only from a local torchvision ``vgg16`` state-dict
file (:func:`load_vgg16_state`), never downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg

from ddubench.errors import CheckpointError

POOL_ENDS = (17, 24, 31)  # indices after VGG16's third, fourth and fifth max-pool in ``features``
FCN_PAD = 100  # first-convolution padding of FCN-8s
POOL4_SCALE, POOL3_SCALE = 0.01, 0.0001  # skip-score scaling of the public FCN-8s
POOL4_OFFSET, POOL3_OFFSET, OUTPUT_OFFSET = 5, 9, 31  # FCN-8s crop offsets that undo the 100 px padding


def load_vgg16_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a torchvision VGG16 state dict from a local file; a clear error names the path."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ImageNet weights file {path} does not exist; download torchvision's vgg16 weights "
                              "to that path yourself (ddubench never downloads) or use weights_path=None")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"ImageNet weights file {path} is unreadable ({type(err).__name__}); "
                              "replace it with a torchvision vgg16 state dict") from None
    needed = {"features.0.weight", "classifier.0.weight", "classifier.3.weight"}
    if not isinstance(state, dict) or not needed <= state.keys():
        raise CheckpointError(f"ImageNet weights file {path} is not a torchvision vgg16 state dict "
                              "(features.*, classifier.0/3.*); save `torchvision.models.vgg16().state_dict()`")
    return state


class VGGEncoder(nn.Module):
    """VGG16 convolutions with FCN-8s padding; returns (pool3, pool4, pool5)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = vgg.make_layers(vgg.cfgs["D"])
        self.features[0].padding = (FCN_PAD, FCN_PAD)
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                layer.ceil_mode = True
            elif isinstance(layer, nn.Conv2d):  # torchvision's VGG initialisation
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        self.to(memory_format=torch.channels_last)

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """Copy the convolutions of a torchvision VGG16 state dict."""
        self.features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pools = []
        x = x.contiguous(memory_format=torch.channels_last)
        for index, layer in enumerate(self.features, start=1):
            x = layer(x)
            if index in POOL_ENDS:
                pools.append(x)
        return pools[0], pools[1], pools[2]


def bilinear_kernel(size: int) -> torch.Tensor:
    """The (size, size) bilinear interpolation kernel of FCN's fixed transposed convolutions."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    return torch.outer(ramp, ramp).float()


def _upsample(x: torch.Tensor, kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """Per-channel transposed convolution with a fixed kernel (FCN's diagonal up-sampling weights)."""
    channels = x.shape[1]
    return F.conv_transpose2d(x, kernel.expand(channels, 1, *kernel.shape), stride=stride, groups=channels)


class FCN8sHead(nn.Module):
    """FCN-8s from (pool3, pool4, pool5) to logits of the encoder's input size."""

    def __init__(self, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.classifier = nn.Sequential(
            nn.Conv2d(512, 4096, kernel_size=7), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(4096, 4096, kernel_size=1), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(4096, num_classes, kernel_size=1),
        )
        for conv in (self.classifier[0], self.classifier[3]):
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)
        self.score_pool4 = nn.Conv2d(512, num_classes, kernel_size=1)
        self.score_pool3 = nn.Conv2d(256, num_classes, kernel_size=1)
        self.register_buffer("up2", bilinear_kernel(4), persistent=False)
        self.register_buffer("up8", bilinear_kernel(16), persistent=False)
        self.to(memory_format=torch.channels_last)

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """conv6/conv7 from VGG16's first two fully connected layers, reshaped (FCN's initialisation)."""
        for index in (0, 3):
            conv = self.classifier[index]
            conv.weight.data.copy_(state[f"classifier.{index}.weight"].view_as(conv.weight))
            conv.bias.data.copy_(state[f"classifier.{index}.bias"])

    def forward(self, pool3: torch.Tensor, pool4: torch.Tensor, pool5: torch.Tensor,
                size: tuple[int, int]) -> torch.Tensor:
        x = _upsample(self.classifier(pool5), self.up2, 2)
        x = _upsample(_crop(self.score_pool4(POOL4_SCALE * pool4), POOL4_OFFSET, x.shape[-2:]) + x, self.up2, 2)
        x = _upsample(_crop(self.score_pool3(POOL3_SCALE * pool3), POOL3_OFFSET, x.shape[-2:]) + x, self.up8, 8)
        return _crop(x, OUTPUT_OFFSET, size)


def _crop(x: torch.Tensor, offset: int, size: tuple[int, int]) -> torch.Tensor:
    return x[..., offset : offset + size[0], offset : offset + size[1]]


class ContextAttention(nn.Module):
    """``x + gamma * A(x, context)``: cross-attention from the patch's positions to the context's."""

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels, kernel_size=1)
        self.key = nn.Conv2d(channels, channels, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))
        for conv in (self.query, self.key, self.value):
            nn.init.normal_(conv.weight, 0.0, 0.01)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def weights(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Attention weights (B, positions of x, positions of context); each row sums to 1."""
        query, key = self.query(x).flatten(2), self.key(context).flatten(2)
        return torch.softmax(query.transpose(1, 2) @ key, dim=-1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        attended = self.value(context).flatten(2) @ self.weights(x, context).transpose(1, 2)
        return x + self.gamma * attended.view_as(x)


class ContextGate(nn.Module):
    """Per-element softmax weights over ``branches`` feature maps, and their weighted sum."""

    def __init__(self, channels: int = 512, branches: int = 3) -> None:
        super().__init__()
        self.inputs = nn.ModuleList(nn.Conv2d(channels, channels, kernel_size=1) for _ in range(branches))
        self.mix = nn.Conv2d(branches * channels, branches * channels, kernel_size=1)
        self.outputs = nn.ModuleList(nn.Conv2d(channels, channels, kernel_size=1) for _ in range(branches))

    def weights(self, branches: list[torch.Tensor]) -> torch.Tensor:
        """(branches, B, C, H, W) weights, summing to 1 over the first dimension."""
        mixed = self.mix(torch.cat([conv(b) for conv, b in zip(self.inputs, branches)], dim=1))
        scores = [torch.sigmoid(conv(m)) for conv, m in zip(self.outputs, mixed.chunk(len(branches), dim=1))]
        return torch.softmax(torch.stack(scores), dim=0)

    def forward(self, branches: list[torch.Tensor]) -> torch.Tensor:
        return (self.weights(branches) * torch.stack(branches)).sum(dim=0)


class ContextFusion(nn.Module):
    """FCtL's three-branch fusion of the local pool5: self-, medium- and large-context attention, gated."""

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.local = ContextAttention(channels)
        self.medium = ContextAttention(channels)
        self.large = ContextAttention(channels)
        self.gate = ContextGate(channels, 3)

    def branches(self, x: torch.Tensor, medium: torch.Tensor, large: torch.Tensor) -> list[torch.Tensor]:
        return [self.local(x, x), self.medium(x, medium), self.large(x, large)]

    def forward(self, x: torch.Tensor, medium: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
        return self.gate(self.branches(x, medium, large))
