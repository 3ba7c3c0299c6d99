"""The shared runner: ``run(config) -> RunResult`` writes one run directory, and
``resume(run_dir)`` continues one that was interrupted.

    runs/<experiment>/<env>__<agent>__s<seed>__<timestamp>/
      run.json       the config's fingerprint, written before config.yaml (resume checks it)
      config.yaml    resolved config (re-run with `causalrl run <this file>`)
      progress.csv   one row per log interval (SB3 logger: csv + tensorboard)
      status.json    running | failed | interrupted | complete, and the last checkpoint
      checkpoints/   step_<step>/: the newest resumable checkpoint (removed when the run completes)
      regret.png     bandits: regret and optimal-action-rate curves
      model.zip      agent state (a pickle: load only files you trust)
      summary.json   final metrics and "status": "complete", written atomically last

Everything is built and validated before the directory is created, so bad input leaves nothing
behind (``ConfigError``, exit status 2), and a directory without a complete summary.json is an
unfinished run. Once the directory exists, any failure, ``SystemExit`` from plugin code included,
marks status.json ``failed`` with the step and raises :class:`~.rundir.RunFailed` (exit status 1).
A resume reads the run directory as untrusted input and checks all of it before its first write
(:mod:`causalrl.experiment.run.untrusted`); it then cuts progress.csv back to the rows its
checkpoint had logged and goes on from there, so no step is logged twice or lost; bandit runs end
byte-identical to an uninterrupted run (docs/runner.md).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
import sys
import threading
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

from causalrl.core.safe_pickle import trusting
from causalrl.experiment.config import ConfigError, RunConfig, fingerprint, load_experiment, one_line, to_yaml
from causalrl.experiment.config.plugins import (
    import_object,
    is_import_path,
    load_plugins,
    resolve_agent,
)
from causalrl.experiment.figures.curves import plot_bandit_runs
from causalrl.experiment.run.callbacks import MetricsCallback, StructureHistory
from causalrl.experiment.run.checkpoints import (
    CheckpointCallback,
    NonFiniteError,
    check_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    restore_run_state,
)
from causalrl.experiment.run.construct import CONSTRUCTION_ERRORS, check_buffer_memory, field_error
from causalrl.experiment.run.device import device_used, resolve_device
from causalrl.experiment.run.evaluation import make_evaluator
from causalrl.experiment.run.history import check_history, keep_history_until
from causalrl.experiment.run.rundir import (
    RunFailed,
    check_run_files,
    fsync_tree,
    is_complete,
    lock_directory,
    make_run_dir,
    process_alive,
    read_status,
    write_json_atomic,
    write_text_atomic,
)
from causalrl.experiment.run.tracking import WandbOutputFormat, log_config_to_tensorboard
from causalrl.experiment.run.untrusted import check_run_fingerprint

__all__ = ["RunResult", "run", "resume", "build_env", "build_agent", "read_run_config", "RUN_FILE"]

#: written before config.yaml: the config's fingerprint at run start (docs/runner.md, fingerprint)
RUN_FILE = "run.json"


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict
    rows: list
    config: RunConfig


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


def build_env(config: RunConfig, evaluation: bool = False):
    """The config's env: ``gym.make(id, **kwargs)``, or ``Class(**kwargs)`` for ``module:Class``;
    wrapped in an InterventionWrapper when the env has an ``intervention`` block
    (``causalrl.experiment.config.intervention_block``), whose judge is calibrated and checked
    on the run's seed unless the env is for ``evaluation`` (the learner alone)."""
    load_plugins()
    kwargs = dict(config.env.kwargs)
    intervention = kwargs.pop("intervention", None)
    with trusting(config.trust_models):  # model files the config names (env.judge, env.intervention)
        try:
            if is_import_path(config.env.id) and not re.search(r"-v\d+$", config.env.id):
                env = import_object(config.env.id, "env.id")(**kwargs)
            else:
                env = gym.make(config.env.id, **kwargs)
        except gym.error.Error as error:
            raise ConfigError(f"env.id: {error}") from None
        except ConfigError:
            raise
        except (ValueError, *CONSTRUCTION_ERRORS) as error:  # the world's own check: one line naming the field
            raise ConfigError(field_error("env", error, kwargs, f"env ({config.env.id})")) from error
        except SystemExit as error:  # plugin code that calls sys.exit must not end the command "successfully"
            raise ConfigError(f"env ({config.env.id}): its constructor called sys.exit({error.code!r})") from None
        if intervention is not None:
            # imported here: the intervention machinery (envs.intervention, experts, calibration)
            # loads only for runs that use it
            from causalrl.experiment.run.intervention_env import wrap_intervention

            try:
                env = wrap_intervention(env, intervention, seed=None if evaluation else config.seed)
            except ValueError as error:
                raise ConfigError(str(error)) from None
    return env


