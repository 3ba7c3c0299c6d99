"""Worlds with known causal structure. Importing this package registers them with gymnasium
under the ``causalrl/`` namespace (``gym.make("causalrl/LinearSEMBandit-v0", **kwargs)``)."""

import gymnasium as gym

from envs.bandits import LinearSEMBandit, PiecewiseSEMBandit, make_instance
from envs.experts import LQRExpert, PolicyExpert
from envs.factored import FactoredLQR, FactoredNonlinear
from envs.intervention import InterventionWrapper
from envs.twin_reacher import TwinReacher
from envs.wrappers import DistractorWrapper

__all__ = ["LinearSEMBandit", "PiecewiseSEMBandit", "make_instance", "FactoredLQR", "FactoredNonlinear",
           "TwinReacher", "DistractorWrapper", "InterventionWrapper", "LQRExpert", "PolicyExpert"]


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **kwargs)


# max_episode_steps is left unset: the bandits truncate at their own `horizon` argument
_register("causalrl/LinearSEMBandit-v0", "envs.bandits:LinearSEMBandit", disable_env_checker=True)
_register("causalrl/PiecewiseSEMBandit-v0", "envs.bandits:PiecewiseSEMBandit", disable_env_checker=True)
# factored MDPs and MuJoCo worlds with known structure (envs/factored.py, wrappers.py, twin_reacher.py);
# each truncates at its own horizon (the MuJoCo distractor variants keep the inner time limit)
_register("causalrl/FactoredLQR-v0", "envs.factored:FactoredLQR", disable_env_checker=True)
_register("causalrl/FactoredNonlinear-v0", "envs.factored:FactoredNonlinear", disable_env_checker=True)
_register("causalrl/TwinReacher-v0", "envs.twin_reacher:TwinReacher", disable_env_checker=True)
_register("causalrl/HalfCheetahDistractors-v0", "envs.wrappers:DistractorVariant", disable_env_checker=True,
          kwargs={"env_id": "HalfCheetah-v5"})
_register("causalrl/HopperDistractors-v0", "envs.wrappers:DistractorVariant", disable_env_checker=True,
          kwargs={"env_id": "Hopper-v5"})
# intervention worlds (rlif.md): FactoredLQR with an LQR expert that takes over (envs/intervention.py)
_register("causalrl/FactoredLQRIntervention-v0", "envs.intervention:FactoredLQRIntervention", disable_env_checker=True)
