"""``causalrl report``: aggregate run directories (one run, a sweep, several sweeps) into tables
and plots, rliable-style (Agarwal et al. 2021): interquartile means (IQM) over seeds with 95%
stratified-bootstrap confidence intervals (``causalrl.core.stats``).

Runs are found and grouped per agent x env by :mod:`causalrl.experiment.analysis.runs` (which
says what an agent and an env are, how seed-tied env arguments, tune phases and re-run seeds are
treated); the figures are :mod:`causalrl.experiment.analysis.figures`.

Writes into the output folder:

    report.md            per env: one row per agent, IQM [95% CI] of the main final metrics;
                         across envs (when there are several): the IQM pooled over envs with
                         the bootstrap stratified by env; failed runs with their error lines
    final_metrics.csv    agent, env, metric, runs, mean, std, median, iqm, ci_low, ci_high
                         (every numeric final metric; env "(all envs)" rows for the pooled IQM)
    runs.csv             tidy long table: one row per run and final metric (status, error, seed)
    probability_of_improvement.csv   per env (and across envs): P(X better than Y) for every pair of
                         agents on each main metric, with a 95% stratified-bootstrap CI
    references__<env>__<id>.png   RLIF-family runs: learner-alone return with horizontal lines for the
                         acting expert, the judge and a task-reward SAC of the same budget
                         (:mod:`causalrl.experiment.analysis.references`)
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
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from causalrl.core.stats import iqm, probability_of_improvement, stratified_bootstrap_ci
from causalrl.experiment.analysis.discovery import causal_part_rows, causal_parts_markdown
from causalrl.experiment.analysis.figures import graph_rows, plot_curves, plot_file_name, plot_final, plot_profiles
from causalrl.experiment.analysis.references import plot_references, reference_rows, rlif_references
from causalrl.experiment.analysis.runs import (
    LOWER_IS_BETTER,
    MAIN_METRICS,
    Group,
    RunRecord,
    find_runs,
    group_runs,
    tune_phase,
)
from causalrl.experiment.config import ConfigError
from causalrl.experiment.figures.graphs import plot_graph_grid

__all__ = ["Report", "write_report", "write_csv", "format_number", "output_folder"]

#: stats of one agent's final metric: {metric: {runs, mean, std, median, iqm, ci_low, ci_high}}
Stats = dict[str, dict]


@dataclass
class Report:
    directory: Path
    markdown: Path
    csv: Path
    runs_csv: Path
    plots: list[Path]
    table: list[dict]  # the rows of final_metrics.csv
    text: str


# --- small shared helpers ----------------------------------------------------------------------
def format_number(value: float) -> str:
    """Four significant digits, as every table of the analysis shows numbers."""
    return f"{value:.4g}"


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """``rows`` as a CSV file with a header of ``columns``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def output_folder(dirs: list[str | Path], out: str | Path | None, name: str) -> Path:
    """``out`` (default: ``DIR/<name>`` for one DIR, else ``./<name>``), created."""
    out = Path(out) if out is not None else (Path(dirs[0]) / name if len(dirs) == 1 else Path(name))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; give a folder for the {name}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _cell(stats: dict | None) -> str:
    if stats is None:
        return "–"
    if stats["runs"] == 1:
        return f"{format_number(stats['iqm'])} (1 run)"
    return f"{format_number(stats['iqm'])} [{format_number(stats['ci_low'])}, {format_number(stats['ci_high'])}]"


# --- statistics -------------------------------------------------------------------------------
def _final_stats(tasks: list[np.ndarray], reps: int) -> dict:
    pooled = np.concatenate(tasks)
    point, low, high = stratified_bootstrap_ci(tasks, iqm, reps=reps, seed=0)
    return {"runs": int(pooled.size), "mean": float(pooled.mean()), "std": float(pooled.std(ddof=1)) if pooled.size > 1 else 0.0,
            "median": float(np.median(pooled)), "iqm": point, "ci_low": low, "ci_high": high}


def _metrics_of(runs: list[RunRecord]) -> list[str]:
    names = sorted({key for run in runs for key in run.final if key != "time/steps"})
    return [m for m in MAIN_METRICS if m in names] + [m for m in names if m not in MAIN_METRICS]


