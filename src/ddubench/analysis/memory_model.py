"""Analytic memory model of U-Net and DDU-Net, block by block (journal Table 5, Fig. 7).

Feature-map shapes come from one forward pass on the meta device (nothing is allocated or computed); what
each module keeps follows from a rule per module type.

Training (the paper's convention): a block's feature maps are the tensors it creates that autograd saves
for the backward pass: every conv and BatchNorm output (ReLU is in place; dropout at p = 0 returns its
input, at p > 0 adds its output and mask), the max-pool output and its int64 indices (counted once as
values, at 8 bytes in MB), and in a decoder block the concatenation [skip, upsampled] (the transposed
conv's own output is only an operand of that concatenation). The head's logits are counted because the
loss saves them; BatchNorm's per-channel saved statistics are left out. Gradients equal the weights, Adam
keeps two values per weight.

Inference (no autograd): encoder outputs stay alive as skip connections until the forward ends, a decoder
block's output lives until the next block has run, and inside a block only the tensors still referenced
are alive (a ``Sequential`` holds its input and the current output; the max-pool indices exist while the
pool runs). The peak is the parameters and buffers, the inputs, the kept and carried outputs and the
running block's own tensors, maximised over the blocks.

DDU-Net is modelled per device, one subimage per device, as the distributed runtime runs it: a rank runs its
subimage's encoder and decoder and, after the all-gather, the coarse network on the stitched maps of all
subimages; these are the steps of :func:`ddubench.measure.memory.ddunet_rank_forward` (C = N: the coarse
network on the rank's own maps).

:func:`summary_pass_bytes` is torch-summary's "forward/backward pass size" (thesis Table 7.5) over the same
meta-device forward.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from ..errors import DdubenchError
from ..measure.memory import ddunet_rank_forward
from ..models.blocks import DoubleConv, Down, Up
from ..models.coarse import CoarseNetwork
from ..models.ddunet import DDUNet
from ..models.unet import UNet

FLOAT_BYTES = 4  # float32 inputs
INDEX_BYTES = 8  # max-pool indices and class labels are int64


@dataclass(frozen=True)
class Cost:
    """What one module keeps: values and bytes saved for backward; at inference its own tensors at their
    peak (output included) and its output (0 when the output is its input, modified in place or passed on)."""

    saved_values: int = 0
    saved_bytes: int = 0
    peak_bytes: int = 0
    out_bytes: int = 0


@dataclass(frozen=True)
class Shapes:
    """Input and output (shape, bytes per value) of every module call, by qualified name."""

    inputs: dict[str, list[tuple[tuple[int, ...], int]]]
    outputs: dict[str, tuple[tuple[int, ...], int]]

    def out(self, name: str) -> tuple[int, int]:
        """(values, bytes) of the output of module ``name``."""
        shape, itemsize = self.outputs[name]
        return math.prod(shape), math.prod(shape) * itemsize


def trace_shapes(model: nn.Module, run: Callable[[nn.Module], Any]) -> Shapes:
    """Call ``run`` on a meta-device copy of ``model`` and record every module's input and output shapes."""
    inputs: dict[str, list[tuple[tuple[int, ...], int]]] = {}
    outputs: dict[str, tuple[tuple[int, ...], int]] = {}

    def record(name: str, module: nn.Module, args: tuple, result: Any) -> None:
        inputs[name] = [(tuple(a.shape), a.element_size()) for a in args if isinstance(a, torch.Tensor)]
        if isinstance(result, torch.Tensor):
            outputs[name] = (tuple(result.shape), result.element_size())

    meta = copy.deepcopy(model).to("meta")
    handles = [m.register_forward_hook(partial(record, name)) for name, m in meta.named_modules()]
    try:
        with torch.no_grad():
            run(meta)
    finally:
        for handle in handles:
            handle.remove()
    return Shapes(inputs, outputs)


Rule = Callable[[nn.Module, str, Shapes], Cost]
_RULES: dict[type[nn.Module], Rule] = {}


