"""The command line and configuration validation: exit codes and one-line error messages."""

from __future__ import annotations

import copy
import csv
import json
import os
from pathlib import Path

import pytest
import yaml

from ddubench.cli import main
from ddubench.config import cell_seeds, load_config, published_source, seeds_note, validate_config
from ddubench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

SUBCOMMANDS = ("generate-synthetic", "train", "evaluate", "table", "figure", "measure", "validate-config")
CONFIGS = ("config/smoke.yaml", "config/cpu.yaml", "config/paper.yaml")

# a minimal valid configuration, independent of the repository's config files
MINIMAL = {
    "run": "tiny",
    "publish_from": "tiny",
    "seeds": [0],
    "synthetic": {"rule": "journal", "subimage_size": 32, "counts": {"train": 8, "val": 4, "test": 4}, "ks": [2]},
    "fig9": {"depth": 3, "features": [0, 4]},
    "fig10": {"depths": [2], "features": 4, "k": 2, "examples": 1},
    "fig11": {"test_k": 2},
    "predictions": {"k": 2, "models": ["unet_D3"], "examples": 2},
    "training": {"lr": 0.008, "max_epochs": 2, "min_epochs": 0, "early_stopping_patience": 1, "lr_patience": 1,
                 "batch_size": 8, "dropout": 0.1},
    "scaling": {"benchmarks": [{"model": "ddunet_D3_F16_CY", "subimage_size": 32, "resolutions": ["32x64"]}],
                "ranks": [1, 2], "device": "cpu"},
    "table7": {"rows": [{"id": "ddunet_r18_1x1", "model": "resnetddunet_R18_F256_CY"}]},
    "throughput": {"models": ["ddunet_D3_F16_CY"], "ks": [2]},
}


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ddubench: error: ")
    return lines[0]


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in out


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`ddubench compare ... | head` whose reader is gone: exit status 1 and no traceback."""
    import subprocess
    import sys

    csv_path = tmp_path / "grid.csv"
    csv_path.write_text("k_train,model,F,iou_line_paper,iou_line_ours\n2,U-Net,,0.95,0.90\n")
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written
    result = subprocess.run([sys.executable, "-m", "ddubench", "compare", str(csv_path)], stdout=writer,
                            stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(writer)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1


def test_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_repository_configs_are_valid(repo_root: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(repo_root)
    assert main(["validate-config", *CONFIGS]) == 0
    out = capsys.readouterr().out
    for path in CONFIGS:
        assert f"{path}: valid" in out


def test_minimal_config_valid_and_defaults_filled() -> None:
    config = validate_config(copy.deepcopy(MINIMAL))
    assert config["training"]["loss"] == "macro"
    assert config["training"]["lr_factor"] == 0.5
    assert config["training"]["eval_batch_size"] == 64
    assert config["synthetic"]["data_seed"] == 0


def _base(source: str, repo_root: Path) -> dict:
    if source == "smoke":
        return yaml.safe_load((repo_root / "config" / "smoke.yaml").read_text())
    return copy.deepcopy(MINIMAL)


@pytest.mark.parametrize("source", ["inline", "smoke"])
@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("bogus_option", 3, "bogus_option"),  # unknown key
        ("lr", "fast", "lr"),  # wrong type
        ("batch_size", 2.5, "batch_size"),  # number where an integer is needed
    ],
)
def test_invalid_config_is_one_line_error(source: str, key: str, value, expected: str, tmp_path: Path,
                                          repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _base(source, repo_root)
    config["training"][key] = value
    path = tmp_path / f"bad_{source}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["validate-config", str(path)]) == 2
    line = _one_error_line(capsys)
    assert str(path) in line
    assert expected in line
    assert "training" in line


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)
    missing = copy.deepcopy(MINIMAL)
    del missing["training"]["lr"]
    with pytest.raises(ConfigError, match="lr"):
        validate_config(missing, "m.yaml")


def _train_args(data: Path | str, tmp_path: Path, model: str = "ddunet_D3_F4_CY") -> list[str]:
    return ["train", "--model", model, "--data", str(data), "--run-dir", str(tmp_path / "run"),
            "--summary", str(tmp_path / "summary.json"), "--max-epochs", "1", "--min-epochs", "0",
            "--batch-size", "8", "--no-progress"]


def test_train_rejects_too_many_features(tiny_dataset: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_train_args(tiny_dataset, tmp_path, "ddunet_D3_F99_CY")) == 2
    assert "F=99" in _one_error_line(capsys)
    assert not (tmp_path / "summary.json").exists()


def test_train_rejects_unknown_model(tiny_dataset: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_train_args(tiny_dataset, tmp_path, "resnet_D3")) == 2
    assert "resnet" in _one_error_line(capsys)


def test_train_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no_such_dataset"
    assert main(_train_args(missing, tmp_path)) == 2
    line = _one_error_line(capsys)
    assert str(missing / "train.npz") in line


def test_evaluate_missing_checkpoint(tiny_dataset: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.pt"
    code = main(["evaluate", "--checkpoint", str(missing), "--data", str(tiny_dataset / "test.npz"),
                 "--out", str(tmp_path / "eval.json"), "--no-progress"])
    assert code == 2
    assert str(missing) in _one_error_line(capsys)
    assert not (tmp_path / "eval.json").exists()


def test_table8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t8.csv"
    assert main(["table", "table8", "--out", str(out)]) == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    unet = {int(r["depth"]): r for r in rows if r["component"] == "U-Net"}
    assert set(unet) == {2, 3, 4}
    assert int(unet[3]["params_ours"]) == 30479
    assert int(unet[3]["params_paper"]) == 30470
    assert "erratum" in unet[3]["note"]
    for depth, params in ((2, 7487), (4, 122031)):
        assert int(unet[depth]["params_ours"]) == int(unet[depth]["params_paper"]) == params
        assert unet[depth]["note"] == ""
    coarse = {int(r["F"]): r for r in rows if r["component"] == "coarse network"}
    assert set(coarse) == {1, 2, 4, 8, 16, 32, 64}
    assert all(r["params_ours"] == r["params_paper"] for r in coarse.values())
    assert int(coarse[16]["params_ours"]) == 19344

    meta = json.loads((tmp_path / "t8.meta.json").read_text())
    for key in ("git", "versions", "device", "wall_time_s"):
        assert key in meta
    assert meta["versions"]["torch"]
    assert "wrote" in capsys.readouterr().out


def test_table10_needs_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "table10", "--out", str(tmp_path / "t10.csv")]) == 2
    assert "--config" in _one_error_line(capsys)


@pytest.mark.parametrize("name", ["fig9", "fig10"])
def test_a_grid_table_of_some_seeds_says_how_many_are_trained(name: str, tmp_path: Path) -> None:
    """Fig. 9 and Fig. 10 tables built from one of the config's three seeds say so in every row's note."""
    config = {**copy.deepcopy(MINIMAL), "seeds": [0, 1, 2]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    evals = []
    for spec in ("ddunet_D2_F4_CY", "unet_D2"):
        evals.append(tmp_path / f"{spec}.json")
        evals[-1].write_text(json.dumps({"spec": spec, "train_k": 2, "test_k": 2, "seed": 0,
                                         "scores": {"iou": {"line": 0.5}, "miou": 0.7}}))
    out = tmp_path / "t.csv"
    assert main(["table", name, "--config", str(tmp_path / "c.yaml"), "--evals", *map(str, evals), "--out", str(out)]) == 0
    notes = [row["note"] for row in csv.DictReader(out.open())]
    assert len(notes) == 2 and all("; 1 of the 3 seeds trained so far" in note for note in notes), notes


@pytest.mark.parametrize("case", ["not_json", "eval_as_ceiling", "empty_records", "run_twice"])
def test_a_wrong_input_file_of_a_table_is_one_line_naming_it(case: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config, out = str(REPO / "config" / "smoke.yaml"), str(tmp_path / "t.csv")
    evaluation = tmp_path / "eval_k2.json"
    evaluation.write_text(json.dumps({"spec": "unet_D3", "scores": {}, "test_k": 2}))
    if case == "not_json":
        bad = tmp_path / "best.pt"
        bad.write_bytes(b"\x80\x02 not json")
        argv, expected = ["table", "fig9", "--config", config, "--evals", str(bad)], f"{bad} is not a JSON file"
    elif case == "eval_as_ceiling":
        argv = ["table", "fig9", "--config", config, "--evals", str(evaluation), "--ceilings", str(evaluation)]
        expected = f"{evaluation} is not a record of `ddubench ceiling` (no k, iou_line_ceiling)"
    elif case == "empty_records":
        empty = tmp_path / "scaling.json"
        empty.write_text(json.dumps({"records": []}))
        argv, expected = ["table", "scaling", "--evals", str(empty)], f"{empty} holds no records"
    else:
        argv = ["table", "fig9_budgets", "--grids", "cpu=a.csv", "cpu=b.csv"]
        expected = "run cpu is given twice (a.csv and b.csv)"
    assert main([*argv, "--out", out]) == 2
    assert expected in _one_error_line(capsys)


def test_a_negative_image_count_is_refused_by_the_command_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate-synthetic", "--k", "2", "--train", "-1", "--out", str(tmp_path / "ds")])
    assert "--train: -1 must be at least 1" in capsys.readouterr().err and not (tmp_path / "ds").exists()


def test_measure_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", "params", "--model", "ddunet_D3_F16_CY"]) == 0
    assert "DDU-Net(3,16,Y) (ddunet_D3_F16_CY): 49823 parameters" in capsys.readouterr().out


def test_generate_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k2"
    assert main(["generate-synthetic", "--k", "2", "--train", "3", "--val", "2", "--test", "2", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 3, "val": 2, "test": 2}
    assert manifest["spec"]["rule"] == "journal"
    assert main(["generate-synthetic", "--k", "1", "--out", str(tmp_path / "k1")]) == 2
    assert "k=1" in _one_error_line(capsys)


def test_fewer_seeds_limits_only_its_ks() -> None:
    config = validate_config({**copy.deepcopy(MINIMAL), "seeds": [0, 1, 2],
                              "fewer_seeds": [{"ks": [8, 16], "seeds": [0], "reason": "time"}]})
    assert cell_seeds(config, 2) == [0, 1, 2]
    assert cell_seeds(config, 16) == [0]
    assert seeds_note(config) == "3 seeds per cell; k = 8, 16: 1 seed (time)"
    assert seeds_note(validate_config(copy.deepcopy(MINIMAL))) == "1 seed per cell"


def test_publish_overrides_name_the_run_of_each_top_level_output() -> None:
    plain = validate_config(copy.deepcopy(MINIMAL))
    assert published_source(plain, "fig9_heatmap") == "tiny"
    config = validate_config({**copy.deepcopy(MINIMAL), "publish_overrides": {"fig9_heatmap": "paper"}})
    assert published_source(config, "fig9_heatmap") == "paper"
    assert published_source(config, "table8") == "tiny"
    with pytest.raises(ConfigError, match="publish_overrides"):
        validate_config({**copy.deepcopy(MINIMAL), "publish_overrides": {"fig9_heatmap": "Paper Run"}})


def test_fewer_seeds_needs_a_reason() -> None:
    config = {**copy.deepcopy(MINIMAL), "fewer_seeds": [{"ks": [2], "seeds": [0]}]}
    with pytest.raises(ConfigError, match="reason"):
        validate_config(config)
