"""Worlds with known causal structure, imported as ``causalrl.envs``. Importing this package
registers them with gymnasium under the ``causalrl/`` namespace
(``gym.make("causalrl/LinearSEMBandit-v0", **kwargs)``); a world's module is imported only when
it is built. ``from causalrl.envs import FactoredLQR`` works as usual. See docs/worlds.md.
"""

from __future__ import annotations

import importlib

import gymnasium as gym

if __name__ != "causalrl.envs":  # one identity per module (docs/architecture.md, "Where things live")
    raise ImportError(f"{__name__!r} is the folder of causalrl.envs: import causalrl.envs instead (a second import "
                      "name would give every class and registration a second copy; docs/architecture.md)")

_EXPORTS = {
    "LinearSEMBandit": "causalrl.envs.bandits", "PiecewiseSEMBandit": "causalrl.envs.bandits",
    "make_instance": "causalrl.envs.bandits", "FactoredLQR": "causalrl.envs.factored",
    "FactoredNonlinear": "causalrl.envs.factored", "TwinReacher": "causalrl.envs.twin_reacher",
    "DistractorWrapper": "causalrl.envs.wrappers", "InterventionWrapper": "causalrl.envs.intervention",
    "LQRExpert": "causalrl.envs.experts", "PolicyExpert": "causalrl.envs.experts",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'causalrl.envs' has no attribute {name!r}")


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **kwargs)


# max_episode_steps is left unset: the bandits truncate at their own `horizon` argument
_register("causalrl/LinearSEMBandit-v0", "causalrl.envs.bandits:LinearSEMBandit", disable_env_checker=True)
_register("causalrl/PiecewiseSEMBandit-v0", "causalrl.envs.bandits:PiecewiseSEMBandit", disable_env_checker=True)
# factored MDPs and MuJoCo worlds with known structure; each truncates at its own horizon
# (the MuJoCo distractor variants keep the inner time limit)
_register("causalrl/FactoredLQR-v0", "causalrl.envs.factored:FactoredLQR", disable_env_checker=True)
_register("causalrl/FactoredNonlinear-v0", "causalrl.envs.factored:FactoredNonlinear", disable_env_checker=True)
_register("causalrl/TwinReacher-v0", "causalrl.envs.twin_reacher:TwinReacher", disable_env_checker=True)
_register("causalrl/TwinReacherPlain-v0", "causalrl.envs.twin_reacher:TwinReacher", disable_env_checker=True,
          kwargs={"distance": "plain", "distance_weight": 1.0})
_register("causalrl/HalfCheetahDistractors-v0", "causalrl.envs.wrappers:DistractorVariant", disable_env_checker=True,
          kwargs={"env_id": "HalfCheetah-v5"})
_register("causalrl/HopperDistractors-v0", "causalrl.envs.wrappers:DistractorVariant", disable_env_checker=True,
          kwargs={"env_id": "Hopper-v5"})
# intervention worlds (docs/rlif.md): FactoredLQR with an LQR expert that takes over
_register("causalrl/FactoredLQRIntervention-v0", "causalrl.envs.intervention:FactoredLQRIntervention",
          disable_env_checker=True)
