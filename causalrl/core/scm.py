"""Linear structural equation models with soft interventions (docs/csl-ucb.md (a)).

``X = B_a^T X + eps``, ``eps ~ N(noise_mean, diag(noise_std^2))``. A soft intervention is a
binary vector ``a``: column i of ``B_a`` is column i of the interventional matrix B' when
``a_i = 1`` and of the observational matrix B otherwise.

Everything over arms is vectorised: ``propagate`` walks the nodes once in topological order and
updates all arms together (O(A N^2) for A arms), so the expected values of all 2^N
interventions cost about as much as one N x N solve per arm in C, without the Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from causalrl.core.graph import GraphError, topological_order, validate_adjacency

__all__ = [
    "MAX_ENUMERATED_NODES",
    "LinearSEM",
    "action_to_index",
    "all_interventions",
    "arm_chunks",
    "propagate",
    "reward_flow",
    "values_and_flow",
    "whole_graph_change_statistic",
]

#: arms per chunk when evaluating all 2^N interventions; bounds memory at large N
ARM_CHUNK = 1 << 16
#: the largest N whose 2^N interventions worlds and agents enumerate: N = 20 is 1M arms (an 8 MB
#: reward vector, seconds to evaluate); N = 26 would be 67M arms, minutes and GBs per evaluation
MAX_ENUMERATED_NODES = 20
#: transfer matrices kept per SEM (N=15: 4096 x 15 x 15 floats = 7 MB)
TRANSFER_CACHE_SIZE = 4096


def all_interventions(n_nodes: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Intervention vectors of arms ``start..stop-1`` (all 2^N by default) as an (A, N) float
    array; arm k has ``a_i = bit i of k``."""
    if n_nodes > 30:
        raise ValueError(f"n_nodes={n_nodes}: 2^N arms cannot be enumerated; use N <= 30")
    indices = np.arange(start, (1 << n_nodes) if stop is None else stop, dtype=np.int64)
    return ((indices[:, None] >> np.arange(n_nodes)) & 1).astype(float)


def arm_chunks(n_nodes: int):
    """All 2^N intervention vectors in chunks of at most ``ARM_CHUNK`` rows (bounded memory)."""
    n_arms = 1 << n_nodes
    for start in range(0, n_arms, ARM_CHUNK):
        yield all_interventions(n_nodes, start, min(start + ARM_CHUNK, n_arms))


def action_to_index(actions) -> np.ndarray | int:
    """Inverse of :func:`all_interventions`: the arm index of each binary action row."""
    array = np.asarray(actions)
    index = (array.astype(np.int64) << np.arange(array.shape[-1])).sum(axis=-1)
    return int(index) if array.ndim == 1 else index


def _permuted(observational, interventional, actions, components):
    """The system relabelled so that ``components`` (a topological order of groups of nodes)
    occupy consecutive indices: the parents of a node then sit in a prefix of the columns, which
    a column-major array reads without copies."""
    permutation = np.concatenate(components)
    block = np.ix_(permutation, permutation)
    return (permutation, np.asarray(observational, dtype=float)[block], np.asarray(interventional, dtype=float)[block],
            np.asfortranarray(np.asarray(actions, dtype=float)[:, permutation]))


def _walk_values(observational, interventional, actions, exogenous, components) -> np.ndarray:
    """``X = B_a^T X + exogenous`` for every arm, nodes already relabelled in component order."""
    n_arms, n_nodes = actions.shape
    values = np.empty((n_arms, n_nodes), order="F")
    start = 0
    for members in components:
        stop = start + len(members)
        prefix = values[:, :start]  # everything this group can depend on
        if stop - start == 1:
            inputs0, inputs1 = prefix @ observational[:start, start], prefix @ interventional[:start, start]
            values[:, start] = exogenous[..., start] + np.where(actions[:, start] > 0, inputs1, inputs0)
        else:  # a strongly connected group: its own edges are solved per arm
            inputs0 = prefix @ observational[:start, start:stop]
            inputs1 = prefix @ interventional[:start, start:stop]
            base = exogenous[..., start:stop] + np.where(actions[:, start:stop] > 0, inputs1, inputs0)
            block = (slice(start, stop), slice(start, stop))
            values[:, start:stop] = _solve_block(base, observational[block], interventional[block],
                                                 actions[:, start:stop], transpose=True)
        start = stop
    return values


