"""Leaderboards: every agent against one baseline, by PAIRED differences over seeds.

Runs are found and grouped as the report does (:mod:`causalrl.experiment.analysis.runs`): runs
on one env identity (env id + constructor arguments + ``total_steps``, seed-tied arguments such as
``instance_seed={seed}`` left out) form one comparison. Within it, a run of an agent and a run of
the baseline pair up when they have the same seed. A sweep seeds the world instance from the
trial seed (``env.instance_seed={seed}``), so paired runs also face the same instance: the
difference ``agent - baseline`` of a pair removes the instance-to-instance spread that unpaired
intervals carry. Runs without a partner are left out, and counted.

Per env, metric and agent:

    n pairs              seeds both the agent and the baseline finished (with the metric)
    IQM [95% CI]         the agent's own final values, all its complete runs (as in the report)
    difference [95% CI]  mean of agent - baseline over the pairs, with a percentile bootstrap
                         over pairs; bold in leaderboard.md when the interval excludes 0
                         (from two pairs on: one pair has no interval)
    P(improvement)       share of pairs where the agent is better (ties count half), oriented by
                         whether lower is better (:data:`analysis.runs.LOWER_IS_BETTER`), with
                         the same bootstrap

Every bootstrap uses seed 0, so the files are reproducible. Writes ``leaderboard.md``,
``leaderboard.csv`` (the rows) and ``leaderboard.png`` (a forest plot of the differences, one
panel per metric). See docs/reports.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causalrl.core.stats import iqm, stratified_bootstrap_ci
from causalrl.experiment.analysis.report import format_number, output_folder, write_csv
from causalrl.experiment.analysis.runs import LOWER_IS_BETTER, Group, canonical, find_runs, group_runs
from causalrl.experiment.config import ConfigError
from causalrl.experiment.figures.forest import ForestPanel, ForestRow, plot_forest
from causalrl.experiment.run.metric_names import current_name

__all__ = ["Leaderboard", "COLUMNS", "write_leaderboard"]

#: the columns of leaderboard.csv (the keys of ``Leaderboard.rows``); the baseline's own row per
#: env and metric has agent == baseline and empty pair columns
COLUMNS = ["env", "metric", "better", "agent", "baseline", "runs", "iqm", "iqm_low", "iqm_high", "n_pairs",
           "unpaired", "unpaired_agent", "unpaired_baseline", "difference", "difference_low", "difference_high",
           "significant", "p_improvement", "p_improvement_low", "p_improvement_high"]
#: fewer pairs than this get a note that the intervals are wide
FEW_PAIRS = 5


@dataclass
class Leaderboard:
    """What :func:`write_leaderboard` wrote: the folder, ``leaderboard.md``, ``leaderboard.csv``,
    ``leaderboard.png`` (None when no pair was found), the rows of the CSV, and a short plain-text
    table for the terminal."""

    directory: Path
    markdown: Path
    csv: Path
    png: Path | None
    rows: list[dict]
    text: str


# --- statistics -------------------------------------------------------------------------------
def _share_better(sign: float):
    """The statistic "share of pairs where the agent is better, ties half" of differences."""
    def statistic(differences, axis=None):
        return np.mean(sign * differences > 0, axis=axis) + 0.5 * np.mean(differences == 0, axis=axis)
    return statistic


def _values_by_seed(group: Group, metric: str) -> dict[str, float]:
    """seed key -> final value of the group's complete runs that logged ``metric`` (one per seed:
    ``group_runs`` collapsed re-runs)."""
    return {canonical(run.seed): run.final[metric] for run in group.ok if metric in run.final}


def _compare(env: str, metric: str, agent: str, baseline: str, ours: dict[str, float], theirs: dict[str, float],
             reps: int) -> dict:
    """One row: the agent's IQM and its paired comparison with the baseline (``ours``, ``theirs``:
    seed key -> value)."""
    lower = metric in LOWER_IS_BETTER
    row = dict.fromkeys(COLUMNS, "")
    row.update(env=env, metric=metric, better="lower" if lower else "higher", agent=agent, baseline=baseline,
               runs=len(ours))
    if ours:
        row["iqm"], row["iqm_low"], row["iqm_high"] = stratified_bootstrap_ci([np.array(list(ours.values()))], iqm,
                                                                              reps=reps, seed=0)
    if agent == baseline:
        return row
    seeds = sorted(set(ours) & set(theirs))  # sorted: the bootstrap sees the pairs in one order
    row.update(n_pairs=len(seeds), unpaired_agent=len(set(ours) - set(theirs)),
               unpaired_baseline=len(set(theirs) - set(ours)))
    row["unpaired"] = row["unpaired_agent"] + row["unpaired_baseline"]
    if not seeds:
        row["significant"] = False
        return row
    differences = np.array([ours[seed] - theirs[seed] for seed in seeds])
    row["difference"], row["difference_low"], row["difference_high"] = stratified_bootstrap_ci(
        [differences], np.mean, reps=reps, seed=0)
    row["p_improvement"], row["p_improvement_low"], row["p_improvement_high"] = stratified_bootstrap_ci(
        [differences], _share_better(-1.0 if lower else 1.0), reps=reps, seed=0)
    row["significant"] = len(seeds) > 1 and (row["difference_low"] > 0 or row["difference_high"] < 0)
    return row


def _ranked(rows: list[dict]) -> list[dict]:
    """The baseline first, then agents by their mean difference, best first; agents without pairs last."""
    def key(row):
        if row["agent"] == row["baseline"]:
            return (0, 0.0)
        if row["difference"] == "":
            return (2, 0.0)
        return (1, row["difference"] if row["better"] == "lower" else -row["difference"])
    return sorted(rows, key=key)


def _resolve_baseline(baseline: str, groups: list[Group]) -> str:
    """The agent label the baseline names: the label itself, or an agent name that only one label has."""
    agents = list(dict.fromkeys(group.agent for group in groups))
    if baseline in agents:
        return baseline
    named = [agent for agent in agents if agent.split(" (")[0] == baseline]
    if len(named) == 1:
        return named[0]
    present = ", ".join(agents) or "none"
    why = f"several agents are named so ({', '.join(named)}); give one label" if named else "no such agent in the runs"
    raise ValueError(f"baseline {baseline!r}: {why}; agents present: {present}")


# --- text -------------------------------------------------------------------------------------
def _interval(value, low, high, signed: bool = False) -> str:
    number = (lambda v: f"{v:+.4g}") if signed else format_number
    return f"{number(value)} [{number(low)}, {number(high)}]"


def _cells(row: dict) -> tuple[str, str, str, str]:
    """(n pairs, IQM, difference, P(improvement)) cells of one row of leaderboard.md."""
    if row["runs"] == 0:
        iqm_cell = "–"
    elif row["runs"] == 1:
        iqm_cell = f"{format_number(row['iqm'])} (1 run)"
    else:
        iqm_cell = _interval(row["iqm"], row["iqm_low"], row["iqm_high"])
    if row["agent"] == row["baseline"]:
        return "(baseline)", iqm_cell, "–", "–"
    pairs = str(row["n_pairs"]) + (f" (unpaired: {row['unpaired']})" if row["unpaired"] else "")
    if row["n_pairs"] == 0:
        return pairs, iqm_cell, "– (no pairs)", "–"
    if row["n_pairs"] == 1:
        return pairs, iqm_cell, f"{row['difference']:+.4g} (1 pair)", f"{row['p_improvement']:.2f} (1 pair)"
    difference = _interval(row["difference"], row["difference_low"], row["difference_high"], signed=True)
    probability = f"{row['p_improvement']:.2f} [{row['p_improvement_low']:.2f}, {row['p_improvement_high']:.2f}]"
    return pairs, iqm_cell, f"**{difference}**" if row["significant"] else difference, probability


def _md_table(metric: str, rows: list[dict], baseline: str) -> list[str]:
    better = rows[0]["better"]
    md = [f"### {metric} ({better} is better)", "",
          f"| agent | n pairs | IQM [95% CI] | difference vs {baseline} [95% CI] | P(improvement) [95% CI] |",
          "|---|---|---|---|---|"]
    md += [f"| {row['agent']} | " + " | ".join(_cells(row)) + " |" for row in rows]
    few = sorted({row["n_pairs"] for row in rows if row["agent"] != baseline and 0 < row["n_pairs"] < FEW_PAIRS})
    if few:
        md += ["", f"n = {', '.join(map(str, few))}: the intervals are wide (fewer than {FEW_PAIRS} paired seeds)."]
    return md + [""]


def _header(title: str, command: str, baseline: str, dirs: list, runs: list, reps: int) -> list[str]:
    counts = {status: sum(1 for run in runs if run.status == status)
              for status in ("ok", "failed", "unfinished", "duplicate")}
    md = [f"# {title or 'causalrl leaderboard'}", ""]
    if command:
        md += [f"Command: `{command}`", ""]
    md += [f"Baseline: **{baseline}**. Sources: {', '.join(f'`{d}`' for d in dirs)}. Runs: {len(runs)} "
           f"({counts['ok']} complete, {counts['failed']} failed, {counts['unfinished']} unfinished"
           + (f", {counts['duplicate']} duplicated seeds collapsed" if counts["duplicate"] else "") + ").", "",
           "Pairs: a run of the agent and a run of the baseline with the same seed on the same env (a sweep "
           "seeds the world instance from the trial seed, so a pair faces one instance); runs without a partner "
           "are left out and counted as unpaired. Difference: mean of agent - baseline over the pairs. "
           "P(improvement): share of pairs where the agent is better, ties counting half. IQM: over all "
           f"complete runs of the agent. Brackets: 95% percentile bootstrap intervals ({reps} replicates, "
           "seed 0). **Bold**: the difference's interval excludes 0.", ""]
    return md


def _text_lines(env: str, metric: str, rows: list[dict]) -> list[str]:
    lines = [f"{env}  {metric} ({rows[0]['better']} is better)"]
    for row in rows:
        if row["agent"] == row["baseline"] or row["difference"] == "":
            note = "baseline" if row["agent"] == row["baseline"] else "no pairs"
            lines.append(f"  {row['agent']:<36} {note}")
            continue
        mark = " *" if row["significant"] else ""
        lines.append(f"  {row['agent']:<36} pairs {row['n_pairs']:<3} diff "
                     f"{_interval(row['difference'], row['difference_low'], row['difference_high'], signed=True)}{mark}"
                     f"  P(better) {row['p_improvement']:.2f}")
    return lines


# --- the figure -------------------------------------------------------------------------------
def _forest(rows: list[dict], metrics: list[str], baseline: str, several_envs: bool, path: Path, title: str):
    """One panel per metric, and per env when there are several: envs differ in scale (returns of
    one env can be 1,000 times another's), so each gets its own axis."""
    panels = []
    envs = list(dict.fromkeys(row["env"] for row in rows)) if several_envs else [None]
    for metric in metrics:
        for env in envs:
            paired = [row for row in rows if row["metric"] == metric and row["agent"] != baseline and row["n_pairs"]
                      and (env is None or row["env"] == env)]
            if not paired:
                continue
            name = metric if env is None else f"{env}: {metric}"
            panel = ForestPanel(name, f"agent - {baseline} (mean over paired seeds, 95% CI)", paired[0]["better"])
            panel.rows = [ForestRow(row["agent"], row["difference"], row["difference_low"], row["difference_high"],
                                    bool(row["significant"])) for row in paired]
            panels.append(panel)
    heading = f"{title}: " if title else ""
    return plot_forest(panels, path, f"{heading}paired differences against {baseline} (filled: 95% CI excludes 0)")


# --- the leaderboard --------------------------------------------------------------------------
def _check(dirs, metrics, reps: int) -> tuple[list, list[str]]:
    dirs = [dirs] if isinstance(dirs, (str, Path)) else list(dirs)
    metrics = [current_name(metric) for metric in ([metrics] if isinstance(metrics, str) else list(metrics))]
    if reps < 100:
        raise ConfigError(f"--reps: use at least 100 bootstrap replicates, got {reps}")
    if not dirs:
        raise ValueError("leaderboard: give at least one run or sweep directory")
    if not metrics:
        raise ValueError("leaderboard: metrics: give at least one final metric, e.g. regret/cumulative")
    return dirs, metrics


def write_leaderboard(dirs, out, baseline: str, metrics: list[str], reps: int = 2000, title: str = "",
                      command: str = "") -> Leaderboard:
    """Compare every agent of the runs under ``dirs`` with ``baseline`` on ``metrics`` by paired
    differences over seeds, per env (see the module docstring), and write ``leaderboard.md``,
    ``leaderboard.csv`` and ``leaderboard.png`` into ``out`` (default: ``DIR/leaderboard`` for
    one DIR, else ``./leaderboard``).

    ``baseline`` is an agent label as the report prints it (``ucb``, ``ucb (exploration=2.0)``),
    or an agent name that only one label has. ``title`` heads the files; ``command`` (the command
    line that made the runs and this leaderboard) is quoted in leaderboard.md. An unknown
    baseline, a metric no complete run logged, or no complete run at all is a ValueError.
    """
    dirs, metrics = _check(dirs, metrics, reps)
    runs = find_runs(dirs)
    groups = group_runs(runs)
    if not any(group.ok for group in groups):
        raise ValueError(f"leaderboard: no complete runs under {', '.join(map(str, dirs))}")
    baseline = _resolve_baseline(baseline, groups)
    logged = sorted({key for group in groups for run in group.ok for key in run.final})
    missing = [metric for metric in metrics if metric not in logged]
    if missing:
        raise ValueError(f"leaderboard: metrics: no complete run logged {', '.join(missing)}; "
                         f"final metrics present: {', '.join(logged)}")
    out = output_folder(dirs, out, "leaderboard")
    envs = list(dict.fromkeys(group.env for group in groups))
    sections, rows = [], []
    text = ([title] if title else []) + [f"baseline: {baseline}  (diff = agent - baseline over paired seeds; "
                                         "* = 95% CI excludes 0)"]
    for env in envs:
        env_groups = {group.agent: group for group in groups if group.env == env and group.ok}
        sections += [f"## {env}", ""]
        if baseline not in env_groups:
            sections += [f"No complete run of the baseline {baseline} on this env: nothing to compare.", ""]
            text.append(f"{env}: no complete run of the baseline")
            continue
        for metric in metrics:
            theirs = _values_by_seed(env_groups[baseline], metric)
            if not theirs:  # a metric this env does not log (e.g. a normalised score only some worlds have)
                continue
            table = _ranked([_compare(env, metric, agent, baseline, _values_by_seed(group, metric), theirs, reps)
                             for agent, group in env_groups.items()])
            sections += _md_table(metric, table, baseline)
            text += _text_lines(env, metric, table)
            rows += table
    write_csv(out / "leaderboard.csv", COLUMNS, rows)
    png = _forest(rows, metrics, baseline, len(envs) > 1, out / "leaderboard.png", title)
    if png is None:
        (out / "leaderboard.png").unlink(missing_ok=True)  # no pair to draw: no stale picture either
    figure = [f"![paired differences against {baseline}]({png.name})", ""] if png is not None else []
    header = _header(title, command, baseline, dirs, runs, reps)
    (out / "leaderboard.md").write_text("\n".join(header + figure + sections))
    return Leaderboard(out, out / "leaderboard.md", out / "leaderboard.csv", png, rows, "\n".join(text))
