import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from causalrl.experiment.config.plugins import registered_env_ids


@pytest.mark.parametrize("env_id", registered_env_ids())
def test_every_registered_env_passes_both_checkers(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # style warnings (e.g. unbounded Box) are not failures
        gymnasium_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=False)
    assert hasattr(env.unwrapped, "causal_structure")
    env.close()


def test_bandit_info_contract_and_seeding():
    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=6, instance_seed=4, horizon=3)
    _, info = env.reset(seed=0)
    truth = env.unwrapped.causal_structure
    rewards = truth.expected_rewards()
    assert info["optimal_expected_reward"] == pytest.approx(rewards.max())
    action = np.array([1, 0, 1, 0, 0, 1])
    observation, reward, terminated, truncated, info = env.step(action)
    assert reward == observation[truth.reward_node]
    assert info["expected_reward"] == pytest.approx(rewards[0b100101])
    assert info["arm"] == 0b100101 and not terminated and not truncated
    env.step(action)
    assert env.step(action)[3]  # truncated at the horizon
    # the noise stream comes from reset's seed, the instance from instance_seed
    first = [gym.make("causalrl/LinearSEMBandit-v0", n_nodes=6, instance_seed=4) for _ in range(2)]
    draws = []
    for e in first:
        e.reset(seed=9)
        draws.append(e.step(action)[0])
    assert np.array_equal(draws[0], draws[1])
    other = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=6, instance_seed=5).unwrapped.causal_structure
    assert not np.array_equal(other.observational_weights, truth.observational_weights)


@pytest.mark.parametrize("action", [np.zeros(5), np.zeros((6, 1)), np.full(6, 2), [0, 1]])
def test_bandit_rejects_malformed_actions(action):
    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=6)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^action: expected a 0/1 vector of shape \(6,\)"):
        env.step(action)


@pytest.mark.parametrize("kwargs, field", [
    ({"horizon": 0}, "horizon"),
    ({"noise_std": -1.0}, "noise_std"),
    ({"n_nodes": 0}, "n_nodes"),
    ({"generator": "nope"}, "generator"),
    ({"observational_weights": [[0, 1], [1, 0]], "interventional_weights": [[0, 0], [0, 0]]}, "observational_weights"),
    ({"observational_weights": [[0, 1, 0], [0, 0, 1]], "interventional_weights": [[0, 0], [0, 0]]}, "observational_weights"),
])
def test_bandit_constructor_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        gym.make("causalrl/LinearSEMBandit-v0", **kwargs)


def test_user_given_matrices():
    env = gym.make("causalrl/LinearSEMBandit-v0", observational_weights=[[0, 2.0], [0, 0]],
                   interventional_weights=[[0, -1.0], [0, 0]], noise_mean=1.0)
    assert env.action_space.n == 2
    # mu for a = (0, 0): 1 + 2*1 = 3; intervening on node 1 flips it to 1 - 1 = 0
    assert np.allclose(env.unwrapped.expected_rewards, [3.0, 3.0, 0.0, 0.0])


def test_piecewise_changes_move_the_optimum():
    env = gym.make("causalrl/PiecewiseSEMBandit-v0", n_nodes=8, instance_seed=2,
                   change_points=[50, 120], horizon=200)
    env.reset(seed=0)
    segments = env.unwrapped.segments
    assert len(segments) == 3
    seen_changes = []
    for round_index in range(200):
        *_, info = env.step(np.zeros(8, dtype=int))
        if info["change_point"]:
            seen_changes.append(round_index)
    assert seen_changes == [50, 120]
    for before, after in zip(segments, segments[1:]):
        old, new = before.expected_rewards(), after.expected_rewards()
        previously_optimal = old >= old.max() - 0.01
        assert np.all(new[previously_optimal] < new.max() - 0.01)
        changed_columns = np.any(before.observational_weights != after.observational_weights, axis=0) | np.any(
            before.interventional_weights != after.interventional_weights, axis=0)
        assert 1 <= changed_columns.sum() <= 2  # columns_per_change=2, drawn with replacement
    env.reset(seed=0)
    assert env.unwrapped.causal_structure is segments[0]
    with pytest.raises(ValueError, match="change_points"):
        gym.make("causalrl/PiecewiseSEMBandit-v0", change_points=[300, 100])
