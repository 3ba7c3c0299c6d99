"""Reading a run directory as untrusted input: what ``--resume`` checks before the first byte
of the directory changes (docs/runner.md, "Resume reads the run directory as untrusted input").

A run directory can be damaged (a kill, a full disk), edited by hand, or come from someone else.
Every field a resume trusts is range-checked here against the run's config and against the
other files of the directory: the checkpoint's step and row count against ``progress.csv``, the
RNG states by applying them to scratch generators, and the saved metrics and env state against
the freshly built callback and env (same kinds of values; constructor arguments unchanged). Each
problem is one ``ValueError`` line naming the file and the fix.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import numbers
import random
from collections import deque
from pathlib import Path

import numpy as np
import torch as th

from causalrl.core.safe_pickle import SB3_SPACE_PACKAGES, models_trusted, read_sb3_data, safe_load
from causalrl.experiment.config import ConfigError, fingerprint
from causalrl.experiment.run.rundir import read_json_file

__all__ = ["check_progress_rows", "check_rng_states", "check_action_space_state", "check_saved_state",
           "check_run_fingerprint", "check_sb3_settings", "check_state", "load_replay_buffer"]

#: what SB3's replay_buffer.pkl may rebuild besides numpy values and spaces
_BUFFER_GLOBALS = frozenset([("stable_baselines3.common.buffers", "ReplayBuffer"), ("torch", "device")])

_PYTHON_STATE = 625  # Mersenne Twister words + the position (random.getstate())
_NUMPY_KEYS = 624


def _damaged(folder: Path, what: str) -> ValueError:
    return ValueError(f"checkpoint {folder}: {what}; delete that folder to restart the run from step 0")


def _ints(values, length: int, high: int) -> bool:
    return (isinstance(values, list) and len(values) == length
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < high for v in values))


def check_rng_states(folder: Path, rng: dict) -> None:
    """Refuse RNG states (state.json ``rng``) that the generators would not take: each is checked
    field by field, then applied to a scratch generator (never to the global ones)."""
    if not isinstance(rng, dict) or set(rng) != {"python", "numpy", "torch", "action_space"}:
        raise _damaged(folder, "state.json rng must hold python, numpy, torch and action_space states")
    try:
        version, internal, gauss = rng["python"]
        if version != 3 or not _ints(internal, _PYTHON_STATE, 2**32) or internal[-1] > _NUMPY_KEYS:
            raise ValueError("python: not a Mersenne Twister state")
        if gauss is not None and not isinstance(gauss, float):
            raise ValueError("python: gauss must be null or a number")
        random.Random().setstate((version, tuple(internal), gauss))
        kind, keys, position, has_gauss, cached = rng["numpy"]
        if kind != "MT19937" or not _ints(keys, _NUMPY_KEYS, 2**32) or not _ints([position], 1, _NUMPY_KEYS + 1):
            raise ValueError("numpy: not an MT19937 state")
        if has_gauss not in (0, 1) or isinstance(has_gauss, bool) or not isinstance(cached, (int, float)):
            raise ValueError("numpy: has_gauss must be 0 or 1 and cached_gaussian a number")
        np.random.RandomState().set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
        size = th.get_rng_state().numel()
        if not _ints(rng["torch"], size, 256):
            raise ValueError(f"torch: must be {size} bytes")
        th.Generator().set_state(th.tensor(rng["torch"], dtype=th.uint8))
    except (TypeError, ValueError, IndexError, RuntimeError, OverflowError, KeyError) as error:
        raise _damaged(folder, f"state.json holds damaged RNG states ({' '.join(str(error).split())[:120]})") from None


def check_action_space_state(folder: Path, agent, state) -> None:
    """The action space's RNG state against the loaded agent: present exactly when the agent has
    an action space, and accepted by a scratch bit generator of its kind."""
    space = getattr(agent, "action_space", None)
    if (space is None) != (state is None):
        raise _damaged(folder, "state.json's action_space RNG state does not fit this agent (it "
                       f"{'has no' if space is None else 'has an'} action space)")
    if state is None:
        return
    try:
        scratch = type(space.np_random.bit_generator)()
        scratch.state = state
    except Exception as error:  # numpy raises its own kinds for each malformed field
        raise _damaged(folder, f"state.json holds a damaged action_space RNG state ({type(error).__name__})") from None


def _row_step(row: list[str], column: int, path: Path) -> int:
    try:
        value = float(row[column])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: a row has no readable time/steps; the run directory is damaged, start the run "
                         "again") from None
    return int(value) if math.isfinite(value) else -1


def check_progress_rows(run_dir: Path, folder: Path | None, rows: int, step: int) -> None:
    """``progress.csv`` must hold the ``rows`` complete rows a checkpoint at ``step`` had logged
    (a row the kill cut short may follow): the ``rows``-th at a step <= ``step``, the next one,
    if any, after it. A resume without a checkpoint (``folder`` None) needs no rows."""
    path = Path(run_dir) / "progress.csv"
    where = "the checkpoint" if folder is not None else "the run"
    if not path.exists():
        if rows:
            raise ValueError(f"{path}: missing, but {where} logged {rows} rows; the run directory is damaged, start "
                             "the run again")
        return
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}); the run directory is damaged, start the run "
                         "again") from None
    lines = text.splitlines(keepends=True)
    complete = [line for line in lines[1:] if line.endswith("\n")]
    if len(complete) < len(lines) - 2:
        raise ValueError(f"{path}: a row in the middle is cut short; the run directory is damaged, start the run again")
    if rows > len(complete):
        raise ValueError(f"{path}: holds {len(complete)} rows, but {where} logged {rows} ({folder}); the run directory "
                         "is damaged, start the run again")
    if folder is None or not complete:
        return
    header = next(csv.reader(io.StringIO(lines[0])), [])
    if "time/steps" not in header:
        raise ValueError(f"{path}: no time/steps column; the run directory is damaged, start the run again")
    column = header.index("time/steps")
    parsed = list(csv.reader(io.StringIO("".join(complete[: rows + 1]))))
    if rows and _row_step(parsed[rows - 1], column, path) > step:
        raise _damaged(folder, f"state.json says {rows} rows at step {step}, but row {rows} of progress.csv is at "
                       f"step {_row_step(parsed[rows - 1], column, path)}")
    if rows < len(complete) and _row_step(parsed[rows], column, path) <= step:
        raise _damaged(folder, f"state.json says {rows} rows at step {step}, but progress.csv logged row "
                       f"{rows + 1} at step {_row_step(parsed[rows], column, path)} before it")


def _same_kind(saved, live) -> bool:
    """Whether a saved value may replace a live one: numbers for numbers, arrays of the same
    kind and rank, otherwise the same type (None on either side: set later in a run)."""
    if saved is None or live is None:
        return True
    if isinstance(live, (bool, np.bool_)) or isinstance(saved, (bool, np.bool_)):
        return isinstance(live, (bool, np.bool_)) and isinstance(saved, (bool, np.bool_))
    if isinstance(live, numbers.Real) and not isinstance(live, np.ndarray):
        return isinstance(saved, numbers.Real) and not isinstance(saved, np.ndarray)
    if isinstance(live, np.ndarray):
        return isinstance(saved, np.ndarray) and saved.dtype.kind == live.dtype.kind and saved.ndim == live.ndim
    if isinstance(live, (list, tuple, deque)):
        return isinstance(saved, (list, tuple, deque))
    return type(saved) is type(live)


def _constructor_arguments(layer) -> set[str]:
    try:
        return set(inspect.signature(type(layer).__init__).parameters) - {"self", "env"}
    except (TypeError, ValueError):
        return set()


def check_saved_state(folder: Path, name: str, saved, live, fixed: bool = False) -> None:
    """Refuse saved attributes (state.pkl's metrics or one env layer's) that do not fit the live
    object they are restored into: unknown names that are methods or properties of its class,
    values of another kind (:func:`_same_kind`), and, for env layers (``fixed``), constructor
    arguments that differ from the freshly built env's (``n_nodes``, ``horizon``: set by the config)."""
    if not isinstance(saved, dict) or not all(isinstance(key, str) for key in saved):
        raise _damaged(folder, f"state.pkl's {name} state is not a mapping of attribute names")
    current = vars(live)
    arguments = _constructor_arguments(live) if fixed else set()
    for key, value in saved.items():
        if key not in current:
            if callable(getattr(type(live), key, None)) or isinstance(getattr(type(live), key, None), property):
                raise _damaged(folder, f"state.pkl sets {name}.{key}, which is a method or property of "
                               f"{type(live).__name__}, not saved state")
            continue
        if not _same_kind(value, current[key]):
            raise _damaged(folder, f"state.pkl's {name}.{key} is a {type(value).__name__}, the run's "
                           f"{type(live).__name__} holds a {type(current[key]).__name__} there")
        if key in arguments and isinstance(current[key], (int, str, bool)) and value != current[key]:
            raise _damaged(folder, f"state.pkl's {name}.{key} is {value!r}, but the run's config builds "
                           f"{current[key]!r}; restore the checkpoint the run wrote")


