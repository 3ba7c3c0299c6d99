"""The report's figures: curves of IQM over seeds with 95% CI bands, final metrics with their
CIs, performance profiles, and the grid of learned graphs. Each reads grouped runs
(:mod:`causalrl.experiment.analysis.runs`) and draws with the figures room; matplotlib is
imported on first use (:func:`causalrl.experiment.figures.style.pyplot`).

File names are ``<kind>__<env slug>__<hash of the env's full identity>.png`` (:func:`plot_file_name`),
so two envs never share a file however alike their labels.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from causalrl.core.stats import iqm, performance_profile, stratified_bootstrap_ci
from causalrl.experiment.analysis.runs import CURVE_PANELS, LOWER_IS_BETTER, MAIN_METRICS, Group, RunRecord, canonical
from causalrl.experiment.figures.curves import regret_scale, symlog_axis
from causalrl.experiment.figures.style import LOOKS, hatched_band, legend_below, pyplot, save_figure
from causalrl.experiment.run.history import HISTORY_FILE, read_history, snapshot_structures

__all__ = ["FEW_RUNS", "few_runs_note", "plot_file_name", "plot_curves", "plot_final", "plot_profiles", "graph_rows"]

#: curves with this few logged points get markers (a short run logs one row)
_FEW_POINTS = 3


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")[:80] or "env"


def plot_file_name(kind: str, env: str, env_key: str) -> str:
    """``<kind>__<env slug>__<hash of the env's full identity>.png``: distinct for distinct envs."""
    digest = hashlib.sha1(env_key.encode()).hexdigest()[:10]
    return f"{kind}__{_slug(env)[:48]}__{digest}.png"


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


#: panel titles of curve metrics that the panel's own title would misname
_CURVE_TITLES = {"reward/cumulative": "cumulative reward"}
#: metrics that live in [0, 1]: their axes show all of it (an autoscaled 0.98-1.0 reads as a big gap)
_BOUNDED = {"regret/window_optimal_action_rate", "structure/f1", "structure/fnr", "structure/fpr", "intervention/window_rate"}
#: with this many runs or fewer, a bootstrap band of a performance profile spans most of 0-1: not drawn
FEW_RUNS = 4


def few_runs_note(runs_of: dict[str, int]) -> str:
    """A line for a legend's title naming the agents with :data:`FEW_RUNS` runs or fewer, whose
    95% CI (a bootstrap over so few runs) is a rough guide only; "" when every agent has more."""
    few = sorted(agent for agent, runs in runs_of.items() if runs <= FEW_RUNS)
    if not few:
        return ""
    return f"\nwarning: n <= {FEW_RUNS} runs for {', '.join(few)}: a 95% CI from so few runs is a rough guide; run more seeds"


def plot_curves(env: str, groups: list[Group], path: Path | None, reps: int, cache: dict):
    """IQM over seeds against env steps with a 95% CI band, one panel per :data:`CURVE_PANELS`
    entry the runs logged; ``cache`` maps a run's path to its :meth:`RunRecord.curves`. With
    ``path`` None the figure is returned unsaved."""
    panels = []
    for title, candidates in CURVE_PANELS.items():
        metric = next((m for m in candidates if any(m in cache[run.path] for g in groups for run in g.ok)), None)
        if metric is not None:
            panels.append((_CURVE_TITLES.get(metric, title), metric))
    if not panels:
        return None
    width = 5.2 * len(panels)
    figure, axes = pyplot().subplots(1, len(panels), figsize=(width, 4.6), squeeze=False)
    handles, runs_of = {}, {}
    for axis, (title, metric) in zip(axes[0], panels):
        finals = []
        for index, group in enumerate(groups):
            band = _curve_band(group.ok, metric, reps, cache)
            if band is None:
                continue
            steps, point, low, high, count = band
            finals.append(float(point[-1]))
            runs_of[group.agent] = min(count, runs_of.get(group.agent, count))
            colour, hatch, dash = LOOKS[index % len(LOOKS)]
            few = len(steps) <= _FEW_POINTS  # a line through one or two points is invisible: mark them
            line, = axis.plot(steps, point, color=colour, linestyle=dash, linewidth=1.8, label=f"{group.agent} (n={count})",
                              marker="o" if few else None, markersize=5)
            hatched_band(axis, steps, low, high, colour, hatch)
            handles.setdefault(line.get_label(), line)
        axis.set(xlabel="env steps", ylabel=f"{metric} (IQM over seeds)", title=title)
        scale, threshold = regret_scale(finals) if metric.startswith("regret/") else ("linear", None)
        if scale == "symlog":  # regrets a tenfold apart: a linear axis squashes the small ones flat
            symlog_axis(axis, threshold)
            axis.set_ylabel(f"{metric} (IQM over seeds; log scale, linear below {threshold:g})")
        if metric in _BOUNDED:
            axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    legend_below(figure, handles, width, title="hatched band: 95% CI" + few_runs_note(runs_of))
    return save_figure(figure, f"{env}: IQM with 95% stratified-bootstrap CI band", width, path)


