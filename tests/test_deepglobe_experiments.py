"""DeepGlobe experiments: Table 6, Fig. 13 aggregation, Fig. 15 error maps, mixed precision, ImageNet weights
file, subimage override, and the smoke workflow of the new targets."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from ddubench.cli import main
from ddubench.config import load_config
from ddubench.data.deepglobe import PrepareSpec, prepare
from ddubench.data.fake_deepglobe import write_fake_deepglobe
from ddubench.errors import DataError, DdubenchError
from ddubench.evaluation.run import evaluate_checkpoint
from ddubench.report.deepglobe_figures import CORRECT, UNKNOWN, WRONG, error_map, fig13_figure
from ddubench.report.deepglobe_tables import fig13_table, table6
from ddubench.training.checkpoint import load_checkpoint
from ddubench.training.run import train_model
from ddubench.training.trainer import TrainConfig, resolve_amp

REPO = Path(__file__).resolve().parents[1]
ONE_EPOCH = TrainConfig(lr=0.001, max_epochs=1, min_epochs=1, batch_size=8, eval_batch_size=2, seed=0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six generated 160 px tiles cut into 64 px training crops (subimage 32) and 128 px val/test crops."""
    root = write_fake_deepglobe(tmp_path_factory.mktemp("tiles"), images=6, size=160, seed=0)
    out = tmp_path_factory.mktemp("prepared")
    prepare(root, out, PrepareSpec(train=4, val=1, test=1, crop_train=64, crop_test=128, subimage=32), progress=False)
    return out


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision ResNet18 state dict whose first convolution is all 0.25 (a recognisable 'pretrained' file)."""
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.25)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def trained(prepared: Path, imagenet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One epoch of DDU-Net(4, 4, Y) on 16 px subimages of the 64 px crops, encoder from ``imagenet_file``."""
    run = tmp_path_factory.mktemp("run")
    return train_model("resnetddunet_R18_F4_CY", prepared, run, ONE_EPOCH, run / "train.json", progress=False,
                       amp="auto", weights=imagenet_file, subimage=16)


# ------------------------------------------------------------------------------------------------- Table 6


def test_table6_puts_the_config_beside_journal_table6_and_the_thesis() -> None:
    smoke = table6(load_config(REPO / "config/smoke.yaml")["deepglobe"]).set_index("hyperparameter")
    assert smoke.loc["lr", ["value_paper", "value_thesis", "value_ours"]].tolist() == [0.001, 0.001, 0.001]
    assert smoke.loc["max_epochs", ["value_paper", "value_thesis", "value_ours"]].tolist() == [100, 50, 2]
    assert smoke.loc["max_epochs", "note"] == ("reduced from the journal's value in this configuration; "
                                               "thesis Table 7.10 differs: 50")
    assert smoke.loc["batch_size", ["value_paper", "value_thesis", "value_ours"]].tolist() == [12, 8, 4]
    assert smoke.loc["repeats", ["value_paper", "value_ours"]].tolist() == [3, 1]
    assert smoke.loc["dropout", "note"] == ""
    assert smoke.loc["select_on", ["value_paper", "value_ours"]].tolist() == ["test", "val"]
    assert smoke.loc["mixed_precision", "value_ours"] == "auto (CUDA only)"
    assert smoke.loc["encoder_weights", "value_ours"] == "random (no local ImageNet file configured)"
    assert smoke.loc["augmentation", ["value_paper", "value_thesis", "value_ours"]].tolist() == [
        "flips + quarter turns"] * 3
    plain = copy.deepcopy(load_config(REPO / "config/smoke.yaml")["deepglobe"])
    plain["training"]["augment"] = False
    unaugmented = table6(plain).set_index("hyperparameter").loc["augmentation"]
    assert unaugmented["value_ours"] == "none"
    assert unaugmented["note"] == "trained without the journal's flips and quarter turns (augment: false)"
    plain["training"]["amp"] = False
    assert table6(plain).set_index("hyperparameter").loc["mixed_precision", "note"] == "trained in float32 (amp: false)"

    deepglobe = copy.deepcopy(load_config(REPO / "config/paper.yaml")["deepglobe"])
    deepglobe["weights"]["resnet18"] = "w/resnet18.pth"
    paper = table6(deepglobe).set_index("hyperparameter")
    # the paper config has the journal's values: only thesis differences and conventions remain in the notes
    assert paper.loc["max_epochs", "value_ours"] == 100
    assert paper.loc["max_epochs", "note"] == "thesis Table 7.10 differs: 50"
    assert paper.loc["repeats", "value_ours"] == 3 and paper.loc["repeats", "note"] == ""
    assert paper.loc["early_stopping_patience", "note"] == "no early stopping: min_epochs = max_epochs"
    assert paper.loc["encoder_weights", ["value_ours", "note"]].tolist() == ["ImageNet", ""]  # no path, no false note


# ------------------------------------------------------------------------------------------------- Fig. 13


