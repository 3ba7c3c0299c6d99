"""Pictures and exports of learned causal graphs against the true ones (drawing only: no run
directory or file format here).

The run room keeps the learned and the true structure of every run of an agent with a
``learned_structure`` (CSL-UCB, explore-then-commit, CIP, ACE) in ``structure.jsonl``
(:mod:`causalrl.experiment.run.history`) and draws the last one as ``graph.png`` with
:func:`draw_structure`; ``causalrl graph RUN_DIR`` (:mod:`causalrl.experiment.analysis.graphs`)
redraws it. The edge classes come from the kernel (:func:`causalrl.core.metrics.edge_classes`):

    true positive    learned and true                     solid green
    false positive   learned, not true (an extra edge)    dashed red
    false negative   true, not learned (a missing edge)   dotted grey
    reversed         learned against the true direction   dash-dot orange, drawn as learned

A structure is what the API hands out: ``agent.learned_structure`` (a mapping of named boolean
matrices, ``[j, i]`` = j -> i) and ``env.unwrapped.causal_structure`` (an object with matrix
attributes). Square matrices (a bandit's observational and interventional mechanisms) are one
panel each, over nodes 0..N-1 (the reward node marked R); rectangular ones (a factored world's
``state_to_reward`` (S, 1), ``action_to_reward`` (A, 1)) share one panel, sources s0.., a0.. on
the left and targets (r, s'0..) on the right. See docs/reports.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causalrl.core.metrics import EDGE_KINDS, edge_classes, structure_metrics
from causalrl.experiment.figures.arrows import Ports, ported
from causalrl.experiment.figures.style import PNG, pyplot, wrap_title

__all__ = ["STYLES", "GRID_COLUMNS", "named_masks", "draw_structure", "to_networkx", "to_dot", "plot_graph_grid"]

#: kind -> (label, colour, line style, width); "true" and "learned" are the edges drawn when the
#: other side is unknown (no truth, or nothing learned yet)
STYLES = {
    "true_positive": ("true positive", "#1b7837", "solid", 2.0),
    "false_positive": ("false positive (extra)", "#d7301f", "dashed", 1.6),
    "false_negative": ("false negative (missing)", "#878787", "dotted", 1.6),
    "reversed": ("reversed", "#ff7f00", "dashdot", 2.0),
    "true": ("true edge (nothing learned yet)", "#878787", "solid", 1.2),
    "learned": ("learned edge (no ground truth)", "#2166ac", "solid", 1.6),
}
_PARENTS = "parents (sources left, targets right)"
#: the most runs the report's grid draws per row (the row's label counts the others)
GRID_COLUMNS = 6

_PREFIX = {"state": "s", "action": "a", "reward": "r", "next_state": "s'"}


# --- structures as plain data -------------------------------------------------------------------
def named_masks(structure) -> dict[str, np.ndarray]:
    """{name: bool matrix} of a mapping of matrices, a causal_structure object or None ({})."""
    if structure is None:
        return {}
    if isinstance(structure, dict):
        return {name: np.asarray(m) != 0 for name, m in structure.items() if m is not None}
    fields = getattr(structure, "__dataclass_fields__", None) or vars(structure)
    named = {}
    for name in fields:
        value = getattr(structure, name, None)
        if not name.startswith("_") and isinstance(value, np.ndarray) and value.ndim == 2:
            named[name] = value != 0
    return named


def _classified(learned: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """name -> kind -> mask, for the names to draw."""
    if learned:
        names = list(learned)
    else:  # nothing learned yet: the truth the agent is scored on (reward parents when there are any)
        names = [n for n in truth if n.endswith("_to_reward")] or list(truth)
    panels = {}
    for name in names:
        if learned and name in truth:
            panels[name] = edge_classes(learned[name], truth[name])
        elif learned:
            panels[name] = {"learned": learned[name].copy()}
        else:
            panels[name] = {"true": truth[name].copy()}
        if learned.get(name, truth.get(name)).shape[0] == learned.get(name, truth.get(name)).shape[1]:
            for masks in panels[name].values():
                np.fill_diagonal(masks, False)
    return panels


def _node_names(name: str, shape: tuple[int, int], reward_node: int | None) -> tuple[list[str], list[str]]:
    """Source and target node names of matrix ``name``."""
    if shape[0] == shape[1] and "_to_" not in name:
        nodes = [("R" if index == reward_node else str(index)) for index in range(shape[0])]
        return nodes, nodes
    source, _, target = name.partition("_to_")
    source_prefix = _PREFIX.get(source, source[:1] or "x")
    target_prefix = "s'" if target == "state" else _PREFIX.get(target, target[:1] or "y")
    sources = [f"{source_prefix}{j}" for j in range(shape[0])]
    targets = [target_prefix if shape[1] == 1 else f"{target_prefix}{i}" for i in range(shape[1])]
    return sources, targets


def _edges(panels: dict, reward_node: int | None) -> list[tuple[str, str, str, str]]:
    """(panel, source, target, kind) of every edge to draw."""
    edges = []
    for name, kinds in panels.items():
        shape = next(iter(kinds.values())).shape
        sources, targets = _node_names(name, shape, reward_node)
        panel = name if shape[0] == shape[1] and "_to_" not in name else _PARENTS
        for kind, mask in kinds.items():
            for j, i in zip(*np.nonzero(mask)):
                edges.append((panel, sources[j], targets[i], kind))
    return edges


# --- exports ----------------------------------------------------------------------------------
def to_networkx(learned, truth=None, reward_node: int | None = None):
    """A ``networkx.MultiDiGraph`` of the learned structure (classified against ``truth`` when
    given): one edge per drawn edge with attributes ``kind`` (an edge class, or "learned"/"true")
    and ``mechanism`` (the matrix name or panel). Node names as in the pictures."""
    import networkx as nx  # imported here: only this export needs it (it comes with torch)

    learned_named, truth_named = named_masks(learned), named_masks(truth)
    reward_node = getattr(truth, "reward_node", reward_node)
    graph = nx.MultiDiGraph()
    panels = _classified(learned_named, truth_named)
    if reward_node is not None and panels:
        reward_node = int(reward_node) % next(iter(next(iter(panels.values())).values())).shape[0]
    for name, kinds in panels.items():
        shape = next(iter(kinds.values())).shape
        sources, targets = _node_names(name, shape, reward_node)
        graph.add_nodes_from(sources + targets)
    for panel, source, target, kind in _edges(panels, reward_node):
        graph.add_edge(source, target, kind=kind, mechanism=panel)
    return graph


def to_dot(learned, truth=None, reward_node: int | None = None, name: str = "causalrl") -> str:
    """The classified structure in Graphviz DOT (styles as in the pictures; one ``subgraph
    cluster`` per mechanism). Render with ``dot -Tpng graph.dot -o graph.png``."""
    graph = to_networkx(learned, truth, reward_node)
    lines = [f'digraph "{name}" {{', "  rankdir=LR;", "  node [shape=circle, fontsize=10];"]
    mechanisms = sorted({data["mechanism"] for _, _, data in graph.edges(data=True)})
    for index, mechanism in enumerate(mechanisms):
        lines.append(f'  subgraph cluster_{index} {{ label="{mechanism}";')
        for source, target, data in graph.edges(data=True):
            if data["mechanism"] != mechanism:
                continue
            label, colour, style, width = STYLES[data["kind"]]
            dot_style = {"solid": "solid", "dashed": "dashed", "dotted": "dotted", "dashdot": "bold"}[style]
            lines.append(f'    "{mechanism}:{source}" [label="{source}"]; "{mechanism}:{target}" [label="{target}"];')
            lines.append(f'    "{mechanism}:{source}" -> "{mechanism}:{target}" [color="{colour}", style={dot_style}, '
                         f'penwidth={width}, tooltip="{label}"];')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- drawing ----------------------------------------------------------------------------------
def _generations(adjacency: np.ndarray) -> list[list[int]] | None:
    """Topological generations of a DAG (roots first); None when it has a cycle."""
    remaining, generations = set(range(adjacency.shape[0])), []
    while remaining:
        layer = sorted(i for i in remaining if not any(adjacency[j, i] for j in remaining))
        if not layer:
            return None
        generations.append(layer)
        remaining -= set(layer)
    return generations


def _layout(name: str, shape, panels_of_kind: dict, truth: dict, reward_node, sources, targets) -> dict:
    """Node positions of a square panel: rows are the topological generations of the true DAG
    (staggered), a circle when there is no DAG to follow; {} for rectangular panels."""
    if shape[0] == shape[1] and "_to_" not in name:
        union = np.zeros(shape, dtype=bool)
        for mask in (truth.values() if truth else panels_of_kind.values()):
            if np.shape(mask) == shape:
                union |= np.asarray(mask, dtype=bool)
        np.fill_diagonal(union, False)
        generations = _generations(union)
        if generations is not None:
            return {sources[node]: np.array([index - (len(nodes) - 1) / 2 + 0.3 * (layer % 2), -float(layer)])
                    for layer, nodes in enumerate(generations) for index, node in enumerate(nodes)}
        angles = np.linspace(0, 2 * np.pi, shape[0], endpoint=False)
        return {sources[i]: np.array([np.sin(a), np.cos(a)]) for i, a in enumerate(angles)}
    return {}


@dataclass
class _Panel:
    """What one panel draws: edges ``(source, target, kind)``, node positions, the subtitle's
    phrases (one per line: a line never breaks inside a phrase) and, for a bipartite panel with
    one target (r), that target drawn as a bar that every arrow meets at its source's height."""

    edges: list
    positions: dict
    phrases: list
    bar_target: str | None = None


