"""The Snakemake workflow: DAG resolution for every config, config errors, and the smoke run end to end."""

from __future__ import annotations

import json
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
    # published from the run config/cpu.yaml names (cpu, or its publish_overrides entry), never from smoke
    from ddubench.config import load_config, published_source

    source = published_source(load_config(REPO / "config/cpu.yaml"), "fig9_heatmap")
    assert source != "smoke" and f"results/{source}/fig9_heatmap.csv" in result.stdout
    assert "results/cpu/table8.csv" in result.stdout
    assert "results/smoke/" not in result.stdout


def _copy_workflow(tmp_path: Path) -> Path:
    for name in ("Snakefile", "workflow", "config", "profiles"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, symlinks=False)
        else:
            shutil.copy(source, tmp_path / name)
    return tmp_path


def _with_publish_overrides(work: Path, overrides: str) -> None:
    """Give the copied config/cpu.yaml (what the smoke and CPU configs publish from) these publish_overrides."""
    import yaml

    cpu = work / "config/cpu.yaml"
    config = yaml.safe_load(cpu.read_text())
    config["publish_overrides"] = yaml.safe_load(overrides)
    cpu.write_text(yaml.safe_dump(config, sort_keys=False))


def test_publish_overrides_take_an_output_from_another_run(tmp_path: Path) -> None:
    """The top-level Fig. 9 comes from the run its override names, whatever config is given; the rest stays cpu."""
    work = _copy_workflow(tmp_path)
    _with_publish_overrides(work, "{fig9_heatmap: paper, table10: paper}")
    for configfile in ([], ["--configfile", "config/cpu.yaml"]):
        result = snakemake("-n", "--forceall", "--cores", "1", "figures/fig9_heatmap.pdf", "results/table10.csv",
                           "results/table8.csv", *configfile, cwd=work)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "figures/paper/fig9_heatmap.pdf" in result.stdout and "results/paper/table10.csv" in result.stdout
        assert "results/cpu/table8.csv" in result.stdout
        assert "results/cpu/fig9_heatmap.csv" not in result.stdout


