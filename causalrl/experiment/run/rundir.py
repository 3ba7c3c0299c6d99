"""One home for what every run, sweep and tune directory shares: atomic, durable file writes,
the run's status files, and whether the process that owns a directory is alive.

A run directory is complete exactly when ``summary.json`` says ``"status": "complete"``;
``status.json`` says what an unfinished one is doing (docs/runner.md).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

__all__ = ["write_text_atomic", "write_json_atomic", "is_complete", "read_status", "process_alive", "lock_directory",
           "DirectoryInUse", "UnsafeRunDirectory", "RunFailed", "make_run_dir", "check_name", "fsync_tree",
           "check_run_files", "remove_unfinished", "read_json_file", "MAX_RUN_FILE_BYTES"]

#: the largest JSON file of a run directory read (status, summary, run.json, a checkpoint's state.json)
MAX_RUN_FILE_BYTES = 4 * 1024 * 1024
#: the most entries a run directory may hold before resume refuses to walk it
_MAX_ENTRIES = 100_000
#: the largest process id any supported system hands out (Linux pid_max is at most 2**22)
_MAX_PID = 2**22


class DirectoryInUse(ValueError):
    """Another process holds the directory's lock."""


class UnsafeRunDirectory(ValueError):
    """A run directory holds something causalrl never writes there (a symbolic link, a device, a
    pipe): refused before anything is read or changed (docs/runner.md, reliability)."""


class RunFailed(RuntimeError):
    """A run that had started (its directory exists) failed; ``status.json`` says ``failed`` with
    the step, and the message is one line naming the run directory and how to continue. The
    command line exits with status 1 (docs/runner.md, exit codes)."""


def lock_directory(directory: Path, what: str = "run"):
    """Hold an exclusive ``flock`` on ``directory/.lock`` until the returned handle is closed
    (or the process dies: the kernel drops the lock, so a killed run never leaves a stale one).

    Taken before anything in the directory is read for writing or changed; a second process
    gets a one-line :class:`DirectoryInUse` naming the holder's pid (Linux/macOS)."""
    import fcntl

    directory = Path(directory)
    try:  # O_NOFOLLOW: a planted .lock link must not make us write a pid into its target
        handle = os.fdopen(os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644), "r+")
    except OSError:
        if os.path.islink(directory / ".lock"):
            raise UnsafeRunDirectory(f"{directory}/.lock: a symbolic link, which causalrl never writes; delete it "
                                     "(rm, not rm -r) and try again") from None
        raise
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


def read_json_file(path: Path, limit: int = MAX_RUN_FILE_BYTES):
    """The JSON value of a run file, read as untrusted input: a regular file (no link followed),
    at most ``limit`` bytes, UTF-8, nesting bounded; a one-line ``ValueError`` naming it otherwise."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        reason = "a symbolic link" if os.path.islink(path) else (error.strerror or str(error))
        raise ValueError(f"{path}: cannot read ({reason})") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError(f"{path}: not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: larger than the {limit // 2**20} MiB a run file may have; the directory is damaged")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        text = " ".join(str(error).split())[:120]
        raise ValueError(f"{path}: not valid JSON ({type(error).__name__}: {text})") from None


def _read_json(path: Path) -> dict:
    try:
        data = read_json_file(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_complete(run_dir: Path) -> bool:
    """True when ``run_dir/summary.json`` is a summary the runner writes at the end and says
    ``"status": "complete"``: ``steps`` a count, ``final`` a mapping of numbers. A bare
    ``{"status": "complete"}`` (planted, or from elsewhere) is no finished run."""
    summary = _read_json(Path(run_dir) / "summary.json")
    final, steps = summary.get("final"), summary.get("steps")
    return (summary.get("status") == "complete" and isinstance(steps, int) and not isinstance(steps, bool)
            and steps > 0 and isinstance(final, dict) and all(isinstance(key, str) and _number(value)
                                                              for key, value in final.items())
            and all(isinstance(summary.get(key), str) for key in ("env", "agent")))


def read_status(run_dir: Path) -> dict:
    """``run_dir/status.json`` as a mapping (empty when missing or unreadable)."""
    return _read_json(Path(run_dir) / "status.json")


def process_alive(pid) -> bool:
    """Whether another process with this id exists (a run killed by a signal leaves its pid behind)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= _MAX_PID or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return isinstance(pid, int) and pid > 0
    return True


def check_run_files(run_dir: Path) -> None:
    """Refuse a run directory holding anything causalrl never writes there: a symbolic link
    anywhere inside it (resume would follow it out of the directory), a pipe or a device. Walked
    without following links, before anything in it is read for writing or changed."""
    run_dir = Path(run_dir)
    todo, seen = [run_dir], 0
    while todo:
        folder = todo.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                seen += 1
                if seen > _MAX_ENTRIES:
                    raise UnsafeRunDirectory(f"{run_dir}: holds more than {_MAX_ENTRIES} entries, more than a run "
                                             "writes; give a run directory (runs/<experiment>/<run>)")
                if entry.is_symlink():
                    raise UnsafeRunDirectory(f"{entry.path}: a symbolic link inside the run directory, which causalrl "
                                             "never writes (it would be followed out of the run); remove the link")
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                elif not entry.is_file(follow_symlinks=False):
                    raise UnsafeRunDirectory(f"{entry.path}: not a regular file (a pipe, socket or device), which "
                                             "causalrl never writes in a run directory; remove it")


def remove_unfinished(directory: Path) -> None:
    """Delete an unfinished run directory so that it can be run again (sweeps re-run unfinished
    trials), holding its lock while deleting: a live run or ``--resume`` of it makes this raise
    :class:`DirectoryInUse` and leaves it alone. A symbolic link is refused, never followed."""
    directory = Path(directory)
    if directory.is_symlink():
        raise UnsafeRunDirectory(f"{directory}: a symbolic link, not a run directory; remove the link")
    if not directory.exists():
        return
    if not directory.is_dir():
        raise UnsafeRunDirectory(f"{directory}: not a directory; remove it")
    lock = lock_directory(directory)
    try:
        shutil.rmtree(directory)
    finally:
        lock.close()
