"""Provenance records: repository-relative commands and paths; a rebuild that reproduces the committed result
keeps the committed sidecar; the dirty flag is about code and configs, not the rule's own outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ddubench.provenance import git_state, provenance, sidecar_path, write_sidecar


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with one committed table and its sidecar, as the current directory."""
    (tmp_path / "results").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "t.csv").write_text("a,b\n1,2\n")
    _git(tmp_path, "init", "-q")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "src/ddubench/__main__.py"), "table", "t", "--out",
                                      str(tmp_path / "results/t.csv")])
    write_sidecar(tmp_path / "results/t.csv", provenance(wall_time_s=1.0))
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "results")
    return tmp_path


def test_command_and_paths_are_relative_to_the_repository(repo: Path) -> None:
    record = provenance(inputs=[str(repo / "results/in.json")], extra={"data": {"root": str(repo / "data/x")}})
    assert record["command"] == "ddubench table t --out results/t.csv"
    assert record["inputs"] == ["results/in.json"]
    assert record["data"] == {"root": "data/x"}
    assert str(repo) not in json.dumps(record)


def test_rebuild_of_the_committed_result_keeps_the_committed_sidecar(repo: Path) -> None:
    committed = sidecar_path(repo / "results/t.csv").read_bytes()
    sidecar_path(repo / "results/t.csv").unlink()  # Snakemake removes a job's outputs before it runs
    write_sidecar(repo / "results/t.csv", provenance(wall_time_s=2.5))
    assert sidecar_path(repo / "results/t.csv").read_bytes() == committed
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == ""


def test_changed_result_or_command_gets_a_new_sidecar(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "results/t.csv").write_text("a,b\n1,3\n")
    write_sidecar(repo / "results/t.csv", provenance(wall_time_s=2.5))
    assert json.loads(sidecar_path(repo / "results/t.csv").read_text())["wall_time_s"] == 2.5

    (repo / "results/t.csv").write_text("a,b\n1,2\n")
    monkeypatch.setattr(sys, "argv", ["ddubench", "table", "t", "--scores", "--out", "results/t.csv"])
    write_sidecar(repo / "results/t.csv", provenance(wall_time_s=3.5))
    record = json.loads(sidecar_path(repo / "results/t.csv").read_text())
    assert (record["wall_time_s"], record["command"]) == (3.5, "ddubench table t --scores --out results/t.csv")


def test_dirty_flag_counts_code_not_results(repo: Path) -> None:
    (repo / "results/t.csv").write_text("a,b\n9,9\n")
    assert git_state()["dirty"] is False
    (repo / "src/code.py").write_text("x = 2\n")
    assert git_state()["dirty"] is True


def test_dirty_flag_sees_the_whole_tree_and_new_files(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "results" / "run").mkdir()
    (repo / "results" / "run" / "new.json").write_text("{}")  # a new result is not a change of the code
    assert git_state()["dirty"] is False
    (repo / "config").mkdir()
    (repo / "config" / "new.yaml").write_text("run: x\n")  # a config not committed yet
    assert git_state()["dirty"] is True
    (repo / "config" / "new.yaml").unlink()
    (repo / "src/code.py").write_text("x = 2\n")
    monkeypatch.chdir(repo / "results")  # run from a subfolder: the code outside it still counts
    assert git_state()["dirty"] is True