def check_run_fingerprint(run_dir: Path, config, checkpoint: Path | None, name: str = "run.json") -> None:
    """run.json's fingerprint (written at run start, before config.yaml) against config.yaml's, so
    that an edited config.yaml is refused even without a checkpoint; a run without one (written
    before run.json existed) resumes only from a checkpoint, which carries its own."""
    path = Path(run_dir) / name
    if not path.exists():
        if checkpoint is None:
            raise ConfigError(f"--resume {run_dir}: no {name} and no checkpoint, so nothing shows that config.yaml "
                              f"is the config the run started with; start a new run (causalrl run {run_dir}/config.yaml)")
        return
    data = read_json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str):
        raise ConfigError(f"{path}: damaged (no fingerprint); start a new run (causalrl run {run_dir}/config.yaml)")
    if data["fingerprint"] != fingerprint(config):
        raise ConfigError(f"--resume {run_dir}: config.yaml changed since the run started (fingerprint "
                          f"{data['fingerprint']} in {name} != {fingerprint(config)}); restore the config.yaml the "
                          "run started with, or start a new run with the new config")


def check_sb3_settings(folder: Path, step: int, fresh) -> None:
    """An SB3 checkpoint's settings (the JSON of its model.zip) against the agent the run's config
    builds, before SB3 builds anything from them: every constructor argument it stores
    (``buffer_size``, ``batch_size``, ``policy_kwargs``, ...) must equal the fresh agent's, and
    ``num_timesteps`` the checkpoint's step. A planted ``buffer_size: 10**12`` allocates nothing."""
    data = read_sb3_data(Path(folder) / "model.zip")
    if data.get("num_timesteps") != step:
        raise _damaged(folder, f"model.zip's num_timesteps is {data.get('num_timesteps')!r}, state.json's step {step}")
    names = set()
    for klass in type(fresh).__mro__:
        if "__init__" in vars(klass):
            try:
                names |= set(inspect.signature(vars(klass)["__init__"]).parameters)
            except (TypeError, ValueError):
                continue
    for name in sorted(names & set(data) - {"self", "env", "policy", "seed", "verbose", "device"}):
        saved, live = data[name], getattr(fresh, name, None)
        if isinstance(saved, dict) and ":serialized:" in saved or name not in vars(fresh):
            continue
        try:
            live = json.loads(json.dumps(live))
        except (TypeError, ValueError):
            continue  # not JSON in the fresh agent either: SB3 pickles it, and the allowlist reads it
        if saved != live:
            raise _damaged(folder, f"model.zip says {name}={saved!r}, the run's config gives {live!r}")


