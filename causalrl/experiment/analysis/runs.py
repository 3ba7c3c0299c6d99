"""Finding and grouping finished runs: the part of the analysis room every other part reads.

A run directory is a folder with ``config.yaml`` (:func:`find_runs`); its status is ``ok``
(a complete ``summary.json``), ``failed`` (``error.json``, or a ``status.json`` saying so) or
``unfinished``. Runs are grouped per agent x env (:func:`group_runs`). An agent is its name plus
hyperparameters; an env is its id plus constructor arguments and ``total_steps`` (the report puts
``total_steps`` with the agent instead, see :func:`group_runs`). An env argument
whose name contains "seed" and equals the run's seed in every run of that env
(``env.instance_seed={seed}`` in a sweep) counts as part of the seed, so such runs form one group
over random instances. Labels show only what differs between groups. A tune directory's held-out
runs form groups apart from its search runs (:func:`tune_phase`). Runs of one group with the same
seed are duplicates (a re-run): only the newest complete run counts.

Runs written before today's metric names are read under them
(``causalrl.experiment.run.metric_names.OLD_NAMES``). The metric vocabulary the analysis shares
lives here too: the main final metrics, the curve panels, and the metrics where smaller is better
(:data:`LOWER_IS_BETTER`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from causalrl.experiment.config import ConfigError, parse_yaml
from causalrl.experiment.run.metric_names import current_name
from causalrl.experiment.run.rundir import is_complete

__all__ = ["MAIN_METRICS", "CURVE_PANELS", "LOWER_IS_BETTER", "RunRecord", "Group", "canonical", "find_runs",
           "group_runs", "tune_phase"]

#: final metrics shown in report.md and final__*.png (when present); the CSV has every metric
MAIN_METRICS = [
    "eval/deterministic_normalised_score", "eval/mean_reward", "task/window_normalised_score",
    "regret/cumulative", "regret/window_optimal_action_rate", "reward/cumulative", "task/window_return_mean",
    "rollout/ep_rew_mean", "structure/shd", "structure/f1", "intervention/window_rate",
]
#: curve panels: title -> candidate metrics (the first one logged is drawn)
CURVE_PANELS = {
    "regret": ["regret/cumulative"],
    "score": ["eval/deterministic_normalised_score", "task/window_normalised_score"],
    "return": ["eval/mean_reward", "task/window_return_mean", "rollout/ep_rew_mean", "reward/cumulative"],
    "structure error": ["structure/shd"],
    "intervention rate": ["intervention/window_rate"],
}
#: metrics where smaller is better (performance profiles, P(improvement) and leaderboards flip for them)
LOWER_IS_BETTER = {"regret/cumulative", "regret/cumulative_realised", "structure/shd", "structure/fnr",
                   "structure/fpr", "intervention/window_rate"}


@dataclass
class RunRecord:
    """One run directory: its config, its status (ok | failed | unfinished) and final metrics."""

    path: Path
    config: dict
    status: str
    final: dict = field(default_factory=dict)
    error: str = ""
    agent_key: str = ""
    env_key: str = ""

    @property
    def seed(self):
        return self.config.get("seed")

    def curves(self) -> dict[str, dict[float, float]]:
        """metric -> {step: value} from progress.csv (empty when there is none)."""
        path = self.path / "progress.csv"
        if not path.is_file():
            return {}
        curves: dict[str, dict[float, float]] = {}
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                step = _number(row.get("time/steps"))
                if step is None:
                    continue
                for key, text in row.items():
                    value = _number(text)
                    if key != "time/steps" and value is not None:  # older runs' names read as today's
                        curves.setdefault(current_name(key), {})[step] = value
        return curves


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- finding and grouping runs ----------------------------------------------------------------
def find_runs(dirs: list[str | Path]) -> list[RunRecord]:
    """Every run directory (a folder with config.yaml) at or below ``dirs``, each once."""
    seen: dict[Path, RunRecord] = {}
    for top in dirs:
        top = Path(top)
        if not top.is_dir():
            raise ConfigError(f"report: {top} is not a directory")
        for folder, subfolders, files in os.walk(top):
            if "config.yaml" in files:
                subfolders[:] = []  # a run directory holds no further runs
                path = Path(folder).resolve()
                if path not in seen:
                    seen[path] = _read_run(Path(folder))
            else:
                subfolders[:] = sorted(name for name in subfolders if name not in ("report", "ray_results"))
    return sorted(seen.values(), key=lambda run: str(run.path))


def _read_run(path: Path) -> RunRecord:
    try:
        config = parse_yaml((path / "config.yaml").read_text(), str(path / "config.yaml")) or {}
    except (OSError, ValueError) as error:  # ValueError: not UTF-8 text, or a ConfigError (malformed, too large)
        return RunRecord(path, {}, "failed", error=f"unreadable config.yaml: {' '.join(str(error).split())}")
    if not isinstance(config, dict) or not isinstance(config.get("env") or {}, dict):
        return RunRecord(path, {}, "failed", error="unreadable config.yaml: not a mapping of keys with an env mapping")
    summary_path, error_path = path / "summary.json", path / "error.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):
            summary = {}
        summary = summary if isinstance(summary, dict) else {}
        if summary.get("status") == "complete" and not isinstance(summary.get("final", {}), dict):
            return RunRecord(path, config, "failed", error="unreadable summary.json: `final` is not a mapping")
        if is_complete(path):  # a bare {"status": "complete"} is no finished run
            final = {current_name(k): float(v) for k, v in summary.get("final", {}).items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool)}  # older runs' names read as today's
            return RunRecord(path, config, "ok", final)
    if error_path.is_file():
        try:
            error = json.loads(error_path.read_text())
            error = str(error.get("error", "")) if isinstance(error, dict) else "unreadable error.json"
        except (OSError, ValueError):
            error = "unreadable error.json"
        return RunRecord(path, config, "failed", error=error)
    try:  # a run the runner stopped (e.g. the NaN guard) says so in status.json
        status = json.loads((path / "status.json").read_text())
    except (OSError, ValueError):
        status = {}
    if isinstance(status, dict) and status.get("status") == "failed":
        return RunRecord(path, config, "failed", error=str(status.get("error", "")))
    return RunRecord(path, config, "unfinished")


def canonical(value) -> str:
    """A stable text key of a config value (sorted JSON)."""
    return json.dumps(value, sort_keys=True, default=str)


def _seed_tied_keys(runs: list[RunRecord]) -> set[tuple[str, str]]:
    """(env id, key) pairs of env arguments named *seed* that equal the run seed in every run of
    that env id (``env.instance_seed={seed}`` in a sweep): they vary with the seed, not the task."""
    candidates: dict[tuple[str, str], bool] = {}
    for run in runs:
        env = run.config.get("env") or {}
        for key, value in env.items():
            if "seed" in key:
                pair = (str(env.get("id")), key)
                candidates[pair] = candidates.get(pair, True) and value == run.config.get("seed")
    return {pair for pair, tied in candidates.items() if tied}


def tune_phase(run_dir: str | Path) -> str | None:
    """"held-out" or "search" for a run directory of a tune directory, else None.

    This is the one place outside the batch room that knows tune's folder layout
    (``causalrl.experiment.batch.tune``): held-out runs are ``<tune>/heldout/<label>/<run>``,
    search runs ``<tune>/trials/<run>`` beside ``heldout/``, ``result.json`` or ``study.log``.
    """
    path = Path(run_dir)
    parts = path.parts
    if len(parts) >= 3 and parts[-3] == "heldout":
        return "held-out"
    tune_dir = path.parent.parent
    if len(parts) >= 2 and parts[-2] == "trials" and any(
            (tune_dir / name).exists() for name in ("heldout", "result.json", "study.log")):
        return "search"
    return None


def _identity(run: RunRecord, tied: set[tuple[str, str]], budget_apart: bool = True) -> tuple[dict, dict]:
    config = run.config
    agent = config.get("agent") or {}
    if not isinstance(agent, dict):
        agent = {"name": str(agent)}
    phase = tune_phase(run.path)
    if phase is not None:  # tune: search and held-out runs of one config are different groups
        agent = {**agent, "phase": phase}
    env = dict(config.get("env") or {})
    for key in list(env):
        if (str(env.get("id")), key) in tied:
            env[key] = "{seed}"
    if budget_apart:
        env["total_steps"] = config.get("total_steps")
    else:  # one env table: the budget is the agent's (labelled where one agent has several)
        agent = {**agent, "total_steps": config.get("total_steps")}
    return agent, env


def _labels(identities: dict[str, dict], name_key: str, shorten=lambda name: name) -> dict[str, str]:
    """Readable labels: the name plus only the fields that differ between identities of that name."""
    by_name: dict[str, list[str]] = {}
    for key, identity in identities.items():
        by_name.setdefault(str(identity.get(name_key)), []).append(key)
    labels = {}
    for name, keys in by_name.items():
        varying = _varying({key: {f: v for f, v in identities[key].items() if f != name_key} for key in keys})
        for digits in (4, 8, None):  # shortest float format that keeps the labels distinct
            named = {}
            for key in keys:
                parts = [f"{'.'.join(path)}={_short(_at(identities[key], path), digits)}" for path in varying]
                named[key] = shorten(name) + (f" ({', '.join(parts)})" if parts else "")
            if len(set(named.values())) == len(keys) or digits is None:
                break
        labels.update(named)
    return labels


def _varying(identities: dict[str, dict]) -> list[tuple[str, ...]]:
    """The fields (as key paths) whose values differ between ``identities``; a mapping that every
    identity has (an intervention world's ``intervention`` block) shows only its differing entries."""
    paths = []
    for field in sorted({field for identity in identities.values() for field in identity}):
        values = {key: identity.get(field, "default") for key, identity in identities.items()}
        if len({canonical(value) for value in values.values()}) <= 1:
            continue
        if all(isinstance(value, dict) for value in values.values()):
            paths += [(field, *path) for path in _varying(values)]
        else:
            paths.append((field,))
    return paths


def _at(identity: dict, path: tuple[str, ...]):
    for field in path:
        identity = identity.get(field, "default") if isinstance(identity, dict) else "default"
    return identity


def _short(value, digits: int | None) -> str:
    if isinstance(value, float) and digits is not None and len(repr(value)) > digits + 2:
        return f"{value:.{digits}g}"
    return value if isinstance(value, str) else canonical(value)


@dataclass
class Group:
    """The runs of one agent on one env; ``duplicates`` lists (kept run, left-out runs) where
    complete runs repeat a seed of the group (only the newest counts)."""

    agent: str
    env: str
    runs: list[RunRecord]
    duplicates: list = field(default_factory=list)

    @property
    def ok(self) -> list[RunRecord]:
        return [run for run in self.runs if run.status == "ok"]

    @property
    def env_key(self) -> str:
        return self.runs[0].env_key


def _finished_at(run: RunRecord) -> float:
    try:
        return (run.path / "summary.json").stat().st_mtime
    except OSError:
        return 0.0


def _collapse_duplicates(group: Group) -> None:
    """Keep one complete run per seed (the newest); mark the others ``duplicate``."""
    by_seed: dict[str, list[RunRecord]] = {}
    for run in group.ok:
        by_seed.setdefault(canonical(run.seed), []).append(run)
    for runs in by_seed.values():
        if len(runs) > 1:
            runs = sorted(runs, key=lambda r: (_finished_at(r), str(r.path)))
            for run in runs[:-1]:
                run.status = "duplicate"
            group.duplicates.append((runs[-1], runs[:-1]))


def group_runs(runs: list[RunRecord], budget_apart: bool = True) -> list[Group]:
    """The runs grouped per agent x env (sorted by env, then agent), with labels that show only
    what differs between groups; sets each run's ``agent_key`` and ``env_key`` and collapses
    duplicated seeds (see the module docstring).

    :param budget_apart: ``total_steps`` is part of the env (runs of different budgets are never
        compared: the leaderboard's pairs); False: part of the agent, so that agents trained for
        different budgets share one env table (the report, which shows each group's budget).
    """
    agents, envs = {}, {}
    tied = _seed_tied_keys(runs)
    for run in runs:
        agent, env = _identity(run, tied, budget_apart)
        run.agent_key, run.env_key = canonical(agent), canonical(env)
        agents[run.agent_key], envs[run.env_key] = agent, env
    agent_labels = _labels(agents, "name")
    env_labels = _labels(envs, "id", shorten=lambda name: name.split("/")[-1])
    groups: dict[tuple[str, str], Group] = {}
    for run in runs:
        key = (agent_labels[run.agent_key], env_labels[run.env_key])
        groups.setdefault(key, Group(*key, []))
        groups[key].runs.append(run)
    ordered = [groups[key] for key in sorted(groups, key=lambda k: (k[1], k[0]))]
    for group in ordered:
        _collapse_duplicates(group)
    return ordered
