"""The reference lines of an RLIF report (docs/rlif.md (e), docs/reports.md): for an env whose runs
are RLIF-family (``rlif``, ``dagger``, ``hg-dagger``, or any run with an ``env.intervention``
block), the learner-alone return (``eval/mean_reward``: the learner evaluated with the expert off)
against env steps, with horizontal lines for

- the acting expert's return and the judge's return (its mode policy): the mean over the runs of
  the ``expert_return`` / ``judge_return`` their calibration recorded in summary.json's ``judge``
  block (``causalrl.envs.calibration``: episodes played from the run's seed before training);
- a task-reward SAC trained for the same steps: the IQM [95% CI] of the final ``eval/mean_reward``
  of ``sac`` runs among the report's inputs on the same env (without the intervention block) and
  ``total_steps``.

A reference that is not there is named in the legend and in report.md's table, with what to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causalrl.core.stats import iqm, stratified_bootstrap_ci
from causalrl.experiment.analysis.figures import _curve_band, few_runs_note
from causalrl.experiment.analysis.runs import Group, RunRecord, canonical
from causalrl.experiment.figures.style import LOOKS, hatched_band, legend_below, pyplot, save_figure

__all__ = ["RLIF_FAMILY", "Y_LABEL", "Reference", "is_rlif_family", "rlif_references", "plot_references",
           "reference_rows"]

#: agents whose runs get the learner-alone return figure with reference lines
RLIF_FAMILY = {"rlif", "dagger", "hg-dagger"}
#: the figure's y axis
Y_LABEL = "learner-alone return (evaluation, expert off)"
_METRIC = "eval/mean_reward"
#: (colour, line style) of the acting expert, the judge and the task-reward SAC lines
_LINE_LOOKS = {"acting expert": ("#7F7F7F", (0, (6, 2))), "judge": ("#000000", "-"),
               "task-reward SAC": ("#8C510A", (0, (1, 1.5)))}


@dataclass
class Reference:
    """One reference line: ``value`` None when it is missing (``label`` then says why and what to run)."""

    name: str  # "acting expert", "judge" or "task-reward SAC"
    label: str
    value: float | None
    runs: int = 0


def _agent_name(run: RunRecord) -> str:
    agent = run.config.get("agent") or {}
    return str(agent.get("name") if isinstance(agent, dict) else agent)


def is_rlif_family(run: RunRecord) -> bool:
    """An RLIF, DAgger or HG-DAgger run, or any run with an ``env.intervention`` block."""
    env = run.config.get("env") or {}
    return _agent_name(run) in RLIF_FAMILY or bool(isinstance(env, dict) and env.get("intervention"))


def _judge_block(run: RunRecord) -> dict:
    try:
        judge = json.loads((run.path / "summary.json").read_text()).get("judge")
    except (OSError, ValueError, AttributeError):
        return {}
    return judge if isinstance(judge, dict) else {}


def _calibration_reference(name: str, key: str, runs: list[RunRecord]) -> Reference:
    """The mean over ``runs`` of the calibration's ``key`` return (summary.json judge block)."""
    measured = [(run.seed, block[key]) for run, block in zip(runs, map(_judge_block, runs))
                if isinstance(block.get(key), (int, float)) and np.isfinite(block[key])]
    values, seeds = [value for _, value in measured], len({canonical(seed) for seed, _ in measured})
    if not values:
        return Reference(name, f"{name}: no return recorded (summary.json judge block has no {key}: delta given, "
                               "runs older than the recorded returns, or no episode ended in the calibration steps)",
                         None)
    what = "its mode policy, " if name == "judge" else ""
    return Reference(name, f"{name} ({what}mean of {len(values)} runs' calibration episodes, {seeds} seeds): "
                           f"{np.mean(values):.4g}",
                     float(np.mean(values)), len(values))


def _plain_env(run: RunRecord) -> str:
    env = run.config.get("env") or {}
    return canonical({key: value for key, value in env.items() if key != "intervention"} if isinstance(env, dict) else env)


