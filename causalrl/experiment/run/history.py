"""``structure.jsonl``: the learned and the true structure of a run at each checkpoint step.

Every run of an agent with a ``learned_structure`` (CSL-UCB, explore-then-commit, CIP, ACE)
appends one line per checkpoint step and one at the end (``StructureHistory`` in
:mod:`causalrl.experiment.run.callbacks`) and draws the last one as ``graph.png``. A line is

    {"step": 300, "learned": {name: 0/1 matrix}, "truth": {name: 0/1 matrix} or null,
     "reward_node": 3}       (reward_node only for worlds that have one)

with matrices as nested lists (``[j][i]`` = j -> i). A resumed run first drops the lines after
its checkpoint (:func:`keep_history_until`). ``causalrl graph`` and the report read the lines
back (:func:`read_history`, :func:`select_snapshot`). See docs/reports.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from causalrl.experiment.figures.graphs import draw_structure, named_masks
from causalrl.experiment.run.rundir import write_text_atomic

__all__ = ["HISTORY_FILE", "DISCOVERY_FILE", "write_discovery_log", "snapshot", "append_snapshot", "snapshot_structures", "read_history", "select_snapshot",
           "write_graph", "keep_history_until", "check_history"]

HISTORY_FILE = "structure.jsonl"
#: an agent's own record of each structure-discovery round (``agent.discovery_log``, e.g. CIP's:
#: step, reward parents, swapped blocks, stability against the previous round; docs/cip.md b.1)
DISCOVERY_FILE = "discovery.jsonl"


def snapshot(step: int, learned, truth) -> dict:
    """One line of ``structure.jsonl``: the step, the learned and the true matrices (0/1 lists)."""
    def lists(named):
        return {name: mask.astype(int).tolist() for name, mask in named.items()}

    truth_named = named_masks(truth)
    reward_node = getattr(truth, "reward_node", None)
    line = {"step": int(step), "learned": lists(named_masks(learned)), "truth": lists(truth_named) if truth is not None else None}
    if reward_node is not None and truth_named:
        n_nodes = next(iter(truth_named.values())).shape[0]
        line["reward_node"] = int(reward_node) % n_nodes
    return line


def write_discovery_log(run_dir: str | Path, records: list[dict]) -> None:
    """Rewrite ``run_dir/discovery.jsonl`` with ``records``, one JSON line each, in one atomic
    step: the log is part of the agent's saved state, so a resumed run rewrites it whole rather
    than appending to what a killed run left."""
    text = "".join(json.dumps(record, separators=(",", ":"), default=_plain) + "\n" for record in records)
    write_text_atomic(Path(run_dir) / DISCOVERY_FILE, text)


def _plain(value):
    """numpy scalars and arrays as JSON numbers and lists."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else str(value)


def append_snapshot(run_dir: str | Path, line: dict) -> None:
    """Append one :func:`snapshot` line to ``run_dir``'s ``structure.jsonl``."""
    with open(Path(run_dir) / HISTORY_FILE, "a") as handle:
        handle.write(json.dumps(line, separators=(",", ":")) + "\n")


def snapshot_structures(line: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, int | None]:
    """``(learned, truth, reward node)`` of one line: named boolean matrices (truth None when the
    world has none), as :func:`causalrl.experiment.figures.graphs.draw_structure` takes them."""
    learned = {name: np.array(m, dtype=bool) for name, m in (line.get("learned") or {}).items()}
    truth = {name: np.array(m, dtype=bool) for name, m in line["truth"].items()} if line.get("truth") else None
    return learned, truth, line.get("reward_node")