def _walk_flow(observational, interventional, actions, reward_node: int, components) -> np.ndarray:
    """Column ``reward_node`` of (I - B_a)^{-1} for every arm, in reverse component order:
    ``f_j = delta_jN + sum_i [B_a]_{ji} f_i``, column i of B_a following a_i. The flow computed so
    far is kept split as f * (1 - a) and f * a, so each group costs two products."""
    n_arms, n_nodes = actions.shape
    flow = np.empty((n_arms, n_nodes), order="F")
    kept = np.empty((n_arms, n_nodes), order="F")  # f * (1 - a): children through B
    swapped = np.empty((n_arms, n_nodes), order="F")  # f * a: children through B'
    stop = n_nodes
    for members in components[::-1]:
        start = stop - len(members)
        later = slice(stop, n_nodes)
        if stop - start == 1:
            base = kept[:, later] @ observational[start, later] + swapped[:, later] @ interventional[start, later]
            base = base + float(start == reward_node)
            flow[:, start] = base
            swapped[:, start] = base * actions[:, start]
            kept[:, start] = base - swapped[:, start]
        else:
            group = slice(start, stop)
            base = kept[:, later] @ observational[group, later].T + swapped[:, later] @ interventional[group, later].T
            base = base + (np.arange(start, stop) == reward_node)
            base = _solve_block(base, observational[group, group], interventional[group, group],
                                actions[:, group], transpose=False)
            flow[:, group] = base
            swapped[:, group] = base * actions[:, group]
            kept[:, group] = base - swapped[:, group]
        stop = start
    return flow


def propagate(observational, interventional, actions, exogenous, order) -> np.ndarray:
    """Solve ``X = B_a^T X + exogenous`` for every row of ``actions`` at once.

    ``actions`` is (A, N) binary, ``exogenous`` broadcasts to (A, N) (the noise mean for expected
    values, a noise draw for samples), ``order`` a topological order valid for every B_a.
    """
    actions = np.atleast_2d(np.asarray(actions, dtype=float))
    components = [np.array([node]) for node in order]
    permutation, observational, interventional, actions = _permuted(observational, interventional, actions, components)
    exogenous = np.broadcast_to(np.asarray(exogenous, dtype=float), actions.shape)[:, permutation]
    values = _walk_values(observational, interventional, actions, exogenous, components)
    result = np.empty(values.shape)
    result[:, permutation] = values
    return result


def reward_flow(observational, interventional, actions, reward_node: int, order) -> np.ndarray:
    """Column ``reward_node`` of the flow matrix ``C_a = (I - B_a)^{-1}`` for every arm: entry j
    is the total causal effect of node j on the reward node (sum over directed paths)."""
    actions = np.atleast_2d(np.asarray(actions, dtype=float))
    components = [np.array([node]) for node in order]
    permutation, observational, interventional, actions = _permuted(observational, interventional, actions, components)
    position = int(np.flatnonzero(permutation == reward_node % len(permutation))[0])
    flow = _walk_flow(observational, interventional, actions, position, components)
    result = np.empty(flow.shape)
    result[:, permutation] = flow
    return result


def _components_in_order(adjacency: np.ndarray) -> list[np.ndarray]:
    """Strongly connected components of a directed graph (N <= ~30), in a topological order of
    the graph of components (reachability closure by repeated squaring)."""
    n_nodes = adjacency.shape[0]
    reach = adjacency.astype(bool) | np.eye(n_nodes, dtype=bool)
    for _ in range(max(1, int(np.ceil(np.log2(max(n_nodes, 2)))))):
        reach = reach | ((reach.astype(np.int64) @ reach.astype(np.int64)) > 0)
    mutual = reach & reach.T
    labels = np.full(n_nodes, -1)
    components = []
    for node in range(n_nodes):
        if labels[node] < 0:
            members = np.flatnonzero(mutual[node])
            labels[members] = len(components)
            components.append(members)
    # component c precedes d when some node of c reaches some node of d; sorting by the number of
    # nodes that reach a component's first node gives a topological order of the components
    upstream = [int(reach[:, members[0]].sum()) for members in components]
    return [components[c] for c in np.argsort(upstream, kind="stable")]


def _solve_block(base: np.ndarray, observational: np.ndarray, interventional: np.ndarray,
                 actions: np.ndarray, transpose: bool) -> np.ndarray:
    """Solve ``x = base + M_a x`` per arm on one strongly connected block, where ``M_a`` is the
    block of ``B_a^T`` (values) or of ``B_a`` (flow). Jacobi passes first: for an arm whose B_a is
    acyclic on the block they reach the exact solution within ``size`` passes, and a pass that
    changes nothing certifies a fixed point; the remaining (cyclic) arms get a direct solve."""
    size = base.shape[1]
    pick = actions > 0
    solution = base.copy()
    for _ in range(size + 1):
        if transpose:  # values: x_i = base_i + sum_j [B_a]_{ji} x_j
            update = base + np.where(pick, solution @ interventional, solution @ observational)
        else:  # flow: f_j = base_j + sum_i [B_a]_{ji} f_i
            update = base + ((solution * ~pick) @ observational.T + (solution * pick) @ interventional.T)
        stable = np.all(update == solution, axis=1)
        solution = update
        if stable.all():
            return solution
    cyclic = np.flatnonzero(~stable)
    chosen = np.where(pick[cyclic][:, None, :], interventional, observational)  # (A', s, s): [B_a]_{ji}
    system = np.eye(size) - (chosen.transpose(0, 2, 1) if transpose else chosen)
    try:
        solution[cyclic] = np.linalg.solve(system, base[cyclic][..., None])[..., 0]
    except np.linalg.LinAlgError:
        solution[cyclic] = np.einsum("aij,aj->ai", np.linalg.pinv(system), base[cyclic])
    return solution