def register_rule(*types: type[nn.Module]) -> Callable[[Rule], Rule]:
    """Register ``rule(module, qualified_name, shapes) -> Cost`` for module types."""

    def decorator(rule: Rule) -> Rule:
        _RULES.update(dict.fromkeys(types, rule))
        return rule

    return decorator


def module_cost(module: nn.Module, name: str, shapes: Shapes) -> Cost:
    """The cost of ``module`` by the rule of its most specific registered type."""
    for cls in type(module).__mro__:
        if cls in _RULES:
            return _RULES[cls](module, name, shapes)
    kind = type(module).__name__
    raise DdubenchError(
        f"memory model: no rule for module type {kind} (at {name}); add one with "
        f"ddubench.analysis.memory_model.register_rule({kind})"
    )


@register_rule(nn.Conv2d, nn.BatchNorm2d)
def _saved_output(module: nn.Module, name: str, shapes: Shapes) -> Cost:
    values, size = shapes.out(name)
    return Cost(values, size, size, size)


@register_rule(nn.ConvTranspose2d)
def _transposed(module: nn.Module, name: str, shapes: Shapes) -> Cost:
    _, size = shapes.out(name)
    return Cost(0, 0, size, size)


@register_rule(nn.MaxPool2d)
def _max_pool(module: nn.Module, name: str, shapes: Shapes) -> Cost:
    values, size = shapes.out(name)
    indices = values * INDEX_BYTES
    return Cost(2 * values, size + indices, size + indices, size)


@register_rule(nn.ReLU)
def _relu(module: nn.ReLU, name: str, shapes: Shapes) -> Cost:
    return Cost() if module.inplace else _saved_output(module, name, shapes)


@register_rule(nn.Dropout, nn.Dropout2d)
def _dropout(module: nn.Module, name: str, shapes: Shapes) -> Cost:
    """The identity at inference and at p = 0. In training at p > 0 a new tensor, which the next layer saves,
    and the mask: one value per channel for Dropout2d, one byte per value for Dropout."""
    if module.p == 0:
        return Cost()
    values, size = shapes.out(name)
    shape, itemsize = shapes.outputs[name]
    mask_values = shape[0] * shape[1] if isinstance(module, nn.Dropout2d) else values
    mask = mask_values * (itemsize if isinstance(module, nn.Dropout2d) else 1)
    return Cost(values + mask_values, size + mask, 0, 0)


@register_rule(nn.Identity)
def _identity(module: nn.Module, name: str, shapes: Shapes) -> Cost:
    return Cost()


@register_rule(nn.Sequential)
def _sequential(module: nn.Sequential, name: str, shapes: Shapes) -> Cost:
    saved_values = saved_bytes = peak = held = 0
    for child_name, child in module.named_children():
        cost = module_cost(child, f"{name}.{child_name}", shapes)
        saved_values += cost.saved_values
        saved_bytes += cost.saved_bytes
        peak = max(peak, held + cost.peak_bytes)
        held = cost.out_bytes or held
    return Cost(saved_values, saved_bytes, peak, held)


@register_rule(Up)
def _up(module: Up, name: str, shapes: Shapes) -> Cost:
    (cat_shape, itemsize), *_ = shapes.inputs[f"{name}.conv"]
    cat_values = math.prod(cat_shape)
    cat = cat_values * itemsize
    up = module_cost(module.up, f"{name}.up", shapes)
    conv = module_cost(module.conv, f"{name}.conv", shapes)
    return Cost(cat_values + up.saved_values + conv.saved_values, cat + up.saved_bytes + conv.saved_bytes,
                max(up.out_bytes + cat, cat + conv.peak_bytes), conv.out_bytes)


