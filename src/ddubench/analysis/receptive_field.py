"""Receptive field of one output pixel, computed from the real ``nn.Module`` structure (journal Table 4).

Why hand-written: no maintained calculator follows a U-Net decoder. rfa-toolbox treats a transposed conv as
a strided conv, never halves the jump at ``nn.Upsample`` and does not install on Python 3.11; torchscan
chains module hooks in call order and cannot follow skip connections; pytorch-receptive-field rejects
custom blocks. So the model is walked here, module by module, with a rule per module type.

How: a symbolic forward pass. Each tensor is the set of layer paths leading from the network input to it;
a layer appends itself to every path, and a concatenation (skip) or the coarse network's replacement of
some bottleneck channels takes the union of its operands' paths. Every path is then measured per axis:

- ``backward`` (the papers' convention): start at r = 1 on the output and go back layer by layer; at each
  layer take the fewest inputs that r consecutive outputs can depend on (k x k conv: r + k - 1; 2x2 max
  pool: 2r; 2x2 stride-2 transposed conv: ceil(r/2)). U-Net(2, 3, 4): 44, 92, 188; DDU-Net: 92, 188, 380.
- ``forward`` (the textbook formula): r += (k - 1) * dilation * jump, jump *= stride; a transposed conv
  or upsampling divides the jump. U-Net: 44, 96, 200; DDU-Net: 92, 192, 392.
- ``exact``: the interval of input pixels one output pixel at a given position depends on (backward
  interval propagation, union over paths). It varies with the position modulo the total upsampling.
  For our U-Nets and DDU-Nets its smallest value equals ``backward`` and belongs to pixels aligned with
  the pooling grid, such as the centre pixel of an image whose half side is a multiple of 2^D; the
  largest is 100 / 204 px for U-Net(3 / 4). It is what :func:`empirical_receptive_field` measures.

The receptive field of a model is the maximum over its paths (the deepest path wins); the input is taken
as infinitely large (for DDU-Net: one infinitely large subimage, as in the paper). New module types
(ResNet blocks, baselines) get a rule with :func:`register_layer` or :func:`register_block`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from ..errors import DdubenchError
from ..models.blocks import Up
from ..models.ddunet import DDUNet
from ..models.unet import UNet, UNetDecoder, UNetEncoder

Interval = tuple[int, int]


@dataclass(frozen=True)
class Window:
    """A sliding window along one axis: convolution or pooling."""

    kernel: int
    stride: int = 1
    dilation: int = 1
    padding: int = 0

    @property
    def period(self) -> int:
        """How far apart output positions must be to read their inputs with the same alignment."""
        return 1

    def interval(self, lo: int, hi: int) -> Interval:
        return lo * self.stride - self.padding, hi * self.stride - self.padding + (self.kernel - 1) * self.dilation

    def forward(self, r: Fraction, jump: Fraction) -> tuple[Fraction, Fraction]:
        return r + (self.kernel - 1) * self.dilation * jump, jump * self.stride


@dataclass(frozen=True)
class Transposed:
    """A transposed convolution along one axis (output o reads inputs i with o = i*stride - padding + t)."""

    kernel: int
    stride: int
    padding: int = 0

    @property
    def period(self) -> int:
        return self.stride

    def interval(self, lo: int, hi: int) -> Interval:
        return -((self.kernel - 1 - lo - self.padding) // self.stride), (hi + self.padding) // self.stride

    def forward(self, r: Fraction, jump: Fraction) -> tuple[Fraction, Fraction]:
        return r + (math.ceil(self.kernel / self.stride) - 1) * jump, jump / self.stride


@dataclass(frozen=True)
class Resize:
    """``nn.Upsample`` along one axis: nearest (any integer scale) or bilinear x2 without align_corners."""

    scale: int
    bilinear: bool

    @property
    def period(self) -> int:
        return self.scale

    def interval(self, lo: int, hi: int) -> Interval:
        if self.bilinear:
            return (lo - 1) // 2, (hi - 1) // 2 + 1
        return lo // self.scale, hi // self.scale

    def forward(self, r: Fraction, jump: Fraction) -> tuple[Fraction, Fraction]:
        return r + (jump if self.bilinear else 0), jump / self.scale


Layer = Window | Transposed | Resize
Path = tuple[Layer, ...]
Paths = frozenset[Path]

LayerRule = Callable[[nn.Module, int], Layer | None]
BlockRule = Callable[["Walker", nn.Module, Any], Any]
_LAYER_RULES: dict[type[nn.Module], LayerRule] = {}
_BLOCK_RULES: dict[type[nn.Module], BlockRule] = {}


def register_layer(*types: type[nn.Module]) -> Callable[[LayerRule], LayerRule]:
    """Register ``rule(module, axis) -> Layer | None`` (None: pointwise) for single-input module types."""

    def decorator(rule: LayerRule) -> LayerRule:
        _LAYER_RULES.update(dict.fromkeys(types, rule))
        return rule

    return decorator


def register_block(*types: type[nn.Module]) -> Callable[[BlockRule], BlockRule]:
    """Register ``rule(walk, module, *inputs) -> outputs`` for composite module types (inputs are path sets)."""

    def decorator(rule: BlockRule) -> BlockRule:
        _BLOCK_RULES.update(dict.fromkeys(types, rule))
        return rule

    return decorator


class Walker:
    """Applies the registered rules to a module tree along one axis (0 = height, 1 = width)."""

    def __init__(self, root: nn.Module, axis: int) -> None:
        self.axis = axis
        self.names = {id(m): name or type(root).__name__ for name, m in root.named_modules()}

    def __call__(self, module: nn.Module, *inputs: Any) -> Any:
        for cls in type(module).__mro__:
            if cls in _BLOCK_RULES:
                return _BLOCK_RULES[cls](self, module, *inputs)
            if cls in _LAYER_RULES:
                layer = _LAYER_RULES[cls](module, self.axis)
                (paths,) = inputs
                return paths if layer is None else frozenset(path + (layer,) for path in paths)
        kind = type(module).__name__
        raise DdubenchError(
            f"receptive field: no rule for module type {kind} (at {self.names.get(id(module), '?')}); add one with "
            f"ddubench.analysis.receptive_field.register_layer({kind}) or register_block({kind})"
        )


def _pair(value: int | tuple[int, ...], axis: int) -> int:
    return value[axis] if isinstance(value, tuple) else value


@register_layer(nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
def _window(module: nn.Module, axis: int) -> Window:
    if isinstance(module.padding, str):  # "same" / "valid" convs; stride is 1 for "same"
        span = (_pair(module.kernel_size, axis) - 1) * _pair(module.dilation, axis)
        padding = span // 2 if module.padding == "same" else 0
    else:
        padding = _pair(module.padding, axis)
    return Window(_pair(module.kernel_size, axis), _pair(module.stride, axis),
                  _pair(getattr(module, "dilation", 1), axis), padding)


@register_layer(nn.ConvTranspose2d)
def _transposed(module: nn.ConvTranspose2d, axis: int) -> Transposed:
    if _pair(module.dilation, axis) != 1:
        raise DdubenchError("receptive field: dilated transposed convolutions are not supported; use dilation 1")
    return Transposed(_pair(module.kernel_size, axis), _pair(module.stride, axis), _pair(module.padding, axis))


@register_layer(nn.Upsample)
def _resize(module: nn.Upsample, axis: int) -> Resize:
    scale = module.scale_factor
    scale = scale[axis] if isinstance(scale, tuple) else scale
    bilinear = module.mode == "bilinear"
    if scale is None or scale != int(scale) or module.mode not in ("nearest", "bilinear") or (
        bilinear and (scale != 2 or module.align_corners)
    ):
        raise DdubenchError(
            f"receptive field: nn.Upsample(mode={module.mode!r}, scale_factor={module.scale_factor}, "
            f"align_corners={module.align_corners}) is not supported; use nearest with an integer scale or "
            "bilinear x2 with align_corners=False"
        )
    return Resize(int(scale), bilinear)


@register_layer(nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                nn.Dropout, nn.Dropout2d, nn.Identity)
def _pointwise(module: nn.Module, axis: int) -> None:
    """Per-pixel layers (BatchNorm in eval mode) leave the receptive field unchanged."""


@register_block(nn.Sequential)
def _sequential(walk: Walker, module: nn.Sequential, paths: Paths) -> Paths:
    for child in module:
        paths = walk(child, paths)
    return paths


@register_block(Up)
def _up(walk: Walker, module: Up, paths: Paths, skip: Paths) -> Paths:
    return walk(module.conv, skip | walk(module.up, paths))


@register_block(UNetEncoder)
def _encoder(walk: Walker, module: UNetEncoder, paths: Paths) -> list[Paths]:
    features = [walk(module.inc, paths)]
    for down in module.downs:
        features.append(walk(down, features[-1]))
    return features


@register_block(UNetDecoder)
def _decoder(walk: Walker, module: UNetDecoder, features: list[Paths]) -> Paths:
    paths = features[-1]
    for up, skip in zip(module.ups, reversed(features[:-1])):
        paths = walk(up, paths, skip)
    return paths


@register_block(UNet)
def _unet(walk: Walker, module: UNet, paths: Paths) -> Paths:
    return walk(module.head, walk(module.decoder, walk(module.encoder, paths)))


@register_block(DDUNet)
def _ddunet(walk: Walker, module: DDUNet, paths: Paths) -> Paths:
    """One infinitely large subimage: the coarse network's F channels join the C - F untouched ones."""
    features = walk(module.encoder, paths)
    if module.coarse is not None:
        features[-1] = features[-1] | walk(module.coarse, features[-1])
    return walk(module.head, walk(module.decoder, features))