def values_and_flow(observational, interventional, actions, noise_mean, reward_node: int):
    """E[X | a] = (I - B_a)^{-T} nu and column ``reward_node`` of (I - B_a)^{-1} for every arm
    of *estimated* weights, by a walk over the nodes in topological order of the union of both
    mechanisms' graphs. Separately learned B and B' can disagree on an edge's direction, so the
    union can have cycles and some mixed B_a are cyclic: then the walk goes over the union's
    strongly connected components in order and solves each multi-node component per arm
    (:func:`_solve_block`); the cost stays O(A N^2) plus the components' small systems instead
    of one N x N solve per arm.
    """
    actions = np.atleast_2d(np.asarray(actions, dtype=float))
    n_nodes = actions.shape[1]
    noise_mean = np.broadcast_to(np.asarray(noise_mean, dtype=float), (n_nodes,))
    union = (np.asarray(observational) != 0) | (np.asarray(interventional) != 0)
    order = topological_order(union)
    components = [np.array([node]) for node in order] if order is not None else _components_in_order(union)
    permutation, observational, interventional, actions = _permuted(observational, interventional, actions, components)
    position = int(np.flatnonzero(permutation == reward_node % n_nodes)[0])
    values = _walk_values(observational, interventional, actions, noise_mean[permutation], components)
    flow = _walk_flow(observational, interventional, actions, position, components)
    inverse = np.argsort(permutation)
    return values[:, inverse], flow[:, inverse]


def whole_graph_change_statistic(values, actions, observational, interventional, noise_mean, noise_std) -> float:
    """The whole-graph change statistic of docs/csl-ucb.md (c) ("Baseline detector", GOLEM-MAB).

    The Gaussian log-likelihood ratio of the last W rounds under their fitted N(mean, cov)
    against the model, divided by W * N. It is computed on the model-implied exogenous noise
    ``eps_s = (I - B_{a_s})^T X_s``, whose density equals that of X_s under
    N(C_a^T nu, C_a^T Sigma C_a) (unit Jacobian), so rounds with different actions can share a
    window. ``values`` and ``actions`` are (W, N); the fitted covariance is the maximum-likelihood
    one (needs W > N); a degenerate window scores inf.
    """
    values = np.asarray(values, dtype=float)
    window, n_nodes = values.shape
    explained = np.where(np.asarray(actions) > 0, values @ interventional, values @ observational)
    noise = values - explained
    centred = noise - noise.mean(axis=0)
    sign, log_det = np.linalg.slogdet(centred.T @ centred / window)
    if sign <= 0:
        return float("inf")
    variance = np.broadcast_to(np.asarray(noise_std, dtype=float) ** 2, (n_nodes,))
    # sum_s log N(eps_s; m_hat, S_hat) - log N(eps_s; nu, Sigma); the fitted term's quadratic form
    # sums to W * N exactly
    log_ratio = (-0.5 * window * (log_det + n_nodes)
                 + 0.5 * np.sum((noise - noise_mean) ** 2 / variance)
                 + 0.5 * window * np.sum(np.log(variance)))
    return float(log_ratio / (window * n_nodes))


def _as_node_vector(value, n_nodes: int, name: str) -> np.ndarray:
    vector = np.broadcast_to(np.asarray(value, dtype=float), (n_nodes,)).copy()
    if not np.all(np.isfinite(vector)):
        raise GraphError(f"{name}: must be finite")
    return vector


