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
    vectorize_seeds: false         # true: the seeds of each config train in one process (sac only;
                                   # causalrl.experiment.run.batched), each into its own run directory
    ray_address: head-host:6379    # optional: run the trials on this Ray cluster (Ray Tune);
                                   # `causalrl sweep --ray-address` wins, `--backend local` ignores it

The sweep directory::

    runs/sweeps/<name>/
      sweep.yaml       the resolved sweep: base mapping, overrides, every trial's name and config
      trials.jsonl     one line per finished attempt: trial, status ok|failed (retried: Ray lost
                       the attempt's node or worker and runs it again), error, wall time, and on
                       Ray the node that ran it
      trials.csv       the current status of every trial (rewritten after each result; on Ray also
                       running, and the node of each running or finished trial)
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

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from causalrl.experiment.batch.backends import check_backend, run_local, run_ray
from causalrl.experiment.batch.trials import (
    DEFAULT_SEED_OVERRIDES,
    SLUG_LIMIT,
    Ledger,
    Progress,
    Trial,
    folder_name,
    hashed_name,
    override_sets,
    parse_seeds,
    read_spec,
    refuse_seed_overrides,
    resolve_base,
    run_trial,
    seeded_overrides,
    slug,
    string_list,
)
from causalrl.experiment.config import ConfigError, configs_from, parse_yaml
from causalrl.experiment.run.batched import check_batchable
from causalrl.experiment.run.rundir import is_complete, lock_directory, write_text_atomic

__all__ = ["SWEEP_KEYS", "Sweep", "SweepOutcome", "load_sweep", "resolve_backend", "run_sweep", "sweep_name"]

SWEEP_KEYS = {
    "name": "the sweep directory's name under <output_dir>/sweeps/",
    "description": "free text",
    "base": "preset name, YAML path or inline experiment config",
    "fixed": "overrides applied to every trial",
    "overrides": "grid: {key: [values]} or list: [[key=value, ...], ...]",
    "seeds": "list of seeds, or a count n (0..n-1)",
    "seed_overrides": "overrides one seed sets, with {seed} replaced (default: [seed={seed}])",
    "output_dir": "parent of sweeps/<name> (default: runs)",
    "ray_address": "the Ray cluster (host:port) that runs the trials (default: none, local workers)",
    "vectorize_seeds": "true: the seeds of each config train in one process (sac; default false)",
}


# --- the sweep definition ---------------------------------------------------------------------
@dataclass
class Sweep:
    name: str
    directory: Path
    trials: list[Trial]
    spec: dict = field(default_factory=dict)
    ray_address: str | None = None  # the file's ray_address
    vectorize_seeds: bool = False

    def groups(self, trials: list[Trial]) -> list[list[Trial]]:
        """``trials`` as the groups that run in one process each: with ``vectorize_seeds`` the
        trials whose configs differ only in seed, else one trial per group."""
        if not self.vectorize_seeds:
            return [[trial] for trial in trials]
        groups: dict[str, list[Trial]] = {}
        for trial in trials:
            groups.setdefault(json.dumps({**trial.config.to_dict(), "seed": None}, sort_keys=True), []).append(trial)
        return list(groups.values())

    def trial_dir(self, trial: Trial) -> Path:
        return self.directory / trial.name


def _check_name(name, label: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
        raise ConfigError(f"{label}: name must be letters, digits, '.', '_' or '-' (not '.' or '..'), got {name!r}")
    return name


def _own_name(raw: dict, source: str | Path | dict, label: str) -> str:
    return _check_name(raw.get("name") or ("" if isinstance(source, dict) else Path(str(source)).stem), label)


def sweep_name(source: str | Path | dict) -> str:
    """The name a sweep file, preset or mapping gives its directory (its ``name``, else the file's
    stem), read without validating its trials."""
    raw, label, _ = read_spec(source, SWEEP_KEYS)
    return _own_name(raw, source, label)


def _trial_slugs(sets: list[tuple[str, ...]]) -> list[str]:
    slugs = [slug(overrides) for overrides in sets]
    for index, (overrides, text) in enumerate(zip(sets, slugs)):
        if len(text) > SLUG_LIMIT or slugs.count(text) > 1:  # keep names short and unique
            slugs[index] = hashed_name(text, overrides)
    return slugs


def load_sweep(source: str | Path | dict, output_dir: str | Path | None = None, overrides: list[str] | tuple = (),
               seeds: list[int] | int | None = None, name: str | None = None) -> Sweep:
    """Read a sweep file, preset or mapping (a sweep file's keys) and expand it into trials,
    validating every trial's config (raises :class:`ConfigError` with a one-line message before
    anything runs).

    ``overrides`` (``causalrl sweep NAME key=value ...``) apply to every trial after the file's
    own; they name the sweep directory ``<name>__<slug>`` so that a sweep on another env never
    mixes with the file's. ``seeds`` replaces the file's seeds (a list, or a count n: 0..n-1).
    ``name`` names the sweep directory instead (``causalrl bench`` keeps the file's plain name
    inside its own folder).
    """
    raw, label, folder = read_spec(source, SWEEP_KEYS)
    sweep_overrides = [str(text) for text in overrides]
    if name is None:
        name = _own_name(raw, source, label)
        if sweep_overrides:
            name = f"{name}__{slug(tuple(sweep_overrides))}"
            name = name if len(name) <= SLUG_LIMIT + 20 else hashed_name(name, sweep_overrides)
    name = _check_name(name, label)
    base = resolve_base(raw.get("base"), folder, label)
    fixed = string_list(raw.get("fixed"), "fixed", label)
    seed_templates = string_list(raw.get("seed_overrides"), "seed_overrides", label) or list(DEFAULT_SEED_OVERRIDES)
    seeds = parse_seeds(raw.get("seeds") if seeds is None else seeds, label)
    sets = override_sets(raw.get("overrides"), label)
    refuse_seed_overrides(fixed + sweep_overrides, sets, label)
    trials: list[Trial] = []
    for entry, text in zip(sets, _trial_slugs(sets)):
        for seed in seeds:
            try:
                configs = configs_from(base, fixed + list(entry) + sweep_overrides
                                       + seeded_overrides(seed_templates, seed))
            except ConfigError as error:
                raise ConfigError(f"{label}: trial [{' '.join(entry) or 'base'}] seed {seed}: {error}") from None
            for config in configs:
                config = replace(config, progress_bar=False)
                trials.append(Trial(f"{folder_name(config.agent.name)}__{text}__s{seed}", config.agent.name, seed, entry,
                                    config))
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
    vectorize = raw.get("vectorize_seeds", False)
    if not isinstance(vectorize, bool):
        raise ConfigError(f"{label}: vectorize_seeds must be true or false, got {vectorize!r}")
    sweep = Sweep(name, parent / "sweeps" / name, trials, spec, _ray_address(raw.get("ray_address"), label), vectorize)
    if vectorize:
        for group in sweep.groups(trials):
            check_batchable([trial.config for trial in group], f"{label}: vectorize_seeds")
    return sweep


def _ray_address(raw, label: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or any(char.isspace() for char in raw):
        raise ConfigError(f"{label}: ray_address must be a Ray cluster address such as head-host:6379 "
                          f"(or auto), got {raw!r}")
    return raw


def resolve_backend(sweep: Sweep, backend: str | None, address: str | None) -> tuple[str, str | None]:
    """The backend and Ray address a sweep runs with: ``address`` (``--ray-address``) or the file's
    ``ray_address`` means Ray unless ``backend`` says otherwise; ``--backend local`` ignores the
    file's address and refuses one given with it."""
    if backend == "local" and address is not None:
        raise ConfigError("--ray-address: runs the sweep on Ray; drop --backend local or the address")
    if backend is None:
        backend = "ray" if (address or sweep.ray_address) else "local"
    return backend, (address or sweep.ray_address) if backend == "ray" else None


# --- running ----------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    directory: Path
    records: dict[str, dict]  # trial name -> record (see run_trial)

    @property
    def failed(self) -> dict[str, dict]:
        return {name: record for name, record in self.records.items() if record["status"] != "ok"}


def _check_finished(sweep: Sweep) -> list[Trial]:
    """Trials still to run; raises if a finished trial was run with a different config."""
    todo = []
    for trial in sweep.trials:
        trial_dir = sweep.trial_dir(trial)
        if not is_complete(trial_dir):
            todo.append(trial)
            continue
        try:
            stored = parse_yaml((trial_dir / "config.yaml").read_text(), str(trial_dir / "config.yaml"))
        except (OSError, ValueError):  # ValueError: a ConfigError (malformed, too large)
            stored = None
        if stored != trial.config.to_dict():
            raise ConfigError(f"{trial_dir} finished with a different config than this sweep file gives; "
                              "change the sweep's `name` or delete that directory")
    return todo


def run_sweep(sweep: Sweep, workers: int | None = None, backend: str | None = None, progress: bool = True,
              storage: str | None = None, address: str | None = None) -> SweepOutcome:
    """Run every unfinished trial of ``sweep`` and return the records of all its trials.

    ``workers``: processes (local; default: the CPU count) or concurrent trials (Ray; default:
    as many as the cluster's CPUs allow). ``storage``: Ray Tune's storage path (default
    ``<sweep dir>/ray_results``; shared storage on a multi-node cluster). ``address``: the Ray
    cluster to join (default: the file's ``ray_address``, ``RAY_ADDRESS``, a local ``ray start``
    cluster, else a new local one). ``backend``: local or ray (default: ray when an address is
    given here or in the file, else local).
    """
    backend, address = resolve_backend(sweep, backend, address)
    check_backend(backend)
    sweep.directory.mkdir(parents=True, exist_ok=True)
    lock = lock_directory(sweep.directory, "sweep")  # one process per sweep directory
    try:
        write_text_atomic(sweep.directory / "sweep.yaml", yaml.safe_dump(sweep.spec, sort_keys=False))
        todo = _check_finished(sweep)
        ledger = Ledger(sweep.directory, sweep.trials)
        pending, logged = {trial.name for trial in todo}, ledger.logged_ok()
        for trial in sweep.trials:
            if trial.name not in pending:
                record = run_trial(trial.config, sweep.trial_dir(trial))  # reads the summary
                # finished, but the driver was killed before its line: the line is written now
                ledger.add(trial, record if trial.name in logged else {**record, "skipped": False})
        ledger.write_table()
        bar = Progress(len(sweep.trials), len(sweep.trials) - len(todo), f"sweep {sweep.name}", enabled=progress)

        def on_result(trial: Trial, record: dict) -> None:
            ledger.add(trial, record)
            bar.finished(record["status"] != "ok")
            if record["status"] != "ok":
                bar.write(f"trial {trial.name} failed: {record['error']}")

        groups = [[(trial, sweep.trial_dir(trial)) for trial in group] for group in sweep.groups(todo)]
        try:
            if todo and backend == "local":
                count = workers if workers is not None else (os.cpu_count() or 1)
                run_local(groups, min(count, len(groups)), on_result, bar, batched=sweep.vectorize_seeds)
            elif todo:
                run_ray(groups, sweep.name, sweep.directory, workers, on_result, bar, storage, address, ledger,
                        batched=sweep.vectorize_seeds)
        finally:
            bar.close()
        return SweepOutcome(sweep.directory, ledger.records)
    finally:
        lock.close()
