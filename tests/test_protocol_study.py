"""The protocol study: derived runs of the variants, the cells they train, and the table from hand-made records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ddubench.config import derived_config, load_config, variant_spec
from ddubench.errors import ConfigError
from ddubench.report.protocol import protocol_cells, protocol_table

REPO = Path(__file__).resolve().parents[1]


def test_paper_variants_derive_their_runs() -> None:
    paper = load_config(REPO / "config/paper.yaml")
    driver = derived_config(paper, "driver")
    assert driver["run"] == "paper-driver" and "protocol_study" not in driver
    assert (driver["training"]["lr"], driver["training"]["batch_size"], driver["training"]["grad_clip_norm"]) == \
        (0.005, 32, 1.0)
    assert driver["training"]["dropout"] == 0.1  # untouched settings stay the run's
    assert derived_config(paper, "thesis_data")["synthetic"]["rule"] == "thesis"
    assert derived_config(paper, "thesis_rule")["synthetic"] == {**paper["synthetic"], "rule": "thesis", "line_width": 3}
    assert derived_config(paper, "thesis_rule")["seeds"] == [0] and derived_config(paper, "driver")["seeds"] == [0, 1, 2]
    assert derived_config(paper, "converge")["training"]["max_epochs"] == 120
    with pytest.raises(ConfigError, match="names no protocol_study variant 'nope' and no derived run"):
        derived_config(paper, "nope")


def test_a_variant_with_bad_settings_is_a_one_line_config_error() -> None:
    paper = load_config(REPO / "config/paper.yaml")
    paper["protocol_study"]["variants"].append({"name": "bad", "description": "x", "training": {"lr": -1}})
    with pytest.raises(ConfigError, match=r"bad derived run.*at training/lr"):
        derived_config(paper, "bad")


def test_variant_tokens_apply_only_to_models_that_take_them() -> None:
    variant = {"name": "bn_position", "description": "x", "model_tokens": ["NP"]}
    assert variant_spec("ddunet_D3_F32_CY", variant) == "ddunet_D3_F32_CY_NP"
    assert variant_spec("unet_D3", variant) == "unet_D3"
    assert variant_spec("unet_D3", {"name": "i", "description": "x", "model_tokens": ["IT"]}) == "unet_D3_IT"


def test_cells_of_the_paper_study() -> None:
    cells = protocol_cells(load_config(REPO / "config/paper.yaml"))
    assert len(cells) == 6 * 2 * 3 + 3  # variants x ks x models, one seed; thesis_rule at k = 6 only
    by_key = {(c.variant, c.k, c.model): c for c in cells}
    own = by_key["table10", 6, "unet_D3"]
    assert own.reused and own.run_dir == "results/paper/runs/k6/unet_D3/seed0"
    assert own.test_eval.endswith("eval_k6.json") and own.val_eval.endswith("eval_val.json")
    untouched = by_key["bn_position", 6, "unet_D3"]  # a U-Net has no subimage positions: its own grid model
    assert untouched.reused and untouched.run_dir == own.run_dir
    position = by_key["bn_position", 6, "ddunet_D3_F32_CY"]
    assert not position.reused and position.run_dir == "results/paper/runs/k6/ddunet_D3_F32_CY_NP/seed0"
    assert by_key["driver", 2, "ddunet_D3_F8_CY"].run_dir == "results/paper-driver/runs/k2/ddunet_D3_F8_CY/seed0"
    # ceilings: the model's dependency-region class on the data it trained on (a variant's own only if it
    # changes the data)
    assert position.ceiling == "results/paper/ceilings/k6/ddunet_D3_F1_CY.json"
    assert by_key["driver", 6, "unet_D3"].ceiling == "results/paper/ceilings/k6/unet_D3.json"
    assert by_key["thesis_data", 2, "unet_D3"].ceiling == "results/paper-thesis_data/ceilings/k2/unet_D3.json"
    assert by_key["thesis_rule", 6, "unet_D3"].run_dir == "results/paper-thesis_rule/runs/k6/unet_D3/seed0"
    assert ("thesis_rule", 2, "unet_D3") not in by_key


def _record(iou: float, precision: float, recall: float, per_image: float, bins: list[float | None]) -> dict:
    labels = ["<40", "40-70", "70-100", "100-130", ">=130"]
    return {"scores": {"iou": {"line": iou}, "precision": {"line": precision}, "recall": {"line": recall}},
            "best_epoch": 30,
            "line_breakdown": {"per_image_mean_iou": per_image,
                               "by_distance": [{"distance_px": l, "iou": v} for l, v in zip(labels, bins)]}}


def test_protocol_table_from_hand_made_records() -> None:
    config = load_config(REPO / "config/paper.yaml")
    config["protocol_study"].update(ks=[6], models=["unet_D3"], seeds=[0, 1])
    config["protocol_study"]["variants"] = config["protocol_study"]["variants"][:3]  # table10, driver, bn_position
    records = {}
    for cell in protocol_cells(config):
        value = 0.3 if cell.run == "paper" else 0.5
        records[cell.test_eval] = _record(value + 0.1 * cell.seed, 0.6, 0.7, value - 0.05, [0.9, 0.8, 0.4, 0.2, None])
        records[cell.val_eval] = _record(value + 0.02, 0.0, 0.0, None, [None] * 5)
    table = protocol_table(config, records, {"results/paper/ceilings/k6/unet_D3.json": 0.44}).set_index("variant")
    assert list(table.index) == ["table10", "driver", "bn_position"]
    assert table.loc["table10", "iou_line_ours"] == pytest.approx(0.35)  # mean of 0.3 and 0.4
    assert table.loc["table10", "iou_line_ours_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert table.loc["driver", "iou_line_ours"] == pytest.approx(0.55) and table.loc["driver", "run"] == "paper-driver"
    assert table.loc["driver", "iou_line_val_ours"] == pytest.approx(0.52)
    assert table.loc["table10", "iou_line_per_image_ours"] == pytest.approx(0.25)
    assert table.loc["table10", "iou_line_d40_70_ours"] == pytest.approx(0.8)
    assert pd.isna(table.loc["table10", "iou_line_dge130_ours"])
    assert (table["iou_line_paper"] == 0.68).all() and (table["n_seeds"] == 2).all()  # journal Fig. 9, k = 6 U-Net
    assert "does not change this model" in table.loc["bn_position", "note"]
    assert "does not change" not in table.loc["table10", "note"]
    assert (table["iou_line_ceiling"] == 0.44).all()  # every variant here trains on the run's own data
    assert table["note"].str.contains("the paper's value is above the receptive-field ceiling").all()  # 0.68
    assert table.columns.get_loc("iou_line_ceiling") == table.columns.get_loc("iou_line_paper") + 1


def test_protocol_table_says_which_cells_have_not_run() -> None:
    """A cell without evaluations is an empty row that says so; a missing validation evaluation empties only
    its column; nothing is filled in from elsewhere."""
    config = load_config(REPO / "config/paper.yaml")
    config["protocol_study"].update(ks=[6], models=["unet_D3"], seeds=[0, 1])
    config["protocol_study"]["variants"] = config["protocol_study"]["variants"][:2]  # table10, driver
    records = {}
    for cell in protocol_cells(config):
        if cell.variant == "table10":
            records[cell.test_eval] = _record(0.3 + 0.1 * cell.seed, 0.6, 0.7, 0.25, [0.9, 0.8, 0.4, 0.2, None])
            if cell.seed == 1:
                records[cell.val_eval] = _record(0.32, 0.0, 0.0, None, [None] * 5)
    table = protocol_table(config, records).set_index("variant")
    assert table.loc["table10", "iou_line_ours"] == pytest.approx(0.35) and table.loc["table10", "n_seeds"] == 2
    assert table.loc["table10", "iou_line_val_ours"] == pytest.approx(0.32)  # seed 1 only
    assert "validation split was not evaluated for every seed" in table.loc["table10", "note"]
    assert table.loc["driver", "n_seeds"] == 0 and "not trained yet" in table.loc["driver", "note"]
    assert table.loc["driver", ["iou_line_ours", "iou_line_val_ours", "best_epoch"]].isna().all()


def test_a_derived_runs_config_file_name_resolves_to_its_derived_config() -> None:
    """Tables of a derived run name config/<run>-<variant>.yaml, which need not exist (the workflow's fig9 table of
    paper-thesis_rule stopped on it)."""
    derived = load_config(REPO / "config" / "paper-thesis_rule.yaml")
    assert derived == derived_config(load_config(REPO / "config" / "paper.yaml"), "thesis_rule",
                                     str(REPO / "config" / "paper.yaml"))
    assert derived["run"] == "paper-thesis_rule" and derived["synthetic"]["line_width"] == 3
    with pytest.raises(ConfigError, match="names no protocol_study variant 'nothing'"):
        load_config(REPO / "config" / "cpu-nothing.yaml")


def test_a_run_whose_own_name_holds_a_hyphen_has_derived_runs_too(tmp_path) -> None:
    import yaml

    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    config["run"] = "my-paper"
    (tmp_path / "my-paper.yaml").write_text(yaml.safe_dump(config))
    derived = load_config(tmp_path / "my-paper-thesis_rule.yaml")  # the base is my-paper, not my
    assert derived["run"] == "my-paper-thesis_rule" and derived["synthetic"]["line_width"] == 3
