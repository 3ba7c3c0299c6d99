"""What every figure shares: a headless pyplot, the looks that tell groups apart (colour, hatch,
dash), the hatched confidence band, one legend below the panels, and a wrapped title.

matplotlib is imported on first use (:func:`pyplot`): ``import causalrl`` and ``causalrl --help``
stay light, and runs that draw nothing never load it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["LOOKS", "PNG", "pyplot", "hatched_band", "legend_below", "save_figure", "wrap_title"]

#: (colour, hatch, line style) of the i-th group: distinct in colour, texture and dash
LOOKS = [("#0072B2", "//", "-"), ("#D55E00", "\\\\", "--"), ("#009E73", "..", "-."), ("#CC79A7", "xx", ":"),
         ("#E69F00", "++", (0, (5, 1))), ("#56B4E9", "oo", (0, (3, 1, 1, 1))), ("#000000", "--", (0, (1, 1))),
         ("#F0E442", "||", (0, (8, 2)))]

#: savefig options of every PNG: zlib level 1 instead of matplotlib's 6 writes a figure in about a
#: third of the encoding time for files about 7% larger (benchmarks/startup.py: a default run
#: writes five figures)
PNG = {"pil_kwargs": {"compress_level": 1}}


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend."""
    import matplotlib  # imported here: keeps `import causalrl` light (see the module docstring)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def wrap_title(text: str, width_inches: float) -> str:
    """``text`` wrapped to a figure ``width_inches`` wide (about 9 characters per inch at 12 pt)."""
    return "\n".join(textwrap.wrap(text, max(30, int(width_inches * 9))))


def hatched_band(axis, x, low, high, colour, hatch: str, step: str | None = None) -> None:
    """A 95% CI band: a light fill plus a hatch in the group's colour, so overlapping bands stay
    tellable apart; ``step="post"`` for the band of a step function."""
    axis.fill_between(x, low, high, facecolor=colour, alpha=0.10, linewidth=0, step=step)
    axis.fill_between(x, low, high, facecolor="none", edgecolor=colour, hatch=hatch, alpha=0.45, linewidth=0.6,
                      step=step)


def legend_below(figure, handles: dict, width: float, title: str = "hatched band: 95% CI") -> None:
    """One legend for every panel (``handles``: label -> artist), below them, so it never covers a
    curve."""
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      ncol=max(1, min(len(handles), int(width // 3.2))), fontsize=8, frameon=False,
                      title=title, title_fontsize=8)


def save_figure(figure, title: str, width: float, path: str | Path | None):
    """Title the figure (wrapped to its ``width`` in inches), save it as ``path`` and close it;
    with ``path`` None, return the titled figure unsaved (tests read its axes)."""
    plt = pyplot()
    figure.suptitle(wrap_title(title, width), fontsize=11)
    figure.tight_layout()
    if path is None:
        return figure
    figure.savefig(path, dpi=110, bbox_inches="tight", **PNG)
    plt.close(figure)
    return Path(path)
