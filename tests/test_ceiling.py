"""The receptive-field ceiling: dependency regions from the model, the placement prior, the threshold sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddubench.analysis.ceiling import (
    _best_iou, candidate_centres, dependency_support, line_iou_ceiling, line_pixels, one_circle_posterior,
    pair_weights, support_class, support_model,
)
from ddubench.analysis.receptive_field import exact_interval
from ddubench.data.synthetic import SyntheticSpec, draw_mask, draw_sample
from ddubench.models import build_model


def _model(spec: str, subimage: int = 32):
    torch.manual_seed(0)
    return build_model(spec, in_channels=1, num_classes=3, subimage_size=(subimage, subimage))


def test_unet_regions_are_the_calculators_exact_intervals_clipped_to_the_image() -> None:
    height, width = 16, 96
    support = dependency_support(_model("unet_D2"), height, width).view(height, width, height, width)
    for row, col in [(0, 0), (7, 40), (15, 95), (8, 13)]:
        (r0, r1), (c0, c1) = exact_interval(_model("unet_D2"), (row, col))
        expected = torch.zeros(height, width, dtype=torch.bool)
        expected[max(r0, 0):min(r1, height - 1) + 1, max(c0, 0):min(c1, width - 1) + 1] = True
        assert torch.equal(support[row, col], expected), (row, col)


def test_ddunet_without_communication_sees_only_its_own_subimage() -> None:
    height, width = 16, 64
    support = dependency_support(_model("ddunet_D2_F0_CY", 16), height, width).view(height, width, height, width)
    for col in (0, 17, 40, 63):
        sub = col // 16
        outside = support[5, col].clone()
        outside[:, sub * 16:(sub + 1) * 16] = False
        assert not outside.any() and support[5, col][:, sub * 16:(sub + 1) * 16].all()
    talking = dependency_support(_model("ddunet_D2_F2_CY", 16), height, width).view(height, width, height, width)
    assert talking[5, 0][:, 16:32].any()  # the coarse network carries the next subimage to pixel (5, 0)


def test_pair_prior_follows_the_placement_rules() -> None:
    spec = SyntheticSpec(k=4, rule="thesis")
    centres = candidate_centres(spec)
    assert len(centres) == 4 * 24 * 24 and centres[:, 0].min() == 4 and centres[:, 0].max() == 4 * 32 - 5

    def per_sub(weights: np.ndarray) -> list[float]:
        return [float(weights[centres[:, 0] // 32 == s][0]) for s in range(4)]

    # seen in subimage 0; thesis candidates: 0 -> {1, 2}, 1 -> {0, 2, 3}, 2 -> {0, 1, 3}, 3 -> {1, 2}
    seen_first, seen_second = pair_weights(spec, centres, (10, 10))
    assert per_sub(seen_first) == pytest.approx([0.0, 1 / 2, 1 / 2, 0.0])
    assert per_sub(seen_second) == pytest.approx([0.0, 1 / 3, 1 / 3, 0.0])
    journal = pair_weights(SyntheticSpec(k=4), centres, (70, 10))  # subimage 2: the others uniformly
    assert per_sub(journal[0]) == per_sub(journal[1]) == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3])


@pytest.mark.parametrize("rule", ["journal", "thesis"])
def test_line_pixels_are_the_generators_line_class_in_either_order(rule: str) -> None:
    spec = SyntheticSpec(k=3, rule=rule)
    rng = np.random.default_rng(5)
    for _ in range(5):
        _, mask, pair = draw_sample(rng, spec)
        line = mask.reshape(-1) == 1
        first, second = (tuple(int(v) for v in centre) for centre in pair)
        assert np.array_equal(line_pixels(spec, first, pair[1:2], seen_first=True)[0], line)
        assert np.array_equal(line_pixels(spec, second, pair[0:1], seen_first=False)[0], line)


def test_a_width_2_line_depends_on_the_drawing_order_and_the_posterior_weighs_both() -> None:
    """Pillow widens a width-2 line on one side of its direction: with the other circle's centre known but not
    which circle came first (k = 2, both orders equally likely), q is 1/2 on each order's own pixels."""
    spec = SyntheticSpec(k=2, rule="thesis")  # width 2
    seen, other = (10, 12), (50, 12)
    forward = draw_mask(spec, seen, other).reshape(-1) == 1
    backward = draw_mask(spec, other, seen).reshape(-1) == 1
    assert (forward != backward).sum() > 40  # a horizontal width-2 line: rows 12-13 one way, 11-12 the other
    centres = candidate_centres(spec)
    hidden = torch.zeros(spec.shape[0] * spec.shape[1], len(centres), dtype=torch.bool)
    hidden[:, int(np.nonzero((centres == other).all(axis=1))[0][0])] = True  # every pixel: only `other` is possible
    pixels = np.arange(hidden.shape[0])
    q = one_circle_posterior(spec, centres, seen, hidden, pixels)
    assert np.allclose(q, (forward.astype(float) + backward) / 2)


