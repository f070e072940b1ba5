"""The Snakemake workflow: DAG resolution for every config, config errors, and the smoke run end to end."""

from __future__ import annotations

import os
import re
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


def _dry_run_jobs(output: str, rule: str) -> list[dict[str, str]]:
    """The resources and shell command of every `rule` job in a `snakemake -n -p` listing."""
    jobs, current = [], None
    for line in output.splitlines():
        if line.startswith("rule "):
            current = {"rule": line[5:].rstrip(":")}
            jobs.append(current)
        elif current is not None and line.strip().startswith("resources:"):
            current.update(item.strip().split("=", 1) for item in line.split(":", 1)[1].split(","))
        elif current is not None and "torch.distributed.run" in line:
            current["shell"] = line.strip()
    return [job for job in jobs if job["rule"] == rule]


def test_slurm_profile_requests_gpus_nodes_and_tasks(tmp_path: Path) -> None:
    """Dry run through the SLURM executor: what each torchrun job would ask the scheduler for."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    work = _copy_workflow(tmp_path)
    paper = (work / "config/paper.yaml").read_text()
    (work / "config/paper.yaml").write_text(paper.replace("  ranks: [1, 2, 4]", "  ranks: [1, 4, 8]\n  ranks_per_node: 4"))
    result = snakemake("results/paper/scaling_cuda.csv", "-n", "-p", "--profile", "profiles/slurm",
                       "--configfile", "config/paper.yaml", cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = {job["shell"].split("--nproc-per-node ")[1].split()[0] + "x" + job["nodes"]: job
            for job in _dry_run_jobs(result.stdout, "scaling_measure")}
    assert set(jobs) == {"1x1", "4x1", "4x2"}  # ranks per node x nodes for P = 1, 4, 8
    assert jobs["4x1"]["gpu"] == "4" and jobs["4x1"]["tasks"] == "1" and "--standalone" in jobs["4x1"]["shell"]
    multi = jobs["4x2"]
    assert multi["gpu"] == "4" and multi["tasks"] == "2" and multi["cpus_per_task"] == "4"
    assert "Shell command: srun --ntasks-per-node 1 " in multi["shell"] and "--nnodes 2" in multi["shell"]
    assert "--rdzv-backend c10d" in multi["shell"] and "--device cuda" in multi["shell"]


def test_configfile_replaces_the_default_config() -> None:
    """--configfile cpu.yaml must give exactly cpu.yaml (not smoke.yaml merged with it) to every rule."""
    result = snakemake("results/cpu/table10.csv", "-n", "-p", "--forceall", "--cores", "1",
                       "--configfile", "config/cpu.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "table table10 --config config/cpu.yaml" in result.stdout
    assert "smoke" not in result.stdout


def test_grid_trains_the_seeds_of_each_k(tmp_path: Path) -> None:
    """`fewer_seeds` limits the synthetic cells of its k to its seeds; every other k trains every seed."""
    work = _copy_workflow(tmp_path)
    text = (work / "config/smoke.yaml").read_text().replace("seeds: [0]\n", (
        "seeds: [0, 1]\nfewer_seeds:\n  - {ks: [3], seeds: [1], reason: time}\n"), 1)
    (work / "config/seeds.yaml").write_text(text)
    result = snakemake("results/smoke/fig9_heatmap.csv", "-n", "--cores", "1", "--configfile", "config/seeds.yaml",
                       cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    per_k: dict[str, set[str]] = {}
    for k, seed in re.findall(r"output: results/smoke/runs/k(\d+)/\w+/seed(\d+)/train\.json", result.stdout):
        per_k.setdefault(k, set()).add(seed)
    assert per_k == {"2": {"0", "1"}, "3": {"1"}}


@pytest.mark.parametrize(("configfile", "override", "compiled"), [
    ("config/paper.yaml", None, False),          # the paper's experiment definition says nothing about compile
    ("config/paper.yaml", "True", True),         # this machine's runtime choice, from the command line
    ("config/cpu.yaml", None, True),             # training.compile: true in the cpu config
    ("config/cpu.yaml", "False", False),         # overridden eagerly
])
def test_runtime_compile_overrides_the_configs_compile(configfile: str, override: str | None,
                                                      compiled: bool) -> None:
    """`--config runtime_compile=...` picks eager or compiled training without editing the experiment config."""
    extra = ["--config", f"runtime_compile={override}"] if override else []
    result = snakemake("results/cpu/runs/k2/unet_D3/seed0/train.json" if "cpu" in configfile
                       else "results/paper/runs/k2/unet_D3/seed0/train.json",
                       "-n", "-p", "--forceall", "--cores", "1", "--configfile", configfile, *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [line for line in result.stdout.splitlines() if " ddubench train " in line]
    assert len(commands) == 1
    assert (" --compile " in commands[0]) is compiled
    assert "--compile False" not in commands[0] and "--compile True" not in commands[0]
