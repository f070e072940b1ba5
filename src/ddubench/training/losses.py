"""Multiclass soft dice loss, split into reducible per-class sums.

Three reductions (paper_facts 4, "Loss"); per class c, dice_c = 2 * sum(p_c * y_c) / sum(p_c + y_c) over
every non-ignored pixel of the batch, with p the softmax and y the one-hot target:
- ``macro`` (default): segmentation_models_pytorch's ``DiceLoss(mode="multiclass")``, what the authors'
  code trained with: loss_c = 1 - dice_c, set to 0 for a class absent from the batch's ground truth, then
  the mean over **all** classes. With DeepGlobe's ignore index (unknown, never a target) that is the sum
  over the present classes divided by 7.
- ``macro_present``: the same per-class losses averaged over the present classes only (the mean divides
  by their number). This was ``macro`` before the definition was corrected; it equals ``macro`` whenever
  every class occurs in the batch, as in every synthetic batch.
- ``micro``: the journal's Eq. (1), one dice over all classes and pixels at once (eps = 1e-7).

The per-class sums (intersection, cardinality, target pixel count) are computed first, in float32 or
wider whatever the logits' dtype (float16 sums overflow at 65504), and reduced second: a distributed
runtime all-reduces the sums across ranks, so which classes are present is decided on the global batch
and the loss equals the single-device loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-7
REDUCTIONS = ("macro", "macro_present", "micro")
DEFINITIONS = {
    "macro": "segmentation_models_pytorch DiceLoss(mode='multiclass') as in the authors' code: per-class soft "
             "dice, a class absent from the batch counts 0, mean over all classes",
    "macro_present": "per-class soft dice averaged over the classes present in the batch only",
    "micro": "journal Eq. (1): one soft dice over all classes and pixels",
}
CORRECTED = "2026-12-02"  # before this date `macro` computed what is now `macro_present`


@dataclass
class DiceTerms:
    """Per-class sums over all (non-ignored) pixels: intersection, cardinality, target pixel count."""

    intersection: torch.Tensor
    cardinality: torch.Tensor
    target_count: torch.Tensor


def dice_terms(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> DiceTerms:
    """Soft dice sums from logits (B, C, H, W) and integer targets (B, H, W), accumulated in >= float32."""
    num_classes = logits.shape[1]
    probs = logits.to(torch.promote_types(logits.dtype, torch.float32)).softmax(dim=1)
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    one_hot = F.one_hot(safe_target, num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    weight = valid.unsqueeze(1).to(probs.dtype)
    probs, one_hot = probs * weight, one_hot * weight
    dims = (0, 2, 3)
    return DiceTerms(
        intersection=(probs * one_hot).sum(dims),
        cardinality=(probs + one_hot).sum(dims),
        target_count=one_hot.sum(dims),
    )


def dice_loss_from_terms(terms: DiceTerms, reduction: str = "macro") -> torch.Tensor:
    """Turn (possibly all-reduced) dice sums into the loss; see the module docstring for the reductions."""
    if reduction == "micro":
        return 1 - (2 * terms.intersection.sum() + EPS) / (terms.cardinality.sum() + EPS)
    dice = 2 * terms.intersection / terms.cardinality.clamp_min(EPS)
    present = (terms.target_count > 0).to(dice.dtype)
    per_class = (1 - dice) * present
    if reduction == "macro":
        return per_class.mean()
    if reduction == "macro_present":
        return per_class.sum() / present.sum().clamp_min(1)
    raise ValueError(f"unknown dice reduction {reduction!r}; use one of {REDUCTIONS}")


class DiceLoss(nn.Module):
    """Multiclass soft dice loss on logits; see the module docstring for the reductions."""

    def __init__(self, reduction: str = "macro", ignore_index: int | None = None) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown dice reduction {reduction!r}; use one of {REDUCTIONS}")
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss_from_terms(dice_terms(logits, target, self.ignore_index), self.reduction)