def _sac_reference(rlif_runs: list[RunRecord], all_groups: list[Group], reps: int) -> Reference:
    """Task-reward SAC on the same env and ``total_steps`` as ``rlif_runs`` (the largest budget)."""
    budget = max((run.config.get("total_steps") for run in rlif_runs
                  if isinstance(run.config.get("total_steps"), int)), default=None)
    envs = {_plain_env(run) for run in rlif_runs}
    candidates = [run for group in all_groups for run in group.ok
                  if _agent_name(run) == "sac" and not is_rlif_family(run) and _plain_env(run) in envs]
    values = np.array([run.final[_METRIC] for run in candidates
                       if run.config.get("total_steps") == budget and _METRIC in run.final])
    if values.size:
        point, low, high = stratified_bootstrap_ci([values], iqm, reps=reps, seed=0)
        spread = f" [{low:.4g}, {high:.4g}]" if values.size > 1 else ""
        return Reference("task-reward SAC", f"task-reward SAC, {budget:,} steps (IQM of {values.size} runs' final "
                                            f"{_METRIC}{spread}): {point:.4g}", float(point), int(values.size))
    env_id = (rlif_runs[0].config.get("env") or {}).get("id", "ID") if rlif_runs else "ID"
    others = sorted({run.config.get("total_steps") for run in candidates}, key=str)
    found = f" (found at total_steps {', '.join(map(str, others))})" if others else ""
    return Reference("task-reward SAC", f"task-reward SAC: not among the runs at {budget} steps{found}; add "
                                        f"`causalrl run expert env.id={env_id} total_steps={budget}`", None)


def rlif_references(env_groups: list[Group], all_groups: list[Group], reps: int) -> list[Reference] | None:
    """The acting expert's, the judge's and task-reward SAC's references of one env (module
    docstring); None when no run of ``env_groups`` is RLIF-family."""
    rlif_runs = [run for group in env_groups for run in group.ok if is_rlif_family(run)]
    if not any(is_rlif_family(run) for group in env_groups for run in group.runs):
        return None
    return [_calibration_reference("acting expert", "expert_return", rlif_runs),
            _calibration_reference("judge", "judge_return", rlif_runs),
            _sac_reference(rlif_runs, all_groups, reps)]


def plot_references(env: str, groups: list[Group], references: list[Reference], path: Path | None, reps: int,
                    cache: dict):
    """Learner-alone return (IQM over seeds, 95% CI band) against env steps with the references as
    horizontal lines; a missing reference is a legend entry that says so. With ``path`` None the
    figure is returned unsaved."""
    width = 7.5
    figure, axis = pyplot().subplots(figsize=(width, 4.8))
    handles, runs_of = {}, {}
    for index, group in enumerate(groups):
        band = _curve_band(group.ok, _METRIC, reps, cache)
        if band is None:
            continue
        steps, point, low, high, count = band
        runs_of[group.agent] = count
        colour, hatch, dash = LOOKS[index % len(LOOKS)]
        line, = axis.plot(steps, point, color=colour, linestyle=dash, linewidth=1.8, label=f"{group.agent} (n={count})",
                          marker="o" if len(steps) <= 3 else None, markersize=5)
        hatched_band(axis, steps, low, high, colour, hatch)
        handles[line.get_label()] = line
    if not handles:
        axis.text(0.5, 0.5, f"no {_METRIC} logged: set eval_interval to evaluate the learner alone",
                  transform=axis.transAxes, ha="center", va="center", fontsize=9)
    for reference in references:
        colour, dash = _LINE_LOOKS[reference.name]
        if reference.value is None:  # a legend entry with no line: what is missing and what to run
            handles[reference.label], = axis.plot([], [], linestyle="none", label=reference.label)
        else:
            handles[reference.label] = axis.axhline(reference.value, color=colour, linestyle=dash, linewidth=1.5,
                                                    label=reference.label)
    axis.set(xlabel="env steps", ylabel=Y_LABEL, title="learner alone (IQM over seeds) against its references")
    axis.grid(alpha=0.3)
    legend_below(figure, handles, 3.2, title="hatched band: 95% CI; horizontal lines: references" + few_runs_note(runs_of))
    return save_figure(figure, f"{env}: learner-alone return with the acting expert, judge and task-reward SAC",
                       width, path)


def reference_rows(references: list[Reference] | None, metrics: list[str], budget_column: bool) -> list[str]:
    """report.md rows of an env's table for its references: the value in the ``eval/mean_reward``
    column ("–" where missing, the label saying why); [] without references."""
    if not references:
        return []
    if _METRIC not in metrics:  # no learner-alone column: the references as a list below the table
        return ["", f"References of the learner-alone return ({_METRIC}, not logged by these runs):", ""] + [
            f"- {reference.label}" for reference in references]
    rows = []
    for reference in references:
        value = "–" if reference.value is None else f"{reference.value:.4g}"
        cells = [value if metric == _METRIC else "–" for metric in metrics]
        rows.append(f"| reference: {reference.label.replace('|', '/')} | {reference.runs or '–'} | "
                    + ("– | " if budget_column else "") + " | ".join(cells) + " |")
    return rows
