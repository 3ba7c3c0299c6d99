"""PNG plots of run curves (matplotlib, headless, imported on first use)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from causalrl.experiment.figures.style import pyplot

__all__ = ["plot_bandit_runs"]


def plot_bandit_runs(curves: dict[str, list[dict]], path: Path, title: str = "") -> Path:
    """Cumulative pseudo- and realised regret, and the optimal-action rate, against rounds.

    ``curves`` maps a label (agent name) to its logged rows (``MetricsCallback.rows``).
    """
    plt = pyplot()
    figure, (regret_axis, rate_axis) = plt.subplots(1, 2, figsize=(11, 4.4))
    for label, rows in curves.items():
        steps = [row["time/steps"] for row in rows]
        line, = regret_axis.plot(steps, [row["regret/cumulative"] for row in rows], label=f"{label} (pseudo)")
        regret_axis.plot(steps, [row["regret/cumulative_realised"] for row in rows], linestyle="--",
                         color=line.get_color(), label=f"{label} (realised)")
        rate_axis.plot(steps, [row["regret/optimal_action_rate"] for row in rows], color=line.get_color(), label=label)
    regret_axis.set(xlabel="round", ylabel="cumulative regret", title="Cumulative regret")
    rate_axis.set(xlabel="round", ylabel="optimal-action rate (last 100 rounds)", ylim=(-0.02, 1.02),
                  title="Optimal-action rate")
    # the legends go below the panels: the rate curves plateau at 1.0, where an inner legend sat
    for axis in (regret_axis, rate_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    if title:
        figure.suptitle("\n".join(textwrap.wrap(title, 110)))
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return Path(path)