def _exchange_cost(model: DDUNet, bottleneck: str, shapes: Shapes, subimages: int) -> Cost:
    """The coarse-network step of one rank (see ``ddunet_rank_forward``): all-gather the F maps of every
    subimage, stitch them, run the coarse network, split, and concatenate this subimage's part with its C - F
    kept maps into a new bottleneck, which the first transposed conv saves for backward."""
    (batch, channels, h, w), itemsize = shapes.outputs[bottleneck]
    full_values = batch * channels * h * w
    full = full_values * itemsize
    coarse = module_cost(model.coarse, "coarse", shapes)
    if not model.communicate:  # the coarse network reads a view of the bottleneck
        return Cost(coarse.saved_values + full_values, coarse.saved_bytes + full,
                    max(coarse.peak_bytes, coarse.out_bytes + full), 0)
    gathered_values = subimages * batch * model.features * h * w
    gathered = gathered_values * itemsize
    copied = gathered if subimages > 1 else 0  # a 1x1 grid stitches and splits by views
    steps = [
        gathered + copied + coarse.peak_bytes,  # the stitched map is alive while the coarse network runs
        gathered + coarse.out_bytes + copied,  # split
        gathered + (copied or coarse.out_bytes) + full,  # concatenate the new bottleneck
    ]
    return Cost(gathered_values + coarse.saved_values + full_values, gathered + coarse.saved_bytes + full,
                max(steps), 0)


@dataclass(frozen=True)
class BlockMemory:
    """Memory of one block of journal Table 5, for one device.

    ``kept_bytes`` stays alive to the end of an inference forward (inputs, skip connections),
    ``carried_bytes`` only until the next block has run, ``working_bytes`` is the block's own peak.
    """

    name: str
    size_px: int
    in_channels: int
    out_channels: int
    weights: int
    transposed_bias: int
    saved_values: int
    saved_bytes: int
    kept_bytes: int = 0
    carried_bytes: int = 0
    working_bytes: int = 0

    @property
    def gradient_values(self) -> int:
        return self.weights

    @property
    def adam_values(self) -> int:
        """Adam's first and second moments."""
        return 2 * self.weights


@dataclass(frozen=True)
class MemoryModel:
    """The blocks of one device's forward pass, what is resident before it, and the resulting totals."""

    blocks: list[BlockMemory]
    model_bytes: int  # parameters and buffers as stored

    @property
    def inference_peak_bytes(self) -> int:
        """Predicted peak of live tensors during an inference forward (no autograd)."""
        live = peak = self.model_bytes
        carried = 0
        for block in self.blocks:
            peak = max(peak, live + carried + block.working_bytes)
            live += block.kept_bytes
            carried = block.carried_bytes
        return max(peak, live + carried)

    @property
    def training_bytes(self) -> int:
        """Thesis §6.3's theoretical training memory: the stored weights and buffers, a gradient and Adam's two
        moments per weight, and every feature map the backward pass needs (all blocks' ``saved_bytes``)."""
        weights = sum(block.weights for block in self.blocks)
        return self.model_bytes + 3 * FLOAT_BYTES * weights + sum(block.saved_bytes for block in self.blocks)


def model_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers (BatchNorm running statistics)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _block(name: str, module: nn.Module, qualified: str, shapes: Shapes, role: str, cost: Cost) -> BlockMemory:
    (in_shape, _), *_ = shapes.inputs[qualified]
    out_shape, _ = shapes.outputs[qualified]
    bias = sum(m.bias.numel() for m in module.modules() if isinstance(m, nn.ConvTranspose2d) and m.bias is not None)
    return BlockMemory(
        name, min(in_shape[-1], out_shape[-1]), in_shape[1], out_shape[1],
        sum(p.numel() for p in module.parameters()), bias, cost.saved_values, cost.saved_bytes,
        kept_bytes=cost.out_bytes if role == "kept" else 0,
        carried_bytes=cost.out_bytes if role == "carried" else 0,
        working_bytes=cost.peak_bytes,
    )


def _trace(model: UNet | DDUNet, image_size: tuple[int, int], grid: tuple[int, int]) -> Shapes:
    """Shapes of one device's forward: the whole U-Net, or one rank's share of the DDU-Net."""
    x = torch.empty(1, model.encoder.inc[0].in_channels, *image_size, device="meta")
    if not isinstance(model, DDUNet):
        if grid != (1, 1):
            raise DdubenchError(f"a {grid[0]}x{grid[1]} grid needs a DDU-Net with communication; use grid (1, 1)")
        return trace_shapes(model, lambda meta: meta(x))
    others = []
    if model.coarse is not None and model.communicate:
        bottleneck = (1, model.features, image_size[0] >> model.depth, image_size[1] >> model.depth)
        others = [torch.empty(bottleneck, device="meta") for _ in range(grid[0] * grid[1] - 1)]
    return trace_shapes(model, lambda meta: ddunet_rank_forward(meta, x, others, grid))


