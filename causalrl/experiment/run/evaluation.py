"""Evaluating a policy alone: episode returns of a deterministic policy on a separate env.

The runner's ``eval_interval`` / ``eval_episodes`` use :func:`make_evaluator`: every evaluation
plays the same episodes (reset seeds ``EVAL_SEED + i``), so runs, agents and checkpoints are
compared on common random numbers. A world whose training env is not the task itself (an
intervention world, where an expert may take over) offers ``evaluation_env()``: the learner is
then evaluated without the expert.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

from causalrl.core.rollout import episode_returns

__all__ = ["EVAL_SEED", "evaluation_env", "make_evaluator"]

#: reset seed of the first evaluation episode (far from the training seeds)
EVAL_SEED = 1_000_000


def evaluation_env(env: gym.Env) -> gym.Env:
    """The env a policy is evaluated on: ``evaluation_env()`` of a wrapper or of the world, when
    one offers it (the task without an expert), else ``env`` itself."""
    try:  # the outermost wrapper's, else the world's (e.g. an InterventionWrapper around gym.make)
        make = env.get_wrapper_attr("evaluation_env")
    except AttributeError:
        make = None
    return make() if callable(make) else env


def make_evaluator(env: gym.Env, n_episodes: int) -> Callable[[object], dict]:
    """``evaluate(model) -> row``: the mean return of ``model.predict(obs, deterministic=True)``
    over ``n_episodes`` seeded episodes on ``evaluation_env(env)`` as
    ``eval/mean_reward``, and ``eval/deterministic_normalised_score`` when the
    world has a ``normalised_score``. ``env`` must be the evaluator's own (it is stepped)."""
    env = evaluation_env(env)
    score = getattr(env.unwrapped, "normalised_score", None)

    def evaluate(model) -> dict:
        returns = episode_returns(env, lambda obs: model.predict(obs, deterministic=True)[0], n_episodes, EVAL_SEED)
        row = {"eval/mean_reward": float(np.mean(returns))}
        if callable(score):
            row["eval/deterministic_normalised_score"] = float(score(row["eval/mean_reward"]))
        return row

    return evaluate