def _final_table(groups: list[Group], reps: int, bar) -> tuple[list[dict], dict[str, list[tuple[str, Stats]]]]:
    """The rows of final_metrics.csv per group, and env -> [(agent, stats)]."""
    table: list[dict] = []
    per_env: dict[str, list[tuple[str, Stats]]] = {}
    for group in groups:
        stats = {}
        for metric in _metrics_of(group.ok):
            values = np.array([run.final[metric] for run in group.ok if metric in run.final])
            if values.size:
                stats[metric] = _final_stats([values], reps)
                table.append({"agent": group.agent, "env": group.env, "metric": metric, **stats[metric]})
        per_env.setdefault(group.env, []).append((group.agent, stats))
        bar.update(1)
    return table, per_env


def _pooled_table(groups: list[Group], reps: int, table: list[dict]) -> dict[str, Stats]:
    """Across envs: the IQM of all runs of an agent, bootstrap stratified by env (rliable's
    aggregate); appends the "(all envs: k)" rows to ``table``."""
    pooled: dict[str, Stats] = {}
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
    return pooled


def _run_rows(groups: list[Group]) -> list[dict]:
    """The rows of runs.csv: one per run and final metric (one with no metric for runs without)."""
    rows = []
    for group in groups:
        for run in group.runs:
            base = {"agent": group.agent, "env": group.env, "seed": run.seed, "status": run.status,
                    "error": run.error, "run_dir": str(run.path)}
            if run.final:
                rows += [{**base, "metric": key, "value": value} for key, value in sorted(run.final.items())]
            else:
                rows.append({**base, "metric": "", "value": ""})
    return rows


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


def _tasks_per_env(groups: list[Group], per_env: dict) -> dict[str, dict[str, dict[str, list[np.ndarray]]]]:
    """env -> main metric -> agent -> [final values] (one task: that env)."""
    tasks_per_env: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {}
    for env in per_env:
        for metric in [m for m in MAIN_METRICS if any(m in stats for _, stats in per_env[env])]:
            tasks_of = {}
            for group in (g for g in groups if g.env == env):
                values = np.array([run.final[metric] for run in group.ok if metric in run.final])
                if values.size:
                    tasks_of[group.agent] = [values]
            tasks_per_env.setdefault(env, {})[metric] = tasks_of
    return tasks_per_env


def _improvement(tasks_per_env: dict, n_envs: int, reps: int) -> list[dict]:
    """rliable's probability of improvement on the first two main metrics, per env (tasks: that
    env) and across envs (tasks: the envs every compared agent ran)."""
    improvement: list[dict] = []
    for env, by_metric in tasks_per_env.items():
        for metric, tasks_of in list(by_metric.items())[:2]:
            if len(tasks_of) > 1:
                improvement += _improvement_rows(env, tasks_of, metric, reps)
    if n_envs > 1:
        for metric in [m for m in MAIN_METRICS if any(m in by for by in tasks_per_env.values())][:2]:
            agents = [a for a in dict.fromkeys(a for by in tasks_per_env.values() for a in by.get(metric, {}))
                      if all(a in by.get(metric, {}) for by in tasks_per_env.values())]
            if len(agents) > 1:
                pooled_tasks = {a: [by[metric][a][0] for by in tasks_per_env.values()] for a in agents}
                improvement += _improvement_rows(f"(all envs: {n_envs})", pooled_tasks, metric, reps)
    return improvement


# --- figures ----------------------------------------------------------------------------------
def _plots(groups: list[Group], per_env: dict, tasks_per_env: dict, out: Path, reps: int, cache: dict,
           bar, references: dict) -> dict[str, list[Path]]:
    """env -> the figures drawn for it (learner-alone return with its references for RLIF-family
    runs, curves, final metrics, profiles, learned graphs)."""
    env_plots = {}
    for env, rows in per_env.items():
        env_groups = [g for g in groups if g.env == env]
        key = env_groups[0].env_key
        by_metric = {m: t for m, t in tasks_per_env.get(env, {}).items() if t}
        made = (references.get(env) and plot_references(env, env_groups, references[env],
                                                        out / plot_file_name("references", env, key), reps, cache),
                plot_curves(env, env_groups, out / plot_file_name("curves", env, key), reps, cache),
                plot_final(env, [r for r in rows if r[1]], out / plot_file_name("final", env, key)),
                plot_profiles(env, dict(list(by_metric.items())[:2]), out / plot_file_name("profiles", env, key), reps),
                plot_graph_grid(graph_rows(env_groups), out / plot_file_name("graphs", env, key),
                                title=f"{env}: learned graphs (final) against the true ones, one row per agent and mechanism"))
        env_plots[env] = [plot for plot in made if plot is not None]
        bar.update(1)
    return env_plots


