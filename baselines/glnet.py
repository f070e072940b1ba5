"""GLNet (Chen et al., CVPR 2019): collaborative global-local networks, the DeepGlobe baseline of journal Table 7.

A global branch segments the whole image downsampled to ``global_size`` pixels; a local branch segments
full-resolution ``patch_size`` patches on a regular grid (the fewest evenly spaced patches overlapping by at
least ``min_overlap``, the last flush with the border: 5 x 5 on a 2048 px crop, 6 x 6 on a 2448 px tile).
Both are an FPN on a torchvision ResNet50 (``weights=None``; ImageNet weights only from a local file).
Deep feature sharing: every local FPN layer also gets the global maps of the same layer cropped to its
patch (G -> L), and in stage 3 every global layer also gets the local maps of all patches merged into the
global frame (L -> G); see :mod:`baselines.glnet_grid`. f_agg, a 3x3 convolution on [local ps3 | global ps3
cropped to the patch], gives the patch logits; patch logits (stride 4) are upsampled bilinearly to the patch
and averaged where patches overlap.

The three training stages of the public code (``stage``, spec key ``G``), each a run of the shared
Trainer started from the previous stage's checkpoint (``ddubench train --init-from``):

1. global only: the global branch, focal loss on its output.
2. local, global fixed: the local branch and f_agg; the stage-1 global branch frozen (no gradient, BatchNorm
   in eval mode) supplies G -> L. Loss: focal(f_agg) + focal(local output) + ``fmreg_weight`` x MSE(local
   ps3, cropped global ps3), the weakly-coupled regulariser (lambda = 0.15; the code's mean squared error,
   where the paper writes a Euclidean norm; it moves only the local branch, the global one being frozen).
3. local -> global: a second global branch with L -> G inputs (``fused_global``) and f_agg train; the stage-1
   global branch and the stage-2 local branch are frozen (the public code's ``global_fixed`` copy supplies
   G -> L). Loss: focal(f_agg) + focal(fused global output). Loading a stage-1/2 checkpoint starts the fused
   branch's ResNet50 and classifier from the stage-1 global branch, as the public code does (its FPN layers
   with doubled inputs start fresh).

``forward`` returns that stage's prediction at full resolution: stage 1 the global output upsampled, stages 2
and 3 the merged f_agg patch logits (stage 3 = the public code's evaluation, mode 3). Focal loss: gamma 3 as in
the code (the paper says 6); labels are resized (nearest) to each output's stride-4 size; ``ignore_index``
pixels count in no loss. The three losses of a stage have weight 1 (the paper's equal weights; the public
code sums its f_agg loss over sub-batches instead). Overlaps are averaged, where the public code sums
nearest-upsampled logits; G -> L and L -> G windows are exact where the code rounds them to whole pixels.

Parameters (7 classes): 28,064,839 in stage 1, 65,435,285 in stage 2, 102,741,212 in stage 3 (three
ResNet50s of 23,508,032 without fc, FPN heads of 4,556,807 plain / 13,797,895 shared, f_agg 64,519). The
public code holds 79.2M per model instance (two ResNet50s and all heads, used or not) and mode 3 uses
102.7M over its two instances; the 15M that journal Table 7 lists for GL-Net matches neither count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ddubench.errors import ModelSpecError
from ddubench.models import register_model, register_spec_key

from .glnet_grid import FeatureMerger, Item, PatchGrid, crop_features, extract_patches, merge_patches
from .glnet_parts import TAPS, Aggregation, Branch, FPNOutput, focal_loss, resize_labels

Dice = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

register_spec_key("G", "stage", int)
register_spec_key("P", "patch_size", int)

STAGES = (1, 2, 3)


@dataclass
class GLNetOutputs:
    """The outputs of one pass that the prediction and the stage's loss need (logits at stride 4)."""

    grid: PatchGrid
    items: list[Item] = field(default_factory=list)
    global_logits: torch.Tensor | None = None  # stage 1: global branch; stage 3: fused global (training only)
    patch_logits: torch.Tensor | None = None  # f_agg per patch (stages 2, 3)
    local_logits: torch.Tensor | None = None  # local branch per patch (stage 2 training only)
    fmreg: torch.Tensor | None = None  # MSE(local ps3, cropped global ps3) (stage 2 training only)