def _groups(panels: dict) -> dict[str, list[str]]:
    """Panel key -> matrix names: each square mechanism its own panel, rectangular ones together."""
    groups: dict[str, list[str]] = {}
    for name, kinds in panels.items():
        shape = next(iter(kinds.values())).shape
        groups.setdefault(name if shape[0] == shape[1] and "_to_" not in name else _PARENTS, []).append(name)
    return groups


def _phrases(names: list, edges: list, learned: dict, truth: dict, square: bool) -> list[str]:
    """The subtitle: SHD and F1, then the edge counts (or what is drawn without a comparison)."""
    if learned and truth and all(n in truth and n in learned for n in names):
        scores = structure_metrics({n: learned[n] for n in names}, {n: truth[n] for n in names})
        counts = {kind: sum(1 for *_, k in edges if k == kind) for kind in EDGE_KINDS}
        tally = (f"{counts['true_positive']} TP · {counts['false_positive']} extra · {counts['false_negative']} missing"
                 + (f" · {counts['reversed']} reversed" if square else ""))
        return [f"SHD {scores['shd']:.0f} · F1 {scores['f1']:.2f}", tally]
    if learned:
        return [f"{len(edges)} learned edges", "(no ground truth)"]
    return ["nothing learned yet:", "true edges only"]