def _record(spec: str, seed: int, split: str, miou: float, subimage: int, eval_subimage: int) -> dict:
    return {"spec": spec, "seed": seed, "test_data": f"data/x/deepglobe/{split}", "scores": {"miou": miou},
            "subimage_size": [subimage, subimage], "eval_subimage_size": [eval_subimage, eval_subimage]}


def _fig13_records() -> list[dict]:
    y, n = "resnetddunet_R18_F16_CY", "resnetddunet_R18_F0_CN"
    records = []
    for seed, (test, val) in enumerate([(0.5, 0.9), (0.6, 0.1), (0.7, 0.2)]):
        records += [_record(y, seed, "test", test, 256, 256), _record(y, seed, "val", val, 256, 256)]
        records += [_record(n, seed, "test", 0.25 + seed / 8, 1024, 2048), _record(n, seed, "val", 0.5, 1024, 2048)]
    return records


def test_fig13_table_mean_std_and_selected_repeat_from_hand_made_evals() -> None:
    config = load_config(REPO / "config/paper.yaml")
    frame = fig13_table(_fig13_records(), config)
    assert frame[["P", "F", "comm"]].values.tolist() == [[1, 0, "N"], [4, 16, "Y"]]
    whole, split = frame.iloc[0], frame.iloc[1]
    # seeds 0.5, 0.6, 0.7: mean 0.6, sample std sqrt(0.02 / 2) = 0.1
    assert split["miou_test_mean_ours"] == pytest.approx(0.6, abs=1e-12)
    assert split["miou_test_std_ours"] == pytest.approx(0.1, abs=1e-12)
    assert (split["miou_test_min_ours"], split["miou_test_max_ours"]) == (0.5, 0.7)
    assert (split["selected_seed"], split["miou_test_selected_ours"]) == (0, 0.5)  # best on val: seed 0 (0.9)
    assert (split["subimage_train_px"], split["test_grid"], split["repeats"]) == (256, "8x8", 3)
    # 0.25, 0.375, 0.5: mean 0.375, std 0.125; equal val scores pick the first seed
    assert (whole["miou_test_mean_ours"], whole["miou_test_std_ours"]) == (0.375, 0.125)
    assert (whole["test_grid"], whole["selected_seed"]) == ("1x1", 0)
    assert "F = 0 has no coarse network" in whole["note"] and "P = 1" in whole["note"]

    config["deepglobe"]["training"]["select_on"] = "test"
    on_test = fig13_table(_fig13_records(), config)
    assert (on_test.iloc[1]["selected_seed"], on_test.iloc[1]["miou_test_selected_ours"]) == (2, 0.7)


def test_fig13_table_needs_the_selection_split_of_every_seed() -> None:
    records = [r for r in _fig13_records() if not (r["test_data"].endswith("val") and r["seed"] == 1)]
    with pytest.raises(DataError, match="needs test and val evaluations of the same seeds"):
        fig13_table(records, load_config(REPO / "config/paper.yaml"))


def test_fig13_figure_is_byte_reproducible(tmp_path: Path) -> None:
    csv = tmp_path / "fig13.csv"
    fig13_table(_fig13_records(), load_config(REPO / "config/paper.yaml")).to_csv(csv, index=False)
    fig13_figure(csv, tmp_path / "a.pdf")
    fig13_figure(csv, tmp_path / "b.pdf")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


# ------------------------------------------------------------------------------------------------- Fig. 15


def test_error_map_black_correct_white_wrong_grey_unknown() -> None:
    truth = np.array([[0, 1, 6], [2, 6, 5]])
    predicted = np.array([[0, 2, 6], [2, 3, 4]])
    assert error_map(truth, predicted).tolist() == [[CORRECT, WRONG, UNKNOWN], [CORRECT, UNKNOWN, WRONG]]
    assert (CORRECT, UNKNOWN, WRONG) == (0, 128, 255)


# ----------------------------------------------------------------------------------------- mixed precision


def test_amp_auto_on_cpu_trains_exactly_the_float32_model(tiny_dataset: Path, tmp_path: Path) -> None:
    config = TrainConfig(max_epochs=1, min_epochs=1, batch_size=16, seed=3)
    states = {}
    for amp in ("off", "auto"):
        summary = train_model("ddunet_D3_F4_CY", tiny_dataset, tmp_path / amp, config, tmp_path / f"{amp}.json",
                              progress=False, amp=amp)
        assert summary["amp"] is False
        states[amp] = load_checkpoint(tmp_path / amp / "best.pt")
    off, auto = states["off"], states["auto"]
    assert off["best_val_loss"] == auto["best_val_loss"]
    assert all(torch.equal(off["model"][key], auto["model"][key]) for key in off["model"])
    assert auto["scaler"] == {}  # disabled GradScaler: nothing to resume


def test_amp_resolution() -> None:
    assert resolve_amp("auto", "cpu") is False and resolve_amp("off", "cuda") is False
    assert resolve_amp("auto", "cuda") is True and resolve_amp("on", "cuda:1") is True
    with pytest.raises(DdubenchError, match="--amp on needs a CUDA device"):
        resolve_amp("on", "cpu")


