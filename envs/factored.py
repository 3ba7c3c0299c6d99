"""Factored MDPs with exactly known reward and transition structure (docs/cip.md (a)).

``FactoredLQR`` (``causalrl/FactoredLQR-v0``): a linear-Gaussian system in two independent
blocks,

    relevant block    s_r' = A_r s_r + B_r a_r + w_r      (cost on s_r and a_r)
    distractor block  s_d' = A_d s_d + B_d a_i + w_d      (no cost: reward-irrelevant)
    reward            r_t = -(q |s_r,t|^2 + c |a_r,t|^2),   w ~ N(0, noise_std^2 I)

where a_r are the reward-relevant and a_i the irrelevant action dimensions. The irrelevant
actions are not inert: they drive the distractors, so a learner must find out that moving them
changes the state but never the reward. The blocks never interact, so swapping distractor
dimensions between two real transitions yields another possible transition (what CIP's
counterfactual augmentation assumes). Within each block the masks are sparse (random
triangular couplings, each state driven by at least one action and vice versa), drawn once from
``instance_seed``; the noise stream comes from the seed passed to ``reset``. Observations are
the state ``[s_r, s_d]`` (relevant dimensions first), actions lie in [-1, 1] (larger values are
clipped), episodes truncate after ``horizon`` steps and never terminate.

Scores: the optimal *stationary* policy a_r = -K s_r, a_i = 0, comes from the infinite-horizon
discrete algebraic Riccati equation (``scipy.linalg.solve_discrete_are``) of the relevant block;
``optimal_return`` is its exact expected undiscounted ``horizon``-step return, computed by
propagating the state covariance (no sampling). A policy that does not see the time step cannot
do better than a stationary one up to the last few steps; the time-varying finite-horizon
optimum (backward Riccati recursion, exact) is ``finite_horizon_optimal_return`` and lies within
a fraction of a percent above. The Riccati values ignore the action bound; with the default
scales the gain keeps |K s| < 1 in nearly every step, and the clipped policy's Monte-Carlo
return matches ``optimal_return`` (tests/test_factored.py measures both). ``random_return`` is
the exact expected return of uniform actions on [-1, 1]. ``normalised_score(R)`` maps a return
to 0 = random, 1 = optimal.

``FactoredNonlinear`` (``causalrl/FactoredNonlinear-v0``): the same masks, an absolute-value
cost ``r_t = -(q sum|s_r,t| + c sum|a_r,t|)`` by default (``cost="abs"``: not in a quadratic
regression basis; ``cost="quadratic"`` keeps the LQR cost) and nonlinear dynamics ``s' = A tanh(s) + B (2/pi) sin(pi a / 2) + w`` (slope 1 at the origin, so
its linearisation is the LQR above). No closed-form optimum exists: the reference controller is
the Riccati policy of the linearisation, and ``reference_return`` / ``random_return`` are Monte
Carlo estimates (``MONTE_CARLO_EPISODES`` episodes, fixed seed); ``normalised_score`` maps
0 = random, 1 = reference (scores above 1 are possible).
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from scipy.linalg import solve_discrete_are

from causalrl.core.assumptions import Assumptions
from causalrl.core.checks import check_action, check_int
from causalrl.core.structure import FactoredStructure
from causalrl.envs.render import COLOURS, BarCanvas, Bars, check_render_mode

__all__ = ["FactoredLQR", "FactoredNonlinear", "MONTE_CARLO_EPISODES"]

#: episodes behind the Monte-Carlo scores of FactoredNonlinear
MONTE_CARLO_EPISODES = 200
#: instance draws (documented constants, not knobs): diagonal ranges keep each block stable
RELEVANT_DIAGONAL = (0.9, 1.0)
DISTRACTOR_DIAGONAL = (0.5, 0.9)
RELEVANT_COUPLING = (0.2, 0.5)
DISTRACTOR_COUPLING = (0.1, 0.3)
CONTROL_GAIN = (0.5, 1.0)


#: largest noise, initial-state scale and cost weight accepted: beyond it the squared scales in
#: the exact returns (and the states themselves) overflow float64 within an episode
MAX_SCALE = 1e6


def _non_negative(value, name: str, positive: bool = False, maximum: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if not np.isfinite(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"{name}: must be a {'positive' if positive else 'non-negative'} number, got {value!r}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name}: must be at most {maximum:g} (larger values overflow the returns), got {value!r}")
    return number


def _block_dynamics(size: int, diagonal, coupling, edge_prob: float, rng) -> np.ndarray:
    """Lower-triangular (so the eigenvalues are the diagonal, all < 1) sparse transition matrix."""
    matrix = np.diag(rng.uniform(*diagonal, size))
    rows, cols = np.tril_indices(size, k=-1)
    keep = rng.random(rows.size) < edge_prob
    signs = rng.choice([-1.0, 1.0], rows.size)
    matrix[rows[keep], cols[keep]] = (signs * rng.uniform(*coupling, rows.size))[keep]
    return matrix


def _block_control(n_states: int, n_actions: int, edge_prob: float, rng) -> np.ndarray:
    """Sparse (n_states, n_actions) gains; every state is driven and every action drives."""
    if n_states == 0 or n_actions == 0:
        return np.zeros((n_states, n_actions))
    mask = rng.random((n_states, n_actions)) < edge_prob
    mask[np.arange(n_states), rng.integers(0, n_actions, n_states)] = True
    mask[rng.integers(0, n_states, n_actions), np.arange(n_actions)] = True
    gains = rng.choice([-1.0, 1.0], mask.shape) * rng.uniform(*CONTROL_GAIN, mask.shape)
    return np.where(mask, gains, 0.0)


def _expected_quadratic_returns(dynamics, cost, covariance, action_cost_term, noise_cov, horizon):
    """sum_t -(tr(cost Sigma_t) + action_cost_term) with Sigma_{t+1} = F Sigma_t F' + N."""
    total = 0.0
    for _ in range(horizon):
        total -= np.trace(cost @ covariance) + action_cost_term
        covariance = dynamics @ covariance @ dynamics.T + noise_cov
    return total


