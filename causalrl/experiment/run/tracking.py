"""Experiment tracking beyond progress.csv: TensorBoard hyperparameters and config text, and an
optional Weights & Biases logger (the ``wandb`` extra: ``pip install -e '.[wandb]'``).

Both ride on the SB3 logger the runner builds, so every row the metrics callback writes reaches
them too. See docs/reports.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from stable_baselines3.common.logger import (
    HParam,
    KVWriter,
    Logger,
    TensorBoardOutputFormat,
)

__all__ = ["hparam_dict", "log_config_to_tensorboard", "WandbOutputFormat", "HPARAM_METRICS"]

#: the scalars the TensorBoard HParams dashboard shows next to each run's hyperparameters
HPARAM_METRICS = ("regret/cumulative", "regret/window_optimal_action_rate", "reward/cumulative",
                  "eval/mean_reward", "structure/shd")


def hparam_dict(config) -> dict:
    """Flat ``{name: int | float | str | bool}`` of a RunConfig: seed, total_steps, n_envs, the
    env's arguments (``env.*``) and the agent's hyperparameters (``agent.*``); other values as
    JSON text."""
    def plain(value):
        if isinstance(value, (bool, int, float, str)):
            return value
        return json.dumps(value, sort_keys=True, default=str)

    flat = {"agent": config.agent.name, "env": config.env.id, "seed": config.seed,
            "total_steps": config.total_steps, "n_envs": getattr(config, "n_envs", 1)}
    flat.update({f"env.{key}": plain(value) for key, value in sorted(config.env.kwargs.items())})
    flat.update({f"agent.{key}": plain(value) for key, value in sorted(config.agent.kwargs.items())})
    if config.agent.policy:
        flat["agent.policy"] = config.agent.policy
    return flat


def log_config_to_tensorboard(logger: Logger, config, config_yaml: str) -> None:
    """Write the config as text (tag ``config``) and its hyperparameters to the HParams
    dashboard (SB3's ``HParam``), on the logger's TensorBoard writer (if it has one)."""
    writers = [fmt for fmt in logger.output_formats if isinstance(fmt, TensorBoardOutputFormat)]
    if not writers:
        return
    writer = writers[0].writer
    writer.add_text("config", "```yaml\n" + config_yaml + "\n```", 0)  # markdown code block
    # straight to the TensorBoard writer: a logger row would add an empty line to progress.csv
    writers[0].write({"hparams": HParam(hparam_dict(config), {name: 0.0 for name in HPARAM_METRICS})},
                     {"hparams": None}, 0)


class WandbOutputFormat(KVWriter):
    """An SB3 output format that sends each logged row to a Weights & Biases run.

    ``settings`` are ``wandb.init`` arguments (project, entity, group, tags, mode, name, notes);
    the run's name defaults to the run directory's name, its files go under ``RUN_DIR/wandb``,
    and its config is the resolved run config. ``mode: offline`` (or ``WANDB_MODE=offline``)
    logs without a network; sync later with ``wandb sync RUN_DIR/wandb/offline-run-*``.
    """

    def __init__(self, run_dir: str | Path, config_dict: dict, settings: dict):
        try:
            import wandb
        except ImportError:
            raise ValueError("wandb: the wandb package is not installed; pip install -e '.[wandb]' "
                             "or remove the wandb key") from None
        run_dir = Path(run_dir)
        settings = dict(settings)
        settings.setdefault("name", run_dir.name)
        self.run = wandb.init(dir=str(run_dir), config=config_dict, reinit="create_new", **settings)

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        row = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "wandb" in excluded or isinstance(value, HParam):
                continue
            if isinstance(value, (bool, int, float)):
                row[key] = value
        if row:
            self.run.log(row, step=int(step))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
