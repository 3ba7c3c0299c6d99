"""Seeds in one process: K runs whose configs differ only in ``seed`` trained together by
:class:`causalrl.agents.batched_sac.BatchedSAC` (K SAC learners with stacked networks, K envs),
each seed still writing its own ordinary run directory (docs/batched.md, "Seeds in one process").

A seed's run directory holds what a single run's does: ``run.json``, ``config.yaml`` (the seed's
own config), ``progress.csv`` and TensorBoard events (the runner's metrics callback, fed the
seed's own transitions, with the learner's ``train/*`` values), ``status.json``,
``checkpoints/step_<step>/`` (the seed's share of the batch: ``learner.pt``, its slices of the
stacked networks, optimiser moments, temperature, replay buffer and noise stream, read with
``torch.load(weights_only=True)``; ``state.json``, counters and its numpy stream; ``state.pkl``,
its env's state, metrics and pending logger values, read through the allowlist), ``model.zip``
(the seed as a Stable-Baselines3 ``SAC``) and ``summary.json``, written last. ``batch.json`` names
the batch's run directories (siblings in one folder): ``causalrl run --resume`` on any of them
continues the whole batch from the newest checkpoint that every seed holds, so each seed's
``progress.csv`` ends byte-identical to an uninterrupted batched run.

Only ``sac`` with one env, no evaluation, no intervention block and no W&B is batched
(:func:`check_batchable` says what else stands in the way, in one line).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

from causalrl.agents.batched_sac import BatchedSAC
from causalrl.experiment.config import ConfigError, RunConfig, fingerprint, to_yaml
from causalrl.experiment.run.callbacks import MetricsCallback
from causalrl.experiment.run.checkpoints import _LayerPickler, _load_state, env_layers
from causalrl.experiment.run.device import resolve_device
from causalrl.experiment.run.rundir import (
    RunFailed,
    fsync_directory,
    fsync_tree,
    is_complete,
    lock_directory,
    read_json_file,
    write_json_atomic,
    write_text_atomic,
)
from causalrl.experiment.run.runner import RUN_FILE, ProgressCSV, RunResult, build_env, read_run_config
from causalrl.experiment.run.tracking import log_config_to_tensorboard
from causalrl.experiment.run.untrusted import check_run_fingerprint

__all__ = ["BATCH_FILE", "BATCHED_AGENTS", "check_batchable", "is_batch_run", "resume_batch", "run_batch"]

BATCH_FILE = "batch.json"
#: agents whose seeds can share one process, and the keyword arguments the batched learner takes
BATCHED_AGENTS = {"sac": ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
                          "gradient_steps", "ent_coef", "target_update_interval", "target_entropy", "policy_kwargs",
                          "stats_window_size", "device", "verbose")}
_STEP = re.compile(r"step_(\d{10})")
_METRICS_MACHINERY = ("model", "n_calls", "num_timesteps", "verbose", "locals", "globals", "parent", "truth",
                      "evaluate", "_observation_shape", "training_env", "logger")
_LOGGER_STATE = ("name_to_value", "name_to_count", "name_to_excluded")


def check_batchable(configs: list[RunConfig], label: str = "vectorize_seeds") -> None:
    """Refuse, in one line naming the field, configs that cannot train as one batch: another agent
    than ``sac``, keyword arguments the batched learner lacks, ``n_envs``, ``eval_interval``, an
    intervention block, W&B, or configs that differ in more than ``seed``."""
    first = configs[0]
    if first.agent.name not in BATCHED_AGENTS:
        raise ConfigError(f"{label}: agent {first.agent.name} cannot train seeds in one process (only "
                          f"{', '.join(BATCHED_AGENTS)}); remove vectorize_seeds")
    extra = sorted(set(first.agent.kwargs) - set(BATCHED_AGENTS[first.agent.name]))
    policy_extra = sorted(set(first.agent.kwargs.get("policy_kwargs") or {}) - {"net_arch", "n_critics"})
    for what, bad in (("agent." + (extra[0] if extra else ""), extra),
                      ("agent.policy_kwargs." + (policy_extra[0] if policy_extra else ""), policy_extra),
                      ("agent.policy", first.agent.policy not in (None, "MlpPolicy")),
                      ("agent.train_freq", not isinstance(first.agent.kwargs.get("train_freq", 1), int)),
                      ("n_envs", first.n_envs != 1), ("eval_interval", first.eval_interval),
                      ("env.intervention", "intervention" in first.env.kwargs), ("wandb", first.wandb is not None)):
        if bad:
            raise ConfigError(f"{label}: {what} is not supported by the batched learner; remove it or vectorize_seeds")
    same = [{**config.to_dict(), "seed": None} for config in configs]
    if any(entry != same[0] for entry in same) or len({config.seed for config in configs}) != len(configs):
        raise ConfigError(f"{label}: the batched runs must differ only in seed (and each seed once)")


def is_batch_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is one seed of a batched run (it holds ``batch.json``)."""
    return (Path(run_dir) / BATCH_FILE).is_file()


