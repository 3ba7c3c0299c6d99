"""``causalrl report``: aggregate run directories (one run, a sweep, several sweeps) into tables
and plots, rliable-style (Agarwal et al. 2021): interquartile means (IQM) over seeds with 95%
stratified-bootstrap confidence intervals (``causalrl.core.stats``).

Runs are grouped per agent x env. An agent is its name plus hyperparameters; an env is its id
plus constructor arguments and ``total_steps``. An env argument whose name contains "seed" and
equals the run's seed in every run of that env (``env.instance_seed={seed}`` in a sweep) counts
as part of the seed, so such runs form one group over random instances. Labels show only what differs between groups.
A tune directory's held-out runs (``heldout/``) form groups apart from its search runs
(``trials/``): the phase is part of the agent, so search seeds never pool with held-out ones.
Runs of one group with the same seed are duplicates (a re-run): they are collapsed to the newest
complete run, and report.md lists the ones left out.

Writes into the output folder:

    report.md            per env: one row per agent, IQM [95% CI] of the main final metrics;
                         across envs (when there are several): the IQM pooled over envs with
                         the bootstrap stratified by env; failed runs with their error lines
    final_metrics.csv    agent, env, metric, runs, mean, std, median, iqm, ci_low, ci_high
                         (every numeric final metric; env "(all envs)" rows for the pooled IQM)
    runs.csv             tidy long table: one row per run and final metric (status, error, seed)
    probability_of_improvement.csv   per env (and across envs): P(X better than Y) for every pair of
                         agents on each main metric, with a 95% stratified-bootstrap CI
    curves__<env>__<id>.png    IQM over seeds against env steps with a 95% CI band: regret, return,
                         structure error, intervention rate (those the runs logged)
    final__<env>__<id>.png     IQM with 95% CI of the main final metrics, one row per agent
    profiles__<env>__<id>.png  performance profiles (rliable's run-score distributions) with CI bands
    graphs__<env>__<id>.png    the learned graph of each run (rows: agents), when runs kept one

``<id>`` is a hash of the env's full identity (id, arguments, steps), so two envs never share a
file however alike their names. See docs/reports.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from causalrl.core.stats import (
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
)
from causalrl.experiment.config import ConfigError

__all__ = ["RunRecord", "Group", "Report", "find_runs", "group_runs", "write_report", "MAIN_METRICS", "CURVE_PANELS"]

#: final metrics shown in report.md and final__*.png (when present); the CSV has every metric
MAIN_METRICS = [
    "eval/deterministic_normalised_score", "eval/deterministic_return_mean", "eval/normalised_score",
    "regret/cumulative", "regret/optimal_action_rate", "reward/cumulative", "eval/return_mean",
    "reward/episode_return_mean", "structure/shd", "structure/f1", "intervention/rate",
]
#: curve panels: title -> candidate metrics (the first one logged is drawn)
CURVE_PANELS = {
    "regret": ["regret/cumulative"],
    "score": ["eval/deterministic_normalised_score", "eval/normalised_score"],
    "return": ["eval/deterministic_return_mean", "eval/return_mean", "reward/episode_return_mean", "reward/cumulative"],
    "structure error": ["structure/shd"],
    "intervention rate": ["intervention/rate"],
}
#: metrics where smaller is better (performance profiles and P(improvement) flip for them)
LOWER_IS_BETTER = {"regret/cumulative", "regret/cumulative_realised", "structure/shd", "structure/fnr",
                   "structure/fpr", "intervention/rate"}
#: (colour, hatch, line style) of the i-th group in curve plots: distinct in colour, texture and dash
_LOOKS = [("#0072B2", "//", "-"), ("#D55E00", "\\\\", "--"), ("#009E73", "..", "-."), ("#CC79A7", "xx", ":"),
          ("#E69F00", "++", (0, (5, 1))), ("#56B4E9", "oo", (0, (3, 1, 1, 1))), ("#000000", "--", (0, (1, 1))),
          ("#F0E442", "||", (0, (8, 2)))]
_RUN_KEYS = ("seed", "experiment", "output_dir", "progress_bar", "save_model", "description", "log_interval",
             "eval_interval", "eval_episodes")


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
                    if key != "time/steps" and value is not None:
                        curves.setdefault(key, {})[step] = value
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
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError) as error:  # ValueError: not UTF-8 text
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
        if summary.get("status") == "complete":
            final = {k: float(v) for k, v in summary.get("final", {}).items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool)}
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


def _canonical(value) -> str:
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


def _phase(run: RunRecord) -> str | None:
    """"held-out" or "search" for the runs of a tune directory (``heldout/<label>/<run>``,
    ``trials/<run>``), else None."""
    parts = run.path.parts
    if len(parts) >= 3 and parts[-3] == "heldout":
        return "held-out"
    tune_dir = run.path.parent.parent
    if len(parts) >= 2 and parts[-2] == "trials" and any(
            (tune_dir / name).exists() for name in ("heldout", "result.json", "study.log")):
        return "search"
    return None


def _identity(run: RunRecord, tied: set[tuple[str, str]]) -> tuple[dict, dict]:
    config = run.config
    agent = config.get("agent") or {}
    if not isinstance(agent, dict):
        agent = {"name": str(agent)}
    phase = _phase(run)
    if phase is not None:  # tune: search and held-out runs of one config are different groups
        agent = {**agent, "phase": phase}
    env = dict(config.get("env") or {})
    for key in list(env):
        if (str(env.get("id")), key) in tied:
            env[key] = "{seed}"
    env["total_steps"] = config.get("total_steps")
    return agent, env


def _labels(identities: dict[str, dict], name_key: str, shorten=lambda name: name) -> dict[str, str]:
    """Readable labels: the name plus only the fields that differ between identities of that name."""
    by_name: dict[str, list[str]] = {}
    for key, identity in identities.items():
        by_name.setdefault(str(identity.get(name_key)), []).append(key)
    labels = {}
    for name, keys in by_name.items():
        fields = sorted({field for key in keys for field in identities[key]} - {name_key})
        varying = [f for f in fields if len({_canonical(identities[key].get(f, "default")) for key in keys}) > 1]
        for digits in (4, 8, None):  # shortest float format that keeps the labels distinct
            named = {}
            for key in keys:
                parts = [f"{f}={_short(identities[key].get(f, 'default'), digits)}" for f in varying]
                named[key] = shorten(name) + (f" ({', '.join(parts)})" if parts else "")
            if len(set(named.values())) == len(keys) or digits is None:
                break
        labels.update(named)
    return labels


def _short(value, digits: int | None) -> str:
    if isinstance(value, float) and digits is not None and len(repr(value)) > digits + 2:
        return f"{value:.{digits}g}"
    return value if isinstance(value, str) else _canonical(value)


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
        by_seed.setdefault(_canonical(run.seed), []).append(run)
    for runs in by_seed.values():
        if len(runs) > 1:
            runs = sorted(runs, key=lambda r: (_finished_at(r), str(r.path)))
            for run in runs[:-1]:
                run.status = "duplicate"
            group.duplicates.append((runs[-1], runs[:-1]))


def group_runs(runs: list[RunRecord]) -> list[Group]:
    agents, envs = {}, {}
    tied = _seed_tied_keys(runs)
    for run in runs:
        agent, env = _identity(run, tied)
        run.agent_key, run.env_key = _canonical(agent), _canonical(env)
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


# --- statistics -------------------------------------------------------------------------------
def _final_stats(tasks: list[np.ndarray], reps: int) -> dict:
    pooled = np.concatenate(tasks)
    point, low, high = stratified_bootstrap_ci(tasks, iqm, reps=reps, seed=0)
    return {"runs": int(pooled.size), "mean": float(pooled.mean()), "std": float(pooled.std(ddof=1)) if pooled.size > 1 else 0.0,
            "median": float(np.median(pooled)), "iqm": point, "ci_low": low, "ci_high": high}


def _metrics_of(runs: list[RunRecord]) -> list[str]:
    names = sorted({key for run in runs for key in run.final if key != "time/steps"})
    return [m for m in MAIN_METRICS if m in names] + [m for m in names if m not in MAIN_METRICS]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _cell(stats: dict | None) -> str:
    if stats is None:
        return "–"
    if stats["runs"] == 1:
        return f"{_fmt(stats['iqm'])} (1 run)"
    return f"{_fmt(stats['iqm'])} [{_fmt(stats['ci_low'])}, {_fmt(stats['ci_high'])}]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")[:80] or "env"


def _plot_name(kind: str, env: str, env_key: str) -> str:
    """``<kind>__<env slug>__<hash of the env's full identity>.png``: distinct for distinct envs."""
    digest = hashlib.sha1(env_key.encode()).hexdigest()[:10]
    return f"{kind}__{_slug(env)[:48]}__{digest}.png"