# ------------------------------------------------------------------------------- weights, subimage override


def test_weights_file_reaches_the_frozen_encoder(trained: dict) -> None:
    state = load_checkpoint(trained["checkpoint"])
    conv1 = state["model"]["encoder.block1.0.weight"]
    assert conv1.shape == (64, 3, 7, 7) and bool((conv1 == 0.25).all())
    assert trained["weights"].endswith("resnet18.pth") and trained["amp"] is False


def test_subimage_override_is_recorded_and_used_by_evaluation(trained: dict, prepared: Path, tmp_path: Path) -> None:
    state = load_checkpoint(trained["checkpoint"])
    assert state["model_args"]["subimage_size"] == (16, 16)
    own = evaluate_checkpoint(trained["checkpoint"], prepared / "test", tmp_path / "own.json", batch_size=1,
                              progress=False)
    whole = evaluate_checkpoint(trained["checkpoint"], prepared / "test", tmp_path / "whole.json", batch_size=1,
                                progress=False, subimage=128)
    assert own["subimage_size"] == own["eval_subimage_size"] == [16, 16]
    assert (whole["subimage_size"], whole["eval_subimage_size"]) == ([16, 16], [128, 128])
    # 8 x 8 subimages and one whole crop see different contexts, so the predictions differ
    assert own["scores"]["confusion_matrix"] != whole["scores"]["confusion_matrix"]


def _train_args(prepared: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(prepared), "--run-dir", str(run), "--summary", str(run / "s.json"),
            "--max-epochs", "1", "--no-progress", *extra]


def test_missing_weights_file_is_one_line_naming_it(prepared: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "resnet18.pth"
    code = main(_train_args(prepared, tmp_path / "run", "--model", "resnetddunet_R18_F4_CY", "--weights", str(missing)))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("ddubench: error: ImageNet weights file") and str(missing) in err[0]
    assert not (tmp_path / "run" / "best.pt").exists()


def test_weights_for_a_model_without_resnet_encoder_is_one_line(tiny_dataset: Path, imagenet_file: Path,
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_train_args(tiny_dataset, tmp_path, "--model", "unet_D3", "--weights", str(imagenet_file)))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unet_D3 has no ImageNet encoder" in err[0]


# -------------------------------------------------------------------------------------------- the workflow

TARGETS = ["results/smoke/table6.csv", "results/smoke/fig13_deepglobe.csv", "figures/smoke/fig13_deepglobe.pdf",
           "figures/smoke/fig14_predictions.pdf", "figures/smoke/fig15_errors.pdf",
           "figures/smoke/fig5_synthetic_examples.pdf", "figures/smoke/fig6_deepglobe_examples.pdf"]


@pytest.mark.slow
@pytest.mark.workflow
def test_smoke_workflow_builds_the_deepglobe_experiments(tmp_path: Path) -> None:
    for name in ("Snakefile", "workflow", "config", "profiles"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    result = subprocess.run([snakemake, "--cores", "2", *TARGETS], cwd=tmp_path, capture_output=True, text=True,
                            timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    results = tmp_path / "results/smoke"
    fig13 = pd.read_csv(results / "fig13_deepglobe.csv")
    # smoke grid P in {1, 2} x F = 4: P = 1 trains C = N only
    assert fig13[["P", "F", "comm", "test_grid"]].values.tolist() == [[1, 4, "N", "1x1"], [2, 4, "N", "4x4"],
                                                                      [2, 4, "Y", "4x4"]]
    assert fig13["miou_test_mean_ours"].between(0, 1).all() and (fig13["repeats"] == 1).all()
    assert fig13["data_source"].str.contains("not DeepGlobe").all()
    fig14, fig15 = pd.read_csv(results / "fig14_predictions.csv"), pd.read_csv(results / "fig15_errors.csv")
    # the smoke test split is one tile: one example, drawn as the true mask + 3 models and 3 error maps
    assert len(fig14) == 4 and fig15["grid"].tolist() == ["1x1", "4x4", "4x4"]
    assert ((fig15["correct_px"] + fig15["wrong_px"] + fig15["unknown_px"]) == 128 * 128).all()
    # an example's pixel accuracy in Fig. 14 is its share of black pixels among the known ones in Fig. 15
    accuracy = fig14["pixel_accuracy_ours"].dropna().to_numpy()
    assert accuracy == pytest.approx((fig15["correct_px"] / (fig15["correct_px"] + fig15["wrong_px"])).to_numpy())
    assert len(pd.read_csv(results / "fig5_synthetic_examples.csv")) == 2
    fig6 = pd.read_csv(results / "fig6_deepglobe_examples.csv")
    assert len(fig6) == 1 and fig6["note"].str.contains("NOT DeepGlobe").all()
    for target in TARGETS:
        path = tmp_path / target
        assert path.exists() and (path.suffix != ".csv" or path.with_name(path.stem + ".meta.json").exists())
    assert not list(results.rglob("*.pt"))  # checkpoints are temporary
