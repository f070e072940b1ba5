"""ResNet DDU-Net: journal Table 9 parameter oracles, frozen encoder, local weights, subimage equivalences."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from ddubench.analysis.params import count_parameters
from ddubench.data.tiling import split_subimages, stitch_subimages
from ddubench.errors import CheckpointError, ModelSpecError
from ddubench.models import ModelSpec, build_model
from ddubench.models.resnet_ddunet import ResNetDDUNet
from ddubench.report.deepglobe_tables import table9

ARGS = {"in_channels": 3, "num_classes": 7, "subimage_size": (64, 64)}


@pytest.fixture(scope="module")
def resnet18() -> ResNetDDUNet:
    torch.manual_seed(0)
    return build_model("resnetddunet_R18_F256_CY", **ARGS)


# ------------------------------------------------------------------------------------ journal Table 9 oracles


def test_resnet18_module_parameters_match_table9(resnet18: ResNetDDUNet) -> None:
    encoder = resnet18.encoder
    counts = [count_parameters(m) for m in (encoder.block1, encoder.block2, encoder.block3, encoder.block4,
                                            encoder.inter_conv)]
    assert counts == [9536, 147968, 525568, 2099712, 1180672]
    assert count_parameters(resnet18.decoder) + count_parameters(resnet18.head) == 845415
    assert count_parameters(resnet18.coarse) == 4917504
    assert count_parameters(resnet18) == 9726375  # journal Table 7: "9.7M"
    assert count_parameters(resnet18, trainable_only=True) == 9726375 - 2782784  # blocks 1-4 frozen


def test_resnet50_total_matches_table7() -> None:
    assert count_parameters(build_model("resnetddunet_R50_F256_CY", **ARGS)) == 44117831  # "44M"


def test_table9_rows_from_the_modules() -> None:
    table = table9()
    r18 = table[(table["encoder"] == "resnet18") & table["component"].str.startswith(("block", "inter", "up"))]
    assert (r18["params_ours"] == r18["params_paper"]).all() and len(r18) == 6
    assert (r18["feature_map_px_ours"] == r18["feature_map_px_paper"]).all()
    coarse = table[table["component"] == "coarse network"].set_index("F")
    assert coarse["params_ours"].to_dict() == {1: 84, 4: 1236, 16: 19344, 64: 307776, 256: 4917504}
    assert coarse.loc[4, "params_paper"] == 84 and "shifted by one" in coarse.loc[4, "note"]
    totals = table[table["component"] == "total"].set_index("encoder")["params_ours"].to_dict()
    assert totals == {"resnet18": 9726375, "resnet50": 44117831}


# ------------------------------------------------------------------------------------ frozen encoder, weights


def test_frozen_batchnorm_stays_in_eval_mode_by_default(resnet18: ResNetDDUNet) -> None:
    model = resnet18.train()
    frozen = [m for m in model.encoder.frozen_blocks().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen and not any(bn.training for bn in frozen)
    assert model.encoder.inter_conv.training and model.decoder.training
    before = [bn.running_mean.clone() for bn in frozen]
    model(torch.rand(1, 3, 64, 64)).sum().backward()
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(before, frozen))
    assert all(p.grad is None for p in model.encoder.frozen_blocks().parameters())
    assert model.encoder.inter_conv[0].weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_authors_batchnorm_behaviour_is_an_option() -> None:
    model = build_model("resnetddunet_R18_F0_CY_BT", **ARGS).train()
    bn = model.encoder.block1[1]
    before = bn.running_mean.clone()
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert bn.training and not torch.equal(before, bn.running_mean)
    assert not bn.weight.requires_grad  # still frozen, only its statistics move


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "resnet18-f37072fd.pth"
    with pytest.raises(CheckpointError, match=f"{missing} does not exist.*never downloads"):
        ResNetDDUNet(weights_path=missing)


def test_local_weights_are_loaded_and_checked(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = ResNetDDUNet(resnet=18, subimage_size=(64, 64), weights_path=path)
    assert torch.equal(model.encoder.block1[0].weight, reference.conv1.weight)
    assert torch.equal(model.encoder.block4[1].bn2.running_var, reference.layer3[1].bn2.running_var)
    with pytest.raises(CheckpointError, match=f"{path} does not fit torchvision's resnet50"):
        ResNetDDUNet(resnet=50, subimage_size=(64, 64), weights_path=path)


# --------------------------------------------------------------------------------------------- subimages


@pytest.fixture(scope="module")
def exchange_pair() -> tuple[ResNetDDUNet, ResNetDDUNet]:
    """DDU-Net(4, 8, Y) and DDU-Net(4, 8, N) with ResNet18 encoders and the same weights, in eval mode."""
    torch.manual_seed(4)
    yes = build_model("resnetddunet_R18_F8_CY", **ARGS).eval()
    no = build_model("resnetddunet_R18_F8_CN", **ARGS).eval()
    no.load_state_dict(yes.state_dict())
    return yes, no


def test_forward_shapes_on_a_two_by_two_grid(exchange_pair: tuple[ResNetDDUNet, ResNetDDUNet]) -> None:
    with torch.no_grad():
        for model in exchange_pair:
            assert model(torch.rand(2, 3, 128, 128)).shape == (2, 7, 128, 128)


def test_communication_reaches_the_other_subimages(exchange_pair: tuple[ResNetDDUNet, ResNetDDUNet]) -> None:
    yes, no = exchange_pair
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (yes(x) - no(x)).abs()
    assert all(diff[..., r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64].max() > 1e-6 for r in (0, 1) for c in (0, 1))


def test_without_features_it_is_the_network_per_subimage() -> None:
    torch.manual_seed(3)
    model = build_model("resnetddunet_R18_F0_CY", **ARGS).eval()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        per_tile = torch.cat([model(tile.unsqueeze(0)) for tile in split_subimages(x, (2, 2))])
        torch.testing.assert_close(model(x), stitch_subimages(per_tile, (2, 2)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- specs, errors


def test_specs_round_trip_and_label() -> None:
    assert str(ModelSpec.parse("resnetddunet_R18_F256_CY")) == "resnetddunet_R18_F256_CY"
    assert str(ModelSpec.parse("resnetddunet_R50_F4_CN_BT")) == "resnetddunet_R50_F4_CN_BT"
    assert str(ModelSpec.parse("resnetddunet_R18_F4_CN_BE")) == "resnetddunet_R18_F4_CN"
    assert ModelSpec.parse("resnetddunet_R50_F256_CY").label == "DDU-Net(4,256,Y) ResNet50"


@pytest.mark.parametrize("spec, kwargs, message", [
    ("resnetddunet_R34_F0_CY", ARGS, "R=34"),
    ("resnetddunet_R18_F257_CY", ARGS, "F=257"),
    ("resnetddunet_R18_F0_CY", {**ARGS, "in_channels": 1}, "RGB input"),
    ("resnetddunet_R18_F0_CY", {**ARGS, "subimage_size": (40, 40)}, "not a positive multiple of 16"),
    ("resnetddunet_R18_F0_CY", {**ARGS, "subimage_size": (0, 0)}, "not a positive multiple of 16"),
])
def test_bad_models_are_spec_errors(spec: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        build_model(spec, **kwargs)
    with pytest.raises(ModelSpecError):
        ModelSpec.parse("resnetddunet_R18_F0_CY_BX")
