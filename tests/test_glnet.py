"""GLNet baseline: patch grid, feature-sharing alignment, focal loss, stages, parameter counts, --init-from."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from baselines.glnet import GLNet
from baselines.glnet_grid import (
    FeatureMerger,
    PatchGrid,
    crop_features,
    extract_patches,
    grid_starts,
    interpolation_matrix,
    merge_patches,
)
from baselines.glnet_parts import Aggregation, focal_loss, resize_labels
from ddubench.errors import CheckpointError, ModelSpecError
from ddubench.models import ModelSpec, build_model
from ddubench.training.checkpoint import save_checkpoint
from ddubench.training.run import _initialise_from, train_model
from ddubench.training.trainer import TrainConfig

TINY = {"patch_size": 32, "min_overlap": 8, "patch_batch": 4}
IGNORE = 6


@pytest.fixture(scope="module")
def models() -> dict[int, GLNet]:
    """One tiny GLNet per stage (32 px patches and global image), built once."""
    torch.manual_seed(0)
    return {stage: GLNet(stage=stage, **TINY) for stage in (1, 2, 3)}


# --- patch grid -------------------------------------------------------------------------------------------

def test_grid_starts_match_the_public_code_on_deepglobe_sizes() -> None:
    assert grid_starts(2448, 508, 50) == [0, 388, 776, 1164, 1552, 1940]  # 6 x 6, overlap 120
    assert grid_starts(2048, 508, 50) == [0, 385, 770, 1155, 1540]  # 5 x 5, overlap 123
    assert grid_starts(1016, 508, 50) == [0, 254, 508]  # 2 patches would overlap by 0 < 50
    assert grid_starts(508, 508, 50) == [0]
    assert grid_starts(300, 508, 50) == [0]
    with pytest.raises(ValueError):
        grid_starts(100, 32, 32)


@pytest.mark.parametrize("height,width", [(65, 77), (64, 48), (20, 33)])
def test_patch_grid_covers_every_pixel_and_merging_an_identity_gives_the_input(height: int, width: int) -> None:
    grid = PatchGrid.cover(height, width, 32, 8)
    coverage = grid.coverage
    assert coverage.dtype == torch.int64 and coverage.min() >= 1
    x = torch.randint(-50, 50, (2, 3, height, width)).double()  # integers: sums and means are exact
    items = grid.items(2)
    patches = extract_patches(x, grid, items)
    assert patches.shape == (2 * len(grid.corners), 3, min(32, height), min(32, width))
    assert torch.equal(merge_patches(patches, grid, items, 2), x)


def test_coverage_profile_by_hand() -> None:
    grid = PatchGrid.cover(65, 77, 32, 8)
    assert grid.tops == (0, 17, 33)  # 3 patches overlapping by 15.5 px (rounded offsets)
    assert grid.lefts == (0, 23, 45)  # 3 patches overlapping by 9.5 px >= 8
    assert grid.coverage[:, 0].tolist() == [1] * 17 + [2] * 15 + [1] + [2] * 16 + [1] * 16
    assert grid.coverage[0, :].tolist() == [1] * 23 + [2] * 9 + [1] * 13 + [2] * 10 + [1] * 22
    assert grid.coverage[20, 50].item() == 4


# --- feature sharing --------------------------------------------------------------------------------------

def _ramp(h: int, w: int, height: int, width: int) -> torch.Tensor:
    """A (1, 2, h, w) map holding the image coordinates (y, x) of its pixel centres."""
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) * height / h
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) * width / w
    return torch.stack([ys[:, None].expand(h, w), xs[None, :].expand(h, w)])[None]


def test_global_to_local_crop_equals_the_ramp_at_the_patch_location() -> None:
    grid = PatchGrid.cover(64, 64, 32, 8)  # patches at 0, 16, 32
    items = [(0, 16, 32), (0, 0, 16)]
    crops = crop_features(_ramp(16, 16, 64, 64), grid, items, (8, 8))  # stride-4 global map, 8x8 local map
    for crop, (_, top, left) in zip(crops, items):
        centres = torch.arange(8, dtype=torch.float64) * 4 + 2  # local pixel k covers [4k, 4k + 4) of the patch
        assert torch.allclose(crop[0], (top + centres)[:, None].expand(8, 8), atol=1e-12)
        assert torch.allclose(crop[1], (left + centres)[None, :].expand(8, 8), atol=1e-12)


def test_local_to_global_merge_equals_the_ramp_and_averages_overlaps() -> None:
    grid = PatchGrid.cover(48, 48, 32, 16)  # patches at 0 and 16, overlapping by 16 px
    assert grid.tops == (0, 16)
    items = grid.items(1)
    local = torch.cat([_ramp(16, 16, 32, 32) + torch.tensor([top, left]).double()[None, :, None, None]
                       for _, top, left in items])  # each patch's map: image coordinates of its pixel centres
    index = torch.arange(len(items), dtype=torch.float64)[:, None, None, None].expand(-1, 1, 16, 16)
    merger = FeatureMerger(grid, 1, {("ramp", 0): (2, 6, 6), ("index", 0): (1, 6, 6)}, local)
    merger.add(("ramp", 0), local, items)
    merger.add(("index", 0), index, items)
    merged = merger.result()
    assert torch.allclose(merged[("ramp", 0)], _ramp(6, 6, 48, 48), atol=1e-12)
    # global rows/cols with centres 4, 12 lie in patch 0 only, 20, 28 in both, 36, 44 in patch 1 only
    row = torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(merged[("index", 0)][0, 0], 2 * row[:, None] + row[None, :], atol=1e-12)
    assert merger.coverage(6, 6)[:, 0].tolist() == [1, 1, 2, 2, 1, 1]
    assert merger.coverage(6, 6)[2, 2].item() == 4


def test_interpolation_matrix_by_hand() -> None:
    weights = interpolation_matrix(torch.tensor([-0.7, 0.0, 1.25, 2.0, 3.4]), 3)
    assert weights.tolist() == [[1, 0, 0], [1, 0, 0], [0, 0.75, 0.25], [0, 0, 1], [0, 0, 1]]


def test_aggregation_split_equals_the_convolution_on_the_concatenation() -> None:
    torch.manual_seed(1)
    agg = Aggregation(7).double()
    local, glob = torch.randn(2, 512, 5, 6, dtype=torch.float64), torch.randn(2, 512, 5, 6, dtype=torch.float64)
    assert torch.allclose(agg.local_part(local) + agg.global_part(glob), agg(local, glob), atol=1e-12)


# --- losses -----------------------------------------------------------------------------------------------

def test_focal_loss_by_hand_and_ignored_pixels() -> None:
    # softmax of (0, ln 3) is (1/4, 3/4): target 1 has p_t = 3/4, target 0 has p_t = 1/4
    logits = torch.tensor([0.0, math.log(3)])[None, :, None, None].repeat(1, 1, 1, 3).requires_grad_(True)
    target = torch.tensor([[[1, 0, IGNORE]]])
    expected = ((1 / 4) ** 2 * math.log(4 / 3) + (3 / 4) ** 2 * math.log(4)) / 2  # mean over the 2 valid pixels
    loss = focal_loss(logits, target, gamma=2.0, ignore_index=IGNORE)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[..., 2] == 0) and torch.all(logits.grad[..., :2] != 0)
    shifted = logits.detach().clone()
    shifted[..., 2] = torch.tensor([50.0, -50.0])[:, None]
    assert focal_loss(shifted, target, 2.0, IGNORE).item() == loss.item()
    # gamma 0 is cross-entropy; all pixels ignored gives 0
    torch.manual_seed(2)
    z, t = torch.randn(2, 7, 4, 5), torch.randint(0, 7, (2, 4, 5))
    assert focal_loss(z, t, 0.0, IGNORE).item() == pytest.approx(F.cross_entropy(z, t, ignore_index=IGNORE).item())
    assert focal_loss(z, torch.full_like(t, IGNORE), 3.0, IGNORE).item() == 0.0


def test_resize_labels_nearest_by_hand() -> None:
    masks = torch.arange(16).reshape(1, 4, 4)
    assert resize_labels(masks, (2, 2)).tolist() == [[[5, 7], [13, 15]]]
    assert resize_labels(masks, (4, 4)).tolist() == masks.tolist()


# --- the model --------------------------------------------------------------------------------------------

def test_parameter_counts_per_stage(models: dict[int, GLNet]) -> None:
    counts = {stage: sum(p.numel() for p in m.parameters()) for stage, m in models.items()}
    trainable = {stage: sum(p.numel() for p in m.parameters() if p.requires_grad) for stage, m in models.items()}
    assert counts == {1: 28_064_839, 2: 65_435_285, 3: 102_741_212}
    assert trainable == {1: 28_064_839, 2: 37_370_446, 3: 37_370_446}


def test_stage_selection_freezes_the_right_parameters(models: dict[int, GLNet]) -> None:
    trained = {"global_branch"}, {"local_branch", "aggregation"}, {"fused_global", "aggregation"}
    for stage, expected in zip((1, 2, 3), trained):
        model = models[stage].train()
        names = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
        assert names == expected
        frozen = [m for name, m in model.named_modules() if name and name.split(".")[0] not in expected]
        assert all(not m.training for m in frozen)
        assert all(m.training for name, m in model.named_modules() if name.split(".")[0] in expected)


@pytest.mark.parametrize("stage,height,width", [(3, 41, 45), (3, 40, 48), (2, 41, 45), (1, 41, 45)])
def test_forward_gives_full_resolution_logits(models: dict[int, GLNet], stage: int, height: int, width: int) -> None:
    model = models[stage].eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, height, width))  # 2 x 2 patches
    assert out.shape == (1, 7, height, width) and torch.isfinite(out).all()


def test_stage_two_step_trains_only_the_local_branch_and_aggregation(models: dict[int, GLNet]) -> None:
    model = models[2].train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(3)
    images, masks = torch.randn(1, 3, 40, 40), torch.randint(0, 7, (1, 40, 40))
    masks[:, :8] = IGNORE
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = model.training_loss(images, masks, IGNORE, dice=None)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after = model.state_dict()
    for key in before:
        changed = not torch.equal(before[key], after[key])
        if key.startswith("global_branch."):
            assert not changed, key  # weights and BatchNorm statistics of the frozen branch
        elif key.endswith(("weight", "bias")) and not key.startswith("local_branch.backbone."):
            assert changed, key
    model.load_state_dict(before)


def test_stage_losses_ignore_unknown_pixels(models: dict[int, GLNet]) -> None:
    torch.manual_seed(4)
    images, masks = torch.randn(1, 3, 40, 40), torch.full((1, 40, 40), IGNORE)
    model = models[1].eval()
    assert model.training_loss(images, masks, IGNORE, dice=None).item() == 0.0
    model = models[2].eval()  # all labels ignored: only the regulariser is left
    with torch.no_grad():
        model.train()
        out = model.run(images)
        loss = model.training_loss(images, masks, IGNORE, dice=None)
    assert out.fmreg.item() > 0
    assert loss.item() == pytest.approx(0.15 * out.fmreg.item(), rel=1e-5)


def test_stage_three_loss_reaches_only_fused_global_and_aggregation(models: dict[int, GLNet]) -> None:
    model = models[3].train()
    torch.manual_seed(5)
    images, masks = torch.randn(2, 3, 32, 36), torch.randint(0, 6, (2, 32, 36))  # 1 x 2 patches per image
    loss = model.training_loss(images, masks, IGNORE, dice=None)
    loss.backward()
    grads = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.any()}
    assert grads == {"fused_global", "aggregation"}
    model.zero_grad(set_to_none=True)


def test_stage_three_starts_its_fused_branch_from_the_stage_one_global_branch(models: dict[int, GLNet]) -> None:
    torch.manual_seed(6)
    stage3 = GLNet(stage=3, **TINY)
    result = stage3.load_state_dict(models[2].state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith("fused_global.fpn.") and ".classify." not in k
                                       for k in result.missing_keys)
    state = stage3.state_dict()
    for key, value in models[2].state_dict().items():
        if key.startswith(("global_branch.backbone.", "global_branch.fpn.classify.")):
            assert torch.equal(state["fused_global." + key[len("global_branch."):]], value)
    full = stage3.load_state_dict(state)  # a stage-3 checkpoint loads strictly and is kept as it is
    assert not full.missing_keys and not full.unexpected_keys


# --- registry, errors, --init-from ------------------------------------------------------------------------

def test_spec_strings_and_errors(tmp_path: Path) -> None:
    spec = ModelSpec.parse("glnet_G2_P64")
    assert spec.kwargs == {"stage": 2, "patch_size": 64} and str(spec) == "glnet_G2_P64"
    assert str(ModelSpec.parse("glnet_G3")) == "glnet_G3" and spec.io == (3, 7)
    assert ModelSpec.parse("glnet_G1").label == "GLNet (stage 1, 508 px)"
    with pytest.raises(ModelSpecError, match="G4"):
        build_model("glnet_G4", in_channels=3, num_classes=7, subimage_size=(64, 64))
    with pytest.raises(ModelSpecError, match="RGB"):
        build_model("glnet_G1", in_channels=1, num_classes=3, subimage_size=(64, 64))
    with pytest.raises(ModelSpecError, match="overlap"):
        GLNet(stage=1, patch_size=32, min_overlap=32)
    with pytest.raises(CheckpointError, match="missing.pth"):
        GLNet(stage=1, weights_path=tmp_path / "missing.pth")


def test_init_from_loads_matching_weights_and_lists_the_rest(tiny_dataset: Path, tmp_path: Path) -> None:
    torch.manual_seed(7)
    source = build_model("ddunet_D3_F4_CY", in_channels=1, num_classes=3, subimage_size=(32, 32))
    save_checkpoint(tmp_path / "source.pt", {"spec": "ddunet_D3_F4_CY", "model_args": {}, "model": source.state_dict()})
    target = build_model("ddunet_D3_F0_CY", in_channels=1, num_classes=3, subimage_size=(32, 32))
    info = _initialise_from(target, tmp_path / "source.pt")
    assert info["missing_keys"] == [] and info["unexpected_keys"]
    assert all(key.startswith("coarse.") for key in info["unexpected_keys"])
    for key, value in target.state_dict().items():
        assert torch.equal(value, source.state_dict()[key])
    wider = build_model("ddunet_D3_F0_CY_W8", in_channels=1, num_classes=3, subimage_size=(32, 32))
    with pytest.raises(CheckpointError, match="does not fit"):
        _initialise_from(wider, tmp_path / "source.pt")

    config = TrainConfig(max_epochs=1, min_epochs=0, batch_size=16, eval_batch_size=16, seed=0)
    summary = train_model("ddunet_D3_F0_CY", tiny_dataset, tmp_path / "run", config, tmp_path / "summary.json",
                          progress=False, init_from=tmp_path / "source.pt")
    assert summary["init_from"] == info
