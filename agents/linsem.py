"""LinSEM-TS and LinSEM-UCB (Varici et al., arXiv 2208.12764) given the true parent sets.

Spec: docs/csl-ucb.md (d) items 3 and "LinSEM-UCB / LinSEM-TS". Both are *oracle* baselines: they
read the true parent sets of B and B' from ``env.unwrapped.causal_structure`` (hence the
registry names ``linsem-ts-oracle`` and ``linsem-ucb-oracle``); they never read the weights.

Per node i and mechanism b the learner keeps ``V = I + sum x_pa x_pa^T`` and
``g = sum x_pa (X_i - nu_i)`` over the rounds where node i was in mechanism b, so that
``B_hat_i = V^{-1} g``. Each round updates, for every node, only the mechanism that was active.
All (node, mechanism) pairs are stored as N-dimensional blocks padded with the identity outside
the parent set, so posteriors of all 2N columns come from one batched inverse.
"""

from __future__ import annotations

import numpy as np

from causalrl.agents.base import BanditAgent
from causalrl.core.graph import topological_order
from causalrl.core.scm import all_interventions, propagate

__all__ = ["LinSEMTS", "LinSEMUCB"]


class _OracleParentsLinearModel(BanditAgent):
    """Shared state of the LinSEM learners: true parent masks and per-column ridge statistics."""

    def _setup(self) -> None:
        truth = getattr(self.env.unwrapped, "causal_structure", None)
        if truth is None or not hasattr(truth, "interventional_weights"):
            raise ValueError(
                "env: oracle LinSEM agents read true parent sets from env.unwrapped.causal_structure "
                "(a LinearSEM); use a causalrl linear-SEM bandit"
            )
        # parent_masks[b, j, i]: j is a parent of i under mechanism b (0 observational, 1 interventional)
        self.parent_masks = np.stack([truth.observational_weights != 0, truth.interventional_weights != 0])
        self.reward_node = truth.reward_node
        self.order = topological_order(self.parent_masks[0] | self.parent_masks[1])
        n_nodes = self.n_nodes
        self.arms = all_interventions(n_nodes)
        self.gram = np.zeros((2, n_nodes, n_nodes, n_nodes))  # [b, i] = sum x x^T (all coordinates)
        self.moment = np.zeros((2, n_nodes, n_nodes))  # [b, i] = sum x (x_i - nu_i)
        self.sample_counts = np.zeros((2, n_nodes), dtype=np.int64)  # [b, i] = rounds in that mechanism
        # block masks: [b, i] = outer(parents, parents), to restrict the statistics to pa_b(i)
        columns = np.moveaxis(self.parent_masks, 1, 2)  # [b, i, j] = parent_masks[b, j, i]
        self.block_masks = columns[..., :, None] & columns[..., None, :]
        self.column_masks = columns
        self._posterior_cache = None

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (2, N, N) and inverse V (2, N, N, N) of every (mechanism, node) column."""
        if self._posterior_cache is None:
            precision = np.eye(self.n_nodes) + np.where(self.block_masks, self.gram, 0.0)
            covariance = np.linalg.inv(precision)
            mean = np.einsum("bijk,bik->bij", covariance, np.where(self.column_masks, self.moment, 0.0))
            self._posterior_cache = (mean, covariance)
        return self._posterior_cache

    def _weights_from_columns(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(2, N nodes, N parents) column stack -> (B, B') with [j, i] = weight of j -> i."""
        columns = np.where(self.column_masks, columns, 0.0)
        return columns[0].T, columns[1].T

    def _greedy_action(self) -> np.ndarray:
        mean, _ = self._posterior()
        observational, interventional = self._weights_from_columns(mean)
        rewards = propagate(observational, interventional, self.arms, self.noise_mean, self.order)
        return self.arms[int(np.argmax(rewards[:, self.reward_node]))].astype(np.int8)

    def _update(self, action, observation, reward) -> None:
        nodes = np.arange(self.n_nodes)
        mechanism = action.astype(int)
        # only the active mechanism of every node learns from this round
        self.gram[mechanism, nodes] += np.outer(observation, observation)
        self.moment[mechanism, nodes] += observation[None, :] * (observation - self.noise_mean)[:, None]
        self.sample_counts[mechanism, nodes] += 1
        self._posterior_cache = None


