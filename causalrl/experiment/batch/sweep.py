"""Sweeps: a base config x a grid or list of overrides x seeds, one ordinary run directory per
trial, run in local worker processes or on a Ray cluster through Ray Tune (the same trainable).

A sweep file (YAML; a path or a shipped ``sweep-*`` preset)::

    name: ucb-exploration          # the sweep directory is <output_dir>/sweeps/<name>/
    description: free text
    base: default                  # preset name, YAML path (relative to this file) or an inline config
    fixed: [total_steps=300]       # overrides applied to every trial (optional)
    overrides:                     # optional; without it the base runs once per seed
      grid: {agent.exploration: [0.5, 1.0]}             # the cartesian product of the lists
      # list: [[agent.exploration=0.5], [agents.ucb.window=50]]   # or an explicit list of sets
    seeds: [0, 1, 2]               # or a count n, meaning 0..n-1
    seed_overrides: [seed={seed}]  # what one seed sets (default); add env.instance_seed={seed}
                                   # to draw a new problem instance per seed
    output_dir: runs               # default; `causalrl sweep --output-dir` wins

The sweep directory::

    runs/sweeps/<name>/
      sweep.yaml       the resolved sweep: base mapping, overrides, every trial's name and config
      trials.jsonl     one line per finished attempt: trial, status ok|failed, error, wall time
      trials.csv       the current status of every trial (rewritten after each result)
      <agent>__<override-slug>__s<seed>/   one run directory per trial (see causalrl.experiment.run.runner);
                       a failed trial holds error.json (one-line error + traceback) instead of
                       summary.json

A trial is finished when its ``summary.json`` says ``"status": "complete"``. Starting a sweep
again skips finished trials and deletes and re-runs the others (unfinished or failed); adding
grid values or seeds to the file extends the sweep. A finished trial whose config differs from
the file's is an error (change ``name`` or delete the directory). Each run seeds everything from
its config, so results do not depend on the worker count or the backend.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from causalrl.experiment.config import (
    ConfigError,
    RunConfig,
    configs_from,
    read_source,
)
from causalrl.experiment.run.rundir import (
    is_complete,
    lock_directory,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "Trial", "Sweep", "SweepOutcome", "load_sweep", "run_sweep", "run_trial",
    "config_from_dict", "Progress", "one_line", "SWEEP_KEYS",
]

SWEEP_KEYS = {
    "name": "the sweep directory's name under <output_dir>/sweeps/",
    "description": "free text",
    "base": "preset name, YAML path or inline experiment config",
    "fixed": "overrides applied to every trial",
    "overrides": "grid: {key: [values]} or list: [[key=value, ...], ...]",
    "seeds": "list of seeds, or a count n (0..n-1)",
    "seed_overrides": "overrides one seed sets, with {seed} replaced (default: [seed={seed}])",
    "output_dir": "parent of sweeps/<name> (default: runs)",
}
DEFAULT_SEED_OVERRIDES = ("seed={seed}",)
_SLUG_LIMIT = 60


# --- small shared helpers (tune and report use them too) --------------------------------------
def one_line(error: BaseException) -> str:
    """``Type: message`` on one line, as trial tables and reports show errors."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return f"{type(error).__name__}: {' '.join(str(text).split())}".rstrip(": ")


def config_from_dict(data: dict) -> RunConfig:
    """The RunConfig of a ``RunConfig.to_dict()`` mapping (what config.yaml holds), re-validated."""
    configs = configs_from(data)
    if len(configs) != 1:
        raise ConfigError("a trial config must name exactly one agent")
    return configs[0]


