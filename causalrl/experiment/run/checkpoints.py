"""Checkpoints, resume and the non-finite guard of a run directory.

``CheckpointCallback`` saves a resumable checkpoint every ``interval`` steps into
``RUN_DIR/checkpoints/step_<step>`` (staged, flushed to disk, then renamed), keeps
``RUN_DIR/status.json`` up to date, and stops the run with :class:`NonFiniteError` when a loss,
weight, observation or reward turns NaN/inf. ``check_checkpoint``, ``load_checkpoint`` and
``restore_run_state`` continue a run from one (docs/runner.md, resume).

Nothing in a checkpoint runs code when it is loaded: ``state.json`` (counters, RNG states, the
config fingerprint) is JSON, and ``state.pkl`` (env, metrics and logger state) is read by
:func:`causalrl.core.safe_pickle.safe_load`, which refuses every name outside an allowlist of
numpy, gymnasium, MuJoCo and causalrl types. A bandit agent's ``model.zip`` is read the same way.
Stable-Baselines3's ``model.zip`` is loaded by ``causalrl.envs.experts.load_sb3_algorithm``
(its pickled settings rebuilt without unpickling, tensors with ``torch.load(weights_only=True)``)
and ``replay_buffer.pkl`` through the allowlist with SB3's buffer classes, then checked against
the agent. Every field is range-checked before anything in the run directory changes
(:mod:`causalrl.experiment.run.untrusted`; docs/runner.md).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import cloudpickle
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from causalrl.agents.base import BanditAgent
from causalrl.core.safe_pickle import UnsafePickleError, safe_load
from causalrl.experiment.config import fingerprint as config_fingerprint
from causalrl.experiment.run.rundir import (
    UnsafeRunDirectory,
    fsync_directory,
    fsync_tree,
    read_json_file,
    write_json_atomic,
)
from causalrl.experiment.run.untrusted import (
    check_action_space_state,
    check_progress_rows,
    check_rng_states,
    check_sb3_settings,
    check_state,
    load_replay_buffer,
)

if TYPE_CHECKING:
    from causalrl.experiment.run.callbacks import MetricsCallback

__all__ = ["CheckpointCallback", "NonFiniteError", "save_checkpoint", "load_checkpoint", "restore_run_state",
           "latest_checkpoint", "first_nonfinite", "env_layers", "check_checkpoint", "read_checkpoint_info"]

#: BaseCallback's machinery and MetricsCallback's ground-truth reader: not part of a callback's state
_CALLBACK_MACHINERY = ("model", "n_calls", "num_timesteps", "verbose", "locals", "globals", "parent", "truth",
                      "evaluate", "_observation_shape")
#: attributes through which an env layer holds the layers it wraps (VecEnvWrapper, VecEnv, gymnasium Wrapper)
_INNER_LAYERS = ("venv", "envs", "env")
_LOGGER_STATE = ("name_to_value", "name_to_count", "name_to_excluded")
CHECKPOINT_FORMAT = 2
#: types state.pkl may rebuild besides numpy's (classes of these packages, rebuilt from their fields)
_STATE_GLOBALS = frozenset([("mujoco._structs", "MjModel"), ("mujoco._structs", "MjData")])
_STATE_PACKAGES = ("causalrl.core", "causalrl.envs", "gymnasium.spaces", "gymnasium.envs", "gymnasium.wrappers",
                   "gymnasium.utils", "gymnasium.core")
_STEP_FOLDER = re.compile(r"step_(\d{10})")


class NonFiniteError(ArithmeticError):
    """A loss, weight, observation or reward became NaN or infinite; the run stopped."""


def first_nonfinite(values, name: str = "") -> tuple[str, float] | None:
    """``(name, value)`` of the first NaN/inf number in a nested mapping or list of numbers,
    numpy arrays and torch tensors (names joined with '/'); None when every number is finite."""
    if isinstance(values, dict):
        items = values.items()
    elif isinstance(values, (list, tuple)):
        items = enumerate(values)
    elif isinstance(values, int):  # bools too: always finite (the logger's counts, every round)
        return None
    elif isinstance(values, float):  # the logger's values: checked every round, so without numpy
        return None if math.isfinite(values) else (name, float(values))
    else:
        if isinstance(values, th.Tensor):
            values = values.detach().cpu().numpy() if values.is_floating_point() else None
        if isinstance(values, (bool, str)) or values is None:
            return None
        array = np.asarray(values)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating)):
            return None  # integers and booleans are always finite
        bad = ~np.isfinite(array)
        return (name, float(np.real(array[bad].flat[0]))) if bad.any() else None
    for key, value in items:
        found = first_nonfinite(value, f"{name}/{key}" if name else str(key))
        if found is not None:
            return found
    return None


def env_layers(env) -> list:
    """The env and every layer it wraps, outermost first (VecEnv wrappers, a VecEnv's envs,
    gymnasium wrappers, the world): together they hold the env's whole state."""
    layers, todo = [], [env]
    while todo:
        layer = todo.pop(0)
        layers.append(layer)
        for key in _INNER_LAYERS:
            inner = vars(layer).get(key)
            if inner is not None:
                todo.extend(inner if isinstance(inner, list) else [inner])
    return layers


