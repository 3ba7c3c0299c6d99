"""Property-based tests of the kernel (hypothesis; derandomised so CI is repeatable)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from causalrl.core.graph import (
    hierarchical_dag,
    is_acyclic,
    paired_mechanism_weights,
    random_upper_triangular_dag,
    remove_cycles_by_weight,
    topological_order,
)
from causalrl.core.metrics import structure_metrics
from causalrl.core.scm import (
    LinearSEM,
    action_to_index,
    all_interventions,
    propagate,
    reward_flow,
)

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
seeds = st.integers(0, 2**31 - 1)


def random_sem(seed: int, n_nodes: int) -> LinearSEM:
    rng = np.random.default_rng(seed)
    observational, interventional = paired_mechanism_weights(n_nodes, rng)
    return LinearSEM(observational, interventional, rng.uniform(-1, 1, n_nodes), rng.uniform(0.5, 1.5, n_nodes))


@SETTINGS
@given(seed=seeds, n_nodes=st.integers(2, 12), edge_prob=st.floats(0.05, 1.0),
       low=st.floats(0.1, 1.0), width=st.floats(0.0, 2.0))
def test_upper_triangular_generator_returns_dags_with_stated_weights(seed, n_nodes, edge_prob, low, width):
    weights = random_upper_triangular_dag(n_nodes, np.random.default_rng(seed), edge_prob, low, low + width)
    assert np.all(np.tril(weights) == 0) and is_acyclic(weights)
    magnitudes = np.abs(weights[weights != 0])
    assert np.all((magnitudes >= low) & (magnitudes <= low + width))
    order = topological_order(weights)
    position = np.argsort(order)
    for parent, child in np.argwhere(weights != 0):
        assert position[parent] < position[child]


@SETTINGS
@given(seed=seeds, n_nodes=st.integers(2, 10))
def test_paper_pairs_differ_in_every_non_root_column(seed, n_nodes):
    observational, interventional = paired_mechanism_weights(n_nodes, np.random.default_rng(seed))
    assert is_acyclic((observational != 0) | (interventional != 0))
    for column in range(1, n_nodes):
        assert not np.array_equal(observational[:, column], interventional[:, column])


@SETTINGS
@given(seed=seeds, per_layer=st.integers(1, 4), layers=st.integers(1, 4))
def test_hierarchical_graphs_are_layered_dags_into_the_reward(seed, per_layer, layers):
    weights = hierarchical_dag(per_layer, layers, np.random.default_rng(seed))
    n_nodes = per_layer * layers + 1
    assert weights.shape == (n_nodes, n_nodes) and is_acyclic(weights)
    assert np.count_nonzero(weights[:, -1]) == per_layer  # last layer feeds the reward node
    assert np.count_nonzero(weights) == per_layer * per_layer * (layers - 1) + per_layer


@SETTINGS
@given(seed=seeds, n_nodes=st.integers(2, 8))
def test_remove_cycles_always_returns_a_dag_subgraph(seed, n_nodes):
    rng = np.random.default_rng(seed)
    weights = np.where(rng.random((n_nodes, n_nodes)) < 0.5, rng.normal(size=(n_nodes, n_nodes)), 0.0)
    np.fill_diagonal(weights, 0.0)
    pruned = remove_cycles_by_weight(weights)
    assert is_acyclic(pruned)
    assert np.all((pruned == 0) | (pruned == weights))


@SETTINGS
@given(seed=seeds, n_nodes=st.integers(1, 9))
def test_intervention_algebra(seed, n_nodes):
    sem = random_sem(seed, n_nodes) if n_nodes > 1 else LinearSEM([[0.0]], [[0.0]])
    arms = all_interventions(n_nodes)
    assert np.array_equal(action_to_index(arms), np.arange(1 << n_nodes))
    assert np.array_equal(sem.weights_under(np.zeros(n_nodes)), sem.observational_weights)
    assert np.array_equal(sem.weights_under(np.ones(n_nodes)), sem.interventional_weights)
    # E[X_N | a] = (column N of (I - B_a)^{-1}) . nu, and each arm's values solve its own SEM
    flow = reward_flow(sem.observational_weights, sem.interventional_weights, arms, sem.reward_node, sem.order)
    assert np.allclose(flow @ sem.noise_mean, sem.expected_rewards(), rtol=1e-9, atol=1e-9)
    values = sem.expected_values()
    rng = np.random.default_rng(seed)
    for arm in rng.choice(len(arms), size=min(8, len(arms)), replace=False):
        system = np.eye(n_nodes) - sem.weights_under(arms[arm]).T
        assert np.allclose(system @ values[arm], sem.noise_mean)


@SETTINGS
@given(seed=seeds, n_nodes=st.integers(2, 8))
def test_intervening_on_a_node_with_equal_mechanisms_changes_nothing(seed, n_nodes):
    sem = random_sem(seed, n_nodes)
    interventional = sem.interventional_weights.copy()
    interventional[:, 0] = sem.observational_weights[:, 0]  # root column: both empty
    same = LinearSEM(sem.observational_weights, interventional, sem.noise_mean, sem.noise_std)
    rewards = same.expected_rewards()
    assert np.allclose(rewards[0::2], rewards[1::2])  # arms differing only in bit 0


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=seeds, n_nodes=st.integers(2, 7))
def test_closed_form_expectations_match_sampling(seed, n_nodes):
    sem = random_sem(seed, n_nodes)
    rng = np.random.default_rng(seed)
    arms = all_interventions(n_nodes)[rng.choice(1 << n_nodes, size=min(4, 1 << n_nodes), replace=False)]
    draws = 4_000
    samples = sem.sample(np.repeat(arms, draws, axis=0), rng).reshape(len(arms), draws, n_nodes)
    standard_error = samples.std(axis=1) / np.sqrt(draws)
    # 5 standard errors per node: P(|z| > 5) = 6e-7, over at most 4 x 7 values per example
    assert np.all(np.abs(samples.mean(axis=1) - sem.expected_values(arms)) < 5 * standard_error + 1e-12)


graphs = st.integers(2, 7).flatmap(lambda n: st.tuples(
    st.lists(st.booleans(), min_size=n * n, max_size=n * n), st.lists(st.booleans(), min_size=n * n, max_size=n * n),
    st.just(n)))


@SETTINGS
@given(graphs)
def test_graph_metrics_identity_and_symmetry(pair):
    first, second, n_nodes = pair
    a = np.array(first).reshape(n_nodes, n_nodes)
    b = np.array(second).reshape(n_nodes, n_nodes)
    np.fill_diagonal(a, False)
    np.fill_diagonal(b, False)
    same = structure_metrics(a, a)
    assert same["shd"] == 0 and same["fnr"] == 0 and same["fpr"] == 0 and same["f1"] == 1
    forward, backward = structure_metrics(a, b), structure_metrics(b, a)
    assert forward["shd"] == backward["shd"]
    assert forward["f1"] == backward["f1"]
    assert forward["precision"] == backward["recall"]
    assert 0 <= forward["shd"] <= np.sum(a ^ b)
    # the metrics of a stack are those of its pieces' pooled edge counts
    stacked = structure_metrics(np.stack([a, a]), np.stack([b, b]))
    assert stacked["shd"] == 2 * forward["shd"] and stacked["fnr"] == forward["fnr"]


@SETTINGS
@given(seed=seeds, n_nodes=st.integers(2, 8), n_arms=st.integers(1, 20))
def test_propagate_matches_direct_solves_for_any_arm_batch(seed, n_nodes, n_arms):
    sem = random_sem(seed, n_nodes)
    rng = np.random.default_rng(seed)
    arms = rng.integers(0, 2, size=(n_arms, n_nodes))
    exogenous = rng.normal(size=(n_arms, n_nodes))
    values = propagate(sem.observational_weights, sem.interventional_weights, arms, exogenous, sem.order)
    for arm, value, eps in zip(arms, values, exogenous):
        assert np.allclose((np.eye(n_nodes) - sem.weights_under(arm).T) @ value, eps)