def load_replay_buffer(agent, path: Path) -> None:
    """SB3's replay_buffer.pkl through the allowlist (numpy, spaces, SB3's ReplayBuffer), then
    checked against the agent: its class, size, spaces and array shapes (SB3's own
    ``load_replay_buffer`` unpickles; it runs inside ``trusting()``)."""
    if models_trusted():
        agent.load_replay_buffer(path)
        return
    from stable_baselines3.common.buffers import ReplayBuffer

    try:
        with open(path, "rb") as file:
            buffer = safe_load(file, _BUFFER_GLOBALS, SB3_SPACE_PACKAGES)
    except Exception as error:  # the allowlist's refusal, or any damage: one line naming the file
        raise ValueError(f"{path}: {type(error).__name__}: {' '.join(str(error).split())[:200]}") from None
    mine = agent.replay_buffer
    if type(buffer) is not ReplayBuffer or type(mine) is not ReplayBuffer:
        raise ValueError(f"{path}: holds a {type(buffer).__name__}, the agent keeps a {type(mine).__name__}")
    for name in ("buffer_size", "n_envs", "obs_shape", "action_dim", "optimize_memory_usage",
                 "handle_timeout_termination"):
        if getattr(buffer, name, None) != getattr(mine, name, None):
            raise ValueError(f"{path}: its {name} is {getattr(buffer, name, None)!r}, the run's agent has "
                             f"{getattr(mine, name, None)!r}")
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        saved, live = getattr(buffer, name, None), getattr(mine, name)
        if live is None and saved is None:
            continue
        if not isinstance(saved, np.ndarray) or saved.shape != live.shape or saved.dtype != live.dtype:
            raise ValueError(f"{path}: {name} is not a {live.dtype} array of shape {live.shape}")
    if not (isinstance(buffer.pos, int) and 0 <= buffer.pos < buffer.buffer_size and isinstance(buffer.full, bool)):
        raise ValueError(f"{path}: position {buffer.pos!r} / full {buffer.full!r} out of range")
    buffer.observation_space, buffer.action_space, buffer.device = mine.observation_space, mine.action_space, agent.device
    agent.replay_buffer = buffer


