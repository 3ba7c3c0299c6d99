"""One home for what every run, sweep and tune directory shares: atomic, durable file writes,
the run's status files, and whether the process that owns a directory is alive.

A run directory is complete exactly when ``summary.json`` says ``"status": "complete"``;
``status.json`` says what an unfinished one is doing (docs/runner.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["write_text_atomic", "write_json_atomic", "is_complete", "read_status", "process_alive", "lock_directory",
           "DirectoryInUse", "make_run_dir", "check_name", "fsync_tree"]


class DirectoryInUse(ValueError):
    """Another process holds the directory's lock."""


def lock_directory(directory: Path, what: str = "run"):
    """Hold an exclusive ``flock`` on ``directory/.lock`` until the returned handle is closed
    (or the process dies: the kernel drops the lock, so a killed run never leaves a stale one).

    Taken before anything in the directory is read for writing or changed; a second process
    gets a one-line :class:`DirectoryInUse` naming the holder's pid (Linux/macOS)."""
    import fcntl

    directory = Path(directory)
    handle = open(directory / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise DirectoryInUse(f"{what} directory {directory} is in use by another causalrl process (pid {owner}); "
                             "wait for it or stop it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def make_run_dir(parent: Path, stem: str) -> Path:
    """Create and return a new folder ``parent/stem`` (``stem-1``, ``stem-2``, ... when taken).
    ``mkdir(exist_ok=False)`` decides, so two processes starting in the same instant never get
    the same folder."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for suffix in range(10_000):
        candidate = parent / (stem if suffix == 0 else f"{stem}-{suffix}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ValueError(f"{parent}: 10000 run folders named {stem}*; choose another experiment name")


def check_name(value, field: str) -> str:
    """``value`` when it is one path component other than ``.`` and ``..`` (an experiment,
    sweep or tune name becomes a folder under output_dir); else a one-line error."""
    if (not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value
            or "\0" in value or Path(value).name != value):
        raise ValueError(f"{field}: must be a folder name (one path component, not '.' or '..', no '/'), "
                         f"got {value!r}")
    return value


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step: written to a sibling, flushed to disk, renamed,
    and the folder entry flushed, so a kill or power loss leaves the old file or the new one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def fsync_tree(folder: Path) -> None:
    """Flush every file in ``folder`` (not recursive) and the folder's entries to disk: a staged
    checkpoint is durable before it is renamed into place."""
    for entry in Path(folder).iterdir():
        if entry.is_file():
            with open(entry, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_directory(folder)


def fsync_directory(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_complete(run_dir: Path) -> bool:
    """True when ``run_dir/summary.json`` exists and says ``"status": "complete"``."""
    return _read_json(Path(run_dir) / "summary.json").get("status") == "complete"


def read_status(run_dir: Path) -> dict:
    """``run_dir/status.json`` as a mapping (empty when missing or unreadable)."""
    return _read_json(Path(run_dir) / "status.json")


def process_alive(pid) -> bool:
    """Whether another process with this id exists (a run killed by a signal leaves its pid behind)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return isinstance(pid, int) and pid > 0
    return True
