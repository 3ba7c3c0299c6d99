"""Linear-SEM causal bandits, stationary and piecewise stationary (docs/bandits.md; the model is
docs/csl-ucb.md (a), the protocols (e)).

Each round the learner picks which nodes to softly intervene on (``MultiBinary(N)``), observes
the whole sampled vector X, and is paid the reward node's value. The instance (graph and
weights) comes from ``instance_seed``; the noise stream from the seed passed to ``reset``, so a
sweep can hold the instance fixed across agents and seeds.

Each world declares what the papers let a learner know, ``env.unwrapped.assumptions`` (noise mean
and std, horizon, stationarity; docs/bandits.md "Assumptions"); its graph and weights are ground
truth, ``env.unwrapped.causal_structure``.

Per-step ``info`` (the contract documented in the README):
    expected_reward          mu_{a_t} of the played intervention (exact, for pseudo-regret)
    optimal_expected_reward  max_a mu_a of the current instance
    arm                      integer index of the played intervention (bit i = a_i)
    change_point             (piecewise only) True on the first round of a new segment
"""

from __future__ import annotations

import bisect
import dataclasses

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from causalrl.core.assumptions import Assumptions
from causalrl.core.checks import check_int
from causalrl.core.graph import (
    chain_dag,
    hierarchical_dag,
    paired_mechanism_weights,
    topological_order,
)
from causalrl.core.metrics import OPTIMAL_TOLERANCE
from causalrl.core.scm import (
    MAX_ENUMERATED_NODES,
    LinearSEM,
    action_to_index,
    arm_chunks,
)
from causalrl.envs.render import COLOURS, BarCanvas, Bars, check_render_mode

__all__ = ["LinearSEMBandit", "PiecewiseSEMBandit", "check_instance_arguments", "make_instance"]

GENERATORS = ("paper", "hierarchical", "chain")
#: expected values above this (in absolute value) are refused: their squares, which every learner
#: forms (Gram matrices, variances), would overflow float64
VALUE_LIMIT = 1e100


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return float(value)


def check_instance_arguments(n_nodes, instance_seed, generator, edge_prob, weight_low, weight_high,
                             noise_mean, noise_std, nodes_per_layer, generated: bool = True) -> None:
    """One-line ValueErrors (naming the field and the fix) for the generator's arguments."""
    if generated:
        check_int(n_nodes, "n_nodes")
        if n_nodes > MAX_ENUMERATED_NODES:
            raise ValueError(
                f"n_nodes: at most {MAX_ENUMERATED_NODES}; the world and its learners enumerate all 2^N "
                f"interventions (N={n_nodes} is {1 << n_nodes:,} arms: minutes and GBs), use n_nodes <= {MAX_ENUMERATED_NODES}"
            )
        if instance_seed is None:
            raise ValueError("instance_seed: give an integer; None would draw a different, unrecorded instance on every call")
        check_int(instance_seed, "instance_seed", minimum=0)
        if generator not in GENERATORS:
            raise ValueError(f"generator: unknown {generator!r}; choose one of {', '.join(GENERATORS)}")
        if not 0.0 <= _check_real(edge_prob, "edge_prob") <= 1.0:
            raise ValueError(f"edge_prob: a probability, must be in [0, 1], got {edge_prob}")
        low, high = _check_real(weight_low, "weight_low"), _check_real(weight_high, "weight_high")
        if not 0.0 <= low <= high:
            raise ValueError(f"weight_low, weight_high: need 0 <= weight_low <= weight_high (|w| ~ U(low, high)), got {low}, {high}")
        if high > VALUE_LIMIT ** (1.0 / max(n_nodes, 1)):
            raise ValueError(
                f"weight_high: {high:g} lets path products overflow over N={n_nodes} nodes; "
                f"use weight_high <= {VALUE_LIMIT ** (1.0 / max(n_nodes, 1)):.3g}"
            )
        check_int(nodes_per_layer, "nodes_per_layer")
    for name, value in (("noise_mean", noise_mean), ("noise_std", noise_std)):
        try:
            array = None if isinstance(value, str) else np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            array = None
        if array is None or not np.all(np.isfinite(array)) or np.any(np.abs(array) > VALUE_LIMIT):
            raise ValueError(f"{name}: must be finite numbers of magnitude <= {VALUE_LIMIT:g}, got {value!r}")
    if np.any(np.asarray(noise_std, dtype=float) < 0):
        raise ValueError(f"noise_std: must be >= 0, got {noise_std!r}")


