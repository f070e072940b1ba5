"""Thesis Table 7.4 and Figs. 7.3/7.4: the derived run, the line-class scores on hand-made confusion matrices, the
table from hand-made records, and the figures' inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ddubench.config import derived_config, load_config
from ddubench.errors import ConfigError, DdubenchError
from ddubench.report import paper
from ddubench.report.thesis_synthetic import (
    implied_line_iou,
    line_scores,
    thesis_fig7_3,
    thesis_fig7_4,
    thesis_fig7_6,
    thesis_fig7_6_figure,
    thesis_fig7_8,
    thesis_fig7_8_figure,
    thesis_model,
    thesis_table7_4,
)

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["background", "line", "circle"]
# rows true, columns predicted: 10 line pixels, 8 found, 2 taken for background; 4 background pixels called line
CONFUSION = [[80, 4, 0], [2, 8, 0], [0, 0, 6]]


def test_line_scores_on_a_hand_made_confusion_matrix() -> None:
    scores = line_scores(CONFUSION, CLASSES)
    assert scores["iou_line"] == pytest.approx(8 / 14)
    assert scores["precision_line"] == pytest.approx(8 / 12)
    assert scores["recall_line"] == pytest.approx(8 / 10)
    assert scores["accuracy_line"] == pytest.approx(1 - 6 / 100)
    assert scores["miou"] == pytest.approx((80 / 86 + 8 / 14 + 1) / 3)


def test_the_thesis_mean_iou_is_over_three_classes() -> None:
    """Its printed "mean IoU" exceeds the line IoU its own precision and recall allow."""
    implied = {name: implied_line_iou(p, r) for name, (_, p, r, _) in paper.THESIS_TABLE7_4.items()}
    assert [round(v, 2) for v in implied.values()] == [0.86, 0.14, 0.92]
    for name, (miou, *_) in paper.THESIS_TABLE7_4.items():
        assert implied[name] < miou
        assert (implied[name] + 2) / 3 == pytest.approx(miou, abs=0.025)  # background and circle IoUs near 1


def test_thesis_model_names() -> None:
    assert thesis_model("ddunet_D3_F16_CY") == "ours w/ communication"
    assert thesis_model("ddunet_D3_F0_CY") == "ours w/o communication"
    assert thesis_model("unet_D3") == "baseline U-Net"
    with pytest.raises(DdubenchError, match="none of thesis Table 7.4's models"):
        thesis_model("ddunet_D3_F16_CN")


def _record(spec: str, label: str, confusion: list[list[int]]) -> dict:
    return {"spec": spec, "label": label, "test_k": 2, "scores": {"classes": CLASSES, "confusion_matrix": confusion}}


def test_table7_4_from_hand_made_records() -> None:
    records = [_record("unet_D3", "U-Net(3)", [[90, 0, 0], [0, 10, 0], [0, 0, 5]]),
               _record("ddunet_D3_F16_CY", "DDU-Net(3,16,Y)", CONFUSION),
               _record("ddunet_D3_F16_CY", "DDU-Net(3,16,Y)", [[84, 0, 0], [0, 10, 0], [0, 0, 6]])]
    table = thesis_table7_4(records, "config x").set_index("model")
    assert list(table.index) == ["ours w/ communication", "baseline U-Net"]  # the thesis's order
    with_comm = table.loc["ours w/ communication"]
    assert with_comm["n_seeds"] == 2
    assert with_comm["iou_line_ours"] == pytest.approx(round((8 / 14 + 1) / 2, 4))
    assert with_comm["precision_line_paper"] == 0.908 and with_comm["iou_line_paper_implied"] == 0.86
    assert table.loc["baseline U-Net", "miou_ours"] == 1.0
    assert table.loc["baseline U-Net", "note"].startswith("config x; the thesis's column is labelled mean IoU")
    with pytest.raises(DdubenchError, match="no evaluation records"):
        thesis_table7_4([], "")


def test_the_thesis_run_is_derived_from_the_cpu_config() -> None:
    cpu = load_config(REPO / "config/cpu.yaml")
    thesis = derived_config(cpu, "thesis")
    assert thesis["run"] == "cpu-thesis" and thesis["seeds"] == [0] and not thesis.get("fewer_seeds")
    assert thesis["synthetic"] == {**cpu["synthetic"], "rule": "thesis", "counts": paper.THESIS_SYNTHETIC_COUNTS,
                                   "ks": [2, 3, 4, 6, 8, 16]}  # Table 7.4, Fig. 7.6 and Fig. 7.8 (k and k')
    numbers = [key for key in paper.TABLE10 if key != "loss"]  # "macro" is our name of the dice loss of Table 10
    table7_3 = {key: thesis["training"][key] for key in numbers}  # thesis Table 7.3 = journal Table 10
    assert table7_3 == {key: paper.TABLE10[key] for key in numbers}
    cpu["protocol_study"] = {"ks": [2], "models": ["unet_D3"],
                             "variants": [{"name": "thesis", "description": "clash"}]}
    with pytest.raises(ConfigError, match="clashes with the thesis's derived run"):
        derived_config(cpu, "thesis")


def test_fig7_3_draws_the_histories_beside_the_summaries(tmp_path) -> None:
    import json

    run = tmp_path / "runs/k2/unet_D3/seed0"
    run.mkdir(parents=True)
    (run / "train.json").write_text(json.dumps({"spec": "unet_D3"}))
    (run / "history.csv").write_text("epoch,train_loss,val_loss,lr,epoch_time_s\n1,0.5,0.4,0.008,1\n2,0.3,0.2,0.008,1\n")
    thesis_fig7_3([run / "train.json"], tmp_path / "fig7_3.pdf")
    assert (tmp_path / "fig7_3.pdf").read_bytes().startswith(b"%PDF")
    (run / "history.csv").unlink()
    with pytest.raises(DdubenchError, match="history.csv does not exist"):
        thesis_fig7_3([run / "train.json"], tmp_path / "again.pdf")


def test_fig7_4_draws_one_matrix_per_model(tmp_path) -> None:
    records = [_record("unet_D3", "U-Net(3)", CONFUSION), _record("ddunet_D3_F0_CY", "DDU-Net(3,0,Y)", CONFUSION)]
    thesis_fig7_4(records, tmp_path / "fig7_4.pdf")
    assert (tmp_path / "fig7_4.pdf").read_bytes().startswith(b"%PDF")


def _sweep_record(spec: str, label: str, ious: tuple[float, float, float], train_k: int = 3, test_k: int = 3) -> dict:
    return {"spec": spec, "label": label, "train_k": train_k, "test_k": test_k,
            "scores": {"classes": CLASSES, "iou": dict(zip(CLASSES, ious))}}


def test_fig7_6_rows_per_depth_and_f(tmp_path) -> None:
    records = [_sweep_record("ddunet_D2_F16_CY", "DDU-Net(2,16,Y)", (0.99, 0.6, 0.9)),
               _sweep_record("unet_D2", "U-Net(2)", (0.98, 0.2, 0.9)),
               _sweep_record("ddunet_D2_F1_CY", "DDU-Net(2,1,Y)", (0.98, 0.3, 0.9)),
               _sweep_record("ddunet_D2_F1_CY", "DDU-Net(2,1,Y)", (0.98, 0.5, 0.8)),
               _sweep_record("unet_D3", "U-Net(3)", (0.99, 0.7, 0.95))]
    table = thesis_fig7_6(records, "n")
    assert list(zip(table["depth"], table["model"], table["F"].astype(object))) == [
        (2, "U-Net", pd.NA), (2, "DDU-Net", 1), (2, "DDU-Net", 16), (3, "U-Net", pd.NA)]
    assert table.loc[1, "n_seeds"] == 2 and table.loc[1, "iou_line_ours"] == pytest.approx(0.4)
    assert table.loc[1, "iou_circle_ours"] == pytest.approx(0.85)
    with pytest.raises(DdubenchError, match="not a Fig. 7.6 model"):
        thesis_fig7_6([_sweep_record("ddunet_D2_F4_CN", "x", (1, 1, 1))], "n")
    table.to_csv(tmp_path / "fig7_6.csv", index=False)
    thesis_fig7_6_figure(tmp_path / "fig7_6.csv", tmp_path / "fig7_6.pdf")
    assert (tmp_path / "fig7_6.pdf").read_bytes().startswith(b"%PDF")


def test_fig7_8_one_row_per_model_and_k_pair(tmp_path) -> None:
    records = [_sweep_record("unet_D4", "U-Net(4)", (1, 0.5, 1), 2, 3),
               _sweep_record("ddunet_D4_F16_CY", "DDU-Net(4,16,Y)", (1, 0.9, 1), 2, 3),
               _sweep_record("ddunet_D4_F16_CY", "DDU-Net(4,16,Y)", (1, 0.7, 1), 2, 3),
               _sweep_record("ddunet_D4_F16_CY", "DDU-Net(4,16,Y)", (1, 0.8, 1), 2, 2)]
    table = thesis_fig7_8(records, "n")
    assert list(zip(table["model"], table["k_train"], table["k_test"])) == [
        ("ours w/ communication", 2, 2), ("ours w/ communication", 2, 3), ("baseline U-Net", 2, 3)]
    assert table.loc[1, "iou_line_ours"] == pytest.approx(0.8) and table.loc[1, "n_seeds"] == 2
    table.to_csv(tmp_path / "fig7_8.csv", index=False)
    thesis_fig7_8_figure(tmp_path / "fig7_8.csv", tmp_path / "fig7_8.pdf")
    assert (tmp_path / "fig7_8.pdf").read_bytes().startswith(b"%PDF")


def test_a_row_never_averages_records_of_different_models_or_k() -> None:
    with pytest.raises(DdubenchError, match="mix spec ddunet_D3_F16_CY, ddunet_D4_F16_CY"):
        thesis_table7_4([_record("ddunet_D3_F16_CY", "a", CONFUSION), _record("ddunet_D4_F16_CY", "b", CONFUSION)], "")
    with pytest.raises(DdubenchError, match="mix test_k 2, 4"):
        thesis_fig7_6([_sweep_record("unet_D2", "U-Net(2)", (1, 0.5, 1), 3, 2),
                       _sweep_record("unet_D2", "U-Net(2)", (1, 0.5, 1), 3, 4)], "n")
    with pytest.raises(DdubenchError, match="mix spec"):  # Fig. 7.8 at depth 4 must not average in a depth-3 U-Net
        thesis_fig7_8([_sweep_record("unet_D4", "U-Net(4)", (1, 0.5, 1), 2, 3),
                       _sweep_record("unet_D3", "U-Net(3)", (1, 0.7, 1), 2, 3)], "n")
