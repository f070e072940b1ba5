"""Atomic file output: a crash or a killed job never leaves a half-written result behind.

An output that cannot be written (a file in the way of a folder, a folder that is not writable, a folder
where the file should go, a full disk) raises :class:`~ddubench.errors.OutputError` naming the path and
the reason, before anything at the target is replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DataError, OutputError

_FIX = "choose another output path or fix that folder"


def _unwritable(target: Path, reason: str) -> OutputError:
    return OutputError(f"cannot write {target}: {reason}; {_FIX}")


def _check_folder(folder: Path, target: Path) -> None:
    """The first existing folder on the way to ``folder`` must be a folder that takes new files."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise _unwritable(target, f"{existing} is a file, not a folder")
    try:  # a real probe: file modes, read-only mounts and ACLs all count (os.access trusts root)
        fd, probe = tempfile.mkstemp(prefix=".ddubench-probe.", dir=existing)
    except OSError as err:
        raise _unwritable(target, f"folder {existing} is not writable ({err.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def _make_folder(folder: Path, target: Path) -> None:
    _check_folder(folder, target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(target, f"cannot create folder {err.filename} ({err.strerror})") from None


def check_writable(target: str | os.PathLike) -> None:
    """Raise :class:`OutputError` now if the file ``target`` could not be written later; creates nothing."""
    target = Path(target)
    if target.is_dir():
        raise _unwritable(target, "it is a folder")
    _check_folder(target.parent, target)


def check_writable_folder(folder: str | os.PathLike) -> None:
    """Raise :class:`OutputError` now if files could not be written into ``folder`` later; creates nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise _unwritable(folder, "it is a file, not a folder")
    _check_folder(folder, folder)


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it onto ``target`` only if the block succeeds."""
    target = Path(target)
    if target.is_dir():
        raise _unwritable(target, "it is a folder")
    _make_folder(target.parent, target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise _unwritable(target, f"cannot create a file in {target.parent} ({err.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as err:
            if err.filename is None or Path(err.filename) != tmp_path:
                raise
            raise _unwritable(target, err.strerror or type(err).__name__) from None
        try:
            os.replace(tmp_path, target)
        except OSError as err:
            reason = "it is a folder" if isinstance(err, IsADirectoryError) else err.strerror
            raise _unwritable(target, reason) from None
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; it replaces ``target`` as a whole only if the block
    succeeds. On failure ``target`` is left exactly as it was and the temporary folder is removed.

    The swap is two renames: a crash between them leaves no ``target`` (the old folder stays complete under
    a ``.replaced`` name beside it), never a mixture of old and new files.
    """
    target = Path(target)
    check_writable_folder(target)
    _make_folder(target.parent, target)
    build = Path(os.path.abspath(target)).with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.building")
    try:
        build.mkdir()  # unlike mkdtemp, this keeps the umask's permissions
    except OSError as err:
        raise _unwritable(target, f"cannot create a folder in {target.parent} ({err.strerror})") from None
    try:
        yield build
        old = build.with_suffix(".replaced")
        if target.exists():
            os.replace(target, old)
        os.replace(build, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def write_atomic(target: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``target``."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_json(target: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON, atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_atomic(target, lambda tmp: tmp.write_text(text))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a file that is not JSON is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not a JSON file ({error}); pass the JSON record, or regenerate a damaged one") \
            from None


def read_record(path: str | os.PathLike, keys: tuple[str, ...], producer: str) -> dict[str, Any]:
    """Read a JSON record and check it has the top-level ``keys`` its reader uses; ``producer`` names what writes
    such records, for the error."""
    record = read_json(path)
    missing = [key for key in keys if not isinstance(record, dict) or key not in record]
    if missing:
        raise DataError(f"{path} is not a record of {producer} (no {', '.join(missing)}); pass the files it writes")
    return record
