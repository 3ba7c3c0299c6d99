"""The shared runner: ``run(config) -> RunResult`` writes one run directory.

    runs/<experiment>/<env>__<agent>__s<seed>__<timestamp>/
      config.yaml    resolved config (re-run with `causalrl run <this file>`)
      progress.csv   one row per log interval (SB3 logger: csv + tensorboard)
      regret.png     bandits: regret and optimal-action-rate curves
      model.zip      agent state (a pickle: load only files you trust)
      summary.json   final metrics and "status": "complete", written atomically last

Everything is built and validated before the directory is created, so bad input leaves nothing
behind, and a directory without summary.json is an unfinished run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import set_random_seed

from causalrl.callbacks import MetricsCallback
from causalrl.config import ConfigError, RunConfig, to_yaml
from causalrl.plots import plot_bandit_runs
from causalrl.registry import AGENTS, load_plugins

__all__ = ["RunResult", "run", "build_env", "build_agent", "write_json_atomic"]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict
    rows: list


def write_json_atomic(path: Path, data: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def build_env(config: RunConfig):
    load_plugins()
    try:
        return gym.make(config.env.id, **config.env.kwargs)
    except gym.error.Error as error:
        raise ConfigError(f"env.id: {error}") from None


def build_agent(config: RunConfig, env):
    agent_cls = AGENTS.get(config.agent.name)
    policy = config.agent.policy or getattr(agent_cls, "default_policy", "MlpPolicy")
    return agent_cls(policy, env, seed=config.seed, **config.agent.kwargs)


def _ground_truth(env):
    """The env's causal_structure, as composed by its outermost wrapper that has one (None
    for worlds without known structure)."""
    try:
        return env.get_wrapper_attr("causal_structure")
    except AttributeError:
        return None


def _run_dir(config: RunConfig) -> Path:
    env_name = config.env.id.split("/")[-1]
    stem = f"{env_name}__{config.agent.name}__s{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
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
    agent.set_logger(configure(str(run_dir), ["csv", "tensorboard"] + (["stdout"] if verbose else [])))
    metrics = MetricsCallback(config.log_interval, truth=lambda: _ground_truth(env))
    # log_interval=None: SB3 algorithms write no rows of their own; the metrics callback dumps
    # every row (with whatever train/* values the algorithm recorded since the last one)
    agent.learn(config.total_steps, callback=metrics, log_interval=None, progress_bar=config.progress_bar)
    agent.logger.close()

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
    write_json_atomic(run_dir / "summary.json", summary)
    env.close()
    return RunResult(run_dir, summary, metrics.rows)
