"""The Python API: ``causalrl.run``, ``causalrl.resume``, ``causalrl.sweep``, ``causalrl.tune``,
``causalrl.bench``, ``causalrl.report``, ``causalrl.evaluate``, ``causalrl.graph`` and
``causalrl.catalog`` do what the commands of the same names do, and return objects instead of printing; the command line is a
thin shell over them (docs/reports.md)::

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
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from causalrl.experiment.config import RunConfig, configs_from, load_experiment

__all__ = ["BenchOutcome", "Result", "Results", "bench", "catalog", "configs", "evaluate", "graph", "report", "resume", "run",
           "sweep", "tune"]

#: the longest summary ``causalrl list`` prints for one name (one sentence, cut with an ellipsis)
SUMMARY_LIMIT = 100


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
    """The runs of an experiment with several agents (a list of :class:`Result`);
    ``comparison_plot`` is the regret picture of several bandit agents (None otherwise)."""

    comparison_plot: Path | None = None

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


def _result(config: RunConfig, outcome) -> Result:
    return Result(config.agent.name, config.env.id, config.seed, outcome.run_dir, dict(outcome.summary["final"]),
                  outcome.summary["wall_time_s"], outcome.rows, config, outcome.summary)


def run(config_or_preset=None, *overrides: str, progress: bool | None = False, verbose: bool = False,
        on_result=None, **keyword_overrides) -> Result | Results:
    """Run an experiment (``causalrl run``) and return its :class:`Result` (one agent) or
    :class:`Results` (several agents, one run each, in order). Several bandit agents also get
    one regret picture, ``Results.comparison_plot``.

    :param config_or_preset: preset name (``"default"``, see ``causalrl list``), YAML file, mapping
        with the YAML keys, RunConfig, or list of RunConfigs. None: the default experiment.
    :param overrides: ``"key=value"`` strings, as on the command line.
    :param progress: show a progress bar per run (None: as the config says).
    :param verbose: print every logged row.
    :param on_result: called with each :class:`Result` as soon as its run ends (the command line
        prints the run directory).
    :param keyword_overrides: ``key=value`` with ``__`` for the dot, e.g. ``seed=3, env__n_nodes=8``.
    """
    from causalrl.experiment.figures.curves import plot_bandit_runs
    from causalrl.experiment.run.runner import run as run_one

    results = Results()
    for config in configs(config_or_preset, *overrides, **keyword_overrides):
        if progress is not None:
            config = RunConfig(**{**config.__dict__, "progress_bar": progress})
        results.append(_result(config, run_one(config, verbose=verbose)))
        if on_result is not None:
            on_result(results[-1])
    if len(results) > 1 and all(result.rows and "regret/cumulative" in result.rows[-1] for result in results):
        first = results[0].config
        path = Path(first.output_dir) / first.experiment / f"comparison__{time.strftime('%Y%m%d-%H%M%S')}.png"
        results.comparison_plot = plot_bandit_runs({result.agent: result.rows for result in results}, path,
                                                   title=f"{first.experiment}: {first.env.id} (seed {first.seed})")
    return results[0] if len(results) == 1 else results


def resume(run_dir, verbose: bool = False, progress: bool | None = None, trust_models: bool = False) -> Result | Results:
    """Continue an interrupted run from its newest checkpoint (``causalrl run --resume``);
    ``trust_models`` is ``--trust-models`` (README, Pickles). One seed of a batched run
    (``vectorize_seeds``, docs/batched.md) continues its whole batch: :class:`Results`, one per seed."""
    from causalrl.experiment.run.batched import is_batch_run, resume_batch
    from causalrl.experiment.run.runner import resume as resume_one

    if is_batch_run(Path(run_dir)):
        return Results(_result(outcome.config, outcome) for outcome in resume_batch(Path(run_dir)))
    outcome = resume_one(Path(run_dir), verbose=verbose, progress_bar=progress, trust_models=trust_models)
    return _result(outcome.config, outcome)


def sweep(file_or_preset, *overrides: str, workers: int | None = None, backend: str | None = None,
          progress: bool = False, output_dir: str | Path | None = None, seeds: list[int] | int | None = None,
          **options):
    """Run a sweep (``causalrl sweep``); returns the outcome (``.directory``, ``.records``,
    ``.failed``). ``overrides`` (``"env.id=Reacher-v5"``) apply to every trial and name the sweep
    directory; ``seeds`` replaces the file's. ``backend``: local or ray (default: ray when an
    ``address`` or the file's ``ray_address`` names a cluster). ``options`` go to
    ``causalrl.experiment.batch.sweep.run_sweep`` (storage, address: the Ray cluster, as
    ``causalrl sweep --ray-address``)."""
    from causalrl.experiment.batch.sweep import load_sweep, run_sweep

    spec = load_sweep(file_or_preset, output_dir=output_dir, overrides=overrides, seeds=seeds)
    return run_sweep(spec, workers=workers, backend=backend, progress=progress, **options)


def tune(file_or_preset, n_trials: int | None = None, evaluate: bool = True, progress: bool = False,
         output_dir: str | Path | None = None, **options):
    """Run a hyperparameter search (``causalrl tune``); returns the outcome (``.best_params``,
    ``.best_value``, ``.held_out``). ``options`` go to ``run_tune`` (storage, study_name)."""
    from causalrl.experiment.batch.tune import load_tune, run_tune

    return run_tune(load_tune(file_or_preset, output_dir=output_dir), n_trials=n_trials, evaluate=evaluate,
                    progress=progress, **options)


@dataclass
class BenchOutcome:
    """One suite at one tier (``causalrl bench``): its folder, the exact command that reproduces
    it, each stage's sweep outcome (in order), the report and the leaderboard of the compared
    stages (``leaderboard.markdown``, ``.csv``, ``.png``, ``.rows``, ``.text``; None when no stage
    is compared), and one more leaderboard per agent of the suite's ``compare.also_against``."""

    suite: str
    tier: str
    directory: Path
    command: str
    stages: list = field(repr=False)
    report: object = field(default=None, repr=False)
    leaderboard: object = field(default=None, repr=False)
    more_leaderboards: list = field(default_factory=list, repr=False)

    @property
    def failed(self) -> dict[str, dict]:
        """``<sweep name>/<trial>`` -> record of every failed trial of every stage."""
        return {f"{stage.directory.name}/{name}": record for stage in self.stages for name, record in stage.failed.items()}


