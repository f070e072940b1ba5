"""Provenance sidecars: what produced a result (commit, config, seeds, versions, hardware, timing).

Paths in a record are relative to the repository root (the command reads ``ddubench table ...``), so a
record says the same on every machine. A rebuild that reproduces the committed result byte for byte by
the same command keeps the committed sidecar: it still describes how that result was produced, and a
fresh clone stays clean.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .io import write_atomic, write_json

_PACKAGES = ("torch", "torchvision", "torchmetrics", "numpy", "pandas", "matplotlib", "seaborn", "snakemake")


# Outputs of the workflow's own rules: a rebuild deletes and rewrites them, which says nothing about the code.
_NOT_SOURCE = (":(top,exclude)results", ":(top,exclude)figures", ":(top,exclude)logs")


def _git(*args: str, cwd: str | os.PathLike | None = None) -> str | None:
    """Output of a git command, or None outside a repository (or without git)."""
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_state(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """The current git commit and whether code or configs differ from it (results, figures, logs not counted)."""
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    # the whole work tree from wherever this runs (":/"), new files too (a config not yet committed)
    status = _git("status", "--porcelain", "--untracked-files=normal", "--", ":/", *_NOT_SOURCE, cwd=cwd)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def repository_root() -> Path:
    """The git work tree of the current directory (the directory itself outside one)."""
    return Path(_git("rev-parse", "--show-toplevel") or os.getcwd()).resolve()


def relative_paths(value: Any, root: str | os.PathLike) -> Any:
    """``value`` with every absolute path under ``root`` in its strings made relative to ``root``."""
    prefix = str(Path(root).resolve())
    if isinstance(value, dict):
        return {key: relative_paths(item, root) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [relative_paths(item, root) for item in value]
    if isinstance(value, str):
        return value.replace(prefix + os.sep, "") if value != prefix else "."
    return value


def command_line(argv: list[str] | None = None) -> str:
    """This process's command as ``ddubench <subcommand> ...`` (how ``python -m ddubench`` or torchrun ran it)."""
    return shlex.join(["ddubench", *(sys.argv if argv is None else argv)[1:]])


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
        "command": command_line(),
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
    return relative_paths(record, repository_root())


def sidecar_path(result: str | os.PathLike) -> Path:
    """``results/table8.csv`` -> ``results/table8.meta.json``."""
    result = Path(result)
    return result.with_name(result.stem + ".meta.json")


def committed_sidecar(result: str | os.PathLike, record: dict[str, Any]) -> bytes | None:
    """The committed sidecar of ``result`` when the commit holds exactly this result, made by this command."""
    root = repository_root()
    try:
        relative = Path(result).resolve().relative_to(root)
    except ValueError:
        return None

    def committed(path: Path) -> bytes | None:
        shown = subprocess.run(["git", "show", f"HEAD:{path.as_posix()}"], cwd=root, capture_output=True, timeout=10)
        return shown.stdout if shown.returncode == 0 else None

    result_bytes, sidecar_bytes = committed(relative), committed(sidecar_path(relative))
    if result_bytes is None or sidecar_bytes is None or result_bytes != Path(result).read_bytes():
        return None
    try:
        same_command = json.loads(sidecar_bytes).get("command") == record.get("command")
    except ValueError:
        return None
    return sidecar_bytes if same_command else None


def write_sidecar(result: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write the provenance record next to ``result`` (the committed one when it reproduced the committed result)."""
    path = sidecar_path(result)
    try:
        kept = committed_sidecar(result, record)
    except (OSError, subprocess.SubprocessError):
        kept = None
    if kept is None:
        return write_json(path, record)
    return write_atomic(path, lambda tmp: tmp.write_bytes(kept))
