"""U-Net / DDU-Net models: parameter counts (journal Table 8), equivalences, locality, spec strings."""

from __future__ import annotations

import pytest
import torch

from ddubench.analysis.params import count_parameters
from ddubench.errors import DataError, ModelSpecError
from ddubench.models import CoarseNetwork, DDUNet, ModelSpec, build_model

ARGS = {"in_channels": 1, "num_classes": 3, "subimage_size": (32, 32)}


def _model(spec: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(spec, **ARGS)


def _rand(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("depth, expected", [(2, 7487), (3, 30479), (4, 122031)])
def test_unet_parameter_count_matches_table8(depth: int, expected: int) -> None:
    assert count_parameters(build_model(f"unet_D{depth}", **ARGS)) == expected


@pytest.mark.parametrize(
    "features, expected",
    [(1, 84), (2, 318), (4, 1236), (8, 4872), (16, 19344), (32, 77088), (64, 307776)],
)
def test_coarse_network_parameter_count_matches_table8(features: int, expected: int) -> None:
    assert count_parameters(CoarseNetwork(features)) == expected


def test_ddunet_parameters_are_unet_plus_coarse() -> None:
    assert count_parameters(build_model("ddunet_D3_F16_CY", **ARGS)) == 30479 + 19344
    # F = 0 has no coarse network; C does not change the parameter count
    assert count_parameters(build_model("ddunet_D3_F0_CY", **ARGS)) == 30479
    assert count_parameters(build_model("ddunet_D3_F16_CN", **ARGS)) == 30479 + 19344


# ------------------------------------------------------------------------------- F = 0 is a per-tile U-Net


@pytest.mark.parametrize("comm", ["Y", "N"])
@pytest.mark.parametrize("depth", [2, 3])
def test_ddunet_without_features_is_unet_per_subimage(depth: int, comm: str) -> None:
    unet = _model(f"unet_D{depth}", seed=3)
    ddunet = _model(f"ddunet_D{depth}_F0_C{comm}", seed=4)
    ddunet.load_state_dict(unet.state_dict())  # strict: identical parameter and buffer names
    unet, ddunet = unet.double().eval(), ddunet.double().eval()
    with torch.no_grad():
        single = _rand(2, 1, 32, 32)
        assert torch.equal(ddunet(single), unet(single))

        wide = _rand(2, 1, 32, 96, seed=2)
        expected = torch.cat([unet(wide[..., i * 32 : (i + 1) * 32]) for i in range(3)], dim=-1)
        got = ddunet(wide)
        # the whole-image U-Net would NOT give this (it sees across subimage borders)
        assert not torch.allclose(unet(wide), expected)
    assert got.shape == (2, 3, 32, 96)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_two_dimensional_grid_is_row_major_per_subimage() -> None:
    unet = _model("unet_D2", seed=5)
    ddunet = _model("ddunet_D2_F0_CY")
    ddunet.load_state_dict(unet.state_dict())
    unet, ddunet = unet.double().eval(), ddunet.double().eval()
    x = _rand(1, 1, 64, 64)
    with torch.no_grad():
        got = ddunet(x)
        for r in range(2):
            for c in range(2):
                tile = (..., slice(r * 32, (r + 1) * 32), slice(c * 32, (c + 1) * 32))
                torch.testing.assert_close(got[tile], unet(x[tile]), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ communication switch


def _pair(features: int, depth: int = 3) -> tuple[torch.nn.Module, torch.nn.Module]:
    yes = _model(f"ddunet_D{depth}_F{features}_CY", seed=7)
    no = _model(f"ddunet_D{depth}_F{features}_CN", seed=8)
    no.load_state_dict(yes.state_dict())
    return yes.double().eval(), no.double().eval()


def test_communication_irrelevant_for_single_subimage() -> None:
    yes, no = _pair(8)
    x = _rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(yes(x), no(x))


@pytest.mark.parametrize("width", [64, 96])
def test_communication_changes_output_for_several_subimages(width: int) -> None:
    yes, no = _pair(8)
    x = _rand(2, 1, 32, width)
    with torch.no_grad():
        diff = (yes(x) - no(x)).abs()
    # every subimage is affected (its coarse features see the neighbours instead of zero padding)
    for i in range(width // 32):
        assert diff[..., i * 32 : (i + 1) * 32].max() > 1e-6


@pytest.mark.parametrize(
    "spec, reaches",
    [
        ("ddunet_D4_F8_CY", True),
        ("ddunet_D4_F8_CN", False),
        ("ddunet_D4_F0_CY", False),
        ("ddunet_D4_F0_CN", False),
    ],
)
def test_locality_of_information_flow(spec: str, reaches: bool) -> None:
    """Only the coarse network with C=Y carries information from subimage 0 to subimage 3.

    D = 4 gives a 2x2 bottleneck per subimage (8 columns in all); three 5x5 coarse convolutions
    reach 6 bottleneck columns, so information from subimage 0 (columns 0-1) arrives in subimage 3.
    """
    model = _model(spec, seed=11).double().eval()
    x = _rand(2, 1, 32, 128)
    y = x.clone()
    y[..., :32] = _rand(2, 1, 32, 32, seed=99)
    with torch.no_grad():
        a, b = model(x), model(y)
    assert not torch.equal(a[..., :32], b[..., :32])  # the perturbed subimage itself changes
    changed = not torch.equal(a[..., 96:], b[..., 96:])
    assert changed is reaches
    if not reaches:  # bit-identical in every untouched subimage
        assert torch.equal(a[..., 32:], b[..., 32:])


def test_images_of_a_batch_do_not_communicate() -> None:
    """C=Y stitches the subimages of each image, never those of different images in a batch."""
    model = _model("ddunet_D4_F8_CY", seed=12).double().eval()
    x = _rand(3, 1, 32, 128)
    y = x.clone()
    y[1] = _rand(1, 32, 128, seed=5)
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    assert not torch.equal(a[1], b[1])
    with torch.no_grad():  # and each image alone gives the same as in the batch
        torch.testing.assert_close(model(x[2:3]), a[2:3], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("comm", ["Y", "N"])
def test_gradients_reach_coarse_network(comm: str) -> None:
    model = _model(f"ddunet_D3_F4_C{comm}", seed=2).train()
    x = torch.rand(2, 1, 32, 64, generator=torch.Generator().manual_seed(0))
    model(x).sum().backward()
    convs = [m for m in model.coarse if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3
    for conv in convs:
        assert conv.weight.grad is not None
        assert conv.weight.grad.abs().max() > 0
    norms = [m for m in model.coarse if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.weight.grad.abs().max() > 0 for bn in norms)


# ---------------------------------------------------------------------------------------------- bad input


def test_features_above_bottleneck_width_rejected() -> None:
    with pytest.raises(ModelSpecError, match="F=33"):
        DDUNet(depth=3, base_width=4, features=33)
    DDUNet(depth=3, base_width=4, features=32)  # the whole bottleneck is allowed
    with pytest.raises(ModelSpecError):
        build_model("ddunet_D2_F17_CY", **ARGS)


def test_input_not_divisible_into_subimages() -> None:
    model = DDUNet(depth=2, features=4).eval()
    with pytest.raises(DataError, match="does not divide"):
        model(torch.rand(1, 1, 32, 48))
    with pytest.raises(DataError, match="does not divide"):
        model(torch.rand(1, 1, 40, 64))


def test_unet_input_that_cannot_be_halved_depth_times_is_one_line() -> None:
    with pytest.raises(DataError, match="a 36x36 input cannot be halved 3 times"):
        build_model("unet_D3", **ARGS)(torch.rand(1, 1, 36, 36))


def test_subimage_size_must_be_multiple_of_two_to_the_depth() -> None:
    with pytest.raises(ModelSpecError, match="2\\^D = 8"):
        DDUNet(depth=3, subimage_size=(20, 20))
    with pytest.raises(ModelSpecError):
        build_model("ddunet_D4_F0_CY", in_channels=1, num_classes=3, subimage_size=(32, 24))
    DDUNet(depth=3, subimage_size=(24, 16))  # multiples of 8 are fine
    with pytest.raises(ModelSpecError, match="subimage size 0x0 is not a positive multiple"):
        DDUNet(depth=3, subimage_size=(0, 0))


@pytest.mark.parametrize("text", ["unet_D-1", "ddunet_D-1_F0_CY", "unet_D3_W0", "unet_D3_W-4"])
def test_nonpositive_depth_or_width_is_a_spec_error(text: str) -> None:
    """A user mistake in a spec must be a ModelSpecError (one-line CLI message), not a traceback."""
    with pytest.raises(ModelSpecError):
        build_model(text, **ARGS)


@pytest.mark.parametrize(
    "text",
    ["resnet_D3", "UNet_D3", "ddunet_D3_X5", "ddunet_D3_Fabc_CY", "ddunet_D3_F4_CQ", "unet_F4", "unet_D", "unet_d3"],
)
def test_bad_spec_strings(text: str) -> None:
    with pytest.raises(ModelSpecError):
        ModelSpec.parse(text)


# --------------------------------------------------------------------------------------------- spec strings


@pytest.mark.parametrize("text", ["unet_D3", "ddunet_D3_F16_CY", "ddunet_D4_F0_CN", "unet_D2_W8", "ddunet_D2_F1_CY_W8"])
def test_spec_round_trip(text: str) -> None:
    assert str(ModelSpec.parse(text)) == text


def test_spec_canonical_form_and_params() -> None:
    spec = ModelSpec.parse("ddunet_D3_F16_CY")
    assert spec.kwargs == {"depth": 3, "features": 16, "communicate": True, "base_width": 4, "init": "he",
                           "norm_stats": "shared", "coarse_kernel": 5, "coarse_layers": 3}
    assert str(ModelSpec.parse("unet_D3_W4")) == "unet_D3"  # default width dropped
    assert str(ModelSpec.parse("ddunet_D3")) == "ddunet_D3_F0_CY"  # required keys always written
    assert ModelSpec.parse("unet_D2_W8").kwargs["base_width"] == 8


def test_spec_labels() -> None:
    assert ModelSpec.parse("unet_D3").label == "U-Net(3)"
    assert ModelSpec.parse("ddunet_D3_F16_CY").label == "DDU-Net(3,16,Y)"
    assert ModelSpec.parse("ddunet_D4_F0_CN").label == "DDU-Net(4,0,N)"


def test_base_width_changes_the_model() -> None:
    model = build_model("unet_D2_W8", **ARGS)
    assert model.head.in_channels == 8
    assert count_parameters(model) > 7487


# ------------------------------------------------------------------------- errors at build time (issue 16.5)


def test_coarse_kernel_and_layers_are_spec_keys() -> None:
    spec = ModelSpec.parse("ddunet_D3_F8_CY_K3_H2")
    assert str(spec) == "ddunet_D3_F8_CY_K3_H2" and str(ModelSpec.parse("ddunet_D3_F8_CY_K5_H3")) == "ddunet_D3_F8_CY"
    convs = [m for m in build_model(spec, in_channels=1, num_classes=3, subimage_size=(32, 32)).coarse.modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3)]


@pytest.mark.parametrize(("spec", "message"), [("ddunet_D3_F8_CY_K4", "use an odd kernel"),
                                               ("ddunet_D3_F8_CY_H0", "at least one")])
def test_a_coarse_network_that_cannot_work_is_refused_when_built(spec: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        build_model(spec, in_channels=1, num_classes=3, subimage_size=(32, 32))
