"""Random patching and downsampling baselines (journal Tables 1, 2): models, evaluation geometry, tables."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from baselines.downsampling import Downsampling, resize_images, resize_masks, upsample_logits
from baselines.patching import RandomPatching, coverage, random_patches, sliding_window, window_starts
from ddubench.cli import main
from ddubench.data.deepglobe import CLASSES, IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from ddubench.data.registry import SegmentationSplit
from ddubench.errors import DataError, ModelSpecError
from ddubench.evaluation.predict import evaluate
from ddubench.models import ModelSpec, build_model
from ddubench.report.baseline_tables import baseline_table, read_runs, record_kind
from ddubench.training.checkpoint import model_from_checkpoint
from ddubench.training.trainer import Trainer, TrainConfig

NUM_CLASSES = len(CLASSES)
ARGS = {"in_channels": 3, "num_classes": NUM_CLASSES, "subimage_size": (16, 16)}


class ConstantNet(nn.Module):
    """Always predicts one class: logit 1 for it, 0 for the others, at the input's size."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x.new_zeros(x.shape[0], NUM_CLASSES, *x.shape[-2:])
        logits[:, self.label] = 1.0
        return logits


class Recorder(nn.Module):
    """Returns its input unchanged (or ``fn`` of it) and remembers the shapes it was called with."""

    def __init__(self, fn=None) -> None:
        super().__init__()
        self.fn = fn or (lambda x: x)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.fn(x)


def two_class_split() -> SegmentationSplit:
    """One 32x32 image: top half agriculture (512 px), bottom-left urban (256 px), bottom-right unknown (256 px)."""
    masks = torch.full((1, 32, 32), CLASSES.index("agriculture"), dtype=torch.uint8)
    masks[0, 16:, :16] = CLASSES.index("urban")
    masks[0, 16:, 16:] = IGNORE_INDEX
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return SegmentationSplit(images, masks, CLASSES, (16, 16), IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD)


def downsampling_trained_on(net: nn.Module, size: int, height: int, width: int, multiple: int = 1) -> Downsampling:
    model = Downsampling(net, size, multiple=multiple)
    model.record_train_shape(height, width)
    return model


# --- evaluation of a constant prediction: hand-computed IoU ---------------------------------------------------

@pytest.mark.parametrize("model", [
    RandomPatching(ConstantNet(1), patch_size=16),
    RandomPatching(ConstantNet(1), patch_size=16, overlap=50),
    downsampling_trained_on(ConstantNet(1), 16, 32, 32),
], ids=["patching", "patching-overlap", "downsampling"])
def test_constant_agriculture_prediction_gives_hand_computed_iou(model: nn.Module) -> None:
    scores = evaluate(model, two_class_split(), batch_size=1, progress=False)
    # agriculture: TP 512, FP 256 (the urban pixels); the 256 unknown pixels are ignored, not false positives
    assert scores["iou"]["agriculture"] == pytest.approx(512 / 768)
    assert scores["iou"]["urban"] == 0.0  # 256 false negatives, no true positive
    assert all(scores["iou"][name] is None for name in ("rangeland", "forest", "water", "barren", "unknown"))
    assert scores["miou"] == pytest.approx(1 / 3)
    cm = torch.tensor(scores["confusion_matrix"])
    assert cm.sum() == 768 and cm[:, 1].sum() == 768


# --- sliding-window geometry --------------------------------------------------------------------------------

def test_window_starts_end_flush_with_the_border() -> None:
    assert window_starts(2048, 256, 256) == list(range(0, 2048, 256))
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(16, 16, 8) == [0]
    with pytest.raises(DataError, match="smaller than the 32 px patch"):
        window_starts(16, 32, 32)


def test_coverage_counts_by_hand() -> None:
    assert torch.equal(coverage(64, 96, 16, 16), torch.ones(64, 96, dtype=torch.int64))
    axis = torch.tensor([1, 1, 1, 2, 1, 1, 2, 1, 1, 1])  # windows [0,4), [3,7), [6,10)
    assert torch.equal(coverage(10, 10, 4, 3), axis[:, None] * axis[None, :])
    assert coverage(10, 10, 4, 3).sum() == 9 * 16  # nine windows of 16 pixels