def _wrapped(text: str, width_inches: float) -> str:
    """``text`` wrapped to a figure ``width_inches`` wide (about 9 characters per inch at 12 pt)."""
    return "\n".join(textwrap.wrap(text, max(30, int(width_inches * 9))))


# --- plots ------------------------------------------------------------------------------------
def _curve_band(runs: list[RunRecord], metric: str, reps: int, cache: dict) -> tuple | None:
    """Steps, IQM and 95% CI band of ``metric`` over the runs (on the steps every run logged)."""
    curves = [cache[run.path].get(metric) for run in runs]
    curves = [curve for curve in curves if curve]
    if not curves:
        return None
    steps = sorted(set.intersection(*(set(curve) for curve in curves)))
    if not steps:
        return None
    matrix = np.array([[curve[step] for step in steps] for curve in curves])  # (runs, steps)
    point, low, high = stratified_bootstrap_ci([matrix], iqm, reps=reps, seed=0)
    return np.array(steps), np.atleast_1d(point), np.atleast_1d(low), np.atleast_1d(high), len(curves)


def _hatched_band(axis, x, low, high, colour, hatch: str) -> None:
    """A 95% CI band: a light fill plus a hatch in the group's colour, so overlapping bands stay
    tellable apart."""
    axis.fill_between(x, low, high, facecolor=colour, alpha=0.10, linewidth=0)
    axis.fill_between(x, low, high, facecolor="none", edgecolor=colour, hatch=hatch, alpha=0.45, linewidth=0.6)


