"""The callbacks every run uses (bandit and RL agents alike): ``MetricsCallback``, the one
logging callback, and ``causalrl.experiment.run.checkpoints.CheckpointCallback`` (resumable
checkpoints and the NaN/inf guard).

It reads SB3's callback locals (``infos``, ``rewards``, ``dones``) after each env step and every
``log_interval`` steps records one row. The names and their meanings are the one table of
``causalrl.experiment.run.metric_names`` (SB3's names where the quantity is SB3's:
``rollout/ep_rew_mean``, ``time/fps``; every windowed metric named as a window:
``reward/window_mean``); the deterministic evaluation (``eval/mean_reward``) comes from
``causalrl.experiment.run.evaluation`` through the runner's ``eval_interval``.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from causalrl.core.checks import check_observation
from causalrl.core.metrics import OPTIMAL_TOLERANCE, structure_metrics
from causalrl.experiment.run.history import append_snapshot, read_history, snapshot, write_discovery_log, write_graph

__all__ = ["MetricsCallback", "StructureHistory"]


class MetricsCallback(BaseCallback):
    """Records the shared metrics every ``log_interval`` steps and keeps the curves in memory.

    :param log_interval: steps between logged rows.
    :param truth: returns the env's current ground truth (``env.unwrapped.causal_structure``) or
        None; used to score ``agent.learned_structure``.
    :param window: rounds in the optimal-action-rate window (100, as in the CSL-UCB paper).
    :param evaluate: ``evaluate(model) -> row`` merged into the rows at every ``eval_interval``
        steps and the run's last row (``causalrl.experiment.run.evaluation.make_evaluator``); None: none.
    :param eval_interval: steps between evaluations, a multiple of ``log_interval``.
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
        self.episode_returns: dict[int, float] = {}  # env index -> return of its running episode
        # SB3's rollout statistics: the last 100 finished episodes (the learner's stats_window_size)
        self.episode_lengths: dict[int, int] = {}
        self.recent_returns: deque = deque(maxlen=100)
        self.recent_lengths: deque = deque(maxlen=100)
        self.episodes = 0
        self._clock = (0.0, 0)  # (perf_counter, steps) when this process started training: time/fps
        self.is_bandit = False
        self.rows: list[dict] = []
        # intervention worlds (docs/rlif.md): expert-control share and task-reward returns
        self.interval_interventions: list[bool] = []
        self.task_returns: dict[int, float] = {}
        self.finished_task_returns: list[float] = []

    def _on_training_start(self) -> None:
        self._clock = (time.perf_counter(), self.steps)
        size = getattr(self.model, "_stats_window_size", 100)
        if size != self.recent_returns.maxlen:
            self.recent_returns = deque(self.recent_returns, maxlen=size)
            self.recent_lengths = deque(self.recent_lengths, maxlen=size)
        # every observation is checked against the world's own space, as actions are (core.checks)
        space = getattr(self.training_env, "observation_space", None) or getattr(self.model, "observation_space", None)
        shape = getattr(space, "shape", None)
        count = getattr(self.training_env, "num_envs", 1) if self.training_env is not None else 1
        self._observation_shape = (count, *shape) if isinstance(shape, tuple) and not hasattr(space, "spaces") else None
        if getattr(self.model, "checks_observations", False):  # the agent's own loop checks them (bandit agents)
            self._observation_shape = None

    def _on_step(self) -> bool:
        # a VecEnv of n envs (the runner's n_envs) makes n transitions per call: each is counted
        if getattr(self, "_observation_shape", None) is not None and self.locals.get("new_obs") is not None:
            check_observation(self.locals["new_obs"], self._observation_shape)
        infos = self.locals["infos"]
        rewards = np.asarray(self.locals["rewards"]).reshape(-1)
        dones = np.asarray(self.locals["dones"]).reshape(-1)
        before = self.steps
        for index, info in enumerate(infos):
            self._transition(info, float(rewards[index]), bool(dones[index]), index)
        # the run's last row waits for _on_training_end, after the algorithm's last update
        last = self.num_timesteps >= getattr(self.model, "_total_timesteps", float("inf"))
        if self.steps // self.log_interval > before // self.log_interval and not last:
            due = self.evaluate is not None and self.steps // self.eval_interval > before // self.eval_interval
            self._record(evaluate=due)
        return True

    def _transition(self, info: dict, reward: float, done: bool, index: int) -> None:
        """Count one env transition (of env ``index`` of a VecEnv)."""
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
            self.task_returns[index] = self.task_returns.get(index, 0.0) + float(info["task_reward"])
            if done:
                self.finished_task_returns.append(self.task_returns.pop(index))
        self.episode_returns[index] = self.episode_returns.get(index, 0.0) + reward
        self.episode_lengths[index] = self.episode_lengths.get(index, 0) + 1
        if done:
            self.recent_returns.append(self.episode_returns.pop(index))
            self.recent_lengths.append(self.episode_lengths.pop(index))
            self.episodes += 1

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["time/steps"] != self.steps:
            self._record(evaluate=self.evaluate is not None)

    def _structure_row(self) -> dict:
        learned = getattr(self.model, "learned_structure", None)
        truth = self.truth() if self.truth is not None else None
        if not learned or truth is None:
            return {}
        learned = {name: mask for name, mask in learned.items() if mask is not None and hasattr(truth, name)}
        if not learned:
            return {}
        # matched by name; same-shaped graphs (e.g. both mechanisms) are scored as one edge set
        scores = structure_metrics(learned, truth)
        return {f"structure/{key}": scores[key] for key in ("shd", "fnr", "fpr", "f1")}

    def _intervention_row(self) -> dict:
        row = {}
        if self.interval_interventions:
            row["intervention/window_rate"] = float(np.mean(self.interval_interventions))
        if self.finished_task_returns:  # training episodes, expert steps included: not an evaluation
            row["task/window_return_mean"] = float(np.mean(self.finished_task_returns))
            score = _world_attribute(self.training_env, "normalised_score")
            if callable(score):
                row["task/window_normalised_score"] = float(score(row["task/window_return_mean"]))
        self.interval_interventions, self.finished_task_returns = [], []
        return row

    def _record(self, evaluate: bool = False) -> None:
        row = {
            "time/steps": self.steps,
            "reward/window_mean": float(np.mean(self.interval_rewards)) if self.interval_rewards else 0.0,
            "reward/cumulative": self.reward_sum,
        }
        if self.is_bandit:
            row["regret/cumulative"] = self.pseudo_regret
            row["regret/cumulative_realised"] = self.realised_regret
            row["regret/window_optimal_action_rate"] = float(np.mean(self.optimal_plays))
        elif self.recent_returns:  # SB3's names and meaning (OffPolicyAlgorithm.dump_logs)
            row["rollout/ep_rew_mean"] = float(np.mean(self.recent_returns))
            row["rollout/ep_len_mean"] = float(np.mean(self.recent_lengths))
        row.update(self._structure_row())
        row.update(self._intervention_row())
        if evaluate:
            row.update(self.evaluate(self.model))
        self.interval_rewards = []
        self.rows.append(row)
        for key, value in row.items():
            self.logger.record(key, value)
        self._record_time()
        self.logger.dump(self.steps)

    def _record_time(self) -> None:
        """SB3's ``time/*`` values, excluded where SB3 excludes them (wall clock stays out of the
        rows and progress.csv: the same seed writes the same file)."""
        started, steps = self._clock
        elapsed = max(time.perf_counter() - started, 1e-9) if started else 0.0
        if elapsed:
            self.logger.record("time/fps", int((self.steps - steps) / elapsed))
            self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.steps, exclude="tensorboard")
        if not self.is_bandit:
            self.logger.record("time/episodes", self.episodes, exclude="tensorboard")


