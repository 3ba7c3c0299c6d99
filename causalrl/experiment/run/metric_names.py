"""The one table of the metrics a run logs: name, meaning and where it is logged.

Names follow Stable-Baselines3 where the quantity is SB3's (``rollout/ep_rew_mean``, ``time/fps``,
``train/*``, ``eval/mean_reward``), so that TensorBoard shows causalrl runs beside SB3 and RL Zoo
runs under the same tags; causalrl's own quantities keep their own groups, and every metric taken
over a window (the last ``log_interval`` steps, the last 100 rounds) says so in its name
(``reward/window_mean``). README.md and docs/runner.md show :func:`markdown_table` between the
markers ``<!-- metrics:start -->`` and ``<!-- metrics:end -->``; regenerate them with
``python -m causalrl.experiment.run.metric_names``.

Run folders written before these names are read through :data:`OLD_NAMES` (:func:`current_name`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Metric", "METRICS", "OLD_NAMES", "current_name", "markdown_table", "write_tables"]


@dataclass(frozen=True)
class Metric:
    """One logged metric.

    :param name: the key in progress.csv, summary.json and TensorBoard.
    :param meaning: what the number is.
    :param logged: for which runs, and where (``TensorBoard only``: wall-clock values, kept out of
        progress.csv so that the same seed writes the same file).
    :param sb3: SB3's own name and meaning.
    """

    name: str
    meaning: str
    logged: str
    sb3: bool = False


#: every metric the runner's callbacks log (``causalrl.experiment.run.callbacks``,
#: ``causalrl.experiment.run.evaluation``), SB3's ``train/*`` group, and the judge diagnostics that
#: the intervention learners log (``causalrl.agents.judge_log``); agents may add groups of their own
METRICS = (
    Metric("time/steps", "env steps so far (the x axis of every curve)", "every row"),
    Metric("time/total_timesteps", "env steps so far, as SB3 counts them", "every row; console and W&B only "
           "(TensorBoard's step axis)", True),
    Metric("time/fps", "env steps per second since this process started training", "every row; TensorBoard, "
           "console and W&B (wall clock: not in progress.csv)", True),
    Metric("time/time_elapsed", "seconds since this process started training", "every row; console and W&B only",
           True),
    Metric("time/episodes", "episodes finished so far", "RL worlds; console and W&B only", True),
    Metric("rollout/ep_rew_mean", "mean return of the last 100 finished training episodes", "RL worlds", True),
    Metric("rollout/ep_len_mean", "mean length of the last 100 finished training episodes", "RL worlds", True),
    Metric("train/*", "the learner's own training values (SAC: actor_loss, critic_loss, ent_coef, ent_coef_loss, "
           "learning_rate)", "SB3-style learners, each row", True),
    Metric("reward/window_mean", "mean step reward over the last `log_interval` steps", "every row"),
    Metric("reward/cumulative", "sum of all rewards so far", "every row"),
    Metric("regret/cumulative", "pseudo-regret: sum of (best expected reward - expected reward of the arm played)",
           "bandits"),
    Metric("regret/cumulative_realised", "realised regret: sum of (best expected reward - reward received)",
           "bandits"),
    Metric("regret/window_optimal_action_rate", "share of the last 100 rounds whose arm is within 0.01 of the best",
           "bandits"),
    Metric("structure/shd", "structural Hamming distance of the agent's `learned_structure` to the true graph",
           "agents that learn a graph, on worlds that know theirs"),
    Metric("structure/fnr", "share of true edges the learned graph misses", "as structure/shd"),
    Metric("structure/fpr", "share of absent edges the learned graph has", "as structure/shd"),
    Metric("structure/f1", "F1 of the learned edges against the true ones", "as structure/shd"),
    Metric("intervention/window_rate", "share of the last `log_interval` steps the expert controlled",
           "intervention worlds (docs/rlif.md)"),
    Metric("task/window_return_mean", "mean task-reward return of the training episodes finished in the last "
           "`log_interval` steps (expert steps included: not an evaluation)", "worlds that report a task reward"),
    Metric("task/window_normalised_score", "task/window_return_mean on the world's normalised scale "
           "(0 = uniform random, 1 = optimal)", "those with a normalised score"),
    Metric("judge/window_takeover_rate", "share of the learner-controlled steps in the last `log_interval` steps at "
           "which the expert took over", "RLIF, DAgger and HG-DAgger on intervention worlds (docs/rlif.md (e))"),
    Metric("judge/window_bad_rate", "the learner's flagged share: judged learner actions the judge found bad, over "
           "the last `log_interval` steps", "as judge/window_takeover_rate"),
    Metric("judge/window_null_bad_rate", "the share the do-nothing (mid-bounds) action would get on the same steps "
           "(a learner not clearly below it is no better than doing nothing to the judge)", "as judge/window_takeover_rate"),
    Metric("judge/window_q_gap_mean", "mean Q(s, a_ref) - Q(s, a_pi) of the judge's value test over the last "
           "`log_interval` steps", "as judge/window_takeover_rate"),
    Metric("eval/mean_reward", "mean return of the deterministic policy alone over `eval_episodes` seeded "
           "episodes", "with `eval_interval`: every `eval_interval` steps and the last row", True),
    Metric("eval/deterministic_normalised_score", "eval/mean_reward on the world's normalised scale",
           "as eval/mean_reward, for worlds with a normalised score"),
)

#: names older causalrl versions logged -> today's name, so that report and leaderboard read old runs
OLD_NAMES = {
    "reward/mean": "reward/window_mean",
    "reward/episode_return_mean": "rollout/ep_rew_mean",
    "regret/optimal_action_rate": "regret/window_optimal_action_rate",
    "intervention/rate": "intervention/window_rate",
    "eval/return_mean": "task/window_return_mean",
    "eval/normalised_score": "task/window_normalised_score",
    "eval/deterministic_return_mean": "eval/mean_reward",
    "judge/takeover_rate": "judge/window_takeover_rate",
    "judge/bad_rate": "judge/window_bad_rate",
    "judge/null_bad_rate": "judge/window_null_bad_rate",
    "judge/q_gap_mean": "judge/window_q_gap_mean",
}

_START, _END = "<!-- metrics:start -->", "<!-- metrics:end -->"
#: the files that show the table (relative to the repository root)
TABLE_FILES = ("README.md", "docs/runner.md")


def current_name(name: str) -> str:
    """Today's name of a metric name read from a run folder (``reward/mean`` -> ``reward/window_mean``)."""
    return OLD_NAMES.get(name, name)