@pytest.mark.parametrize("overrides, expected", [
    ("{fig9_heatmapp: paper}", "'fig9_heatmapp', which is not a published output"),
    ("{scaling_cpu: paper}", "takes 'scaling_cpu' from run 'paper', which does not make it"),
    ("{table8: smoke}", None),
])
def test_a_wrong_publish_override_stops_with_one_line(overrides: str, expected: str | None, tmp_path: Path) -> None:
    work = _copy_workflow(tmp_path)
    _with_publish_overrides(work, overrides)
    result = snakemake("-n", "--cores", "1", "results/table8.csv", cwd=work)
    if expected is None:  # the smoke run makes table8 too: a valid override
        assert result.returncode == 0, result.stderr[-2000:]
        assert "results/smoke/table8.csv" in result.stdout
        return
    errors = [line for line in result.stderr.splitlines() if line.startswith("ddubench: error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr[-2000:]
    assert "config/cpu.yaml" in errors[0] and expected in errors[0]


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
@pytest.mark.smoke
def test_smoke_workflow_runs_every_rule() -> None:
    """`make run` in the repository (every rule of config/smoke.yaml; on a fresh clone, as in CI, all from
    scratch; where its outputs exist and are current, nothing), then what it must have made. The browser test
    reuses these outputs."""
    work = REPO
    result = snakemake("--cores", "2", cwd=work, timeout=3600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    results, figures = work / "results/smoke", work / "figures/smoke"
    for name in ("table8", "table10", "fig9_heatmap", "fig11_generalization", "fig8_predictions"):
        assert (results / f"{name}.csv").exists() and (results / f"{name}.meta.json").exists()
    for name in ("fig9_heatmap", "fig11_generalization", "fig8_predictions"):
        assert (figures / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    # nothing reaches the committed top level from a smoke run
    summary = snakemake("--summary", cwd=work)
    outputs = [line.split("\t", 1)[0] for line in summary.stdout.splitlines()[1:]]
    assert outputs and not [path for path in outputs if re.fullmatch(r"(results|figures)/[^/]+", path)]
    # temporary data and checkpoints are gone, results stay
    assert not list((work / "data" / "smoke").rglob("*.npz"))
    assert not list(results.rglob("*.pt"))

    fig9 = pd.read_csv(results / "fig9_heatmap.csv")
    assert set(fig9["k_train"]) == {2, 3} and set(fig9["k_test"]) == {2, 3}
    assert fig9.loc[fig9["model"] == "U-Net", "iou_line_paper"].tolist() == [0.95, 0.81]
    assert fig9["iou_line_ours"].between(0, 1).all()
    assert fig9["note"].str.contains("reduced scale").all()
    # smoke trains ddunet_D3_F4_CY at k = 2 over 2 gloo ranks; its row says so, the others trained alone
    two_ranks = fig9["note"].str.contains("trained over 2 torchrun ranks")
    assert fig9.loc[two_ranks, ["k_train", "F"]].values.tolist() == [[2, 4]]
    throughput = pd.read_csv(results / "train_throughput.csv").set_index("mode")
    distributed = throughput.loc["distributed"]
    assert distributed["ranks"] == 2 and distributed["peak_mem_mb_per_rank_ours"] > 0
    fig11 = pd.read_csv(results / "fig11_generalization.csv")
    assert set(fig11["k_test"]) == {3}  # config/smoke.yaml fig11.test_k
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
        elif current is not None and line.startswith("Shell command:"):
            current["shell"] = line.strip()
    return [job for job in jobs if job["rule"] == rule]


class _Resources(dict):
    """A job's resources as the SLURM plugin reads them (``.get`` and attribute access)."""

    def __getattr__(self, name: str):
        return self[name]


def _sbatch_flags(job: dict[str, str]) -> str:
    """The sbatch flags the installed SLURM executor plugin builds for a dry-run job's resources."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    resources = _Resources({key: int(value) if value.isdigit() else value for key, value in job.items()
                            if key not in ("rule", "shell")})
    fake = SimpleNamespace(resources=resources, threads=1)
    params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": "x", "account": "", "partition": "",
              "workdir": ""}
    return get_submit_command(fake, params) + set_gres_string(fake)


def _slurm_dry_run(work: Path, *targets: str) -> str:
    result = snakemake(*targets, "-n", "-p", "--profile", "profiles/slurm", "--configfile", "config/paper.yaml",
                       cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_slurm_profile_requests_gpus_per_node_one_task_per_node(tmp_path: Path) -> None:
    """Dry run through the SLURM executor: the sbatch flags the plugin would submit for each torchrun job."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    work = _copy_workflow(tmp_path)
    paper = (work / "config/paper.yaml").read_text()
    (work / "config/paper.yaml").write_text(paper.replace("  ranks: [1, 2, 4]", "  ranks: [1, 4, 8]")
                                            + "ranks_per_node: 4\n")
    jobs = {job["shell"].split("--nproc-per-node ")[1].split()[0] + "x" + job["nodes"]: job
            for job in _dry_run_jobs(_slurm_dry_run(work, "results/paper/scaling_cuda.csv"), "scaling_measure")}
    assert set(jobs) == {"1x1", "4x1", "4x2"}  # ranks per node x nodes for P = 1, 4, 8
    one_node = _sbatch_flags(jobs["4x1"])
    assert "--nodes=1" in one_node and "--gres=gpu:4" in one_node and "--cpus-per-task=4" in one_node
    assert "--gpus" not in one_node and "--ntasks-per-gpu" not in one_node
    assert "--standalone --nproc-per-node 4" in jobs["4x1"]["shell"] and "mpi" not in jobs["4x1"]
    # 8 ranks on 2 nodes: 4 GPUs on each node (not 4 in all), one task (torchrun) per node
    two_nodes = _sbatch_flags(jobs["4x2"])
    assert "--nodes=2" in two_nodes and "--ntasks=2" in two_nodes and "--gres=gpu:4" in two_nodes
    assert "--cpus-per-task=4" in two_nodes and "--gpus" not in two_nodes and "--ntasks-per-gpu" not in two_nodes
    # the plugin runs an `mpi` job in the batch step; the rule's own srun starts one torchrun per node
    assert jobs["4x2"]["mpi"] == "srun"
    shell = jobs["4x2"]["shell"]
    assert "Shell command: srun --overlap --nodes 2 --ntasks 2 --ntasks-per-node 1 --cpus-per-task 4 " in shell
    assert "--nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-id $SLURM_JOB_ID" in shell
    assert "--rdzv-endpoint $(hostname):$(" in shell and "s.bind((\"\", 0))" in shell and "--device cuda" in shell


def test_slurm_gpu_rules_request_gpus(tmp_path: Path) -> None:
    """DeepGlobe training over 4 GPUs, its evaluation and Fig. 7 on CUDA ask SLURM for GPUs; CPU rules do not."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    work = _copy_workflow(tmp_path)
    paper = (work / "config/paper.yaml").read_text()
    assert "    ranks: 4\n" in paper  # deepglobe.training.ranks
    output = _slurm_dry_run(work, "results/paper/fig13_deepglobe.csv", "results/paper/fig7_memory.csv",
                            "results/paper/runs/k2/ddunet_D3_F8_CY/seed0/eval_k2.json")
    trains = _dry_run_jobs(output, "deepglobe_train_subimage") + _dry_run_jobs(output, "deepglobe_train")
    by_side = {(re.findall(r"--subimage (\d+)", job["shell"]) or ["256"])[0]: job for job in trains}
    # P = 4, 8, 16 subimages per side: 16, 64, 256 subimages over 4 GPUs; P = 1 (one subimage) runs alone
    assert {side: job.get("gres") for side, job in by_side.items()} == {
        "1024": "gpu:1", "256": "gpu:4", "128": "gpu:4", "64": "gpu:4"}
    flags = _sbatch_flags(by_side["256"])
    assert "--gres=gpu:4" in flags and "--nodes=1" in flags and "--cpus-per-task=4" in flags
    assert "--ntasks-per-gpu" not in flags and "--gpus" not in flags
    assert "--distributed" in by_side["256"]["shell"] and "--distributed" not in by_side["1024"]["shell"]
    for rule in ("deepglobe_evaluate_subimage", "fig7_table"):
        for job in _dry_run_jobs(output, rule):
            assert job["gres"] == "gpu:1", (rule, job)
    for rule in ("train", "evaluate"):  # synthetic training on the CPU (training.device: cpu)
        assert all("gres" not in job for job in _dry_run_jobs(output, rule))


def test_slurm_profile_settings_win_over_the_default_profile() -> None:
    """profiles/default is loaded after --profile and overrides it key by key; it must set no cluster key."""
    code = ("import sys; from snakemake.cli import parse_args; _, a = parse_args(sys.argv[1:]); "
            "print(a.executor, a.jobs, a.latency_wait, a.retries)")
    result = subprocess.run([sys.executable, "-c", code, "-n", "--profile", "profiles/slurm"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["slurm", "100", "60", "1"]
    local = subprocess.run([sys.executable, "-c", code, "-n"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert local.stdout.split() == ["None", "None", "5", "0"]


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


@pytest.mark.parametrize("target", [
    "results/paper/deepglobe/runs/resnetddunet_R18_F256_CY/seed0/train.json",   # journal Sec. V-B
    "results/cpu/deepglobe/runs/patching_P64/seed0/train.json",                # journal Table 1's baselines too
    "results/cpu-thesis/deepglobe/runs/resnetddunet_R18_F64_CY/S128/seed0/train.json",  # thesis §7.4.2
])
def test_deepglobe_models_train_with_the_papers_augmentation(target: str) -> None:
    """Journal and thesis flip and turn every DeepGlobe training crop; the workflow passes `--augment`."""
    configfile = "config/paper.yaml" if "/paper/" in target else "config/cpu.yaml"
    result = snakemake(target, "-n", "-p", "--forceall", "--cores", "1", "--configfile", configfile)
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [line for line in result.stdout.splitlines() if " train --model " in line]
    assert len(commands) == 1 and " --augment " in commands[0]


def _ranks_config(work: Path, run: str, ranks: int) -> str:
    """A smoke-derived config whose ddunet_D3_F4_CY trains 3 epochs without dropout over ``ranks`` ranks."""
    text = (work / "config/smoke.yaml").read_text()
    for old, new in (("run: smoke\n", f"run: {run}\n"),
                     ("  max_epochs: 2\n  min_epochs: 0\n", "  max_epochs: 3\n  min_epochs: 0\n"),
                     ("  dropout: 0.1\n  #", "  dropout: 0.0\n  #"),
                     ("model_ranks: {ddunet_D3_F4_CY: 2}", f"model_ranks: {{ddunet_D3_F4_CY: {ranks}}}")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (work / f"config/{run}.yaml").write_text(text)
    return f"config/{run}.yaml"


def _train_target(run: str) -> str:
    return f"results/{run}/runs/k2/ddunet_D3_F4_CY/seed0/train.json"


def _weights(work: Path, run: str) -> dict:
    import torch

    return torch.load(work / f"results/{run}/runs/k2/ddunet_D3_F4_CY/seed0/best.pt", weights_only=False)


@pytest.mark.workflow
def test_training_over_two_ranks_equals_one_process_and_resumes(tmp_path: Path) -> None:
    """Through the train rule: 2 gloo ranks train like one process (dropout 0, synced BatchNorm), and a 2-rank
    job killed after its first epoch resumes to the uninterrupted job's weights bit for bit."""
    import signal
    import time

    import torch

    work = _copy_workflow(tmp_path)
    for run, ranks in (("one", 1), ("two", 2)):
        result = snakemake(_train_target(run), "--cores", "2", "--notemp", "-p", "--configfile",
                           _ranks_config(work, run, ranks), cwd=work, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        printed = result.stdout + result.stderr
        launched = "torch.distributed.run --standalone --nproc-per-node 2" in printed
        assert launched is (ranks == 2) and ("--distributed" in printed) is (ranks == 2)
    one, two = _weights(work, "one"), _weights(work, "two")
    assert two["metadata"]["world_size"] == 2 and one["metadata"]["world_size"] == 1
    assert one["best_epoch"] == two["best_epoch"] == 3
    assert {name: t.shape for name, t in one["model"].items()} == {name: t.shape for name, t in two["model"].items()}
    # float32: the ranks sum in another order, and Adam turns round-off in near-zero gradients into full steps,
    # so weights are not bitwise equal (tests/test_distributed.py shows the exact equality in float64). The
    # losses are: per-rank BatchNorm statistics (--bn local) already move epoch 1's training loss by 1.2e-4
    # and epoch 3's validation loss by 1.3e-2; synced ones stay within 2e-5 and 1e-4.
    assert abs(two["history"][0]["train_loss"] - one["history"][0]["train_loss"]) < 5e-5
    for ours, theirs in zip(two["history"], one["history"], strict=True):
        assert abs(ours["val_loss"] - theirs["val_loss"]) < 5e-4, (ours, theirs)
    summary_two = json.loads((work / _train_target("two")).read_text())
    assert summary_two["provenance"]["world_size"] == 2 and not summary_two["resumed"]

    # kill the whole 2-rank job (snakemake, torchrun, ranks) once its first epoch is checkpointed
    config = _ranks_config(work, "killed", 2)
    last = work / "results/killed/runs/k2/ddunet_D3_F4_CY/seed0/last.pt"
    process = subprocess.Popen([SNAKEMAKE, _train_target("killed"), "--cores", "2", "--notemp", "--configfile",
                                config], cwd=work, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert last.exists() and not (work / _train_target("killed")).exists()
    assert snakemake("--unlock", "--configfile", config, cwd=work).returncode == 0
    result = snakemake(_train_target("killed"), "--cores", "2", "--notemp", "--configfile", config, cwd=work,
                       timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert json.loads((work / _train_target("killed")).read_text())["resumed"]
    killed = _weights(work, "killed")
    for name, tensor in two["model"].items():
        assert torch.equal(killed["model"][name], tensor), name


def test_table_notes_say_how_each_row_trained() -> None:
    """A Fig. 9 cell whose models trained over ranks says so in its note; one-process cells keep the plain note."""
    from ddubench.report.tables import line_iou_grid

    def record(spec: str, seed: int, ranks: int) -> dict:
        return {"spec": spec, "train_k": 4, "test_k": 4, "seed": seed, "train_world_size": ranks,
                "scores": {"iou": {"line": 0.5}, "miou": 0.7}}

    records = [record("ddunet_D3_F4_CY", 0, 4), record("ddunet_D3_F4_CY", 1, 4), record("unet_D3", 0, 1),
               {key: value for key, value in record("ddunet_D3_F8_CY", 0, 1).items() if key != "train_world_size"}]
    notes = line_iou_grid(records, {}, depth=3, note="config x").set_index("label")["note"].to_dict()
    assert notes == {"DDU-Net(3,4,Y)": "config x; trained over 4 torchrun ranks (subimages split across the ranks, "
                                       "synced BatchNorm, eager: torch.compile is single-process only)",
                     "DDU-Net(3,8,Y)": "config x", "U-Net(3)": "config x"}


@pytest.mark.published
def test_published_targets_leave_a_fresh_clone_clean(tmp_path: Path) -> None:
    """The README's two verbatim targets, run in a fresh clone of the committed tree, change no tracked file:
    what they rebuild from the committed records (tables, figures, sidecars) is byte-identical."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=300)
    for target in (["--cores", "8", "results/table7.csv"], ["figures/fig9_heatmap.pdf"]):
        result = snakemake(*target, cwd=clone, timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "rule train:" not in result.stdout + result.stderr, "a published target retrained a model"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", f"the published targets changed the clone:\n{status.stdout}"
