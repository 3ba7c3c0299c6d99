"""CIP's causal discovery (docs/cip.md b.1): the reward's parents, the state/action -> next-state
structure, the action weights w_a, and the closed reward-free blocks augmentation may swap.

Two fits of the reward, each feeding one part (docs/cip.md b.1):

- r on (s_t, a_t, s_{t+1}): the reward's *state* parents (through s_t or s_{t+1}) and its direct
  action parents. They guard augmentation: a block holding one is never swapped (b.2).
- r on (s_t, a_t), the paper's model (X = [s | a | r]): the action -> reward parents and w_a, so
  an action's effect through the next state counts. With s_{t+1} among the candidates the next
  state screens that effect off (gymnasium's MuJoCo rewards are computed after the step) and
  w_a stays flat.

Spec: docs/cip.md (b.1, b.2), Cao et al., ICLR 2025, arXiv:2502.10097.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from causalrl.agents.cip.augmentation import swappable_blocks
from causalrl.core.stats import (
    adaptive_lasso,
    regression_t_statistics,
    stability_selection,
)

__all__ = [
    "DISCOVERY_METHODS",
    "MIN_DISCOVERY_ROWS",
    "DiscoveryRound",
    "DiscoverySettings",
    "action_products",
    "action_weights",
    "constant_columns",
    "discover",
    "jaccard",
    "recent_transitions",
    "reward_parents",
    "standardised_basis",
    "transition_edges",
]

DISCOVERY_METHODS = ("adaptive-lasso", "direct-lingam")
#: a round needs at least this many transitions (a regression on fewer is meaningless)
MIN_DISCOVERY_ROWS = 10


@dataclass(frozen=True)
class DiscoverySettings:
    """The discovery hyperparameters of :class:`causalrl.agents.cip.CIP` (its docstring gives
    their meaning and defaults)."""

    method: str = "adaptive-lasso"
    basis: str = "interactions"
    next_state: bool = True
    resamples: int = 10
    threshold: float = 0.6
    transition_threshold: float = 5.0
    weight_source: str = "abs"
    weight_temperature: float = 1.0
    constant_tolerance: float = 1e-6


@dataclass
class DiscoveryRound:
    """What one round found (docs/cip.md b.1, b.2); boolean masks are per state or action dimension."""

    reward_state_mask: np.ndarray  # state parents of r through s_t or s_{t+1}: guard augmentation
    reward_action_mask: np.ndarray  # action parents of r in the fit on (s_t, a_t): feed w_a
    direct_action_mask: np.ndarray  # action parents of r in the fit with s_{t+1}: guard augmentation
    state_frequency: np.ndarray
    action_frequency: np.ndarray
    transition_state_mask: np.ndarray  # (S, S), [j, i] = s_j -> s'_i
    transition_action_mask: np.ndarray  # (A, S)
    constant_states: np.ndarray
    swap_blocks: list
    augmentation_status: str
    action_weights: np.ndarray
    reward_coefficients: dict = field(default_factory=dict)
    transition_basis: str = ""
    rows: int = 0


def recent_transitions(buffer, count: int, n_states: int):
    """(s, a, r, s', terminated) of the ``count`` most recent real transitions of an SB3 replay
    buffer, or of all it holds when that is fewer; None below :data:`MIN_DISCOVERY_ROWS`."""
    n_envs = buffer.n_envs
    stored = (buffer.buffer_size if buffer.full else buffer.pos) * n_envs
    count = min(int(count), stored)
    if count < MIN_DISCOVERY_ROWS:
        return None
    rows = (buffer.pos - 1 - np.arange(math.ceil(count / n_envs))) % buffer.buffer_size
    observations = buffer.observations[rows].reshape(-1, n_states)[:count]
    if buffer.optimize_memory_usage:
        next_observations = buffer.observations[(rows + 1) % buffer.buffer_size].reshape(-1, n_states)[:count]
    else:
        next_observations = buffer.next_observations[rows].reshape(-1, n_states)[:count]
    actions = buffer.actions[rows].reshape(-1, buffer.actions.shape[-1])[:count]
    rewards = buffer.rewards[rows].reshape(-1)[:count]
    terminated = (buffer.dones[rows] * (1 - buffer.timeouts[rows])).reshape(-1)[:count]
    return (observations.astype(float), actions.astype(float), rewards.astype(float),
            next_observations.astype(float), terminated.astype(float))


def constant_columns(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Columns whose standard deviation is at most ``tolerance`` (1 + |mean|): (near-)constant
    in this window, such as a force that is identically 0 or varies only by float rounding.
    Standardising such a column divides by a tiny std and turns rounding noise into a
    regressor; they are never parents and never swapped."""
    return values.std(0) <= tolerance * (1.0 + np.abs(values.mean(0)))


def standardised_basis(variables: np.ndarray, kind: str, constant: np.ndarray | None = None) -> np.ndarray:
    """Standardised variables, and their squares with ``kind="quadratic"``; ``constant``
    columns are 0 (so no fit can select them)."""
    scale = variables.std(0)
    unusable = scale <= 0 if constant is None else (constant | (scale <= 0))
    standardised = (variables - variables.mean(0)) / np.where(unusable, 1.0, scale)
    standardised[:, unusable] = 0.0
    if kind == "quadratic":
        return np.concatenate([standardised, standardised ** 2], axis=1)
    return standardised


def action_products(basis: np.ndarray, n_variables: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b.1 step 2: the product of each action's standardised column (the first ``n_variables``
    columns of ``basis``) with every other variable's, once per pair. Returns the product columns
    and, per product, the variables it counts for (its action factors: a product with a state
    counts for the action only, one of two actions for both)."""
    pairs = [(j, i) for j in actions for i in range(n_variables) if i != j and not (i in actions and i < j)]
    products = np.stack([basis[:, j] * basis[:, i] for j, i in pairs], axis=1)
    owners = np.zeros((len(pairs), n_variables), dtype=bool)
    for row, (j, i) in enumerate(pairs):
        owners[row, j] = True
        owners[row, i] = i in actions
    return products, owners


def reward_parents(variables: np.ndarray, target: np.ndarray, settings: DiscoverySettings, seed,
                   constant: np.ndarray | None = None,
                   actions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """b.1: stability-selected parents of ``target`` among the columns of ``variables``
    (``constant`` columns excluded). Returns (kept, frequency, linear coefficient, magnitude) per
    variable; the magnitude (the norm of a variable's coefficients on the standardised target,
    per standard deviation of each regressor) comes from one fit on all rows and is zero for an
    unstable parent. With ``settings.basis="interactions"`` and the indices of the action
    columns in ``actions``, the basis also holds each action's products with the other
    variables (:func:`action_products`, when there are at least 4 rows per column); an action's
    magnitude and selection count them."""
    n_variables = variables.shape[1]
    constant = np.zeros(n_variables, dtype=bool) if constant is None else np.asarray(constant, dtype=bool)
    target = (target - target.mean()) / (target.std() if target.std() > 0 else 1.0)
    if settings.method == "direct-lingam":
        from causallearn.search.FCMBased.lingam import DirectLiNGAM

        usable = np.flatnonzero(~constant)

        def fit(x, y):
            model = DirectLiNGAM(measure="pwling")
            model.fit(np.concatenate([x[:, usable], y[:, None]], axis=1))
            row = np.zeros(n_variables)
            row[usable] = np.asarray(model.adjacency_matrix_)[-1, :-1]
            return row

        linear = fit(variables, target)
        magnitude = np.abs(linear)
        kept, frequency = stability_selection(variables, target, fit, settings.resamples,
                                              threshold=settings.threshold, seed=seed)
    else:
        basis = standardised_basis(variables, "linear" if settings.basis == "linear" else "quadratic", constant)
        blocks = basis.shape[1] // n_variables
        owners = np.tile(np.eye(n_variables, dtype=bool), (blocks, 1))  # (columns, variables)
        if settings.basis == "interactions" and actions is not None and len(actions):
            products, product_owners = action_products(basis, n_variables, np.asarray(actions))
            if basis.shape[1] + products.shape[1] <= variables.shape[0] / 4:
                basis = np.concatenate([basis, products], axis=1)
                owners = np.concatenate([owners, product_owners])

        def select(x, y):
            return (owners & (adaptive_lasso(x, y) != 0)[:, None]).any(0)

        coefficients = adaptive_lasso(basis, target)
        linear = coefficients[:n_variables].copy()
        if basis.shape[1] > n_variables:  # per standard deviation of a square or product column
            coefficients[n_variables:] *= basis[:, n_variables:].std(0)
        magnitude = np.sqrt(owners.T.astype(float) @ coefficients ** 2)
        kept, frequency = stability_selection(basis, target, select, settings.resamples,
                                              threshold=settings.threshold, seed=seed)
    kept = kept & ~constant
    return kept, frequency, linear, np.where(kept, magnitude, 0.0)


def transition_edges(inputs: np.ndarray, next_observations: np.ndarray, settings: DiscoverySettings,
                     constant_inputs: np.ndarray, constant_targets: np.ndarray) -> tuple[np.ndarray, str]:
    """b.2: the (S + A, S) state/action -> next-state edges: |t| above
    ``settings.transition_threshold`` in the regression of each s'_i on the basis of (s, a), plus
    every pairwise product of the standardised inputs when there are at least 4 rows per column
    (couplings such as cos q * qdot in rotating bodies are invisible to an additive basis; a
    product's edge counts for both its factors). Constant inputs and targets get no edge.
    Extra edges only shrink the swappable blocks. Returns (edges, the basis used)."""
    n_rows, n_inputs = inputs.shape
    kind = "linear" if settings.basis == "linear" else "quadratic"
    basis = standardised_basis(inputs, kind, constant_inputs)
    rows, cols = np.triu_indices(n_inputs, 1)
    with_products = kind == "quadratic" and basis.shape[1] + rows.size <= n_rows / 4
    if with_products:
        basis = np.concatenate([basis, basis[:, rows] * basis[:, cols]], axis=1)
    significant = regression_t_statistics(basis, next_observations) > settings.transition_threshold
    blocks = (basis.shape[1] - rows.size * with_products) // n_inputs
    edges = significant[:blocks * n_inputs].reshape(blocks, n_inputs, -1).any(0)
    if with_products:
        products = significant[blocks * n_inputs:]
        np.logical_or.at(edges, rows, products)
        np.logical_or.at(edges, cols, products)
    edges[constant_inputs] = False
    edges[:, constant_targets] = False
    return edges, "quadratic + products" if with_products else kind


def action_weights(magnitude: np.ndarray, linear: np.ndarray, source: str, temperature: float) -> np.ndarray:
    """b.1 step 5: w_a = d_A softmax(score_a / tau), with score_a = |b_a| / max_a' |b_a'|
    (``source="abs"``) or the signed linear coefficient (``"signed"``, as the release)."""
    if source == "abs":  # scale-free: relative to the strongest action parent
        score = magnitude / max(float(magnitude.max()), 1e-12)
    else:
        score = linear
    weights = np.exp((score - score.max()) / temperature)
    return magnitude.size * weights / weights.sum()


def jaccard(current: np.ndarray, previous: np.ndarray | None) -> float | None:
    """|A & B| / |A | B| of two boolean masks (1.0 when both are empty); None without a previous one."""
    if previous is None:
        return None
    union = int((current | previous).sum())
    return 1.0 if union == 0 else int((current & previous).sum()) / union


def discover(data, settings: DiscoverySettings, seed: list[int]) -> DiscoveryRound:
    """b.1 + b.2 on ``data`` = (s, a, r, s', terminated): the reward's (and termination's)
    parents, the state -> state structure, the closed reward-free blocks and w_a."""
    observations, actions, rewards, next_observations, terminated = data
    n_states, n_actions = observations.shape[1], actions.shape[1]
    tolerance = settings.constant_tolerance
    constant_s, constant_a = constant_columns(observations, tolerance), constant_columns(actions, tolerance)
    constant_next = constant_columns(next_observations, tolerance)
    constant_states = constant_s | constant_next
    state_action = np.concatenate([observations, actions], axis=1)
    action_columns = np.arange(n_states, n_states + n_actions)
    constant_sa = np.concatenate([constant_states, constant_a])
    if settings.next_state:
        variables = np.concatenate([state_action, next_observations], axis=1)
        constant = np.concatenate([constant_sa, constant_states])
    else:
        variables, constant = state_action, constant_sa

    def fold(mask):  # a state dimension is a parent through s_t or s_{t+1}
        states = mask[:n_states].copy()
        if settings.next_state:
            states |= mask[n_states + n_actions:]
        return states, mask[n_states:n_states + n_actions].copy()

    # state parents (and direct action parents), which guard augmentation: r on (s_t, a_t, s_{t+1})
    kept, frequency, linear, magnitude = reward_parents(variables, rewards, settings, seed, constant,
                                                        None if settings.next_state else action_columns)
    state_mask, direct_action_mask = fold(kept)
    state_frequency = frequency[:n_states].copy()
    if settings.next_state:
        state_frequency = np.maximum(state_frequency, frequency[n_states + n_actions:])
    # action parents and w_a from the paper's model: r on (s_t, a_t), effects through s_{t+1} included
    if settings.next_state:
        action_fit = reward_parents(state_action, rewards, settings, seed + [2], constant_sa, action_columns)
    else:
        action_fit = (kept, frequency, linear, magnitude)
    actions_in = slice(n_states, n_states + n_actions)
    action_mask = action_fit[0][actions_in].copy()
    weights = action_weights(action_fit[3][actions_in], action_fit[2][actions_in], settings.weight_source,
                             settings.weight_temperature)
    # parents of termination (when the window holds some) are never swapped either
    blocked_states, blocked_actions = state_mask.copy(), direct_action_mask | action_mask
    if 0 < terminated.sum() < terminated.size:
        done_states, done_actions = fold(reward_parents(variables, terminated, settings, seed + [1], constant)[0])
        blocked_states |= done_states
        blocked_actions |= done_actions
    edges, basis = transition_edges(state_action, next_observations, settings, constant_sa, constant_states)
    blocks, status = swappable_blocks(edges[:n_states], edges[n_states:], blocked_states, blocked_actions,
                                      constant_states)
    coefficients = {"linear": linear, "magnitude": magnitude, "frequency": frequency,
                    "action_fit_linear": action_fit[2], "action_fit_magnitude": action_fit[3],
                    "action_fit_frequency": action_fit[1]}
    return DiscoveryRound(state_mask, action_mask, direct_action_mask, state_frequency, action_fit[1][actions_in].copy(),
                          edges[:n_states], edges[n_states:], constant_states, blocks, status, weights, coefficients,
                          basis, observations.shape[0])
