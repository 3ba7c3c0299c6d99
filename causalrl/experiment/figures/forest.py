"""Forest plots: one row per comparison, a point with its confidence interval, a vertical line at
zero, and which side is better. The leaderboard draws paired differences against a baseline this
way (:mod:`causalrl.experiment.analysis.leaderboard`). matplotlib is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from causalrl.experiment.figures.style import pyplot, save_figure

__all__ = ["ForestRow", "ForestPanel", "plot_forest"]

_SIGNIFICANT, _NOT_SIGNIFICANT = "#0072B2", "#7f7f7f"


@dataclass(frozen=True)
class ForestRow:
    """One comparison: its label, the point estimate and its interval; ``highlight`` draws it in
    colour with a filled marker (e.g. an interval that excludes 0), else grey and hollow."""

    label: str
    value: float
    low: float
    high: float
    highlight: bool = False


@dataclass
class ForestPanel:
    """One panel: a title, the x-axis label, whether ``"lower"`` or ``"higher"`` values are better
    (written under the axis), and its rows, top to bottom."""

    title: str
    xlabel: str
    better: str
    rows: list[ForestRow] = field(default_factory=list)


def plot_forest(panels: list[ForestPanel], path: str | Path, title: str = "", columns: int = 3) -> Path | None:
    """Draw ``panels`` in a grid of up to ``columns`` per row (panels without rows are left out),
    each with its own x axis, and save to ``path``; None when there is nothing to draw."""
    panels = [panel for panel in panels if panel.rows]
    if not panels:
        return None
    columns = min(columns, len(panels))
    grid_rows = -(-len(panels) // columns)
    height = grid_rows * (1.8 + 0.38 * max(len(panel.rows) for panel in panels))
    width = 5.6 * columns
    figure, axes = pyplot().subplots(grid_rows, columns, figsize=(width, height), squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, panel in zip(axes.flat, panels):
        for index, row in enumerate(panel.rows):
            colour = _SIGNIFICANT if row.highlight else _NOT_SIGNIFICANT
            axis.errorbar([row.value], [index], xerr=[[row.value - row.low], [row.high - row.value]], fmt="o",
                          color=colour, markerfacecolor=colour if row.highlight else "white", capsize=4)
        axis.axvline(0.0, color="#333333", linewidth=1.0, linestyle="--")
        axis.set_yticks(range(len(panel.rows)), [row.label for row in panel.rows], fontsize=8)
        axis.set_ylim(-0.7, len(panel.rows) - 0.3)
        axis.invert_yaxis()
        arrow = "← better (lower)" if panel.better == "lower" else "better (higher) →"
        axis.set(xlabel=f"{panel.xlabel}\n{arrow}", title=panel.title)
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3, axis="x")
    return save_figure(figure, title, width, path)
