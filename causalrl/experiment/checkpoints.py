"""Checkpoints, resume and the non-finite guard of a run directory.

``CheckpointCallback`` saves a resumable checkpoint every ``interval`` steps into
``RUN_DIR/checkpoints/step_<step>`` (staged, then renamed), keeps ``RUN_DIR/status.json`` up to
date, and stops the run with :class:`NonFiniteError` when a loss, weight, observation or reward
turns NaN/inf. ``load_checkpoint`` and ``restore_run_state`` continue a run from one
(docs/runner.md, resume).
"""

from __future__ import annotations

import copy
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import cloudpickle
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from causalrl.experiment.rundir import write_json_atomic

if TYPE_CHECKING:
    from causalrl.experiment.callbacks import MetricsCallback

__all__ = ["CheckpointCallback", "NonFiniteError", "save_checkpoint", "load_checkpoint", "restore_run_state",
           "latest_checkpoint", "first_nonfinite", "env_layers"]

#: BaseCallback's machinery and MetricsCallback's ground-truth reader: not part of a callback's state
_CALLBACK_MACHINERY = ("model", "n_calls", "num_timesteps", "verbose", "locals", "globals", "parent", "truth",
                      "evaluate")
#: attributes through which an env layer holds the layers it wraps (VecEnvWrapper, VecEnv, gymnasium Wrapper)
_INNER_LAYERS = ("venv", "envs", "env")
_LOGGER_STATE = ("name_to_value", "name_to_count", "name_to_excluded")
CHECKPOINT_FORMAT = 1


class NonFiniteError(ArithmeticError):
    """A loss, weight, observation or reward became NaN or infinite; the run stopped."""


def first_nonfinite(values, name: str = "") -> tuple[str, float] | None:
    """``(name, value)`` of the first NaN/inf number in a nested mapping or list of numbers,
    numpy arrays and torch tensors (names joined with '/'); None when every number is finite."""
    if isinstance(values, dict):
        items = values.items()
    elif isinstance(values, (list, tuple)):
        items = enumerate(values)
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


class _LayerUnpickler(pickle.Unpickler):
    def __init__(self, file, layers: list):
        super().__init__(file)
        self._layers = layers

    def persistent_load(self, position):
        return self._layers[position]


def _rng_states(agent) -> dict:
    space = getattr(agent, "action_space", None)  # SB3 samples warm-up actions from it; its load() reseeds it
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": th.get_rng_state(),
            "action_space": copy.deepcopy(space.np_random.bit_generator.state) if space is not None else None}


def _set_rng_states(agent, states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    th.set_rng_state(states["torch"])
    if states["action_space"] is not None:
        agent.action_space.np_random.bit_generator.state = states["action_space"]


def save_checkpoint(folder: Path, agent, metrics: MetricsCallback) -> Path:
    """Write everything a run needs to continue into ``folder`` atomically (staged, then renamed):

        model.zip          agent.save (SB3 or bandit; a pickle)
        replay_buffer.pkl  agent.save_replay_buffer, for agents with a replay buffer
        state.pkl          env layers' state, RNG states (python, numpy, torch, the agent's
                           action space), the metrics callback's state and progress.csv's row
                           count, and the logger's values not yet written to a row
    """
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    agent.save(staging / "model.zip")
    if getattr(agent, "replay_buffer", None) is not None:
        agent.save_replay_buffer(staging / "replay_buffer.pkl")
    layers = env_layers(agent.get_env())
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": int(agent.num_timesteps),
        "rows": len(metrics.rows),
        "metrics": {key: value for key, value in vars(metrics).items() if key not in _CALLBACK_MACHINERY},
        "logger": {name: dict(getattr(agent.logger, name)) for name in _LOGGER_STATE},
        "rng": _rng_states(agent),
        "env_layers": [type(layer).__name__ for layer in layers],
        "env": [{key: value for key, value in vars(layer).items() if key not in _INNER_LAYERS} for layer in layers],
    }
    with open(staging / "state.pkl", "wb") as file:
        _LayerPickler(file, layers).dump(state)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run directory (None when it has none)."""
    folders = sorted((Path(run_dir) / "checkpoints").glob("step_*"))
    return folders[-1] if folders else None


def load_checkpoint(folder: Path, agent_cls, env, **load_kwargs):
    """``(agent, state)`` from a checkpoint: the agent loaded with ``env`` (the run's env, built
    fresh from its config), its replay buffer and the env layers' state restored; the rest of
    ``state`` goes to :func:`restore_run_state` once the logger and callbacks exist."""
    folder = Path(folder)
    try:
        agent = agent_cls.load(folder / "model.zip", env=env, force_reset=False, **load_kwargs)
        if (folder / "replay_buffer.pkl").exists():
            agent.load_replay_buffer(folder / "replay_buffer.pkl")
        layers = env_layers(agent.get_env())
        with open(folder / "state.pkl", "rb") as file:
            state = _LayerUnpickler(file, layers).load()
    except Exception as error:  # any damage to the files: one line naming the checkpoint
        text = " ".join(str(error).split())[:200]
        raise ValueError(f"checkpoint {folder}: unreadable ({type(error).__name__}: {text}); delete that folder "
                         "to restart the run from step 0") from None
    found = [type(layer).__name__ for layer in layers]
    if state.get("format") != CHECKPOINT_FORMAT or state["env_layers"] != found:
        raise ValueError(f"checkpoint {folder}: written for env layers {state.get('env_layers')}, the run's config "
                         f"builds {found}; resume with the config.yaml the run started with")
    for layer, saved in zip(layers, state["env"]):
        vars(layer).update(saved)
    return agent, state


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

    Args:
        run_dir: the run directory.
        interval: env steps between checkpoints.
        metrics: the run's MetricsCallback (its state and row count go into each checkpoint).
        last_checkpoint: the checkpoint a resumed run started from (None for a new run).
    """

    def __init__(self, run_dir: Path, interval: int, metrics: MetricsCallback, last_checkpoint: Path | None = None):
        super().__init__(verbose=0)
        self.run_dir = Path(run_dir)
        self.interval = interval
        self.metrics = metrics
        self.last_checkpoint = last_checkpoint
        self.last_step = int(last_checkpoint.name.split("_")[-1]) if last_checkpoint is not None else 0
        self.due = False

    def _on_step(self) -> bool:
        self._check(first_nonfinite({"observation": self.locals.get("new_obs"), "reward": self.locals.get("rewards")}))
        step = self.model.num_timesteps
        if step % self.metrics.log_interval == 0:
            self._check(first_nonfinite({"weight": self.model.get_parameters()}))
        self.due = self.due or step - self.last_step >= self.interval
        return True

    def _on_rollout_start(self) -> None:
        self._check(first_nonfinite(dict(self.logger.name_to_value)))
        if self.due:
            self._check(first_nonfinite({"weight": self.model.get_parameters()}))
            step = self.model.num_timesteps
            folder = save_checkpoint(self.run_dir / "checkpoints" / f"step_{step:010d}", self.model, self.metrics)
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
        failed = save_checkpoint(self.run_dir / "checkpoints" / f"failed_step_{step:010d}", self.model, self.metrics)
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
