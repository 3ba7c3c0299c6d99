"""Interventions around any gymnasium env from a config (docs/rlif.md (c)): the ``intervention``
block of ``env`` names saved SB3 models that act and judge, and the runner wraps the env in
``causalrl.envs.intervention.InterventionWrapper`` with a ``causalrl.envs.experts.PolicyExpert``::

    env:
      id: InvertedPendulum-v5
      intervention:
        expert: runs/expert/InvertedPendulum-v5__sac__s0__*/model.zip   # acts when it takes over
        reference: runs/expert/.../model.zip    # judges (pi_ref, Q^{pi_ref}); default: expert
        noise: 0.3                 # std of the acting expert's action noise, scaled units
        strategy: value            # and every other InterventionWrapper argument
        delta: auto                # calibrated once on the run's seed, then the judge check
        takeover_steps: 4

The runner (``causalrl.experiment.run.intervention_env``) builds exactly ``InterventionWrapper(gym.make(id), PolicyExpert(load(expert), noise=...,
reference=load(reference)), strategy=..., ...)``. Errors are one-line ``ValueError`` naming the
field; the config layer raises them as its ``ConfigError``. Model paths are a ``.zip`` file, a run
directory holding ``model.zip``, or a glob pattern (the newest match wins); validation resolves
them, so a run's ``config.yaml`` records the exact files it used; ``{env.id}`` in a path is the
env's id as run directories name it (``runs/expert/{env.id}__sac__s0__*/model.zip``). ``algorithm`` /
``reference_algorithm`` name the saved models' class (an agent name: ``sac`` by default,
``td3``, ``rlif`` ...). The wrapper's own ``reference`` argument (which action the value test
compares with) is ``compare_to`` here, because ``reference`` names the judge's model.
"""

from __future__ import annotations

import glob
import math
import re
from pathlib import Path

from causalrl.envs.intervention import CALIBRATIONS, STRATEGIES, THRESHOLD_FORMS
from causalrl.experiment.config.plugins import PluginError, resolve_agent

__all__ = ["INTERVENTION_KEYS", "WRAPPER_KEYS", "EXPERT_KEYS", "validate_intervention", "resolve_model_path"]

#: keys of the ``env.intervention`` block and what they mean; the defaults are those of
#: ``InterventionWrapper`` and ``PolicyExpert`` (docs/rlif.md), written only there
INTERVENTION_KEYS = {
    "expert": "saved model that acts when the expert takes over (.zip, run directory or glob)",
    "reference": "saved model that judges: pi_ref and Q^{pi_ref} (absent: expert judges)",
    "algorithm": "agent name of expert's class (default sac)",
    "reference_algorithm": "agent name of reference's class (default: algorithm)",
    "noise": "std of the acting expert's Gaussian action noise in [-1, 1]-scaled units",
    "aggregate": "min or mean over the judge's Q heads",
    "strategy": "value, random, distance or none",
    "threshold_form": "additive, relative or relative-raw",
    "delta": "delta of the additive value test in Q units, or auto (calibrated)",
    "delta_quantile": "quantile of the auto calibration (default 0.95)",
    "calibration": "own (the judge's own sampled actions' gaps, default) or uniform (uniform actions' gaps)",
    "calibration_steps": "states the reference visits to calibrate delta: auto",
    "judge_margin": "the judge check: flag rate on the acting expert minus on the judge's own policy (default 0.15)",
    "force": "run even when the judge check fails (causalrl run --force)",
    "alpha": "alpha of the relative forms",
    "beta": "takeover probability after a bad action",
    "takeover_steps": "k, steps the expert keeps control",
    "rate": "per-step takeover probability of random",
    "compare_to": "reference or expert (the acting expert's action)",
    "sample_reference": "sample pi_ref's action in the value test or take its mode",
    "distance_threshold": "L1 threshold of distance",
    "hand_back": "run the learner's first action after a takeover unchecked",
}
WRAPPER_KEYS = ("strategy", "threshold_form", "delta", "delta_quantile", "calibration_steps", "alpha", "beta",
                "takeover_steps", "rate", "sample_reference", "distance_threshold", "hand_back", "calibration",
                "judge_margin", "force")
#: stands for the env's id (as run directories name it) in model paths
ENV_ID = "{env.id}"
#: keys passed to PolicyExpert as they are
EXPERT_KEYS = ("noise", "aggregate")