def _size(interval: Interval) -> int:
    return interval[1] - interval[0] + 1


def _backward(path: Path) -> int:
    r = 1
    for layer in reversed(path):
        r = min(_size(layer.interval(a, a + r - 1)) for a in range(layer.period))
    return r


def _forward(path: Path) -> int:
    r, jump = Fraction(1), Fraction(1)
    for layer in path:
        r, jump = layer.forward(r, jump)
    return math.ceil(r)


def _exact(paths: Paths, position: int) -> Interval:
    intervals = []
    for path in paths:
        lo = hi = position
        for layer in reversed(path):
            lo, hi = layer.interval(lo, hi)
        intervals.append((lo, hi))
    return min(lo for lo, _ in intervals), max(hi for _, hi in intervals)


def _period(paths: Paths) -> int:
    """Output positions that are this far apart see the same pattern of alignments."""
    return math.lcm(*(math.prod(layer.period for layer in path) for path in paths))


def model_paths(model: nn.Module, axis: int) -> Paths:
    """All layer paths from the input to the output of ``model`` along ``axis``."""
    return Walker(model, axis)(model, frozenset({()}))


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output pixel as (height, width) in input pixels, in every convention."""

    backward: tuple[int, int]
    forward: tuple[int, int]
    exact_min: tuple[int, int]
    exact_max: tuple[int, int]


def receptive_field(model: nn.Module) -> ReceptiveField:
    """The receptive field of ``model`` on an infinitely large input, in all conventions."""
    values: dict[str, list[int]] = {"backward": [], "forward": [], "exact_min": [], "exact_max": []}
    for axis in (0, 1):
        paths = model_paths(model, axis)
        period = _period(paths)
        exact = [_size(_exact(paths, period + offset)) for offset in range(period)]
        values["backward"].append(max(_backward(path) for path in paths))
        values["forward"].append(max(_forward(path) for path in paths))
        values["exact_min"].append(min(exact))
        values["exact_max"].append(max(exact))
    return ReceptiveField(**{key: (h, w) for key, (h, w) in values.items()})


def exact_interval(model: nn.Module, position: tuple[int, int]) -> tuple[Interval, Interval]:
    """Rows and columns (inclusive, may be negative) of the input pixels output pixel ``position`` reads."""
    return _exact(model_paths(model, 0), position[0]), _exact(model_paths(model, 1), position[1])


def gradient_probe(model: nn.Module) -> nn.Module:
    """A float64 eval copy in which every gradient path stays open: max pools become average pools of the
    same window (a max pool passes gradient to one pixel only), all weights are positive constants, biases
    are zero and BatchNorm is the identity, so with a positive input no ReLU is ever inactive. On
    non-negative inputs the probe is a linear map with non-negative coefficients: an output pixel is
    positive for a one-hot input exactly where it depends on that input pixel."""
    probe = copy.deepcopy(model).double().eval()
    for name, module in list(probe.named_modules()):
        if isinstance(module, nn.MaxPool2d):
            parent, _, attr = name.rpartition(".")
            pool = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)
            setattr(probe.get_submodule(parent), attr, pool)
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
    return probe


def empirical_receptive_field(
    model: nn.Module, input_size: int | tuple[int, int], position: tuple[int, int] | None = None,
    in_channels: int | None = None,
) -> tuple[int, int]:
    """Height and width of the bounding box of input pixels whose gradient is non-zero when backpropagating
    from output pixel ``position`` (default: the output's centre) of a gradient-probe copy of ``model``."""
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    if in_channels is None:
        in_channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    image = torch.ones(1, in_channels, height, width, dtype=torch.float64, requires_grad=True)
    output = gradient_probe(model)(image)
    row, col = position if position is not None else (output.shape[-2] // 2, output.shape[-1] // 2)
    output[0, :, row, col].sum().backward()
    hit = image.grad[0].abs().sum(dim=0) > 0
    rows, cols = hit.any(dim=1).nonzero(), hit.any(dim=0).nonzero()
    if 0 in (rows[0].item(), cols[0].item()) or rows[-1].item() == height - 1 or cols[-1].item() == width - 1:
        raise DdubenchError(
            f"the receptive field of pixel {(row, col)} reaches the border of the {height}x{width} input; "
            "use a larger input_size"
        )
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