def _world_attribute(env, name: str):
    """``name`` from a VecEnv's first env or a gymnasium env (None when absent)."""
    try:
        if hasattr(env, "get_attr"):
            return env.get_attr(name, indices=[0])[0]
        return env.get_wrapper_attr(name)
    except (AttributeError, TypeError):
        return None


class StructureHistory(BaseCallback):
    """Appends a snapshot of ``model.learned_structure`` and of the env's ground truth to
    ``RUN_DIR/structure.jsonl`` every ``interval`` steps and at the end of training, and draws the
    last one as ``RUN_DIR/graph.png``. An agent that keeps a ``discovery_log`` (CIP's record of
    each discovery round) has it written to ``RUN_DIR/discovery.jsonl`` at the same moments.

    :param run_dir: the run directory.
    :param interval: steps between snapshots (the runner uses its checkpoint interval).
    :param truth: returns the env's current ``causal_structure`` (None for worlds without one).
    :param title: the picture's title.
    """

    def __init__(self, run_dir: str | Path, interval: int, truth=None, title: str = ""):
        super().__init__(verbose=0)
        self.run_dir, self.interval, self.truth, self.title = Path(run_dir), int(interval), truth, title
        self.last_step = -1

    def _snapshot(self) -> dict:
        truth = self.truth() if self.truth is not None else None
        return snapshot(self.num_timesteps, getattr(self.model, "learned_structure", None), truth)

    def _append(self) -> dict:
        line = self._snapshot()
        append_snapshot(self.run_dir, line)
        if isinstance(getattr(self.model, "discovery_log", None), list):
            write_discovery_log(self.run_dir, self.model.discovery_log)
        self.last_step = self.num_timesteps
        return line

    def _on_step(self) -> bool:
        if self.num_timesteps // self.interval > max(self.last_step, 0) // self.interval:
            self._append()
        return True

    def _on_training_end(self) -> None:
        line = read_history(self.run_dir)[-1] if self.num_timesteps == self.last_step else None
        if line is None or self._snapshot() != line:
            # the last update ran after that step's snapshot: what it learned (a discovery round
            # at the last step) is one more line at the same step, and the graph draws it
            line = self._append()
        elif isinstance(getattr(self.model, "discovery_log", None), list):  # a round that changed no parent
            write_discovery_log(self.run_dir, self.model.discovery_log)
        if line.get("learned") or line.get("truth"):
            write_graph(line, self.run_dir / "graph.png", f"{self.title}, step {line['step']}")