def test_best_threshold_by_hand() -> None:
    posterior = np.array([1.0, 0.9, 0.6, 0.6, 0.2, 0.0])
    truth = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    iou, threshold = _best_iou(posterior, truth)
    # q > 0.75: TP 2, FP 0, FN 1 -> 2/3; q > 0.4: TP 3, FP 1 -> 3/4 (best); cutting inside the tie is not allowed
    assert iou == pytest.approx(0.75) and threshold == pytest.approx(0.4)


def test_ceiling_is_one_when_every_pixel_sees_both_circles_and_lower_without_communication() -> None:
    spec = SyntheticSpec(k=2)
    talking = line_iou_ceiling(support_model("ddunet_D3_F1_CY", 32), spec, images=4, background_samples=20)
    assert talking["iou_line_ceiling"] == 1.0 and talking["pixels_seeing_both_circles"] == 1.0
    alone = line_iou_ceiling(support_model("ddunet_D3_F0_CY", 32), spec, images=4, background_samples=20)
    assert alone["pixels_seeing_both_circles"] == 0.0 and 0.0 < alone["iou_line_ceiling"] < 0.6


@pytest.mark.parametrize(("spec", "cls"), [
    ("unet_D3", "unet_D3"), ("unet_D4_IT", "unet_D4"), ("ddunet_D3_F32_CY_NP", "ddunet_D3_F1_CY"),
    ("ddunet_D3_F0_CY", "ddunet_D3_F0_CY"), ("ddunet_D2_F16_CN", "ddunet_D2_F0_CY"), ("glnet_G3", None),
    ("ddunet_D3_F8_CY_K3_H2", "ddunet_D3_F1_CY_K3_H2"), ("ddunet_D3_F8_CN_K3", "ddunet_D3_F0_CY"),
])
def test_support_classes(spec: str, cls: str | None) -> None:
    assert support_class(spec) == cls


@pytest.mark.parametrize("spec", ["unet_D2", "ddunet_D2_F2_CY"])
def test_the_one_channel_support_model_has_the_regions_of_the_full_width_model(spec: str) -> None:
    thin = support_model(spec, 16)
    assert max(m.out_channels for m in thin.modules() if isinstance(m, torch.nn.Conv2d)) < 16
    assert torch.equal(dependency_support(thin, 16, 48), dependency_support(_model(spec, 16), 16, 48))


def test_a_model_without_dependency_regions_is_one_line(tmp_path, capsys) -> None:
    """Before: glnet_G3 went on to probe a 38 GB support matrix and died of memory."""
    from ddubench.cli import main

    assert main(["ceiling", "--model", "glnet_G3", "--k", "2", "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model glnet_G3: the ceiling is defined for" in err[0]
    assert not (tmp_path / "c.json").exists()
