"""The thesis's positional-encoding probe (§6.1.3, Tables 6.2-6.3, Figs. 6.4-6.5): data invariants, the
probe's shapes per padding, the no-information references, and the tables on hand-made records."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ddubench.data.positional import (
    centre_distance_formula,
    centre_predictor_mse,
    intensities,
    make_positional_data,
)
from ddubench.errors import DdubenchError, ModelSpecError
from ddubench.models.positional_probe import PositionalProbe
from ddubench.report.thesis_positional import REFERENCE, thesis_fig6_4, thesis_table6_2, thesis_table6_3
from ddubench.training.positional import ProbeConfig, probe_scores, train_probe


def test_each_image_holds_four_distinct_pixels_of_distinct_grey_at_its_targets() -> None:
    data = make_positional_data(50, seed=3)
    assert data.images.shape == (50, 1, 64, 64) and data.targets.shape == (50, 8)
    for image, target in zip(data.images, data.targets):
        assert int((image > 0).sum()) == 4
        points = target.view(4, 2).long()
        assert len({tuple(p.tolist()) for p in points}) == 4
        values = image[0, points[:, 1], points[:, 0]]  # (row, column) = (y, x)
        assert torch.equal(values, intensities())  # the target order is the grey order 1/4 ... 1
    again = make_positional_data(4, seed=3)
    assert torch.equal(again.targets, data.targets[:4])  # a prefix of a larger draw: the figure relies on it


def test_positions_are_uniform_over_the_image() -> None:
    coordinates = make_positional_data(4000, seed=0).targets
    assert coordinates.min() == 0 and coordinates.max() == 63
    assert coordinates.mean().item() == pytest.approx(31.5, abs=0.3)
    assert coordinates.var().item() == pytest.approx(centre_predictor_mse(), rel=0.03)


def test_no_information_references() -> None:
    assert centre_distance_formula() == pytest.approx(24.49, abs=0.005)  # the thesis's formula (it prints 19.17)
    assert centre_predictor_mse() == pytest.approx(341.25)
    targets = make_positional_data(3000, seed=1).targets.view(-1, 2)
    sampled = (targets - 31.5).norm(dim=1).mean().item()
    assert sampled == pytest.approx(centre_distance_formula(), rel=0.02)


@pytest.mark.parametrize("padding, sides", [("valid", [31, 14, 6, 2]), ("same", [32, 16, 8, 4]),
                                            ("full", [33, 17, 9, 5])])
def test_probe_shapes_per_padding(padding: str, sides: list[int]) -> None:
    probe = PositionalProbe(padding)
    assert probe.block_sizes(64) == sides
    assert probe.features(torch.zeros(1, 1, 64, 64)).shape == (1, 64, sides[-1], sides[-1])
    assert probe(torch.zeros(2, 1, 64, 64)).shape == (2, 8)
    # 4 convs (1-8-16-32-64, 3x3 with bias) and the 1x1 head 64 -> 8
    assert sum(p.numel() for p in probe.parameters()) == 80 + 1168 + 4640 + 18496 + 520
    with pytest.raises(ModelSpecError, match="padding"):
        PositionalProbe("reflect")


def test_scores_of_a_perfect_and_of_a_centre_predictor() -> None:
    data = make_positional_data(20, seed=0)

    class Oracle(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            assert images.shape[0] == 20  # the 20 images are scored in one batch
            return data.targets

    assert probe_scores(Oracle(), data) == {"mse": 0.0, "distance_sqrt_2mse": 0.0, "mean_distance": 0.0}

    class Centre(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return torch.full((images.shape[0], 8), 31.5)

    scores = probe_scores(Centre(), data)
    error = data.targets - 31.5
    assert scores["mse"] == pytest.approx(float(error.pow(2).mean()))
    assert scores["distance_sqrt_2mse"] == pytest.approx(math.sqrt(2 * scores["mse"]))
    assert scores["mean_distance"] == pytest.approx(float(error.view(20, 4, 2).norm(dim=2).mean()))


def _record(padding: str, mse: float) -> dict:
    config = {**ProbeConfig().__dict__}
    return {"padding": padding, "config": config, "scores": {"mse": mse, "distance_sqrt_2mse": math.sqrt(2 * mse),
                                                              "mean_distance": 0.9 * math.sqrt(2 * mse)},
            "examples": {"targets": make_positional_data(4, 1).targets.tolist(),
                         "predicted": make_positional_data(4, 1).targets.tolist()}}


def test_tables_put_the_thesis_beside_ours_with_both_references() -> None:
    records = [_record("full", 12.5), _record("valid", 98.0), _record("same", 32.0)]
    mse = thesis_table6_2(records).set_index("padding")
    assert list(mse.index) == ["valid", "same", "full", REFERENCE]  # thesis order, whatever the input order
    assert mse.loc["valid", "mse_paper"] == 110.9 and mse.loc["valid", "mse_ours"] == 98.0
    assert mse.loc[REFERENCE, "mse_ours"] == 341.25 and pd.isna(mse.loc[REFERENCE, "mse_paper"])
    assert "the thesis's scale" in mse.loc["same", "note"]
    distance = thesis_table6_3(records).set_index("padding")
    assert distance.loc["same", "distance_px_ours"] == 8.0 and distance.loc["same", "distance_px_paper"] == 8.2
    assert distance.loc[REFERENCE, "distance_px_paper"] == 19.17
    assert distance.loc[REFERENCE, "mean_distance_px_ours"] == 24.49
    assert "erratum" in distance.loc[REFERENCE, "note"]
    with pytest.raises(DdubenchError, match="positional-encoding"):
        thesis_table6_2([{"spec": "unet_D3"}])


def test_fig6_4_refuses_records_of_other_data(tmp_path) -> None:
    record = _record("same", 30.0)
    record["examples"]["targets"][0][0] += 1
    with pytest.raises(DdubenchError, match="other data"):
        thesis_fig6_4([record], tmp_path / "fig.pdf")


def test_a_short_training_learns_and_records_what_it_did() -> None:
    record = train_probe("full", ProbeConfig(epochs=2, train=256, val=64, batch_size=32), progress=False)
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["block_sizes"] == [33, 17, 9, 5] and len(record["examples"]["predicted"]) == 4
    assert record["history"][-1]["train_mse"] < record["history"][0]["train_mse"]
    assert record["scores"]["mse"] == pytest.approx(record["history"][-1]["val_mse"])
