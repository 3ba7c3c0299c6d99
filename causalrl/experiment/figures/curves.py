"""PNG plots of run curves (matplotlib, headless, imported on first use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from causalrl.experiment.figures.style import LOOKS, pyplot, save_figure

__all__ = ["LOG_SPAN", "plot_bandit_runs", "regret_scale", "symlog_axis"]

#: final regrets that differ by this factor or more get a logarithmic axis (a linear one squashes
#: the small ones flat against zero)
LOG_SPAN = 10.0
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def regret_scale(finals: list[float]) -> tuple[str, float | None]:
    """``("symlog", linthresh)`` when the final regrets span :data:`LOG_SPAN` or more, else
    ``("linear", None)``. Symmetric log: regret starts at 0 and realised regret can be negative; it
    is linear within ``linthresh`` of 0.

    :param finals: the final cumulative regret of each curve.
    :return: the axis scale and its linear threshold.
    """
    positive = [abs(value) for value in finals if np.isfinite(value) and value != 0]
    if len(positive) < 2 or max(positive) < LOG_SPAN * min(positive):
        return "linear", None
    return "symlog", float(10 ** np.floor(np.log10(min(positive))))


def symlog_axis(axis, threshold: float) -> None:
    """Put ``axis``'s y axis on a symmetric log scale, linear below ``threshold``, with ticks as
    plain numbers ("10,000", not mathtext powers, which cost a quarter second to typeset per run)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_yscale("symlog", linthresh=threshold)
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.12g}"))


def plot_bandit_runs(curves: dict[str, list[dict]], path: Path | None, title: str = ""):
    """Cumulative pseudo- and realised regret, and the optimal-action rate, against rounds.

    Each agent has its own colour and marker (staggered, so a curve hidden under another still
    shows its markers), and its final pseudo-regret in the legend; the regret axis is logarithmic
    (symmetric log) when the final regrets span :data:`LOG_SPAN` or more.

    :param curves: label (agent name) -> its logged rows (``MetricsCallback.rows``).
    :param path: the PNG to write; None: return the figure unsaved.
    :param title: the figure's title. Default "".
    :return: ``path`` (the figure when ``path`` is None).
    """
    plt = pyplot()
    figure, (regret_axis, rate_axis) = plt.subplots(1, 2, figsize=(11, 4.4))
    for index, (label, rows) in enumerate(curves.items()):
        colour, marker = LOOKS[index % len(LOOKS)][0], _MARKERS[index % len(_MARKERS)]
        steps = [row["time/steps"] for row in rows]
        every = (index % 3, 3) if len(steps) > 6 else None  # staggered markers: overlapping curves stay visible
        final = rows[-1]["regret/cumulative"] if rows else float("nan")
        style = dict(color=colour, marker=marker, markevery=every, markersize=4)
        regret_axis.plot(steps, [row["regret/cumulative"] for row in rows], label=f"{label} (pseudo; final {final:,.0f})",
                         **style)
        regret_axis.plot(steps, [row["regret/cumulative_realised"] for row in rows], linestyle="--", alpha=0.8,
                         label=f"{label} (realised)", color=colour)
        rate_axis.plot(steps, [row["regret/window_optimal_action_rate"] for row in rows], label=label, **style)
    scale, threshold = regret_scale([rows[-1]["regret/cumulative"] for rows in curves.values() if rows])
    ylabel = "cumulative regret"
    if scale == "symlog":
        symlog_axis(regret_axis, threshold)
        ylabel += f" (log scale; linear below {threshold:g})"
    regret_axis.set(xlabel="round", ylabel=ylabel, title="Cumulative regret")
    rate_axis.set(xlabel="round", ylabel="optimal-action rate (last 100 rounds)", ylim=(-0.02, 1.02),
                  title="Optimal-action rate")
    # the legends go below the panels: the rate curves plateau at 1.0, where an inner legend sat
    for axis in (regret_axis, rate_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return save_figure(figure, title, figure.get_figwidth(), path)
