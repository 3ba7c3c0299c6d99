"""Vanilla UCB over all 2^N interventions as independent arms (docs/csl-ucb.md (d) item 1)."""

from __future__ import annotations

import numpy as np

from causalrl.agents.base import BanditAgent
from causalrl.core.scm import action_to_index, all_interventions

__all__ = ["UCB"]


class UCB(BanditAgent):
    """UCB1 with every intervention vector as its own arm.

    Plays each of the 2^N arms once (in index order), then ``argmax_a mean_a +
    exploration * sqrt(ln t / n_a)``. With ``window`` set, ``mean_a`` is the mean of the last
    ``window`` pulls of arm a (the sliding-window variant for piecewise-stationary worlds; the
    reference uses 10), while ``n_a`` stays the arm's total pull count.

    :param policy, env, seed, verbose, noise_mean, noise_std: as
        :class:`~causalrl.agents.base.BanditAgent` (nu and sigma default to the world's declared
        values).
    :param exploration: coefficient of the bonus. Default 1.0 (as in the paper's code).
    :param window: per-arm sliding window of pulls for the mean, or None for all pulls. Default
        None.
    """

    def __init__(self, policy, env, seed=None, verbose=0,
                 noise_mean: float | None = None, noise_std: float | None = None,
                 exploration: float = 1.0, window: int | None = None):
        if not exploration >= 0:
            raise ValueError(f"exploration: must be >= 0, got {exploration}")
        if window is not None and (not isinstance(window, int) or window <= 0):
            raise ValueError(f"window: must be a positive integer or null, got {window!r}")
        self.exploration = float(exploration)
        self.window = window
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std)

    def _setup(self) -> None:
        # checked here, once the base class has made ``env`` (a registered id is allowed)
        if self.n_nodes > 20:
            raise ValueError(f"env: UCB enumerates 2^N arms; N={self.n_nodes} is too many (N <= 20)")
        n_arms = 1 << self.n_nodes
        self.arms = all_interventions(self.n_nodes).astype(np.int8)
        self.pulls = np.zeros(n_arms, dtype=np.int64)
        self.reward_sums = np.zeros(n_arms)
        if self.window is not None:
            self.recent_rewards = np.zeros((n_arms, self.window))

    def _means(self) -> np.ndarray:
        if self.window is None:
            return self.reward_sums / np.maximum(self.pulls, 1)
        filled = np.minimum(self.pulls, self.window)
        return self.recent_rewards.sum(axis=1) / np.maximum(filled, 1)

    def _select_action(self) -> np.ndarray:
        unplayed = np.flatnonzero(self.pulls == 0)
        if unplayed.size:
            return self.arms[unplayed[0]]
        t = max(int(self.pulls.sum()), 1)
        index = self._means() + self.exploration * np.sqrt(np.log(t) / self.pulls)
        return self.arms[int(np.argmax(index))]

    def _greedy_action(self) -> np.ndarray:
        means = np.where(self.pulls > 0, self._means(), -np.inf)
        return self.arms[int(np.argmax(means))]

    def _update(self, action, observation, reward) -> None:
        arm = action_to_index(action)
        if self.window is not None:
            self.recent_rewards[arm, self.pulls[arm] % self.window] = reward
        self.pulls[arm] += 1
        self.reward_sums[arm] += reward
