"""Experiment configs: YAML files (or shipped presets) plus dotted overrides, validated into
typed, frozen objects before anything runs.

An experiment file looks like::

    experiment: default          # folder under output_dir
    seed: 0
    total_steps: 1500
    log_interval: 100
    env:
      id: causalrl/LinearSEMBandit-v0
      n_nodes: 10                # every other key is a constructor argument of the env
    agents:                      # or `agent:` with a single mapping
      - name: ucb
      - name: linsem-ts-oracle
        posterior_scale: 1.0     # every key but name/policy is a hyperparameter

Overrides are ``key=value`` with YAML-typed values: ``seed=3``, ``env.n_nodes=8``,
``agent.exploration=2`` (every agent), ``agents.ucb.window=10`` (one agent),
``agents=ucb,csl-ucb`` (run only these).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "EnvConfig", "AgentConfig", "RunConfig", "load_experiment", "preset_names", "to_yaml",
           "fingerprint", "MAX_CONFIG_BYTES", "SB3_RANGES"]

#: the largest config file read (a bigger one is refused before parsing: parsing is not free)
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: the C YAML parser when PyYAML was built with it (about 10x faster), else the Python one
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_SEED = 2**32 - 1  # numpy's legacy seeding (SB3's set_random_seed) takes 32-bit seeds

TOP_LEVEL_KEYS = {
    "experiment": "name of the experiment folder under output_dir",
    "seed": "seed of the agent, the env noise and every RNG",
    "total_steps": "env steps (bandit rounds) to train for",
    "log_interval": "steps between rows of progress.csv",
    "checkpoint_interval": "steps between resumable checkpoints (default: a tenth of total_steps, at least log_interval)",
    "eval_interval": "steps between evaluations of the deterministic policy alone (a multiple of log_interval; 0: none)",
    "eval_episodes": "episodes per evaluation (default 10; seeds 1_000_000.. so every run sees the same episodes)",
    "output_dir": "where run directories are created",
    "progress_bar": "show a progress bar",
    "save_model": "write model.zip at the end",
    "env": "the env: id plus constructor arguments",
    "agent": "one agent: name, optional policy, hyperparameters",
    "agents": "a list of agents (one run each)",
    "description": "free text",
    "n_envs": "parallel envs of an SB3 agent (SB3's make_vec_env, DummyVecEnv; default 1; bandit agents take 1)",
    "wandb": "log to Weights & Biases too: true, or {project, entity, group, tags, mode} (needs the wandb extra)",
}
#: keys a ``wandb`` mapping may have (arguments of ``wandb.init``)
WANDB_KEYS = ("project", "entity", "group", "tags", "mode", "name", "notes")


class ConfigError(ValueError):
    """A config that cannot run; the message names the field and the fix."""


@dataclass(frozen=True)
class EnvConfig:
    id: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    name: str
    policy: str | None = None
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; ``to_dict`` is what ``config.yaml`` holds."""

    env: EnvConfig
    agent: AgentConfig
    experiment: str = "default"
    seed: int = 0
    total_steps: int = 1500
    log_interval: int = 100
    checkpoint_interval: int | None = None
    eval_interval: int = 0
    eval_episodes: int = 10
    output_dir: str = "runs"
    progress_bar: bool = True
    save_model: bool = True
    description: str = ""
    n_envs: int = 1
    wandb: dict | None = None

    @property
    def checkpoint_every(self) -> int:
        """Steps between checkpoints: ``checkpoint_interval``, by default a tenth of the run."""
        return self.checkpoint_interval or max(self.log_interval, self.total_steps // 10)

    def to_dict(self) -> dict:
        data = asdict(self)
        agent = {"name": self.agent.name, **({"policy": self.agent.policy} if self.agent.policy else {})}
        data["agent"] = {**agent, **self.agent.kwargs}
        data["env"] = {"id": self.env.id, **self.env.kwargs}
        return data


def to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def fingerprint(config: RunConfig) -> str:
    """A hash of the resolved config as config.yaml holds it (all but ``progress_bar``, which
    changes no result). A checkpoint stores it; ``--resume`` refuses a config.yaml edited since."""
    data = yaml.safe_load(to_yaml(config))
    data.pop("progress_bar", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def load_yaml_file(path: Path, label: str | None = None):
    """The YAML document of a file, with one-line errors naming it: too large, not UTF-8 text,
    malformed (with the line)."""
    path, label = Path(path), label or str(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ConfigError(f"{label}: cannot read ({error.strerror or error})") from None
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{label}: {size / 2**20:.1f} MiB is larger than the {MAX_CONFIG_BYTES // 2**20} MiB a config "
                          "file may have; configs hold settings, not data (pass data files by path)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{label}: not UTF-8 text (byte {error.start}); give a YAML text file") from None
    except OSError as error:
        raise ConfigError(f"{label}: cannot read ({error.strerror or error})") from None
    return parse_yaml(text, label)


def parse_yaml(text: str, label: str):
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError(f"{label}: malformed YAML{where} ({problem}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{label}: YAML nested too deeply; fix the file") from None


# --- loading ---------------------------------------------------------------------------------
def preset_names() -> list[str]:
    folder = resources.files("causalrl") / "configs"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _read_source(source: str | Path | None) -> tuple[dict, str]:
    """Raw mapping of a preset name or a YAML file (None: the default preset)."""
    source = "default" if source is None else str(source)
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {source}: not found; give an existing YAML file or a preset name")
        raw, label = load_yaml_file(path), str(path)
    elif source in preset_names():
        text, label = (resources.files("causalrl") / "configs" / f"{source}.yaml").read_text(), f"preset {source}"
        raw = parse_yaml(text, label)
    else:
        raise ConfigError(f"unknown preset or file {source!r}; presets: {', '.join(preset_names())}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: top level must be a mapping of keys (experiment, env, agent, ...)")
    return raw, label


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: write key=value, e.g. seed=3 or agent.exploration=2")
    try:
        parsed = yaml.load(value, Loader=_YAML_LOADER) if value else None
    except (yaml.YAMLError, RecursionError):
        parsed = value
    return key.split("."), parsed


def _agent_entries(raw: dict) -> list[dict]:
    if "agent" in raw and "agents" in raw:
        raise ConfigError("agent/agents: give either `agent` (one) or `agents` (a list), not both")
    entries = raw.get("agents", [raw["agent"]] if "agent" in raw else None)
    if entries is None:
        raise ConfigError("agent: missing; add `agent: {name: ucb}` (see `causalrl list` for names)")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("agents: must be a non-empty list of mappings with a `name`")
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            entries[index] = entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"agents[{index}]: must be a mapping with a `name` (e.g. {{name: ucb}})")
    return entries


def _apply_overrides(raw: dict, overrides: list[str]) -> dict:
    raw = copy.deepcopy(raw)
    entries = _agent_entries(raw)
    raw.pop("agent", None)
    raw["agents"] = entries
    selection = None
    for text in overrides:
        path, value = _parse_override(text)
        head = path[0]
        if head not in TOP_LEVEL_KEYS:
            raise ConfigError(f"override {text!r}: unknown key {head!r}; known keys: {', '.join(sorted(TOP_LEVEL_KEYS))}")
        if head == "agents" and len(path) == 1:
            selection = [name.strip() for name in str(value).split(",") if name.strip()]
        elif head == "agents":
            targets = [entry for entry in entries if entry["name"] == path[1]]
            if not targets or len(path) < 3:
                names = ", ".join(entry["name"] for entry in entries)
                raise ConfigError(f"override {text!r}: write agents.NAME.key=value with NAME one of: {names}")
            for entry in targets:
                _set_path(entry, path[2:], value, text)
        elif head == "agent":
            if len(path) < 2:
                raise ConfigError(f"override {text!r}: write agent.key=value (e.g. agent.exploration=2)")
            for entry in entries:
                _set_path(entry, path[1:], value, text)
        else:
            _set_path(raw, path, value, text)
    if selection is not None:
        known = [entry["name"] for entry in entries]
        unknown = [name for name in selection if name not in known]
        if unknown:
            raise ConfigError(f"override agents={','.join(selection)}: {', '.join(unknown)} not in this experiment ({', '.join(known)})")
        raw["agents"] = [entry for entry in entries if entry["name"] in selection]
    return raw


def _set_path(target: dict, path: list[str], value: Any, text: str) -> None:
    for part in path[:-1]:
        node = target.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {text!r}: {part} is not a mapping")
        target = node
    target[path[-1]] = value


# --- validation ------------------------------------------------------------------------------
def _accepted_arguments(cls) -> set[str] | None:
    """Constructor argument names of ``cls``, following **kwargs up the MRO (None: anything)."""
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters
        names |= {name for name, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            return names - {"self"}
    return None


def _check_arguments(cls, kwargs: dict, where: str, reserved: set[str]) -> None:
    accepted = _accepted_arguments(cls)
    if accepted is None:
        return
    for key in kwargs:
        if key not in accepted - reserved:
            options = ", ".join(sorted(accepted - reserved)) or "none"
            raise ConfigError(f"{where}.{key}: unknown key for {cls.__name__}; accepted keys: {options}")


def _typed(raw: dict, key: str, kind, default, check=None, hint: str = ""):
    value = raw.get(key, default)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        kind_text = hint if hint.startswith(" an integer") or hint.startswith(" a positive integer") else f" an integer{hint}"
        raise ConfigError(f"{key}: must be{kind_text}, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string, got {value!r}")
    if check is not None and not check(value):
        raise ConfigError(f"{key}: must be{hint}, got {value!r}")
    return value


def _name(value: str, field: str) -> str:
    from causalrl.experiment.rundir import check_name

    try:
        return check_name(value, field)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _parameters(cls) -> dict[str, inspect.Parameter]:
    """Constructor parameters of ``cls`` by name, following **kwargs up the MRO (nearest first)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in inspect.getmro(cls):
        if "__init__" not in vars(klass):
            continue
        try:
            parameters = inspect.signature(vars(klass)["__init__"]).parameters
        except (TypeError, ValueError):
            return found
        for name, parameter in parameters.items():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                found.setdefault(name, parameter)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            break
    return found


_SIMPLE_TYPES = {"int", "float", "bool", "str", "None"}


def _declared_types(parameter: inspect.Parameter) -> set[str] | None:
    """The simple types (int, float, bool, str, None) a parameter's annotation allows; None when
    it allows anything else too (lists, dicts, callables) or has no annotation."""
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        default = parameter.default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            return None if isinstance(default, int) else {"float:lenient"}
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    tokens = {token.strip() for token in text.split("|")}
    return tokens if tokens <= _SIMPLE_TYPES else None


def _check_types(cls, kwargs: dict, where: str) -> None:
    """Refuse values of the wrong simple type before the constructor sees them: text for a
    number, null where null is not allowed, a fraction for an integer, NaN for a number."""
    parameters = _parameters(cls)
    for key, value in kwargs.items():
        parameter = parameters.get(key)
        if parameter is None:
            continue
        types = _declared_types(parameter)
        if types is None:
            continue
        if "float:lenient" in types:  # no annotation, a float default: a number (or a list of them)
            if isinstance(value, (str, bool)):
                raise ConfigError(f"{where}.{key}: must be a number, got {value!r}{_yaml_hint(value)}")
            if isinstance(value, float) and math.isnan(value):
                raise ConfigError(f"{where}.{key}: must be a number, got nan")
            continue
        if value is None:
            if "None" not in types:
                raise ConfigError(f"{where}.{key}: must be {_kind(types)}, got null (set a value or leave the key out)")
        elif isinstance(value, bool):
            if "bool" not in types:
                raise ConfigError(f"{where}.{key}: must be {_kind(types)}, got {value!r}")
        elif isinstance(value, int):
            if not types & {"int", "float"}:
                raise ConfigError(f"{where}.{key}: must be {_kind(types)}, got {value!r}")
        elif isinstance(value, float):
            if "float" not in types:
                raise ConfigError(f"{where}.{key}: must be {_kind(types)}, got {value!r}")
            if math.isnan(value):
                raise ConfigError(f"{where}.{key}: must be a number, got nan")
        elif isinstance(value, str):
            if "str" not in types:
                raise ConfigError(f"{where}.{key}: must be {_kind(types)}, got {value!r}{_yaml_hint(value)}")
        if key.endswith("seed") and isinstance(value, int) and not 0 <= value <= _MAX_SEED:
            raise ConfigError(f"{where}.{key}: must be an integer in [0, 2**32 - 1], got {value!r}")


def _yaml_hint(value) -> str:
    """YAML 1.1 reads ``1e300`` as text; say how to write it as a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return f" (YAML reads it as text; write {number!r} as e.g. {number:.1e})" if isinstance(value, str) else ""


def _kind(types: set[str]) -> str:
    words = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "None": "null"}
    if "float" in types:
        types = types - {"int"}
    return " or ".join(words[name] for name in ("float", "int", "bool", "str", "None") if name in types)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _integer(low: int):
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), (
        "a positive integer" if low == 1 else f"an integer >= {low}")


def _between(low: float, high: float, low_open: bool = False):
    return (lambda v: _number(v) and (v > low if low_open else v >= low) and v <= high), (
        f"a number in {'(' if low_open else '['}{low}, {high}]")


def _positive_number():
    return (lambda v: _number(v) and 0 < v < math.inf), "a finite number > 0"


def _train_freq(value) -> bool:
    if isinstance(value, list) and len(value) == 2:
        return _integer(1)[0](value[0]) and value[1] in ("step", "episode")
    return _integer(1)[0](value)


def _ent_coef(value) -> bool:
    if isinstance(value, str):
        return value == "auto" or bool(re.fullmatch(r"auto_\d*\.?\d+(e-?\d+)?", value)) and float(value[5:]) > 0
    return _positive_number()[0](value) or value == 0


#: numeric ranges of the Stable-Baselines3 hyperparameters (SAC and the agents built on it:
#: CIP, ACE, RLIF, DAgger); checked for every agent that takes the key, before anything runs
SB3_RANGES = {
    "gamma": _between(0.0, 1.0),
    "tau": _between(0.0, 1.0),
    "learning_rate": _positive_number(),
    "batch_size": _integer(1),
    "buffer_size": _integer(1),
    "learning_starts": _integer(0),
    "gradient_steps": ((lambda v: _integer(-1)[0](v) and v != 0), "a positive integer (or -1: one per env step)"),
    "target_update_interval": _integer(1),
    "stats_window_size": _integer(1),
    "verbose": _integer(0),
    "train_freq": (_train_freq, "a positive integer or [n, step|episode]"),
    "ent_coef": (_ent_coef, "a number >= 0, 'auto' or 'auto_<initial value>'"),
    "policy_kwargs": ((lambda v: isinstance(v, dict)), "a mapping (e.g. {net_arch: [64, 64]})"),
    "replay_buffer_kwargs": ((lambda v: isinstance(v, dict)), "a mapping"),
    "device": ((lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v) is not None),
               "auto, cpu, cuda, cuda:N or mps"),
}


