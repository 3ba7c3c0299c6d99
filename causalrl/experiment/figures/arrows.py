"""Arrows that meet a node at distinct points: when several edges end at one node (the reward
node of a bandit's graph, say), each arrow comes in from its own side of the node, so that the
arrowheads never pile up on one point (drawing only; matplotlib is imported on first use)."""

from __future__ import annotations

import numpy as np

__all__ = ["PORT_GAP", "PORT_TURN", "Ports", "ported", "spread_angles"]

#: arrows into one node meet it at least this far apart (radians), after turning this much, so
#: that i -> j and j -> i curve apart instead of overlapping
PORT_GAP, PORT_TURN = np.radians(28.0), np.radians(12.0)


def spread_angles(angles: np.ndarray, gap: float) -> np.ndarray:
    """``angles`` (radians, on a circle) moved apart to at least ``gap`` each, as little as possible.

    :param angles: the angles.
    :param gap: the smallest distance between two of them (radians).
    :return: the moved angles, in the order given.
    """
    order = np.argsort(angles)
    ordered = np.asarray(angles, dtype=float)[order]
    cut = (int(np.argmax(np.diff(np.r_[ordered, ordered[0] + 2 * np.pi]))) + 1) % len(ordered)
    line = np.r_[ordered[cut:], ordered[:cut] + 2 * np.pi]  # the circle, cut at its widest gap
    spread = line.copy()
    for index in range(1, len(spread)):
        spread[index] = max(spread[index], spread[index - 1] + gap)
    spread += np.mean(line - spread)
    result = np.empty(len(spread))
    result[np.r_[order[cut:], order[:cut]]] = spread
    return result


class Ports:
    """Where each arrow meets its target: the direction it comes from, turned a little (so that
    i -> j and j -> i do not overlap) and spread so that no two arrowheads on one node are closer
    than :data:`PORT_GAP`. Worked out in display coordinates when the figure is drawn."""

    def __init__(self, axis, positions: dict, edges: list):
        self.axis, self.positions = axis, positions
        self.incoming: dict[str, list] = {}
        for source, target, kind in edges:
            if source != target:
                self.incoming.setdefault(target, []).append((source, target, kind))

    def direction(self, edge) -> np.ndarray:
        """Unit vector (display coordinates) from the target's centre towards the arrow's port."""
        edges = self.incoming[edge[1]]
        centre = self.axis.transData.transform(self.positions[edge[1]])
        starts = self.axis.transData.transform(np.array([self.positions[e[0]] for e in edges]))
        angles = np.arctan2(starts[:, 1] - centre[1], starts[:, 0] - centre[0]) + PORT_TURN
        if len(edges) > 1:
            angles = spread_angles(angles, min(PORT_GAP, 2 * np.pi / len(edges)))
        angle = angles[edges.index(edge)]
        return np.array([np.cos(angle), np.sin(angle)])


def ported(ports: Ports, edge):
    """A connection style: a quadratic curve from the source that meets the target from its port."""
    from matplotlib.patches import (
        ConnectionStyle,  # matplotlib is imported on first use (figures.style)
    )
    from matplotlib.path import Path as CurvePath

    class Ported(ConnectionStyle._Base):  # matplotlib's documented way to add a connection style
        def connect(self, start, end):
            start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
            control = end + 0.45 * np.linalg.norm(start - end) * ports.direction(edge)
            return CurvePath([start, control, end], [CurvePath.MOVETO, CurvePath.CURVE3, CurvePath.CURVE3])

    return Ported()
