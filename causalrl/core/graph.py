"""Directed acyclic graphs as weighted adjacency matrices, and the generators the papers use.

Convention everywhere in causalrl: ``W[j, i]`` is the weight of the edge j -> i, so column i
holds node i's incoming weights and ``W[:, i] != 0`` marks i's parents.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GraphError",
    "validate_adjacency",
    "is_acyclic",
    "topological_order",
    "parents",
    "ancestors",
    "random_upper_triangular_dag",
    "paired_mechanism_weights",
    "hierarchical_dag",
    "chain_dag",
    "remove_cycles_by_weight",
]


class GraphError(ValueError):
    """An adjacency matrix that is not a valid weighted DAG."""


def validate_adjacency(weights, name: str = "adjacency", require_acyclic: bool = True) -> np.ndarray:
    """Return ``weights`` as a float array after checking it is square, finite and acyclic."""
    array = np.asarray(weights, dtype=float)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise GraphError(f"{name}: must be a square N x N matrix, got shape {array.shape}")
    if array.shape[0] == 0:
        raise GraphError(f"{name}: must have at least one node")
    if not np.all(np.isfinite(array)):
        raise GraphError(f"{name}: contains NaN or inf; give finite edge weights")
    if require_acyclic and not is_acyclic(array):
        raise GraphError(f"{name}: graph has a cycle; give a DAG (e.g. a strictly upper-triangular matrix)")
    return array


def topological_order(weights) -> np.ndarray | None:
    """Kahn's algorithm; returns node indices in a topological order, or None if cyclic."""
    adjacency = np.asarray(weights) != 0
    n_nodes = adjacency.shape[0]
    in_degree = adjacency.sum(axis=0).astype(int)
    ready = [i for i in range(n_nodes) if in_degree[i] == 0]
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in np.flatnonzero(adjacency[node]):
            in_degree[child] -= 1
            if in_degree[child] == 0:
                ready.append(int(child))
    if len(order) != n_nodes:
        return None
    return np.array(order, dtype=int)


def is_acyclic(weights) -> bool:
    return topological_order(weights) is not None


def parents(weights, node: int) -> np.ndarray:
    return np.flatnonzero(np.asarray(weights)[:, node] != 0)


def ancestors(weights, node: int) -> np.ndarray:
    """All nodes with a directed path into ``node`` (excluding ``node``)."""
    adjacency = np.asarray(weights) != 0
    found = np.zeros(adjacency.shape[0], dtype=bool)
    frontier = [node]
    while frontier:
        current = frontier.pop()
        for parent in np.flatnonzero(adjacency[:, current]):
            if not found[parent]:
                found[parent] = True
                frontier.append(int(parent))
    found[node] = False
    return np.flatnonzero(found)


def _signed_uniform(rng: np.random.Generator, size, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=size) * rng.choice([-1.0, 1.0], size=size)


def random_upper_triangular_dag(
    n_nodes: int,
    rng: np.random.Generator,
    edge_prob: float = 0.5,
    weight_low: float = 0.5,
    weight_high: float = 2.0,
) -> np.ndarray:
    """Strictly upper-triangular weighted DAG (nodes already in topological order).

    Each of the N(N-1)/2 possible edges is present with probability ``edge_prob``;
    |w| ~ U(weight_low, weight_high) with a uniform random sign (docs/csl-ucb.md (e)).
    """
    mask = np.triu(rng.random((n_nodes, n_nodes)) < edge_prob, k=1)
    return np.where(mask, _signed_uniform(rng, (n_nodes, n_nodes), weight_low, weight_high), 0.0)


def paired_mechanism_weights(
    n_nodes: int,
    rng: np.random.Generator,
    edge_prob: float = 0.5,
    weight_low: float = 0.5,
    weight_high: float = 2.0,
    max_tries: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Observational B and interventional B' for the CSL-UCB paper's generator (docs/csl-ucb.md (e)).

    Both are drawn independently; the pair is redrawn until column i of B differs from column i
    of B' for every non-root node i >= 1 (0-based), so every intervention except on the root
    changes a mechanism.
    """
    for _ in range(max_tries):
        observational = random_upper_triangular_dag(n_nodes, rng, edge_prob, weight_low, weight_high)
        interventional = random_upper_triangular_dag(n_nodes, rng, edge_prob, weight_low, weight_high)
        if all(not np.array_equal(observational[:, i], interventional[:, i]) for i in range(1, n_nodes)):
            return observational, interventional
    raise GraphError("paired_mechanism_weights: could not draw differing columns; raise edge_prob")


def hierarchical_dag(
    nodes_per_layer: int,
    n_layers: int,
    rng: np.random.Generator,
    weight_low: float = 0.25,
    weight_high: float = 1.0,
) -> np.ndarray:
    """The LinSEM paper's hierarchical graph: ``n_layers`` fully connected layers of
    ``nodes_per_layer`` nodes, each node feeding every node of the next layer, and the last
    layer feeding one reward node (index N-1). N = nodes_per_layer * n_layers + 1.
    |w| ~ U(weight_low, weight_high) with random sign (Varici et al., docs/csl-ucb.md (d))."""
    n_nodes = nodes_per_layer * n_layers + 1
    mask = np.zeros((n_nodes, n_nodes), dtype=bool)
    for layer in range(n_layers - 1):
        here = slice(layer * nodes_per_layer, (layer + 1) * nodes_per_layer)
        below = slice((layer + 1) * nodes_per_layer, (layer + 2) * nodes_per_layer)
        mask[here, below] = True
    mask[(n_layers - 1) * nodes_per_layer : n_nodes - 1, n_nodes - 1] = True
    return np.where(mask, _signed_uniform(rng, (n_nodes, n_nodes), weight_low, weight_high), 0.0)


def chain_dag(n_nodes: int, weight: float = 1.0) -> np.ndarray:
    """0 -> 1 -> ... -> N-1 with a constant edge weight."""
    weights = np.zeros((n_nodes, n_nodes))
    weights[np.arange(n_nodes - 1), np.arange(1, n_nodes)] = weight
    return weights


def remove_cycles_by_weight(weights) -> np.ndarray:
    """Remove the smallest-|weight| edges one at a time until the graph is acyclic
    (the post-processing GOLEM/DAGMA baselines use)."""
    pruned = np.array(weights, dtype=float)
    while not is_acyclic(pruned):
        nonzero = np.argwhere(pruned != 0)
        smallest = nonzero[np.argmin(np.abs(pruned[nonzero[:, 0], nonzero[:, 1]]))]
        pruned[smallest[0], smallest[1]] = 0.0
    return pruned
