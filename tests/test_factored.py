"""Factored worlds with known structure: envs/factored.py, envs/wrappers.py, envs/twin_reacher.py."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env

import causalrl.envs  # noqa: F401  (registers the worlds)
from causalrl.core.structure import FactoredStructure
from causalrl.envs.factored import FactoredLQR, FactoredNonlinear
from causalrl.envs.twin_reacher import TwinReacher
from causalrl.envs.wrappers import DistractorWrapper

NEW_ENV_IDS = [
    "causalrl/FactoredLQR-v0",
    "causalrl/FactoredNonlinear-v0",
    "causalrl/TwinReacher-v0",
    "causalrl/TwinReacherPlain-v0",
    "causalrl/HalfCheetahDistractors-v0",
    "causalrl/HopperDistractors-v0",
]


@pytest.mark.parametrize("env_id", NEW_ENV_IDS)
def test_both_env_checkers_pass(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded Box warnings and "env is wrapped" notes
        gymnasium_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env)
    structure = env.unwrapped.causal_structure
    assert isinstance(structure, FactoredStructure)
    assert structure.n_states == env.observation_space.shape[0]
    assert structure.n_actions == env.action_space.shape[0]
    assert env.observation_space.dtype == np.float32 or "Distractors" in env_id
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    # SB3's make_vec_env builds each env with render_mode="rgb_array", which every world accepts (docs/worlds.md)
    vec_env = make_vec_env(env_id, n_envs=2, seed=0)
    assert vec_env.reset().shape == (2, *env.observation_space.shape)
    vec_env.close()
    env.close()


def test_lqr_ground_truth_shapes_and_blocks():
    env = FactoredLQR(n_relevant_states=3, n_distractor_states=5, n_relevant_actions=2, n_irrelevant_actions=3)
    truth = env.causal_structure
    assert truth.state_to_reward.shape == (8, 1) and truth.action_to_reward.shape == (5, 1)
    assert truth.state_to_state.shape == (8, 8) and truth.action_to_state.shape == (5, 8)
    assert truth.state_to_reward[:, 0].tolist() == [True] * 3 + [False] * 5
    assert truth.action_to_reward[:, 0].tolist() == [True] * 2 + [False] * 3
    # the blocks never interact; irrelevant actions drive distractors (they are not inert)
    assert not truth.state_to_state[3:, :3].any() and not truth.state_to_state[:3, 3:].any()
    assert not truth.action_to_state[2:, :3].any() and truth.action_to_state[2:, 3:].any(axis=1).all()
    with pytest.raises(ValueError):
        truth.state_to_reward[0, 0] = False  # read-only ground truth


@pytest.mark.parametrize("field, value", [
    ("n_relevant_states", 0), ("n_distractor_states", -1), ("horizon", 2.5), ("noise_std", -0.1),
    ("action_cost", 0.0), ("edge_prob", 1.5), ("n_relevant_actions", True),
    ("noise_std", 1e300), ("initial_state_std", 1e7), ("state_cost", float("inf")),
])
def test_bad_constructor_input_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: "):
        FactoredLQR(**{field: value})


def _monte_carlo(env, policy, episodes: int, seed: int) -> np.ndarray:
    from causalrl.core.rollout import episode_returns

    return episode_returns(env, policy, episodes, seed)


def test_riccati_policy_is_optimal_and_its_return_matches_monte_carlo():
    env = FactoredLQR(n_distractor_states=20, n_irrelevant_actions=4)
    assert env.optimal_return > env.random_return
    # the time-varying optimum bounds the stationary policy from above, by little
    assert 0 <= env.finite_horizon_optimal_return - env.optimal_return < 0.01 * abs(env.optimal_return)
    optimal = _monte_carlo(env, env.optimal_action, 300, seed=0)
    random_rng = np.random.default_rng(0)
    random = _monte_carlo(env, lambda _: random_rng.uniform(-1, 1, env.n_actions), 300, seed=10_000)
    # Margin: 4 standard errors of the Monte-Carlo mean (sampling), plus 5% of |optimal_return|
    # for the action clipping the Riccati value ignores (measured: |K s| > 1 in ~1% of steps).
    # Measured on this instance: MC -10.7 +- 0.5 (SE) vs optimal_return -9.28 (random: -1833).
    margin = 4 * optimal.std() / np.sqrt(optimal.size) + 0.05 * abs(env.optimal_return)
    assert abs(optimal.mean() - env.optimal_return) < margin
    assert abs(random.mean() - env.random_return) < 4 * random.std() / np.sqrt(random.size)
    assert env.normalised_score(env.random_return) == pytest.approx(0.0)
    assert env.normalised_score(env.optimal_return) == pytest.approx(1.0)
    assert env.normalised_score(optimal.mean()) > 0.99 > env.normalised_score(np.median(random)) + 0.5


def test_lqr_is_seeded_by_reset_and_instance_seed():
    first, second = FactoredLQR(instance_seed=3), FactoredLQR(instance_seed=3)
    assert np.array_equal(first.dynamics, second.dynamics)
    assert not np.array_equal(first.dynamics, FactoredLQR(instance_seed=4).dynamics)
    action = np.full(first.n_actions, 0.5, dtype=np.float32)
    for env in (first, second):
        env.reset(seed=7)
    assert np.array_equal(first.step(action)[0], second.step(action)[0])


def test_nonlinear_world_keeps_the_masks_and_scores_against_a_reference():
    linear, nonlinear = FactoredLQR(instance_seed=1), FactoredNonlinear(instance_seed=1)
    for name in ("state_to_reward", "action_to_reward", "state_to_state", "action_to_state"):
        assert np.array_equal(getattr(linear.causal_structure, name), getattr(nonlinear.causal_structure, name))
    assert nonlinear.reference_return > nonlinear.random_return
    assert nonlinear.normalised_score(nonlinear.reference_return) == pytest.approx(1.0)
    with pytest.raises(AttributeError, match="optimal_return"):
        _ = nonlinear.optimal_return
    nonlinear.reset(seed=0)
    state = nonlinear._state.copy()
    observation = nonlinear.step(np.zeros(nonlinear.n_actions))[0]
    assert not np.allclose(observation, linear.dynamics @ state, atol=1e-3)  # tanh bends it


def test_distractor_wrapper_composes_an_inner_structure():
    inner = FactoredLQR(n_distractor_states=2, n_irrelevant_actions=1)
    wrapped = DistractorWrapper(inner, 4, kind="random-walk")
    truth, base = wrapped.causal_structure, inner.causal_structure
    assert wrapped.observation_space.shape == (9,)
    assert truth.state_to_reward[:, 0].tolist() == base.state_to_reward[:, 0].tolist() + [False] * 4
    assert np.array_equal(truth.state_to_state[:5, :5], base.state_to_state)
    assert np.array_equal(truth.state_to_state[5:, 5:], np.eye(4, dtype=bool))  # random walk: self only
    assert not truth.state_to_state[5:, :5].any() and not truth.state_to_state[:5, 5:].any()
    assert np.array_equal(truth.action_to_reward, base.action_to_reward)
    assert not truth.action_to_state[:, 5:].any()
    assert not DistractorWrapper(inner, 2, kind="gaussian").causal_structure.state_to_state[5:, 5:].any()
    # the inner trajectory and reward do not change; the distractors are seeded by reset
    reference = FactoredLQR(n_distractor_states=2, n_irrelevant_actions=1)
    obs, _ = wrapped.reset(seed=5)
    ref_obs, _ = reference.reset(seed=5)
    assert np.array_equal(obs[:5], ref_obs) and np.array_equal(wrapped.reset(seed=5)[0], obs)
    for _ in range(3):
        action = np.ones(inner.n_actions, dtype=np.float32) * 0.3
        obs, reward, *_ = wrapped.step(action)
        ref_obs, ref_reward, *_ = reference.step(action)
        assert reward == ref_reward and np.array_equal(obs[:5], ref_obs)


def test_distractor_wrapper_without_inner_structure_and_bad_input():
    wrapped = DistractorWrapper(gym.make("Pendulum-v1"), 3, kind="ar1")
    truth = wrapped.causal_structure
    assert truth.state_to_reward[:, 0].tolist() == [True] * 3 + [False] * 3
    assert truth.state_to_state[:3, :3].all() and truth.action_to_reward.all()
    with pytest.raises(ValueError, match="^kind: "):
        DistractorWrapper(gym.make("Pendulum-v1"), 3, kind="uniform-ish")
    with pytest.raises(ValueError, match="^n_distractors: "):
        DistractorWrapper(gym.make("Pendulum-v1"), 0)
    with pytest.raises(ValueError, match="^env: "):
        DistractorWrapper(gym.make("FrozenLake-v1"), 1)


def test_twin_reacher_arm_b_is_reward_irrelevant_by_construction():
    first, second = TwinReacher(), TwinReacher()
    first.reset(seed=3)
    second.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arm_a = rng.uniform(-1, 1, 2)
        obs_1, reward_1, *_ = first.step(np.r_[arm_a, rng.uniform(-1, 1, 2)].astype(np.float32))
        obs_2, reward_2, *_ = second.step(np.r_[arm_a, rng.uniform(-1, 1, 2)].astype(np.float32))
        assert reward_1 == reward_2 and np.array_equal(obs_1[:8], obs_2[:8])
    assert not np.array_equal(obs_1[8:], obs_2[8:])  # arm B did move differently
    truth = first.causal_structure
    assert np.flatnonzero(truth.state_to_reward[:, 0]).tolist() == [6, 7]
    assert truth.action_to_reward[:, 0].tolist() == [True, True, False, False]
    assert not truth.state_to_state[:8, 8:].any() and not truth.state_to_state[8:, :8].any()
    # the reward is exactly -10 |offset|^2 - 0.1 |a_A|^2 of the observation before the step
    obs, _ = first.reset(seed=1)
    action = np.array([0.5, -0.2, 0.9, 0.9], dtype=np.float32)
    expected = -10 * float(obs[6:8].astype(float) @ obs[6:8].astype(float)) - 0.1 * float(action[:2].astype(float) @ action[:2].astype(float))
    assert first.step(action)[1] == pytest.approx(expected, rel=1e-5)


def test_closed_blocks_of_the_ground_truth():
    """FactoredLQR: the distractors with the actions driving them form the one reward-free block;
    a coupling from a distractor into the relevant block, or a reward parent in it, closes it."""
    env = FactoredLQR(n_relevant_states=3, n_distractor_states=5, n_relevant_actions=2, n_irrelevant_actions=3)
    truth = env.causal_structure
    blocks = truth.closed_blocks()
    assert [(s.tolist(), a.tolist()) for s, a in blocks] == [([3, 4, 5, 6, 7], [2, 3, 4])]
    from causalrl.core.structure import closed_blocks

    leaky = truth.state_to_state.copy()
    leaky[4, 0] = True  # distractor 4 drives relevant state 0
    assert closed_blocks(leaky, truth.action_to_state, truth.state_to_reward[:, 0], truth.action_to_reward[:, 0]) == []
    shared = truth.action_to_state.copy()
    shared[0, 5] = True  # a reward-relevant action also drives distractor 5
    assert closed_blocks(truth.state_to_state, shared, truth.state_to_reward[:, 0], truth.action_to_reward[:, 0]) == []
    # two independent distractor chains are two blocks; isolated noise dimensions are singletons
    s2s = np.zeros((4, 4), dtype=bool)
    s2s[0, 0] = s2s[1, 2] = True
    a2s = np.zeros((2, 4), dtype=bool)
    a2s[0, 0] = a2s[1, 1] = True
    found = closed_blocks(s2s, a2s, np.array([True, False, False, False]), np.array([True, False]))
    assert [(s.tolist(), a.tolist()) for s, a in found] == [([1, 2], [1]), ([3], [])]
    # TwinReacher: arm B with its motors
    assert [(s.tolist(), a.tolist()) for s, a in TwinReacher().causal_structure.closed_blocks()] == \
        [(list(range(8, 14)), [2, 3])]


def test_nonlinear_world_cost_is_not_quadratic():
    world = FactoredNonlinear(instance_seed=1)
    assert world.cost == "abs"
    state, action = np.zeros(world.n_states), np.zeros(world.n_actions)
    state[:3], action[:2] = [0.5, -2.0, 0.0], [0.5, 0.0]
    assert world.reward(state, action) == pytest.approx(-(2.5 + 0.1 * 0.5))
    quadratic = FactoredNonlinear(instance_seed=1, cost="quadratic")
    assert quadratic.reward(state, action) == pytest.approx(-(4.25 + 0.1 * 0.25))
    with pytest.raises(ValueError, match="^cost: "):
        FactoredNonlinear(cost="huber")


def test_twin_reacher_plain_uses_the_distance_after_the_step():
    """Gymnasium's Reacher shape: -|offset_{t+1}| - 0.1 |a_A|^2, with the same ground truth."""
    env = gym.make("causalrl/TwinReacherPlain-v0").unwrapped
    env.reset(seed=2)
    action = np.array([0.7, -0.4, 0.3, 0.3], dtype=np.float32)
    observation, reward, *_ = env.step(action)
    offset = observation[6:8].astype(float)
    assert reward == pytest.approx(-np.sqrt(offset @ offset) - 0.1 * float(action[:2].astype(float) @ action[:2]), rel=1e-5)
    assert np.array_equal(env.causal_structure.state_to_reward, TwinReacher().causal_structure.state_to_reward)
    with pytest.raises(ValueError, match="^distance: "):
        TwinReacher(distance="cubed")
