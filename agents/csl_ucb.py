"""CSL-UCB: causal sub-graph learning + UCB for linear-SEM causal bandits.

Spec: docs/csl-ucb.md (Peng, Zhang, Mitra, IEEE TSP 2025). Comments cite its
sections and steps; the math uses its symbols: B / B' the observational / interventional weight
matrices (``[j, i]`` = weight of j -> i), nu the known noise mean, sigma the noise std, a column
(node i, mechanism b) is a "sub-graph", n[b, i] its sample count since its reset time t_0[b, i],
L[b, i] its "needs relearning" flag, mu_hat_a the estimated expected reward of arm a and U_a its
uncertainty bound.

Speed: every quantity over the 2^N arms is batched linear algebra (``causalrl.core.scm.propagate`` /
``reward_flow``, in chunks of ``ARM_CHUNK`` arms); the per-arm uncertainty is a dot product of the
arm's bits with per-column scalars; the edge-removal scores of a column are memoised per candidate
parent set until that column's samples change.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from causalrl.agents.base import BanditAgent, declared_assumptions
from causalrl.core.checks import check_int
from causalrl.core.graph import is_acyclic
from causalrl.core.mutual_information import ksg_mutual_information_many
from causalrl.core.scm import (
    MAX_ENUMERATED_NODES,
    arm_chunks,
    values_and_flow,
    whole_graph_change_statistic,
)
from causalrl.core.stats import ols_covariance_scale

__all__ = [
    "CHANGE_DETECTION_MODES",
    "CSLUCB",
    "CSLUCBGraphDetection",
    "CSLUCBNoDetection",
    "column_change_statistic",
    "estimate_column",
    "estimate_mechanisms",
    "learn_mechanism_structure",
    "score_arms",
]

CHANGE_DETECTION_MODES = ("auto", "column", "none", "graph")
DETECTION_REFERENCES = ("fit", "known")


# --------------------------------------------------------------------------------------------
# Algorithm A: asymmetric-error structure learning (docs/csl-ucb.md (b) "Algorithm A")
# --------------------------------------------------------------------------------------------
class _ColumnScorer:
    """Edge-removal scores ``s(p -> i) = I_KSG(r; X_p) - w log|b_hat_pi|`` of one column (node
    i under one mechanism) on a fixed sample matrix, memoised per candidate parent set."""

    def __init__(self, samples: np.ndarray, node: int, noise_mean: float, k: int, penalty_weight: float):
        self.samples = np.asarray(samples, dtype=float)
        self.targets = self.samples[:, node] - noise_mean  # y = X_i - nu_i
        self.k = k
        self.penalty_weight = penalty_weight
        self._distances: np.ndarray | None = None  # (N, n, n) |X_j[s] - X_j[r]|, built lazily
        self._memo: dict[int, np.ndarray] = {}

    def release_workspace(self) -> None:
        """Drop the distance matrices (rebuilt on demand); the memo stays."""
        self._distances = None

    def scores(self, candidates: np.ndarray) -> np.ndarray:
        key = int(np.sum(np.left_shift(1, candidates, dtype=np.int64)))
        if key not in self._memo:
            self._memo[key] = self._compute(candidates)
        return self._memo[key]

    def _compute(self, candidates: np.ndarray) -> np.ndarray:
        regressors = self.samples[:, candidates]
        # (b) Algorithm A step 2: OLS of X_i - nu_i on all current candidates (pseudo-inverse, (g) 2)
        coefficients = ols_covariance_scale(regressors) @ (regressors.T @ self.targets)
        residual = self.targets - regressors @ coefficients
        if self.samples.shape[0] > self.k:
            if self._distances is None:
                columns = self.samples.T
                self._distances = np.abs(columns[:, :, None] - columns[:, None, :])
            information = ksg_mutual_information_many(
                regressors, residual, self.k, x_distances=self._distances[candidates]
            )
        else:  # too few samples for k neighbours: no evidence of dependence
            information = np.zeros(len(candidates))
        with np.errstate(divide="ignore"):
            penalty = -self.penalty_weight * np.log(np.abs(coefficients))
        return information + penalty


def _remove_edges_until_acyclic(scorers: list[_ColumnScorer]) -> np.ndarray:
    n_nodes = len(scorers)
    # (b) Algorithm A step 1: start from the complete directed graph
    graph = ~np.eye(n_nodes, dtype=bool)
    scores = np.full((n_nodes, n_nodes), -np.inf)  # -inf marks removed edges
    for node, scorer in enumerate(scorers):
        candidates = np.flatnonzero(graph[:, node])
        scores[candidates, node] = scorer.scores(candidates)
    # (b) Algorithm A step 3: while G has a cycle, remove the edge with the largest score, set its
    # score to -inf, and rescore its column only
    while not is_acyclic(graph):
        parent, node = np.unravel_index(np.argmax(np.where(graph, scores, -np.inf)), scores.shape)
        graph[parent, node] = False
        scores[:, node] = -np.inf
        candidates = np.flatnonzero(graph[:, node])
        if candidates.size:
            scores[candidates, node] = scorers[node].scores(candidates)
    return graph


def learn_mechanism_structure(column_samples, noise_mean, k: int = 5, penalty_weight: float = 1.0) -> np.ndarray:
    """Algorithm A of docs/csl-ucb.md (b): asymmetric-error structure learning of one mechanism.

    Starts from the complete directed graph and removes, one at a time, the edge with the largest
    score ``I_KSG(residual_i; X_p) - penalty_weight * log|b_hat_pi|`` until the graph is a DAG,
    rescoring only the column that lost the edge. There is no sparsity pruning: false positives
    are kept on purpose (they only cost variance; a missed parent biases the weights).

    :param column_samples: length-N sequence; entry i is the (n_i, N) sample matrix used for
        node i (CSL-UCB: the first <= n_max rounds with a_i = b since the column's reset). For
        purely observational data pass the same matrix N times.
    :param noise_mean: nu, scalar or length N (the regression target is X_i - nu_i, no intercept).
    :param k: KSG neighbours (nearest included). Default 5.
    :param penalty_weight: w, weight of the -log|b_hat| term. Default 1.0.
    :return: (N, N) bool adjacency of the learned DAG, ``[j, i]`` = edge j -> i.
    """
    n_nodes = len(column_samples)
    noise_mean = np.broadcast_to(np.asarray(noise_mean, dtype=float), (n_nodes,))
    scorers = [
        _ColumnScorer(np.asarray(samples, dtype=float).reshape(-1, n_nodes), node, noise_mean[node], k, penalty_weight)
        for node, samples in enumerate(column_samples)
    ]
    return _remove_edges_until_acyclic(scorers)


# --------------------------------------------------------------------------------------------
# Weights, per-column uncertainty, and all arms' index (docs/csl-ucb.md (b) step 3.2)
# --------------------------------------------------------------------------------------------
def estimate_column(samples: np.ndarray, parents: np.ndarray, node: int, noise_mean: float, noise_std: float):
    """OLS weights of one column and its uncertainty scalar (docs/csl-ucb.md (b) step 3.2.1 and U_a).

    Regresses X_i - nu_i on X_pa(i) without intercept over ``samples`` (n, N). Returns the
    coefficients (one per parent) and ``sqrt(p (p + 2)) * lambda_max(Sigma_hat(i))`` with
    ``Sigma_hat(i) = sigma_i^2 (X_P^T X_P)^+`` (pseudo-inverse when singular, (g) item 2; sigma^2,
    not sigma^4, (g) item 12); zero for a column without parents.
    """
    if parents.size == 0:
        return np.zeros(0), 0.0  # (b) step 3.2.1: no estimated parents -> zero column
    regressors = samples[:, parents]
    covariance_scale = ols_covariance_scale(regressors)
    coefficients = covariance_scale @ (regressors.T @ (samples[:, node] - noise_mean))
    n_parents = parents.size
    largest = np.linalg.eigvalsh(covariance_scale)[-1]
    return coefficients, math.sqrt(n_parents * (n_parents + 2)) * noise_std**2 * largest


def estimate_mechanisms(column_samples, graphs: np.ndarray, noise_mean, noise_std):
    """OLS weights and per-column uncertainty scalars of both mechanisms.

    :param column_samples: ``column_samples[b][i]`` is the (n, N) sample matrix of column (b, i).
    :param graphs: (2, N, N) bool, the learned G^(0), G^(1).
    :param noise_mean: nu (a scalar or length N).
    :param noise_std: sigma (a scalar or length N).
    :return: weights (2, N, N) = (B_hat, B_hat') and column_uncertainty (2, N), see
        :func:`estimate_column`.
    """
    n_nodes = graphs.shape[-1]
    noise_mean = np.broadcast_to(np.asarray(noise_mean, dtype=float), (n_nodes,))
    noise_std = np.broadcast_to(np.asarray(noise_std, dtype=float), (n_nodes,))
    weights = np.zeros((2, n_nodes, n_nodes))
    column_uncertainty = np.zeros((2, n_nodes))
    for mechanism in range(2):
        for node in range(n_nodes):
            parents = np.flatnonzero(graphs[mechanism][:, node])
            samples = np.asarray(column_samples[mechanism][node], dtype=float)
            coefficients, column_uncertainty[mechanism, node] = estimate_column(
                samples, parents, node, noise_mean[node], noise_std[node]
            )
            weights[mechanism][parents, node] = coefficients
    return weights, column_uncertainty


def score_arms(weights: np.ndarray, column_uncertainty: np.ndarray, noise_mean, delta: float,
               reward_node: int = -1, actions: np.ndarray | None = None):
    """mu_hat_a and U_a of every arm (all 2^N when ``actions`` is None, in ``ARM_CHUNK`` chunks).

    ``U_a = ||[(I - B_hat_a)^{-1}]_{:,N}||_2 * ||mu_hat_a||_2 *
    sqrt(4 ln(2N/delta) * sum_i sqrt(p_i(p_i+2)) lambda_max(Sigma_hat_a(i)))`` (docs/csl-ucb.md (b),
    "as implemented"), with mu_hat_a the full vector (I - B_hat_a)^{-T} nu.

    :return: (estimated_rewards, uncertainties), each of shape (A,).
    """
    n_nodes = weights.shape[-1]
    reward_node = reward_node % n_nodes
    noise_mean = np.broadcast_to(np.asarray(noise_mean, dtype=float), (n_nodes,))
    confidence = 4.0 * math.log(2.0 * n_nodes / delta)
    chunks = [actions] if actions is not None else arm_chunks(n_nodes)
    rewards, uncertainties = [], []
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=float)
        values, flow = values_and_flow(weights[0], weights[1], chunk, noise_mean, reward_node)
        # sum_i over the columns each arm uses: a_i picks B' (entry 1) or B (entry 0)
        variance_sum = chunk @ column_uncertainty[1] + (1.0 - chunk) @ column_uncertainty[0]
        uncertainty = (np.linalg.norm(flow, axis=1) * np.linalg.norm(values, axis=1)
                       * np.sqrt(confidence * variance_sum))
        rewards.append(values[:, reward_node])
        uncertainties.append(uncertainty)
    return np.concatenate(rewards), np.concatenate(uncertainties)


def column_change_statistic(residuals: np.ndarray, noise_std) -> np.ndarray:
    """docs/csl-ucb.md (c) step 4: ``D = log(sigma / s_hat) + mean(e^2) / (2 sigma^2) - 1/2`` over the
    last axis of ``residuals`` (the window), i.e. KL(N(m_hat, s_hat^2) || N(0, sigma^2)) on the
    empirical moments (population std)."""
    residuals = np.asarray(residuals, dtype=float)
    noise_std = np.asarray(noise_std, dtype=float)
    mean_square = np.einsum("...w,...w->...", residuals, residuals) / residuals.shape[-1]
    variance = np.maximum(mean_square - residuals.mean(axis=-1) ** 2, 0.0)  # s_hat^2
    with np.errstate(divide="ignore"):
        return 0.5 * np.log(noise_std**2 / variance) + mean_square / (2.0 * noise_std**2) - 0.5


# --------------------------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------------------------
class CSLUCB(BanditAgent):
    """CSL-UCB (causal sub-graph learning + UCB) for linear-SEM bandits with soft interventions
    on node subsets (Peng, Zhang, Mitra, "Asymmetric Graph Error Control with Low Complexity in
    Causal Bandits"), with the paper's per-column change detection for piecewise-stationary worlds.

    Each round: (1) change detection (piecewise-stationary worlds only), (2) forced uniform
    exploration while some column (node i, mechanism b) has fewer than ``n_es`` samples since its
    reset, else (3) every ``graph_period`` rounds the structure of both mechanisms is relearned
    (Algorithm A), every ``estimate_period`` rounds the weights, mu_hat_a and U_a of all 2^N arms
    are re-estimated and ``argmax_a mu_hat_a + kappa_t U_a`` is chosen, and in between the
    previous action is replayed. The reward node is the last node. See docs/csl-ucb.md (b), (c).

    :param policy, env, seed, verbose: as :class:`~causalrl.agents.base.BanditAgent`.
    :param noise_mean: nu, treated as known ((g) item 3). Default None: the world's declared
        ``noise_mean`` (1.0 when it declares none); a contradicting value is a ``ValueError``.
    :param noise_std: sigma, treated as known. Default None: the world's declared ``noise_std``
        (1.0 when it declares none); same rule.
    :param n_es: minimum samples per column before model-based play starts. Default 20.
    :param graph_period: rounds between structure relearning, F_graph. Default 50.
    :param estimate_period: rounds between weight/bound re-estimation and a new decision, F_est;
        the action is held in between. Default 20.
    :param n_max: per column, only the first ``n_max`` samples since its reset are used for
        regression, mutual information and the bound. Default 100.
    :param k: neighbours of the KSG mutual-information estimator, nearest included. Default 5.
    :param penalty_weight: w, weight of -log|b_hat| in the edge-removal score. Default 1.0.
    :param delta: failure probability inside the uncertainty bound U_a. Default 0.05.
    :param kappa_factor: kappa_0 = kappa_factor * |max_a mu_hat_a| / max_a U_a at the first
        model-based decision; kappa then follows a cosine anneal to 0 at the horizon, restarted at
        the latest column reset. Default 0.5.
    :param horizon: T, the round at which kappa reaches 0. Default None: the world's declared
        ``horizon`` (``env.unwrapped.assumptions``; a contradicting value is a ``ValueError``). The
        schedule never depends on how ``learn`` is called, so ``learn(500)`` three times,
        ``learn(1500)`` and a plain ``predict``/``observe`` loop play the same rounds.
    :param change_detection: ``"auto"`` (``"column"`` when the world declares
        ``piecewise_stationary=True`` in its assumptions, else ``"none"``, so that in stationary
        worlds the agent is the published stationary algorithm), ``"column"`` (docs/csl-ucb.md (c):
        the per-(node, mechanism) detector; a flagged column alone is reset and relearned),
        ``"none"`` (never detect), or ``"graph"`` (ablation: the whole-graph detector of
        docs/csl-ucb.md (c), a Gaussian log-likelihood ratio on the last W rounds normalised by
        W*N, which restarts every column). Default ``"auto"``.
    :param detect_after: change detection runs only for rounds t > detect_after. Default 200.
    :param detection_window: W, the last W samples of each column used by the detector. Default 20.
    :param detection_threshold: a column is flagged when its statistic D exceeds this. Default 2.0.
    :param detection_reference: the null distribution of the column detector's residuals:
        ``"fit"``: N(0, s^2) with s the larger of sigma and the residual standard deviation of
        the column's own fit (RSS / (n - p)), so a column whose fit is poor everywhere
        (Algorithm A missed a parent: its residuals are wide from the start) is not flagged for
        staying poor, while a column that fitted well and then stops fitting is; ``"known"``:
        N(0, sigma^2), the paper's (docs/csl-ucb.md (c), (g) 3). Default ``"fit"``.
    :param detection_samples_per_candidate: c; a column is tested only once the weights it is
        checked against were fitted on at least ``min(n_max, c * N)`` samples, i.e. c per
        candidate parent (Algorithm A starts every column from all N - 1 other nodes) plus one.
        A column relearned from n_es = 20 samples against up to N - 1 candidates often misses
        true parents; the detector would read that misfit as a change, reset the column, relearn
        it from 20 samples again, and so on, which made the false-alarm rate grow with N
        (docs/csl-ucb.md (c)). Default 5.
    :param graph_detection_threshold: threshold of the ``"graph"`` detector. Default 20.0.

    False alarms of the "column" detector forced on in stationary worlds (measured with the
    protocol of ``causalrl bench csl-ucb-nonstationary``, T = 1500, agent seed 0): 0 alarms on 10 instances at
    N = 10, 6 at N = 15 and 3 at N = 18; the bound the tests hold is
    ``STATIONARY_FALSE_ALARMS_PER_1000_ROUNDS`` = 0.5 (docs/csl-ucb.md (c), (e)). Each alarm
    costs about 2 * n_es rounds of forced exploration.

    Diagnostics: every round records, through the agent's SB3 logger (so they land in the rows
    the runner's MetricsCallback writes to progress.csv / TensorBoard), ``csl_ucb/kappa``,
    ``csl_ucb/exploring`` (1 during forced exploration), ``csl_ucb/chosen_estimate`` and
    ``csl_ucb/chosen_bonus`` (mu_hat_a and kappa_t U_a of the arm played, once estimates exist),
    ``csl_ucb/resets`` (columns reset so far) and ``csl_ucb/samples/b{b}_node{i}`` (n[b, i]).

    :ivar learned_structure: {"observational_weights": G^(0), "interventional_weights": G^(1)},
        (N, N) bool, or None before the first structure learning.
    :ivar detections: list of (round, mechanism, node) of every flagged column ("graph": node -1).
    :ivar horizon: the resolved T.
    :ivar change_detection: the resolved detector (``"auto"`` resolved to ``"column"`` or ``"none"``).
    """

    _observed_data = ("history_values",)  # row s-1: the observation of round s

    #: documented bound on the "column" detector's false alarms per 1000 stationary rounds
    STATIONARY_FALSE_ALARMS_PER_1000_ROUNDS = 0.5

    def __init__(self, policy, env, seed=None, verbose=0,
                 noise_mean: float | None = None, noise_std: float | None = None,
                 n_es: int = 20, graph_period: int = 50, estimate_period: int = 20, n_max: int = 100,
                 k: int = 5, penalty_weight: float = 1.0, delta: float = 0.05, kappa_factor: float = 0.5,
                 horizon: int | None = None, change_detection: str = "auto", detect_after: int = 200,
                 detection_window: int = 20, detection_threshold: float = 2.0,
                 detection_samples_per_candidate: float = 5.0, detection_reference: str = "fit",
                 graph_detection_threshold: float = 20.0):
        for name, value in [("n_es", n_es), ("graph_period", graph_period), ("estimate_period", estimate_period),
                            ("n_max", n_max), ("k", k), ("detection_window", detection_window)]:
            check_int(value, name)
        check_int(detect_after, "detect_after", minimum=0)
        if n_max <= k:
            raise ValueError(f"n_max: must exceed k={k} so the KSG estimator has neighbours, got {n_max}")
        if not 0 < delta < 1:
            raise ValueError(f"delta: must be in (0, 1), got {delta}")
        if not kappa_factor >= 0:
            raise ValueError(f"kappa_factor: must be >= 0, got {kappa_factor}")
        if not penalty_weight >= 0:
            raise ValueError(f"penalty_weight: must be >= 0, got {penalty_weight}")
        if detection_reference not in DETECTION_REFERENCES:
            raise ValueError(f"detection_reference: unknown {detection_reference!r}; choose one of {', '.join(DETECTION_REFERENCES)}")
        if not detection_samples_per_candidate >= 0:
            raise ValueError(f"detection_samples_per_candidate: must be >= 0, got {detection_samples_per_candidate}")
        if change_detection not in CHANGE_DETECTION_MODES:
            raise ValueError(f"change_detection: unknown {change_detection!r}; choose one of {', '.join(CHANGE_DETECTION_MODES)}")
        if isinstance(env, str):
            env = gym.make(env)
        n_nodes = env.action_space.shape[0]
        if n_nodes > MAX_ENUMERATED_NODES:
            raise ValueError(f"env: CSL-UCB scores all 2^N arms; N={n_nodes} is too many (N <= {MAX_ENUMERATED_NODES})")
        if change_detection == "auto":  # docs/csl-ucb.md (c): detection only in worlds declared piecewise stationary
            declared = declared_assumptions(env).piecewise_stationary
            change_detection = "column" if declared is True else "none"
        if change_detection == "graph" and detection_window <= n_nodes:
            raise ValueError(
                f"detection_window: the graph detector fits an N x N covariance; need a window > N={n_nodes}, "
                f"got {detection_window}"
            )
        self.n_es, self.graph_period, self.estimate_period, self.n_max = int(n_es), int(graph_period), int(estimate_period), int(n_max)
        self.k, self.penalty_weight, self.delta, self.kappa_factor = int(k), float(penalty_weight), float(delta), float(kappa_factor)
        self.detect_after, self.detection_window = int(detect_after), int(detection_window)
        self.detection_threshold = float(detection_threshold)
        self.change_detection = change_detection
        self.detection_samples_per_candidate = float(detection_samples_per_candidate)
        self.detection_reference = detection_reference
        self.graph_detection_threshold = float(graph_detection_threshold)
        self._horizon_argument = horizon
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std)

    # --- state -------------------------------------------------------------------------------
    def _setup(self) -> None:
        n_nodes = self.n_nodes
        self.horizon = self.declared_horizon(self._horizon_argument)
        if self.horizon is None:
            raise ValueError("horizon: the world declares no horizon (env.unwrapped.assumptions); "
                             "pass CSL-UCB's horizon=T (kappa anneals to 0 at T)")
        if self.change_detection != "none" and np.any(self.per_node(self.noise_std) <= 0):
            raise ValueError("noise_std: the change detectors compare residuals with N(0, sigma^2) and need "
                             "sigma > 0, the world declares 0; use change_detection=\"none\"")
        self.reward_node = n_nodes - 1
        self.round = 0  # t: rounds played so far (over all learn calls)
        self.history_values = np.zeros((1024, n_nodes))  # X_s, row s-1 for round s
        self.history_actions = np.zeros((1024, n_nodes), dtype=np.int8)
        # per column (b, i): n[b, i], t_0[b, i], L[b, i], and the first <= n_max rows since t_0
        self.sample_counts = np.zeros((2, n_nodes), dtype=np.int64)
        self.reset_rounds = np.zeros((2, n_nodes), dtype=np.int64)
        self.needs_relearning = np.ones((2, n_nodes), dtype=bool)
        self.column_rows: list[list[list[int]]] = [[[] for _ in range(n_nodes)] for _ in range(2)]
        self.column_versions = np.zeros((2, n_nodes), dtype=np.int64)  # bumped when a column's data change
        # detection windows: the last W rows with a_i = b over all history (ring buffer)
        self.recent_rows = np.zeros((2, n_nodes, self.detection_window), dtype=np.int64)
        self.recent_counts = np.zeros((2, n_nodes), dtype=np.int64)
        self.graphs: np.ndarray | None = None  # (2, N, N) bool, G^(0), G^(1)
        self.weights: np.ndarray | None = None  # (2, N, N), B_hat, B_hat'
        self.column_uncertainty = np.zeros((2, n_nodes))
        self.fit_counts = np.zeros((2, n_nodes), dtype=np.int64)  # samples behind each column's weights
        self.fit_residual_std = np.full((2, n_nodes), self.noise_std)  # residual std of each column's fit
        self.estimated_rewards: np.ndarray | None = None  # mu_hat_a of every arm at the last refresh
        self.uncertainties: np.ndarray | None = None  # U_a of every arm at the last refresh
        self.kappa0: float | None = None
        self.kappa = 0.0
        self.exploring = True
        self.current_action = np.zeros(n_nodes, dtype=np.int8)
        self.detections: list[tuple[int, int, int]] = []
        self.reset_count = 0  # columns reset by the detector so far
        self._scorers: dict[tuple[int, int], tuple[int, _ColumnScorer]] = {}  # Algorithm A memo
        self._column_fits: dict[tuple[int, int], tuple] = {}  # OLS fit memo per column
        self._graph_versions: list[bytes | None] = [None, None]  # column versions of the last G^(b)
        self._scored_estimates: bytes | None = None  # weights + column uncertainty last scored

    @property
    def learned_structure(self) -> dict | None:
        """The learned DAGs of both mechanisms, or None before the first structure learning."""
        if self.graphs is None:
            return None
        return {"observational_weights": self.graphs[0].copy(), "interventional_weights": self.graphs[1].copy()}

    def _column_samples(self, mechanism: int, node: int) -> np.ndarray:
        return self.history_values[self.column_rows[mechanism][node]]

    # --- (b) main loop ---------------------------------------------------------------------------
    def _select_action(self) -> np.ndarray:
        t = self.round + 1
        # (b) step 1: change detection (after detect_after rounds, once weights exist)
        if self.change_detection != "none" and t > self.detect_after and self.weights is not None:
            if self.change_detection == "column":
                self._detect_column_changes(t)
            else:
                self._detect_graph_change(t)
        # (b) step 2: forced uniform exploration until every column has n_es samples
        self.exploring = bool(self.sample_counts.min() < self.n_es)
        if self.exploring:
            self.current_action = self.rng.integers(0, 2, self.n_nodes, dtype=np.int8)
            return self.current_action
        relearn = bool(self.needs_relearning.any())
        # (b) step 3.1: structure learning when a column needs it or every graph_period rounds
        if relearn or t % self.graph_period == 0:
            self._learn_structure()
        # (b) step 3.2: re-estimate and re-decide when a column needs it or every estimate_period rounds
        if relearn or t % self.estimate_period == 0:
            self._estimate_weights()
            self.needs_relearning[:] = False  # (b) step 3.2.2
            # (b) step 3.2.3: mu_hat_a and U_a of every arm (unchanged estimates: reuse the last ones)
            estimates_key = self.weights.tobytes() + self.column_uncertainty.tobytes()
            if estimates_key != self._scored_estimates:
                self.estimated_rewards, self.uncertainties = score_arms(
                    self.weights, self.column_uncertainty, self.noise_mean, self.delta, self.reward_node
                )
                self._scored_estimates = estimates_key
            self.kappa = self._exploration_coefficient(t)
            # (b) step 3.2.5: play argmax_a mu_hat_a + kappa_t U_a
            best = int(np.argmax(self.estimated_rewards + self.kappa * self.uncertainties))
            self.current_action = ((best >> np.arange(self.n_nodes)) & 1).astype(np.int8)
        # (b) step 3.3: otherwise replay the previous action
        return self.current_action

    def _exploration_coefficient(self, t: int) -> float:
        if self.kappa0 is None:
            # (b) step 3.2.4: kappa_0 = factor * max mu_hat / max U at the first decision. We take
            # |max mu_hat| so the coefficient stays an exploration bonus when rewards are negative.
            largest_uncertainty = float(self.uncertainties.max())
            scale = abs(float(self.estimated_rewards.max()))
            self.kappa0 = self.kappa_factor * scale / largest_uncertainty if largest_uncertainty > 0 else 0.0
            return self.kappa0
        # (b) step 3.2.4: cosine anneal of kappa from kappa_0 to 0 at the declared horizon T,
        # restarted at the latest reset t_r (kappa stays 0 after T)
        latest_reset = int(self.reset_rounds.max())
        progress = min((t - latest_reset) / max(self.horizon - latest_reset, 1), 1.0)
        return self.kappa0 * (1.0 + math.cos(math.pi * progress)) / 2.0

    def _learn_structure(self) -> None:
        """(b) step 3.1: Algorithm A for b = 0 and b = 1 on each column's current samples."""
        graphs = np.zeros((2, self.n_nodes, self.n_nodes), dtype=bool)
        for mechanism in range(2):
            versions = self.column_versions[mechanism].tobytes()
            if self.graphs is not None and self._graph_versions[mechanism] == versions:
                graphs[mechanism] = self.graphs[mechanism]  # no column changed: same result
                continue
            self._graph_versions[mechanism] = versions
            scorers = []
            for node in range(self.n_nodes):
                version = int(self.column_versions[mechanism, node])
                cached = self._scorers.get((mechanism, node))
                if cached is None or cached[0] != version:
                    cached = (version, _ColumnScorer(self._column_samples(mechanism, node), node,
                                                     self.per_node(self.noise_mean)[node], self.k,
                                                     self.penalty_weight))
                    self._scorers[(mechanism, node)] = cached
                scorers.append(cached[1])
            graphs[mechanism] = _remove_edges_until_acyclic(scorers)
            for scorer in scorers:
                scorer.release_workspace()
        self.graphs = graphs

    def _estimate_weights(self) -> None:
        """(b) step 3.2.1 for every column, reusing a column's fit while its samples and parents
        are unchanged."""
        weights = np.zeros((2, self.n_nodes, self.n_nodes))
        noise_mean, noise_std = self.per_node(self.noise_mean), self.per_node(self.noise_std)
        for mechanism in range(2):
            for node in range(self.n_nodes):
                parents = np.flatnonzero(self.graphs[mechanism][:, node])
                key = (int(self.column_versions[mechanism, node]), parents.tobytes())
                cached = self._column_fits.get((mechanism, node))
                if cached is None or cached[0] != key:
                    samples = self._column_samples(mechanism, node)
                    fit = estimate_column(samples, parents, node, noise_mean[node], noise_std[node])
                    residual = samples[:, node] - noise_mean[node] - samples[:, parents] @ fit[0]
                    spread = math.sqrt(residual @ residual / max(len(residual) - parents.size, 1))
                    cached = (key, fit, spread)
                    self._column_fits[(mechanism, node)] = cached
                coefficients, self.column_uncertainty[mechanism, node] = cached[1]
                self.fit_residual_std[mechanism, node] = cached[2]
                weights[mechanism][parents, node] = coefficients
                self.fit_counts[mechanism, node] = len(self.column_rows[mechanism][node])
        self.weights = weights

    def _reset_columns(self, t: int, flagged: np.ndarray) -> None:
        """(b) step 1: t_0 = t - 1, n = 0, L = true for every flagged column."""
        self.reset_rounds[flagged] = t - 1
        self.reset_count += int(flagged.sum())
        self.sample_counts[flagged] = 0
        self.needs_relearning[flagged] = True
        self.column_versions[flagged] += 1
        for mechanism, node in zip(*np.nonzero(flagged)):
            self.column_rows[mechanism][node] = []

    def _detect_column_changes(self, t: int) -> None:
        """(c): per column, residuals of the last W samples under the current B_hat / B_hat'."""
        window_full = self.recent_counts >= self.detection_window
        if not window_full.any():
            return
        samples = self.history_values[self.recent_rows]  # (2, N, W, N)
        # (c) step 2: e_s = X_{i,s} - [B_hat^(b)]_{:,i}^T X_s - nu_i
        loadings = np.eye(self.n_nodes)[None] - self.weights  # column i of (I - B_hat^(b))
        residuals = np.einsum("bnwj,bjn->bnw", samples, loadings) - self.per_node(self.noise_mean)[:, None]
        # (c) steps 3-4, against N(0, sigma^2) with sigma the larger of the known noise std and the
        # column's own fit residual std ("fit", docs/csl-ucb.md (c) and (g) item 3), or the known
        # sigma alone ("known", the paper's)
        reference = self.noise_std
        if self.detection_reference == "fit":
            reference = np.maximum(self.noise_std, self.fit_residual_std)
        statistic = column_change_statistic(residuals, reference)
        # a column is tested once its fit rests on enough samples for its N - 1 candidate parents
        # (Algorithm A starts from all of them): min(n_max, c * N) (docs/csl-ucb.md (c))
        needed = min(self.n_max, math.ceil(self.detection_samples_per_candidate * self.n_nodes))
        testable = window_full & (self.fit_counts >= needed)
        # (c) step 5 and (b) step 1: flag D > threshold, only columns not already relearning
        flagged = testable & (statistic > self.detection_threshold) & ~self.needs_relearning
        if flagged.any():
            self.detections.extend((t, int(b), int(i)) for b, i in zip(*np.nonzero(flagged)))
            self._reset_columns(t, flagged)

    def _detect_graph_change(self, t: int) -> None:
        """(c) baseline detector: whole-graph Gaussian log-likelihood ratio on the last W rounds,
        normalised by W*N; a detection restarts every column (and kappa_0)."""
        window = self.detection_window
        latest_reset = int(self.reset_rounds.max())
        if self.needs_relearning.any() or self.round - latest_reset < window:
            return
        statistic = whole_graph_change_statistic(
            self.history_values[self.round - window : self.round], self.history_actions[self.round - window : self.round],
            self.weights[0], self.weights[1], self.noise_mean, self.noise_std,
        )
        if statistic > self.graph_detection_threshold:
            self.detections.append((t, -1, -1))
            self._reset_columns(t, np.ones((2, self.n_nodes), dtype=bool))
            self.kappa0 = None

    # --- (b) step 4: record the round ----------------------------------------------------------
    def _update(self, action, observation, reward) -> None:
        row = self.round
        if row == self.history_values.shape[0]:
            self.history_values = np.concatenate([self.history_values, np.zeros_like(self.history_values)])
            self.history_actions = np.concatenate([self.history_actions, np.zeros_like(self.history_actions)])
        self.history_values[row] = observation
        self.history_actions[row] = action
        self.round += 1
        mechanisms = np.asarray(action, dtype=np.int64)
        nodes = np.arange(self.n_nodes)
        collecting = self.sample_counts[mechanisms, nodes] < self.n_max  # only the first n_max are kept
        for node in np.flatnonzero(collecting):
            self.column_rows[mechanisms[node]][node].append(row)
        self.column_versions[mechanisms[collecting], nodes[collecting]] += 1
        self.sample_counts[mechanisms, nodes] += 1
        slots = self.recent_counts[mechanisms, nodes] % self.detection_window
        self.recent_rows[mechanisms, nodes, slots] = row
        self.recent_counts[mechanisms, nodes] += 1
        self._record_diagnostics(row)

    def _record_diagnostics(self, row: int) -> None:
        """The agent's internals for this round, through its SB3 logger (class docstring)."""
        logger = self.logger
        logger.record("csl_ucb/kappa", float(self.kappa))
        logger.record("csl_ucb/exploring", int(self.exploring))
        if self.estimated_rewards is not None:
            arm = int(np.dot(self.history_actions[row].astype(np.int64), 1 << np.arange(self.n_nodes)))
            logger.record("csl_ucb/chosen_estimate", float(self.estimated_rewards[arm]))
            logger.record("csl_ucb/chosen_bonus", float(self.kappa * self.uncertainties[arm]))
        logger.record("csl_ucb/resets", int(self.reset_count))
        for mechanism in range(2):
            for node in range(self.n_nodes):
                logger.record(f"csl_ucb/samples/b{mechanism}_node{node}", int(self.sample_counts[mechanism, node]))

    def _greedy_action(self) -> np.ndarray:
        if self.estimated_rewards is None:
            return self.current_action
        best = int(np.argmax(self.estimated_rewards))
        return ((best >> np.arange(self.n_nodes)) & 1).astype(np.int8)


class CSLUCBNoDetection(CSLUCB):
    """CSL-UCB without change detection (ablation; ``change_detection="none"``)."""

    def __init__(self, policy, env, seed=None, verbose=0,
                 noise_mean: float | None = None, noise_std: float | None = None,
                 change_detection: str = "none", **hyperparameters):
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std,
                         change_detection=change_detection, **hyperparameters)


class CSLUCBGraphDetection(CSLUCB):
    """CSL-UCB with the whole-graph detector and full restarts (ablation; ``change_detection="graph"``)."""

    def __init__(self, policy, env, seed=None, verbose=0,
                 noise_mean: float | None = None, noise_std: float | None = None,
                 change_detection: str = "graph", **hyperparameters):
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std,
                         change_detection=change_detection, **hyperparameters)
