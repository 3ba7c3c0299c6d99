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
import inspect
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "EnvConfig", "AgentConfig", "RunConfig", "load_experiment", "preset_names", "to_yaml"]

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
}


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
        text, label = path.read_text(), str(path)
    elif source in preset_names():
        text, label = (resources.files("causalrl") / "configs" / f"{source}.yaml").read_text(), f"preset {source}"
    else:
        raise ConfigError(f"unknown preset or file {source!r}; presets: {', '.join(preset_names())}")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{label}: malformed YAML{where} ({getattr(error, 'problem', error)}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: top level must be a mapping of keys (experiment, env, agent, ...)")
    return raw, label


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: write key=value, e.g. seed=3 or agent.exploration=2")
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
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
        raise ConfigError(f"{key}: must be an integer{hint}, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string, got {value!r}")
    if check is not None and not check(value):
        raise ConfigError(f"{key}: must be{hint}, got {value!r}")
    return value


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
    if env_cls is not None:
        _check_arguments(env_cls, env_kwargs, "env", reserved={"render_mode"})
    common = dict(
        experiment=_typed(raw, "experiment", str, "default", lambda v: v and "/" not in v, " a non-empty name without '/'"),
        seed=_typed(raw, "seed", int, 0, lambda v: v >= 0, " >= 0"),
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
