"""Explore-then-commit with DAGMA (agents/explore_commit.py, docs/csl-ucb.md (d) item 2)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import causalrl.agents.explore_commit as explore_commit
from causalrl.agents import ExploreThenCommit
from causalrl.core.metrics import structure_metrics
from causalrl.core.registry import AGENTS
from causalrl.core.scm import action_to_index
from causalrl.core.stats import least_squares
from causalrl.envs.bandits import LinearSEMBandit, PiecewiseSEMBandit

N_NODES = 10
EXPLORE = 300
INSTANCE = 0


class _ActionRecorder:
    def __init__(self):
        self.actions = []

    def __call__(self, local_vars, global_vars):
        self.actions.append(np.array(local_vars["action"]))
        return True


@pytest.fixture(scope="module")
def committed():
    """One agent run 2 * explore_rounds + 100 rounds on a paper instance (two DAGMA fits, ~5 s)."""
    pytest.importorskip("dagma")
    env = LinearSEMBandit(n_nodes=N_NODES, instance_seed=INSTANCE, horizon=2000)
    agent = ExploreThenCommit("BanditPolicy", env, seed=1, explore_rounds=EXPLORE)
    recorder = _ActionRecorder()
    agent.learn(2 * EXPLORE + 100, callback=recorder)
    return env, agent, np.stack(recorder.actions)


def test_registered():
    assert AGENTS.get("etc-dagma") is ExploreThenCommit


def test_explores_both_blocks_then_commits_for_good(committed):
    env, agent, actions = committed
    assert np.all(actions[:EXPLORE] == 0)
    assert np.all(actions[EXPLORE:2 * EXPLORE] == 1)
    assert agent.committed_action is not None
    assert np.all(actions[2 * EXPLORE:] == agent.committed_action)
    # it commits to the argmax of its own estimates over all 2^N arms
    assert action_to_index(agent.committed_action) == int(np.argmax(agent.estimated_rewards))
    # measured: on this instance the committed arm is an optimal one (gap 0 of max_a mu_a = 21.5)
    gap = env.optimal_expected_reward - env.expected_rewards[action_to_index(agent.committed_action)]
    assert gap < 0.01
    action, _ = agent.predict(deterministic=True)
    assert np.array_equal(action, agent.committed_action)


def test_learned_observational_graph_is_close(committed):
    env, agent, _ = committed
    structure = agent.learned_structure
    assert set(structure) == {"observational_weights", "interventional_weights"}
    # the runner scores each key against the env's causal_structure field of the same name
    assert all(hasattr(env.causal_structure, key) for key in structure)
    assert structure["observational_weights"].dtype == bool and structure["observational_weights"].shape == (N_NODES, N_NODES)
    metrics = structure_metrics(structure["observational_weights"], env.causal_structure.observational_weights)
    # measured with 300 observational samples over instances 0..19: SHD median 0, max 6; on this
    # instance 0. The bound leaves slack for floating-point differences between platforms.
    assert metrics["shd"] <= 2
    assert metrics["fnr"] <= 0.1


def test_learned_structure_is_none_before_fitting():
    pytest.importorskip("dagma")
    env = LinearSEMBandit(n_nodes=4, instance_seed=0)
    agent = ExploreThenCommit("BanditPolicy", env, explore_rounds=5)
    assert agent.learned_structure is None
    agent.learn(3)
    assert agent.learned_structure is None


def test_save_load_keeps_the_committed_action(committed, tmp_path):
    env, agent, _ = committed
    agent.save(tmp_path / "etc")
    loaded = ExploreThenCommit.load(tmp_path / "etc.zip", env=env)
    assert np.array_equal(loaded.committed_action, agent.committed_action)
    assert np.array_equal(loaded.learned_structure["observational_weights"], agent.learned_structure["observational_weights"])
    recorder = _ActionRecorder()
    loaded.learn(20, callback=recorder, reset_num_timesteps=False)
    assert np.all(np.stack(recorder.actions) == agent.committed_action)


def test_missing_dagma_gives_one_line_install_hint(monkeypatch):
    # a None entry in sys.modules makes `import dagma.linear` raise ImportError
    monkeypatch.setitem(sys.modules, "dagma", None)
    monkeypatch.setitem(sys.modules, "dagma.linear", None)
    with pytest.raises(ImportError) as error:
        explore_commit.dagma_structure(np.zeros((10, 3)))
    message = str(error.value)
    assert "\n" not in message and "pip install -e '.[structure]'" in message
    with pytest.raises(ImportError, match=r"pip install -e '\.\[structure\]'"):
        ExploreThenCommit("BanditPolicy", LinearSEMBandit(n_nodes=3, instance_seed=0))


def test_dagma_structure_returns_a_weighted_dag():
    pytest.importorskip("dagma")
    from causalrl.core.graph import is_acyclic

    rng = np.random.default_rng(0)
    cause = rng.standard_normal(200)
    effect = 1.5 * cause + rng.standard_normal(200)
    samples = np.column_stack([cause, effect])
    original = samples.copy()
    weights = explore_commit.dagma_structure(samples, seed=0)
    assert np.array_equal(samples, original)  # the caller's data are not centred in place
    assert weights.shape == (2, 2) and is_acyclic(weights)
    assert np.count_nonzero(weights) == 1


def _ordered_ols(samples, lambda1=0.03, w_threshold=0.3, seed=None, **_):
    """Stand-in learner for paper instances (nodes already in topological order): OLS of each
    node on all earlier nodes. Lets the detector test run without DAGMA."""
    n_nodes = samples.shape[1]
    weights = np.zeros((n_nodes, n_nodes))
    for node in range(1, n_nodes):
        weights[:node, node] = least_squares(samples[:, :node], samples[:, node] - 1.0)
    return weights


def test_graph_change_detection_restarts_after_a_change(monkeypatch):
    monkeypatch.setattr(explore_commit, "dagma_structure", _ordered_ols)
    monkeypatch.setattr(explore_commit, "_import_dagma_linear", lambda: None)
    # measured: on instance 0 the change at round 700 is flagged on its first sample
    env = PiecewiseSEMBandit(n_nodes=N_NODES, instance_seed=0, change_points=(700,), horizon=1000)
    agent = ExploreThenCommit("BanditPolicy", env, seed=0, change_detection="graph")
    recorder = _ActionRecorder()
    agent.learn(760, callback=recorder)
    assert len(agent.restart_steps) == 1 and 700 < agent.restart_steps[0] <= 720
    restart = agent.restart_steps[0]
    actions = np.stack(recorder.actions)
    assert np.all(actions[restart:] == 0)  # exploring the observational block again
    assert agent.learned_structure is None and agent.committed_action is None


def test_whole_graph_statistic_is_small_under_the_model():
    from causalrl.core.scm import LinearSEM, whole_graph_change_statistic

    weights = np.triu(np.full((4, 4), 0.5), k=1)
    sem = LinearSEM(weights, weights, 1.0, 1.0)
    actions = np.zeros((20, 4))
    samples = sem.sample(actions, np.random.default_rng(0))
    assert whole_graph_change_statistic(samples, actions, weights, weights, 1.0, 1.0) < 1.0
    shifted = samples + 5.0
    assert whole_graph_change_statistic(shifted, actions, weights, weights, 1.0, 1.0) > 1.0


@pytest.mark.parametrize("kwargs", [
    {"structure_learner": "golem"}, {"explore_rounds": 0}, {"change_detection": "cusum"},
    {"lambda1": -1.0}, {"change_detection": "graph", "detection_window": 10},
])
def test_rejects_bad_hyperparameters(kwargs, monkeypatch):
    monkeypatch.setattr(explore_commit, "_import_dagma_linear", lambda: None)
    with pytest.raises(ValueError):
        ExploreThenCommit("BanditPolicy", LinearSEMBandit(n_nodes=N_NODES, instance_seed=0), **kwargs)


def test_refit_weights_replaces_shrunk_weights_by_ols(monkeypatch):
    env = LinearSEMBandit(n_nodes=5, instance_seed=3, horizon=1000)
    sem = env.causal_structure

    calls = []

    def shrunk_truth(samples, lambda1=0.03, w_threshold=0.3, seed=None, **_):
        # the true graph of the block being fitted (observational first), every weight halved
        calls.append(None)
        truth = sem.observational_weights if len(calls) % 2 == 1 else sem.interventional_weights
        return 0.5 * truth

    monkeypatch.setattr(explore_commit, "dagma_structure", shrunk_truth)
    monkeypatch.setattr(explore_commit, "_import_dagma_linear", lambda: None)
    plain = ExploreThenCommit("BanditPolicy", env, seed=0, explore_rounds=200).learn(400)
    refit = ExploreThenCommit("BanditPolicy", env, seed=0, explore_rounds=200, refit_weights=True).learn(400)
    assert np.allclose(plain.estimated_observational_weights, 0.5 * sem.observational_weights)
    assert np.array_equal(refit.learned_structure["observational_weights"], plain.learned_structure["observational_weights"])
    assert np.allclose(refit.estimated_observational_weights, sem.observational_weights, atol=0.2)


def test_expected_rewards_when_the_two_learned_graphs_mix_into_a_cycle():
    observational = np.array([[0.0, 0.8, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # 0 -> 1 -> 2
    interventional = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 2.0, 0.0]])  # 1 -> 0, 2 -> 1
    rewards = explore_commit._expected_rewards_all_arms(observational, interventional, 1.0)
    for arm in range(8):
        bits = (arm >> np.arange(3)) & 1
        mixed = np.where(bits[None, :] > 0, interventional, observational)
        expected = np.linalg.solve(np.eye(3) - mixed.T, np.ones(3))[-1]
        assert rewards[arm] == pytest.approx(expected)


def test_chunked_learn_and_the_plain_loop_equal_one_learn(monkeypatch):
    # the structure learner is stubbed (fast, deterministic) so the test is about the loop only
    monkeypatch.setattr(explore_commit, "dagma_structure", _ordered_ols)
    monkeypatch.setattr(explore_commit, "_import_dagma_linear", lambda: None)

    def fresh():
        return ExploreThenCommit("BanditPolicy", LinearSEMBandit(n_nodes=6, instance_seed=2, horizon=300),
                                 seed=3, explore_rounds=60)

    whole, chunks = _ActionRecorder(), _ActionRecorder()
    one = fresh().learn(300, callback=whole)
    chunked = fresh()
    for part in range(3):
        chunked.learn(100, callback=chunks, reset_num_timesteps=part == 0)
    loop = fresh()
    env = loop.get_env()
    observation, _ = env.reset(seed=3)
    played = []
    for _ in range(300):
        action, _ = loop.predict(observation)
        observation, reward, _, _, info = env.step(action)
        loop.observe(action, observation, reward, info)
        played.append(action)
    np.testing.assert_array_equal(np.stack(chunks.actions), np.stack(whole.actions))
    np.testing.assert_array_equal(np.stack(played), np.stack(whole.actions))
    np.testing.assert_array_equal(loop.committed_action, one.committed_action)
    assert one.committed_action is not None  # it did commit, so both phases were compared
