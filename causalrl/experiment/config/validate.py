"""Raw mappings to typed, frozen :class:`~.schema.RunConfig` objects, before anything runs.
Every problem is a :class:`~.schema.ConfigError` with one line naming the field and the fix."""

from __future__ import annotations

from pathlib import Path

from causalrl.experiment.config.plugins import PluginError, resolve_agent, resolve_env_class
from causalrl.experiment.config.schema import (
    MAX_SEED,
    TOP_LEVEL_KEYS,
    WANDB_KEYS,
    AgentConfig,
    ConfigError,
    EnvConfig,
    RunConfig,
    check_name,
    settings,
)
from causalrl.experiment.config.signatures import (
    check_arguments,
    check_sb3_consistency,
    check_sb3_ranges,
    check_types,
)
from causalrl.experiment.config.sources import apply_overrides, read_source

__all__ = ["validate", "configs_from", "load_experiment"]

_WORDS = {int: " an integer", bool: " true or false", str: " a string"}


def _integer_hint(value) -> str:
    """``; write 1000`` for a whole number written as a float or in e-notation (``1e3``, ``1000.0``)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return ""
    return f"; write {int(number)}" if not isinstance(value, bool) and number.is_integer() and abs(number) < 1e15 else ""


def _typed(raw: dict, key: str):
    """The value of top-level ``key`` (its schema default when absent), checked by its Setting."""
    default, setting = settings()[key]
    value = raw.get(key, default)
    if value is None and default is None:
        return None
    kind = setting.kind
    wrong_kind = (isinstance(value, bool) or not isinstance(value, int)) if kind is int else not isinstance(value, kind)
    if wrong_kind:
        must = setting.must if kind is int and "integer" in setting.must else _WORDS[kind] + setting.must
        raise ConfigError(f"{key}: must be{must}, got {value!r}{_integer_hint(value) if kind is int else ''}")
    if setting.high is not None and value > setting.high:
        high = f"{setting.high:.0e}" if setting.high >= 10**9 else str(setting.high)
        raise ConfigError(f"{key}: must be at most {high}, got {value!r}")
    if not setting.allows(value):
        raise ConfigError(f"{key}: must be{setting.must}, got {value!r}")
    return value


def _wandb_settings(value) -> dict | None:
    """The ``wandb`` key: None/false (off), true ({"project": "causalrl"}) or a mapping of
    ``wandb.init`` arguments (:data:`~.schema.WANDB_KEYS`)."""
    if value is None or value is False:
        return None
    if value is True:
        return {"project": "causalrl"}
    if not isinstance(value, dict):
        raise ConfigError(f"wandb: must be true, false or a mapping of {', '.join(WANDB_KEYS)}, got {value!r}")
    for key in value:
        if key not in WANDB_KEYS:
            raise ConfigError(f"wandb.{key}: unknown key; accepted keys: {', '.join(WANDB_KEYS)}")
    if value.get("mode", "online") not in ("online", "offline", "disabled"):
        raise ConfigError(f"wandb.mode: must be online, offline or disabled, got {value['mode']!r}")
    return {"project": "causalrl", **value}


def _common_settings(raw: dict) -> dict:
    """Every scalar top-level key, typed and checked against the schema."""
    common = {key: _typed(raw, key) for key, (_, setting) in settings().items() if setting.kind is not None}
    check_name(common["experiment"], "experiment")
    if not common["output_dir"].strip() or "\0" in common["output_dir"]:
        raise ConfigError(f"output_dir: must name a folder (e.g. runs), got {common['output_dir']!r}")
    if common["seed"] > MAX_SEED:
        raise ConfigError(f"seed: must be >= 0 and <= 2**32 - 1 ({MAX_SEED}), got {common['seed']!r}")
    if common["eval_interval"] % common["log_interval"]:
        raise ConfigError(f"eval_interval: must be a multiple of log_interval ({common['log_interval']}), "
                          f"got {common['eval_interval']}")
    common["wandb"] = _wandb_settings(raw.get("wandb"))
    common["keep_checkpoints"] = _kept_steps(raw.get("keep_checkpoints"), common["total_steps"])
    return common


def _kept_steps(value, total_steps: int) -> list | None:
    """The ``keep_checkpoints`` key: None, or a list of positive steps; steps past ``total_steps``
    are never reached and are dropped (``causalrl run expert total_steps=1000`` keeps none)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or any(
            isinstance(step, bool) or not isinstance(step, int) or step < 1 for step in value):
        raise ConfigError(f"keep_checkpoints: must be a list of positive steps (e.g. [2000, 5000]), got {value!r}")
    return sorted({step for step in value if step <= total_steps}) or None