def _bench_command(source: str, tier: str, output_dir, reps: int) -> str:
    parts = ["causalrl", "bench", source, "--tier", tier]
    if output_dir is not None:
        parts += ["--output-dir", str(output_dir)]
    if reps != 2000:
        parts += ["--reps", str(reps)]
    return " ".join(shlex.quote(part) for part in parts)


def _bench_title(suite) -> str:
    return f"{suite.name} ({suite.tier} tier)" + (f"; docs: {suite.docs}" if suite.docs else "")


def bench(suite: str | Path, tier: str = "standard", workers: int | None = None, progress: bool = False,
          output_dir: str | Path | None = None, reps: int = 2000) -> BenchOutcome | list[BenchOutcome]:
    """Run a benchmark suite (``causalrl bench``): its stages' sweeps in order into
    ``<output_dir>/bench/<suite>/<tier>/``, then the report and the leaderboard of the compared
    stages. ``suite``: a suite name (preset ``bench-<suite>``, see ``causalrl list``), a suite YAML
    file, or ``"all"`` (every shipped suite in turn; a list, one :class:`BenchOutcome` each; every
    suite file is checked before the first runs). Running it again skips finished trials."""
    # deferred like every command's machinery: `import causalrl` and `causalrl list` stay light (no torch)
    from causalrl.experiment.analysis.leaderboard import write_leaderboard
    from causalrl.experiment.analysis.report import write_report
    from causalrl.experiment.batch.bench import load_suite, run_suite, suite_names

    if reps < 100:  # before anything runs (the report refuses it too, but only after the sweeps)
        raise ValueError(f"--reps: use at least 100 bootstrap replicates, got {reps}")
    sources = suite_names() if str(suite) == "all" else [str(suite)]
    if not sources:
        raise ValueError("bench all: no suites are shipped (presets bench-*.yaml)")
    suites = [load_suite(source, tier, output_dir) for source in sources]
    names = [each.name for each in suites]
    for name in {name for name in names if names.count(name) > 1}:
        raise ValueError(f"bench all: two suite files have `bench: {name}`; give each suite its own name")
    outcomes = []
    for each in suites:
        stages = run_suite(each, workers=workers, progress=progress)
        command = _bench_command(each.source, tier, output_dir, reps)
        outcome = BenchOutcome(each.name, tier, each.directory, command, stages)
        dirs = [each.sweep_dir(stage) for stage in each.compared]
        if dirs:
            outcome.report = write_report(dirs, out=each.directory / "report", reps=reps, progress=progress)
            boards = [write_leaderboard(dirs, out=each.directory / ("" if baseline == each.baseline else f"vs-{baseline}"),
                                        baseline=baseline, metrics=list(each.metrics), reps=reps,
                                        title=_bench_title(each), command=command)
                      for baseline in (each.baseline, *each.also_against)]
            outcome.leaderboard, outcome.more_leaderboards = boards[0], boards[1:]
        outcomes.append(outcome)
    return outcomes if str(suite) == "all" else outcomes[0]


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
    from causalrl.experiment.analysis.graphs import redraw_graph

    return redraw_graph(run_dir.run_dir if isinstance(run_dir, Result) else run_dir, checkpoint, out, dot)


