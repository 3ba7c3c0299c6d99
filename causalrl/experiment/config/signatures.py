"""What a class's constructor accepts, read from its signature: argument names (following
``**kwargs`` up the MRO), simple annotated types, and the numeric ranges of the
Stable-Baselines3 hyperparameters. Worlds, learners and plugins are checked against these
before anything is built."""

from __future__ import annotations

import inspect
import math
import re

from causalrl.experiment.config.schema import MAX_SEED, ConfigError

__all__ = ["check_arguments", "check_types", "check_sb3_ranges", "check_sb3_consistency", "SB3_RANGES"]


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


def check_arguments(cls, kwargs: dict, where: str, reserved: set[str]) -> None:
    accepted = _accepted_arguments(cls)
    if accepted is None:
        return
    for key in kwargs:
        if key not in accepted - reserved:
            options = ", ".join(sorted(accepted - reserved)) or "none"
            raise ConfigError(f"{where}.{key}: unknown key for {cls.__name__}; accepted keys: {options}")



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


def check_types(cls, kwargs: dict, where: str) -> None:
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
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{where}.{key}: must be a finite number, got {value}")
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
            if not -(2**63) <= value < 2**63:  # numpy and torch hold integers in 64 bits
                raise ConfigError(f"{where}.{key}: {value} does not fit a 64-bit integer; give a smaller value")
        elif isinstance(value, float):
            if "float" not in types:
                raise ConfigError(f"{where}.{key}: must be {_kind(types)}, got {value!r}")
            if math.isnan(value):
                raise ConfigError(f"{where}.{key}: must be a number, got nan")
            if math.isinf(value):
                raise ConfigError(f"{where}.{key}: must be a finite number, got {value}")
        elif isinstance(value, str):
            if "str" not in types:
                raise ConfigError(f"{where}.{key}: must be {_kind(types)}, got {value!r}{_yaml_hint(value)}")
        if key.endswith("seed") and isinstance(value, int) and not 0 <= value <= MAX_SEED:
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


def _widths(value) -> bool:
    return isinstance(value, list) and all(_integer(1)[0](width) and width <= 65536 for width in value)


def _policy_kwargs(value) -> bool:
    if not isinstance(value, dict):
        return False
    arch = value.get("net_arch")
    if arch is None:
        return True
    if isinstance(arch, dict):
        return bool(arch) and all(isinstance(key, str) and _widths(widths) for key, widths in arch.items())
    return _widths(arch)


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
    "policy_kwargs": (_policy_kwargs, "a mapping (e.g. {net_arch: [64, 64]}) whose net_arch lists layer widths in "
                      "[1, 65536] (or maps pi/qf to such lists)"),
    "action_noise": ((lambda v: v is None), "null (an SB3 ActionNoise object cannot be written in a config)"),
    "replay_buffer_kwargs": ((lambda v: isinstance(v, dict)), "a mapping"),
    "device": ((lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v) is not None),
               "auto, cpu, cuda, cuda:N or mps"),
}


def check_sb3_consistency(cls, kwargs: dict, where: str) -> None:
    """Settings that are each in range but nonsense together: a batch larger than the replay
    buffer it is sampled from (the constructor's defaults fill what ``kwargs`` leaves out)."""
    accepted = _parameters(cls)
    values = {key: kwargs.get(key, accepted[key].default if key in accepted else None)
              for key in ("batch_size", "buffer_size")}
    batch, buffer = values["batch_size"], values["buffer_size"]
    if _integer(1)[0](batch) and _integer(1)[0](buffer) and batch > buffer:
        raise ConfigError(f"{where}.batch_size: {batch} is larger than buffer_size {buffer}, so no batch could be "
                          "sampled; lower batch_size or raise buffer_size")


def check_sb3_ranges(cls, kwargs: dict, where: str) -> None:
    accepted = _parameters(cls)
    for key, value in kwargs.items():
        if key in SB3_RANGES and key in accepted and value is not None:
            check, text = SB3_RANGES[key]
            if not check(value):
                raise ConfigError(f"{where}.{key}: must be {text}, got {value!r}"[:300])