# --- report.md --------------------------------------------------------------------------------
def _improvement_table(rows: list[dict]) -> list[str]:
    agents = list(dict.fromkeys([r["x"] for r in rows] + [r["y"] for r in rows]))
    cell = {(r["x"], r["y"]): r["p_x_better"] for r in rows}
    lines = ["| P(row > column) | " + " | ".join(agents) + " |", "|---|" + "---|" * len(agents)]
    for x in agents:
        lines.append(f"| {x} | " + " | ".join("–" if x == y else f"{cell[(x, y)]:.2f}" if (x, y) in cell else ""
                                             for y in agents) + " |")
    return lines


def _md_header(dirs: list, runs: list[RunRecord], reps: int) -> list[str]:
    counts = {status: sum(1 for run in runs if run.status == status)
              for status in ("ok", "failed", "unfinished", "duplicate")}
    md = ["# causalrl report", "",
          f"Sources: {', '.join(f'`{d}`' for d in dirs)}. Runs: {len(runs)} "
          f"({counts['ok']} complete, {counts['failed']} failed, {counts['unfinished']} unfinished"
          + (f", {counts['duplicate']} duplicated seeds collapsed" if counts["duplicate"] else "") + ").", "",
          f"Cells: interquartile mean (IQM) of the final value over seeds, with a 95% percentile "
          f"stratified-bootstrap confidence interval ({reps} replicates) in brackets. Every metric, with "
          f"mean, std and median, is in `final_metrics.csv`; every run in `runs.csv`.", ""]
    if any(tune_phase(run.path) == "held-out" for run in runs):
        md += ["Tune directory: held-out runs (`phase=held-out`) are reported apart from the search runs "
               "(`phase=search`); search values are biased by the selection, held-out ones are not.", ""]
    return md


