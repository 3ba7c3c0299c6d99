import numpy as np
import pytest

from causalrl.core.graph import (
    GraphError,
    ancestors,
    chain_dag,
    hierarchical_dag,
    is_acyclic,
    paired_mechanism_weights,
    parents,
    remove_cycles_by_weight,
    topological_order,
    validate_adjacency,
)
from causalrl.core.metrics import structure_metrics
from causalrl.core.scm import LinearSEM, action_to_index, all_interventions, reward_flow
from causalrl.core.stats import least_squares
from causalrl.envs.bandits import make_instance


def test_validate_adjacency_rejects_bad_matrices():
    with pytest.raises(GraphError, match="square"):
        validate_adjacency(np.zeros((2, 3)))
    with pytest.raises(GraphError, match="cycle"):
        validate_adjacency([[0, 1], [1, 0]])
    with pytest.raises(GraphError, match="finite"):
        validate_adjacency([[0, np.nan], [0, 0]])


def test_topological_order_parents_ancestors():
    weights = np.zeros((4, 4))
    weights[2, 0] = weights[0, 1] = weights[1, 3] = 1.0  # 2 -> 0 -> 1 -> 3
    order = list(topological_order(weights))
    assert order.index(2) < order.index(0) < order.index(1) < order.index(3)
    assert list(parents(weights, 1)) == [0]
    assert set(ancestors(weights, 3)) == {0, 1, 2}
    assert topological_order(weights + weights.T) is None


def test_paper_generator_properties():
    rng = np.random.default_rng(7)
    for _ in range(20):
        observational, interventional = paired_mechanism_weights(10, rng)
        for weights in (observational, interventional):
            assert np.all(np.tril(weights) == 0)  # strictly upper triangular
            magnitudes = np.abs(weights[weights != 0])
            assert magnitudes.min() >= 0.5 and magnitudes.max() <= 2.0
        for column in range(1, 10):
            assert not np.array_equal(observational[:, column], interventional[:, column])


def test_hierarchical_and_chain_generators():
    weights = hierarchical_dag(3, 2, np.random.default_rng(0))
    assert weights.shape == (7, 7) and is_acyclic(weights)
    assert np.all(weights[:3, 3:6] != 0) and np.all(weights[3:6, 6] != 0) and np.all(weights[:3, 6] == 0)
    assert list(topological_order(chain_dag(5))) == [0, 1, 2, 3, 4]


def test_remove_cycles_drops_the_weakest_edge():
    weights = np.array([[0, 2.0], [0.1, 0]])
    assert np.array_equal(remove_cycles_by_weight(weights), [[0, 2.0], [0, 0]])


def test_interventions_enumeration_roundtrip():
    arms = all_interventions(5)
    assert arms.shape == (32, 5)
    assert np.array_equal(action_to_index(arms), np.arange(32))
    assert action_to_index([1, 0, 1, 0, 0]) == 5


def test_closed_form_matches_direct_solve_for_every_arm():
    sem = make_instance(8, instance_seed=3)
    arms = all_interventions(8)
    direct = np.array([np.linalg.solve((np.eye(8) - sem.weights_under(a)).T, sem.noise_mean) for a in arms])
    assert np.allclose(sem.expected_values(), direct)
    flow = reward_flow(sem.observational_weights, sem.interventional_weights, arms, sem.reward_node, sem.order)
    inverse_columns = np.array([np.linalg.inv(np.eye(8) - sem.weights_under(a))[:, -1] for a in arms])
    assert np.allclose(flow, inverse_columns)


def test_sampler_solves_the_sem_for_each_draw():
    sem = make_instance(6, instance_seed=1)
    arms = all_interventions(6)[::5]
    samples = sem.sample(arms, np.random.default_rng(0))
    noise = sem.noise_mean + sem.noise_std * np.random.default_rng(0).standard_normal(arms.shape)
    for arm, sample, eps in zip(arms, samples, noise):
        assert np.allclose((np.eye(6) - sem.weights_under(arm).T) @ sample, eps)


