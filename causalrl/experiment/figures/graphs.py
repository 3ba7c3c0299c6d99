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

import textwrap
from pathlib import Path

import numpy as np

from causalrl.core.metrics import EDGE_KINDS, edge_classes, structure_metrics
from causalrl.experiment.figures.style import pyplot

__all__ = ["STYLES", "named_masks", "draw_structure", "to_networkx", "to_dot", "plot_graph_grid"]

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


def _draw_panel(axis, title: str, edges: list, positions: dict, highlight: set) -> None:
    """Nodes as circles, edges as arrows styled by class (matplotlib only: no networkx needed)."""
    from matplotlib.patches import FancyArrowPatch  # matplotlib is imported on first use (figures.style)

    xy = np.array(list(positions.values())) if positions else np.zeros((0, 2))
    colours = ["#fddbc7" if node in highlight else "#e0ecf4" for node in positions]
    axis.scatter(xy[:, 0], xy[:, 1], s=420, c=colours, edgecolors="#333333", zorder=3)
    for node, (x, y) in positions.items():
        axis.text(x, y, node, ha="center", va="center", fontsize=9, zorder=4)
    for kind in [*EDGE_KINDS, "true", "learned"]:
        _, colour, style, width = STYLES[kind]
        for source, target, edge_kind in edges:
            if edge_kind != kind or source == target:
                continue
            axis.add_patch(FancyArrowPatch(positions[source], positions[target], arrowstyle="-|>", mutation_scale=14,
                                           color=colour, linestyle=style, linewidth=width, shrinkA=12, shrinkB=12,
                                           connectionstyle="arc3,rad=0.12", zorder=2))
    if len(xy):
        pad = 0.45
        axis.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
        axis.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    axis.set_title(title, fontsize=9)
    axis.set_axis_off()


def draw_structure(learned, truth=None, path: str | Path | None = None, title: str = "",
                   reward_node: int | None = None, axes=None):
    """Draw the learned structure over the true one (one panel per mechanism, edges styled by
    class, legend below the panels) and save it to ``path`` when given. Returns the figure."""
    plt = pyplot()
    from matplotlib.lines import Line2D  # matplotlib is imported on first use (figures.style)

    learned_named, truth_named = named_masks(learned), named_masks(truth)
    reward_node = getattr(truth, "reward_node", reward_node)
    panels = _classified(learned_named, truth_named)
    if not panels:
        raise ValueError("draw_structure: nothing to draw (no learned structure and no ground truth)")
    first = next(iter(next(iter(panels.values())).values()))
    if reward_node is not None:
        reward_node = int(reward_node) % first.shape[0]
    groups: dict[str, list[str]] = {}
    for name, kinds in panels.items():
        shape = next(iter(kinds.values())).shape
        key = name if shape[0] == shape[1] and "_to_" not in name else _PARENTS
        groups.setdefault(key, []).append(name)
    own_figure = axes is None
    if own_figure:
        figure, axes = plt.subplots(1, len(groups), figsize=(max(6.0, 4.6 * len(groups)), 5.6), squeeze=False)
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(axes))
        figure = axes[0].figure
    used = set()
    for axis, (key, names) in zip(axes, groups.items()):
        edges, positions, sources_all, targets_all = [], {}, [], []
        for name in names:
            kinds = panels[name]
            shape = next(iter(kinds.values())).shape
            sources, targets = _node_names(name, shape, reward_node)
            positions.update(_layout(name, shape, kinds, truth_named, reward_node, sources, targets))
            sources_all += [s for s in sources if s not in sources_all]
            targets_all += [t for t in targets if t not in targets_all]
            for kind, mask in kinds.items():
                edges += [(sources[j], targets[i], kind) for j, i in zip(*np.nonzero(mask))]
        if not positions:  # bipartite: sources left, targets right
            for column, nodes in ((0.0, sources_all), (1.0, targets_all)):
                for row, node in enumerate(nodes):
                    positions[node] = np.array([column, -(row - (len(nodes) - 1) / 2)])
        used |= {kind for _, _, kind in edges}
        counts = {kind: sum(1 for *_, k in edges if k == kind) for kind in EDGE_KINDS}
        if learned_named and truth_named and all(n in truth_named for n in names):
            scores = structure_metrics({n: learned_named[n] for n in names}, {n: truth_named[n] for n in names})
            summary = (f"SHD {scores['shd']:.0f}, F1 {scores['f1']:.2f}: {counts['true_positive']} TP, "
                       f"{counts['false_positive']} extra, {counts['false_negative']} missing, "
                       f"{counts['reversed']} reversed")
        elif learned_named:
            summary = f"{len(edges)} learned edges (no ground truth)"
        else:
            summary = "nothing learned yet: true edges only"
        highlight = {"R", "r"}
        _draw_panel(axis, "\n".join([key.replace("_", " "), *textwrap.wrap(summary, 48)]), edges, positions, highlight)
    if own_figure:
        handles = [Line2D([], [], color=STYLES[k][1], linestyle=STYLES[k][2], linewidth=STYLES[k][3], label=STYLES[k][0])
                   for k in [*EDGE_KINDS, "true", "learned"] if k in used or (k in EDGE_KINDS and truth_named and learned_named)]
        if handles:
            figure.legend(handles=handles, loc="lower center", ncol=min(4 if len(groups) > 1 else 2, len(handles)),
                          fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=3.5)
        if title:
            figure.suptitle("\n".join(textwrap.wrap(title, int(9 * 4.6 * len(groups)))), fontsize=10)
        figure.tight_layout(rect=(0, 0.12 if len(groups) == 1 else 0.08, 1, 1))
        if path is not None:
            figure.savefig(path, dpi=110)
            plt.close(figure)
    return figure