@dataclass(frozen=True, eq=False)
class LinearSEM:
    """A linear SEM with observational and interventional mechanisms.

    :ivar observational_weights: B, (N, N), ``[j, i]`` = weight of j -> i without intervention.
    :ivar interventional_weights: B', (N, N), the weights of node i's column when i is intervened.
    :ivar noise_mean: nu, length N (a scalar broadcasts).
    :ivar noise_std: sigma, length N, every entry >= 0 (a scalar broadcasts).
    :ivar reward_node: index of the reward node (default: the last node).
    """

    observational_weights: np.ndarray
    interventional_weights: np.ndarray
    noise_mean: np.ndarray | float = 1.0
    noise_std: np.ndarray | float = 1.0
    reward_node: int = -1
    order: np.ndarray = field(init=False, repr=False)
    _transfer_cache: dict = field(init=False, repr=False)

    def __post_init__(self):
        observational = validate_adjacency(self.observational_weights, "observational_weights")
        interventional = validate_adjacency(self.interventional_weights, "interventional_weights")
        if observational.shape != interventional.shape:
            raise GraphError(
                f"interventional_weights: shape {interventional.shape} differs from "
                f"observational_weights {observational.shape}; give both N x N"
            )
        n_nodes = observational.shape[0]
        union = (observational != 0) | (interventional != 0)
        order = topological_order(union)
        if order is None:
            raise GraphError(
                "observational_weights/interventional_weights: their union has a cycle; "
                "every mix of the two mechanisms must be a DAG"
            )
        noise_std = _as_node_vector(self.noise_std, n_nodes, "noise_std")
        if np.any(noise_std < 0):
            raise GraphError(f"noise_std: must be >= 0, got {noise_std.min():g}")
        reward_node = self.reward_node % n_nodes if -n_nodes <= self.reward_node < n_nodes else None
        if reward_node is None:
            raise GraphError(f"reward_node: {self.reward_node} is out of range for N={n_nodes}")
        for name, value in [
            ("observational_weights", observational),
            ("interventional_weights", interventional),
            ("noise_mean", _as_node_vector(self.noise_mean, n_nodes, "noise_mean")),
            ("noise_std", noise_std),
            ("reward_node", reward_node),
            ("order", order),
            ("_transfer_cache", {}),
        ]:
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, name, value)

    def __getstate__(self) -> dict:
        # the transfer-matrix cache is derived data: pickles (checkpoints, saved envs) skip it
        return {**self.__dict__, "_transfer_cache": {}}

    def __setstate__(self, state: dict) -> None:
        for value in state.values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)  # ground truth stays read-only after a round trip
        self.__dict__.update(state)

    @property
    def n_nodes(self) -> int:
        return self.observational_weights.shape[0]

    def weights_under(self, action) -> np.ndarray:
        """B_a for one binary action."""
        action = np.asarray(action, dtype=bool)
        return np.where(action[None, :], self.interventional_weights, self.observational_weights)

    def sample(self, actions, rng: np.random.Generator) -> np.ndarray:
        """One draw of X for each row of ``actions`` (shape (A, N), or (N,) for a single draw)."""
        actions = np.asarray(actions, dtype=float)
        single = actions.ndim == 1
        batch = np.atleast_2d(actions)
        noise = self.noise_mean + self.noise_std * rng.standard_normal(batch.shape)
        if single:  # one cached N x N product beats the arm-batched walk for a single draw
            return self.transfer_matrix(action_to_index(batch[0])) @ noise[0]
        return propagate(self.observational_weights, self.interventional_weights, batch, noise, self.order)

    def transfer_matrix(self, arm: int) -> np.ndarray:
        """``(I - B_a^T)^{-1} = C_a^T`` for arm index ``arm`` (so ``X = C_a^T eps``), cached:
        bandit learners replay few arms, so most rounds cost one small product."""
        matrix = self._transfer_cache.get(arm)
        if matrix is None:
            if len(self._transfer_cache) >= TRANSFER_CACHE_SIZE:
                self._transfer_cache.clear()
            action = (arm >> np.arange(self.n_nodes)) & 1
            matrix = np.linalg.inv(np.eye(self.n_nodes) - self.weights_under(action).T)
            self._transfer_cache[arm] = matrix
        return matrix

    def expected_values(self, actions=None) -> np.ndarray:
        """E[X | a] for each row of ``actions`` (all 2^N arms when None), shape (A, N)."""
        if actions is not None:
            return propagate(
                self.observational_weights, self.interventional_weights,
                np.atleast_2d(actions), self.noise_mean, self.order,
            )
        return np.concatenate([self.expected_values(chunk) for chunk in arm_chunks(self.n_nodes)])

    def expected_rewards(self, actions=None) -> np.ndarray:
        """mu_a = [(I - B_a)^{-T} nu]_reward for each arm (all 2^N when ``actions`` is None).
        For all arms only the reward column of each chunk is kept (2^N floats, not 2^N x N)."""
        if actions is not None:
            return self.expected_values(actions)[:, self.reward_node]
        return np.concatenate([self.expected_values(chunk)[:, self.reward_node] for chunk in arm_chunks(self.n_nodes)])
