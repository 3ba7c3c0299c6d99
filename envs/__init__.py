"""Worlds with known causal structure. Importing this package registers them with gymnasium
under the ``causalrl/`` namespace (``gym.make("causalrl/LinearSEMBandit-v0", **kwargs)``)."""

import gymnasium as gym

from envs.bandits import LinearSEMBandit, PiecewiseSEMBandit, make_instance

__all__ = ["LinearSEMBandit", "PiecewiseSEMBandit", "make_instance"]


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **kwargs)


# max_episode_steps is left unset: the bandits truncate at their own `horizon` argument
_register("causalrl/LinearSEMBandit-v0", "envs.bandits:LinearSEMBandit", disable_env_checker=True)
_register("causalrl/PiecewiseSEMBandit-v0", "envs.bandits:PiecewiseSEMBandit", disable_env_checker=True)
