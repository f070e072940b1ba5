"""Confusion-matrix scores, whole-split evaluation and the dice loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassJaccardIndex

from ddubench.config import load_config
from ddubench.data.registry import SegmentationSplit
from ddubench.data.synthetic import CLASSES as SYNTHETIC_CLASSES
from ddubench.data.synthetic import SyntheticSpec, generate
from ddubench.evaluation.metrics import confusion_matrix_metric, scores_from_confusion
from ddubench.evaluation.predict import evaluate, predict
from ddubench.training.losses import REDUCTIONS, DiceLoss, DiceTerms, dice_loss_from_terms, dice_terms

CLASSES = ("background", "line", "circle")

TARGET = torch.tensor([
    [0, 0, 0, 0],
    [0, 0, 1, 1],
    [0, 2, 2, 1],
    [0, 2, 2, 2],
])
PREDS = torch.tensor([
    [0, 0, 0, 1],
    [0, 0, 1, 0],
    [0, 2, 1, 1],
    [2, 2, 2, 2],
])
# rows true, columns predicted
CONFUSION = [[6, 1, 1], [1, 2, 0], [0, 1, 4]]


def _scores(preds: torch.Tensor, target: torch.Tensor, num_classes: int = 3) -> dict:
    metric = confusion_matrix_metric(num_classes)
    return scores_from_confusion(metric(preds, target), CLASSES[:num_classes])


def test_scores_of_a_hand_made_confusion() -> None:
    s = _scores(PREDS[None], TARGET[None])
    assert s["confusion_matrix"] == CONFUSION
    # tp = (6, 2, 4); true counts (8, 3, 5); predicted counts (7, 4, 5); unions (9, 5, 6)
    assert s["iou"] == pytest.approx({"background": 6 / 9, "line": 2 / 5, "circle": 4 / 6}, abs=1e-12)
    assert s["miou"] == pytest.approx(26 / 45, abs=1e-12)
    assert s["precision"] == pytest.approx({"background": 6 / 7, "line": 2 / 4, "circle": 4 / 5}, abs=1e-12)
    assert s["recall"] == pytest.approx({"background": 6 / 8, "line": 2 / 3, "circle": 4 / 5}, abs=1e-12)
    assert s["pixel_accuracy"] == pytest.approx(12 / 16, abs=1e-12)
    assert s["classes"] == list(CLASSES)

    jaccard = MulticlassJaccardIndex(num_classes=3, average=None)(PREDS[None], TARGET[None])
    torch.testing.assert_close(
        torch.tensor([s["iou"][c] for c in CLASSES], dtype=torch.float32), jaccard.float(), rtol=0, atol=1e-6
    )


def test_dataset_level_iou_not_mean_of_images() -> None:
    # image A: one line pixel, found; image B: four line pixels, one found
    target_a, pred_a = torch.tensor([[[1, 0, 0, 0]]]), torch.tensor([[[1, 0, 0, 0]]])
    target_b, pred_b = torch.tensor([[[1, 1, 1, 1]]]), torch.tensor([[[1, 0, 0, 0]]])
    metric = confusion_matrix_metric(3)
    metric.update(pred_a, target_a)
    metric.update(pred_b, target_b)
    s = scores_from_confusion(metric.compute(), CLASSES)

    iou_a = _scores(pred_a, target_a)["iou"]["line"]
    iou_b = _scores(pred_b, target_b)["iou"]["line"]
    assert (iou_a, iou_b) == (1.0, 0.25)  # mean per image would be 0.625
    assert s["iou"]["line"] == pytest.approx(2 / 5, abs=1e-12)
    assert s["iou"]["background"] == pytest.approx(3 / 6, abs=1e-12)
    assert s["iou"]["circle"] is None
    assert s["miou"] == pytest.approx((2 / 5 + 3 / 6) / 2, abs=1e-12)

    # same as one matrix over the union of the pixels
    union = _scores(torch.cat([pred_a, pred_b]), torch.cat([target_a, target_b]))
    assert union == s


def test_absent_class_has_no_iou_and_is_left_out_of_miou() -> None:
    target = torch.tensor([[[0, 0, 1, 1]]])
    preds = torch.tensor([[[0, 1, 1, 1]]])
    s = _scores(preds, target)
    assert s["iou"]["circle"] is None
    assert s["precision"]["circle"] is None and s["recall"]["circle"] is None
    assert s["iou"]["background"] == pytest.approx(1 / 2)
    assert s["iou"]["line"] == pytest.approx(2 / 3)
    assert s["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_class_only_predicted_gets_iou_zero() -> None:
    s = _scores(torch.tensor([[[0, 2, 1, 1]]]), torch.tensor([[[0, 0, 1, 1]]]))
    assert s["iou"]["circle"] == 0.0
    assert s["recall"]["circle"] is None
    assert s["miou"] == pytest.approx((1 / 2 + 1 + 0) / 3)


class ConstantClass(nn.Module):
    """Logits that always pick ``cls``."""

    def __init__(self, cls: int, num_classes: int = 3) -> None:
        super().__init__()
        self.cls, self.num_classes = cls, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], self.num_classes, *x.shape[2:])
        logits[:, self.cls] = 1.0
        return logits


def _split() -> SegmentationSplit:
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 3, (5, 8, 16), generator=g)
    masks[masks == 2] = torch.where(torch.rand(int((masks == 2).sum()), generator=g) < 0.7, 0, 2)
    images = (masks * 100).to(torch.uint8).unsqueeze(1)
    return SegmentationSplit(images=images, masks=masks, class_names=CLASSES, subimage_size=(8, 8))


def test_evaluate_constant_background_model() -> None:
    split = _split()
    background = int((split.masks == 0).sum())
    scores = evaluate(ConstantClass(0), split, batch_size=2, progress=False)  # 5 images: batches 2, 2, 1
    assert scores["iou"]["background"] == pytest.approx(background / split.masks.numel(), abs=1e-12)
    assert scores["iou"]["line"] == 0.0 and scores["iou"]["circle"] == 0.0
    assert scores["recall"]["background"] == 1.0
    assert scores["pixel_accuracy"] == pytest.approx(background / split.masks.numel(), abs=1e-12)
    assert sum(map(sum, scores["confusion_matrix"])) == split.masks.numel()


def test_evaluate_perfect_model() -> None:
    split = _split()

    class Oracle(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            cls = torch.round(x[:, 0] * 255 / 100).long()
            return torch.nn.functional.one_hot(cls, 3).permute(0, 3, 1, 2).float()

    scores = evaluate(Oracle(), split, batch_size=3, progress=False)
    assert scores["iou"] == {c: 1.0 for c in CLASSES}
    assert scores["miou"] == 1.0
    assert predict(Oracle(), split.batch(torch.arange(2))[0]).tolist() == split.masks[:2].tolist()


# -------------------------------------------------------------------------------------------------- dice


def _target(seed: int = 0, shape: tuple[int, ...] = (4, 8, 8)) -> torch.Tensor:
    return torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dice_loss_perfect_prediction(reduction: str) -> None:
    target = _target()
    logits = 50.0 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).double()
    loss = DiceLoss(reduction)(logits, target)
    assert 0 <= float(loss) < 1e-6


def test_dice_loss_uniform_logits_micro() -> None:
    target = _target()
    loss = DiceLoss("micro")(torch.zeros(4, 3, 8, 8, dtype=torch.float64), target)
    # sum(p_true) = N/3, cardinality = N (probabilities) + N (one-hot) -> dice = 1/3
    assert float(loss) == pytest.approx(1 - 1 / 3, abs=1e-6)


def test_dice_loss_uniform_logits_absent_class() -> None:
    target = torch.tensor([[[0, 0, 0, 1]]])  # class 2 absent
    logits = torch.zeros(1, 3, 1, 4, dtype=torch.float64)
    # p = 1/3 everywhere. class 0: dice 2*(3/3) / (4/3 + 3) = 6/13; class 1: 2*(1/3) / (4/3 + 1) = 2/7
    # macro (smp DiceLoss): the absent class 2 contributes loss 0 and the mean runs over all 3 classes
    assert float(DiceLoss("macro")(logits, target)) == pytest.approx((7 / 13 + 5 / 7 + 0) / 3, abs=1e-12)  # 38/91
    # macro_present: the mean over the two present classes only
    assert float(DiceLoss("macro_present")(logits, target)) == pytest.approx((7 / 13 + 5 / 7) / 2, abs=1e-12)


def test_dice_loss_with_ignore_index_by_hand() -> None:
    # DeepGlobe's case: the ignored class (here 2) is never a target, so it is always absent
    target = torch.tensor([[[0, 0, 1, 2]]])
    logits = torch.zeros(1, 3, 1, 4, dtype=torch.float64)
    # the ignored pixel leaves intersection and cardinality; p = 1/3 on the 3 other pixels
    # class 0: 2*(2/3) / (3/3 + 2) = 4/9; class 1: 2*(1/3) / (3/3 + 1) = 1/3
    loss = {r: float(DiceLoss(r, ignore_index=2)(logits, target)) for r in REDUCTIONS}
    assert loss["macro"] == pytest.approx((5 / 9 + 2 / 3 + 0) / 3, abs=1e-12)  # 11/27
    assert loss["macro_present"] == pytest.approx((5 / 9 + 2 / 3) / 2, abs=1e-12)  # 11/18 = 3/2 x macro
    # micro: intersection 2/3 + 1/3 = 1, cardinality 3 x (3/3) summed probabilities + 3 targets = 6
    assert loss["micro"] == pytest.approx(1 - (2 * 1 + 1e-7) / (6 + 1e-7), abs=1e-12)


def test_dice_loss_macro_matches_hand_formula() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 2, (2, 5, 5), generator=g)  # classes 0 and 1 only
    p = logits.softmax(1)
    per_class = []
    for c in (0, 1):
        t = (target == c).double()
        per_class.append(1 - 2 * (p[:, c] * t).sum() / (p[:, c].sum() + t.sum()))
    assert float(DiceLoss("macro")(logits, target)) == pytest.approx(float(sum(per_class) / 3), abs=1e-12)
    assert float(DiceLoss("macro_present")(logits, target)) == pytest.approx(float(sum(per_class) / 2), abs=1e-12)
    # micro: one dice over everything
    one_hot = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).double()
    micro = 1 - 2 * (p * one_hot).sum() / (p.sum() + one_hot.sum())
    assert float(DiceLoss("micro")(logits, target)) == pytest.approx(float(micro), abs=1e-9)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dice_terms_reduce_across_shards(reduction: str) -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64)
    target = _target(2, (6, 8, 8))
    target[:3][target[:3] == 2] = 0  # first shard has no class 2: presence comes from the summed counts
    a, b = dice_terms(logits[:3], target[:3]), dice_terms(logits[3:], target[3:])
    summed = DiceTerms(a.intersection + b.intersection, a.cardinality + b.cardinality, a.target_count + b.target_count)
    whole = DiceLoss(reduction)(logits, target)
    assert float(dice_loss_from_terms(summed, reduction)) == pytest.approx(float(whole), abs=1e-12)
    if reduction != "micro":  # ... which differs from averaging the two shards' losses
        mean_of_shards = (dice_loss_from_terms(a, reduction) + dice_loss_from_terms(b, reduction)) / 2
        assert abs(float(mean_of_shards) - float(whole)) > 1e-3


@pytest.mark.parametrize("config_file", ["config/cpu.yaml", "config/paper.yaml"])
def test_every_synthetic_batch_holds_every_class(config_file: str) -> None:
    """So the committed synthetic grid, trained with macro_present's reduction, is the macro (smp) grid too."""
    config = load_config(Path(__file__).parents[1] / config_file)
    synthetic, batch = config["synthetic"], config["training"]["batch_size"]
    counts = synthetic["counts"]
    smallest_batch = counts["train"] % batch or batch  # the last batch of an epoch may be smaller
    for k in synthetic["ks"]:
        spec = SyntheticSpec(k=k, rule=synthetic["rule"], subimage_size=synthetic["subimage_size"],
                             seed=synthetic["data_seed"])
        masks = torch.from_numpy(generate(spec, "train", counts["train"])["masks"]).long()
        lacking = [int((masks == c).flatten(1).any(1).logical_not().sum()) for c in range(len(SYNTHETIC_CLASSES))]
        # fewer images lack a class than any batch holds, so every shuffled batch has every class
        assert max(lacking) < min(smallest_batch, batch), (k, lacking)
        logits = torch.randn(batch, 3, *masks.shape[1:], generator=torch.Generator().manual_seed(k),
                             dtype=torch.float64)
        losses = [float(DiceLoss(r)(logits, masks[:batch])) for r in ("macro", "macro_present")]
        assert losses[0] == pytest.approx(losses[1], abs=1e-15)


