"""The Python API: ``causalrl.run``, ``causalrl.sweep``, ``causalrl.tune``, ``causalrl.report``
and ``causalrl.graph`` do what the commands of the same names do, and return objects instead of
printing (docs/reports.md)::

    import causalrl

    result = causalrl.run("default", agents="csl-ucb", total_steps=300, env__n_nodes=8)
    result.metrics["regret/cumulative"]          # flat final metrics
    results = causalrl.run("default")            # several agents: a list, one Result each
    results.metrics["ucb"]["regret/cumulative"]
    causalrl.report(results.run_dirs, out="my-report")

Overrides are the command line's ``key=value`` pairs, given as strings (``"env.n_nodes=8"``) or as
keyword arguments, where ``__`` stands for the dot (``env__n_nodes=8``, ``agents__ucb__window=10``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from causalrl.experiment.config import RunConfig, configs_from, load_experiment

__all__ = ["Result", "Results", "run", "sweep", "tune", "report", "graph", "configs"]


@dataclass(frozen=True)
class Result:
    """One run: its directory, flat final metrics (``metrics["regret/cumulative"]``), the logged
    rows (one dict per log interval), the resolved config and the whole summary.json."""

    agent: str
    env: str
    seed: int
    run_dir: Path
    metrics: dict
    wall_time_s: float
    rows: list = field(repr=False)
    config: RunConfig = field(repr=False)
    summary: dict = field(repr=False)

    def __getitem__(self, metric: str) -> float:
        return self.metrics[metric]


class Results(list):
    """The runs of an experiment with several agents (a list of :class:`Result`)."""

    @property
    def metrics(self) -> dict[str, dict]:
        """agent -> flat final metrics."""
        return {result.agent: result.metrics for result in self}

    @property
    def run_dirs(self) -> list[Path]:
        return [result.run_dir for result in self]


def _override_texts(overrides: tuple, keyword_overrides: dict) -> list[str]:
    texts = [str(text) for text in overrides]
    for key, value in keyword_overrides.items():
        key = key.replace("__", ".")
        if key == "agents" and isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        texts.append(f"{key}={value if isinstance(value, str) else json.dumps(value)}")
    return texts


def configs(config_or_preset=None, *overrides: str, **keyword_overrides) -> list[RunConfig]:
    """The validated run configs (one per agent) of a preset name, a YAML file, a mapping with
    the YAML file's keys, a RunConfig or a list of them, with overrides applied."""
    texts = _override_texts(overrides, keyword_overrides)
    if isinstance(config_or_preset, RunConfig):
        config_or_preset = [config_or_preset]
    if isinstance(config_or_preset, (list, tuple)) and all(isinstance(c, RunConfig) for c in config_or_preset):
        if texts:
            return [c for each in config_or_preset for c in configs_from(each.to_dict(), texts)]
        return list(config_or_preset)
    if isinstance(config_or_preset, dict):
        return configs_from(config_or_preset, texts)
    return load_experiment(config_or_preset, texts)


def run(config_or_preset=None, *overrides: str, progress: bool = False, verbose: bool = False,
        **keyword_overrides) -> Result | Results:
    """Run an experiment (``causalrl run``) and return its :class:`Result` (one agent) or
    :class:`Results` (several agents, one run each, in order).

    Args:
        config_or_preset: preset name (``"default"``, see ``causalrl list``), YAML file, mapping
            with the YAML keys, RunConfig, or list of RunConfigs. None: the default experiment.
        overrides: ``"key=value"`` strings, as on the command line.
        progress: show a progress bar per run.
        verbose: print every logged row.
        keyword_overrides: ``key=value`` with ``__`` for the dot, e.g. ``seed=3, env__n_nodes=8``.
    """
    from causalrl.experiment.run.runner import run as run_one

    results = Results()
    for config in configs(config_or_preset, *overrides, **keyword_overrides):
        config = RunConfig(**{**config.__dict__, "progress_bar": progress})
        outcome = run_one(config, verbose=verbose)
        metrics = {key: value for key, value in outcome.summary["final"].items()}
        results.append(Result(config.agent.name, config.env.id, config.seed, outcome.run_dir, metrics,
                              outcome.summary["wall_time_s"], outcome.rows, config, outcome.summary))
    return results[0] if len(results) == 1 else results


def sweep(file_or_preset, workers: int | None = None, backend: str = "local", progress: bool = False,
          output_dir: str | Path | None = None, **options):
    """Run a sweep (``causalrl sweep``); returns the outcome (``.directory``, ``.records``,
    ``.failed``). ``options`` go to ``causalrl.experiment.batch.sweep.run_sweep`` (storage, address)."""
    from causalrl.experiment.batch.sweep import load_sweep, run_sweep

    return run_sweep(load_sweep(file_or_preset, output_dir=output_dir), workers=workers, backend=backend,
                     progress=progress, **options)


def tune(file_or_preset, n_trials: int | None = None, evaluate: bool = True, progress: bool = False,
         output_dir: str | Path | None = None, **options):
    """Run a hyperparameter search (``causalrl tune``); returns the outcome (``.best_params``,
    ``.best_value``, ``.held_out``). ``options`` go to ``run_tune`` (storage, study_name)."""
    from causalrl.experiment.batch.tune import load_tune, run_tune

    return run_tune(load_tune(file_or_preset, output_dir=output_dir), n_trials=n_trials, evaluate=evaluate,
                    progress=progress, **options)


def report(*dirs, out: str | Path | None = None, reps: int = 2000, progress: bool = False):
    """Aggregate run or sweep directories (``causalrl report``); returns the Report (``.markdown``,
    ``.csv``, ``.plots``, ``.table``: the rows of final_metrics.csv). ``dirs`` may be paths, lists
    of paths, Results or Result objects."""
    from causalrl.experiment.analysis.report import write_report

    folders = []
    for item in dirs:
        items = item if isinstance(item, (list, tuple)) else [item]
        folders += [each.run_dir if isinstance(each, Result) else Path(each) for each in items]
    if not folders:
        raise ValueError("report: give at least one run or sweep directory")
    return write_report(folders, out=out, reps=reps, progress=progress)


def graph(run_dir, checkpoint: int | str | None = None, out: str | Path | None = None, dot: bool = False) -> list[Path]:
    """Redraw a run's learned graph over the true one (``causalrl graph``); returns the files."""
    from causalrl.experiment.figures.graphs import redraw_graph

    return redraw_graph(run_dir.run_dir if isinstance(run_dir, Result) else run_dir, checkpoint, out, dot)