def build_training_env(config: RunConfig):
    """The env the agent trains on: :func:`build_env`, or with ``n_envs > 1`` a DummyVecEnv of
    ``n_envs`` copies (SB3's ``make_vec_env``; env i is seeded ``seed + i``)."""
    if config.n_envs == 1:
        return build_env(config)
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(lambda: build_env(config), n_envs=config.n_envs, seed=config.seed)


def build_agent(config: RunConfig, env):
    agent_cls = resolve_agent(config.agent.name)
    if config.n_envs > 1 and not _is_sb3_algorithm(agent_cls):
        raise ConfigError(f"n_envs: {config.agent.name} acts in one env (bandit agents and other non-SB3 agents); "
                          "set n_envs=1")
    policy = config.agent.policy or getattr(agent_cls, "default_policy", "MlpPolicy")
    check_buffer_memory(config, env)
    try:  # a copy: SB3 writes into the policy_kwargs it is given (use_sde), and config.yaml must not change
        return agent_cls(policy, env, seed=config.seed, **copy.deepcopy(config.agent.kwargs))
    except AssertionError as error:  # SB3 checks spaces and settings with assert
        raise ConfigError(f"agent[{config.agent.name}]: {' '.join(str(error).split())}") from None
    except (ValueError, *CONSTRUCTION_ERRORS) as error:  # the learner's own check: one line naming the field
        raise ConfigError(field_error(f"agent[{config.agent.name}]", error, config.agent.kwargs)) from error
    except SystemExit as error:
        raise ConfigError(f"agent[{config.agent.name}]: its constructor called sys.exit({error.code!r})") from None


def _is_sb3_algorithm(agent_cls) -> bool:
    from stable_baselines3.common.base_class import BaseAlgorithm

    return isinstance(agent_cls, type) and issubclass(agent_cls, BaseAlgorithm)


def _attribute(env, name: str = "causal_structure"):
    """``name`` (by default the causal_structure, None for worlds without known structure) of the
    env's outermost wrapper that has it; of the first env of a VecEnv."""
    try:
        if hasattr(env, "get_attr") and hasattr(env, "num_envs"):
            return env.get_attr(name, indices=[0])[0]
        return env.get_wrapper_attr(name)
    except AttributeError:
        return None


def _run_dir(config: RunConfig) -> Path:
    """Create the run's new folder ``<output_dir>/<experiment>/<env>__<agent>__s<seed>__<time>``
    (``-1``, ``-2``, ... when taken; race-free)."""
    env_name = re.sub(r"[^A-Za-z0-9_.-]", "-", config.env.id.split("/")[-1])
    agent_name = re.sub(r"[^A-Za-z0-9_.-]", "-", config.agent.name)
    stem = f"{env_name}__{agent_name}__s{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    return make_run_dir(Path(config.output_dir) / config.experiment, stem)


