"""The dice loss over gloo ranks: which classes are present is decided on the reduced (global) counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _ranks import run_ranks
from ddubench.training.losses import REDUCTIONS, DiceLoss, dice_loss_from_terms, dice_terms

IGNORE = 3


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A batch whose left half (rank 0 of 2) holds no class 2 and whose class 3 is ignored everywhere."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 6, 8, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 6, 8), generator=g)
    target[..., :4][target[..., :4] == 2] = 0
    return logits, target


def losses_on_this_rank() -> dict[str, float]:
    """Each rank's share of the image columns -> its dice sums -> summed over ranks -> the loss."""
    from ddubench.distributed.runtime import distributed
    from ddubench.distributed.training import SpatialParallel

    logits, target = _batch()
    with distributed(device="cpu") as ctx:
        columns = slice(4 * ctx.rank, 4 * (ctx.rank + 1))
        terms = dice_terms(logits[..., columns], target[..., columns], IGNORE)
        assert (terms.target_count[2] > 0) == (ctx.rank == 1)  # rank 0 sees no class 2
        reduced = SpatialParallel(ctx).reduce_terms(terms)
        return {reduction: float(dice_loss_from_terms(reduced, reduction)) for reduction in REDUCTIONS}


def test_two_ranks_give_the_single_process_loss(tmp_path: Path) -> None:
    logits, target = _batch()
    single = {reduction: float(DiceLoss(reduction, ignore_index=IGNORE)(logits, target)) for reduction in REDUCTIONS}
    results = run_ranks(2, losses_on_this_rank, tmp=tmp_path)
    assert [status for status, _ in results] == ["ok", "ok"], results
    for _, losses in results:
        assert losses == pytest.approx(single, abs=1e-12)
    # averaging each rank's own loss instead would weigh rank 0's missing class differently
    loss = DiceLoss("macro", ignore_index=IGNORE)
    halves = [loss(logits[..., s], target[..., s]) for s in (slice(0, 4), slice(4, 8))]
    assert abs(float(sum(halves) / 2) - single["macro"]) > 1e-3