class _LayerPickler(cloudpickle.Pickler):
    """Pickles references to the env's layers as their position, so that restored state points
    at the live layers of the rebuilt env rather than at copies."""

    def __init__(self, file, layers: list):
        super().__init__(file)
        self._positions = {id(layer): position for position, layer in enumerate(layers)}

    def persistent_id(self, obj):
        return self._positions.get(id(obj))


def _load_state(path: Path, layers: list):
    """state.pkl through the allowlist (references to env layers resolve to the live layers)."""
    def layer(position):
        if not isinstance(position, int) or not 0 <= position < len(layers):
            raise UnsafePickleError(f"refers to env layer {position!r}, the env has {len(layers)}")
        return layers[position]

    with open(path, "rb") as file:
        return safe_load(file, _STATE_GLOBALS, _STATE_PACKAGES, persistent_load=layer)


def _rng_states(agent) -> dict:
    """Every global RNG's state as JSON (lists and numbers)."""
    space = getattr(agent, "action_space", None)  # SB3 samples warm-up actions from it; its load() reseeds it
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
            "torch": th.get_rng_state().tolist(),
            "action_space": copy.deepcopy(space.np_random.bit_generator.state) if space is not None else None}


def _set_rng_states(agent, states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    th.set_rng_state(th.tensor(states["torch"], dtype=th.uint8))
    if states["action_space"] is not None:
        agent.action_space.np_random.bit_generator.state = states["action_space"]


def save_checkpoint(folder: Path, agent, metrics: MetricsCallback, fingerprint: str | None = None) -> Path:
    """Write everything a run needs to continue into ``folder`` atomically (staged, flushed to
    disk, then renamed):

        model.zip          agent.save (SB3's format, or the bandit agents' zip)
        replay_buffer.pkl  agent.save_replay_buffer, for agents with a replay buffer
        state.json         format, step, progress.csv's row count, the config fingerprint, the
                           env layers' class names and the RNG states (python, numpy, torch,
                           the agent's action space)
        state.pkl          env layers' state, the metrics callback's state and the logger's
                           values not yet written to a row (loaded through the allowlist)
    """
    folder = Path(folder)
    if folder.parent.is_symlink():  # never write (or delete) through a link out of the run directory
        raise UnsafeRunDirectory(f"{folder.parent}: a symbolic link; causalrl writes checkpoints only inside the run")
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    agent.save(staging / "model.zip")
    if getattr(agent, "replay_buffer", None) is not None:
        agent.save_replay_buffer(staging / "replay_buffer.pkl")
    layers = env_layers(agent.get_env())
    info = {
        "format": CHECKPOINT_FORMAT,
        "step": int(agent.num_timesteps),
        "rows": len(metrics.rows),
        "fingerprint": fingerprint,
        "env_layers": [type(layer).__name__ for layer in layers],
        "rng": _rng_states(agent),
    }
    state = {
        "metrics": {key: value for key, value in vars(metrics).items() if key not in _CALLBACK_MACHINERY},
        "logger": {name: dict(getattr(agent.logger, name)) for name in _LOGGER_STATE},
        "env": [{key: value for key, value in vars(layer).items() if key not in _INNER_LAYERS} for layer in layers],
    }
    with open(staging / "state.pkl", "wb") as file:
        _LayerPickler(file, layers).dump(state)
    (staging / "state.json").write_text(json.dumps(info, sort_keys=True) + "\n")
    fsync_tree(staging)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    fsync_directory(folder.parent)
    return folder


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run directory (None when it has none). Staging
    folders (``.step_*.tmp``) and ``failed_step_*`` are skipped; any other ``step_*`` entry than a
    folder ``step_`` + ten digits is refused (causalrl never writes one)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir() or folder.is_symlink():
        return None
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith("step_"):
            if not _STEP_FOLDER.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
                raise ValueError(f"{entry}: not a checkpoint causalrl writes (a folder step_ and ten digits); delete "
                                 "it, or give the run directory it came from")
            found.append(entry)
    return max(found) if found else None


def read_checkpoint_info(folder: Path) -> dict:
    """A checkpoint's state.json (format, step, rows, fingerprint, env layers, RNG states), every
    field type- and range-checked (the RNG states by applying them to scratch generators)."""
    folder = Path(folder)
    try:
        info = read_json_file(folder / "state.json")
    except ValueError as error:
        raise ValueError(f"checkpoint {folder}: unreadable state.json ({error}); delete that folder to restart the "
                         "run from step 0") from None
    if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
        found = info.get("format") if isinstance(info, dict) else None
        raise ValueError(f"checkpoint {folder}: format {found!r}, this causalrl reads format {CHECKPOINT_FORMAT}; "
                         "delete that folder to restart the run from step 0")
    for key, kind in (("step", int), ("rows", int), ("env_layers", list), ("rng", dict)):
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            raise ValueError(f"checkpoint {folder}: state.json has no valid {key!r}; delete that folder to restart "
                             "the run from step 0")
    name = _STEP_FOLDER.fullmatch(folder.name)
    if info["step"] < 1 or info["rows"] < 0 or (name is not None and int(name.group(1)) != info["step"]):
        raise ValueError(f"checkpoint {folder}: state.json says step {info['step']} and {info['rows']} rows, which "
                         "do not fit the folder; delete that folder to restart the run from step 0")
    if not all(isinstance(layer, str) for layer in info["env_layers"]) or not (
            info.get("fingerprint") is None or isinstance(info["fingerprint"], str)):
        raise ValueError(f"checkpoint {folder}: state.json's env_layers or fingerprint is damaged; delete that "
                         "folder to restart the run from step 0")
    check_rng_states(folder, info["rng"])
    return info


def check_checkpoint(folder: Path, config, run_dir: Path | None = None) -> dict:
    """Refuse, before anything changes, a checkpoint that does not belong to ``config`` (the
    run's config.yaml): another config fingerprint, more steps than ``total_steps``, or a row
    count that does not fit ``run_dir``'s progress.csv."""
    info = read_checkpoint_info(folder)
    if info.get("fingerprint") != config_fingerprint(config):
        raise ValueError(f"checkpoint {folder}: config.yaml changed since the checkpoint was written (fingerprint "
                         f"{info.get('fingerprint')} != {config_fingerprint(config)}); restore the config.yaml the run started "
                         "with, or start a new run with the new config")
    if info["step"] >= config.total_steps:
        raise ValueError(f"checkpoint {folder}: at step {info['step']}, but total_steps is {config.total_steps}; "
                         "restore the config.yaml the run started with")
    check_progress_rows(Path(run_dir) if run_dir is not None else Path(folder).parent.parent, folder, info["rows"],
                        info["step"])
    return info


def _uses_sb3_files(agent_cls) -> bool:
    return not (isinstance(agent_cls, type) and issubclass(agent_cls, BanditAgent))


def load_checkpoint(folder: Path, agent_cls, env, fresh_metrics=None, fresh_agent=None, **load_kwargs):
    """``(agent, state)`` from a checkpoint: the agent loaded with ``env`` (the run's env, built
    fresh from its config), its replay buffer and the env layers' state restored; the rest of
    ``state`` goes to :func:`restore_run_state` once the logger and callbacks exist. Nothing is
    unpickled with a loader that can run code (unless inside ``trusting()``), and every saved
    value is checked against the live env, ``fresh_metrics`` (a new MetricsCallback) and
    ``fresh_agent`` (the agent the config builds: an SB3 model's settings must equal its own)."""
    folder = Path(folder)
    info = read_checkpoint_info(folder)
    if fresh_agent is not None and _uses_sb3_files(agent_cls):
        check_sb3_settings(folder, info["step"], fresh_agent)  # before SB3 builds anything from them
    try:
        if _uses_sb3_files(agent_cls):
            from causalrl.envs.experts import load_sb3_algorithm  # here: a bandit run never loads the experts module

            agent = load_sb3_algorithm(agent_cls, folder / "model.zip", env=env, force_reset=False, **load_kwargs)
            if (folder / "replay_buffer.pkl").exists():
                load_replay_buffer(agent, folder / "replay_buffer.pkl")
        else:
            agent = agent_cls.load(folder / "model.zip", env=env, force_reset=False, **load_kwargs)
        if int(getattr(agent, "num_timesteps", -1)) != info["step"]:
            raise ValueError(f"model.zip is at step {getattr(agent, 'num_timesteps', None)!r}, state.json at "
                             f"{info['step']}")
        layers = env_layers(agent.get_env())
        found = [type(layer).__name__ for layer in layers]
        if info["env_layers"] != found:
            raise ValueError(f"checkpoint {folder}: written for env layers {info['env_layers']}, the run's config "
                             f"builds {found}; resume with the config.yaml the run started with")
        state = _load_state(folder / "state.pkl", layers)
        if not isinstance(state, dict) or set(state) != {"metrics", "logger", "env"}:
            raise ValueError("state.pkl: not a causalrl checkpoint state")
    except Exception as error:  # any damage to the files: one line naming the checkpoint
        if isinstance(error, ValueError) and str(error).startswith("checkpoint "):
            raise
        text = " ".join(str(error).split())[:240]
        raise ValueError(f"checkpoint {folder}: unreadable ({type(error).__name__}: {text}); delete that folder "
                         "to restart the run from step 0") from None
    check_state(folder, info, state, layers, fresh_metrics, _LOGGER_STATE)
    check_action_space_state(folder, agent, info["rng"]["action_space"])
    for layer, saved in zip(layers, state["env"]):
        vars(layer).update(saved)
    return agent, {**info, **state}


def restore_run_state(agent, metrics: MetricsCallback, state: dict) -> None:
    """Put back the metrics callback's counters, the logger's pending values and the RNG states
    (last: loading the agent reseeds them)."""
    vars(metrics).update(copy.deepcopy(state["metrics"]))
    for name in _LOGGER_STATE:
        getattr(agent.logger, name).update(state["logger"][name])
    _set_rng_states(agent, state["rng"])


class CheckpointCallback(BaseCallback):
    """Writes a resumable checkpoint every ``interval`` env steps and stops the run on NaN/inf.

    A checkpoint falls due once ``interval`` steps have passed since the last one and is written
    at the start of the next rollout (SB3's ``collect_rollouts``; every round for bandit agents),
    where the update that used the last step is done and env and agent agree. Only the newest is
    kept, as ``RUN_DIR/checkpoints/step_<step>``; ``RUN_DIR/status.json`` names it.

    The guard checks each step's observations and rewards (callback locals ``new_obs`` and
    ``rewards``), at each rollout start the values the agent recorded in the logger (losses such
    as ``train/critic_loss``), and at each log row and before each checkpoint the agent's
    parameters (``get_parameters()``), so every kept checkpoint is finite. On a NaN/inf it saves
    the state at failure to ``checkpoints/failed_step_<step>``, marks the run failed and raises
    :class:`NonFiniteError` with a one-line message naming the step and the quantity.

    :param run_dir: the run directory.
    :param interval: env steps between checkpoints.
    :param metrics: the run's MetricsCallback (its state and row count go into each checkpoint).
    :param last_checkpoint: the checkpoint a resumed run started from (None for a new run).
    :param fingerprint: the run config's fingerprint, stored in each checkpoint (resume refuses
        a config.yaml whose fingerprint differs).
    :param keep: steps whose model is saved as ``RUN_DIR/kept/step_<step>/model.zip`` (the
        ``keep_checkpoints`` key); these survive the run's completion, unlike ``checkpoints/``.
    """

    def __init__(self, run_dir: Path, interval: int, metrics: MetricsCallback, last_checkpoint: Path | None = None,
                 fingerprint: str | None = None, keep=()):
        super().__init__(verbose=0)
        self.keep = frozenset(int(step) for step in keep or ())
        self.run_dir = Path(run_dir)
        self.fingerprint = fingerprint
        self.interval = interval
        self.metrics = metrics
        self.last_checkpoint = last_checkpoint
        self.last_step = int(last_checkpoint.name.split("_")[-1]) if last_checkpoint is not None else 0
        self.due = False

    def _on_step(self) -> bool:
        self._check(first_nonfinite({"observation": self.locals.get("new_obs"), "reward": self.locals.get("rewards")}))
        step = self.model.num_timesteps
        if step in self.keep and callable(getattr(self.model, "save", None)):
            self.model.save(self.run_dir / "kept" / f"step_{step}" / "model.zip")
        if step % self.metrics.log_interval == 0:
            self._check(first_nonfinite({"weight": self.model.get_parameters()}))
        self.due = self.due or step - self.last_step >= self.interval
        return True

    def _on_rollout_start(self) -> None:
        self._check(first_nonfinite(dict(self.logger.name_to_value)))
        if self.due:
            self._check(first_nonfinite({"weight": self.model.get_parameters()}))
            step = self.model.num_timesteps
            folder = save_checkpoint(self.run_dir / "checkpoints" / f"step_{step:010d}", self.model, self.metrics,
                                     self.fingerprint)
            for older in (self.run_dir / "checkpoints").glob("step_*"):
                if older != folder:
                    shutil.rmtree(older)
            self.last_checkpoint, self.last_step, self.due = folder, step, False
            self.write_status("running")

    def _check(self, found: tuple[str, float] | None) -> None:
        if found is None:
            return
        quantity, value = found
        step = self.model.num_timesteps
        failed = save_checkpoint(self.run_dir / "checkpoints" / f"failed_step_{step:010d}", self.model, self.metrics,
                                 self.fingerprint)
        good = (f"resume from step {self.last_step}" if self.last_checkpoint is not None else "resume restarts at step 0")
        message = (f"non-finite {quantity} ({value}) at step {step}; state at failure saved to {failed}; "
                   f"fix the cause, then `causalrl run --resume {self.run_dir}` ({good})")
        self.write_status("failed", error=message)
        raise NonFiniteError(message)

    def write_status(self, status: str, **fields) -> None:
        """RUN_DIR/status.json: running | failed | interrupted | complete, with the last checkpoint.
        Only summary.json with "status": "complete" marks a finished run."""
        checkpoint = None if self.last_checkpoint is None else str(self.last_checkpoint.relative_to(self.run_dir))
        step = self.model.num_timesteps if getattr(self, "model", None) is not None else self.last_step
        write_json_atomic(self.run_dir / "status.json", {
            "status": status, "pid": os.getpid(), "step": int(step), "checkpoint": checkpoint,
            "checkpoint_step": self.last_step if checkpoint else None, **fields})