class GLNet(nn.Module):
    """GLNet for one training stage; see the module docstring."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 7,
        stage: int = 3,
        patch_size: int = 508,
        global_size: int | None = None,
        min_overlap: int | None = None,
        patch_batch: int = 5,
        gamma: float = 3.0,
        fmreg_weight: float = 0.15,
        weights_path: str | Path | None = None,
    ) -> None:
        """``global_size`` defaults to ``patch_size`` (508 and 508 in the code), ``min_overlap`` to a tenth
        of the patch (50 px at 508, the code's rule). ``patch_batch`` patches go through the local branch at
        once (the code's sub-batch), which bounds inference memory."""
        super().__init__()
        if in_channels != 3:
            raise ModelSpecError(f"GLNet's ResNet50 takes RGB images, not {in_channels} channels; use it on DeepGlobe")
        if stage not in STAGES:
            raise ModelSpecError(f"GLNet stage G{stage} does not exist; "
                                 "use G1 (global), G2 (local) or G3 (local->global)")
        global_size = patch_size if global_size is None else global_size
        min_overlap = patch_size // 10 if min_overlap is None else min_overlap
        if min(patch_size, global_size, patch_batch) < 1 or not 0 <= min_overlap < patch_size:
            raise ModelSpecError(f"GLNet needs positive patch (P{patch_size}), global and patch-batch sizes and an "
                                 f"overlap in [0, patch size), got overlap {min_overlap}")
        self.stage, self.patch_size, self.global_size = stage, patch_size, global_size
        self.min_overlap, self.patch_batch = min_overlap, patch_batch
        self.gamma, self.fmreg_weight = gamma, fmreg_weight
        self.global_branch = Branch(num_classes, shared=False, weights_path=weights_path)
        if stage >= 2:
            self.local_branch = Branch(num_classes, shared=True, weights_path=weights_path)
            self.aggregation = Aggregation(num_classes)
        if stage == 3:
            self.fused_global = Branch(num_classes, shared=True, weights_path=weights_path)
            self.register_load_state_dict_pre_hook(_start_fused_from_global)
        for branch in self.frozen_branches():
            branch.requires_grad_(False)

    def frozen_branches(self) -> list[nn.Module]:
        """The branches an earlier stage trained: the global one from stage 2 on, the local one in stage 3."""
        names = ("global_branch", "local_branch")[: self.stage - 1]
        return [getattr(self, name) for name in names]

    def train(self, mode: bool = True) -> GLNet:
        """Training mode for the stage's trainable parts; frozen branches keep their BatchNorm statistics."""
        super().train(mode)
        for branch in self.frozen_branches():
            branch.eval()
        return self

    def _global(self, images: torch.Tensor) -> tuple[torch.Tensor, FPNOutput]:
        small = F.interpolate(images, size=(self.global_size, self.global_size), mode="bilinear",
                              align_corners=False, antialias=True)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage == 1):
            return small, self.global_branch(small, logits=self.stage == 1)

    def _patches(
        self, images: torch.Tensor, grid: PatchGrid, chunk: list[Item], glob: FPNOutput, merger: FeatureMerger | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Local branch on one chunk of patches with G -> L: (f_agg or its local part, local logits, fmreg x
        patches in the chunk); the chunk's local maps are freed on return."""

        def share(tap: str, level: int, own: torch.Tensor) -> torch.Tensor:
            return crop_features(glob.taps[tap][level], grid, chunk, own.shape[-2:])

        aux = self.stage == 2 and self.training
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage == 2):
            local = self.local_branch(extract_patches(images, grid, chunk), share, logits=aux)
        if merger is not None:
            for tap in TAPS:
                for level, local_map in enumerate(local.taps[tap]):
                    merger.add((tap, level), local_map, chunk)
            return self.aggregation.local_part(local.ps3), None, None
        global_ps3 = crop_features(glob.ps3, grid, chunk, local.ps3.shape[-2:])
        fmreg = F.mse_loss(local.ps3, global_ps3) * len(chunk) if aux else None
        return self.aggregation(local.ps3, global_ps3), local.logits, fmreg

    def run(self, images: torch.Tensor) -> GLNetOutputs:
        """One pass of the stage over a batch (B, 3, H, W); the patch grid depends only on H and W."""
        batch, _, height, width = images.shape
        grid = PatchGrid.cover(height, width, self.patch_size, self.min_overlap)
        small, glob = self._global(images)
        if self.stage == 1:
            return GLNetOutputs(grid, global_logits=glob.logits)
        items = grid.items(batch)
        merger = None
        if self.stage == 3:
            shapes = {(tap, level): tuple(m.shape[1:]) for tap in TAPS for level, m in enumerate(glob.taps[tap])}
            merger = FeatureMerger(grid, batch, shapes, small)
        parts, local_logits, fmreg_sum = [], [], 0.0
        for first in range(0, len(items), self.patch_batch):
            part, logits, fmreg = self._patches(images, grid, items[first : first + self.patch_batch], glob, merger)
            parts.append(part)
            if logits is not None:
                local_logits.append(logits)
                fmreg_sum = fmreg_sum + fmreg
        patch_logits = torch.cat(parts)
        if merger is None:
            fmreg = fmreg_sum / len(items) if local_logits else None
            return GLNetOutputs(grid, items, patch_logits=patch_logits,
                                local_logits=torch.cat(local_logits) if local_logits else None, fmreg=fmreg)
        merged = merger.result()
        del glob, merger
        fused = self.fused_global(small, lambda tap, level, own: merged[(tap, level)], logits=self.training)
        global_ps3 = crop_features(fused.ps3, grid, items, patch_logits.shape[-2:])
        return GLNetOutputs(grid, items, global_logits=fused.logits,
                            patch_logits=patch_logits + self.aggregation.global_part(global_ps3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Full-resolution logits (B, classes, H, W) of this stage's prediction."""
        out = self.run(x)
        if out.patch_logits is None:
            return F.interpolate(out.global_logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return merge_patches(out.patch_logits, out.grid, out.items, x.shape[0])

    def training_loss(
        self, images: torch.Tensor, masks: torch.Tensor, ignore_index: int | None, dice: Dice
    ) -> torch.Tensor:
        """The stage's loss (focal losses, plus the regulariser in stage 2); GLNet does not use ``dice``."""
        out = self.run(images)

        def focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return focal_loss(logits, resize_labels(target, logits.shape[-2:]), self.gamma, ignore_index)

        if out.patch_logits is None:
            return focal(out.global_logits, masks)
        patch_masks = extract_patches(masks[:, None], out.grid, out.items)[:, 0]
        loss = focal(out.patch_logits, patch_masks)
        if self.stage == 2:
            return loss + focal(out.local_logits, patch_masks) + self.fmreg_weight * out.fmreg
        return loss + focal(out.global_logits, masks)


def _start_fused_from_global(
    module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any
) -> None:
    """Loading a stage-1/2 state into a stage-3 GLNet: its fused global branch starts from the stage-1 global
    branch's ResNet50 and classifier (the layers with L -> G inputs have no counterpart and start fresh)."""
    source, target = prefix + "global_branch.", prefix + "fused_global."
    if any(key.startswith(target) for key in state_dict):
        return
    for key in list(state_dict):
        if key.startswith((source + "backbone.", source + "fpn.classify.")):
            state_dict[target + key[len(source):]] = state_dict[key]


@register_model(
    "glnet",
    keys=("G",),
    optional_keys=("P",),
    defaults={"stage": 3, "patch_size": 508},
    label=lambda p: f"GLNet (stage {p['stage']}, {p['patch_size']} px)",
    io=(3, 7),
)
def build_glnet(*, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float,
                **params: Any) -> GLNet:
    """GLNet of one stage; global size = patch size (P). It has no dropout and takes any image size."""
    return GLNet(in_channels=in_channels, num_classes=num_classes, **params)
