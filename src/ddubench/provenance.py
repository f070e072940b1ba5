"""Provenance sidecars: what produced a result (commit, config, seeds, versions, hardware, timing)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .io import write_json

_PACKAGES = ("torch", "torchvision", "torchmetrics", "numpy", "pandas", "matplotlib", "seaborn", "snakemake")


def git_state(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """The current git commit and whether the working tree has uncommitted changes."""

    def run(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    """Versions of python, ddubench and the libraries results depend on."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "ddubench": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> dict[str, Any]:
    """The hardware a result was produced on."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    else:
        info["gpus"] = []
    return info


def utc_now() -> str:
    """The current UTC time in ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def provenance(
    *,
    config: dict[str, Any] | None = None,
    config_file: str | None = None,
    seeds: list[int] | None = None,
    started: str | None = None,
    wall_time_s: float | None = None,
    world_size: int = 1,
    method: str | None = None,
    inputs: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to say what produced a result."""
    record: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "config_file": config_file,
        "config": config,
        "git": git_state(),
        "seeds": seeds,
        "versions": package_versions(),
        "device": device_description(),
        "world_size": world_size,
        "started": started,
        "finished": utc_now(),
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 3),
    }
    if method is not None:
        record["method"] = method
    if inputs is not None:
        record["inputs"] = inputs
    if extra:
        record.update(extra)
    return record


def sidecar_path(result: str | os.PathLike) -> Path:
    """``results/table8.csv`` -> ``results/table8.meta.json``."""
    result = Path(result)
    return result.with_name(result.stem + ".meta.json")


def write_sidecar(result: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write the provenance record next to ``result``."""
    return write_json(sidecar_path(result), record)