def evaluate(run_dir, episodes: int = 10, video: str | Path | None = None, deterministic: bool = True,
             seed: int | None = None, trust_models: bool = False):
    """Play a run's saved agent alone on its env rebuilt from config.yaml (``causalrl evaluate``,
    RL Zoo's ``enjoy``); returns the Evaluation (``.returns``, ``.mean``, ``.ci_low``, ``.ci_high``,
    ``.normalised_score``, ``.video``, ``.text``). Intervention worlds are played without their expert.

    :param run_dir: a complete run directory (or a :class:`Result`).
    :param episodes: episodes to play. Default 10.
    :param video: a folder for a video of the first episode (MP4 with ``imageio-ffmpeg``, else GIF).
        Default None.
    :param deterministic: act deterministically. Default True.
    :param seed: reset seed of the first episode (episode i: seed + i). Default None: the runner's
        evaluation seed (1_000_000), so the mean matches ``eval/mean_reward``.
    :param trust_models: ``--trust-models`` (README, Pickles). Default False.
    """
    from causalrl.experiment.run.replay import evaluate_run

    return evaluate_run(run_dir.run_dir if isinstance(run_dir, Result) else run_dir, episodes=episodes, video=video,
                        deterministic=deterministic, seed=seed, trust_models=trust_models)


def summary_line(text: str | None, limit: int = SUMMARY_LIMIT) -> str:
    """The first sentence of a docstring or description, on one line and at most ``limit``
    characters (cut at a word, with an ellipsis)."""
    words = " ".join(str(text or "").strip().split("\n\n")[0].split())
    # a full stop before a capital ends the sentence, except after e.g., i.e., cf., vs.
    match = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bcf)(?<!\bvs)\.(?=\s+[A-Z(`]|$)", words)
    sentence = words[: match.start()] if match else words
    if len(sentence) <= limit:
        return sentence
    return sentence[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:(") + "…"


def catalog() -> dict[str, dict[str, str]]:
    """What ``causalrl list`` prints: ``{"envs": {id: summary}, "agents": {...}, "presets": {...}}``,
    built-in and plugin names alike."""
    import gymnasium as gym

    from causalrl.core.registry import AGENTS
    from causalrl.experiment.config import load_plugins, preset_names, read_source, registered_env_ids
    from causalrl.experiment.config.plugins import import_object

    load_plugins()
    envs = {}
    for env_id in registered_env_ids():
        entry = gym.spec(env_id).entry_point
        entry = import_object(entry, env_id) if isinstance(entry, str) else entry
        envs[env_id] = summary_line(entry.__doc__)
    return {
        "envs": envs,
        "agents": {name: summary_line(AGENTS.summary(name)) for name in AGENTS.names()},
        "presets": {name: summary_line(str(read_source(name)[0].get("description", ""))) for name in preset_names()},
    }
