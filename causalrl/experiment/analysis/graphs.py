"""``causalrl graph RUN_DIR``: redraw a finished (or running) run's learned graph over the true one
from its ``structure.jsonl`` (:mod:`causalrl.experiment.run.history`), at its last step or any
logged step, and export it to DOT. The pictures themselves are
:mod:`causalrl.experiment.figures.graphs`; see docs/reports.md.
"""

from __future__ import annotations

from pathlib import Path

from causalrl.experiment.config import parse_yaml
from causalrl.experiment.figures.graphs import to_dot
from causalrl.experiment.run.history import read_history, select_snapshot, snapshot_structures, write_graph

__all__ = ["redraw_graph", "run_title"]


def redraw_graph(run_dir: str | Path, checkpoint: int | str | None = None, out: str | Path | None = None,
                 dot: bool = False) -> list[Path]:
    """``causalrl graph RUN_DIR``: draw the snapshot at ``checkpoint`` (default: the last) to
    ``out`` (default ``RUN_DIR/graph.png``, or ``graph_step<N>.png`` for an earlier step), plus a
    ``.dot`` file beside it when ``dot``. Returns the written paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"graph {run_dir}: no such directory; give a run directory (runs/<experiment>/<run>)")
    history = read_history(run_dir)
    line = select_snapshot(history, checkpoint)
    if out is None:
        out = run_dir / ("graph.png" if line is history[-1] else f"graph_step{line['step']}.png")
    out = Path(out)
    title = f"{run_title(run_dir)}, step {line['step']}"
    written = [write_graph(line, out, title)]
    if dot:
        learned, truth, reward_node = snapshot_structures(line)
        dot_path = out.with_suffix(".dot")
        dot_path.write_text(to_dot(learned, truth, reward_node, name=title))
        written.append(dot_path)
    return written


def run_title(run_dir: str | Path) -> str:
    """"<agent> on <env id> (seed <seed>)" from the run's config.yaml; the folder name when it
    cannot be read."""
    run_dir = Path(run_dir)
    try:
        config = parse_yaml((run_dir / "config.yaml").read_text(), str(run_dir / "config.yaml")) or {}
        agent = config.get("agent") or {}
        return f"{agent.get('name', '?')} on {(config.get('env') or {}).get('id', '?')} (seed {config.get('seed')})"
    except (OSError, ValueError, AttributeError):  # ValueError: a ConfigError (malformed, too large)
        return run_dir.name