def markdown_table() -> str:
    """The metric list as a markdown table (what README.md and docs/runner.md show)."""
    lines = ["| metric | meaning | logged |", "|---|---|---|"]
    for metric in METRICS:
        name = f"`{metric.name}`" + (" (SB3)" if metric.sb3 else "")
        lines.append(f"| {name} | {metric.meaning} | {metric.logged} |")
    old = ", ".join(f"`{old}` → `{new}`" for old, new in OLD_NAMES.items())
    lines.append("")
    lines.append(f"Runs written by older versions are read under today's names: {old}.")
    return "\n".join(lines)


def replace_table(text: str, path: str = "text") -> str:
    """``text`` with the part between the metric markers replaced by :func:`markdown_table`."""
    pattern = re.compile(re.escape(_START) + r"\n(?:.*?\n)?" + re.escape(_END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path}: no {_START} ... {_END} block to fill")
    return pattern.sub(lambda _: f"{_START}\n{markdown_table()}\n{_END}", text)


def write_tables(root: Path) -> list[Path]:
    """Regenerate the table in each of :data:`TABLE_FILES` under ``root``; returns the files changed."""
    changed = []
    for name in TABLE_FILES:
        path = Path(root) / name
        text = path.read_text(encoding="utf-8")
        new = replace_table(text, name)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":  # python -m causalrl.experiment.run.metric_names [ROOT]
    for changed in write_tables(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(f"updated {changed}")