@pytest.mark.parametrize("height,width,size,stride,per_pass", [
    (32, 48, 16, 16, 10**9), (32, 48, 16, 16, 16 * 16), (30, 37, 8, 5, 3 * 64), (24, 24, 8, 4, 1),
])
def test_sliding_window_places_every_window_and_averages_overlaps(height, width, size, stride, per_pass) -> None:
    x = torch.rand(2, 3, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    identity = Recorder()
    torch.testing.assert_close(sliding_window(identity, x, size, stride, pixels_per_pass=per_pass), x,
                               rtol=1e-15, atol=0)  # overlapping windows: (x + x) / 2 up to rounding
    # every call gets whole windows of all images; the windows add up to the coverage counts
    windows = len(window_starts(height, size, stride)) * len(window_starts(width, size, stride))
    assert sum(shape[0] for shape in identity.shapes) == 2 * windows
    assert {shape[1:] for shape in identity.shapes} == {(3, size, size)}
    ones = sliding_window(torch.ones_like, x, size, stride, pixels_per_pass=per_pass)
    assert torch.equal(ones, torch.ones_like(x))  # a pixel summed more or less often than its weight would differ


def test_sliding_window_overlap_is_the_mean_of_the_covering_windows() -> None:
    x = torch.arange(6, dtype=torch.float64).expand(1, 1, 4, 6).clone()  # value = column index
    window_mean = Recorder(lambda t: t.mean(dim=(2, 3), keepdim=True).expand_as(t))
    out = sliding_window(window_mean, x, 4, 2)  # windows over columns [0, 4) (mean 1.5) and [2, 6) (mean 3.5)
    assert torch.equal(out[0, 0, 0], torch.tensor([1.5, 1.5, 2.5, 2.5, 3.5, 3.5], dtype=torch.float64))


# --- random patches -------------------------------------------------------------------------------------------

def ramp_batch(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height).view(-1, 1).expand(height, width)
    cols = torch.arange(width).view(1, -1).expand(height, width)
    images = torch.stack([rows, cols]).expand(batch, 2, height, width).clone()
    return images, (rows * width + cols).expand(batch, height, width).clone()


def test_random_patch_mask_aligns_with_its_image_patch() -> None:
    images, masks = ramp_batch(64, 20, 24)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        patches, mask_patches = random_patches(images, masks, 8)
        torch.manual_seed(0)
        again, _ = random_patches(images, masks, 8)
    assert patches.shape == (64, 2, 8, 8) and mask_patches.shape == (64, 8, 8)
    assert torch.equal(mask_patches, patches[:, 0] * 24 + patches[:, 1])
    tops, lefts = patches[:, 0, 0, 0], patches[:, 1, 0, 0]
    steps = torch.arange(8)
    assert torch.equal(patches[:, 0], (tops.view(-1, 1, 1) + steps.view(1, -1, 1)).expand(-1, 8, 8))  # rows
    assert torch.equal(patches[:, 1], (lefts.view(-1, 1, 1) + steps.view(1, 1, -1)).expand(-1, 8, 8))  # columns
    assert set(tops.tolist()) == set(range(13)) and set(lefts.tolist()) == set(range(17))  # every corner reachable
    assert torch.equal(again, patches)  # torch's global RNG: seeded runs draw the same patches


def test_patching_training_loss_uses_one_patch_per_image() -> None:
    images, masks = ramp_batch(3, 40, 40)
    seen = {}

    def dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen["logits"], seen["target"] = logits, target
        return logits.sum()

    model = RandomPatching(Recorder(), patch_size=16)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model.training_loss(images.double(), masks, IGNORE_INDEX, dice)
    assert seen["logits"].shape == (3, 2, 16, 16)
    assert torch.equal(seen["target"], (seen["logits"][:, 0] * 40 + seen["logits"][:, 1]).long())
    with pytest.raises(DataError, match="smaller than the 64 px patch"):
        RandomPatching(Recorder(), patch_size=64).training_loss(images, masks, IGNORE_INDEX, dice)


# --- downsampling -------------------------------------------------------------------------------------------

def test_mask_downsampling_takes_the_centre_label() -> None:
    masks = torch.arange(16, dtype=torch.uint8).view(1, 4, 4)
    small = resize_masks(masks, (2, 2))
    assert small.dtype == torch.uint8
    assert small.tolist() == [[[5, 7], [13, 15]]]


def test_image_downsampling_and_logit_upsampling() -> None:
    constant = torch.full((1, 3, 37, 53), 0.7, dtype=torch.float64)
    assert torch.allclose(resize_images(constant, (9, 13)), torch.full((1, 3, 9, 13), 0.7, dtype=torch.float64))
    logits = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert upsample_logits(logits, (4, 4), "nearest")[0, 0].tolist() == [
        [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    # bilinear, align_corners=False: the first row of a 2 -> 4 upsampling is 1, 1.25, 1.75, 2
    assert upsample_logits(logits, (4, 4), "bilinear")[0, 0, 0].tolist() == [1.0, 1.25, 1.75, 2.0]


@pytest.mark.parametrize("shape,multiple,reduced", [
    ((37, 53), 1, (9, 13)),    # 37 * 16 / 64 = 9.25, 53 / 4 = 13.25
    ((34, 30), 1, (9, 8)),     # 8.5 rounds half up, 7.5 too
    ((37, 53), 16, (16, 16)),  # never below one multiple
    ((128, 200), 16, (32, 48)),
])
def test_downsampling_round_trip_shapes(shape, multiple, reduced) -> None:
    net = Recorder(lambda x: torch.zeros(x.shape[0], NUM_CLASSES, *x.shape[-2:]))
    model = downsampling_trained_on(net, 16, 64, 64, multiple)
    out = model(torch.rand(2, 3, *shape))
    assert net.shapes == [(2, 3, *reduced)]
    assert out.shape == (2, NUM_CLASSES, *shape)


def test_downsampling_keeps_the_training_factor_at_test_time() -> None:
    net = Recorder(lambda x: torch.zeros(x.shape[0], NUM_CLASSES, *x.shape[-2:]))
    model = Downsampling(net, 256, multiple=16)
    with pytest.raises(ModelSpecError, match="has not seen training images"):
        model(torch.rand(1, 3, 64, 64))
    seen = {}
    model.training_loss(torch.rand(2, 3, 1024, 1024), torch.randint(0, 7, (2, 1024, 1024)), IGNORE_INDEX,
                        lambda logits, target: seen.update(logits=logits.shape, target=target.shape))
    assert seen == {"logits": (2, NUM_CLASSES, 256, 256), "target": (2, 256, 256)}
    assert model.train_shape.tolist() == [1024, 1024]
    assert model.reduced_shape(2048, 2048) == (512, 512)  # the journal's test crop at the training factor 1/4
    with pytest.raises(DataError, match="trained on 1024x1024 px images, not 512x512"):
        model.record_train_shape(512, 512)


# --- registry, ResNet U-Net and the shared trainer ------------------------------------------------------------

def test_specs_parse_and_canonicalise() -> None:
    assert str(ModelSpec.parse("patching_P256_O0_R18_BE")) == "patching_P256"
    assert str(ModelSpec.parse("patching_P64_O50_BT")) == "patching_P64_O50_BT"
    assert str(ModelSpec.parse("downsampling_S128_UB")) == "downsampling_S128"
    assert ModelSpec.parse("downsampling_S128_UN").kwargs["upsample"] == "nearest"
    assert ModelSpec.parse("patching_P32").io == (3, 7)
    with pytest.raises(ModelSpecError, match="not a positive multiple of 16"):
        build_model("patching_P24", **ARGS)
    with pytest.raises(ModelSpecError, match="not a positive multiple of 16"):
        build_model("downsampling_S8", **ARGS)
    with pytest.raises(ModelSpecError, match="whole-pixel stride"):
        build_model("patching_P16_O33", **ARGS)


def test_resnet_unet_is_the_ddunet_without_coarse_network_and_tiles_exactly() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("patching_P16", **ARGS).eval().double()
    # journal Table 7's ResNet18 DDU-Net (9,726,375) minus its F = 256 coarse network (4,917,504)
    assert sum(p.numel() for p in model.parameters()) == 9726375 - 4917504
    x = torch.rand(1, 3, 32, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, NUM_CLASSES, 32, 48)
        torch.testing.assert_close(out[..., 16:32, 32:48], model.net(x[..., 16:32, 32:48]), rtol=0, atol=1e-12)


def tiny_split(count: int, side: int, seed: int) -> SegmentationSplit:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, side, side), dtype=torch.uint8, generator=gen)
    masks = torch.randint(0, NUM_CLASSES, (count, side, side), dtype=torch.uint8, generator=gen)
    return SegmentationSplit(images, masks, CLASSES, (16, 16), IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD)


def fit_one_epoch(model: nn.Module, spec: str, run_dir: Path) -> nn.Module:
    train, val = tiny_split(4, 32, 0), tiny_split(2, 64, 1)
    config = TrainConfig(lr=1e-3, max_epochs=1, min_epochs=0, batch_size=2, eval_batch_size=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        result = Trainer(model, spec, {**ARGS, "dropout": 0.0}, config, run_dir, progress=False).fit(train, val)
    assert result.epochs_run == 1 and result.steps == 2
    return val.batch(torch.arange(2))[0]


@pytest.mark.parametrize("wrap", [lambda net: RandomPatching(net, 16), lambda net: Downsampling(net, 16)],
                         ids=["patching", "downsampling"])
def test_trains_through_the_shared_trainer(wrap, tmp_path: Path) -> None:
    model = wrap(nn.Conv2d(3, NUM_CLASSES, 3, padding=1))
    before = model.net.weight.detach().clone()
    images = fit_one_epoch(model, "tiny", tmp_path)
    assert not torch.equal(model.net.weight, before)  # the custom training loss reached the optimiser
    state = torch.load(tmp_path / "best.pt", weights_only=False)["model"]
    reloaded = wrap(nn.Conv2d(3, NUM_CLASSES, 3, padding=1))
    reloaded.load_state_dict(state)
    if isinstance(model, Downsampling):
        assert state["train_shape"].tolist() == [32, 32]  # the factor travels with the weights
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(images), model.eval()(images))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["patching_P16", "downsampling_S16"])
def test_resnet_baselines_train_and_reload_from_checkpoint(spec: str, tmp_path: Path) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(spec, **ARGS)
    images = fit_one_epoch(model, spec, tmp_path)
    reloaded, _ = model_from_checkpoint(tmp_path / "best.pt")
    with torch.no_grad():
        assert torch.equal(reloaded(images), model.eval()(images))