# --- one seed's view of the batch: what the runner's metrics callback reads from its model ----------------
class _SeedView:
    def __init__(self, batch: BatchedSAC, index: int, logger: Logger):
        self.batch, self.index, self.logger = batch, index, logger
        self._stats_window_size = batch.stats_window_size
        self.observation_space = batch.observation_space

    @property
    def num_timesteps(self) -> int:
        return self.batch.num_timesteps

    @property
    def _total_timesteps(self) -> int:
        return self.batch._total_timesteps

    def get_env(self):
        return self.batch.envs[self.index]


@dataclasses.dataclass
class _Seed:
    config: RunConfig
    run_dir: Path
    logger: Logger
    metrics: MetricsCallback
    checkpoint_step: int | None = None

    def write_status(self, status: str, step: int, **fields) -> None:
        checkpoint = None if self.checkpoint_step is None else f"checkpoints/step_{self.checkpoint_step:010d}"
        write_json_atomic(self.run_dir / "status.json", {
            "status": status, "pid": os.getpid(), "step": int(step), "checkpoint": checkpoint,
            "checkpoint_step": self.checkpoint_step, **fields})


class _BatchCallback(BaseCallback):
    """Feeds each seed's metrics callback its own transition and the learner's ``train/*`` values,
    and writes a checkpoint of every seed every ``interval`` steps (at the start of a rollout, where
    the update that used the last step is done)."""

    def __init__(self, seeds: list[_Seed], interval: int, total: int):
        super().__init__(verbose=0)
        self.seeds, self.interval, self.total = seeds, int(interval), int(total)
        self.last_step = seeds[0].checkpoint_step or 0

    def _on_training_start(self) -> None:
        for seed in self.seeds:
            seed.metrics.on_training_start(dict(self.locals), self.globals)  # its own locals: fed per step

    def _on_step(self) -> bool:
        model, stats = self.model, self.model._train_stats
        rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
        new_obs, shape = self.locals["new_obs"], model.observation_space.shape
        for k, seed in enumerate(self.seeds):
            if stats:  # what SB3's SAC.train records, seed k's share
                seed.logger.record("train/n_updates", model._n_updates, exclude="tensorboard")
                seed.logger.record("train/learning_rate", model.actor_optimizer.param_groups[0]["lr"])
                for name, values in stats.items():
                    seed.logger.record(f"train/{name}", float(values[k]))
            seed.metrics.update_locals({"infos": [infos[k]], "rewards": rewards[k : k + 1], "dones": dones[k : k + 1],
                                        "new_obs": new_obs[k].reshape(1, *shape)})
            seed.metrics.on_step()
        return True

    def _on_rollout_start(self) -> None:
        step = self.model.num_timesteps
        if step // self.interval > self.last_step // self.interval and step < self.total:
            _write_checkpoints(self.model, self.seeds, step)
            self.last_step = step

    def _on_training_end(self) -> None:
        for seed in self.seeds:
            seed.metrics.on_training_end()


# --- checkpoints: each seed's share of the batch ---------------------------------------------------------------
def _share(value, k: int, n: int):
    """Seed ``k``'s share of a batch value: tensors with a leading stacked dimension are cut into
    ``n`` equal blocks (one per seed); scalars, numbers and settings are shared."""
    if isinstance(value, th.Tensor):
        if value.dim() == 0:
            return value.detach().clone().cpu()
        block = value.shape[0] // n
        return value[k * block : (k + 1) * block].detach().clone().cpu()
    if isinstance(value, dict):
        return {key: _share(item, k, n) for key, item in value.items()}
    return value


def _joined(values: list):
    """The inverse of :func:`_share`: the seeds' blocks concatenated (shared values from the first)."""
    first = values[0]
    if isinstance(first, th.Tensor):
        return first if first.dim() == 0 else th.cat(values)
    if isinstance(first, dict):
        return {key: _joined([value[key] for value in values]) for key in first}
    return first


