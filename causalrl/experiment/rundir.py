"""One home for what every run, sweep and tune directory shares: atomic, durable file writes,
the run's status files, and whether the process that owns a directory is alive.

A run directory is complete exactly when ``summary.json`` says ``"status": "complete"``;
``status.json`` says what an unfinished one is doing (docs/runner.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["write_text_atomic", "write_json_atomic", "is_complete", "read_status", "process_alive"]


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