# --- journal Tables 1 and 2 from hand-made records -------------------------------------------------------------

def confusion(errors: dict[tuple[int, int], int]) -> list[list[int]]:
    """2 pixels per land-cover class on the diagonal, then ``errors`` moved off it; unknown row empty."""
    cm = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    for c in range(IGNORE_INDEX):
        cm[c][c] = 2
    for (true, pred), count in errors.items():
        cm[true][true] -= count
        cm[true][pred] += count
    return cm


PERFECT = confusion({})                                   # mIoU 1
BARREN_AS_UNKNOWN = confusion({(5, 6): 1})                # barren 1 / (1 + 1): predicted unknown is an error
URBAN_AS_AGRICULTURE = confusion({(0, 1): 1})             # urban 1 / 2, agriculture 2 / 3
MIOU_BARREN = Fraction(5, 6) + Fraction(1, 2) / 6         # five classes at IoU 1
MIOU_URBAN = (4 + Fraction(1, 2) + Fraction(2, 3)) / 6


def write_run(root: Path, spec: str, seed: int, cms: dict[str, list[list[int]]], crops: tuple[int, int],
              train_time: float) -> list[Path]:
    folder = root / spec / f"seed{seed}"
    folder.mkdir(parents=True)
    summary = {"spec": spec, "provenance": {"config": {"seed": seed}}, "result": {"train_time_s": train_time},
               "train_data": {"spec": {"crop_train": crops[0], "crop_test": crops[1]}}}
    paths = [folder / "train.json"]
    paths[0].write_text(json.dumps(summary))
    for split, cm in cms.items():
        paths.append(folder / f"eval_{split}.json")
        paths[-1].write_text(json.dumps({"spec": spec, "seed": seed, "scores": {"confusion_matrix": cm}}))
    return paths