def plot_graph_grid(rows: list[tuple[str, list[tuple]]], path: str | Path, title: str = "") -> Path | None:
    """The report's grid: one row per agent, one column per run, one mechanism per cell (the
    first one, usually the observational graph when there are two).

    ``rows`` is ``[(agent, [(run label, learned, truth, reward node), ...]), ...]`` with
    structures as :func:`draw_structure` takes them (truth and reward node may be None).
    """
    plt = pyplot()
    from matplotlib.lines import Line2D  # matplotlib is imported on first use (figures.style)

    rows = [(agent, runs) for agent, runs in rows if runs]
    if not rows:
        return None
    columns = max(len(runs) for _, runs in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(3.4 * columns, 3.4 * len(rows) + 0.8), squeeze=False)
    used = set()
    for row, (agent, runs) in enumerate(rows):
        for column in range(columns):
            axis = axes[row][column]
            if column >= len(runs):
                axis.set_axis_off()
                continue
            label, learned, truth, reward_node = runs[column]
            learned, truth = named_masks(learned), named_masks(truth)
            first = next(iter(learned or truth), None)
            if first is None:
                axis.set_axis_off()
                continue
            panels = _classified({first: learned[first]} if learned else {}, truth)
            panels = {first: panels[first]} if first in panels else panels
            name = next(iter(panels))
            kinds = panels[name]
            shape = next(iter(kinds.values())).shape
            sources, targets = _node_names(name, shape, reward_node)
            positions = _layout(name, shape, kinds, truth, reward_node, sources, targets)
            if not positions:
                for x, nodes in ((0.0, sources), (1.0, list(dict.fromkeys(targets)))):
                    for index, node in enumerate(nodes):
                        positions[node] = np.array([x, -(index - (len(nodes) - 1) / 2)])
            edges = [(sources[j], targets[i], kind) for kind, mask in kinds.items() for j, i in zip(*np.nonzero(mask))]
            used |= {kind for *_, kind in edges}
            wrapped = textwrap.wrap(f"{agent} | {label} | {name.replace('_', ' ')}", 40)
            _draw_panel(axis, "\n".join(wrapped), edges, positions, {"R", "r"})
    handles = [Line2D([], [], color=STYLES[k][1], linestyle=STYLES[k][2], linewidth=STYLES[k][3], label=STYLES[k][0])
               for k in STYLES if k in used]
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False,
                      handlelength=3.5)
    if title:
        figure.suptitle("\n".join(textwrap.wrap(title, int(12 * 3.4 * columns))), fontsize=10)
    figure.tight_layout(rect=(0, 0.6 / (3.4 * len(rows) + 0.8), 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