def _learner_state(model: BatchedSAC) -> dict:
    optimizers = ("actor_optimizer", "critic_optimizer", "ent_coef_optimizer")
    return {
        "modules": {name: getattr(model, name).state_dict() for name in ("actor", "critic", "critic_target")},
        "optimizers": {name: getattr(model, name).state_dict() for name in optimizers if getattr(model, name) is not None},
        "log_ent_coef": None if model.log_ent_coef is None else model.log_ent_coef.detach(),
        "replay": {name: tensor[:, : model.replay_buffer.size()] for name, tensor in model.replay_buffer.tensors.items()},
    }


def _write_checkpoints(model: BatchedSAC, seeds: list[_Seed], step: int) -> None:
    """Every seed's checkpoint at ``step`` (staged, flushed, renamed); older ones are removed only
    once every seed holds the new one, so a kill leaves a step that all seeds share."""
    state, n = _learner_state(model), model.n_seeds
    for k, seed in enumerate(seeds):
        folder = seed.run_dir / "checkpoints" / f"step_{step:010d}"
        staging = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        th.save({**_share(state, k, n), "noise": model.noise_generators[k].get_state()}, staging / "learner.pt")
        layers = env_layers(model.envs[k])
        info = {
            "format": 1, "step": step, "rows": len(seed.metrics.rows), "fingerprint": fingerprint(seed.config),
            "seed": seed.config.seed, "numpy_rng": model.rngs[k].bit_generator.state,
            "replay": {"pos": model.replay_buffer.pos, "full": model.replay_buffer.full},
            "n_updates": model._n_updates, "episodes": int(model.episodes[k]),
            "episode_return": float(model._episode_returns[k]), "episode_length": int(model._episode_lengths[k]),
            "ep_info": list(model.ep_info_buffers[k]), "last_obs": model._last_obs[k].tolist(),
            "train_stats": {name: float(values[k]) for name, values in model._train_stats.items()},
            "env_layers": [type(layer).__name__ for layer in layers],
        }
        with open(staging / "state.pkl", "wb") as file:
            _LayerPickler(file, layers).dump({
                "metrics": {key: value for key, value in vars(seed.metrics).items() if key not in _METRICS_MACHINERY},
                "logger": {name: dict(getattr(seed.logger, name)) for name in _LOGGER_STATE},
                "env": [{key: value for key, value in vars(layer).items() if key not in ("venv", "envs", "env")}
                        for layer in layers]})
        (staging / "state.json").write_text(json.dumps(info, sort_keys=True) + "\n")
        fsync_tree(staging)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        fsync_directory(folder.parent)
    for seed in seeds:
        for old in (seed.run_dir / "checkpoints").glob("step_*"):
            if old.name != f"step_{step:010d}":
                shutil.rmtree(old, ignore_errors=True)
        seed.checkpoint_step = step
        seed.write_status("running", step)


def _load_checkpoints(model: BatchedSAC, seeds: list[_Seed], step: int) -> list[dict]:
    """Put every seed's checkpoint at ``step`` into the fresh batch ``model``; returns each seed's
    state.json and state.pkl contents (metrics and logger values, restored once the loggers exist)."""
    shares, infos = [], []
    for k, seed in enumerate(seeds):
        folder = seed.run_dir / "checkpoints" / f"step_{step:010d}"
        try:
            info = read_json_file(folder / "state.json")
            if info.get("format") != 1 or info.get("step") != step or info.get("seed") != seed.config.seed:
                raise ValueError("state.json is not this seed's checkpoint at this step")
            if info.get("fingerprint") != fingerprint(seed.config):
                raise ValueError("config.yaml changed since the checkpoint was written")
            shares.append(th.load(folder / "learner.pt", map_location="cpu", weights_only=True))
            layers = env_layers(model.envs[k])
            if info["env_layers"] != [type(layer).__name__ for layer in layers]:
                raise ValueError(f"written for env layers {info['env_layers']}")
            state = _load_state(folder / "state.pkl", layers)
            if not isinstance(state, dict) or set(state) != {"metrics", "logger", "env"}:
                raise ValueError("state.pkl is not a batched checkpoint's")
            for layer, saved in zip(layers, state["env"]):
                vars(layer).update(saved)
            model.rngs[k].bit_generator.state = info["numpy_rng"]
            model.noise_generators[k].set_state(shares[-1].pop("noise"))
        except Exception as error:  # any damage: one line naming the checkpoint
            text = " ".join(str(error).split())[:240]
            raise ConfigError(f"checkpoint {folder}: unreadable ({type(error).__name__}: {text}); delete the batch's "
                              f"checkpoints/step_{step:010d} folders to restart from an earlier step") from None
        infos.append({**info, **state})
    try:
        _apply(model, _joined(shares), infos, step)
    except Exception as error:  # shares that do not fit the batch the configs build
        text = " ".join(str(error).split())[:240]
        raise ConfigError(f"checkpoints step_{step:010d} of {seeds[0].run_dir.parent}: do not fit the runs' configs "
                          f"({type(error).__name__}: {text}); delete those folders to restart from step 0") from None
    return infos


