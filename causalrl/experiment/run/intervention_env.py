"""The env of an ``env.intervention`` block (docs/rlif.md (c)): the world wrapped in
``InterventionWrapper`` with a ``PolicyExpert`` built from saved models, loaded without running
code from them (``causalrl.envs.experts.load_sb3_algorithm``; README, Pickles). The block is checked by
``causalrl.experiment.config.intervention_block``; the defaults are the wrapper's and the expert's."""

from __future__ import annotations

from causalrl.envs.experts import PolicyExpert, load_sb3_algorithm
from causalrl.envs.intervention import InterventionWrapper
from causalrl.experiment.config.intervention_block import (
    EXPERT_KEYS,
    WRAPPER_KEYS,
    validate_intervention,
)
from causalrl.experiment.config.plugins import resolve_agent

__all__ = ["wrap_intervention"]


def wrap_intervention(env, block: dict, seed: int | None = None):
    """``InterventionWrapper(env, PolicyExpert(...), ...)`` from a validated block; with a
    ``seed`` (the run's), ``delta: auto`` is calibrated on it now and the judge check runs, so a
    judge that fails it refuses the run before it starts (an evaluation env, built without a
    seed, never calibrates: it evaluates the learner alone)."""
    block = validate_intervention(block)
    algorithm = block.get("algorithm", "sac")
    # no unpickling unless the config says trust_models (README, Pickles); no replay buffer: they only act and judge
    acting = load_sb3_algorithm(resolve_agent(algorithm), block["expert"], device="cpu", buffer_size=1)
    judge = None
    if block.get("reference") is not None:
        judge = load_sb3_algorithm(resolve_agent(block.get("reference_algorithm", algorithm)), block["reference"],
                                   device="cpu", buffer_size=1)
    for name, model in (("expert", acting), ("reference", judge)):
        if model is not None and (model.observation_space.shape != env.observation_space.shape
                                  or model.action_space.shape != env.action_space.shape):
            raise ValueError(f"env.intervention.{name}: {block[name]} was trained on other observation/action shapes "
                              f"({model.observation_space.shape}, {model.action_space.shape}) than this env's "
                              f"({env.observation_space.shape}, {env.action_space.shape})")
    try:
        expert = PolicyExpert(acting, reference=judge, **{key: block[key] for key in EXPERT_KEYS if key in block})
        kwargs = {key: block[key] for key in WRAPPER_KEYS if key in block}
        wrapper = InterventionWrapper(env, expert, reference=block.get("compare_to", "reference"), **kwargs)
        if seed is not None:
            wrapper.calibrate(seed)
        return wrapper
    except ValueError as error:
        raise ValueError(f"env.intervention: {error}") from None