def test_dice_terms_accumulate_float16_logits_in_float32() -> None:
    # one 2048 x 2048 crop, half class 0, half class 1: the per-class sums (699,051 and more) exceed
    # float16's 65504, so float16 sums would be inf and the loss NaN
    side = 2048
    target = torch.zeros(1, side, side, dtype=torch.long)
    target[:, side // 2 :] = 1
    logits = torch.zeros(1, 3, side, side, dtype=torch.float16)
    terms = dice_terms(logits, target)
    assert terms.intersection.dtype == torch.float32
    pixels = side * side
    torch.testing.assert_close(terms.target_count, torch.tensor([pixels / 2, pixels / 2, 0.0]), rtol=0, atol=0)
    # p = 1/3: class c in {0, 1}: intersection N/6, cardinality N/3 + N/2 -> dice 2/5; class 2 absent
    torch.testing.assert_close(terms.intersection, torch.tensor([pixels / 6, pixels / 6, 0.0]), rtol=1e-6, atol=0)
    torch.testing.assert_close(terms.cardinality, torch.tensor([5 * pixels / 6, 5 * pixels / 6, pixels / 3]),
                               rtol=1e-6, atol=0)
    assert float(dice_loss_from_terms(terms, "macro")) == pytest.approx(2 * (1 - 2 / 5) / 3, abs=1e-6)
    assert float(dice_loss_from_terms(terms, "macro_present")) == pytest.approx(1 - 2 / 5, abs=1e-6)
    assert float(dice_loss_from_terms(terms, "micro")) == pytest.approx(1 - 2 * (pixels / 3) / (2 * pixels), abs=1e-6)


def test_dice_ignore_index() -> None:
    target = _target()
    wrong = target.clone()
    wrong[:, 0] = (target[:, 0] + 1) % 3  # the first row is predicted wrong ...
    logits = 50.0 * torch.nn.functional.one_hot(wrong, 3).permute(0, 3, 1, 2).double()
    assert float(DiceLoss("macro")(logits, target)) > 0.05
    ignored = target.clone()
    ignored[:, 0] = 255  # ... but ignored
    for reduction in REDUCTIONS:
        assert float(DiceLoss(reduction, ignore_index=255)(logits, ignored)) < 1e-6


def test_unknown_reduction() -> None:
    with pytest.raises(ValueError):
        DiceLoss("mean")
    with pytest.raises(ValueError):
        dice_loss_from_terms(dice_terms(torch.zeros(1, 2, 1, 1), torch.zeros(1, 1, 1, dtype=torch.long)), "mean")


@pytest.mark.parametrize("loss", REDUCTIONS)
def test_table_notes_say_which_loss_ran(loss: str) -> None:
    from ddubench.report.deepglobe_tables import table6
    from ddubench.report.tables import table10

    config = load_config(Path(__file__).parents[1] / "config/smoke.yaml")
    config["training"]["loss"] = config["deepglobe"]["training"]["loss"] = loss
    synthetic = table10(config).set_index("hyperparameter").loc["loss"]
    assert synthetic["value_ours"] == f"dice ({loss})" and synthetic["note"].startswith(f"ran {loss}: ")
    assert "synthetic grid is unaffected" in synthetic["note"]
    deepglobe = table6(config["deepglobe"]).set_index("hyperparameter").loc["loss"]
    assert deepglobe["value_ours"] == f"dice ({loss})" and deepglobe["note"].startswith(f"ran {loss}: ")
    assert "before 2026-12-02 with macro computed macro_present" in deepglobe["note"]


def test_precision_and_recall_within_one_pixel_on_hand_made_masks() -> None:
    """A 2 px line predicted 3 px wide: exact precision 2/3, but every predicted pixel is within one pixel of a
    true one and every true pixel is found; a stray prediction 3 px away counts as wrong either way."""
    from ddubench.evaluation.predict import tolerant_counts, tolerant_scores

    masks = torch.zeros(1, 8, 10, dtype=torch.long)
    masks[0, 3:5, :] = 1  # the true line: rows 3-4
    predicted = torch.zeros_like(masks)
    predicted[0, 3:6, :] = 1  # drawn 3 px wide: rows 3-5
    counts = tolerant_counts(predicted, masks, 2)
    assert counts[1].tolist() == [30, 30, 20, 20] and counts[0].tolist() == [50, 50, 60, 60]
    predicted[0, 0, 0] = 1  # 3 rows above the line: not near it
    scores = tolerant_scores(tolerant_counts(predicted, masks, 2), ("background", "line"))
    assert scores["precision"]["line"] == pytest.approx(30 / 31) and scores["recall"]["line"] == 1.0
    valid = torch.ones_like(masks, dtype=torch.bool)
    valid[0, :, 5:] = False  # ignored pixels are left out of every count
    assert tolerant_counts(predicted, masks, 2, valid)[1].tolist() == [16, 15, 10, 10]
