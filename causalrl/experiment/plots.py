"""PNG plots of run curves (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_bandit_runs"]


def plot_bandit_runs(curves: dict[str, list[dict]], path: Path, title: str = "") -> Path:
    """Cumulative pseudo- and realised regret, and the optimal-action rate, against rounds.

    ``curves`` maps a label (agent name) to its logged rows (``MetricsCallback.rows``).
    """
    figure, (regret_axis, rate_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in curves.items():
        steps = [row["time/steps"] for row in rows]
        line, = regret_axis.plot(steps, [row["regret/cumulative"] for row in rows], label=f"{label} (pseudo)")
        regret_axis.plot(steps, [row["regret/cumulative_realised"] for row in rows], linestyle="--",
                         color=line.get_color(), label=f"{label} (realised)")
        rate_axis.plot(steps, [row["regret/optimal_action_rate"] for row in rows], color=line.get_color(), label=label)
    regret_axis.set(xlabel="round", ylabel="cumulative regret", title="Cumulative regret")
    rate_axis.set(xlabel="round", ylabel="optimal-action rate (last 100 rounds)", ylim=(-0.02, 1.02),
                  title="Optimal-action rate")
    regret_axis.legend(fontsize=8)
    rate_axis.legend(fontsize=8)
    for axis in (regret_axis, rate_axis):
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