def _check_sb3_ranges(cls, kwargs: dict, where: str) -> None:
    accepted = _parameters(cls)
    for key, value in kwargs.items():
        if key in SB3_RANGES and key in accepted and value is not None:
            check, text = SB3_RANGES[key]
            if not check(value):
                raise ConfigError(f"{where}.{key}: must be {text}, got {value!r}"[:300])


def _wandb_settings(value) -> dict | None:
    """The ``wandb`` key: None/false (off), true ({"project": "causalrl"}) or a mapping of
    ``wandb.init`` arguments (:data:`WANDB_KEYS`)."""
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


def validate(raw: dict) -> list[RunConfig]:
    """Typed run configs (one per agent) from a raw mapping whose overrides are applied."""
    from causalrl.experiment.plugins import (
        PluginError,
        resolve_agent,
        resolve_env_class,
    )

    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{key}: unknown key; known keys: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    env_raw = raw.get("env")
    if not isinstance(env_raw, dict) or not isinstance(env_raw.get("id"), str):
        raise ConfigError("env: must be a mapping with an `id` (e.g. causalrl/LinearSEMBandit-v0)")
    env_kwargs = {k: v for k, v in env_raw.items() if k != "id"}
    try:
        env_cls = resolve_env_class(env_raw["id"])
    except PluginError as error:
        raise ConfigError(str(error)) from None
    if "intervention" in env_kwargs:  # an expert around any env (causalrl.experiment.intervention)
        from causalrl.experiment.intervention import validate_intervention

        try:
            env_kwargs["intervention"] = validate_intervention(env_kwargs["intervention"])
        except ValueError as error:
            raise ConfigError(str(error)) from None
    constructor_kwargs = {k: v for k, v in env_kwargs.items() if k != "intervention"}
    if env_cls is not None:
        _check_arguments(env_cls, constructor_kwargs, "env", reserved={"render_mode"})
        _check_types(env_cls, constructor_kwargs, "env")
    common = dict(
        experiment=_name(_typed(raw, "experiment", str, "default"), "experiment"),
        seed=_typed(raw, "seed", int, 0, lambda v: 0 <= v <= _MAX_SEED, f" >= 0 and <= 2**32 - 1 ({_MAX_SEED})"
                    if isinstance(raw.get("seed"), int) and raw.get("seed", 0) > _MAX_SEED else " >= 0"),
        total_steps=_typed(raw, "total_steps", int, 1500, lambda v: v > 0, " a positive integer"),
        log_interval=_typed(raw, "log_interval", int, 100, lambda v: v > 0, " a positive integer"),
        checkpoint_interval=None if raw.get("checkpoint_interval") is None else _typed(
            raw, "checkpoint_interval", int, None, lambda v: v > 0, " a positive integer (steps between checkpoints)"),
        eval_interval=_typed(raw, "eval_interval", int, 0, lambda v: v >= 0, " >= 0 (0: no evaluation)"),
        eval_episodes=_typed(raw, "eval_episodes", int, 10, lambda v: v > 0, " a positive integer"),
        output_dir=_typed(raw, "output_dir", str, "runs"),
        progress_bar=_typed(raw, "progress_bar", bool, True),
        save_model=_typed(raw, "save_model", bool, True),
        description=_typed(raw, "description", str, ""),
        n_envs=_typed(raw, "n_envs", int, 1, lambda v: v >= 1, " >= 1 (parallel envs of an SB3 agent)"),
        wandb=_wandb_settings(raw.get("wandb")),
    )
    if common["eval_interval"] % common["log_interval"]:
        raise ConfigError(f"eval_interval: must be a multiple of log_interval ({common['log_interval']}), "
                          f"got {common['eval_interval']}")
    configs = []
    for entry in raw["agents"]:
        try:
            agent_cls = resolve_agent(entry["name"])
        except PluginError as error:
            raise ConfigError(str(error)) from None
        kwargs = {k: v for k, v in entry.items() if k not in ("name", "policy")}
        _check_arguments(agent_cls, kwargs, f"agent[{entry['name']}]", reserved={"policy", "env", "seed"})
        _check_types(agent_cls, kwargs, f"agent[{entry['name']}]")
        _check_sb3_ranges(agent_cls, kwargs, f"agent[{entry['name']}]")
        policy = entry.get("policy")
        if policy is not None and not isinstance(policy, str):
            raise ConfigError(f"agent[{entry['name']}].policy: must be a string, got {policy!r}")
        configs.append(RunConfig(
            env=EnvConfig(env_raw["id"], env_kwargs),
            agent=AgentConfig(entry["name"], policy, kwargs),
            **common,
        ))
    return configs


def load_experiment(source: str | Path | None = None, overrides: list[str] | tuple = ()) -> list[RunConfig]:
    """Read a preset name or YAML file (None: the default experiment), apply overrides and
    validate. Raises :class:`ConfigError` with a one-line message on any problem."""
    raw, label = _read_source(source)
    if "base" in raw:
        raise ConfigError(f"{label}: a sweep or tune file (it has `base`); run it with `causalrl sweep` or `causalrl tune`")
    return validate(_apply_overrides(raw, list(overrides)))
