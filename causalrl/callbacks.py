"""The callbacks every run uses (bandit and RL agents alike): ``MetricsCallback``, the one
logging callback, and ``CheckpointCallback`` (resumable checkpoints and the NaN/inf guard, at
the end of this file).

It reads SB3's callback locals (``infos``, ``rewards``, ``dones``) after each env step and every
``log_interval`` steps records one row with the shared metric names:

    time/steps                    env steps so far
    reward/mean                   mean step reward over the last interval
    reward/cumulative             sum of rewards so far
    reward/episode_return_mean    mean return of the episodes finished in the interval (RL)
    regret/cumulative             pseudo-regret  sum(max_a mu_a - mu_{a_t})  (bandits)
    regret/cumulative_realised    realised regret sum(max_a mu_a - X_N,t)  (bandits)
    regret/optimal_action_rate    share of optimal plays in the last `window` rounds (bandits)
    structure/shd|fnr|fpr|f1      agent.learned_structure vs the env's causal_structure
    intervention/rate             share of the interval's steps the expert controlled
                                  (envs whose info has ``intervened``, rlif.md)
    eval/return_mean              mean task-reward return (``info["task_reward"]``) of the
                                  training episodes finished in the interval (expert steps
                                  included), where the env reports a task reward
    eval/normalised_score         that return on the world's ``normalised_score`` scale, when
                                  the world has one
    eval/deterministic_*          with an ``evaluate`` function (the runner's ``eval_interval``):
                                  return and normalised score of the deterministic policy alone,
                                  every ``eval_interval`` steps and on the run's last row
                                  (``causalrl.evaluation``)
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import random
import shutil
from collections import deque
from pathlib import Path
from typing import Callable

import cloudpickle
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from causalrl.metrics import structure_metrics

__all__ = ["MetricsCallback", "OPTIMAL_TOLERANCE", "CheckpointCallback", "NonFiniteError", "save_checkpoint",
           "load_checkpoint", "restore_run_state", "latest_checkpoint", "first_nonfinite", "env_layers",
           "write_json_atomic"]

#: a play counts as optimal when its expected reward is within this of the best (csl-ucb.md (a))
OPTIMAL_TOLERANCE = 0.01


class MetricsCallback(BaseCallback):
    """Records the shared metrics every ``log_interval`` steps and keeps the curves in memory.

    Args:
        log_interval: steps between logged rows.
        truth: returns the env's current ground truth (``env.unwrapped.causal_structure``) or
            None; used to score ``agent.learned_structure``.
        window: rounds in the optimal-action-rate window (100, as in the CSL-UCB paper).
        evaluate: ``evaluate(model) -> row`` merged into the rows at every ``eval_interval``
            steps and the run's last row (``causalrl.evaluation.make_evaluator``); None: none.
        eval_interval: steps between evaluations, a multiple of ``log_interval``.
    """

    def __init__(self, log_interval: int = 100, truth: Callable[[], object] | None = None, window: int = 100,
                 evaluate: Callable[[object], dict] | None = None, eval_interval: int = 0):
        super().__init__(verbose=0)
        self.log_interval = log_interval
        self.truth = truth
        self.evaluate = evaluate
        self.eval_interval = eval_interval
        self.window = window
        self.steps = 0
        self.reward_sum = 0.0
        self.interval_rewards: list[float] = []
        self.pseudo_regret = 0.0
        self.realised_regret = 0.0
        self.optimal_plays: deque = deque(maxlen=window)
        self.episode_return = 0.0
        self.finished_returns: list[float] = []
        self.is_bandit = False
        self.rows: list[dict] = []
        # intervention worlds (rlif.md): expert-control share and task-reward returns
        self.interval_interventions: list[bool] = []
        self.task_return = 0.0
        self.finished_task_returns: list[float] = []

    def _on_step(self) -> bool:
        info = self.locals["infos"][0]
        reward = float(np.asarray(self.locals["rewards"]).reshape(-1)[0])
        done = bool(np.asarray(self.locals["dones"]).reshape(-1)[0])
        self.steps += 1
        self.reward_sum += reward
        self.interval_rewards.append(reward)
        if "expected_reward" in info:
            self.is_bandit = True
            best = info["optimal_expected_reward"]
            self.pseudo_regret += best - info["expected_reward"]
            self.realised_regret += best - reward
            self.optimal_plays.append(best - info["expected_reward"] < OPTIMAL_TOLERANCE)
        if "intervened" in info:
            self.interval_interventions.append(bool(info["intervened"]))
        if "task_reward" in info:
            self.task_return += float(info["task_reward"])
            if done:
                self.finished_task_returns.append(self.task_return)
                self.task_return = 0.0
        self.episode_return += reward
        if done:
            self.finished_returns.append(self.episode_return)
            self.episode_return = 0.0
        # the run's last row waits for _on_training_end, after the algorithm's last update
        last = self.num_timesteps >= getattr(self.model, "_total_timesteps", float("inf"))
        if self.steps % self.log_interval == 0 and not last:
            self._record(evaluate=self.evaluate is not None and self.steps % self.eval_interval == 0)
        return True

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["time/steps"] != self.steps:
            self._record(evaluate=self.evaluate is not None)

    def _structure_row(self) -> dict:
        learned = getattr(self.model, "learned_structure", None)
        truth = self.truth() if self.truth is not None else None
        if not learned or truth is None:
            return {}
        pairs = [(np.asarray(mask), np.asarray(getattr(truth, name))) for name, mask in learned.items()
                 if mask is not None and hasattr(truth, name)]
        if not pairs:
            return {}
        shapes = {mask.shape for mask, _ in pairs}
        if len(shapes) == 1:  # same-shaped graphs (e.g. both mechanisms) are scored as one edge set
            scores = structure_metrics(np.stack([m for m, _ in pairs]), np.stack([t for _, t in pairs]))
        else:
            scores = structure_metrics(np.concatenate([m.ravel() for m, _ in pairs])[None],
                                       np.concatenate([t.ravel() for _, t in pairs])[None])
        return {f"structure/{key}": scores[key] for key in ("shd", "fnr", "fpr", "f1")}

    def _intervention_row(self) -> dict:
        row = {}
        if self.interval_interventions:
            row["intervention/rate"] = float(np.mean(self.interval_interventions))
        if self.finished_task_returns:
            row["eval/return_mean"] = float(np.mean(self.finished_task_returns))
            score = _world_attribute(self.training_env, "normalised_score")
            if callable(score):
                row["eval/normalised_score"] = float(score(row["eval/return_mean"]))
        self.interval_interventions, self.finished_task_returns = [], []
        return row

    def _record(self, evaluate: bool = False) -> None:
        row = {
            "time/steps": self.steps,
            "reward/mean": float(np.mean(self.interval_rewards)) if self.interval_rewards else 0.0,
            "reward/cumulative": self.reward_sum,
        }
        if self.is_bandit:
            row["regret/cumulative"] = self.pseudo_regret
            row["regret/cumulative_realised"] = self.realised_regret
            row["regret/optimal_action_rate"] = float(np.mean(self.optimal_plays))
        elif self.finished_returns:
            row["reward/episode_return_mean"] = float(np.mean(self.finished_returns))
        row.update(self._structure_row())
        row.update(self._intervention_row())
        if evaluate:
            row.update(self.evaluate(self.model))
        self.interval_rewards, self.finished_returns = [], []
        self.rows.append(row)
        for key, value in row.items():
            self.logger.record(key, value)
        self.logger.dump(self.steps)


def _world_attribute(env, name: str):
    """``name`` from a VecEnv's first env or a gymnasium env (None when absent)."""
    try:
        if hasattr(env, "get_attr"):
            return env.get_attr(name, indices=[0])[0]
        return env.get_wrapper_attr(name)
    except (AttributeError, TypeError):
        return None


# --- checkpoints, resume and the non-finite guard ----------------------------------------------
#: BaseCallback's machinery and MetricsCallback's ground-truth reader: not part of a callback's state
_CALLBACK_MACHINERY = ("model", "n_calls", "num_timesteps", "verbose", "locals", "globals", "parent", "truth",
                      "evaluate")
#: attributes through which an env layer holds the layers it wraps (VecEnvWrapper, VecEnv, gymnasium Wrapper)
_INNER_LAYERS = ("venv", "envs", "env")
_LOGGER_STATE = ("name_to_value", "name_to_count", "name_to_excluded")
CHECKPOINT_FORMAT = 1


class NonFiniteError(ArithmeticError):
    """A loss, weight, observation or reward became NaN or infinite; the run stopped."""


def write_json_atomic(path: Path, data: dict) -> None:
    temporary = Path(path).with_name(Path(path).name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


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