def check_state(folder: Path, info: dict, state: dict, layers: list, fresh_metrics, logger_names) -> None:
    """state.pkl against state.json and the live objects (docs/runner.md, resume)."""
    metrics, logger, env = state["metrics"], state["logger"], state["env"]
    if fresh_metrics is not None:
        check_saved_state(folder, "metrics", metrics, fresh_metrics)
    rows = metrics.get("rows") if isinstance(metrics, dict) else None
    if (not isinstance(rows, list) or len(rows) != info["rows"] or metrics.get("steps") != info["step"]
            or not all(isinstance(row, dict) for row in rows)):
        found = f"{len(rows)} rows" if isinstance(rows, list) else "no rows"
        raise ValueError(f"checkpoint {folder}: state.pkl's metrics ({found} at step "
                         f"{metrics.get('steps') if isinstance(metrics, dict) else None!r}) do not match state.json "
                         f"({info['rows']} rows at step {info['step']}); delete that folder to restart the run from step 0")
    if (not isinstance(logger, dict) or set(logger) != set(logger_names)
            or not all(isinstance(logger[name], dict) for name in logger_names)):
        raise ValueError(f"checkpoint {folder}: state.pkl's logger state is damaged; delete that folder to restart "
                         "the run from step 0")
    if not isinstance(env, list) or len(env) != len(layers):
        raise ValueError(f"checkpoint {folder}: state.pkl holds {len(env) if isinstance(env, list) else 'no'} env "
                         f"layers, the run's env has {len(layers)}; delete that folder to restart the run from step 0")
    for position, (layer, saved) in enumerate(zip(layers, env)):
        check_saved_state(folder, f"env[{position}] ({type(layer).__name__})", saved, layer, fixed=True)
        if {"env", "venv", "envs"} & set(saved):  # which layer wraps which comes from the config, never the file
            raise ValueError(f"checkpoint {folder}: state.pkl rewires env layer {position}; delete that folder to "
                             "restart the run from step 0")
