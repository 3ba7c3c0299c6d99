"""The shared runner: ``run(config) -> RunResult`` writes one run directory, and
``resume(run_dir)`` continues one that was interrupted.

    runs/<experiment>/<env>__<agent>__s<seed>__<timestamp>/
      config.yaml    resolved config (re-run with `causalrl run <this file>`)
      progress.csv   one row per log interval (SB3 logger: csv + tensorboard)
      status.json    running | failed | interrupted | complete, and the last checkpoint
      checkpoints/   step_<step>/: the newest resumable checkpoint (removed when the run completes)
      regret.png     bandits: regret and optimal-action-rate curves
      model.zip      agent state (a pickle: load only files you trust)
      summary.json   final metrics and "status": "complete", written atomically last

Everything is built and validated before the directory is created, so bad input leaves nothing
behind, and a directory without a complete summary.json is an unfinished run. A resumed run
cuts progress.csv back to the rows its checkpoint had logged and goes on from there, so no step
is logged twice or lost; bandit runs end byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
from stable_baselines3.common.logger import (
    CSVOutputFormat,
    HumanOutputFormat,
    Logger,
    TensorBoardOutputFormat,
    filter_excluded_keys,
)
from stable_baselines3.common.utils import set_random_seed

from causalrl.experiment.callbacks import MetricsCallback
from causalrl.experiment.checkpoints import (
    CheckpointCallback,
    NonFiniteError,
    latest_checkpoint,
    load_checkpoint,
    restore_run_state,
)
from causalrl.experiment.config import ConfigError, RunConfig, load_experiment, to_yaml
from causalrl.experiment.evaluation import make_evaluator
from causalrl.experiment.plots import plot_bandit_runs
from causalrl.experiment.plugins import (
    import_object,
    is_import_path,
    load_plugins,
    resolve_agent,
)
from causalrl.experiment.rundir import (
    is_complete,
    process_alive,
    read_status,
    write_json_atomic,
    write_text_atomic,
)

__all__ = ["RunResult", "run", "resume", "build_env", "build_agent", "read_run_config"]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict
    rows: list


class ProgressCSV(CSVOutputFormat):
    """SB3's CSV writer, made resumable and crash-safe: it appends to an existing progress.csv
    (keeping its columns), adds new columns in the order they are first recorded (SB3 orders
    them by set iteration, which varies between processes), and rewrites the file atomically
    when it does, so a kill never leaves a half-rewritten file. Wall-clock measurements (keys
    ending in ``_seconds``, ``time/*`` but ``time/steps``) go to TensorBoard only, so that the
    same seed writes the same file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.separator, self.quotechar = ",", '"'
        text = self.path.read_text() if self.path.exists() else ""
        self.keys = text.splitlines()[0].split(self.separator) if text else []
        self.file = open(self.path, "a")

    def write(self, key_values, key_excluded, step: int = 0) -> None:
        key_values = {key: value for key, value in filter_excluded_keys(key_values, key_excluded, "csv").items()
                      if not _wall_clock(key)}
        extra = [key for key in key_values if key not in self.keys]
        if extra:
            self.keys.extend(extra)
            self.file.close()
            rows = self.path.read_text().splitlines()[1:] if self.path.exists() else []
            padded = "".join(row + self.separator * len(extra) + "\n" for row in rows)
            write_text_atomic(self.path, self.separator.join(self.keys) + "\n" + padded)
            self.file = open(self.path, "a")
        super().write(key_values, key_excluded, step)


def _wall_clock(key: str) -> bool:
    return key.endswith("_seconds") or (key.startswith("time/") and key != "time/steps")


def _keep_rows(path: Path, rows: int) -> None:
    """Cut progress.csv back to its header and first ``rows`` rows (what a checkpoint logged)."""
    if not path.exists():
        if rows:
            raise ConfigError(f"{path}: missing, but the checkpoint logged {rows} rows; the run directory is damaged, "
                              "start the run again")
        return
    lines = path.read_text().splitlines(keepends=True)
    if rows == 0:
        path.unlink()
    elif len(lines) < rows + 1 or not lines[rows].endswith("\n"):
        raise ConfigError(f"{path}: holds {max(len(lines) - 1, 0)} rows, but the checkpoint logged {rows}; "
                          "the run directory is damaged, start the run again")
    else:
        write_text_atomic(path, "".join(lines[: rows + 1]))


def _logger(run_dir: Path, verbose: bool) -> Logger:
    formats = [ProgressCSV(run_dir / "progress.csv"), TensorBoardOutputFormat(str(run_dir))]
    return Logger(str(run_dir), formats + ([HumanOutputFormat(sys.stdout)] if verbose else []))


def build_env(config: RunConfig):
    """The config's env: ``gym.make(id, **kwargs)``, or ``Class(**kwargs)`` for ``module:Class``."""
    load_plugins()
    if is_import_path(config.env.id) and not re.search(r"-v\d+$", config.env.id):
        return import_object(config.env.id, "env.id")(**config.env.kwargs)
    try:
        return gym.make(config.env.id, **config.env.kwargs)
    except gym.error.Error as error:
        raise ConfigError(f"env.id: {error}") from None


def build_agent(config: RunConfig, env):
    agent_cls = resolve_agent(config.agent.name)
    policy = config.agent.policy or getattr(agent_cls, "default_policy", "MlpPolicy")
    try:
        return agent_cls(policy, env, seed=config.seed, **config.agent.kwargs)
    except AssertionError as error:  # SB3 checks spaces and settings with assert
        raise ConfigError(f"agent[{config.agent.name}]: {' '.join(str(error).split())}") from None


def _ground_truth(env):
    """The env's causal_structure, as composed by its outermost wrapper that has one (None
    for worlds without known structure)."""
    try:
        return env.get_wrapper_attr("causal_structure")
    except AttributeError:
        return None


def _run_dir(config: RunConfig) -> Path:
    env_name = re.sub(r"[^A-Za-z0-9_.-]", "-", config.env.id.split("/")[-1])
    agent_name = re.sub(r"[^A-Za-z0-9_.-]", "-", config.agent.name)
    stem = f"{env_name}__{agent_name}__s{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    parent = Path(config.output_dir) / config.experiment
    candidate, suffix = parent / stem, 1
    while candidate.exists():
        candidate, suffix = parent / f"{stem}-{suffix}", suffix + 1
    return candidate


def run(config: RunConfig, verbose: bool = False, run_dir: Path | None = None) -> RunResult:
    """Run one agent on one env for ``config.total_steps`` steps and write its run directory.

    ``run_dir`` fixes the directory (sweeps use stable trial names); by default it is
    ``<output_dir>/<experiment>/<env>__<agent>__s<seed>__<timestamp>``. It must not exist yet.
    """
    started = time.perf_counter()
    set_random_seed(config.seed)
    env = build_env(config)
    agent = build_agent(config, env)

    run_dir = _run_dir(config) if run_dir is None else Path(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(config))
    return _train(config, run_dir, env, agent, None, None, verbose, started)


def read_run_config(run_dir: Path) -> RunConfig:
    """The config of an unfinished run directory (what ``resume`` continues); one-line errors
    for anything else."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such directory; give a run directory (runs/<experiment>/<run>)")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml); give runs/<experiment>/<run>")
    if is_complete(run_dir):
        raise ConfigError(f"--resume {run_dir}: the run is complete (summary.json); nothing to resume")
    status = read_status(run_dir)
    if status.get("status") == "running" and process_alive(status.get("pid")):
        raise ConfigError(f"--resume {run_dir}: still running (pid {status['pid']} in status.json); wait for it or "
                          "stop it (if that pid is no causalrl run, delete status.json)")
    configs = load_experiment(run_dir / "config.yaml")
    if len(configs) != 1:
        raise ConfigError(f"--resume {run_dir}: config.yaml names {len(configs)} agents; a run has exactly one")
    return configs[0]


def resume(run_dir: Path, verbose: bool = False, progress_bar: bool | None = None) -> RunResult:
    """Continue the unfinished run in ``run_dir`` from its newest checkpoint (from step 0 when it
    has none) up to the ``total_steps`` of its config.yaml, and complete its directory."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if progress_bar is not None:
        config = type(config)(**{**config.__dict__, "progress_bar": progress_bar})
    checkpoint = latest_checkpoint(run_dir)
    set_random_seed(config.seed)
    env = build_env(config)
    if checkpoint is None:
        agent, state = build_agent(config, env), None
    else:
        device = {"device": config.agent.kwargs["device"]} if "device" in config.agent.kwargs else {}
        agent, state = load_checkpoint(checkpoint, resolve_agent(config.agent.name), env, **device)
    return _train(config, run_dir, env, agent, checkpoint, state, verbose, started)


def _train(config: RunConfig, run_dir: Path, env, agent, checkpoint: Path | None, state: dict | None,
           verbose: bool, started: float) -> RunResult:
    """Train ``agent`` (fresh, or loaded from ``checkpoint`` with its ``state``) up to
    ``config.total_steps`` into ``run_dir`` and write the summary."""
    _keep_rows(run_dir / "progress.csv", 0 if state is None else state["rows"])
    agent.set_logger(_logger(run_dir, verbose))
    eval_env = build_env(config) if config.eval_interval else None
    evaluate = make_evaluator(eval_env, config.eval_episodes) if eval_env is not None else None
    metrics = MetricsCallback(config.log_interval, truth=lambda: _ground_truth(env), evaluate=evaluate,
                              eval_interval=config.eval_interval)
    guard = CheckpointCallback(run_dir, config.checkpoint_every, metrics, checkpoint)
    if state is not None:
        restore_run_state(agent, metrics, state)
    guard.write_status("running")
    try:
        # log_interval=None: SB3 algorithms write no rows of their own; the metrics callback
        # dumps every row (with whatever train/* values the algorithm recorded since the last one)
        agent.learn(config.total_steps - agent.num_timesteps, callback=[metrics, guard], log_interval=None,
                    progress_bar=config.progress_bar, reset_num_timesteps=state is None)
    except NonFiniteError:
        raise  # the guard saved the state at failure and wrote status.json
    except BaseException as error:
        kind = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        guard.write_status(kind, error=" ".join(f"{type(error).__name__}: {error}".split()))
        raise
    finally:
        agent.logger.close()
        if eval_env is not None:
            eval_env.close()

    if config.save_model:
        agent.save(run_dir / "model.zip")
    if metrics.is_bandit:
        plot_bandit_runs({config.agent.name: metrics.rows}, run_dir / "regret.png",
                         title=f"{config.agent.name} on {config.env.id} (seed {config.seed})")
    summary = {
        "status": "complete",
        "experiment": config.experiment,
        "env": config.env.id,
        "agent": config.agent.name,
        "seed": config.seed,
        "steps": metrics.steps,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "final": metrics.rows[-1] if metrics.rows else {},
    }
    if state is not None:
        summary["resumed_from_step"] = state["step"]
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # a complete run has nothing to resume
    guard.last_checkpoint = None
    guard.write_status("complete")
    write_json_atomic(run_dir / "summary.json", summary)  # last: only this marks the run complete
    env.close()
    return RunResult(run_dir, summary, metrics.rows)