def _env_config(raw: dict) -> EnvConfig:
    env_raw = raw.get("env")
    if not isinstance(env_raw, dict) or not isinstance(env_raw.get("id"), str):
        raise ConfigError("env: must be a mapping with an `id` (e.g. causalrl/LinearSEMBandit-v0)")
    env_kwargs = {k: v for k, v in env_raw.items() if k != "id"}
    try:
        env_cls = resolve_env_class(env_raw["id"])
        if "intervention" in env_kwargs:  # an expert around any env (docs/rlif.md)
            # imported here: the intervention machinery (envs.intervention, experts, calibration)
            # loads only for runs that use it
            from causalrl.experiment.config.intervention_block import validate_intervention

            env_kwargs["intervention"] = validate_intervention(env_kwargs["intervention"], env_raw["id"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    constructor_kwargs = {k: v for k, v in env_kwargs.items() if k != "intervention"}
    if env_cls is not None:
        check_arguments(env_cls, constructor_kwargs, "env", reserved={"render_mode"})
        check_types(env_cls, constructor_kwargs, "env")
    return EnvConfig(env_raw["id"], env_kwargs)


def _agent_config(entry: dict) -> AgentConfig:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        name = entry.get("name") if isinstance(entry, dict) else entry
        raise ConfigError(f"agent.name: must be an agent name or module:Class (see `causalrl list`), got {name!r}")
    try:
        agent_cls = resolve_agent(entry["name"])
    except PluginError as error:
        raise ConfigError(str(error)) from None
    kwargs = {k: v for k, v in entry.items() if k not in ("name", "policy")}
    where = f"agent[{entry['name']}]"
    check_arguments(agent_cls, kwargs, where, reserved={"policy", "env", "seed"})
    check_types(agent_cls, kwargs, where)
    check_sb3_ranges(agent_cls, kwargs, where)
    check_sb3_consistency(agent_cls, kwargs, where)
    policy = entry.get("policy")
    if policy is not None and not isinstance(policy, str):
        raise ConfigError(f"{where}.policy: must be a string, got {policy!r}")
    return AgentConfig(entry["name"], policy, kwargs)


def validate(raw: dict) -> list[RunConfig]:
    """Typed run configs (one per agent) from a raw mapping whose overrides are applied
    (:func:`~.sources.apply_overrides` makes ``agents`` a list)."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{key}: unknown key; known keys: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    env = _env_config(raw)
    common = _common_settings(raw)
    return [RunConfig(env=env, agent=_agent_config(entry), **common) for entry in raw["agents"]]


def configs_from(raw: dict, overrides: list[str] | tuple = ()) -> list[RunConfig]:
    """The one way from a raw mapping plus ``key=value`` overrides to validated run configs."""
    return validate(apply_overrides(raw, list(overrides)))


def load_experiment(source: str | Path | None = None, overrides: list[str] | tuple = ()) -> list[RunConfig]:
    """Read a preset name or YAML file (None: the default experiment), apply overrides and
    validate. Raises :class:`~.schema.ConfigError` with a one-line message on any problem."""
    raw, label = read_source(source)
    if "base" in raw:
        raise ConfigError(f"{label}: a sweep or tune file (it has `base`); run it with `causalrl sweep` or `causalrl tune`")
    return configs_from(raw, overrides)
