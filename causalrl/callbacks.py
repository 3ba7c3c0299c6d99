"""The one logging callback every run uses (bandit and RL agents alike).

It reads SB3's callback locals (``infos``, ``rewards``, ``dones``) after each env step and every
``log_interval`` steps records one row with the shared metric names:

    time/steps                    env steps so far
    reward/mean                   mean step reward over the last interval
    reward/cumulative             sum of rewards so far
    reward/episode_return_mean    mean return of the episodes finished in the interval (RL)
    regret/cumulative             pseudo-regret  sum(max_a mu_a - mu_{a_t})  (bandits)
    regret/cumulative_realised    realised regret sum(max_a mu_a - X_N,t)  (bandits)
    regret/optimal_action_rate    share of optimal plays in the last `window` rounds (bandits)
    structure/shd|fnr|fpr|f1      agent.learned_structure vs the env's causal_structure
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from causalrl.metrics import structure_metrics

__all__ = ["MetricsCallback", "OPTIMAL_TOLERANCE"]

#: a play counts as optimal when its expected reward is within this of the best (csl-ucb.md (a))
OPTIMAL_TOLERANCE = 0.01


class MetricsCallback(BaseCallback):
    """Records the shared metrics every ``log_interval`` steps and keeps the curves in memory.

    Args:
        log_interval: steps between logged rows.
        truth: returns the env's current ground truth (``env.unwrapped.causal_structure``) or
            None; used to score ``agent.learned_structure``.
        window: rounds in the optimal-action-rate window (100, as in the CSL-UCB paper).
    """

    def __init__(self, log_interval: int = 100, truth: Callable[[], object] | None = None, window: int = 100):
        super().__init__(verbose=0)
        self.log_interval = log_interval
        self.truth = truth
        self.window = window
        self.steps = 0
        self.reward_sum = 0.0
        self.interval_rewards: list[float] = []
        self.pseudo_regret = 0.0
        self.realised_regret = 0.0
        self.optimal_plays: deque = deque(maxlen=window)
        self.episode_return = 0.0
        self.finished_returns: list[float] = []
        self.is_bandit = False
        self.rows: list[dict] = []

    def _on_step(self) -> bool:
        info = self.locals["infos"][0]
        reward = float(np.asarray(self.locals["rewards"]).reshape(-1)[0])
        done = bool(np.asarray(self.locals["dones"]).reshape(-1)[0])
        self.steps += 1
        self.reward_sum += reward
        self.interval_rewards.append(reward)
        if "expected_reward" in info:
            self.is_bandit = True
            best = info["optimal_expected_reward"]
            self.pseudo_regret += best - info["expected_reward"]
            self.realised_regret += best - reward
            self.optimal_plays.append(best - info["expected_reward"] < OPTIMAL_TOLERANCE)
        self.episode_return += reward
        if done:
            self.finished_returns.append(self.episode_return)
            self.episode_return = 0.0
        if self.steps % self.log_interval == 0:
            self._record()
        return True

    def _on_training_end(self) -> None:
        if self.steps % self.log_interval:
            self._record()

    def _structure_row(self) -> dict:
        learned = getattr(self.model, "learned_structure", None)
        truth = self.truth() if self.truth is not None else None
        if not learned or truth is None:
            return {}
        pairs = [(np.asarray(mask), np.asarray(getattr(truth, name))) for name, mask in learned.items()
                 if mask is not None and hasattr(truth, name)]
        if not pairs:
            return {}
        shapes = {mask.shape for mask, _ in pairs}
        if len(shapes) == 1:  # same-shaped graphs (e.g. both mechanisms) are scored as one edge set
            scores = structure_metrics(np.stack([m for m, _ in pairs]), np.stack([t for _, t in pairs]))
        else:
            scores = structure_metrics(np.concatenate([m.ravel() for m, _ in pairs])[None],
                                       np.concatenate([t.ravel() for _, t in pairs])[None])
        return {f"structure/{key}": scores[key] for key in ("shd", "fnr", "fpr", "f1")}

    def _record(self) -> None:
        row = {
            "time/steps": self.steps,
            "reward/mean": float(np.mean(self.interval_rewards)) if self.interval_rewards else 0.0,
            "reward/cumulative": self.reward_sum,
        }
        if self.is_bandit:
            row["regret/cumulative"] = self.pseudo_regret
            row["regret/cumulative_realised"] = self.realised_regret
            row["regret/optimal_action_rate"] = float(np.mean(self.optimal_plays))
        elif self.finished_returns:
            row["reward/episode_return_mean"] = float(np.mean(self.finished_returns))
        row.update(self._structure_row())
        self.interval_rewards, self.finished_returns = [], []
        self.rows.append(row)
        for key, value in row.items():
            self.logger.record(key, value)
        self.logger.dump(self.steps)