def make_instance(
    n_nodes: int,
    instance_seed: int,
    generator: str = "paper",
    edge_prob: float = 0.5,
    weight_low: float = 0.5,
    weight_high: float = 2.0,
    noise_mean: float = 1.0,
    noise_std: float = 1.0,
    nodes_per_layer: int = 3,
    observational_weights=None,
    interventional_weights=None,
) -> LinearSEM:
    """Build the ground-truth SEM of one bandit instance (arguments as :class:`LinearSEMBandit`)."""
    if (observational_weights is None) != (interventional_weights is None):
        raise ValueError("observational_weights/interventional_weights: give both matrices or neither")
    check_instance_arguments(n_nodes, instance_seed, generator, edge_prob, weight_low, weight_high,
                             noise_mean, noise_std, nodes_per_layer, generated=observational_weights is None)
    if observational_weights is None:
        rng = np.random.default_rng(instance_seed)
        if generator == "paper":
            observational_weights, interventional_weights = paired_mechanism_weights(
                n_nodes, rng, edge_prob, weight_low, weight_high
            )
        elif generator == "hierarchical":
            # Varici et al.: layered graph, the intervention flips every sign (B' = -B)
            if (n_nodes - 1) % nodes_per_layer:
                raise ValueError(
                    f"n_nodes: hierarchical graphs need n_nodes = nodes_per_layer * layers + 1, "
                    f"got n_nodes={n_nodes}, nodes_per_layer={nodes_per_layer}"
                )
            observational_weights = hierarchical_dag(nodes_per_layer, (n_nodes - 1) // nodes_per_layer, rng)
            interventional_weights = -observational_weights
        elif generator == "chain":
            observational_weights = chain_dag(n_nodes, 1.0)
            interventional_weights = chain_dag(n_nodes, -1.0)
        else:
            raise ValueError(f"generator: unknown {generator!r}; choose one of {', '.join(GENERATORS)}")
    return LinearSEM(observational_weights, interventional_weights, noise_mean, noise_std)


class LinearSEMBandit(gym.Env):
    """Stationary linear-SEM causal bandit.

    :param n_nodes: N, number of nodes; the last node is the reward node. Default 10.
    :param instance_seed: seed of the instance generator (graph and weights). Default 0.
    :param generator: ``"paper"`` (the CSL-UCB paper's upper-triangular pair, edge probability
        ``edge_prob``, |w| ~ U(weight_low, weight_high)), ``"hierarchical"`` (the LinSEM paper's
        layered graphs, B' = -B), or ``"chain"``; ignored when both weight matrices are given.
        Default ``"paper"``.
    :param edge_prob: probability of each edge of the ``"paper"`` generator. Default 0.5.
    :param weight_low: smallest |w| of a generated edge. Default 0.5.
    :param weight_high: largest |w| of a generated edge. Default 2.0.
    :param noise_mean: nu, mean of the Gaussian noise (a scalar or length N). Default 1.0.
    :param noise_std: sigma, its standard deviation (a scalar or length N, >= 0). Default 1.0.
    :param nodes_per_layer: nodes per layer of the ``"hierarchical"`` generator. Default 3.
    :param horizon: rounds per episode (the episode is truncated there). Default 1500.
    :param observational_weights: user-given B (N x N, ``[j, i]`` = j -> i), with
        ``interventional_weights``. Default None.
    :param interventional_weights: user-given B' (N x N). Default None.
    :param render_mode: ``"rgb_array"`` for :meth:`render` frames (the sampled node values, the
        intervened nodes and the reward, drawn with numpy; docs/worlds.md, "Rendering"), or None.
        Default None.

    Declared to agents (``assumptions``, a :class:`~causalrl.core.assumptions.Assumptions`):
    ``noise_mean``, ``noise_std``, ``horizon`` and ``piecewise_stationary=False``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        n_nodes: int = 10,
        instance_seed: int = 0,
        generator: str = "paper",
        edge_prob: float = 0.5,
        weight_low: float = 0.5,
        weight_high: float = 2.0,
        noise_mean: float = 1.0,
        noise_std: float = 1.0,
        nodes_per_layer: int = 3,
        horizon: int = 1500,
        observational_weights=None,
        interventional_weights=None,
        render_mode: str | None = None,
    ):
        self.render_mode = check_render_mode(render_mode, type(self))
        if observational_weights is None:
            n_nodes = check_int(n_nodes, "n_nodes")
        self.horizon = check_int(horizon, "horizon")
        self.instance_seed = instance_seed
        self._instance_kwargs = dict(
            generator=generator, edge_prob=edge_prob, weight_low=weight_low, weight_high=weight_high,
            noise_mean=noise_mean, noise_std=noise_std, nodes_per_layer=nodes_per_layer,
        )
        self._set_instance(make_instance(
            n_nodes, instance_seed, observational_weights=observational_weights,
            interventional_weights=interventional_weights, **self._instance_kwargs,
        ))
        #: what the papers let a learner know about this world (docs/bandits.md "Assumptions")
        self.assumptions = Assumptions(noise_mean=self._sem.noise_mean, noise_std=self._sem.noise_std,
                                       horizon=self.horizon, piecewise_stationary=False)
        n_nodes = self.causal_structure.n_nodes
        self.action_space = spaces.MultiBinary(n_nodes)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(n_nodes,), dtype=np.float64)
        self.round = 0
        self._canvas, self._last = BarCanvas(), (np.zeros(n_nodes), np.zeros(n_nodes, dtype=np.int8), 0.0, None)

    def _set_instance(self, sem: LinearSEM) -> None:
        if sem.n_nodes > MAX_ENUMERATED_NODES:
            raise ValueError(
                f"observational_weights: at most {MAX_ENUMERATED_NODES} nodes; the world enumerates all 2^N "
                f"interventions (N={sem.n_nodes} is {1 << sem.n_nodes:,} arms), give N <= {MAX_ENUMERATED_NODES}"
            )
        # mu_a of all 2^N arms (arm k = bits of k), chunk by chunk: only the reward column is kept
        # (2^N floats), never the whole (2^N, N) array of expected values
        rewards, largest = [], 0.0
        for chunk in arm_chunks(sem.n_nodes):
            with np.errstate(over="ignore", invalid="ignore"):  # refused below, with one line
                values = sem.expected_values(chunk)
            largest = max(largest, float(np.max(np.abs(values))))
            rewards.append(values[:, sem.reward_node])
        if not largest <= VALUE_LIMIT:  # also catches inf / nan
            raise ValueError(
                f"observational_weights/interventional_weights: expected node values reach {largest:.3g} "
                f"(limit {VALUE_LIMIT:g}, their squares would overflow); use smaller weights"
            )
        self._sem = sem
        self.expected_rewards = np.concatenate(rewards)
        self.expected_rewards.setflags(write=False)
        self.optimal_expected_reward = float(self.expected_rewards.max())

    @property
    def causal_structure(self) -> LinearSEM:
        """Ground truth: a frozen LinearSEM (observational_weights, interventional_weights,
        reward_node, noise_mean, noise_std). Never part of the observation."""
        return self._sem

    def _check_action(self, action) -> np.ndarray:
        array = np.asarray(action)
        n_nodes = self.action_space.n
        if array.shape != (n_nodes,) or not ((array == 0) | (array == 1)).all():
            raise ValueError(
                f"action: expected a 0/1 vector of shape ({n_nodes},) (which nodes to intervene), "
                f"got shape {array.shape}"
            )
        return array.astype(np.int8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.round = 0
        self._canvas.reset()
        self._last = (np.zeros(self.action_space.n), np.zeros(self.action_space.n, dtype=np.int8), 0.0, None)
        return np.zeros(self.action_space.n), {"optimal_expected_reward": self.optimal_expected_reward}

    def _info(self, arm: int) -> dict:
        return {
            "expected_reward": float(self.expected_rewards[arm]),
            "optimal_expected_reward": self.optimal_expected_reward,
            "arm": arm,
        }

    def step(self, action):
        action = self._check_action(action)
        values = self._sem.sample(action, self.np_random)
        self.round += 1
        reward = float(values[self._sem.reward_node])
        arm = action_to_index(action)
        self._last = (values, action, reward, arm)
        return values, reward, False, self.round >= self.horizon, self._info(arm)

    def render(self):
        """With ``render_mode="rgb_array"``, a uint8 frame of three bands (docs/worlds.md,
        "Rendering"): the last sampled node values (the reward node green), the intervened nodes
        (orange bars of height 1) and, on one scale, the reward, the played arm's expected reward
        (light blue) and the best arm's (black); None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        values, action, reward, arm = self._last
        nodes = [COLOURS["relevant"]] * self.action_space.n
        nodes[self._sem.reward_node] = COLOURS["reward"]
        expected = 0.0 if arm is None else float(self.expected_rewards[arm])
        return self._canvas.frame([
            Bars("nodes", values, nodes),
            Bars("intervened", action, [COLOURS["action"]], scale=1.0),
            Bars("reward", [reward, expected, self.optimal_expected_reward],
                 [COLOURS["reward"], COLOURS["expected"], COLOURS["optimal"]]),
        ])


class PiecewiseSEMBandit(LinearSEMBandit):
    """Piecewise-stationary linear-SEM bandit (docs/bandits.md; docs/csl-ucb.md (a), (e)).

    At each round in ``change_points`` a change redraws ``columns_per_change`` node columns
    (sampled with replacement among nodes whose intervention state is the same in every optimal
    action, in the mechanism the optimal action uses: new parents among earlier nodes with prob.
    ``edge_prob``, |w| ~ U(weight_low, weight_high)), repeating until no previously optimal action
    is still optimal. All segments are drawn up front from ``instance_seed``.

    The other arguments are :class:`LinearSEMBandit`'s.

    :param change_points: numbers of rounds after which a new segment starts (strictly
        increasing, each in (0, horizon)). Default (1500, 3000).
    :param columns_per_change: n_col, columns redrawn per change. Default 2.
    :param horizon: rounds per episode. Default 5000.

    Declares ``piecewise_stationary=True`` in its ``assumptions`` (the mechanisms change at
    rounds the learner is not told), so learners that detect changes know to run a detector.
    """

    def __init__(self, change_points=(1500, 3000), columns_per_change: int = 2, horizon: int = 5000, **kwargs):
        check_int(kwargs.get("instance_seed", 0), "instance_seed", minimum=0)  # seeds the change draws
        super().__init__(horizon=horizon, **kwargs)
        self.assumptions = dataclasses.replace(self.assumptions, piecewise_stationary=True)
        points = [int(point) for point in change_points]
        if any(b <= a for a, b in zip(points, points[1:])) or any(p <= 0 or p >= self.horizon for p in points):
            raise ValueError(
                f"change_points: must be strictly increasing rounds in (0, horizon={self.horizon}), got {points}"
            )
        self.change_points = points
        self.columns_per_change = check_int(columns_per_change, "columns_per_change")
        rng = np.random.default_rng([self.instance_seed, 1])
        self.segments = [self._sem]
        for _ in points:
            self.segments.append(self._changed(self.segments[-1], rng))
        self._segment_index = 0

    def _changed(self, sem: LinearSEM, rng: np.random.Generator) -> LinearSEM:
        expected = sem.expected_rewards()
        optimal_arms = np.flatnonzero(expected >= expected.max() - OPTIMAL_TOLERANCE)
        bits = (optimal_arms[:, None] >> np.arange(sem.n_nodes)) & 1
        order = topological_order((sem.observational_weights != 0) | (sem.interventional_weights != 0))
        position = np.empty(sem.n_nodes, dtype=int)
        position[order] = np.arange(sem.n_nodes)
        fixed_nodes = [i for i in range(sem.n_nodes) if np.all(bits[:, i] == bits[0, i]) and position[i] > 0]
        if not fixed_nodes:
            raise ValueError("change_points: this instance has no node whose column can be changed")
        low, high = self._instance_kwargs["weight_low"], self._instance_kwargs["weight_high"]
        for _ in range(10_000):
            weights = {0: sem.observational_weights.copy(), 1: sem.interventional_weights.copy()}
            for node in rng.choice(fixed_nodes, size=self.columns_per_change, replace=True):
                mechanism = weights[int(bits[0, node])]
                earlier = order[: position[node]]
                column = np.zeros(sem.n_nodes)
                present = earlier[rng.random(len(earlier)) < self._instance_kwargs["edge_prob"]]
                column[present] = rng.uniform(low, high, len(present)) * rng.choice([-1.0, 1.0], len(present))
                mechanism[:, node] = column
            candidate = LinearSEM(weights[0], weights[1], sem.noise_mean, sem.noise_std, sem.reward_node)
            new_expected = candidate.expected_rewards()
            if np.all(new_expected[optimal_arms] < new_expected.max() - OPTIMAL_TOLERANCE):
                return candidate
        raise RuntimeError("could not draw a change that moves the optimal action; use another instance_seed")

    def _enter_segment(self, index: int) -> None:
        self._segment_index = index
        self._set_instance(self.segments[index])

    def reset(self, *, seed=None, options=None):
        self._enter_segment(0)
        return super().reset(seed=seed, options=options)

    def step(self, action):
        segment = bisect.bisect_right(self.change_points, self.round)
        change = segment != self._segment_index
        if change:
            self._enter_segment(segment)
        observation, reward, terminated, truncated, info = super().step(action)
        info["change_point"] = change
        return observation, reward, terminated, truncated, info
