"""The workflow on a real single-node SLURM cluster started on this machine (marker `slurm`; `make test-cluster`).

The fixture installs Debian's slurmctld, slurmd and munge when they are absent and the user is root (else it
skips with the reason), writes a one-node slurm.conf with this machine's CPUs and memory (no accounting
database: the executor plugin queries job states with squeue, and MinJobAge keeps finished jobs visible to
it and to `scontrol show job`), starts munged, slurmctld and slurmd with their state under a temporary folder,
and stops every daemon it started. The test runs a subset of the smoke workflow through
`--profile profiles/slurm` in a temporary copy of the workflow: one one-process synthetic training job, one
2-rank torchrun training job and one 2-rank scaling job started through `srun` (the multi-node launch form,
here on one node), checks what each job was given, and compares the outputs with the same targets run locally.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PACKAGES = ("slurmctld", "slurmd", "munge", "slurm-client")
TOOLS = ("slurmctld", "slurmd", "munged", "sbatch", "srun", "squeue", "scontrol")

pytestmark = pytest.mark.slurm


def _install_or_skip() -> None:
    """Install the SLURM and munge packages with apt-get when a tool is missing (root only)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing); installing it needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *PACKAGES]
    result = subprocess.run(install, env=env, capture_output=True, text=True)
    if result.returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"apt-get install {' '.join(PACKAGES)} failed: {(result.stderr.strip() or 'no output')[-200:]}")


CONF_MARK = "# one-node test cluster of ddubench tests/test_slurm.py (removed when the test ends)\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _slurm_conf(root: Path, host: str) -> str:
    """One node with this machine's CPUs and memory (less 2 GB for the system), no accounting."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 2048
    return "\n".join([
        "ClusterName=ddubench", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none", "ReturnToService=2",
        "SchedulerType=sched/builtin", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none", "MinJobAge=900",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", "",
    ])


def _stop(pid_file: Path) -> None:
    """Stop the daemon whose pid file this fixture wrote: SIGTERM, then SIGKILL after 10 s."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running one-node SLURM cluster; yields its slurm.conf (/etc/slurm/slurm.conf, also SLURM_CONF)."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    _install_or_skip()
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd (SlurmUser=root) needs root")
    root = tmp_path_factory.mktemp("slurm")
    for name in ("state", "spool"):
        (root / name).mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    # srun inside a batch job reads the default path (the job's environment does not carry SLURM_CONF)
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and not conf.read_text().startswith(CONF_MARK):  # ours when an earlier run was killed
        pytest.skip(f"{conf} exists: this machine has its own SLURM configuration, which the test leaves alone")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(CONF_MARK + _slurm_conf(root, socket.gethostname()))
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    pid_files = [root / "slurmd.pid", root / "slurmctld.pid", root / "munged.pid"]
    try:
        subprocess.run(["munged", "--force", f"--key-file={key}", f"--log-file={root}/munged.log",
                        f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed"], check=True)
        subprocess.run(["slurmctld"], check=True)
        subprocess.run(["slurmd"], check=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip() != "idle":
            if time.monotonic() > deadline:
                pytest.fail(f"the SLURM node did not become idle: {(root / 'slurmctld.log').read_text()[-1000:]}")
            time.sleep(0.5)
        yield conf
    finally:
        subprocess.run(["scancel", "--partition", "debug"], capture_output=True)
        for pid_file in pid_files:
            _stop(pid_file)
        conf.unlink(missing_ok=True)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


TRAIN_ONE = "results/smoke/runs/k2/unet_D3/seed0/train.json"
TRAIN_TWO = "results/smoke/runs/k2/ddunet_D3_F4_CY/seed0/train.json"
SCALING = "results/smoke/scaling/ddunet_D3_F16_CY_P2.json"
# the executor plugin's status checks: squeue (no accounting database), first one after 2 s; job logs kept
SLURM_ARGS = ("--profile", "profiles/slurm", "--slurm-status-command", "squeue", "--slurm-keep-successful-logs",
              "--slurm-init-seconds-before-status-checks", "2", "--default-resources", "mem_mb=1000", "runtime=30")


def _copy(tmp_path: Path, name: str) -> Path:
    work = tmp_path / name
    work.mkdir()
    for entry in ("Snakefile", "workflow", "config", "profiles"):
        source = REPO / entry
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / entry)
    return work


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([SNAKEMAKE, *args, "--notemp", "-p"], cwd=work, capture_output=True, text=True,
                            timeout=420, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def _show_job(job_id: str) -> dict[str, str]:
    """`scontrol show job` of a (finished) job: its fields (the plugin names each job's log after its id)."""
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                           check=True).stdout
    return dict(field.split("=", 1) for field in shown.split() if "=" in field)


def test_smoke_subset_runs_as_slurm_jobs_like_locally(slurm_cluster: Path, tmp_path: Path) -> None:
    local, cluster = _copy(tmp_path, "local"), _copy(tmp_path, "cluster")
    srun = ("--config", "torchrun_launcher=srun")
    _snakemake(local, TRAIN_ONE, TRAIN_TWO, "--cores", "2")
    _snakemake(local, SCALING, "--cores", "2")
    _snakemake(cluster, TRAIN_ONE, TRAIN_TWO, *SLURM_ARGS)
    _snakemake(cluster, SCALING, *SLURM_ARGS, *srun)

    # each job got the CPUs, tasks and nodes its rule declared (no GPUs: every device here is the CPU)
    jobs = {log: _show_job(log.stem) for log in (cluster / ".snakemake/slurm_logs").rglob("*.log")}
    cpus = {re.sub(r"\.snakemake/slurm_logs/|/\d+\.log$", "", str(log.relative_to(cluster))): job["CPUs/Task"]
            for log, job in jobs.items()}
    assert cpus == {"rule_generate_synthetic/smoke_2": "1", "rule_train/smoke_2_unet_D3_0": "1",
                    "rule_train/smoke_2_ddunet_D3_F4_CY_0": "2", "rule_scaling_measure/smoke_ddunet_D3_F16_CY_2": "2"}
    for job in jobs.values():
        assert job["JobState"] == "COMPLETED" and job["NumNodes"] == "1" and job["NumTasks"] == "1", job
        assert job["NumCPUs"] == job["CPUs/Task"] and "gres/gpu" not in job["TRES"], job
    scaling_log = next(log for log in jobs if "rule_scaling_measure" in str(log)).read_text()
    # the multi-node launch form ran against the real srun: one torchrun per node, c10d rendezvous
    assert re.search(r"srun --overlap --nodes 1 --ntasks 1 --ntasks-per-node 1 --cpus-per-task 2 --kill-on-bad-exit=1 "
                     r"\S+ -m torch\.distributed\.run --nnodes 1 --nproc-per-node 2 --rdzv-backend c10d", scaling_log)

    # the same results as the local run: trained weights bit for bit, the scaling records but their times
    for target in (TRAIN_ONE, TRAIN_TWO):
        ours, theirs = ({key: value for key, value in json.loads((work / target).read_text())["result"].items()
                         if "time" not in key} for work in (cluster, local))
        assert ours == theirs and ours["epochs_run"] == 2
        weights = [torch.load(work / target.replace("train.json", "best.pt"), weights_only=False)["model"]
                   for work in (cluster, local)]
        assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[1])
    untimed = [[{key: value for key, value in record.items() if "time" not in key}
                for record in json.loads((work / SCALING).read_text())["records"]] for work in (cluster, local)]
    assert untimed[0] == untimed[1] and [r["rank"] for r in untimed[0]] == [0, 1]