def _apply(model: BatchedSAC, joined: dict, infos: list[dict], step: int) -> None:
    for name, module_state in joined["modules"].items():
        getattr(model, name).load_state_dict(module_state)
    for name, optimizer_state in joined["optimizers"].items():
        getattr(model, name).load_state_dict(optimizer_state)
    with th.no_grad():
        if joined["log_ent_coef"] is not None:
            model.log_ent_coef.copy_(joined["log_ent_coef"])
        for name, tensor in joined["replay"].items():
            model.replay_buffer.tensors[name][:, : tensor.shape[1]] = tensor.to(model.device)
    first = infos[0]
    model.replay_buffer.pos, model.replay_buffer.full = int(first["replay"]["pos"]), bool(first["replay"]["full"])
    model.num_timesteps, model._n_updates, model._envs_seeded = step, int(first["n_updates"]), True
    model.episodes = np.asarray([info["episodes"] for info in infos], dtype=int)
    model._episode_returns = np.asarray([info["episode_return"] for info in infos], dtype=float)
    model._episode_lengths = np.asarray([info["episode_length"] for info in infos], dtype=int)
    model.ep_info_buffers = [deque(info["ep_info"], maxlen=model.stats_window_size) for info in infos]
    model._last_obs = np.asarray([info["last_obs"] for info in infos], dtype=np.float32)
    model._train_stats = {name: np.asarray([info["train_stats"][name] for info in infos], dtype=np.float32)
                          for name in first["train_stats"]}
    if model._last_obs.shape != (model.n_seeds, model.obs_dim):
        raise ValueError(f"last observations of shape {model._last_obs.shape}")


# --- running and resuming --------------------------------------------------------------------------------------
def _build(configs: list[RunConfig]) -> BatchedSAC:
    kwargs = dict(configs[0].agent.kwargs)
    try:
        return BatchedSAC([build_env(config) for config in configs], [config.seed for config in configs], **kwargs)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"agent[{configs[0].agent.name}] (vectorize_seeds): {' '.join(str(error).split())}") from None


def _logger(run_dir: Path) -> Logger:
    return Logger(str(run_dir), [ProgressCSV(run_dir / "progress.csv"), TensorBoardOutputFormat(str(run_dir))])


def run_batch(configs: list[RunConfig], run_dirs: list[Path]) -> list[RunResult]:
    """Train the seeds of ``configs`` (equal but for ``seed``) as one batch, seed k into the new
    directory ``run_dirs[k]`` (siblings in one folder); returns each seed's result."""
    started = time.perf_counter()
    configs = [resolve_device(config) for config in configs]
    check_batchable(configs)
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    if len({run_dir.resolve().parent for run_dir in run_dirs}) != 1:
        raise ConfigError("vectorize_seeds: the batch's run directories must share one folder")
    model = _build(configs)
    with ExitStack() as locks:
        for run_dir in run_dirs:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                run_dir.mkdir()
            except FileExistsError:
                raise ConfigError(f"{run_dir}: exists already; a new run needs a new directory") from None
            locks.enter_context(lock_directory(run_dir))
        for config, run_dir in zip(configs, run_dirs):
            write_json_atomic(run_dir / RUN_FILE, {"format": 1, "fingerprint": fingerprint(config)})
            write_text_atomic(run_dir / "config.yaml", to_yaml(config))
            write_json_atomic(run_dir / BATCH_FILE, {"format": 1, "seeds": [c.seed for c in configs],
                                                     "run_dirs": [d.name for d in run_dirs]})
        return _train(model, configs, run_dirs, None, started)


def resume_batch(run_dir: Path) -> list[RunResult]:
    """Continue the batch that ``run_dir`` (one seed's directory, with ``batch.json``) belongs to,
    every unfinished seed from the newest checkpoint they all hold (from step 0 when there is none);
    seeds that completed before the batch stopped are left alone."""
    started, run_dir = time.perf_counter(), Path(run_dir)
    batch = read_json_file(run_dir / BATCH_FILE)
    names = batch.get("run_dirs") if isinstance(batch, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and "/" not in n for n in names):
        raise ConfigError(f"{run_dir / BATCH_FILE}: damaged (no run_dirs); start the runs again")
    run_dirs = [run_dir.parent / name for name in names if not is_complete(run_dir.parent / name)]
    if not run_dirs:
        raise ConfigError(f"--resume {run_dir}: every run of its batch is complete (summary.json); nothing to resume")
    with ExitStack() as locks:
        for each in run_dirs:
            locks.enter_context(lock_directory(each))
        configs = [read_run_config(each) for each in run_dirs]
        check_batchable(configs, f"--resume {run_dir}")
        shared = set.intersection(*({int(m.group(1)) for p in (d / "checkpoints").glob("step_*")
                                     if (m := _STEP.fullmatch(p.name)) and p.is_dir()} for d in run_dirs))
        step = max(shared) if shared else None
        for config, each in zip(configs, run_dirs):
            check_run_fingerprint(each, config, None if step is None else each / "checkpoints", RUN_FILE)
        return _train(_build(configs), configs, run_dirs, step, started)