def resolve_model_path(value, field: str) -> str:
    """A saved model's path from a ``.zip`` file, a run directory or a glob (newest match)."""
    where = f"env.intervention.{field}"
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: must be the path of a saved model (.zip, run directory or glob), got {value!r}")
    matches = sorted(glob.glob(value), key=lambda p: Path(p).stat().st_mtime) if glob.has_magic(value) else [value]
    if not matches:
        raise ValueError(f"{where}: nothing matches {value!r}; train one first, e.g. `causalrl run expert env.id=...`")
    path = Path(matches[-1])
    if path.is_dir():
        path = path / "model.zip"
    if not path.is_file():
        raise ValueError(f"{where}: {path} not found; give a model.zip (e.g. from `causalrl run expert env.id=...`)")
    return str(path)


def _number(block: dict, key: str, low: float | None = None, high: float | None = None) -> None:
    value = block[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"env.intervention.{key}: must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"env.intervention.{key}: must be {bounds}, got {value!r}")


def validate_intervention(block, env_id: str | None = None) -> dict:
    """The checked ``env.intervention`` block with model paths resolved (``{env.id}`` replaced
    by ``env_id`` as run directories name it); a one-line :class:`ValueError` naming the field
    otherwise. Loads nothing."""
    if not isinstance(block, dict):
        raise ValueError("env.intervention: must be a mapping with at least `expert: <model.zip>`")
    for key in block:
        if key not in INTERVENTION_KEYS:
            raise ValueError(f"env.intervention.{key}: unknown key; known keys: {', '.join(INTERVENTION_KEYS)}")
    if "expert" not in block:
        raise ValueError("env.intervention.expert: missing; give the saved model that acts (e.g. <run>/model.zip "
                          "of `causalrl run expert env.id=...`)")
    block = dict(block)
    for key in ("expert", "reference"):
        if isinstance(block.get(key), str) and ENV_ID in block[key]:
            if env_id is None:
                raise ValueError(f"env.intervention.{key}: names {ENV_ID} but the env has no id")
            block[key] = block[key].replace(ENV_ID, re.sub(r"[^A-Za-z0-9_.-]", "-", env_id.split("/")[-1]))
    block["expert"] = resolve_model_path(block["expert"], "expert")
    if block.get("reference") is not None:
        block["reference"] = resolve_model_path(block["reference"], "reference")
    for key in ("algorithm", "reference_algorithm"):
        if key in block:
            try:
                resolve_agent(block[key])
            except (PluginError, TypeError) as error:
                raise ValueError(f"env.intervention.{key}: {error}") from None
    choices = {"strategy": STRATEGIES, "threshold_form": THRESHOLD_FORMS, "aggregate": ("min", "mean"),
               "compare_to": ("reference", "expert"), "calibration": CALIBRATIONS}
    for key, options in choices.items():
        if key in block and block[key] not in options:
            raise ValueError(f"env.intervention.{key}: choose one of {', '.join(options)}, got {block[key]!r}")
    for key in ("hand_back", "sample_reference", "force"):
        if key in block and not isinstance(block[key], bool):
            raise ValueError(f"env.intervention.{key}: must be true or false, got {block[key]!r}")
    for key in ("takeover_steps", "calibration_steps"):
        if key in block and (isinstance(block[key], bool) or not isinstance(block[key], int) or block[key] < 1):
            raise ValueError(f"env.intervention.{key}: must be a positive integer, got {block[key]!r}")
    for key, low, high in (("noise", 0, None), ("alpha", 0, 1), ("beta", 0, 1), ("rate", 0, 1),
                           ("distance_threshold", 0, None), ("judge_margin", -1, 1)):
        if key in block:
            _number(block, key, low, high)
    if "delta_quantile" in block:
        _number(block, "delta_quantile", 0, 1)
        if not 0 < block["delta_quantile"] < 1:
            raise ValueError(f"env.intervention.delta_quantile: must lie in (0, 1), got {block['delta_quantile']!r}")
    if "delta" in block and block["delta"] != "auto":
        if isinstance(block["delta"], str):
            raise ValueError(f"env.intervention.delta: a number >= 0 (Q units) or auto, got {block['delta']!r}")
        _number(block, "delta", 0, None)
    return block
