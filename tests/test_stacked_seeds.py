"""Several seeds in one process (issue 13): stacked Adam steps equal the separate models' steps exactly, and the
throughput benchmark records a stacked step as one model's share."""

from __future__ import annotations

import copy

import pytest
import torch

from ddubench.measure.stacked_seeds import StackedSeeds
from ddubench.measure.timing import measure_train_step, stacked_dice
from ddubench.models import build_model
from ddubench.report.throughput import throughput_table
from ddubench.training.losses import DiceLoss


@pytest.mark.parametrize("spec", ["ddunet_D2_F4_CY", "unet_D2"])
def test_one_stacked_adam_step_equals_separate_steps(spec: str) -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        models = []
        for seed in range(2):
            torch.manual_seed(seed)
            models.append(build_model(spec, in_channels=1, num_classes=3, subimage_size=(16, 16), dropout=0.0))
        separate = [copy.deepcopy(model) for model in models]
        stacked = StackedSeeds(models)
        images, masks = torch.rand(2, 2, 1, 16, 32), torch.randint(0, 3, (2, 2, 16, 32))
        optimizer = torch.optim.Adam(stacked.parameters(), lr=0.01)
        for _ in range(2):
            optimizer.zero_grad()
            stacked_dice(stacked.train()(images), masks).backward()
            optimizer.step()
        for seed, model in enumerate(separate):
            own = torch.optim.Adam(model.parameters(), lr=0.01)
            for _ in range(2):
                own.zero_grad()
                DiceLoss()(model.train()(images[seed]), masks[seed]).backward()
                own.step()
            state = stacked.state_dict_of(seed)
            for name, tensor in model.state_dict().items():
                torch.testing.assert_close(state[name], tensor, atol=1e-10, rtol=0, msg=name)
        # the models started apart and stay apart
        assert not torch.equal(stacked.state_dict_of(0)["head.weight"], stacked.state_dict_of(1)["head.weight"])
    finally:
        torch.set_default_dtype(previous)


def test_stacked_record_is_one_models_share_and_lands_in_the_table() -> None:
    torch.manual_seed(0)
    record = measure_train_step("ddunet_D2_F4_CY", k=2, subimage_size=16, batch_size=2, warmup=0, repeats=2,
                                stacked_seeds=2)
    assert record["mode"] == "stacked2" and record["seeds"] == 2 and record["batch_size"] == 2
    assert record["step_time_median_s"] == pytest.approx(record["stacked_step_time_median_s"] / 2)
    assert record["images_per_s"] == pytest.approx(4 / record["stacked_step_time_median_s"])
    record["repeats"], record["warmup"] = 2, 0
    row = throughput_table([record]).iloc[0]
    assert row["mode"] == "stacked2" and row["seeds_per_process"] == 2 and "one model's share" in row["note"]