class LinSEMTS(_OracleParentsLinearModel):
    """LinSEM-TS with the true parent sets (oracle; registry ``linsem-ts-oracle``).

    Each round samples every column ``B~_i ~ N(B_hat_i, posterior_scale * V_i^{-1})`` for both
    mechanisms, evaluates ``mu~_a`` for all 2^N interventions and plays the argmax.

    :param policy, env, seed, verbose, noise_mean, noise_std: as
        :class:`~causalrl.agents.base.BanditAgent` (nu and sigma default to the world's declared
        values).
    :param posterior_scale: v, the variance scale of the Gaussian posterior. Default 1.0 (as in
        the reference code).
    """

    def __init__(self, policy, env, seed=None, verbose=0,
                 noise_mean: float | None = None, noise_std: float | None = None,
                 posterior_scale: float = 1.0):
        if not posterior_scale > 0:
            raise ValueError(f"posterior_scale: must be > 0, got {posterior_scale}")
        self.posterior_scale = float(posterior_scale)
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std)

    def _select_action(self) -> np.ndarray:
        mean, covariance = self._posterior()
        cholesky = np.linalg.cholesky(covariance)
        noise = self.rng.standard_normal(mean.shape)
        sampled = mean + np.sqrt(self.posterior_scale) * np.einsum("bijk,bik->bij", cholesky, noise)
        observational, interventional = self._weights_from_columns(sampled)
        rewards = propagate(observational, interventional, self.arms, self.noise_mean, self.order)
        return self.arms[int(np.argmax(rewards[:, self.reward_node]))].astype(np.int8)


class LinSEMUCB(_OracleParentsLinearModel):
    """LinSEM-UCB with the true parent sets (oracle; registry ``linsem-ucb-oracle``).

    Uses the closed-form optimistic surrogate of docs/csl-ucb.md (d): in topological order, node i's
    optimistic mean under arm a is ``nu_i + c^T B_hat_i + beta * ||c||_{V_i^{-1}}`` where c is the
    vector of its parents' optimistic means under a (the maximiser of a linear function over the
    confidence ellipsoid ``||theta - B_hat_i||_{V_i} <= beta``). Plays the arm with the largest
    optimistic reward.

    :param policy, env, seed, verbose, noise_mean, noise_std: as
        :class:`~causalrl.agents.base.BanditAgent` (nu and sigma default to the world's declared
        values).
    :param confidence_width: beta. Default None: the Abbasi-Yadkori width with delta = 1/T^2,
        d = the largest in-degree, m = m_B = 1: ``sqrt(2 log(1/delta) + d log(1 + T/d)) + 1``.
    :param horizon: T for the default width. Default None: the world's declared ``horizon``
        (``env.unwrapped.assumptions``; a contradicting value is a ``ValueError``), so the width
        never depends on how ``learn`` is called.
    """

    def __init__(self, policy, env, seed=None, verbose=0,
                 noise_mean: float | None = None, noise_std: float | None = None,
                 confidence_width: float | None = None, horizon: int | None = None):
        if confidence_width is not None and not confidence_width >= 0:
            raise ValueError(f"confidence_width: must be >= 0 or null, got {confidence_width}")
        self.confidence_width = confidence_width
        self._horizon_argument = horizon
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std)
        self.horizon = self.declared_horizon(horizon)
        if self.horizon is None and confidence_width is None:
            raise ValueError("horizon: the world declares no horizon (env.unwrapped.assumptions); "
                             "pass horizon=T (or confidence_width)")

    def _beta(self) -> float:
        if self.confidence_width is not None:
            return self.confidence_width
        horizon = max(self.horizon, 2)
        degree = max(int(self.parent_masks.sum(axis=1).max()), 1)
        return float(np.sqrt(2 * np.log(horizon**2) + degree * np.log(1 + horizon / degree)) + 1.0)

    def _select_action(self) -> np.ndarray:
        mean, covariance = self._posterior()
        beta = self._beta()
        optimistic = np.zeros(self.arms.shape)
        optimistic += self.noise_mean
        for node in self.order:
            values = []
            for mechanism in (0, 1):
                parents_mean = np.where(self.column_masks[mechanism, node], optimistic, 0.0)
                width = np.sum((parents_mean @ covariance[mechanism, node]) * parents_mean, axis=1)
                values.append(parents_mean @ mean[mechanism, node] + beta * np.sqrt(np.maximum(width, 0.0)))
            optimistic[:, node] += np.where(self.arms[:, node] > 0, values[1], values[0])
        return self.arms[int(np.argmax(optimistic[:, self.reward_node]))].astype(np.int8)
