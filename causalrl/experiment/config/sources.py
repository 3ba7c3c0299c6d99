"""Where raw configs come from: YAML files and the shipped presets (``causalrl/configs/``), and
dotted ``key=value`` overrides applied to them.

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
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from causalrl.experiment.config.schema import TOP_LEVEL_KEYS, ConfigError

__all__ = ["MAX_CONFIG_BYTES", "MAX_YAML_NODES", "MAX_YAML_DEPTH", "load_yaml_file", "parse_yaml", "preset_names",
           "read_source", "apply_overrides"]

#: the largest config file read (a bigger one is refused before parsing: parsing is not free)
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: the most values a YAML document may expand to (aliases followed) and its deepest nesting
MAX_YAML_NODES = 200_000
MAX_YAML_DEPTH = 100
#: the C YAML parser when PyYAML was built with it (about 10x faster), else the Python one
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    """The YAML document of ``text`` (a config, a run's config.yaml, an override's value), parsed
    safely and bounded: at most :data:`MAX_YAML_NODES` values once aliases are expanded and
    :data:`MAX_YAML_DEPTH` levels, checked on the parsed node graph before any Python value is
    built, so a kilobyte of nested aliases (a "billion laughs" file) is refused at once instead of
    expanding into billions of values; one-line errors naming ``label``."""
    try:
        return _load_bounded(text, label)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError(f"{label}: malformed YAML{where} ({problem}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{label}: YAML nested too deeply; fix the file") from None


def _load_bounded(text: str, label: str):
    """:func:`parse_yaml` without its error wording: yaml.YAMLError for malformed text."""
    loader = _YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, label)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expanded_size(root, label: str) -> None:
    """Refuse a node graph that expands (aliases followed) to more than MAX_YAML_NODES values or
    nests deeper than MAX_YAML_DEPTH, or refers to itself; walked once per distinct node."""
    sizes: dict[int, int] = {}
    stack = [(root, 0, False)]
    active: set[int] = set()
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if children_done:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise ConfigError(f"{label}: expands to more than {MAX_YAML_NODES:,} values (YAML aliases * repeating "
                                  "anchors &); a config holds settings, write them out plainly")
            continue
        if key in sizes:
            continue
        if key in active:
            raise ConfigError(f"{label}: a YAML alias refers to a value that contains it (a recursive structure); "
                              "write the value out plainly")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{label}: YAML nested more than {MAX_YAML_DEPTH} levels deep; fix the file")
        active.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node) if id(child) not in sizes)


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []



def preset_names() -> list[str]:
    folder = resources.files("causalrl") / "configs"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def read_source(source: str | Path | None) -> tuple[dict, str]:
    """Raw mapping of a preset name or a YAML file (None: the default preset)."""
    source = "default" if source is None else str(source)
    path = Path(source)
    shadowed = path.is_dir() and source in preset_names()  # a folder named like a preset does not hide it
    if not shadowed and (path.suffix in (".yaml", ".yml") or path.exists()):
        if path.is_dir():
            raise ConfigError(f"config file {source}: a directory; give a YAML file or a preset name "
                              f"({', '.join(preset_names())})")
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
        parsed = _load_bounded(value, f"override {text!r}") if value else None
    except (yaml.YAMLError, RecursionError):
        parsed = value  # text that is not YAML is the text itself
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


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """A copy of ``raw`` with ``agent``/``agents`` made one list and the overrides applied."""
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
            if not selection or not isinstance(value, str):
                raise ConfigError(f"override {text!r}: write agents=NAME[,NAME...] with names from this experiment "
                                  f"({', '.join(str(entry.get('name')) for entry in entries)})")
        elif head == "agents":
            targets = [entry for entry in entries if entry["name"] == path[1]]
            if not targets or len(path) < 3:
                names = ", ".join(str(entry["name"]) for entry in entries)
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
    for entry in entries:  # names are checked before the overrides too (_agent_entries); again after them
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ConfigError(f"agent.name: must be an agent name or module:Class (see `causalrl list`), "
                              f"got {entry.get('name')!r}")
    if selection is not None:
        known = [entry["name"] for entry in entries]
        unknown = [name for name in selection if name not in known]
        if unknown:
            raise ConfigError(f"override agents={','.join(selection)}: {', '.join(unknown)} not in this experiment "
                              f"({', '.join(map(str, known))})")
        raw["agents"] = [entry for entry in entries if entry["name"] in selection]
    return raw


def _set_path(target: dict, path: list[str], value: Any, text: str) -> None:
    for part in path[:-1]:
        node = target.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {text!r}: {part} is not a mapping")
        target = node
    target[path[-1]] = value