def _legend_below(figure, handles: dict, width: float) -> None:
    """One legend for every panel, below them, so it never covers a curve."""
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      ncol=max(1, min(len(handles), int(width // 3.2))), fontsize=8, frameon=False,
                      title="hatched band: 95% CI", title_fontsize=8)


def _save_figure(figure, title: str, width: float, path: Path) -> Path:
    """Title the figure, save it as ``path`` and close it."""
    import matplotlib.pyplot as plt

    figure.suptitle(_wrapped(title, width), fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _plot_curves(env: str, groups: list[Group], path: Path, reps: int, cache: dict) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for title, candidates in CURVE_PANELS.items():
        metric = next((m for m in candidates if any(m in cache[run.path] for g in groups for run in g.ok)), None)
        if metric is not None:
            panels.append((title, metric))
    if not panels:
        return None
    width = 5.2 * len(panels)
    figure, axes = plt.subplots(1, len(panels), figsize=(width, 4.6), squeeze=False)
    handles = {}
    for axis, (title, metric) in zip(axes[0], panels):
        for index, group in enumerate(groups):
            band = _curve_band(group.ok, metric, reps, cache)
            if band is None:
                continue
            steps, point, low, high, count = band
            colour, hatch, dash = _LOOKS[index % len(_LOOKS)]
            line, = axis.plot(steps, point, color=colour, linestyle=dash, linewidth=1.8, label=f"{group.agent} (n={count})")
            _hatched_band(axis, steps, low, high, colour, hatch)
            handles.setdefault(line.get_label(), line)
        axis.set(xlabel="env steps", ylabel=f"{metric} (IQM over seeds)", title=title)
        axis.grid(alpha=0.3)
    _legend_below(figure, handles, width)
    return _save_figure(figure, f"{env}: IQM with 95% stratified-bootstrap CI band", width, path)


def _plot_final(env: str, rows: list[tuple[str, dict[str, dict]]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in MAIN_METRICS if any(m in stats for _, stats in rows)][:4]
    if not metrics:
        return None
    height = 2.0 + 0.45 * len(rows)
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), height), squeeze=False)
    labels = [agent for agent, _ in rows]
    for axis, metric in zip(axes[0], metrics):
        for index, (agent, stats) in enumerate(rows):
            if metric not in stats:
                continue
            s = stats[metric]
            axis.errorbar([s["iqm"]], [index], xerr=[[s["iqm"] - s["ci_low"]], [s["ci_high"] - s["iqm"]]],
                          fmt="o", color=f"C{index % 10}", capsize=4, label=agent)
        axis.set_yticks(range(len(labels)), labels if axis is axes[0][0] else [""] * len(labels), fontsize=8)
        axis.set_ylim(-0.7, len(labels) - 0.3)
        axis.invert_yaxis()
        axis.set(xlabel="final value: IQM, 95% CI", title=metric)
        axis.grid(alpha=0.3, axis="x")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="agent", title_fontsize=8)
    return _save_figure(figure, f"{env}: final metrics over seeds", 4.4 * len(metrics), path)