def run(config: RunConfig, verbose: bool = False, run_dir: Path | None = None) -> RunResult:
    """Run one agent on one env for ``config.total_steps`` steps and write its run directory.

    ``run_dir`` fixes the directory (sweeps use stable trial names); by default it is
    ``<output_dir>/<experiment>/<env>__<agent>__s<seed>__<timestamp>``. It must not exist yet.
    """
    started, config = time.perf_counter(), resolve_device(config)  # config.yaml: the device used
    set_random_seed(config.seed)
    env = build_training_env(config)
    agent = build_agent(config, env)

    if run_dir is None:
        run_dir = _run_dir(config)
    else:
        run_dir = Path(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise ConfigError(f"{run_dir}: exists already; a new run needs a new directory") from None
    lock = lock_directory(run_dir)  # held until the run ends; a second process cannot touch it

    def start() -> None:  # the fingerprint first: a directory with a config.yaml always has one
        write_json_atomic(run_dir / RUN_FILE, {"format": 1, "fingerprint": fingerprint(config)})
        write_text_atomic(run_dir / "config.yaml", to_yaml(config))

    try:
        return _train(config, run_dir, env, agent, None, None, verbose, started, start)
    finally:
        lock.close()


def read_run_config(run_dir: Path) -> RunConfig:
    """The config of an unfinished run directory (what ``resume`` continues); one-line errors
    for anything else."""
    run_dir = Path(run_dir)
    _check_run_directory(run_dir)
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


def resume(run_dir: Path, verbose: bool = False, progress_bar: bool | None = None,
           trust_models: bool = False) -> RunResult:
    """Continue the unfinished run in ``run_dir`` from its newest checkpoint (from step 0 when it
    has none) up to the ``total_steps`` of its config.yaml, and complete its directory.
    ``trust_models`` (``--trust-models``) lets SB3's own loader unpickle the checkpoint's and the
    config's model files; a ``trust_models`` in the run's config.yaml is ignored (the directory is
    what is being trusted)."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    _check_run_directory(run_dir)
    lock = lock_directory(run_dir)  # before anything is read for writing: a second --resume fails here
    try:
        return _resume_locked(run_dir, verbose, progress_bar, trust_models, started)
    finally:
        lock.close()


def _check_run_directory(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such directory; give a run directory (runs/<experiment>/<run>)")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml); give runs/<experiment>/<run>")


def _resume_locked(run_dir: Path, verbose: bool, progress_bar: bool | None, trust_models: bool,
                   started: float) -> RunResult:
    """Every check first (nothing in ``run_dir`` changes until all pass), then the run goes on."""
    check_run_files(run_dir)  # no link followed out of the directory, no pipe read
    config = read_run_config(run_dir)
    changes = {"trust_models": trust_models, **({} if progress_bar is None else {"progress_bar": progress_bar})}
    config = dataclasses.replace(config, **changes)
    checkpoint = latest_checkpoint(run_dir)
    info = check_checkpoint(checkpoint, config, run_dir) if checkpoint is not None else None
    check_run_fingerprint(run_dir, config, checkpoint, RUN_FILE)
    step = -1 if info is None else info["step"]
    check_history(run_dir, step)
    set_random_seed(config.seed)
    env = build_training_env(config)
    # a run written on another machine (device: cuda) goes on with what this one has, saying so
    # once; config.yaml keeps what it recorded, and summary.json records the device used
    here = resolve_device(config, resumed=True)
    if checkpoint is None:
        agent, state = build_agent(here, env), None
    else:
        device = {"device": here.agent.kwargs["device"]} if "device" in here.agent.kwargs else {}
        agent_cls = resolve_agent(config.agent.name)
        fresh = build_agent(here, env) if _is_sb3_algorithm(agent_cls) else None  # what the checkpoint must match
        with trusting(config.trust_models):
            agent, state = load_checkpoint(checkpoint, agent_cls, env, fresh_metrics=MetricsCallback(config.log_interval),
                                           fresh_agent=fresh, **device)

    def cut_back() -> None:  # the first change to the directory: rows and snapshots after the checkpoint go
        _keep_rows(run_dir / "progress.csv", 0 if state is None else state["rows"])
        keep_history_until(run_dir, step)

    return _train(config, run_dir, env, agent, checkpoint, state, verbose, started, cut_back)


def _train(config: RunConfig, run_dir: Path, env, agent, checkpoint: Path | None, state: dict | None,
           verbose: bool, started: float, first_change) -> RunResult:
    """Train ``agent`` (fresh, or loaded from ``checkpoint`` with its ``state``) up to
    ``config.total_steps`` into ``run_dir`` and write the summary; ``first_change()`` makes the
    run's first change to the directory. From there on every failure marks status.json
    ``failed`` (with the step) and is raised as :class:`RunFailed`."""
    metrics = MetricsCallback(config.log_interval, truth=lambda: _attribute(env), eval_interval=config.eval_interval)
    guard = CheckpointCallback(run_dir, config.checkpoint_every, metrics, checkpoint, fingerprint(config),
                               config.keep_checkpoints)
    previous, background = threading.excepthook, []
    threading.excepthook = lambda args: background.append(args.exc_value)  # TensorBoard's writer thread
    try:
        first_change()
        return _train_changing(config, run_dir, env, agent, state, verbose, started, metrics, guard, background)
    except (NonFiniteError, KeyboardInterrupt, GeneratorExit):
        raise  # the guard saved the state at failure / status.json says interrupted
    except BaseException as error:  # SystemExit from plugin code too: the run failed, whatever it said
        step = int(getattr(agent, "num_timesteps", 0) or 0)
        line = one_line(error, limit=300)
        try:
            guard.write_status("failed", error=line)
        except OSError:  # a full disk: status.json keeps its last state, resume works as after a kill
            pass
        raise RunFailed(f"run {run_dir} failed at step {step} ({line}); status.json says failed; fix the cause, then "
                        f"`causalrl run --resume {run_dir}`") from error
    finally:
        threading.excepthook = previous


def _train_changing(config: RunConfig, run_dir: Path, env, agent, state: dict | None, verbose: bool, started: float,
                    metrics: MetricsCallback, guard: CheckpointCallback, background: list) -> RunResult:
    logger = _logger(run_dir, verbose)
    if config.wandb is not None:
        logger.output_formats.append(WandbOutputFormat(run_dir, config.to_dict(), config.wandb))
    if state is None:
        log_config_to_tensorboard(logger, config, to_yaml(config))
    agent.set_logger(logger)
    eval_env = build_env(config, evaluation=True) if config.eval_interval else None
    metrics.evaluate = make_evaluator(eval_env, config.eval_episodes) if eval_env is not None else None
    callbacks = [metrics, guard]
    if hasattr(type(agent), "learned_structure"):  # graph.png and structure.jsonl (causalrl.experiment.run.history)
        callbacks.append(StructureHistory(run_dir, config.checkpoint_every, truth=lambda: _attribute(env),
                                          title=f"{config.agent.name} on {config.env.id} (seed {config.seed})"))
        if state is not None:  # its last snapshot is the checkpoint's: the next is due one interval on
            callbacks[-1].last_step = state["step"]
    if state is not None:
        restore_run_state(agent, metrics, state)
    guard.write_status("running")
    try:
        # log_interval=None: SB3 algorithms write no rows of their own; the metrics callback
        # dumps every row (with whatever train/* values the algorithm recorded since the last one)
        agent.learn(config.total_steps - agent.num_timesteps, callback=callbacks, log_interval=None,
                    progress_bar=config.progress_bar, reset_num_timesteps=state is None)
    except KeyboardInterrupt as error:
        guard.write_status("interrupted", error=one_line(error, limit=300))
        raise
    finally:
        agent.logger.close()
        if eval_env is not None:
            eval_env.close()
    if background:  # an error in a writer thread (a full disk) fails the run instead of being lost
        raise background[0]

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
        "wall_time_s": round(time.perf_counter() - started, 3), **device_used(agent),
        "final": metrics.rows[-1] if metrics.rows else {},
    }
    if state is not None:
        summary["resumed_from_step"] = state["step"]
    if _attribute(env, "delta_calibration"):  # delta, how it was calibrated, the judge check's rates
        summary["judge"] = _attribute(env, "delta_calibration")
    if not (run_dir / "checkpoints").is_symlink():  # never delete through a link (resume refuses them anyway)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # a complete run has nothing to resume
    fsync_tree(run_dir)  # progress.csv, model.zip, events on disk before summary.json says complete
    guard.last_checkpoint = None
    guard.write_status("complete")
    write_json_atomic(run_dir / "summary.json", summary)  # last: only this marks the run complete
    env.close()
    return RunResult(run_dir, summary, metrics.rows, config)

