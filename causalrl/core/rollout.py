"""Playing a policy through episodes of any env with the gymnasium step API (duck-typed: the
kernel does not import gymnasium)."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["episode_returns"]


def episode_returns(env, act: Callable, n_episodes: int, seed: int = 0) -> np.ndarray:
    """Undiscounted return of each of ``n_episodes`` episodes of ``act`` (obs -> action) on
    ``env``; episode i is reset with seed + i."""
    returns = []
    for episode in range(n_episodes):
        observation, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(act(observation))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return np.asarray(returns)
