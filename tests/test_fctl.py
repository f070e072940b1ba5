"""FCtL baseline: patch grid, context crops, attention and gate, parameter counts, stages, loss, shapes.

FCN-8s pads its input by 100 px, so even a 16 px patch costs a VGG16 pass over 216 x 216 px; the model
tests use one image and few patches.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from baselines.fctl import FCtL, focal_loss
from baselines.fctl_parts import ContextAttention, ContextFusion, ContextGate, FCN8sHead, bilinear_kernel
from baselines.fctl_patches import (
    axis_starts,
    context_crops,
    coverage,
    crop_patches,
    merge_patches,
    pad_for_context,
    patch_boxes,
    resize,
)
from ddubench.analysis.params import count_parameters
from ddubench.errors import CheckpointError, ModelSpecError
from ddubench.models import ModelSpec, build_model

IGNORE = 6
VGG16_FEATURES = 14_714_688
FCN8S = VGG16_FEATURES + 119_579_925  # conv6 102,764,544 + conv7 16,781,312 + scores 28,679 + 3,591 + 1,799
FUSION = 3 * 787_457 + 3_936_768  # three attention blocks (q, k, v, gamma) + the gate


def tiny(mode: int, **kwargs) -> FCtL:
    torch.manual_seed(0)
    return FCtL(7, mode, patch_size=16, patch_batch=3, **kwargs).eval()


# ------------------------------------------------------------------------------------ patch grid


def test_axis_starts_reproduce_the_public_grid() -> None:
    assert axis_starts(2048, 508, 50) == [0, 385, 770, 1155, 1540]  # 5 x 5 on the DDU-Net paper's crops
    assert axis_starts(2448, 508, 50) == [0, 388, 776, 1164, 1552, 1940]  # 6 x 6 on DeepGlobe tiles
    assert len(axis_starts(5000, 508, 50)) == 11
    assert axis_starts(1024, 508, 50) == [0, 258, 516]  # 2 x 508 < 1024: 3 x 3 patches on the 1024 crops
    assert axis_starts(960, 508, 50) == [0, 452]  # 2 patches overlapping by 56 px
    assert axis_starts(1000, 508, 50) == [0, 246, 492]  # 2 patches would overlap by 16 px
    assert axis_starts(508, 508, 50) == [0]


@pytest.mark.parametrize("length, patch, overlap", [(21, 16, 4), (40, 16, 4), (97, 16, 4), (2049, 508, 50),
                                                     (777, 100, 25)])
def test_grid_covers_every_pixel_with_the_minimum_overlap(length: int, patch: int, overlap: int) -> None:
    starts = axis_starts(length, patch, overlap)
    assert starts[0] == 0 and starts[-1] == length - patch and starts == sorted(set(starts))
    assert all(patch - (b - a) >= overlap for a, b in zip(starts, starts[1:]))
    brute = torch.zeros(length)
    for start in starts:
        brute[start : start + patch] += 1
    assert brute.min() >= 1
    assert torch.equal(coverage((length, 3), (patch, 3), starts, [0])[:, 0], brute)


def test_merging_patches_of_an_image_reproduces_it() -> None:
    images = torch.randint(-50, 50, (2, 3, 21, 40)).double()
    rows, cols = axis_starts(21, 16, 4), axis_starts(40, 16, 4)
    boxes = patch_boxes(2, rows, cols)
    assert len(boxes) == 2 * 2 * 3 and boxes[:4] == [(0, 0, 0), (0, 0, 12), (0, 0, 24), (0, 5, 0)]
    out = torch.zeros_like(images)
    merge_patches(crop_patches(images, boxes, (16, 16)), boxes, out)
    count = coverage((21, 40), (16, 16), rows, cols)
    assert count.sum() == 12 * 16 * 16 / 2 and count.max() == 4
    assert torch.equal(out / count, images)


# ------------------------------------------------------------------------------------ context crops


def ramp(height: int, width: int) -> torch.Tensor:
    """Channel 0 = row index + 1000, channel 1 = column index + 1000 (zero only in the padding)."""
    rows = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float64)[None, :].expand(height, width)
    return torch.stack([rows, cols])[None] + 1000


@pytest.mark.parametrize("scale", [3, 5])
def test_context_crops_are_centred_on_their_patch(scale: int) -> None:
    image, size = ramp(60, 70), (8, 8)
    padded = pad_for_context(image, size, scale)
    assert padded.shape[-2:] == (60 + (scale - 1) * 8, 70 + (scale - 1) * 8)
    boxes = [(0, 26, 30), (0, 0, 0)]
    crops = context_crops(padded, boxes, size, scale)
    assert crops.shape == (2, 2, 8, 8)
    # output pixel i samples the region centre top - pad + scale * (i + 0.5) - 0.5; a linear ramp is
    # reproduced exactly where the antialiasing kernel lies inside the crop (i = 1 .. 6)
    pad, inner = (scale - 1) * 4, slice(1, 7)
    i = torch.arange(8, dtype=torch.float64)
    expected_rows = 1000 + 26 - pad + scale * (i + 0.5) - 0.5
    expected_cols = 1000 + 30 - pad + scale * (i + 0.5) - 0.5
    assert torch.allclose(crops[0, 0, inner, 3], expected_rows[inner], atol=1e-9)
    assert torch.allclose(crops[0, 1, 4, inner], expected_cols[inner], atol=1e-9)
    centre = expected_rows[3:5].mean()  # between the two middle output pixels
    assert centre == 1000 + 26 + 3.5  # the patch covers rows 26 .. 33
    # the top-left patch's context starts in the zero padding
    assert crops[1, 0, :2].abs().max() == 0 and crops[1, 0, -1, 4] > 1000


def test_whole_image_context_is_the_resized_image() -> None:
    image = ramp(48, 48)
    small = resize(image, (16, 16))
    i = torch.arange(16, dtype=torch.float64)
    assert torch.allclose(small[0, 0, 1:15, 5], 1000 + 3 * (i[1:15] + 0.5) - 0.5, atol=1e-9)


# ------------------------------------------------------------------------------------ attention and gate


def test_attention_on_a_hand_made_example() -> None:
    block = ContextAttention(channels=1).double()
    with torch.no_grad():
        for conv in (block.query, block.key, block.value):
            conv.weight.fill_(1.0)
        block.query.bias.zero_()
        block.key.bias.zero_()
        block.gamma.fill_(2.0)
    x = torch.tensor([[[[0.0, 1.0]]]], dtype=torch.float64)  # two query positions
    context = torch.tensor([[[[1.0, 2.0, 3.0]]]], dtype=torch.float64)  # three key positions
    weights = block.weights(x, context)[0]
    assert torch.allclose(weights[0], torch.full((3,), 1 / 3, dtype=torch.float64))  # q = 0: uniform
    e = torch.tensor([math.e, math.e**2, math.e**3], dtype=torch.float64)
    assert torch.allclose(weights[1], e / e.sum())
    expected = torch.tensor([0 + 2 * 2.0, 1 + 2 * float((e / e.sum()) @ torch.tensor([1.0, 2, 3]).double())])
    assert torch.allclose(block(x, context)[0, 0, 0], expected.double())


def test_attention_and_gate_weights_are_normalised() -> None:
    torch.manual_seed(0)
    block, gate = ContextAttention(channels=8), ContextGate(channels=8, branches=3)
    x, context = torch.randn(2, 8, 3, 5), torch.randn(2, 8, 4, 4)
    weights = block.weights(x, context)
    assert weights.shape == (2, 15, 16) and (weights > 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(2, 15))
    gate_weights = gate.weights([torch.randn(2, 8, 3, 5) for _ in range(3)])
    assert gate_weights.shape == (3, 2, 8, 3, 5) and (gate_weights > 0).all()
    assert torch.allclose(gate_weights.sum(0), torch.ones(2, 8, 3, 5))


def test_fusion_starts_as_identity_so_pool5_is_doubled() -> None:
    torch.manual_seed(0)
    fusion = ContextFusion(channels=8)
    x = torch.randn(1, 8, 3, 3)
    assert torch.allclose(fusion(x, torch.randn(1, 8, 2, 2), torch.randn(1, 8, 3, 3)), x)  # gamma = 0
    assert [b.gamma.item() for b in (fusion.local, fusion.medium, fusion.large)] == [0.0, 0.0, 0.0]


def test_fcn_upsampling_kernels() -> None:
    assert torch.equal(bilinear_kernel(4)[0], torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))
    assert torch.allclose(bilinear_kernel(16).sum(), torch.tensor(64.0))  # stride 8: each output sums 1
    assert not any("up" in name for name, _ in FCN8sHead(7).named_parameters())  # fixed, not trained


# ------------------------------------------------------------------------------------ parameters and stages


def test_parameter_counts_are_exact() -> None:
    with torch.device("meta"):
        models = {mode: FCtL(7, mode) for mode in (0, 1, 2, 4)}
        vgg_features = count_parameters(torchvision.models.vgg16(weights=None).features)
    assert vgg_features == VGG16_FEATURES
    assert count_parameters(models[4].local_encoder) == VGG16_FEATURES
    assert count_parameters(models[4].local_head) == FCN8S - VGG16_FEATURES
    assert count_parameters(models[4].fusion) == FUSION == 6_299_139  # notes: "about 6.3 M"
    counts = {mode: (count_parameters(m), count_parameters(m, trainable_only=True)) for mode, m in models.items()}
    assert counts == {
        0: (134_294_613, 134_294_613),  # notes: FCN8 "about 134.3 M"
        1: (149_009_301, 134_294_613),  # + M0's frozen large encoder, carried for M4
        2: (164_511_446, 149_796_758),  # + medium VGG16 + one attention block (787,457)
        4: (170_023_128, 140_593_752),  # local FCN-8s + fusion trainable; two frozen encoders
    }
    assert counts[4][0] == FCN8S + 2 * VGG16_FEATURES + FUSION


def test_stage_chain_hands_every_trained_part_on() -> None:
    with torch.device("meta"):
        keys = {mode: {k: v.shape for k, v in FCtL(7, mode).state_dict().items()} for mode in (0, 1, 2, 4)}
    for earlier, later in ((0, 1), (1, 2), (2, 4)):
        shared = keys[earlier].keys() & keys[later].keys()
        assert all(keys[earlier][k] == keys[later][k] for k in shared)
    large = {k for k in keys[0] if k.startswith("large_encoder.")}
    assert large and all(large <= keys[m].keys() for m in (1, 2, 4))
    assert {k.split(".")[0] for k in keys[4].keys() - keys[2].keys()} == {"fusion"}
    assert {k.split(".")[0] for k in keys[2].keys() - keys[4].keys()} == {"medium_attention"}
    assert keys[1].keys() <= keys[2].keys()


def test_spec_registration_and_errors(tmp_path) -> None:
    spec = ModelSpec.parse("fctl_M4")
    assert str(spec) == "fctl_M4" and spec.kwargs == {"mode": 4, "patch_size": 508} and spec.io == (3, 7)
    assert spec.label == "FCtL (no CSRN)"
    assert ModelSpec.parse("fctl_M0_P256").label == "FCtL (no CSRN, global stage)"
    assert str(ModelSpec.parse("fctl_M2_P256")) == "fctl_M2_P256"
    with pytest.raises(ModelSpecError, match="M3"):
        FCtL(7, mode=3)
    with pytest.raises(ModelSpecError, match="RGB"):
        build_model("fctl_M1", in_channels=1, num_classes=3, subimage_size=(32, 32))
    with pytest.raises(ModelSpecError, match="odd"):
        FCtL(7, 4, large_scale=4)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_model("fctl_M1_P16", in_channels=3, num_classes=7, subimage_size=(16, 16),
                    weights_path=tmp_path / "vgg16.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not a torchvision vgg16"):
        FCtL(7, 1, patch_size=16, weights_path=tmp_path / "bad.pth")


# ------------------------------------------------------------------------------------ loss


def test_focal_loss_hand_computed_and_ignore_index_excluded() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0], [9.0, -9.0]]).T.reshape(1, 2, 1, 3)
    logits.requires_grad_(True)
    target = torch.tensor([[[1, 0, IGNORE]]])
    # p_t = 0.75 and 0.5: -(1 - p)^3 log p, mean over the two scored pixels
    expected = (-(0.25**3) * math.log(0.75) - (0.5**3) * math.log(0.5)) / 2
    loss = focal_loss(logits, target, gamma=3.0, ignore_index=IGNORE)
    assert loss.item() == pytest.approx(expected, rel=1e-6) and expected == pytest.approx(0.0455692, rel=1e-5)
    loss.backward()
    assert logits.grad[..., 2].abs().max() == 0 and logits.grad[..., :2].abs().min() > 0
    assert focal_loss(logits, torch.full_like(target, IGNORE), ignore_index=IGNORE).item() == 0


def test_training_loss_leaves_out_ignored_pixels() -> None:
    model = tiny(1)  # one 16 x 16 image = one patch, so the patch logits are the forward's logits
    torch.manual_seed(1)
    images, masks = torch.randn(1, 3, 16, 16), torch.randint(0, IGNORE, (1, 16, 16))
    masks[:, :, :7] = IGNORE
    with torch.no_grad():
        loss = model.training_loss(images, masks, IGNORE, dice=None)
        logits = model(images)
    valid = masks != IGNORE
    log_p = logits.log_softmax(1).permute(0, 2, 3, 1)[valid].gather(1, masks[valid][:, None])[:, 0]
    assert valid.sum() == 16 * 9
    assert loss.item() == pytest.approx((-((1 - log_p.exp()) ** 3) * log_p).mean().item(), rel=1e-5)


def test_global_stage_loss_uses_the_resized_mask() -> None:
    model = tiny(0)
    torch.manual_seed(2)
    images, masks = torch.randn(1, 3, 32, 32), torch.randint(0, 7, (1, 32, 32))
    with torch.no_grad():
        loss = model.training_loss(images, masks, IGNORE, dice=None)
        logits = model._global_logits(images)
    assert logits.shape == (1, 7, 16, 16)
    assert loss.item() == pytest.approx(focal_loss(logits, masks[:, 1::2, 1::2], ignore_index=IGNORE).item(),
                                        rel=1e-6)  # nearest-exact 2x shrink samples the odd pixels


# ------------------------------------------------------------------------------------ forward


@pytest.mark.parametrize("mode, shape, kwargs", [
    (0, (21, 27), {}), (1, (16, 27), {}), (2, (16, 27), {}), (4, (21, 27), {}), (4, (16, 40), {}),
    (4, (16, 27), {"large_scale": 5}),
])
def test_forward_returns_full_resolution_logits(mode: int, shape: tuple[int, int], kwargs: dict) -> None:
    model = tiny(mode, **kwargs)
    with torch.no_grad():
        out = model(torch.randn(1, 3, *shape))
    assert out.shape == (1, 7, *shape) and torch.isfinite(out).all()


def test_batched_patches_see_their_own_image_and_context() -> None:
    model = tiny(4)
    torch.manual_seed(3)
    for block in (model.fusion.local, model.fusion.medium, model.fusion.large):
        block.gamma.data.fill_(1.0)  # make every context matter
    images = torch.randn(2, 3, 16, 27)  # 2 patches each; patch_batch 3 mixes the two images in one call
    changed = images.clone()
    changed[1, :, :, -3:] += 5  # inside image 1's second patch only, and inside image 1's contexts
    with torch.no_grad():
        together, moved = model(images), model(changed)
    # image 0 (its patches, medium crops and whole-image context) is untouched by image 1's change; image 1's
    # first patch (columns 0-10 alone) changes only through its medium and large contexts
    assert torch.equal(moved[0], together[0]) and not torch.allclose(moved[1, :, :, :11], together[1, :, :, :11])


def test_stage_4_trains_only_the_local_network_and_the_fusion() -> None:
    model = tiny(4).train()
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"local_encoder", "local_head", "fusion"}
    masks = torch.randint(0, 7, (1, 16, 16))
    model.training_loss(torch.randn(1, 3, 16, 16), masks, IGNORE, dice=None).backward()
    for name, parameter in model.named_parameters():
        assert (parameter.grad is not None) == parameter.requires_grad, name
    assert model.fusion.large.gamma.grad.abs() > 0
