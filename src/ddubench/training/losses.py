"""Multiclass soft dice loss, split into reducible per-class sums.

Two reductions are offered (paper_facts 4, "Loss"):
- ``macro`` (default): per-class dice over all pixels of the batch, classes absent from the batch's
  ground truth left out, mean over the remaining classes. This is what the authors' code trained with
  (segmentation_models_pytorch's DiceLoss), and what makes the thin line class matter.
- ``micro``: the journal's Eq. (1), one dice over all classes and pixels at once (eps = 1e-7).

The per-class sums (intersection, cardinality, presence) are computed first and reduced second, so a
distributed runtime can all-reduce the sums across ranks and get exactly the single-device loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-7
REDUCTIONS = ("macro", "micro")


@dataclass
class DiceTerms:
    """Per-class sums over all (non-ignored) pixels: intersection, cardinality, target pixel count."""

    intersection: torch.Tensor
    cardinality: torch.Tensor
    target_count: torch.Tensor


def dice_terms(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> DiceTerms:
    """Soft dice sums from logits (B, C, H, W) and integer targets (B, H, W)."""
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
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
    """Turn (possibly all-reduced) dice sums into the loss."""
    if reduction == "micro":
        return 1 - (2 * terms.intersection.sum() + EPS) / (terms.cardinality.sum() + EPS)
    dice = 2 * terms.intersection / terms.cardinality.clamp_min(EPS)
    present = (terms.target_count > 0).to(dice.dtype)
    return ((1 - dice) * present).sum() / present.sum().clamp_min(1)


class DiceLoss(nn.Module):
    """Multiclass soft dice loss on logits; see the module docstring for the two reductions."""

    def __init__(self, reduction: str = "macro", ignore_index: int | None = None) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown dice reduction {reduction!r}; use one of {REDUCTIONS}")
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss_from_terms(dice_terms(logits, target, self.ignore_index), self.reduction)