# --- the report -------------------------------------------------------------------------------
@dataclass
class Report:
    directory: Path
    markdown: Path
    csv: Path
    runs_csv: Path
    plots: list[Path]
    table: list[dict]  # the rows of final_metrics.csv
    text: str


def _improvement_table(rows: list[dict]) -> list[str]:
    agents = list(dict.fromkeys([r["x"] for r in rows] + [r["y"] for r in rows]))
    cell = {(r["x"], r["y"]): r["p_x_better"] for r in rows}
    lines = ["| P(row > column) | " + " | ".join(agents) + " |", "|---|" + "---|" * len(agents)]
    for x in agents:
        lines.append(f"| {x} | " + " | ".join("–" if x == y else f"{cell[(x, y)]:.2f}" if (x, y) in cell else ""
                                             for y in agents) + " |")
    return lines


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def _improvement_rows(env: str, tasks_of: dict[str, list[np.ndarray]], metric: str, reps: int) -> list[dict]:
    """P(X better than Y) on ``metric`` for every ordered pair of agents with runs on every task,
    with a 95% CI from a stratified bootstrap of both agents' runs (rliable's procedure)."""
    higher = metric not in LOWER_IS_BETTER
    rows, agents = [], list(tasks_of)
    rng = np.random.default_rng(0)
    for x in agents:
        for y in agents:
            if x == y:
                continue
            xs, ys = tasks_of[x], tasks_of[y]
            point = probability_of_improvement(xs, ys, higher)
            draws = [probability_of_improvement([t[rng.integers(0, len(t), len(t))] for t in xs],
                                                [t[rng.integers(0, len(t), len(t))] for t in ys], higher)
                     for _ in range(max(100, reps // 10))]
            low, high = np.percentile(draws, [2.5, 97.5])
            rows.append({"env": env, "metric": metric, "x": x, "y": y, "p_x_better": point,
                         "ci_low": float(low), "ci_high": float(high),
                         "runs_x": int(sum(len(t) for t in xs)), "runs_y": int(sum(len(t) for t in ys))})
    return rows


def _plot_profiles(env: str, tasks_by_metric: dict[str, dict[str, list[np.ndarray]]], path: Path, reps: int) -> Path | None:
    """Performance profiles (run-score distributions) of up to two main metrics, with 95% CI bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in tasks_by_metric if len(tasks_by_metric[m]) >= 1][:2]
    if not metrics:
        return None
    width = 5.2 * len(metrics)
    figure, axes = plt.subplots(1, len(metrics), figsize=(width, 4.4), squeeze=False)
    handles = {}
    rng = np.random.default_rng(0)
    for axis, metric in zip(axes[0], metrics):
        higher = metric not in LOWER_IS_BETTER
        values = np.concatenate([np.concatenate(t) for t in tasks_by_metric[metric].values()])
        taus = np.linspace(values.min(), values.max(), 60) if values.max() > values.min() else np.array([values.min()])
        for index, (agent, tasks) in enumerate(tasks_by_metric[metric].items()):
            colour, hatch, dash = _LOOKS[index % len(_LOOKS)]
            profile = performance_profile(tasks, taus, higher)
            draws = np.array([performance_profile([t[rng.integers(0, len(t), len(t))] for t in tasks], taus, higher)
                              for _ in range(max(100, reps // 10))])
            low, high = np.percentile(draws, [2.5, 97.5], axis=0)
            line, = axis.plot(taus, profile, color=colour, linestyle=dash, linewidth=1.8,
                              label=f"{agent} (n={sum(len(t) for t in tasks)})")
            _hatched_band(axis, taus, low, high, colour, hatch)
            handles.setdefault(line.get_label(), line)
        axis.set(xlabel=f"threshold tau on final {metric}",
                 ylabel=f"share of runs with score {'>' if higher else '<='} tau", ylim=(-0.02, 1.02), title=metric)
        axis.grid(alpha=0.3)
    _legend_below(figure, handles, width)
    return _save_figure(figure, f"{env}: performance profiles (run-score distributions, rliable)", width, path)


def _graph_rows(groups: list[Group], limit: int = 4) -> list[tuple[str, list[tuple[str, dict]]]]:
    """(agent, [(seed label, final structure snapshot)]) of the groups whose runs kept graphs."""
    from causalrl.experiment.figures.graphs import HISTORY_FILE, read_history

    rows = []
    for group in groups:
        runs = []
        for run in sorted(group.ok, key=lambda r: _canonical(r.seed))[:limit]:
            if (run.path / HISTORY_FILE).is_file():
                try:
                    runs.append((f"seed {run.seed}", read_history(run.path)[-1]))
                except ValueError:
                    continue
        if runs:
            rows.append((group.agent, runs))
    return rows


def write_report(dirs: list[str | Path], out: str | Path | None = None, reps: int = 2000,
                 progress: bool = False) -> Report:
    """Find the runs under ``dirs``, write report.md, final_metrics.csv, runs.csv,
    probability_of_improvement.csv and the PNGs into ``out`` (default: ``DIR/report`` for one
    DIR, else ``./report``) and return them. ``progress`` shows a progress bar (stderr)."""
    if reps < 100:
        raise ConfigError(f"--reps: use at least 100 bootstrap replicates, got {reps}")
    runs = find_runs(dirs)
    if not runs:
        raise ConfigError(f"report: no run directories (folders with config.yaml) under {', '.join(map(str, dirs))}")
    out = Path(out) if out is not None else (Path(dirs[0]) / "report" if len(dirs) == 1 else Path("report"))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; give a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    cache = {run.path: run.curves() for run in runs if run.status == "ok"}
    env_names = list(dict.fromkeys(group.env for group in groups))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(groups) + len(env_names), desc="report", unit="step", disable=not progress, leave=False)

    table: list[dict] = []
    per_env: dict[str, list[tuple[str, dict[str, dict]]]] = {}
    for group in groups:
        stats = {}
        for metric in _metrics_of(group.ok):
            values = np.array([run.final[metric] for run in group.ok if metric in run.final])
            if values.size:
                stats[metric] = _final_stats([values], reps)
                table.append({"agent": group.agent, "env": group.env, "metric": metric, **stats[metric]})
        per_env.setdefault(group.env, []).append((group.agent, stats))
        bar.update(1)

    # across envs: the IQM of all runs of an agent, bootstrap stratified by env (rliable's aggregate)
    envs = list(per_env)
    pooled: dict[str, dict[str, dict]] = {}
    if len(envs) > 1:
        by_agent: dict[str, list[Group]] = {}
        for group in groups:
            by_agent.setdefault(group.agent, []).append(group)
        for agent, agent_groups in by_agent.items():
            for metric in _metrics_of([run for g in agent_groups for run in g.ok]):
                tasks = [np.array([r.final[metric] for r in g.ok if metric in r.final]) for g in agent_groups]
                tasks = [task for task in tasks if task.size]
                if tasks:
                    pooled.setdefault(agent, {})[metric] = stats = _final_stats(tasks, reps)
                    table.append({"agent": agent, "env": f"(all envs: {len(tasks)})", "metric": metric, **stats})

    columns = ["agent", "env", "metric", "runs", "mean", "std", "median", "iqm", "ci_low", "ci_high"]
    _write_csv(out / "final_metrics.csv", columns, table)
    run_rows = []
    for group in groups:
        for run in group.runs:
            base = {"agent": group.agent, "env": group.env, "seed": run.seed, "status": run.status,
                    "error": run.error, "run_dir": str(run.path)}
            if run.final:
                run_rows += [{**base, "metric": key, "value": value} for key, value in sorted(run.final.items())]
            else:
                run_rows.append({**base, "metric": "", "value": ""})
    _write_csv(out / "runs.csv", ["agent", "env", "seed", "status", "error", "run_dir", "metric", "value"], run_rows)

    # rliable's probability of improvement and performance profiles, per env (tasks: that env)
    # and across envs (tasks: the envs every compared agent ran)
    improvement: list[dict] = []
    tasks_per_env: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {}
    for env in per_env:
        for metric in [m for m in MAIN_METRICS if any(m in stats for _, stats in per_env[env])]:
            tasks_of = {}
            for group in (g for g in groups if g.env == env):
                values = np.array([run.final[metric] for run in group.ok if metric in run.final])
                if values.size:
                    tasks_of[group.agent] = [values]
            tasks_per_env.setdefault(env, {})[metric] = tasks_of
    for env, by_metric in tasks_per_env.items():
        for metric, tasks_of in list(by_metric.items())[:2]:
            if len(tasks_of) > 1:
                improvement += _improvement_rows(env, tasks_of, metric, reps)
    if len(per_env) > 1:
        for metric in [m for m in MAIN_METRICS if any(m in by for by in tasks_per_env.values())][:2]:
            agents = [a for a in dict.fromkeys(a for by in tasks_per_env.values() for a in by.get(metric, {}))
                      if all(a in by.get(metric, {}) for by in tasks_per_env.values())]
            if len(agents) > 1:
                pooled_tasks = {a: [by[metric][a][0] for by in tasks_per_env.values()] for a in agents}
                improvement += _improvement_rows(f"(all envs: {len(per_env)})", pooled_tasks, metric, reps)
    _write_csv(out / "probability_of_improvement.csv",
               ["env", "metric", "x", "y", "p_x_better", "ci_low", "ci_high", "runs_x", "runs_y"], improvement)

    from causalrl.experiment.figures.graphs import plot_graph_grid

    plots, env_plots = [], {}
    for env, rows in per_env.items():
        env_groups = [g for g in groups if g.env == env]
        key = env_groups[0].env_key
        by_metric = {m: t for m, t in tasks_per_env.get(env, {}).items() if t}
        made = (_plot_curves(env, env_groups, out / _plot_name("curves", env, key), reps, cache),
                _plot_final(env, [r for r in rows if r[1]], out / _plot_name("final", env, key)),
                _plot_profiles(env, dict(list(by_metric.items())[:2]), out / _plot_name("profiles", env, key), reps),
                plot_graph_grid(_graph_rows(env_groups), out / _plot_name("graphs", env, key),
                                title=f"{env}: learned graphs (final) against the true ones, one row per agent"))
        env_plots[env] = [plot for plot in made if plot is not None]
        plots += env_plots[env]
        bar.update(1)
    bar.close()

    counts = {status: sum(1 for run in runs if run.status == status)
              for status in ("ok", "failed", "unfinished", "duplicate")}
    md = ["# causalrl report", "",
          f"Sources: {', '.join(f'`{d}`' for d in dirs)}. Runs: {len(runs)} "
          f"({counts['ok']} complete, {counts['failed']} failed, {counts['unfinished']} unfinished"
          + (f", {counts['duplicate']} duplicated seeds collapsed" if counts["duplicate"] else "") + ").", "",
          f"Cells: interquartile mean (IQM) of the final value over seeds, with a 95% percentile "
          f"stratified-bootstrap confidence interval ({reps} replicates) in brackets. Every metric, with "
          f"mean, std and median, is in `final_metrics.csv`; every run in `runs.csv`.", ""]
    if any(_phase(run) == "held-out" for run in runs):
        md += ["Tune directory: held-out runs (`phase=held-out`) are reported apart from the search runs "
               "(`phase=search`); search values are biased by the selection, held-out ones are not.", ""]
    text = []
    for env, rows in per_env.items():
        metrics = [m for m in MAIN_METRICS if any(m in stats for _, stats in rows)]
        md += [f"## {env}", "", "| agent | runs | " + " | ".join(metrics) + " |",
               "|---|---|" + "---|" * len(metrics)]
        text.append(env)
        for agent, stats in rows:
            group = next(g for g in groups if g.agent == agent and g.env == env)
            left_out = sum(1 for run in group.runs if run.status in ("failed", "unfinished"))
            duplicates = sum(1 for run in group.runs if run.status == "duplicate")
            runs_cell = (f"{len(group.ok)}" + (f" (+{left_out} failed/unfinished)" if left_out else "")
                         + (f" (+{duplicates} duplicated seeds, collapsed)" if duplicates else ""))
            md.append(f"| {agent} | {runs_cell} | " + " | ".join(_cell(stats.get(m)) for m in metrics) + " |")
            if metrics:
                text.append(f"  {agent:<40} n={len(group.ok):<3} {metrics[0]} IQM {_cell(stats.get(metrics[0]))}")
        env_improvement = [r for r in improvement if r["env"] == env]
        if env_improvement:
            md += ["", "Probability of improvement, P(row better than column) on "
                   f"`{env_improvement[0]['metric']}` (rliable; 0.5 = no difference), 95% CI in "
                   "`probability_of_improvement.csv`:", ""]
            md += _improvement_table([r for r in env_improvement if r["metric"] == env_improvement[0]["metric"]])
        md += [""] + [f"![{p.stem}]({p.name})" for p in env_plots.get(env, [])] + [""]
    if pooled:
        metrics = [m for m in MAIN_METRICS if any(m in stats for stats in pooled.values())]
        md += ["## Across envs", "", "IQM over all runs of each agent, bootstrap stratified by env.", "",
               "| agent | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        md += [f"| {agent} | " + " | ".join(_cell(stats.get(m)) for m in metrics) + " |" for agent, stats in pooled.items()]
        md.append("")
    collapsed = [(group, kept, dropped) for group in groups for kept, dropped in group.duplicates]
    if collapsed:
        md += ["## Duplicated seeds (collapsed)", "",
               "These runs repeat the config and seed of a newer complete run; each seed counts once, so only "
               "the newest run of a seed enters the statistics.", "",
               "| agent | env | seed | kept | left out | same final metrics |", "|---|---|---|---|---|---|"]
        for group, kept, dropped in collapsed:
            same = all(run.final == kept.final for run in dropped)
            md.append(f"| {group.agent} | {group.env} | {kept.seed} | `{kept.path.name}` | "
                      f"{', '.join(f'`{run.path.name}`' for run in dropped)} | {'yes' if same else 'no'} |")
        md.append("")
        text.append(f"duplicated seeds collapsed: {sum(len(d) for _, _, d in collapsed)} runs left out")
    failed = [run for run in runs if run.status == "failed"]
    if failed:
        md += ["## Failed runs", "", "| run | agent | env | seed | error |", "|---|---|---|---|---|"]
        for group in groups:
            for run in group.runs:
                if run.status == "failed":
                    md.append(f"| `{run.path.name}` | {group.agent} | {group.env} | {run.seed} | {run.error.replace('|', '/')} |")
        md.append("")
        text.append(f"failed runs: {len(failed)}")
        text += [f"  {run.path.name}: {run.error}" for run in failed]
    unfinished = [run for run in runs if run.status == "unfinished"]
    if unfinished:
        md += ["## Unfinished runs", "", "No complete summary.json (still running or killed; continue one with "
               "`causalrl run --resume RUN_DIR`):", ""]
        md += [f"- `{run.path}`" for run in unfinished] + [""]
        text.append(f"unfinished runs: {len(unfinished)}")
    (out / "report.md").write_text("\n".join(md))
    return Report(out, out / "report.md", out / "final_metrics.csv", out / "runs.csv", plots, table, "\n".join(text))