def read_history(run_dir: str | Path) -> list[dict]:
    """Every snapshot of a run directory's ``structure.jsonl`` (oldest first), each line checked
    (:func:`_checked_line`); a last line cut short (what a kill or a full disk leaves during an
    append) is skipped. Any other damage is a one-line ``ValueError`` naming the file and line."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file() or path.is_symlink():
        raise ValueError(f"{run_dir}: no {HISTORY_FILE}; graphs are kept for agents with a learned_structure "
                         "(csl-ucb, etc-dagma, cip, ace)")
    lines = _parse_history(path)
    if not lines:
        raise ValueError(f"{path}: empty; the run logged no structure yet")
    return lines


def check_history(run_dir: str | Path, step: int) -> None:
    """Refuse, before a resume changes anything, a ``structure.jsonl`` it could not cut back to
    ``step`` (lines damaged other than a partial last one); no file is fine."""
    path = Path(run_dir) / HISTORY_FILE
    if path.exists():
        _parse_history(path)


def _parse_history(path: Path) -> list[dict]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}); delete the file (it only feeds graph.png)") from None
    *complete, tail = text.split("\n")  # tail: "" after the last newline, else a line cut short
    lines = [_checked_line(path, number, line) for number, line in enumerate(complete, 1) if line.strip()]
    if tail.strip():
        try:
            lines.append(_checked_line(path, len(complete) + 1, tail))
        except ValueError:
            pass  # the append a kill or a full disk interrupted: dropped, as if it never happened
    steps = [line["step"] for line in lines]
    if steps != sorted(steps):
        raise ValueError(f"{path}: steps out of order ({steps[:6]}...); delete the file (it only feeds graph.png)")
    return lines


def _matrix(value) -> bool:
    return (isinstance(value, list) and 0 < len(value) <= 4096 and all(isinstance(row, list) for row in value)
            and len({len(row) for row in value}) == 1 and 0 < len(value[0]) <= 4096
            and all(entry in (0, 1) and not isinstance(entry, float) for row in value for entry in row))


def _checked_line(path: Path, number: int, text: str) -> dict:
    """One line of structure.jsonl: a mapping with an integer ``step``, ``learned`` (and ``truth``
    or null) mapping names to 0/1 matrices, and an optional integer ``reward_node``."""
    fix = "delete that line or the file (it only feeds graph.png)"
    try:
        line = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path}: line {number} is not JSON ({type(error).__name__}); {fix}") from None
    structures = [line.get("learned"), line.get("truth") or {}] if isinstance(line, dict) else []
    if (not isinstance(line, dict) or not isinstance(line.get("step"), int) or isinstance(line["step"], bool)
            or line["step"] < 0 or not all(isinstance(named, dict) and all(isinstance(name, str) and _matrix(m)
                                                                           for name, m in named.items())
                                           for named in structures)
            or not (line.get("reward_node") is None or (isinstance(line["reward_node"], int)
                                                       and not isinstance(line["reward_node"], bool)
                                                       and line["reward_node"] >= 0))):
        raise ValueError(f"{path}: line {number} is not a structure snapshot (step, learned and truth as 0/1 "
                         f"matrices); {fix}")
    return line


def select_snapshot(history: list[dict], checkpoint: int | str | None = None) -> dict:
    """The snapshot at step ``checkpoint`` (None or "latest": the last one)."""
    if checkpoint is None or checkpoint == "latest":
        return history[-1]
    text = str(checkpoint).removeprefix("step_")
    step = int(text) if text.isdigit() else None
    matches = [line for line in history if line["step"] == step]
    if not matches:
        steps = ", ".join(str(line["step"]) for line in history)
        raise ValueError(f"--checkpoint {checkpoint}: no snapshot at that step; the run has steps {steps} (or 'latest')")
    return matches[-1]


def write_graph(line: dict, path: str | Path, title: str = "") -> Path:
    """Draw one ``structure.jsonl`` snapshot to ``path``."""
    learned, truth, reward_node = snapshot_structures(line)
    draw_structure(learned, truth, path, title=title, reward_node=reward_node)
    return Path(path)


def keep_history_until(run_dir: str | Path, step: int) -> None:
    """Drop the snapshots after ``step`` (a resumed run goes on from its checkpoint; -1: all)."""
    path = Path(run_dir) / HISTORY_FILE
    if path.is_file():
        kept = [line for line in _parse_history(path) if line["step"] <= step]
        write_text_atomic(path, "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in kept))