def _panel(key: str, names: list, panels: dict, learned: dict, truth: dict, reward_node) -> _Panel:
    edges, positions, sources_all, targets_all = [], {}, [], []
    for name in names:
        kinds = panels[name]
        shape = next(iter(kinds.values())).shape
        sources, targets = _node_names(name, shape, reward_node)
        positions.update(_layout(name, shape, kinds, truth, reward_node, sources, targets))
        sources_all += [s for s in sources if s not in sources_all]
        targets_all += [t for t in targets if t not in targets_all]
        for kind, mask in kinds.items():
            edges += [(sources[j], targets[i], kind) for j, i in zip(*np.nonzero(mask))]
    bar = None
    if not positions:  # bipartite: sources left, targets right
        for column, nodes in ((0.0, sources_all), (1.0, targets_all)):
            for row, node in enumerate(nodes):
                positions[node] = np.array([column, -(row - (len(nodes) - 1) / 2)])
        bar = targets_all[0] if len(targets_all) == 1 and len(sources_all) > 1 else None
    return _Panel(edges, positions, _phrases(names, edges, learned, truth, key != _PARENTS), bar)


def _draw_panel(axis, phrases: list[str], panel: _Panel, highlight: set, reward_node=None) -> None:
    """Nodes as circles (the reward node marked, with its index), edges as arrows styled by class
    (matplotlib only: no networkx needed); room is left between the nodes and the subtitle."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # imported on first use (figures.style)

    positions = panel.positions
    rows = 1 + max((-p[1] for p in positions.values()), default=0) - min((-p[1] for p in positions.values()), default=0)
    # nodes never touch: at most 60% of the height of a row of nodes (with the margins set below)
    height_points = axis.get_position().height * axis.figure.get_size_inches()[1] * 72 / (rows + 1.3)
    size = float(min(420.0, (0.6 * height_points) ** 2))
    radius = np.sqrt(size) / 2
    circles = {node: xy for node, xy in positions.items() if node != panel.bar_target}
    xy = np.array(list(circles.values())) if circles else np.zeros((0, 2))
    colours = ["#fddbc7" if node in highlight else "#e0ecf4" for node in circles]
    axis.scatter(xy[:, 0], xy[:, 1], s=size, c=colours, edgecolors="#333333", zorder=3)
    for node, (x, y) in circles.items():
        if radius >= 5.5:
            axis.text(x, y, node, ha="center", va="center", fontsize=9 if radius >= 8 else 7, zorder=4)
        else:  # too small a circle for its name: the name goes to its left
            axis.annotate(node, (x, y), xytext=(-radius - 2, 0), textcoords="offset points", ha="right", va="center",
                          fontsize=7)
        if node == "R" and reward_node is not None:
            axis.annotate(f"node {reward_node}", (x, y), xytext=(0, -radius - 2), textcoords="offset points",
                          ha="center", va="top", fontsize=7, color="#555555")
    if panel.bar_target is not None:
        ys = [p[1] for node, p in positions.items() if node != panel.bar_target]
        axis.add_patch(FancyBboxPatch((0.96, min(ys) - 0.3), 0.08, max(ys) - min(ys) + 0.6,
                                      boxstyle="round,pad=0.02", facecolor="#fddbc7", edgecolor="#333333", zorder=3))
        axis.text(1.0, (min(ys) + max(ys)) / 2, panel.bar_target, ha="center", va="center", fontsize=9, zorder=4)
    ports = Ports(axis, positions, panel.edges)
    for kind in [*EDGE_KINDS, "true", "learned"]:
        _, colour, style, width = STYLES[kind]
        for source, target, edge_kind in panel.edges:
            if edge_kind != kind or source == target:
                continue
            start = positions[source]
            end = np.array([0.96, start[1]]) if target == panel.bar_target else positions[target]
            bar = target == panel.bar_target
            axis.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour,
                                           linestyle=style, linewidth=width, shrinkA=radius + 1,
                                           shrinkB=1 if bar else radius + 1, zorder=2,
                                           connectionstyle="arc3" if bar else ported(ports, (source, target, edge_kind))))
    if len(positions):
        every = np.array(list(positions.values()))
        axis.set_xlim(every[:, 0].min() - 0.45, every[:, 0].max() + 0.45)
        # below: room for the reward node's index; above: a gap before the subtitle
        axis.set_ylim(every[:, 1].min() - (0.7 if reward_node is not None else 0.45), every[:, 1].max() + 0.6)
    axis.set_title("\n".join(phrases), fontsize=9)
    axis.set_axis_off()


def _legend(figure, used: set, both: bool, columns: int) -> None:
    from matplotlib.lines import Line2D  # matplotlib is imported on first use (figures.style)

    handles = [Line2D([], [], color=STYLES[k][1], linestyle=STYLES[k][2], linewidth=STYLES[k][3], label=STYLES[k][0])
               for k in [*EDGE_KINDS, "true", "learned"] if k in used or (k in EDGE_KINDS and both)]
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=min(columns, len(handles)), fontsize=8, frameon=False,
                      bbox_to_anchor=(0.5, 0.0), handlelength=3.5)


def _prepared(learned, truth, reward_node):
    """(learned masks, true masks, classified panels, reward node index) of one structure pair."""
    learned_named, truth_named = named_masks(learned), named_masks(truth)
    reward_node = getattr(truth, "reward_node", reward_node)
    panels = _classified(learned_named, truth_named)
    if reward_node is not None and panels:
        reward_node = int(reward_node) % next(iter(next(iter(panels.values())).values())).shape[0]
    return learned_named, truth_named, panels, reward_node


def _rows_of(panels: dict, groups: dict) -> int:
    """The most nodes one column of a bipartite panel stacks (for the figure's height)."""
    most = 0
    for key, names in groups.items():
        if key == _PARENTS:
            most = max(most, sum(next(iter(panels[name].values())).shape[0] for name in names))
    return most


def draw_structure(learned, truth=None, path: str | Path | None = None, title: str = "",
                   reward_node: int | None = None):
    """Draw the learned structure over the true one (one panel per mechanism, edges styled by
    class, legend below the panels) and save it to ``path`` when given. Returns the figure.

    :param learned: the learned structure (a mapping of boolean matrices, or None).
    :param truth: the true structure (``env.unwrapped.causal_structure``, a mapping, or None).
    :param path: where to save the PNG. Default None: not saved.
    :param title: the figure's title. Default "".
    :param reward_node: the reward node's index when ``truth`` does not say. Default None.
    """
    plt = pyplot()
    learned_named, truth_named, panels, reward_node = _prepared(learned, truth, reward_node)
    if not panels:
        raise ValueError("draw_structure: nothing to draw (no learned structure and no ground truth)")
    groups = _groups(panels)
    height = max(5.6, 0.42 * _rows_of(panels, groups) + 2.4)
    figure, axes = plt.subplots(1, len(groups), figsize=(max(6.0, 4.6 * len(groups)), height), squeeze=False)
    used = set()
    for axis, (key, names) in zip(axes[0], groups.items()):
        panel = _panel(key, names, panels, learned_named, truth_named, reward_node)
        used |= {kind for *_, kind in panel.edges}
        _draw_panel(axis, [key.replace("_", " "), *panel.phrases], panel, {"R", "r"}, reward_node)
    _legend(figure, used, bool(truth_named and learned_named), 4 if len(groups) > 1 else 2)
    if title:
        figure.suptitle(wrap_title(title, figure.get_size_inches()[0]), fontsize=10)
    figure.tight_layout(rect=(0, 0.6 / height, 1, 1))
    if path is not None:
        figure.savefig(path, dpi=110, **PNG)
        plt.close(figure)
    return figure


def plot_graph_grid(rows: list[tuple[str, list[tuple]]], path: str | Path | None, title: str = "",
                    columns: int = GRID_COLUMNS):
    """The report's grid: one row per agent and mechanism (a bandit's observational and
    interventional graphs, a factored world's reward parents), one column per run, SHD and F1 in
    every cell. Runs beyond ``columns`` are not drawn; the row's label says how many.

    :param rows: ``[(agent, [(run label, learned, truth, reward node), ...]), ...]`` with structures
        as :func:`draw_structure` takes them (truth and reward node may be None).
    :param path: where to save the PNG; None: return the figure unsaved.
    :param title: the figure's title. Default "".
    :param columns: the most runs drawn per row. Default :data:`GRID_COLUMNS`.
    :return: the path (the figure when ``path`` is None), or None when no run kept a graph.
    """
    plt = pyplot()
    grid = []  # (row label, [(run label, panel, phrases, reward node)], runs left out)
    for agent, runs in rows:
        by_key: dict[str, list] = {}
        for label, learned, truth, reward_node in runs:
            learned_named, truth_named, panels, node = _prepared(learned, truth, reward_node)
            for key, names in _groups(panels).items():
                panel = _panel(key, names, panels, learned_named, truth_named, node)
                by_key.setdefault(key, []).append((label, panel, node))
        for key, cells in by_key.items():
            grid.append((f"{agent}\n{key.replace('_', ' ')}", cells[:columns], max(0, len(cells) - columns)))
    if not grid:
        return None
    width = max(len(cells) for _, cells, _ in grid)
    # a row of bipartite panels grows with the sources it stacks, so that its nodes stay apart
    heights = [max(3.4, 0.22 * max(len(cell[1].positions) for cell in cells) + 1.2) for _, cells, _ in grid]
    height = sum(heights) + 1.0
    figure, axes = plt.subplots(len(grid), width, figsize=(3.4 * width + 1.2, height), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    used = set()
    for row, (label, cells, left_out) in enumerate(grid):
        for column in range(width):
            axis = axes[row][column]
            if column >= len(cells):
                axis.set_axis_off()
                continue
            run_label, panel, node = cells[column]
            used |= {kind for *_, kind in panel.edges}
            _draw_panel(axis, [run_label, *panel.phrases[:1]], panel, {"R", "r"}, node)
        more = f"\n(+{left_out} more runs, not drawn)" if left_out else ""
        axes[row][0].text(-0.08, 0.5, label + more, transform=axes[row][0].transAxes, rotation=90, ha="right",
                          va="center", fontsize=9)
    _legend(figure, used, True, 4)
    if title:
        figure.suptitle(wrap_title(title, 3.4 * width + 1.2), fontsize=10)
    figure.tight_layout(rect=(0.03, 0.6 / height, 1, 1))
    if path is None:
        return figure
    figure.savefig(path, dpi=100, **PNG)
    plt.close(figure)
    return Path(path)