def dg_config(select_on: str, seeds: list[int]) -> dict:
    training = {"select_on": select_on, "max_epochs": 4, "batch_size": 12, "seeds": seeds}
    return {"run": "cpu", "deepglobe": {"root": None, "training": training, "weights": {"resnet18": None}}}


def test_table1_at_quarter_geometry_by_hand(tmp_path: Path) -> None:
    crops = (256, 512)
    paths = write_run(tmp_path, "patching_P16", 0, {"train": PERFECT, "test": BARREN_AS_UNKNOWN}, crops, 10.0)
    paths += write_run(tmp_path, "patching_P16", 1, {"train": URBAN_AS_AGRICULTURE, "test": PERFECT}, crops, 20.0)
    paths += write_run(tmp_path, "patching_P64", 0, {"train": PERFECT, "test": URBAN_AS_AGRICULTURE}, crops, 5.0)
    table = baseline_table("table1", read_runs(paths, ("train", "test")), dg_config("test", [0, 1]))
    assert table["patch_size_paper_px"].tolist() == [16, 32, 64, 128, 256, 512, 1024]
    ours = table.set_index("patch_size_paper_px")
    row = ours.loc[64]  # 16 px of 256 px crops = the journal's 64 px of 1024 px crops
    assert (row["model"], row["patch_size_px"], row["repeats"], row["train_time_s_ours"]) == ("patching_P16", 16, 2, 15)
    assert row["miou_train_ours"] == pytest.approx(float((1 + MIOU_URBAN) / 2))
    assert row["miou_test_ours"] == pytest.approx(float((MIOU_BARREN + 1) / 2))
    assert (row["select_on"], row["selected_seed"], row["miou_test_selected_ours"]) == ("test", 1, 1.0)
    assert row["miou_train_selected_ours"] == pytest.approx(float(MIOU_URBAN))
    assert (row["miou_train_paper"], row["miou_test_paper"]) == (0.5371, 0.4882)
    assert ours.loc[256, "model"] == "patching_P64"
    assert ours.loc[256, "miou_test_ours"] == pytest.approx(float(MIOU_URBAN))
    note = ours.loc[256, "note"]
    assert "GENERATED DeepGlobe-format tiles, NOT DeepGlobe" in note and "max_epochs 4 (journal 100)" in note
    assert "compared with its 256 px row" in note and "batch_size" not in note
    for paper_size in (16, 32, 128, 512, 1024):
        assert pd.isna(ours.loc[paper_size, "miou_test_ours"]) and ours.loc[paper_size, "note"].startswith("not run")
    assert "4 px, below the ResNet U-Net's minimum" in ours.loc[16, "note"]
    assert "is 32 px, not among" in ours.loc[128, "note"]