class FactoredLQR(gym.Env):
    """Linear-quadratic factored MDP with relevant and distractor blocks (see module docstring).

    :param n_relevant_states: state dimensions that carry cost (>= 1). Default 3.
    :param n_distractor_states: reward-irrelevant state dimensions (>= 0). Default 4.
    :param n_relevant_actions: action dimensions that carry cost and drive the relevant states
        (>= 1). Default 2.
    :param n_irrelevant_actions: action dimensions that drive only the distractors (>= 0).
        Default 2.
    :param horizon: steps per episode (truncation; the env never terminates). Default 50.
    :param noise_std: standard deviation of the Gaussian transition noise. Default 0.1.
    :param initial_state_std: standard deviation of every initial state dimension. Default 1.0.
    :param state_cost: q, the cost weight of each relevant state dimension. Default 1.0.
    :param action_cost: c, the cost weight of each relevant action dimension (> 0). Default 0.1.
    :param edge_prob: probability of each optional within-block edge of the sparse masks.
        Default 0.5.
    :param instance_seed: seed of the dynamics matrices (the noise comes from ``reset``'s seed).
        Default 0.
    :param render_mode: ``"rgb_array"`` for :meth:`render` frames (state, action and reward bars,
        drawn with numpy; docs/worlds.md, "Rendering"), or None. Default None.

    Declares its ``horizon`` to agents (``assumptions``, a
    :class:`~causalrl.core.assumptions.Assumptions`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        n_relevant_states: int = 3,
        n_distractor_states: int = 4,
        n_relevant_actions: int = 2,
        n_irrelevant_actions: int = 2,
        horizon: int = 50,
        noise_std: float = 0.1,
        initial_state_std: float = 1.0,
        state_cost: float = 1.0,
        action_cost: float = 0.1,
        edge_prob: float = 0.5,
        instance_seed: int = 0,
        render_mode: str | None = None,
    ):
        self.render_mode = check_render_mode(render_mode, type(self))
        self.n_relevant_states = check_int(n_relevant_states, "n_relevant_states", minimum=1)
        self.n_distractor_states = check_int(n_distractor_states, "n_distractor_states", minimum=0)
        self.n_relevant_actions = check_int(n_relevant_actions, "n_relevant_actions", minimum=1)
        self.n_irrelevant_actions = check_int(n_irrelevant_actions, "n_irrelevant_actions", minimum=0)
        self.horizon = check_int(horizon, "horizon", minimum=1)
        self.noise_std = _non_negative(noise_std, "noise_std", maximum=MAX_SCALE)
        self.initial_state_std = _non_negative(initial_state_std, "initial_state_std", maximum=MAX_SCALE)
        self.state_cost = _non_negative(state_cost, "state_cost", maximum=MAX_SCALE)
        self.action_cost = _non_negative(action_cost, "action_cost", positive=True, maximum=MAX_SCALE)
        self.edge_prob = _non_negative(edge_prob, "edge_prob")
        if self.edge_prob > 1:
            raise ValueError(f"edge_prob: must lie in [0, 1], got {edge_prob!r}")
        self.instance_seed = check_int(instance_seed, "instance_seed", minimum=0)
        #: what a learner may know about this world (docs/bandits.md "Assumptions")
        self.assumptions = Assumptions(horizon=self.horizon)

        r, d = self.n_relevant_states, self.n_distractor_states
        ra, ia = self.n_relevant_actions, self.n_irrelevant_actions
        self.n_states, self.n_actions = r + d, ra + ia
        rng = np.random.default_rng(self.instance_seed)
        #: A (math convention: s' = A s + B a); the masks are their transposes
        self.dynamics = np.zeros((r + d, r + d))
        self.dynamics[:r, :r] = _block_dynamics(r, RELEVANT_DIAGONAL, RELEVANT_COUPLING, self.edge_prob, rng)
        self.dynamics[r:, r:] = _block_dynamics(d, DISTRACTOR_DIAGONAL, DISTRACTOR_COUPLING, self.edge_prob, rng)
        self.control = np.zeros((r + d, ra + ia))
        self.control[:r, :ra] = _block_control(r, ra, self.edge_prob, rng)
        self.control[r:, ra:] = _block_control(d, ia, self.edge_prob, rng)

        self.observation_space = spaces.Box(-np.inf, np.inf, (r + d,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (ra + ia,), np.float32)
        self._state = np.zeros(r + d)
        self._t = 0
        self._last_action, self._last_reward, self._canvas = np.zeros(ra + ia), 0.0, BarCanvas()
        self._structure = FactoredStructure(
            state_to_reward=np.arange(r + d)[:, None] < r,
            action_to_reward=np.arange(ra + ia)[:, None] < ra,
            state_to_state=self.dynamics.T != 0,
            action_to_state=self.control.T != 0,
        )

    # --- ground truth and scores -----------------------------------------------------------
    @property
    def causal_structure(self) -> FactoredStructure:
        return self._structure

    @functools.cached_property
    def riccati_gain(self) -> np.ndarray:
        """K of the stationary optimal policy a_r = -K s_r (infinite-horizon DARE)."""
        a, b, q, c = self._relevant_block()
        p = solve_discrete_are(a, b, q, c)
        return np.linalg.solve(c + b.T @ p @ b, b.T @ p @ a)

    def optimal_action(self, observation) -> np.ndarray:
        """The Riccati policy's action for one observation (clipped to the action bound)."""
        state = np.asarray(observation, dtype=float)[: self.n_relevant_states]
        action = np.zeros(self.n_actions, dtype=np.float32)
        action[: self.n_relevant_actions] = np.clip(-self.riccati_gain @ state, -1.0, 1.0)
        return action

    @functools.cached_property
    def optimal_return(self) -> float:
        """Exact expected return of the stationary Riccati policy (unclipped) over ``horizon``."""
        a, b, q, c = self._relevant_block()
        k = self.riccati_gain
        return _expected_quadratic_returns(a - b @ k, q + k.T @ c @ k, self._initial_cov(), 0.0,
                                           self._noise_cov(), self.horizon)

    @functools.cached_property
    def finite_horizon_optimal_return(self) -> float:
        """Exact optimum over all (time-varying) policies: backward Riccati recursion, P_H = 0."""
        a, b, q, c = self._relevant_block()
        p, noise_term = np.zeros_like(q), 0.0
        for _ in range(self.horizon):
            noise_term += np.trace(p @ self._noise_cov())
            p = q + a.T @ p @ a - a.T @ p @ b @ np.linalg.solve(c + b.T @ p @ b, b.T @ p @ a)
        return -(np.trace(p @ self._initial_cov()) + noise_term)

    @functools.cached_property
    def random_return(self) -> float:
        """Exact expected return of actions drawn uniformly on [-1, 1] (variance 1/3)."""
        a, b, q, c = self._relevant_block()
        noise = self._noise_cov() + b @ b.T / 3.0
        return _expected_quadratic_returns(a, q, self._initial_cov(), np.trace(c) / 3.0, noise, self.horizon)

    def normalised_score(self, episode_return: float) -> float:
        """0 for the random policy's expected return, 1 for the optimal one."""
        return (float(episode_return) - self.random_return) / (self.optimal_return - self.random_return)

    def _relevant_block(self):
        r, ra = self.n_relevant_states, self.n_relevant_actions
        return (self.dynamics[:r, :r], self.control[:r, :ra],
                self.state_cost * np.eye(r), self.action_cost * np.eye(ra))

    def _initial_cov(self) -> np.ndarray:
        return self.initial_state_std ** 2 * np.eye(self.n_relevant_states)

    def _noise_cov(self) -> np.ndarray:
        return self.noise_std ** 2 * np.eye(self.n_relevant_states)

    # --- gymnasium API ---------------------------------------------------------------------
    def _transition(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        return self.dynamics @ state + self.control @ action

    def reward(self, state, action) -> float:
        """r(s, a) = -(q |s_r|^2 + c |a_r|^2) for the state before the step."""
        state_r = np.asarray(state, dtype=float)[: self.n_relevant_states]
        action_r = np.asarray(action, dtype=float)[: self.n_relevant_actions]
        return -float(self.state_cost * state_r @ state_r + self.action_cost * action_r @ action_r)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.initial_state_std * self.np_random.standard_normal(self.n_states)
        self._t = 0
        self._last_action, self._last_reward = np.zeros(self.n_actions), 0.0
        self._canvas.reset()
        return self._state.astype(np.float32), {}

    def step(self, action):
        action = np.clip(check_action(action, (self.n_actions,)), -1.0, 1.0)
        reward = self.reward(self._state, action)
        noise = self.noise_std * self.np_random.standard_normal(self.n_states)
        self._state = self._transition(self._state, action) + noise
        self._t += 1
        self._last_action, self._last_reward = action, reward
        return self._state.astype(np.float32), reward, False, self._t >= self.horizon, {}

    def render(self):
        """With ``render_mode="rgb_array"``, a uint8 frame of three bands (docs/worlds.md,
        "Rendering"): the state (relevant dimensions blue, distractors grey), the last action
        (relevant orange, irrelevant grey; fixed scale 1) and the last reward (green); None
        otherwise."""
        if self.render_mode != "rgb_array":
            return None
        r, ra = self.n_relevant_states, self.n_relevant_actions
        grey = COLOURS["irrelevant"]
        return self._canvas.frame([
            Bars("state", self._state, [COLOURS["relevant"]] * r + [grey] * self.n_distractor_states),
            Bars("action", self._last_action, [COLOURS["action"]] * ra + [grey] * self.n_irrelevant_actions, scale=1.0),
            Bars("reward", [self._last_reward], [COLOURS["reward"]]),
        ])


class FactoredNonlinear(FactoredLQR):
    """FactoredLQR's masks with dynamics s' = A tanh(s) + B (2/pi) sin(pi a / 2) + w and, by
    default, a cost that is not quadratic.

    Takes FactoredLQR's arguments, plus ``cost``: ``"abs"`` (default) for
    r = -(q sum_i |s_r,i| + c sum_i |a_r,i|), outside a quadratic regression basis, or
    ``"quadratic"`` for FactoredLQR's cost. ``optimal_return`` does not exist here; scores use
    ``reference_return`` (the linearisation's Riccati policy, Monte Carlo) and a Monte-Carlo
    ``random_return`` (see the module docstring).
    """

    def __init__(self, *args, cost: str = "abs", **kwargs):
        if cost not in ("abs", "quadratic"):
            raise ValueError(f"cost: unknown {cost!r}; choose 'abs' or 'quadratic'")
        self.cost = cost
        super().__init__(*args, **kwargs)

    def _costs(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Per-row cost of (state, action) batches under ``cost``."""
        state_r, action_r = states[..., : self.n_relevant_states], actions[..., : self.n_relevant_actions]
        if self.cost == "abs":
            return self.state_cost * np.abs(state_r).sum(-1) + self.action_cost * np.abs(action_r).sum(-1)
        return self.state_cost * (state_r ** 2).sum(-1) + self.action_cost * (action_r ** 2).sum(-1)

    def reward(self, state, action) -> float:
        """r(s, a) = -cost(s_r, a_r) for the state before the step."""
        return -float(self._costs(np.asarray(state, dtype=float), np.asarray(action, dtype=float)))

    def _transition(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        return self.dynamics @ np.tanh(state) + self.control @ (2.0 / np.pi * np.sin(np.pi / 2.0 * action))

    @property
    def optimal_return(self) -> float:
        raise AttributeError("optimal_return: FactoredNonlinear has no closed-form optimum; use reference_return")

    @property
    def finite_horizon_optimal_return(self) -> float:
        raise AttributeError("finite_horizon_optimal_return: FactoredNonlinear has no closed-form optimum")

    def _monte_carlo_return(self, policy) -> float:
        rng = np.random.default_rng([self.instance_seed, 20250210])
        states = self.initial_state_std * rng.standard_normal((MONTE_CARLO_EPISODES, self.n_states))
        total = np.zeros(MONTE_CARLO_EPISODES)
        for _ in range(self.horizon):
            actions = policy(states, rng)
            total -= self._costs(states, actions)
            noise = self.noise_std * rng.standard_normal(states.shape)
            states = (np.tanh(states) @ self.dynamics.T
                      + (2.0 / np.pi * np.sin(np.pi / 2.0 * actions)) @ self.control.T + noise)
        return float(total.mean())

    @functools.cached_property
    def reference_return(self) -> float:
        """Monte-Carlo return of the linearisation's clipped Riccati policy."""
        def policy(states, rng):
            actions = np.zeros((len(states), self.n_actions))
            actions[:, : self.n_relevant_actions] = np.clip(-states[:, : self.n_relevant_states] @ self.riccati_gain.T, -1, 1)
            return actions
        return self._monte_carlo_return(policy)

    @functools.cached_property
    def random_return(self) -> float:
        """Monte-Carlo return of uniform actions on [-1, 1]."""
        return self._monte_carlo_return(lambda states, rng: rng.uniform(-1, 1, (len(states), self.n_actions)))

    def normalised_score(self, episode_return: float) -> float:
        """0 for the random policy, 1 for the linearised Riccati reference controller."""
        return (float(episode_return) - self.random_return) / (self.reference_return - self.random_return)