def _monte_carlo_z_scores(sem, samples_per_arm, rng, chunk=100):
    arms = all_interventions(sem.n_nodes)
    sums, squares = np.zeros(len(arms)), np.zeros(len(arms))
    batch = np.repeat(arms, chunk, axis=0)
    for _ in range(samples_per_arm // chunk):
        rewards = sem.sample(batch, rng)[:, sem.reward_node].reshape(len(arms), chunk)
        sums += rewards.sum(axis=1)
        squares += (rewards**2).sum(axis=1)
    mean = sums / samples_per_arm
    standard_error = np.sqrt((squares / samples_per_arm - mean**2) / samples_per_arm)
    return (mean - sem.expected_rewards()) / standard_error


@pytest.mark.parametrize("instance_seed", [11, 12])
def test_closed_form_rewards_agree_with_monte_carlo(instance_seed):
    # all 1024 arms of a random N=10 instance; with 2,000 draws per arm each z-score is ~N(0, 1),
    # so |z| > 4 has probability 6e-5 per arm (about 6% over 1024 arms, fixed seed)
    z = _monte_carlo_z_scores(make_instance(10, instance_seed), 2_000, np.random.default_rng(instance_seed))
    assert np.all(np.abs(z) < 4)


@pytest.mark.slow
def test_closed_form_rewards_agree_with_monte_carlo_1e5_samples():
    z = _monte_carlo_z_scores(make_instance(10, 21), 100_000, np.random.default_rng(21), chunk=200)
    assert np.all(np.abs(z) < 4)


def test_linear_sem_validation():
    with pytest.raises(GraphError, match="noise_std"):
        LinearSEM(np.zeros((2, 2)), np.zeros((2, 2)), 1.0, -1.0)
    with pytest.raises(GraphError, match="union has a cycle"):
        LinearSEM([[0, 1], [0, 0]], [[0, 0], [1, 0]])
    with pytest.raises(GraphError, match="differs"):
        LinearSEM(np.zeros((2, 2)), np.zeros((3, 3)))
    sem = LinearSEM([[0, 1], [0, 0]], [[0, 0], [0, 0]])
    with pytest.raises(ValueError):
        sem.observational_weights[0, 1] = 3.0  # ground truth is read-only


def test_structure_metrics_known_values():
    true = np.zeros((3, 3))
    true[0, 1] = true[1, 2] = 1
    learned = np.zeros((3, 3))
    learned[1, 0] = learned[1, 2] = learned[0, 2] = 1  # one reversed, one right, one extra
    scores = structure_metrics(learned, true)
    assert scores["shd"] == 2  # reversed edge counts once, extra edge once
    assert scores["fnr"] == 0.5 and scores["fpr"] == 2 / 4
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == 0.5
    assert structure_metrics(true, true) == {"shd": 0, "fnr": 0, "fpr": 0, "precision": 1, "recall": 1, "f1": 1}


def test_least_squares_recovers_coefficients_and_handles_singular_design():
    rng = np.random.default_rng(0)
    regressors = rng.standard_normal((200, 3))
    targets = regressors @ np.array([1.0, -2.0, 0.5])
    assert np.allclose(least_squares(regressors, targets), [1.0, -2.0, 0.5])
    duplicated = np.column_stack([regressors[:, 0], regressors[:, 0]])
    assert np.allclose(least_squares(duplicated, 2 * regressors[:, 0]), [1.0, 1.0])


def _coordinate_descent_lasso(gram, moment, penalty, sweeps=3000):
    """argmin b'Gb/2 - m'b + penalty |b|_1 by plain cyclic coordinate descent (the test's oracle)."""
    beta = np.zeros(moment.size)
    for _ in range(sweeps):
        for j in range(moment.size):
            rho = moment[j] - gram[j] @ beta + gram[j, j] * beta[j]
            beta[j] = np.sign(rho) * max(abs(rho) - penalty, 0.0) / gram[j, j]
    return beta


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lasso_path_visits_the_support_of_every_penalty(seed):
    """The LARS path of adaptive_lasso yields the lasso support at every penalty, including
    after a coefficient leaves (correlated columns make leaves likely)."""
    from causalrl.core.stats import _lasso_path_supports

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 7)) @ (np.eye(7) + 0.6 * rng.standard_normal((7, 7)))
    y = x[:, 0] - 2 * x[:, 3] + 0.5 * x[:, 5] + rng.standard_normal(300)
    x = (x - x.mean(0)) / x.std(0)
    gram, moment = x.T @ x / 300, x.T @ (y - y.mean()) / 300
    supports = {tuple(int(j) for j in support) for support in _lasso_path_supports(gram, moment)}
    for penalty in np.abs(moment).max() * np.logspace(-0.02, -3, 20):
        beta = _coordinate_descent_lasso(gram, moment, penalty)
        assert tuple(int(j) for j in np.flatnonzero(np.abs(beta) > 1e-7)) in supports, penalty
