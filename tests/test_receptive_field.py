"""Receptive-field calculator: journal Table 4 in the paper's convention, the textbook forward formula, and the
exact analytic extent equal to the input-gradient extent of real modules (float64, eval, gradient probe)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from torch import nn

from ddubench.analysis.receptive_field import (
    empirical_receptive_field,
    exact_interval,
    receptive_field,
    register_layer,
)
from ddubench.cli import main
from ddubench.errors import DdubenchError
from ddubench.models import build_model


def _model(spec: str, size: int = 32) -> nn.Module:
    return build_model(spec, in_channels=1, num_classes=3, subimage_size=(size, size))


def _exact_size(model: nn.Module, position: tuple[int, int]) -> tuple[int, int]:
    (top, bottom), (left, right) = exact_interval(model, position)
    return bottom - top + 1, right - left + 1


@pytest.mark.parametrize("depth, unet, ddunet", [(2, 44, 92), (3, 92, 188), (4, 188, 380)])
def test_paper_convention_reproduces_table4(depth: int, unet: int, ddunet: int) -> None:
    assert receptive_field(_model(f"unet_D{depth}")).backward == (unet, unet)
    assert receptive_field(_model(f"ddunet_D{depth}_F16_CY")).backward == (ddunet, ddunet)


@pytest.mark.parametrize("depth, unet, ddunet", [(2, 44, 92), (3, 96, 192), (4, 200, 392)])
def test_textbook_forward_formula(depth: int, unet: int, ddunet: int) -> None:
    assert receptive_field(_model(f"unet_D{depth}")).forward == (unet, unet)
    assert receptive_field(_model(f"ddunet_D{depth}_F16_CY")).forward == (ddunet, ddunet)


@pytest.mark.parametrize("depth, unet, ddunet", [(2, 44, 92), (3, 100, 196), (4, 204, 396)])
def test_exact_extent_ranges_from_paper_value_to_worst_alignment(depth: int, unet: int, ddunet: int) -> None:
    for spec, worst in ((f"unet_D{depth}", unet), (f"ddunet_D{depth}_F16_CY", ddunet)):
        rf = receptive_field(_model(spec))
        assert rf.exact_min == rf.backward and rf.exact_max == (worst, worst)


def test_independent_of_features_width_and_communication() -> None:
    reference = receptive_field(_model("ddunet_D3_F16_CY"))
    for spec in ("ddunet_D3_F1_CY", "ddunet_D3_F32_CN", "ddunet_D3_F8_CY_W2"):
        assert receptive_field(_model(spec)) == reference
    assert receptive_field(_model("ddunet_D3_F0_CY")) == receptive_field(_model("unet_D3"))


@pytest.mark.parametrize(
    "spec, size",
    [("unet_D1_W2", 64), ("unet_D2_W2", 96), ("unet_D3_W2", 192), ("ddunet_D2_F2_CY_W2", 128)],
)
def test_gradient_extent_of_centre_pixel_is_the_paper_value(spec: str, size: int) -> None:
    """The centre of an image whose half side is a multiple of 2^D is aligned with the pooling grid, and its
    gradient extent is the paper's backward recurrence (DDU-Net: one subimage as large as the input)."""
    model = _model(spec, size)
    assert empirical_receptive_field(model, size) == receptive_field(model).backward


def test_gradient_extent_equals_exact_interval_at_other_alignments() -> None:
    model = _model("unet_D3_W2", 192)
    sizes = set()
    for position in [(96, 99), (98, 101), (101, 96), (103, 102)]:
        measured = empirical_receptive_field(model, 192, position)
        assert measured == _exact_size(model, position)
        sizes.update(measured)
    assert sizes == {92, 100}  # both the paper's value and the worst alignment occur


def _encoder_path(model: nn.Module) -> nn.Sequential:
    """The deepest path of a U-Net encoder: input block and down blocks, ending at the bottleneck."""
    return nn.Sequential(model.encoder.inc, *model.encoder.downs)


STACKS = {
    "conv-pool": lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                       nn.Conv2d(2, 2, 5, padding=2), nn.BatchNorm2d(2)),
    "dilated-strided-rectangular": lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=2, dilation=2), nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.AvgPool2d(3, stride=1, padding=1), nn.Conv2d(2, 1, (5, 3), padding=(2, 1))),
    "u-net encoder path": lambda: _encoder_path(_model("unet_D3_W2")),
}


@pytest.mark.parametrize("name", STACKS)
def test_window_stacks_all_conventions_agree_with_gradient(name: str) -> None:
    """Convolutions and pools only: the forward formula, the backward recurrence and the exact extent coincide
    and equal the gradient extent (the textbook formula is exact for the encoder)."""
    model = STACKS[name]()
    rf = receptive_field(model)
    assert rf.forward == rf.backward == rf.exact_min == rf.exact_max
    assert empirical_receptive_field(model, 128, in_channels=1) == rf.forward


@pytest.mark.parametrize("upsample", [nn.Upsample(scale_factor=2, mode="nearest"),
                                      nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                      nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)])
def test_upsampling_exact_interval_matches_gradient(upsample: nn.Module) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, padding=1), upsample,
                          nn.Conv2d(2, 1, 3, padding=1))
    for position in [(20, 21), (23, 22)]:
        assert empirical_receptive_field(model, 48, position, in_channels=1) == _exact_size(model, position)


class _Unknown(nn.Module):
    def forward(self, x):
        return x


def test_unknown_module_is_a_one_line_error_naming_the_fix() -> None:
    with pytest.raises(DdubenchError, match=r"no rule for module type _Unknown \(at 1\).*register_layer\(_Unknown\)"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), _Unknown()))

    class Pointwise(nn.Module):
        def forward(self, x):
            return x

    register_layer(Pointwise)(lambda module, axis: None)
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), Pointwise())).backward == (3, 3)


def test_unsupported_upsampling_mode() -> None:
    with pytest.raises(DdubenchError, match="bicubic"):
        receptive_field(nn.Sequential(nn.Upsample(scale_factor=2, mode="bicubic")))


def test_cli_prints_both_conventions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["receptive-field", "unet_D4"]) == 0
    out = capsys.readouterr().out
    assert "U-Net(4)" in out and "188 x 188 px" in out and "200 x 200 px" in out and "204 x 204 px" in out
    assert main(["receptive-field", "ddunet_D3_F8_CN", "--subimage-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "188 x 188 px" in out and "192 x 192 px" in out and "capped at 64 px" in out
    assert main(["receptive-field", "resnet_D3"]) == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err


def test_table4_csv_and_sidecar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "table4.csv"
    assert main(["table", "table4", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and all(row["rf_px_paper"] == row["rf_px_ours"] for row in rows)
    assert [row["rf_forward_px_ours"] for row in rows] == ["44", "96", "200", "92", "192", "392"]
    assert "backward recurrence" in json.loads((tmp_path / "table4.meta.json").read_text())["method"]