def plot_final(env: str, rows: list[tuple[str, dict[str, dict]]], path: Path | None):
    """IQM and 95% CI of every main final metric the agents have, one panel per metric (four to a
    row), one line per agent in every panel ("no value" where an agent lacks the metric), one
    legend for all agents; ``rows`` is ``[(agent, {metric: stats with iqm, ci_low, ci_high})]``.
    With ``path`` None the figure is returned unsaved."""
    metrics = [m for m in MAIN_METRICS if any(m in stats for _, stats in rows)]
    if not metrics:
        return None
    columns = min(4, len(metrics))
    lines = -(-len(metrics) // columns)
    height = 2.0 + 0.45 * len(rows)
    figure, axes = pyplot().subplots(lines, columns, figsize=(4.4 * columns, height * lines), squeeze=False)
    labels, handles = [agent for agent, _ in rows], {}
    for position, axis in enumerate(axes.flat):
        if position >= len(metrics):
            axis.set_axis_off()
            continue
        metric = metrics[position]
        for index, (agent, stats) in enumerate(rows):
            if metric not in stats:
                axis.text(0.5, index, "no value", transform=axis.get_yaxis_transform(), ha="center", va="center",
                          fontsize=7, color="#777777")
                continue
            s = stats[metric]
            handles[agent] = axis.errorbar([s["iqm"]], [index], xerr=[[s["iqm"] - s["ci_low"]], [s["ci_high"] - s["iqm"]]],
                                           fmt="o", color=f"C{index % 10}", capsize=4, label=agent)
        axis.set_yticks(range(len(labels)), labels if position % columns == 0 else [""] * len(labels), fontsize=8)
        axis.set_ylim(-0.7, len(labels) - 0.3)
        axis.invert_yaxis()
        if metric in _BOUNDED:
            axis.set_xlim(-0.02, 1.02)
        axis.set(xlabel="final value: IQM, 95% CI", title=metric)
        axis.grid(alpha=0.3, axis="x")
    runs_of = {agent: min(s.get("runs", FEW_RUNS + 1) for s in stats.values()) for agent, stats in rows if stats}
    legend_below(figure, {agent: handles[agent] for agent in labels if agent in handles}, 4.4 * columns,
                 title="agent" + few_runs_note(runs_of))
    return save_figure(figure, f"{env}: final metrics over seeds", 4.4 * columns, path)


def _profile_steps(tasks_of: dict[str, list[np.ndarray]]) -> np.ndarray:
    """The thresholds of exact step functions: every run's value, and a margin on each side."""
    values = np.unique(np.concatenate([np.concatenate(t) for t in tasks_of.values()]))
    margin = 0.05 * (values[-1] - values[0]) if values[-1] > values[0] else max(abs(values[0]) * 0.05, 1.0)
    return np.r_[values[0] - margin, values, values[-1] + margin]


def plot_profiles(env: str, tasks_by_metric: dict[str, dict[str, list[np.ndarray]]], path: Path | None,
                  reps: int):
    """Performance profiles (run-score distributions) of up to two main metrics, drawn as the exact
    step functions they are, with 95% CI bands; ``tasks_by_metric`` is ``{metric: {agent: [final
    values of one task]}}``. Agents with :data:`FEW_RUNS` runs or fewer get no band (a bootstrap of
    so few runs spans most of 0-1), and the figure says so. With ``path`` None the figure is
    returned unsaved."""
    metrics = [m for m in tasks_by_metric if len(tasks_by_metric[m]) >= 1][:2]
    if not metrics:
        return None
    width = 5.2 * len(metrics)
    figure, axes = pyplot().subplots(1, len(metrics), figsize=(width, 4.4), squeeze=False)
    handles, few = {}, set()
    rng = np.random.default_rng(0)
    for axis, metric in zip(axes[0], metrics):
        higher = metric not in LOWER_IS_BETTER
        taus = _profile_steps(tasks_by_metric[metric])
        for index, (agent, tasks) in enumerate(tasks_by_metric[metric].items()):
            colour, hatch, dash = LOOKS[index % len(LOOKS)]
            runs = sum(len(t) for t in tasks)
            line, = axis.step(taus, performance_profile(tasks, taus, higher), where="post", color=colour, linestyle=dash,
                              linewidth=1.8, label=f"{agent} (n={runs})")
            handles.setdefault(line.get_label(), line)
            if runs <= FEW_RUNS:
                few.add(agent)
                continue
            draws = np.array([performance_profile([t[rng.integers(0, len(t), len(t))] for t in tasks], taus, higher)
                              for _ in range(max(100, reps // 10))])
            low, high = np.percentile(draws, [2.5, 97.5], axis=0)
            hatched_band(axis, taus, low, high, colour, hatch, step="post")
        axis.set(xlabel=f"threshold tau on final {metric}",
                 ylabel=f"share of runs with score {'>' if higher else '<='} tau", ylim=(-0.02, 1.02), title=metric)
        axis.grid(alpha=0.3)
    note = "hatched band: 95% CI"
    if few:  # in the legend's title: always below the panels, never over a curve
        note += (f"\nno band for {', '.join(sorted(few))}: with n <= {FEW_RUNS} runs a bootstrap band spans most of "
                 "0-1; run more seeds")
    legend_below(figure, handles, width, title=note)
    return save_figure(figure, f"{env}: performance profiles (run-score distributions, rliable)", width, path)


def graph_rows(groups: list[Group]) -> list[tuple[str, list[tuple]]]:
    """The rows of :func:`causalrl.experiment.figures.graphs.plot_graph_grid` for the groups whose
    runs kept graphs: ``(agent, [(seed label, learned, truth, reward node)])`` of every run, in seed
    order, at their last snapshot (the grid draws the first ``GRID_COLUMNS`` and counts the rest)."""
    rows = []
    for group in groups:
        runs = []
        for run in sorted(group.ok, key=lambda r: (not isinstance(r.seed, int), r.seed if isinstance(r.seed, int) else 0,
                                                   canonical(r.seed))):
            if (run.path / HISTORY_FILE).is_file():
                try:
                    runs.append((f"seed {run.seed}", *snapshot_structures(read_history(run.path)[-1])))
                except ValueError:
                    continue
        if runs:
            rows.append((group.agent, runs))
    return rows
