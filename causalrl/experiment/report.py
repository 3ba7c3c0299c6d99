"""``causalrl report``: aggregate run directories (one run, a sweep, several sweeps) into tables
and plots, rliable-style (Agarwal et al. 2021): interquartile means (IQM) over seeds with 95%
stratified-bootstrap confidence intervals (``causalrl.core.stats``).

Runs are grouped per agent x env. An agent is its name plus hyperparameters; an env is its id
plus constructor arguments and ``total_steps``. An env argument whose name contains "seed" and
equals the run's seed in every run of that env (``env.instance_seed={seed}`` in a sweep) counts
as part of the seed, so such runs form one group over random instances. Labels show only what differs between groups.

Writes into the output folder:

    report.md            per env: one row per agent, IQM [95% CI] of the main final metrics;
                         across envs (when there are several): the IQM pooled over envs with
                         the bootstrap stratified by env; failed runs with their error lines
    final_metrics.csv    agent, env, metric, runs, mean, std, median, iqm, ci_low, ci_high
                         (every numeric final metric; env "(all envs)" rows for the pooled IQM)
    runs.csv             tidy long table: one row per run and final metric (status, error, seed)
    curves__<env>.png    IQM over seeds against env steps with a 95% CI band: regret, return,
                         structure error, intervention rate (those the runs logged)
    final__<env>.png     IQM with 95% CI of the main final metrics, one row per agent
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from causalrl.core.stats import iqm, stratified_bootstrap_ci
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
    except (OSError, yaml.YAMLError) as error:
        return RunRecord(path, {}, "failed", error=f"unreadable config.yaml: {error}")
    summary_path, error_path = path / "summary.json", path / "error.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except ValueError:
            summary = {}
        if summary.get("status") == "complete":
            final = {k: float(v) for k, v in summary.get("final", {}).items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool)}
            return RunRecord(path, config, "ok", final)
    if error_path.is_file():
        try:
            error = json.loads(error_path.read_text()).get("error", "")
        except ValueError:
            error = "unreadable error.json"
        return RunRecord(path, config, "failed", error=error)
    try:  # a run the runner stopped (e.g. the NaN guard) says so in status.json
        status = json.loads((path / "status.json").read_text())
    except (OSError, ValueError):
        status = {}
    if status.get("status") == "failed":
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


def _identity(run: RunRecord, tied: set[tuple[str, str]]) -> tuple[dict, dict]:
    config = run.config
    agent = config.get("agent") or {}
    if not isinstance(agent, dict):
        agent = {"name": str(agent)}
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
    """The runs of one agent on one env."""

    agent: str
    env: str
    runs: list[RunRecord]

    @property
    def ok(self) -> list[RunRecord]:
        return [run for run in self.runs if run.status == "ok"]


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
    return [groups[key] for key in sorted(groups, key=lambda k: (k[1], k[0]))]


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
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for axis, (title, metric) in zip(axes[0], panels):
        for index, group in enumerate(groups):
            band = _curve_band(group.ok, metric, reps, cache)
            if band is None:
                continue
            steps, point, low, high, count = band
            color = f"C{index % 10}"
            axis.plot(steps, point, color=color, label=f"{group.agent} (n={count})")
            axis.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        axis.set(xlabel="env steps", ylabel=f"{metric} (IQM over seeds)", title=title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{env}: IQM with 95% stratified-bootstrap CI band")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


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
    figure.suptitle(f"{env}: final metrics over seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


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


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def write_report(dirs: list[str | Path], out: str | Path | None = None, reps: int = 2000) -> Report:
    """Find the runs under ``dirs``, write report.md, final_metrics.csv, runs.csv and the PNGs
    into ``out`` (default: ``DIR/report`` for one DIR, else ``./report``) and return them."""
    if reps < 100:
        raise ConfigError(f"--reps: use at least 100 bootstrap replicates, got {reps}")
    runs = find_runs(dirs)
    if not runs:
        raise ConfigError(f"report: no run directories (folders with config.yaml) under {', '.join(map(str, dirs))}")
    out = Path(out) if out is not None else (Path(dirs[0]) / "report" if len(dirs) == 1 else Path("report"))
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    cache = {run.path: run.curves() for run in runs if run.status == "ok"}

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

    plots = []
    for env, rows in per_env.items():
        env_groups = [g for g in groups if g.env == env]
        for plot in (_plot_curves(env, env_groups, out / f"curves__{_slug(env)}.png", reps, cache),
                     _plot_final(env, [r for r in rows if r[1]], out / f"final__{_slug(env)}.png")):
            if plot is not None:
                plots.append(plot)

    counts = {status: sum(1 for run in runs if run.status == status) for status in ("ok", "failed", "unfinished")}
    md = ["# causalrl report", "",
          f"Sources: {', '.join(f'`{d}`' for d in dirs)}. Runs: {len(runs)} "
          f"({counts['ok']} complete, {counts['failed']} failed, {counts['unfinished']} unfinished).", "",
          f"Cells: interquartile mean (IQM) of the final value over seeds, with a 95% percentile "
          f"stratified-bootstrap confidence interval ({reps} replicates) in brackets. Every metric, with "
          f"mean, std and median, is in `final_metrics.csv`; every run in `runs.csv`.", ""]
    text = []
    for env, rows in per_env.items():
        metrics = [m for m in MAIN_METRICS if any(m in stats for _, stats in rows)]
        md += [f"## {env}", "", "| agent | runs | " + " | ".join(metrics) + " |",
               "|---|---|" + "---|" * len(metrics)]
        text.append(env)
        for agent, stats in rows:
            group = next(g for g in groups if g.agent == agent and g.env == env)
            runs_cell = f"{len(group.ok)}" + (f" (+{len(group.runs) - len(group.ok)} failed/unfinished)"
                                               if len(group.runs) > len(group.ok) else "")
            md.append(f"| {agent} | {runs_cell} | " + " | ".join(_cell(stats.get(m)) for m in metrics) + " |")
            if metrics:
                text.append(f"  {agent:<40} n={len(group.ok):<3} {metrics[0]} IQM {_cell(stats.get(metrics[0]))}")
        md += [""] + [f"![{p.stem}]({p.name})" for p in plots if p.stem.endswith(_slug(env))] + [""]
    if pooled:
        metrics = [m for m in MAIN_METRICS if any(m in stats for stats in pooled.values())]
        md += ["## Across envs", "", "IQM over all runs of each agent, bootstrap stratified by env.", "",
               "| agent | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        md += [f"| {agent} | " + " | ".join(_cell(stats.get(m)) for m in metrics) + " |" for agent, stats in pooled.items()]
        md.append("")
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