def test_table2_at_journal_geometry_through_the_cli(tmp_path: Path, repo_root: Path) -> None:
    # config/smoke.yaml selects the repeat on the validation split, so runs need eval_val.json too
    cms = {"train": URBAN_AS_AGRICULTURE, "val": PERFECT, "test": BARREN_AS_UNKNOWN}
    paths = write_run(tmp_path, "downsampling_S256", 0, cms, (1024, 2048), 7.5)
    out = tmp_path / "table2.csv"
    config = str(repo_root / "config" / "smoke.yaml")
    assert main(["table", "table2", "--config", config, "--evals", *map(str, paths), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table["size_paper_px"].tolist() == [16, 32, 64, 128, 256, 512, 1024]
    row = table.set_index("size_paper_px").loc[256]
    assert (row["size_px"], row["miou_train_paper"], row["miou_test_paper"]) == (256, 0.7578, 0.6896)
    assert row["miou_train_ours"] == pytest.approx(float(MIOU_URBAN))
    assert row["miou_test_ours"] == row["miou_test_selected_ours"] == pytest.approx(float(MIOU_BARREN))
    assert (row["select_on"], row["selected_seed"]) == ("val", 0)
    assert "test crops predicted at 512 px" in row["note"] and "crops 1024/2048" not in row["note"]
    assert (tmp_path / "table2.meta.json").exists()
    assert main(["table", "table2", "--config", config, "--evals", str(paths[0]), "--out", str(out)]) == 2


def test_table_inputs_are_checked(tmp_path: Path) -> None:
    paths = write_run(tmp_path, "patching_P16", 0, {"train": PERFECT, "test": PERFECT}, (256, 512), 1.0)
    with pytest.raises(DataError, match="patching_P16 seed 0: eval_val.json missing"):
        read_runs(paths, ("train", "val", "test"))
    with pytest.raises(DataError, match="neither a train.json nor"):
        record_kind(tmp_path / "eval_holdout.json")
    with pytest.raises(DataError, match="table2 reports downsampling models, but got records of patching_P16"):
        baseline_table("table2", read_runs(paths, ("train", "test")), dg_config("test", [0]))