def _md_env(env: str, rows: list[tuple[str, Stats]], groups: list[Group], improvement: list[dict],
            plots: list[Path], references: list | None = None) -> tuple[list[str], list[str]]:
    """One env's section of report.md and its lines of the terminal text."""
    metrics = [m for m in MAIN_METRICS if any(m in stats for _, stats in rows)]
    budgets = {agent: _budget(next(g for g in groups if g.agent == agent and g.env == env)) for agent, _ in rows}
    steps = len(set(budgets.values())) > 1  # agents trained for different budgets: a column says which
    md = [f"## {env}", "", "| agent | runs | " + ("total_steps | " if steps else "") + " | ".join(metrics) + " |",
          "|---|---|" + ("---|" if steps else "") + "---|" * len(metrics)]
    text = [env]
    for agent, stats in rows:
        group = next(g for g in groups if g.agent == agent and g.env == env)
        left_out = sum(1 for run in group.runs if run.status in ("failed", "unfinished"))
        duplicates = sum(1 for run in group.runs if run.status == "duplicate")
        runs_cell = (f"{len(group.ok)}" + (f" (+{left_out} failed/unfinished)" if left_out else "")
                     + (f" (+{duplicates} duplicated seeds, collapsed)" if duplicates else ""))
        md.append(f"| {agent} | {runs_cell} | " + (f"{budgets[agent]} | " if steps else "")
                  + " | ".join(_cell(stats.get(m)) for m in metrics) + " |")
        if metrics:
            text.append(f"  {agent:<40} n={len(group.ok):<3} {metrics[0]} IQM {_cell(stats.get(metrics[0]))}")
    md += reference_rows(references, metrics, steps)  # RLIF-family runs: acting expert, judge, task-reward SAC
    env_improvement = [r for r in improvement if r["env"] == env]
    if env_improvement:
        md += ["", "Probability of improvement, P(row better than column) on "
               f"`{env_improvement[0]['metric']}` (rliable; 0.5 = no difference), 95% CI in "
               "`probability_of_improvement.csv`:", ""]
        md += _improvement_table([r for r in env_improvement if r["metric"] == env_improvement[0]["metric"]])
    md += [""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    return md, text


def _budget(group: Group) -> str:
    """The ``total_steps`` of a group's runs (several, comma-separated, when they differ)."""
    values = sorted({run.config.get("total_steps") for run in group.runs}, key=str)
    return ", ".join(f"{value:,}" if isinstance(value, int) else str(value) for value in values)


def _md_pooled(pooled: dict[str, Stats]) -> list[str]:
    if not pooled:
        return []
    metrics = [m for m in MAIN_METRICS if any(m in stats for stats in pooled.values())]
    md = ["## Across envs", "", "IQM over all runs of each agent, bootstrap stratified by env.", "",
          "| agent | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    md += [f"| {agent} | " + " | ".join(_cell(stats.get(m)) for m in metrics) + " |" for agent, stats in pooled.items()]
    return md + [""]


def _md_duplicates(groups: list[Group]) -> tuple[list[str], list[str]]:
    collapsed = [(group, kept, dropped) for group in groups for kept, dropped in group.duplicates]
    if not collapsed:
        return [], []
    md = ["## Duplicated seeds (collapsed)", "",
          "These runs repeat the config and seed of a newer complete run; each seed counts once, so only "
          "the newest run of a seed enters the statistics.", "",
          "| agent | env | seed | kept | left out | same final metrics |", "|---|---|---|---|---|---|"]
    for group, kept, dropped in collapsed:
        same = all(run.final == kept.final for run in dropped)
        md.append(f"| {group.agent} | {group.env} | {kept.seed} | `{kept.path.name}` | "
                  f"{', '.join(f'`{run.path.name}`' for run in dropped)} | {'yes' if same else 'no'} |")
    md.append("")
    return md, [f"duplicated seeds collapsed: {sum(len(d) for _, _, d in collapsed)} runs left out"]


def _md_failed_and_unfinished(runs: list[RunRecord], groups: list[Group]) -> tuple[list[str], list[str]]:
    md, text = [], []
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
    return md, text


# --- the report -------------------------------------------------------------------------------
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
    out = output_folder(dirs, out, "report")
    groups = group_runs(runs, budget_apart=False)  # agents of different budgets share an env's table
    cache = {run.path: run.curves() for run in runs if run.status == "ok"}
    env_names = list(dict.fromkeys(group.env for group in groups))
    bar = tqdm(total=len(groups) + len(env_names), desc="report", unit="step", disable=not progress, leave=False)

    table, per_env = _final_table(groups, reps, bar)
    pooled = _pooled_table(groups, reps, table) if len(per_env) > 1 else {}
    write_csv(out / "final_metrics.csv",
              ["agent", "env", "metric", "runs", "mean", "std", "median", "iqm", "ci_low", "ci_high"], table)
    write_csv(out / "runs.csv", ["agent", "env", "seed", "status", "error", "run_dir", "metric", "value"],
              _run_rows(groups))
    tasks_per_env = _tasks_per_env(groups, per_env)
    improvement = _improvement(tasks_per_env, len(per_env), reps)
    write_csv(out / "probability_of_improvement.csv",
              ["env", "metric", "x", "y", "p_x_better", "ci_low", "ci_high", "runs_x", "runs_y"], improvement)
    references = {env: rlif_references([g for g in groups if g.env == env], groups, reps) for env in per_env}
    env_plots = _plots(groups, per_env, tasks_per_env, out, reps, cache, bar, references)
    bar.close()

    md, text = _md_header(dirs, runs, reps), []
    for env, rows in per_env.items():
        env_md, env_text = _md_env(env, rows, groups, improvement, env_plots.get(env, []), references[env])
        md, text = md + env_md, text + env_text
    md += _md_pooled(pooled) + causal_parts_markdown(causal_part_rows(groups))
    for section_md, section_text in (_md_duplicates(groups), _md_failed_and_unfinished(runs, groups)):
        md, text = md + section_md, text + section_text
    (out / "report.md").write_text("\n".join(md))
    plots = [plot for env in per_env for plot in env_plots[env]]
    return Report(out, out / "report.md", out / "final_metrics.csv", out / "runs.csv", plots, table, "\n".join(text))
