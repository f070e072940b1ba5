"""Atomic outputs: an unwritable output is one line naming the path and the reason, and nothing is written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ddubench.cli import main
from ddubench.errors import OutputError
from ddubench.io import atomic_dir, atomic_path, write_json


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def read_only(tmp_path: Path) -> Path:
    """A folder this process cannot write into (a chmod-ed folder, or /sys where root ignores file modes)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            yield candidate
            break
        os.close(fd)
        os.unlink(probe)
    else:
        pytest.skip("no folder here refuses writes")
    folder.chmod(0o755)


# (command without its output, the output's flag, whether the output is a folder)
COMMANDS = [
    (["table", "table8"], "--out", False),
    (["evaluate", "--checkpoint", "nowhere.pt", "--data", "nowhere"], "--out", False),
    (["train", "--model", "unet_D3", "--data", "nowhere", "--run-dir", "{tmp}/run"], "--summary", False),
    (["train", "--model", "unet_D3", "--data", "nowhere", "--summary", "{tmp}/s.json"], "--run-dir", True),
    (["generate-synthetic", "--k", "2", "--train", "2", "--val", "1", "--test", "1"], "--out", True),
    (["deepglobe-fake", "--images", "1", "--size", "16"], "--out", True),
    (["deepglobe-prepare", "--root", "nowhere"], "--out", True),
]


@pytest.mark.parametrize("command, flag, folder", COMMANDS, ids=lambda v: v[0] if isinstance(v, list) else str(v))
@pytest.mark.parametrize("case", ["file in the way", "read-only folder", "folder or file in the way of the output"])
def test_unwritable_output_is_one_line_and_touches_nothing(
    command: list[str], flag: str, folder: bool, case: str, tmp_path: Path, request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    (tmp_path / "a_folder").mkdir()
    if case == "file in the way":
        out, reason = tmp_path / "blocker" / "sub" / "out", f"{tmp_path / 'blocker'} is a file, not a folder"
    elif case == "read-only folder":
        parent = request.getfixturevalue("read_only")
        out, reason = parent / "out", f"folder {parent} is not writable"
    else:  # a file output that is a folder, or a folder output that is a file
        out = tmp_path / ("blocker" if folder else "a_folder")
        reason = "it is a file, not a folder" if folder else "it is a folder"
    before = _listing(tmp_path)
    args = [part.replace("{tmp}", str(tmp_path)) for part in command] + [flag, str(out)]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    assert error.startswith(f"ddubench: error: cannot write {out}") and reason in error, error
    assert _listing(tmp_path) == before
    assert not out.exists() or case != "read-only folder"


def test_atomic_path_names_the_target_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(OutputError, match=rf"cannot write {target}: No space left on device"):
        with atomic_path(target) as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert _listing(tmp_path) == []
    with pytest.raises(OSError, match="elsewhere"):  # an error about another file is not ours to rename
        with atomic_path(target):
            raise OSError(2, "elsewhere", str(tmp_path / "input"))
    assert _listing(tmp_path) == []


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    with atomic_dir(target) as build:
        write_json(build / "a.json", 1)
        (build / "sub").mkdir()
        write_json(build / "sub" / "b.json", 2)
    assert _listing(tmp_path) == ["prepared", "prepared/a.json", "prepared/sub", "prepared/sub/b.json"]
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as build:
            write_json(build / "a.json", 3)
            raise RuntimeError("the second half failed")
    assert _listing(tmp_path) == ["prepared", "prepared/a.json", "prepared/sub", "prepared/sub/b.json"]
    assert (target / "a.json").read_text() == "1\n"
    with atomic_dir(target) as build:
        write_json(build / "c.json", 4)
    assert _listing(tmp_path) == ["prepared", "prepared/c.json"]