def memory_model(model: nn.Module, image_size: tuple[int, int], grid: tuple[int, int] = (1, 1)) -> MemoryModel:
    """Block-by-block memory of ``model`` on one device for one ``image_size`` input (batch 1).

    For DDU-Net, ``image_size`` is the device's subimage and ``grid`` the subimages the coarse network stitches.
    """
    if not isinstance(model, (UNet, DDUNet)):
        raise DdubenchError(
            f"memory model: no block layout for model type {type(model).__name__}; "
            "add one in ddubench.analysis.memory_model.memory_model"
        )
    shapes = _trace(model, image_size, grid)
    in_channels, pixels = model.encoder.inc[0].in_channels, image_size[0] * image_size[1]
    blocks = [BlockMemory("input", image_size[1], in_channels, in_channels, 0, 0, pixels * in_channels,
                          pixels * in_channels * FLOAT_BYTES, kept_bytes=pixels * in_channels * FLOAT_BYTES)]
    encoder = [("input block", "encoder.inc")] + [
        (f"encoder block {i + 1}", f"encoder.downs.{i}") for i in range(len(model.encoder.downs))
    ]
    for name, qualified in encoder:
        module = model.get_submodule(qualified)
        blocks.append(_block(name, module, qualified, shapes, "kept", module_cost(module, qualified, shapes)))
    if isinstance(model, DDUNet) and model.coarse is not None:
        bottleneck = encoder[-1][1]
        cost = _exchange_cost(model, bottleneck, shapes, grid[0] * grid[1])
        blocks.append(BlockMemory("communication network", shapes.outputs[bottleneck][0][-1], model.features,
                                  model.features, sum(p.numel() for p in model.coarse.parameters()), 0,
                                  cost.saved_values, cost.saved_bytes, working_bytes=cost.peak_bytes))
    for i, up in enumerate(model.decoder.ups):
        qualified = f"decoder.ups.{i}"
        blocks.append(_block(f"decoder block {i + 1}", up, qualified, shapes, "carried",
                             module_cost(up, qualified, shapes)))
    blocks.append(_block("output block", model.head, "head", shapes, "carried",
                         module_cost(model.head, "head", shapes)))
    classes = model.head.out_channels
    blocks.append(BlockMemory("labels", image_size[1], classes, classes, 0, 0, pixels, pixels * INDEX_BYTES))
    return MemoryModel(blocks, model_bytes(model))


# Blocks the thesis code wraps in their own nn.Module, so torch-summary hooks them as well as their layers.
SUMMARY_BLOCKS: tuple[type[nn.Module], ...] = (DoubleConv, Down, Up, CoarseNetwork)


def summary_pass_bytes(model: UNet | DDUNet, image_size: tuple[int, int], grid: tuple[int, int] = (1, 1)) -> int:
    """torch-summary's "Forward/backward pass size" of one device's forward (thesis Table 7.5), in bytes.

    torch-summary sums the output of every module it hooks, doubles it for the gradients and counts 4 bytes
    a value. Over the thesis code's module tree that is every layer plus every DoubleConv, Down, Up, coarse
    network and the 1x1 head again (the thesis wraps it in an OutConv block); our modules have the same
    layers and blocks, so this counts the same outputs. Shapes as in :func:`memory_model`.
    """
    shapes = _trace(model, image_size, grid)
    values = math.prod(shapes.outputs["head"][0])
    for name, module in model.named_modules():
        hooked = next(module.children(), None) is None or isinstance(module, SUMMARY_BLOCKS)
        if name and hooked and name in shapes.outputs:
            values += math.prod(shapes.outputs[name][0])
    return 2 * values * FLOAT_BYTES
