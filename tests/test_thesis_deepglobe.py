"""Thesis Tables 7.11-7.13: the extra bottleneck convolutions as a spec option (parameter oracle), the models'
roles from their records, and the tables from hand-made records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ddubench.analysis.params import count_parameters
from ddubench.config import derived_config, load_config
from ddubench.errors import DdubenchError
from ddubench.models import ModelSpec, build_model
from ddubench.report import paper
from ddubench.report.thesis_deepglobe import ablation_model, thesis_per_class, thesis_table7_13

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown"]


def test_without_the_extra_convolutions_the_model_loses_thesis_table7_9s_inter_conv() -> None:
    def params(spec: str) -> int:
        return count_parameters(build_model(spec, in_channels=3, num_classes=7, subimage_size=(256, 256)))

    assert params("resnetddunet_R18_F64_CY") - params("resnetddunet_R18_F64_CY_XN") == 1_180_672
    assert str(ModelSpec.parse("resnetddunet_R18_F64_CY_XY")) == "resnetddunet_R18_F64_CY"  # with is the default
    assert ModelSpec.parse("resnetddunet_R18_F0_CN_XN").label.endswith("w/o extra bottleneck convs")


def _record(spec: str, split: str, subimage: int, miou: float, seed: int = 0) -> dict:
    iou = {name: (None if name == "unknown" else miou) for name in CLASSES}
    return {"spec": spec, "seed": seed, "subimage_size": [subimage, subimage], "test_data": f"data/x/deepglobe/{split}",
            "scores": {"miou": miou, "iou": iou}}


def test_each_record_has_its_thesis_role() -> None:
    assert ablation_model(_record("resnetddunet_R18_F64_CY", "test", 128, 0), 256) == ("proposed w/ communication",
                                                                                        "with")
    assert ablation_model(_record("resnetddunet_R18_F0_CN_XN", "test", 128, 0), 256) == (
        "proposed w/o communication", "without")
    assert ablation_model(_record("resnetddunet_R18_F0_CN", "test", 256, 0), 256) == ("baseline U-Net", "with")
    with pytest.raises(DdubenchError, match="not a ResNet DDU-Net"):
        ablation_model(_record("unet_D3", "test", 32, 0), 256)


def test_tables_from_hand_made_records() -> None:
    records = []
    for split, base in (("train", 0.7), ("val", 0.6), ("test", 0.5)):
        records += [_record("resnetddunet_R18_F64_CY", split, 128, base + 0.02),
                    _record("resnetddunet_R18_F64_CY", split, 128, base + 0.04, seed=1),
                    _record("resnetddunet_R18_F0_CN", split, 128, base),
                    _record("resnetddunet_R18_F0_CN", split, 256, base + 0.01),
                    _record("resnetddunet_R18_F64_CY_XN", split, 128, base - 0.1)]
    table = thesis_table7_13(records, 256, "n").set_index("model")
    assert table.loc["proposed w/ communication", "miou_test_with_ours"] == pytest.approx(0.53)
    assert table.loc["proposed w/ communication", "n_seeds_with"] == 2
    assert table.loc["proposed w/ communication", "miou_val_without_ours"] == pytest.approx(0.5)
    assert table.loc["baseline U-Net", "miou_train_with_ours"] == pytest.approx(0.71)
    assert pd.isna(table.loc["baseline U-Net", "miou_test_without_ours"])
    assert table.loc["baseline U-Net", "miou_test_without_paper"] == 0.6339
    assert "0.6330" in table.loc["baseline U-Net", "note"]
    per_class = thesis_per_class(records, 256, "with", "n").set_index("class")
    assert per_class.loc["urban", "iou_comm_ours"] == pytest.approx(0.53)
    assert per_class.loc["urban", "iou_unet_paper"] == paper.THESIS_TABLE7_12["urban"][2]
    means = per_class.loc["mean (6 classes)"]
    assert means["iou_comm_paper"] == pytest.approx(0.6680, abs=1e-4)  # the thesis's Table 7.13 value
    assert means["iou_nocomm_paper"] == pytest.approx(0.6474, abs=1e-4)


def test_the_thesis_run_takes_table7_10_for_its_deepglobe_models() -> None:
    thesis = derived_config(load_config(REPO / "config/paper.yaml"), "thesis")
    training = thesis["deepglobe"]["training"]
    assert {key: training[key] for key in paper.THESIS_TABLE7_10} == paper.THESIS_TABLE7_10
    assert training["seeds"] == [0]


def test_the_ablation_note_names_only_real_departures_from_table7_10() -> None:
    """Table 7.10's '-' cells (no minimum epoch, no early stopping) are held as the epoch count: a run of fewer
    epochs that keeps them inactive departs in its epochs only."""
    from ddubench.report.thesis_deepglobe import ablation_note

    thesis = derived_config(load_config(REPO / "config/cpu.yaml"), "thesis")
    note = ablation_note(thesis)
    assert "max_epochs 8 (thesis 50)" in note
    assert "min_epochs" not in note and "early_stopping_patience" not in note
