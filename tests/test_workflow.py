"""The Snakemake workflow: DAG resolution for every config, config errors, and the smoke run end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CONFIGS = ["config/smoke.yaml", "config/cpu.yaml", "config/paper.yaml"]


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run_resolves_whole_dag(configfile: str) -> None:
    result = snakemake("-n", "--forceall", "--cores", "1", "--configfile", configfile)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train" in result.stdout and "fig9_figure" in result.stdout


def test_published_targets_resolve_from_the_default_profile() -> None:
    """The README's verbatim targets resolve with the default config and profile (no --cores)."""
    result = snakemake("-n", "--forceall", "figures/fig9_heatmap.pdf", "results/table8.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    # published from the cpu run, never from smoke
    assert "results/cpu/fig9_heatmap.csv" in result.stdout
    assert "results/smoke/" not in result.stdout


def _copy_workflow(tmp_path: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "profiles"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, symlinks=False)
        else:
            shutil.copy(source, tmp_path / name)
    return tmp_path


def test_invalid_config_stops_with_one_line(tmp_path: Path) -> None:
    work = _copy_workflow(tmp_path)
    text = (work / "config/smoke.yaml").read_text().replace("  lr: 0.008", "  lr: 0.008\n  learning_rate: 1")
    (work / "config/bad.yaml").write_text(text)
    result = snakemake("-n", "--cores", "1", "--configfile", "config/bad.yaml", cwd=work)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ddubench: error:")]
    assert len(errors) == 1
    assert "config/bad.yaml" in errors[0] and "learning_rate" in errors[0] and "training" in errors[0]


@pytest.mark.workflow
def test_smoke_workflow_runs_every_rule(tmp_path: Path) -> None:
    work = _copy_workflow(tmp_path)
    result = snakemake("--cores", "2", cwd=work, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    results, figures = work / "results/smoke", work / "figures/smoke"
    for name in ("table8", "table10", "fig9_heatmap", "fig11_generalization", "fig8_predictions"):
        assert (results / f"{name}.csv").exists() and (results / f"{name}.meta.json").exists()
    for name in ("fig9_heatmap", "fig11_generalization", "fig8_predictions"):
        assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    # nothing reaches the committed top level from a smoke run
    assert not list((work / "results").glob("*.csv")) and not list((work / "figures").glob("*.pdf"))
    # temporary data and checkpoints are gone, results stay
    assert not (work / "data").exists() or not list((work / "data").rglob("*.npz"))
    assert not list(results.rglob("*.pt"))

    fig9 = pd.read_csv(results / "fig9_heatmap.csv")
    assert set(fig9["k_train"]) == {2, 3} and set(fig9["k_test"]) == {2, 3}
    assert fig9.loc[fig9["model"] == "U-Net", "iou_line_paper"].tolist() == [0.95, 0.81]
    assert fig9["iou_line_ours"].between(0, 1).all()
    assert fig9["note"].str.contains("reduced scale").all()
    fig11 = pd.read_csv(results / "fig11_generalization.csv")
    assert set(fig11["k_test"]) == {6}
    table8 = pd.read_csv(results / "table8.csv")
    assert (table8["params_ours"] == table8["params_paper"]).sum() == len(table8) - 1

    rerun = snakemake("-n", "--cores", "2", cwd=work)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