def _limit_threads() -> None:
    """One torch thread per trial: several trials share the cores, and results must not depend
    on how many run at once."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


# --- the trainable: one trial, shared by every backend and by `causalrl tune` -----------------
def run_trial(config: RunConfig | dict, trial_dir: str | Path) -> dict:
    """Run one trial into ``trial_dir`` and return its record; never raises for a failing run.

    A finished ``trial_dir`` is left alone (``skipped``); an unfinished or failed one is deleted
    and run again. A run that raises leaves ``error.json`` with the error line and traceback.
    The record holds ``status`` (ok | failed), ``error``, ``wall_time_s``, ``skipped`` and
    ``final`` (the summary's final metrics).
    """
    from causalrl.experiment.run.runner import run

    trial_dir = Path(trial_dir)
    if is_complete(trial_dir):
        summary = json.loads((trial_dir / "summary.json").read_text())
        return {"status": "ok", "error": "", "skipped": True, "wall_time_s": summary.get("wall_time_s", 0.0),
                "final": summary.get("final", {})}
    if trial_dir.exists():
        shutil.rmtree(trial_dir)
    _limit_threads()
    started = time.perf_counter()
    try:
        if isinstance(config, dict):
            config = config_from_dict(config)
        result = run(config, run_dir=trial_dir)
        return {"status": "ok", "error": "", "skipped": False, "wall_time_s": round(time.perf_counter() - started, 3),
                "final": result.summary.get("final", {})}
    except Exception as error:  # a failing trial is recorded; the others go on
        line = one_line(error)
        trial_dir.mkdir(parents=True, exist_ok=True)
        data = config.to_dict() if isinstance(config, RunConfig) else config
        if not (trial_dir / "config.yaml").exists():
            write_text_atomic(trial_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))
        write_json_atomic(trial_dir / "error.json", {"status": "failed", "error": line, "traceback": traceback.format_exc()})
        return {"status": "failed", "error": line, "skipped": False,
                "wall_time_s": round(time.perf_counter() - started, 3), "final": {}}


# --- the sweep definition ---------------------------------------------------------------------
@dataclass(frozen=True)
class Trial:
    """One (override set, agent, seed): a run directory ``<agent>__<slug>__s<seed>``."""

    name: str
    agent: str
    seed: int
    overrides: tuple[str, ...]
    config: RunConfig


@dataclass
class Sweep:
    name: str
    directory: Path
    trials: list[Trial]
    spec: dict = field(default_factory=dict)

    def trial_dir(self, trial: Trial) -> Path:
        return self.directory / trial.name


def _format(value: Any) -> str:
    return value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _override_sets(spec: Any, label: str) -> list[tuple[str, ...]]:
    if spec is None:
        return [()]
    if not isinstance(spec, dict) or set(spec) - {"grid", "list"} or not spec:
        raise ConfigError(f"{label}: overrides must be a mapping with `grid` and/or `list`")
    sets: list[tuple[str, ...]] = []
    grid = spec.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise ConfigError(f"{label}: overrides.grid must map dotted keys to lists of values")
        keys = list(grid)
        for key in keys:
            if not isinstance(grid[key], list) or not grid[key]:
                raise ConfigError(f"{label}: overrides.grid.{key} must be a non-empty list of values")
        for values in itertools.product(*(grid[key] for key in keys)):
            sets.append(tuple(f"{key}={_format(value)}" for key, value in zip(keys, values)))
    listed = spec.get("list")
    if listed is not None:
        if not isinstance(listed, list) or not listed:
            raise ConfigError(f"{label}: overrides.list must be a list of override lists")
        for index, entry in enumerate(listed):
            entry = [entry] if isinstance(entry, str) else entry
            if not isinstance(entry, list) or not all(isinstance(item, str) and "=" in item for item in entry):
                raise ConfigError(f"{label}: overrides.list[{index}] must be a list of key=value strings")
            sets.append(tuple(entry))
    return sets


def _slug(overrides: tuple[str, ...]) -> str:
    if not overrides:
        return "base"
    parts = []
    for text in overrides:
        key, _, value = text.partition("=")
        key = re.sub(r"^(agent\.|agents\.[^.]+\.)", "", key)  # the trial name already has the agent
        parts.append(re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{key}-{value}").strip("_"))
    return "_".join(parts)


def _seeds(raw: Any, label: str) -> list[int]:
    if raw is None:
        return [0]
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise ConfigError(f"{label}: seeds must be a positive count or a list of seeds, got {raw}")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw):
        if len(set(raw)) != len(raw):
            raise ConfigError(f"{label}: seeds has duplicates: {raw}")
        return list(raw)
    raise ConfigError(f"{label}: seeds must be a count or a list of non-negative integers, got {raw!r}")


def _string_list(raw: Any, key: str, label: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) and "=" in item for item in raw):
        raise ConfigError(f"{label}: {key} must be a list of key=value strings")
    return list(raw)


def resolve_base(base: Any, relative_to: Path | None, label: str) -> dict:
    """The raw experiment mapping of ``base``: a preset name, a YAML path or an inline mapping."""
    if base is None:
        raise ConfigError(f"{label}: base is missing; give a preset name, a YAML path or an inline config")
    if isinstance(base, dict):
        return base
    if not isinstance(base, str):
        raise ConfigError(f"{label}: base must be a preset name, a YAML path or a mapping")
    if relative_to is not None and (relative_to / base).is_file():
        base = str(relative_to / base)
    raw, _ = read_source(base)
    return raw


def read_spec(source: str | Path, keys: dict[str, str]) -> tuple[dict, str, Path | None]:
    """The raw mapping of a sweep/tune file or preset, its label and its folder (None: preset)."""
    raw, label = read_source(source)
    for key in raw:
        if key not in keys:
            raise ConfigError(f"{label}: unknown key {key!r}; known keys: {', '.join(sorted(keys))}")
    folder = Path(label).parent if not label.startswith("preset ") else None
    return raw, label, folder


def _refuse_seed_overrides(fixed: list[str], sets: list[tuple[str, ...]], label: str) -> None:
    """A sweep's seeds come from ``seeds`` (through ``seed_overrides``), which every trial sets
    last: a ``seed`` in ``fixed`` or in the overrides would be silently replaced, so it is refused."""
    for where, overrides in [("fixed", fixed)] + [("overrides", list(entry)) for entry in sets]:
        for text in overrides:
            if text.partition("=")[0].strip() == "seed":
                raise ConfigError(f"{label}: {where} sets {text!r}, but each trial's seed comes from `seeds` "
                                  "(e.g. seeds: [5, 6]); move the values there")


def seeded_overrides(templates: list[str], seed: int) -> list[str]:
    return [template.replace("{seed}", str(seed)) for template in templates]


def load_sweep(source: str | Path, output_dir: str | Path | None = None, overrides: list[str] | tuple = (),
               seeds: list[int] | int | None = None) -> Sweep:
    """Read a sweep file or preset and expand it into trials, validating every trial's config
    (raises :class:`ConfigError` with a one-line message before anything runs).

    ``overrides`` (``causalrl sweep NAME key=value ...``) apply to every trial after the file's
    own; they name the sweep directory ``<name>__<slug>`` so that a sweep on another env never
    mixes with the file's. ``seeds`` replaces the file's seeds (a list, or a count n: 0..n-1).
    """
    raw, label, folder = read_spec(source, SWEEP_KEYS)
    name = raw.get("name") or Path(str(source)).stem
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
        raise ConfigError(f"{label}: name must be letters, digits, '.', '_' or '-' (not '.' or '..'), got {name!r}")
    base = resolve_base(raw.get("base"), folder, label)
    fixed = _string_list(raw.get("fixed"), "fixed", label)
    sweep_overrides = [str(text) for text in overrides]
    if sweep_overrides:
        name = f"{name}__{_slug(tuple(sweep_overrides))}"
        if len(name) > _SLUG_LIMIT + 20:
            name = f"{name[:40]}-{hashlib.sha1(' '.join(sweep_overrides).encode()).hexdigest()[:8]}"
    seed_templates = _string_list(raw.get("seed_overrides"), "seed_overrides", label) or list(DEFAULT_SEED_OVERRIDES)
    seeds = _seeds(raw.get("seeds") if seeds is None else seeds, label)
    sets = _override_sets(raw.get("overrides"), label)
    _refuse_seed_overrides(fixed + sweep_overrides, sets, label)
    slugs = [_slug(overrides) for overrides in sets]
    for index, (overrides, slug) in enumerate(zip(sets, slugs)):
        if len(slug) > _SLUG_LIMIT or slugs.count(slug) > 1:  # keep names short and unique
            slugs[index] = f"{slug[:40]}-{hashlib.sha1(' '.join(overrides).encode()).hexdigest()[:8]}"
    trials: list[Trial] = []
    for overrides, slug in zip(sets, slugs):
        for seed in seeds:
            try:
                configs = configs_from(base, fixed + list(overrides) + sweep_overrides
                                       + seeded_overrides(seed_templates, seed))
            except ConfigError as error:
                raise ConfigError(f"{label}: trial [{' '.join(overrides) or 'base'}] seed {seed}: {error}") from None
            for config in configs:
                config = replace(config, progress_bar=False)
                trials.append(Trial(f"{config.agent.name}__{slug}__s{seed}", config.agent.name, seed, overrides, config))
    names = [trial.name for trial in trials]
    if len(set(names)) != len(names):
        raise ConfigError(f"{label}: two trials share a name; make the override sets differ")
    parent = Path(output_dir if output_dir is not None else raw.get("output_dir", "runs"))
    spec = {
        "name": name, "description": raw.get("description", ""), "base": base, "fixed": fixed,
        "overrides": raw.get("overrides"), "sweep_overrides": sweep_overrides, "seeds": seeds,
        "seed_overrides": seed_templates,
        "trials": [{"name": t.name, "agent": t.agent, "seed": t.seed, "overrides": list(t.overrides),
                    "config": t.config.to_dict()} for t in trials],
    }
    return Sweep(name, parent / "sweeps" / name, trials, spec)


# --- progress ---------------------------------------------------------------------------------
class Progress:
    """One tqdm line: finished/total, running, failed, rate and ETA (stderr; off when disabled)."""

    def __init__(self, total: int, done: int, label: str, enabled: bool = True, unit: str = "trial"):
        from tqdm.auto import tqdm

        self.failed = 0
        self.running = 0
        self.bar = tqdm(total=total, initial=done, desc=label, unit=unit, disable=not enabled,
                        dynamic_ncols=True, smoothing=0.1, file=sys.stderr)
        self._refresh()

    def _refresh(self) -> None:
        self.bar.set_postfix_str(f"running={self.running} failed={self.failed}", refresh=False)

    def started(self, count: int = 1) -> None:
        self.running += count
        self._refresh()

    def finished(self, failed: bool) -> None:
        self.running = max(0, self.running - 1)
        self.failed += int(failed)
        self.bar.update(1)
        self._refresh()

    def close(self) -> None:
        self.bar.close()


# --- running ----------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    directory: Path
    records: dict[str, dict]  # trial name -> record (see run_trial)

    @property
    def failed(self) -> dict[str, dict]:
        return {name: record for name, record in self.records.items() if record["status"] != "ok"}


class _Ledger:
    """The sweep's status files, written by the driver process only."""

    COLUMNS = ["trial", "agent", "seed", "overrides", "status", "error", "wall_time_s"]

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.records: dict[str, dict] = {}

    def add(self, trial: Trial, record: dict) -> None:
        self.records[trial.name] = record
        if not record.get("skipped"):
            line = {"trial": trial.name, "status": record["status"], "error": record["error"],
                    "wall_time_s": record["wall_time_s"], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with open(self.sweep.directory / "trials.jsonl", "a") as handle:
                handle.write(json.dumps(line) + "\n")
        self.write_table()

    def write_table(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.COLUMNS)
        writer.writeheader()
        for trial in self.sweep.trials:
            record = self.records.get(trial.name, {"status": "pending", "error": "", "wall_time_s": ""})
            writer.writerow({"trial": trial.name, "agent": trial.agent, "seed": trial.seed,
                             "overrides": " ".join(trial.overrides), "status": record["status"],
                             "error": record["error"], "wall_time_s": record["wall_time_s"]})
        write_text_atomic(self.sweep.directory / "trials.csv", buffer.getvalue())


def _lock(directory: Path):
    """Hold an exclusive lock on the sweep directory until the handle is closed (rundir.lock_directory)."""
    return lock_directory(directory, "sweep")


def _check_finished(sweep: Sweep) -> list[Trial]:
    """Trials still to run; raises if a finished trial was run with a different config."""
    todo = []
    for trial in sweep.trials:
        trial_dir = sweep.trial_dir(trial)
        if not is_complete(trial_dir):
            todo.append(trial)
            continue
        try:
            stored = yaml.safe_load((trial_dir / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            stored = None
        if stored != trial.config.to_dict():
            raise ConfigError(f"{trial_dir} finished with a different config than this sweep file gives; "
                              "change the sweep's `name` or delete that directory")
    return todo


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the sweep process dies (even by SIGKILL), so a restarted
    sweep never races an orphaned worker (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _run_local(sweep: Sweep, todo: list[Trial], workers: int, on_result: Callable, progress: Progress) -> None:
    if workers <= 1:
        for trial in todo:
            progress.started()
            on_result(trial, run_trial(trial.config, sweep.trial_dir(trial)))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: the parent has torch imported, and forking a process with torch's threads is unsafe
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_trial, trial.config, sweep.trial_dir(trial)): trial for trial in todo}
        progress.started(min(workers, len(todo)))
        remaining = len(todo)
        for future in as_completed(futures):
            trial = futures[future]
            try:
                record = future.result()
            except Exception as error:  # the worker process itself died (BrokenProcessPool, ...)
                record = {"status": "failed", "error": one_line(error), "skipped": False, "wall_time_s": 0.0, "final": {}}
            remaining -= 1
            progress.running = min(workers, remaining) + 1
            on_result(trial, record)


def _ray_trainable(config: dict) -> None:
    """The Ray Tune function trainable: the same run_trial as the local backend."""
    from ray import tune

    record = run_trial(config["trial"]["config"], config["trial"]["dir"])
    tune.report({"trial_status": record["status"], "trial_record": json.dumps(record)})


def _run_ray(sweep: Sweep, todo: list[Trial], workers: int | None, on_result: Callable, progress: Progress,
             storage: str | None, address: str | None) -> None:
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install -e '.[ray]'") from None

    by_name = {trial.name: trial for trial in todo}

    class _Report(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.started()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            name = trial.config["trial"]["name"]
            if name in by_name and "trial_record" in result:
                on_result(by_name.pop(name), json.loads(result["trial_record"]))

        def on_trial_error(self, iteration, trials, trial, **info):
            name = trial.config["trial"]["name"]
            if name in by_name:  # Ray itself failed the trial (worker lost, ...)
                error = getattr(trial, "error_file", None) or "see the Ray logs"
                on_result(by_name.pop(name), {"status": "failed", "error": f"RayTrialError: {error}",
                                              "skipped": False, "wall_time_s": 0.0, "final": {}})

    # ray.init() joins RAY_ADDRESS or a `ray start` cluster on this node, else starts a local one
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    storage_path = storage or str((sweep.directory / "ray_results").resolve())
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).resolve())
    grid = [{"name": trial.name, "config": trial.config.to_dict(), "dir": str(sweep.trial_dir(trial).resolve())}
            for trial in todo]
    tuner = tune.Tuner(
        tune.with_resources(_ray_trainable, {"cpu": 1}),
        param_space={"trial": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(max_concurrent_trials=workers or None,
                                    trial_dirname_creator=lambda trial: trial.config["trial"]["name"]),
        run_config=tune.RunConfig(name=f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage_path,
                                  callbacks=[_Report()], verbose=0),
    )
    try:
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    for name in list(by_name):  # anything Ray never reported
        on_result(by_name.pop(name), {"status": "failed", "error": "RayTrialError: the trial reported nothing",
                                      "skipped": False, "wall_time_s": 0.0, "final": {}})


def run_sweep(sweep: Sweep, workers: int | None = None, backend: str = "local", progress: bool = True,
              storage: str | None = None, address: str | None = None) -> SweepOutcome:
    """Run every unfinished trial of ``sweep`` and return the records of all its trials.

    ``workers``: processes (local; default: the CPU count) or concurrent trials (Ray; default:
    as many as the cluster's CPUs allow). ``storage``: Ray Tune's storage path (default
    ``<sweep dir>/ray_results``; shared storage on a multi-node cluster). ``address``: the Ray
    cluster to join (default: ``RAY_ADDRESS``, a local ``ray start`` cluster, else a new local one).
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend: choose local or ray, got {backend!r}")
    if backend == "ray":
        try:
            import ray  # noqa: F401  (checked before anything is written)
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    sweep.directory.mkdir(parents=True, exist_ok=True)
    lock = _lock(sweep.directory)
    try:
        write_text_atomic(sweep.directory / "sweep.yaml", yaml.safe_dump(sweep.spec, sort_keys=False))
        todo = _check_finished(sweep)
        ledger = _Ledger(sweep)
        pending = {trial.name for trial in todo}
        for trial in sweep.trials:
            if trial.name not in pending:
                ledger.add(trial, run_trial(trial.config, sweep.trial_dir(trial)))  # reads the summary
        ledger.write_table()
        bar = Progress(len(sweep.trials), len(sweep.trials) - len(todo), f"sweep {sweep.name}", enabled=progress)

        def on_result(trial: Trial, record: dict) -> None:
            ledger.add(trial, record)
            bar.finished(record["status"] != "ok")
            if record["status"] != "ok":
                bar.bar.write(f"trial {trial.name} failed: {record['error']}", file=sys.stderr)

        try:
            if todo and backend == "local":
                count = workers if workers is not None else (os.cpu_count() or 1)
                _run_local(sweep, todo, min(count, len(todo)), on_result, bar)
            elif todo:
                _run_ray(sweep, todo, workers, on_result, bar, storage, address)
        finally:
            bar.close()
        return SweepOutcome(sweep.directory, ledger.records)
    finally:
        lock.close()
