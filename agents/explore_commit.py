"""Explore-then-commit with a structure learner: the GOLEM-MAB baseline of docs/csl-ucb.md (d) item 2,
with DAGMA (Bello et al. 2022, the ``dagma`` package) in place of GOLEM.

Symbols follow docs/csl-ucb.md: B (observational weights), B' (interventional weights), nu (known
noise mean), mu_a = [(I - B_a)^{-T} nu]_N (expected reward of intervention a).

DAGMA is an optional extra: ``pip install -e '.[structure]'``. It is imported only when a
structure is learned (and checked when an agent is built, so a missing package fails fast).
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from causalrl.agents.base import BanditAgent
from causalrl.core.graph import remove_cycles_by_weight
from causalrl.core.scm import (
    all_interventions,
    arm_chunks,
    values_and_flow,
    whole_graph_change_statistic,
)
from causalrl.core.stats import least_squares

__all__ = ["ExploreThenCommit", "dagma_structure"]

STRUCTURE_LEARNERS = ("dagma",)
CHANGE_DETECTORS = ("none", "graph")
#: the arms are enumerated (2^N of them), as in every agent of docs/csl-ucb.md
MAX_NODES = 20
_MISSING_DAGMA = "structure learner 'dagma' is not installed; run: pip install -e '.[structure]'"
# dagma.linear.DagmaLinear.fit always draws a tqdm bar; we silence it by swapping the module's
# `tqdm` name for the duration of a fit, under a lock so concurrent threads cannot interleave.
_DAGMA_LOCK = threading.Lock()


def _import_dagma_linear():
    """The ``dagma.linear`` module, or a one-line ImportError saying how to install it."""
    try:
        import dagma.linear
    except ImportError:
        raise ImportError(_MISSING_DAGMA) from None
    return dagma.linear


def dagma_structure(samples, lambda1: float = 0.03, w_threshold: float = 0.3, seed: int | None = None,
                    progress_bar: bool = False, **fit_kwargs) -> np.ndarray:
    """Weighted DAG learned by DAGMA-linear (l2 loss) from ``samples`` (n, N).

    Steps (docs/csl-ucb.md (d) item 2): centre the data, fit ``DagmaLinear(loss_type="l2")`` with the
    L1 weight ``lambda1``; DAGMA zeroes weights with ``|w| < w_threshold``; then the smallest
    remaining edges are removed until the graph is acyclic. Returns an (N, N) weight matrix,
    ``[j, i]`` = weight of j -> i (the causalrl convention, which is also DAGMA's).

    ``seed`` is accepted so callers can treat every learner alike; DAGMA itself is deterministic
    given the data (zero initialisation, Adam without sampling), so it does not use it.
    ``fit_kwargs`` go to ``DagmaLinear.fit`` (e.g. ``T``, ``warm_iter``, ``max_iter``); the
    defaults are the package's (= the DAGMA paper's).
    """
    del seed  # deterministic learner, see docstring
    linear = _import_dagma_linear()
    samples = np.array(samples, dtype=float)  # a copy: DagmaLinear.fit centres its input in place
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError(f"samples: need an (n, N) array with n >= 2, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("samples: contain NaN or inf")
    centred = samples - samples.mean(axis=0, keepdims=True)
    with _DAGMA_LOCK:
        original_tqdm = linear.tqdm
        linear.tqdm = functools.partial(original_tqdm, disable=not progress_bar)
        try:
            weights = linear.DagmaLinear(loss_type="l2").fit(
                centred, lambda1=lambda1, w_threshold=w_threshold, **fit_kwargs
            )
        finally:
            linear.tqdm = original_tqdm
    weights = np.array(weights, dtype=float)
    np.fill_diagonal(weights, 0.0)
    return remove_cycles_by_weight(weights)


def _expected_rewards_all_arms(observational, interventional, noise_mean) -> np.ndarray:
    """mu_hat_a = [(I - B_a)^{-T} nu]_N for all 2^N arms (arm k = bits of k), reward node last;
    cyclic mixes of the two learned graphs are solved directly, as the reference does."""
    n_nodes = observational.shape[0]
    return np.concatenate([
        values_and_flow(observational, interventional, chunk, noise_mean, n_nodes - 1)[0][:, -1]
        for chunk in arm_chunks(n_nodes)
    ])


class ExploreThenCommit(BanditAgent):
    """Explore-then-commit with a structure learner (registry name ``etc-dagma``).

    The GOLEM-MAB baseline of docs/csl-ucb.md (d) item 2, with DAGMA as the learner:

    1. ``explore_rounds`` rounds of a = 0 (observational data), then ``explore_rounds`` rounds of
       a = 1 (every node intervened: interventional data).
    2. On each block, centred: DAGMA-linear, weights with |w| < ``w_threshold`` set to zero, then
       the smallest edges removed until the graph is a DAG. This gives B_hat and B'_hat.
    3. mu_hat_a = [(I - B_hat_a)^{-T} nu]_N for every arm with the known nu; commit to the argmax
       and play it for ever (or until the change detector fires).

    The reward node is the last node (docs/csl-ucb.md (a)). Learned structure is exposed as
    ``learned_structure``; the estimates as ``estimated_observational_weights``,
    ``estimated_interventional_weights`` and ``estimated_rewards`` (all arms).

    :param policy, env, seed, verbose, noise_mean, noise_std: as
        :class:`~causalrl.agents.base.BanditAgent` (nu and sigma default to the world's declared
        values).
    :param structure_learner: the structure learner; only ``"dagma"`` (the ``dagma`` package, an
        optional extra: ``pip install -e '.[structure]'``). Default ``"dagma"``.
    :param explore_rounds: rounds per exploration block, so the agent commits after
        2 * explore_rounds rounds. Default 300 (the reference code).
    :param lambda1: L1 penalty weight of DAGMA. Default 0.03 (docs/csl-ucb.md (d), DAGMA notes;
        the sibling repository uses 0.02).
    :param w_threshold: learned weights with |w| below this are removed. Default 0.3.
    :param refit_weights: if True, re-estimate each node's weights by OLS of (X_i - nu_i) on its
        learned parents (no intercept, as CSL-UCB does) instead of using the learner's L1-shrunk
        weights. Default False: the reference uses the learner's weights directly.
    :param change_detection: ``"none"`` (stationary worlds) or ``"graph"``: after committing, the
        whole-graph detector of docs/csl-ucb.md (c) on the last ``detection_window`` samples;
        when it fires, the agent discards everything and starts exploring again (full restart).
        Default ``"none"``.
    :param detection_window: samples the detector uses; must exceed N. Default 20.
    :param detection_threshold: the detector fires when the log-likelihood ratio per sample and
        node exceeds this. Default 20.
    :param learner_kwargs: extra keyword arguments for ``DagmaLinear.fit`` (``T``, ``warm_iter``,
        ``max_iter``, ``lr``, ...). Default None: the package's (= the DAGMA paper's) defaults,
        which take about 3 s per fit at N = 10 on a 2-core machine.
    """

    def __init__(self, policy, env, seed=None, verbose=0,
                 noise_mean: float | None = None, noise_std: float | None = None,
                 structure_learner: str = "dagma", explore_rounds: int = 300, lambda1: float = 0.03,
                 w_threshold: float = 0.3, refit_weights: bool = False, change_detection: str = "none",
                 detection_window: int = 20, detection_threshold: float = 20.0,
                 learner_kwargs: dict | None = None):
        if structure_learner not in STRUCTURE_LEARNERS:
            raise ValueError(
                f"structure_learner: unknown {structure_learner!r}; choose one of {', '.join(STRUCTURE_LEARNERS)}"
            )
        if isinstance(explore_rounds, bool) or not isinstance(explore_rounds, (int, np.integer)) or explore_rounds < 2:
            raise ValueError(f"explore_rounds: must be an integer >= 2, got {explore_rounds!r}")
        if not lambda1 >= 0:
            raise ValueError(f"lambda1: must be >= 0, got {lambda1}")
        if not w_threshold >= 0:
            raise ValueError(f"w_threshold: must be >= 0, got {w_threshold}")
        if change_detection not in CHANGE_DETECTORS:
            raise ValueError(
                f"change_detection: unknown {change_detection!r}; choose one of {', '.join(CHANGE_DETECTORS)}"
            )
        if isinstance(detection_window, bool) or not isinstance(detection_window, (int, np.integer)):
            raise ValueError(f"detection_window: must be an integer, got {detection_window!r}")
        if not detection_threshold > 0:
            raise ValueError(f"detection_threshold: must be > 0, got {detection_threshold}")
        if learner_kwargs is not None and not isinstance(learner_kwargs, dict):
            raise ValueError(f"learner_kwargs: must be a mapping or null, got {type(learner_kwargs).__name__}")
        _import_dagma_linear()  # fail now, not after 2 * explore_rounds rounds
        self.structure_learner = structure_learner
        self.explore_rounds = int(explore_rounds)
        self.lambda1 = float(lambda1)
        self.w_threshold = float(w_threshold)
        self.refit_weights = bool(refit_weights)
        self.change_detection = change_detection
        self.detection_window = int(detection_window)
        self.detection_threshold = float(detection_threshold)
        self.learner_kwargs = dict(learner_kwargs or {})
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std)

    # --- state -----------------------------------------------------------------------------
    def _setup(self) -> None:
        if self.n_nodes > MAX_NODES:
            raise ValueError(f"env: the agent enumerates 2^N arms; N={self.n_nodes} is too many (N <= {MAX_NODES})")
        if self.change_detection == "graph" and self.detection_window <= self.n_nodes:
            raise ValueError(
                f"detection_window: the whole-graph detector needs more samples than nodes "
                f"(N={self.n_nodes}), got {self.detection_window}"
            )
        if self.change_detection == "graph" and np.any(self.per_node(self.noise_std) <= 0):
            raise ValueError("noise_std: the whole-graph detector divides by sigma^2 and needs sigma > 0, "
                             "the world declares 0; use change_detection=\"none\"")
        self.restart_steps: list[int] = []  # num_timesteps at which the detector restarted the agent
        self._restart()

    def _restart(self) -> None:
        """Forget everything learned and start exploring again (also the initial state)."""
        self._rounds_since_restart = 0
        self._observational_samples = np.zeros((self.explore_rounds, self.n_nodes))
        self._interventional_samples = np.zeros((self.explore_rounds, self.n_nodes))
        self._recent_samples: list[np.ndarray] = []
        self.estimated_observational_weights: np.ndarray | None = None
        self.estimated_interventional_weights: np.ndarray | None = None
        self.estimated_rewards: np.ndarray | None = None
        self.committed_action: np.ndarray | None = None

    @property
    def learned_structure(self) -> dict[str, np.ndarray] | None:
        """{"observational_weights": bool (N, N), "interventional_weights": bool (N, N)}: the
        learned graphs of the model in use, None before the first fit and after a restart. The
        keys name the env's ``causal_structure`` fields they are scored against (the runner's
        structure metrics match on them, as for CSL-UCB)."""
        if self.estimated_observational_weights is None:
            return None
        return {
            "observational_weights": self.estimated_observational_weights != 0,
            "interventional_weights": self.estimated_interventional_weights != 0,
        }

    # --- acting ----------------------------------------------------------------------------
    def _select_action(self) -> np.ndarray:
        if self.committed_action is not None:
            return self.committed_action.copy()
        if self._rounds_since_restart < self.explore_rounds:
            return np.zeros(self.n_nodes, dtype=np.int8)  # step 1: observational block, a = 0
        return np.ones(self.n_nodes, dtype=np.int8)  # step 1: interventional block, a = 1

    def _greedy_action(self) -> np.ndarray:
        # before committing there is no model: the best guess is what the agent plays next
        return self._select_action()

    def _update(self, action, observation, reward) -> None:
        round_index = self._rounds_since_restart
        self._rounds_since_restart += 1
        if round_index < self.explore_rounds:
            self._observational_samples[round_index] = observation
        elif round_index < 2 * self.explore_rounds:
            self._interventional_samples[round_index - self.explore_rounds] = observation
            if round_index == 2 * self.explore_rounds - 1:
                self._fit_and_commit()
        elif self.change_detection == "graph":
            self._detect_change(observation)

    # --- learning --------------------------------------------------------------------------
    def _learn_weights(self, samples: np.ndarray) -> np.ndarray:
        """Step 2: the learner's weighted DAG for one block (optionally OLS-refitted)."""
        weights = dagma_structure(samples, self.lambda1, self.w_threshold, seed=self.seed, **self.learner_kwargs)
        if self.refit_weights:
            for node in range(self.n_nodes):
                parents = np.flatnonzero(weights[:, node])
                if parents.size:
                    weights[parents, node] = least_squares(
                        samples[:, parents], samples[:, node] - self.per_node(self.noise_mean)[node]
                    )
        return weights

    def _fit_and_commit(self) -> None:
        self.estimated_observational_weights = self._learn_weights(self._observational_samples)
        self.estimated_interventional_weights = self._learn_weights(self._interventional_samples)
        # step 3: mu_hat_a for every arm with the known nu, then commit to the argmax
        self.estimated_rewards = _expected_rewards_all_arms(
            self.estimated_observational_weights, self.estimated_interventional_weights, self.noise_mean
        )
        best = int(np.argmax(self.estimated_rewards))
        self.committed_action = all_interventions(self.n_nodes, best, best + 1)[0].astype(np.int8)
        self._recent_samples = []
        if self.verbose:
            print(f"etc-dagma: committed to arm {best} after {self.num_timesteps} rounds "
                  f"(estimated reward {self.estimated_rewards[best]:.3g})")

    def _detect_change(self, observation: np.ndarray) -> None:
        """docs/csl-ucb.md (c) baseline detector on the last ``detection_window`` committed samples."""
        self._recent_samples.append(np.array(observation, dtype=float))
        if len(self._recent_samples) > self.detection_window:
            self._recent_samples.pop(0)
        if len(self._recent_samples) < self.detection_window:
            return
        window = np.stack(self._recent_samples)
        statistic = whole_graph_change_statistic(
            window, np.broadcast_to(self.committed_action, window.shape),
            self.estimated_observational_weights, self.estimated_interventional_weights,
            self.noise_mean, self.noise_std,
        )
        if statistic > self.detection_threshold:
            self.restart_steps.append(int(self.num_timesteps))
            if self.verbose:
                print(f"etc-dagma: change detected at round {self.num_timesteps} "
                      f"(statistic {statistic:.3g}); restarting")
            self._restart()