def _cut_rows(path: Path, rows: int) -> None:
    """progress.csv back to its header and first ``rows`` rows (what the checkpoint had logged)."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    if rows == 0:
        path.unlink(missing_ok=True)
    elif len(lines) < rows + 1:
        raise ConfigError(f"{path}: holds {max(len(lines) - 1, 0)} rows, the checkpoint logged {rows}; start again")
    else:
        write_text_atomic(path, "".join(lines[: rows + 1]))


def _train(model: BatchedSAC, configs: list[RunConfig], run_dirs: list[Path], step: int | None,
           started: float) -> list[RunResult]:
    """Train ``model`` (fresh, or continued from every seed's checkpoint at ``step``) up to
    ``total_steps`` and complete every seed's directory; a failure marks every status.json failed."""
    infos = _load_checkpoints_for(model, configs, run_dirs, step)
    seeds = []
    for k, (config, run_dir) in enumerate(zip(configs, run_dirs)):
        _cut_rows(run_dir / "progress.csv", 0 if step is None else infos[k]["rows"])
        logger = _logger(run_dir)
        if step is None:
            log_config_to_tensorboard(logger, config, to_yaml(config))
        metrics = MetricsCallback(config.log_interval)
        metrics.init_callback(_SeedView(model, k, logger))
        if step is not None:
            vars(metrics).update(infos[k]["metrics"])
            for name in _LOGGER_STATE:
                getattr(logger, name).update(infos[k]["logger"][name])
        seeds.append(_Seed(config, run_dir, logger, metrics, step))
    model.set_loggers([seed.logger for seed in seeds])
    try:
        for seed in seeds:
            seed.write_status("running", model.num_timesteps)
        callback = _BatchCallback(seeds, configs[0].checkpoint_every, configs[0].total_steps)
        model.learn(configs[0].total_steps - model.num_timesteps, callback=callback, log_interval=0,
                    reset_num_timesteps=step is None)
        return [_finish(model, k, seed, step, started) for k, seed in enumerate(seeds)]
    except BaseException as error:
        line = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        interrupted = isinstance(error, KeyboardInterrupt)
        for seed in seeds:
            if not is_complete(seed.run_dir):  # a seed finished before the failure stays complete
                seed.write_status("interrupted" if interrupted else "failed", model.num_timesteps, error=line)
        if interrupted:
            raise
        raise RunFailed(f"batched run {run_dirs[0].parent} failed at step {model.num_timesteps} ({line}); fix the "
                        f"cause, then `causalrl run --resume {run_dirs[0]}`") from error
    finally:
        for seed in seeds:
            seed.logger.close()


def _load_checkpoints_for(model, configs, run_dirs, step) -> list[dict]:
    if step is None:
        return [{} for _ in configs]
    placeholders = [_Seed(config, run_dir, None, None) for config, run_dir in zip(configs, run_dirs)]
    return _load_checkpoints(model, placeholders, step)


def _finish(model: BatchedSAC, k: int, seed: _Seed, step: int | None, started: float) -> RunResult:
    config, run_dir = seed.config, seed.run_dir
    if config.save_model:
        model.save_seed(k, run_dir / "model.zip")
    summary = {
        "status": "complete", "experiment": config.experiment, "env": config.env.id, "agent": config.agent.name,
        "seed": config.seed, "steps": seed.metrics.steps, "wall_time_s": round(time.perf_counter() - started, 3),
        "device": str(model.device), "final": seed.metrics.rows[-1] if seed.metrics.rows else {},
        "seeds_in_process": len(model.seeds),
    }
    if step is not None:
        summary["resumed_from_step"] = step
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    fsync_tree(run_dir)
    seed.checkpoint_step = None
    seed.write_status("complete", model.num_timesteps)
    write_json_atomic(run_dir / "summary.json", summary)
    return RunResult(run_dir, summary, seed.metrics.rows, config)
