"""FCtL, "From Contexts to Locality" (Li et al., ICCV 2021), as its public DeepGlobe code runs: "FCtL (no CSRN)".

The model segments ``patch_size`` px local patches on GLNet's regular grid (:mod:`baselines.fctl_patches`;
508 px on DeepGlobe) with FCN-8s on VGG16 (:mod:`baselines.fctl_parts`). Before the FCN-8s head, the
patch's pool5 attends to itself, to a medium context (the 3x patch region centred on it, zero-padded at the
image border, resized to the patch size) and to a large context (by default the whole image resized to the
patch size, as in the public DeepGlobe code; ``large_scale=s`` takes an s x patch region centred on the
patch instead). The three attention outputs are gated per element and added to pool5. The paper's
Contextual Semantics Refinement Network is not in the public code and not here.

Training stages (spec key ``M``, the public code's ``--mode`` numbers), run in this order, each starting
from the previous stage's checkpoint (``ddubench train --init-from``):

- ``fctl_M0`` global: FCN-8s on the whole image resized to the patch size ("large" encoder and head);
  focal loss against the nearest-resized mask. ``forward`` up-samples its logits bilinearly.
- ``fctl_M1`` pre: FCN-8s on the grid patches (the public code calls this stage optional).
- ``fctl_M2`` medium: pre plus a trainable VGG16 on the medium context and one attention block.
- ``fctl_M4`` all (default): the local FCN-8s and the fusion train; the medium encoder (from M2) and the
  large encoder (from M0) are frozen.

Every stage after M0 carries M0's frozen large encoder (unused by M1 and M2) so that the one-checkpoint
chain M0 -> M1 -> M2 -> M4 hands every trained part on. M4's local FCN-8s therefore starts from the
medium stage's (the public code loads it from pre); both were trained with M2's doubled pool5 (below).

Faithful to the public code: each attention block returns ``pool5 + gamma * A`` and the stage adds that
to pool5 again (M2: ``pool5 + block``; M4: ``pool5 + gate(blocks)`` with gate weights summing to 1), so
the FCN-8s head sees 2 * pool5 plus the attention terms. Losses are focal (gamma 3) on the patch logits;
the public code sums the means of its 4-patch sub-batches, we take the mean over all patches of the batch
(a constant factor) in one graph, so a step holds every grid patch of the batch (1024 px crops: 9 patches
of 508 px per image; keep the batch small). ``ignore_index`` pixels (DeepGlobe unknown) are left out; the
public code trained on them. Training augmentation (flips and quarter turns) follows the run's
``deepglobe.training.augment``, on by default, like the public code's hflip/rot90; its test-time augmentation
is not used.

Inference (``forward``): every grid patch of every image, ``patch_batch`` patches per network call; the
large context is encoded once per image and the batch is zero-padded once per call; overlapping logits are
averaged (the public code sums them: the same argmax). Images smaller than the patch use patches of the
image's size.

Parameters (``num_classes`` 7, exact, from :func:`ddubench.analysis.params.count_parameters`):
M4 170,023,128 (140,593,752 trainable: local FCN-8s 134,294,613 + fusion 6,299,139; two frozen VGG16
encoders 14,714,688 each); M0 134,294,613; M1 149,009,301; M2 164,511,446. The public code registers much
more than it uses (its mode-4 FCN8 keeps VGG16's fully connected layers, 123.6M, and every FCtL block 6.3M
of unused convolutions; 264M + 138M + 258M for the three models); our fixed bilinear up-sampling kernels
are buffers (14,112 values the public code holds as frozen parameters). The DDU-Net paper's 54.1M for FCtL
matches neither the used (170.0M) nor the trainable count, nor any sum of its parts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ddubench.errors import ModelSpecError
from ddubench.models import register_model, register_spec_key

from .fctl_parts import ContextAttention, ContextFusion, FCN8sHead, VGGEncoder, load_vgg16_state
from .fctl_patches import (
    Box,
    axis_starts,
    context_crops,
    coverage,
    crop_patches,
    merge_patches,
    pad_for_context,
    patch_boxes,
    resize,
)

MODES = {0: "global", 1: "pre", 2: "medium", 4: "all"}
FOCAL_GAMMA = 3.0  # public code (the GLNet paper says 6)
MIN_OVERLAP = 50  # px between neighbouring grid patches (public code)
MEDIUM_SCALE = 3  # public code's default context

Dice = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

register_spec_key("M", "mode", int)
register_spec_key("P", "patch_size", int)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA,
               ignore_index: int | None = None) -> torch.Tensor:
    """Mean over non-ignored pixels of -(1 - p_t)^gamma log p_t (p_t: softmax probability of the true class)."""
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    log_p = logits.log_softmax(dim=1).gather(1, torch.where(valid, target, 0).unsqueeze(1)).squeeze(1)
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    return (loss * valid).sum() / valid.sum().clamp_min(1)


class _Contexts(NamedTuple):
    """Per-batch inputs shared by all patches: padded images and, for a whole-image context, its pool5."""

    medium: torch.Tensor | None
    large: torch.Tensor | None
    large_pool5: torch.Tensor | None


class FCtL(nn.Module):
    """FCtL (no CSRN) in training stage ``mode``; ``forward`` maps (B, 3, H, W) to (B, classes, H, W) logits.

    ``patch_batch`` patches go through the networks at once; ``min_overlap`` between grid patches defaults
    to 50 px (a quarter of the patch for patches under 200 px); ``large_scale`` (odd) replaces the
    whole-image large context by a centred crop of that many patch sizes; ``weights_path`` is a local
    torchvision VGG16 state-dict file for every encoder and FCN-8s conv6/conv7.
    """

    def __init__(
        self,
        num_classes: int = 7,
        mode: int = 4,
        patch_size: int = 508,
        patch_batch: int = 4,
        min_overlap: int | None = None,
        large_scale: int | None = None,
        weights_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ModelSpecError(f"FCtL mode M{mode} does not exist; use one of "
                                 + ", ".join(f"M{m} ({name})" for m, name in MODES.items()))
        min_overlap = min(MIN_OVERLAP, patch_size // 4) if min_overlap is None else min_overlap
        if not 0 <= min_overlap < patch_size or patch_batch < 1:
            raise ModelSpecError(f"FCtL needs 0 <= min_overlap < patch_size and patch_batch >= 1, got {min_overlap}, "
                                 f"{patch_size}, {patch_batch}; choose a larger patch size (P)")
        if large_scale is not None and (large_scale < 1 or large_scale % 2 == 0):
            raise ModelSpecError(f"large context scale {large_scale} must be an odd number >= 1 (centred crops)")
        imagenet = None if weights_path is None else load_vgg16_state(weights_path)
        self.num_classes, self.mode, self.patch_size, self.patch_batch = num_classes, mode, patch_size, patch_batch
        self.min_overlap, self.large_scale = min_overlap, large_scale
        self.large_encoder = VGGEncoder()
        if mode == 0:
            self.large_head = FCN8sHead(num_classes)
        else:
            self.large_encoder.requires_grad_(False)
            self.local_encoder = VGGEncoder()
            self.local_head = FCN8sHead(num_classes)
        if mode in (2, 4):
            self.medium_encoder = VGGEncoder()
        if mode == 2:
            self.medium_attention = ContextAttention()
        if mode == 4:
            self.medium_encoder.requires_grad_(False)
            self.fusion = ContextFusion()
        if imagenet is not None:
            for module in self.modules():
                if isinstance(module, (VGGEncoder, FCN8sHead)):
                    module.load_imagenet(imagenet)

    # ------------------------------------------------------------------------------------ geometry

    def patch_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Patch size on an image of ``shape`` (the image's own side where it is smaller than the patch)."""
        return min(self.patch_size, shape[0]), min(self.patch_size, shape[1])

    def grid(self, shape: tuple[int, int]) -> tuple[list[int], list[int]]:
        """Row and column starts of the patch grid on an image of ``shape``."""
        size = self.patch_shape(shape)
        return (axis_starts(shape[0], size[0], self.min_overlap), axis_starts(shape[1], size[1], self.min_overlap))

    def _chunks(self, boxes: list[Box]) -> Iterator[list[Box]]:
        for start in range(0, len(boxes), self.patch_batch):
            yield boxes[start : start + self.patch_batch]

    # ------------------------------------------------------------------------------------ networks

    def _global_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Mode 0: FCN-8s on the whole image resized to the patch size."""
        size = (self.patch_size, self.patch_size)
        return self.large_head(*self.large_encoder(resize(images, size)), size)

    @torch.no_grad()
    def _contexts(self, images: torch.Tensor, size: tuple[int, int]) -> _Contexts:
        medium = pad_for_context(images, size, MEDIUM_SCALE) if self.mode in (2, 4) else None
        if self.mode != 4:
            return _Contexts(medium, None, None)
        if self.large_scale is not None:
            return _Contexts(medium, pad_for_context(images, size, self.large_scale), None)
        whole = resize(images, (self.patch_size, self.patch_size))
        return _Contexts(medium, None, self.large_encoder(whole)[2])

    def _patch_logits(self, images: torch.Tensor, boxes: list[Box], size: tuple[int, int],
                      contexts: _Contexts) -> torch.Tensor:
        """Logits (N, classes, *size) of the patches at ``boxes``, with their contexts."""
        pool3, pool4, pool5 = self.local_encoder(crop_patches(images, boxes, size))
        if self.mode == 2:
            medium = self.medium_encoder(context_crops(contexts.medium, boxes, size, MEDIUM_SCALE))[2]
            pool5 = pool5 + self.medium_attention(pool5, medium)
        elif self.mode == 4:
            medium, large = self._frozen_contexts(boxes, size, contexts)
            pool5 = pool5 + self.fusion(pool5, medium, large)
        return self.local_head(pool3, pool4, pool5, size)

    @torch.no_grad()
    def _frozen_contexts(self, boxes: list[Box], size: tuple[int, int],
                         contexts: _Contexts) -> tuple[torch.Tensor, torch.Tensor]:
        """Mode 4: pool5 of the medium and large contexts from the frozen encoders."""
        medium = self.medium_encoder(context_crops(contexts.medium, boxes, size, MEDIUM_SCALE))[2]
        if contexts.large_pool5 is not None:
            index = torch.tensor([b for b, _, _ in boxes], device=contexts.large_pool5.device)
            return medium, contexts.large_pool5.index_select(0, index)
        return medium, self.large_encoder(context_crops(contexts.large, boxes, size, self.large_scale))[2]

    # ------------------------------------------------------------------------------------ entry points

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[-2], x.shape[-1])
        if self.mode == 0:
            return F.interpolate(self._global_logits(x), size=shape, mode="bilinear", align_corners=False)
        size = self.patch_shape(shape)
        rows, cols = self.grid(shape)
        boxes = patch_boxes(x.shape[0], rows, cols)
        contexts = self._contexts(x, size)
        out = x.new_zeros(x.shape[0], self.num_classes, *shape)
        for chunk in self._chunks(boxes):
            merge_patches(self._patch_logits(x, chunk, size, contexts), chunk, out)
        return out / coverage(shape, size, rows, cols).to(out)

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor, ignore_index: int | None,
                      dice: Dice) -> torch.Tensor:  # noqa: ARG002 (FCtL trains with the focal loss)
        """Focal loss of this stage: on the resized whole image (M0) or on every grid patch of the batch."""
        if self.mode == 0:
            target = F.interpolate(masks[:, None].float(), size=(self.patch_size,) * 2, mode="nearest-exact")
            return focal_loss(self._global_logits(images), target[:, 0].long(), ignore_index=ignore_index)
        shape = (images.shape[-2], images.shape[-1])
        size = self.patch_shape(shape)
        boxes = patch_boxes(images.shape[0], *self.grid(shape))
        contexts = self._contexts(images, size)
        logits = torch.cat([self._patch_logits(images, chunk, size, contexts) for chunk in self._chunks(boxes)])
        return focal_loss(logits, crop_patches(masks, boxes, size), ignore_index=ignore_index)


def _label(params: dict) -> str:
    stage = "" if params["mode"] == 4 else f", {MODES.get(params['mode'], '?')} stage"
    return f"FCtL (no CSRN{stage})"


@register_model("fctl", keys=("M",), optional_keys=("P",), defaults={"mode": 4, "patch_size": 508},
                label=_label, io=(3, 7))
def build_fctl(*, in_channels: int, num_classes: int, subimage_size: tuple[int, int], dropout: float,  # noqa: ARG001
               mode: int, patch_size: int, weights_path: str | Path | None = None) -> FCtL:
    """``fctl_M4`` (``_P508`` default); ``weights_path``: a local torchvision VGG16 file (``ddubench train --weights``).

    FCN-8s keeps its own dropout 0.5; ``subimage_size`` does not apply.
    """
    if in_channels != 3:
        raise ModelSpecError(f"FCtL's VGG16 encoders take RGB input (3 channels), not {in_channels}; "
                             "use it on an RGB dataset such as deepglobe")
    return FCtL(num_classes, mode, patch_size, weights_path=weights_path)
