"""Trials, the unit every batch runs: one validated config into one run directory. What sweeps,
tuning and benchmark suites share lives here: the trainable (:func:`run_trial`), the parts of a
batch file (override sets, seeds, string lists, the base config), trial names, the status ledger
of a batch directory and its progress line.

A trial is finished when its ``summary.json`` says ``"status": "complete"``; :func:`run_trial`
skips a finished trial and deletes and re-runs an unfinished or failed one, so any batch can be
started again after a crash. A failed trial holds ``error.json`` (one-line error + traceback)
instead of ``summary.json``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from tqdm.auto import tqdm

from causalrl.experiment.config import ConfigError, RunConfig, configs_from, one_line, read_source
from causalrl.experiment.run.batched import run_batch
from causalrl.experiment.run.rundir import is_complete, remove_unfinished, write_json_atomic, write_text_atomic
from causalrl.experiment.run.runner import run

__all__ = [
    "DEFAULT_SEED_OVERRIDES",
    "SLUG_LIMIT",
    "Ledger",
    "Progress",
    "Trial",
    "config_from_dict",
    "failed_record",
    "folder_name",
    "format_value",
    "hashed_name",
    "override_sets",
    "parse_seeds",
    "read_spec",
    "refuse_seed_overrides",
    "resolve_base",
    "run_trial",
    "run_trials",
    "seeded_overrides",
    "slug",
    "string_list",
]

#: what one seed sets when a file gives no ``seed_overrides``
DEFAULT_SEED_OVERRIDES = ("seed={seed}",)
#: the longest override slug kept whole in a name; longer ones are cut and hashed
SLUG_LIMIT = 60


# --- errors and configs -----------------------------------------------------------------------
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


# --- the trainable: one trial, shared by every backend, by tune and by bench ------------------
def run_trial(config: RunConfig | dict, trial_dir: str | Path) -> dict:
    """Run one trial into ``trial_dir`` and return its record; never raises for a failing run.

    A finished ``trial_dir`` is left alone (``skipped``); an unfinished or failed one is deleted
    and run again. A run that raises leaves ``error.json`` with the error line and traceback.
    The record holds ``status`` (ok | failed), ``error``, ``wall_time_s``, ``skipped`` and
    ``final`` (the summary's final metrics).
    """
    trial_dir = Path(trial_dir)
    if is_complete(trial_dir):
        summary = json.loads((trial_dir / "summary.json").read_text())
        return {"status": "ok", "error": "", "skipped": True, "wall_time_s": summary.get("wall_time_s", 0.0),
                "final": summary.get("final", {})}
    try:  # under the trial's lock: a live run or --resume of it keeps its directory (docs/runner.md, the lock)
        remove_unfinished(trial_dir)
    except ValueError as error:  # in use, or a link/file where the trial's folder belongs: left untouched
        return failed_record(one_line(error))
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


def run_trials(configs: list[RunConfig | dict], trial_dirs: list[str | Path], batched: bool = False) -> list[dict]:
    """Run trials and return their records: one after another, or with ``batched`` as one process
    training every seed at once (``vectorize_seeds``; configs equal but for ``seed``, directories
    in one folder; :func:`causalrl.experiment.run.batched.run_batch`). Finished trials are skipped
    and unfinished ones deleted and run again, as by :func:`run_trial`; never raises."""
    if not batched:
        return [run_trial(config, trial_dir) for config, trial_dir in zip(configs, trial_dirs)]
    dirs = [Path(trial_dir) for trial_dir in trial_dirs]
    records: dict[int, dict] = {index: run_trial(configs[index], dirs[index])
                                for index in range(len(dirs)) if is_complete(dirs[index])}  # skipped
    todo = [index for index in range(len(dirs)) if index not in records]
    try:
        for index in todo:
            remove_unfinished(dirs[index])
    except ValueError as error:  # in use, or not a folder: left untouched
        return [records.get(index, failed_record(one_line(error))) for index in range(len(dirs))]
    _limit_threads()
    started = time.perf_counter()
    try:
        batch = [config if isinstance(config, RunConfig) else config_from_dict(config)
                 for config in (configs[index] for index in todo)]
        results = run_batch(batch, [dirs[index] for index in todo]) if todo else []
    except Exception as error:  # every seed of the batch not finished by then failed with it
        line = one_line(error)
        for index in todo:
            if is_complete(dirs[index]):
                records[index] = run_trial(configs[index], dirs[index])
            else:
                _write_error(configs[index], dirs[index], line)
                records[index] = {**failed_record(line), "wall_time_s": round(time.perf_counter() - started, 3)}
    else:
        wall = round(time.perf_counter() - started, 3)
        records.update({index: {"status": "ok", "error": "", "skipped": False, "wall_time_s": wall,
                                "final": result.summary.get("final", {})} for index, result in zip(todo, results)})
    return [records[index] for index in range(len(dirs))]


def _write_error(config: RunConfig | dict, trial_dir: Path, line: str) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    data = config.to_dict() if isinstance(config, RunConfig) else config
    if not (trial_dir / "config.yaml").exists():
        write_text_atomic(trial_dir / "config.yaml", yaml.safe_dump(data, sort_keys=False))
    write_json_atomic(trial_dir / "error.json", {"status": "failed", "error": line, "traceback": traceback.format_exc()})


def failed_record(error: str) -> dict:
    """The record of a trial that never reached :func:`run_trial`'s own bookkeeping (its worker
    process died, Ray lost it)."""
    return {"status": "failed", "error": error, "skipped": False, "wall_time_s": 0.0, "final": {}}


@dataclass(frozen=True)
class Trial:
    """One (override set, agent, seed): a run directory ``<agent>__<slug>__s<seed>``."""

    name: str
    agent: str
    seed: int
    overrides: tuple[str, ...]
    config: RunConfig


# --- the parts of a batch file ----------------------------------------------------------------
def format_value(value: Any) -> str:
    """A value as the right-hand side of a ``key=value`` override (YAML flow style)."""
    return value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def override_sets(spec: Any, label: str) -> list[tuple[str, ...]]:
    """The override sets of a sweep's ``overrides`` (``grid`` product, then ``list``); none: one empty set."""
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
            sets.append(tuple(f"{key}={format_value(value)}" for key, value in zip(keys, values)))
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


def slug(overrides: tuple[str, ...] | list[str]) -> str:
    """A folder-name part for an override set: ``exploration-0.5_window-10`` (``base`` for none)."""
    if not overrides:
        return "base"
    parts = []
    for text in overrides:
        key, _, value = text.partition("=")
        key = re.sub(r"^(agent\.|agents\.[^.]+\.)", "", key)  # the trial name already has the agent
        parts.append(re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{key}-{value}").strip("_"))
    return "_".join(parts)


def folder_name(name: str) -> str:
    """``name`` (an agent: ``csl-ucb``, or a plugin's ``mypkg.learners:Greedy``) as a folder-name
    part: characters other than letters, digits, ``_.-`` become ``-``, as in run directory names
    (a colon breaks scp and Windows paths)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def hashed_name(text: str, overrides: tuple[str, ...] | list[str]) -> str:
    """A name cut short: the first 40 characters of ``text`` and a hash of the overrides."""
    return f"{text[:40]}-{hashlib.sha1(' '.join(overrides).encode()).hexdigest()[:8]}"


def parse_seeds(raw: Any, label: str, key: str = "seeds") -> list[int]:
    """A list of seeds from a list of non-negative integers or a count n (0..n-1); None: [0]."""
    if raw is None:
        return [0]
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise ConfigError(f"{label}: {key} must be a positive count or a list of seeds, got {raw}")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw):
        if len(set(raw)) != len(raw):
            raise ConfigError(f"{label}: {key} has duplicates: {raw}")
        return list(raw)
    raise ConfigError(f"{label}: {key} must be a count or a list of non-negative integers, got {raw!r}")


def string_list(raw: Any, key: str, label: str) -> list[str]:
    """A list of ``key=value`` strings (one string is a list of one; None: empty)."""
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


def read_spec(source: str | Path | dict, keys: dict[str, str], label: str | None = None) -> tuple[dict, str, Path | None]:
    """The raw mapping of a batch file, preset or inline mapping, its label and its folder (None:
    a preset or a mapping; their relative paths are relative to the current folder)."""
    if isinstance(source, dict):
        raw, label, folder = dict(source), label or "inline mapping", None
    else:
        raw, label = read_source(source)
        folder = Path(label).parent if not label.startswith("preset ") else None
    for key in raw:
        if key not in keys:
            raise ConfigError(f"{label}: unknown key {key!r}; known keys: {', '.join(sorted(keys))}")
    return raw, label, folder


def refuse_seed_overrides(fixed: list[str], sets: list[tuple[str, ...]], label: str) -> None:
    """A batch's seeds come from ``seeds`` (through ``seed_overrides``), which every trial sets
    last: a ``seed`` in ``fixed`` or in the overrides would be silently replaced, so it is refused."""
    for where, overrides in [("fixed", fixed)] + [("overrides", list(entry)) for entry in sets]:
        for text in overrides:
            if text.partition("=")[0].strip() == "seed":
                raise ConfigError(f"{label}: {where} sets {text!r}, but each trial's seed comes from `seeds` "
                                  "(e.g. seeds: [5, 6]); move the values there")


def seeded_overrides(templates: list[str], seed: int) -> list[str]:
    """The ``seed_overrides`` templates with ``{seed}`` replaced."""
    return [template.replace("{seed}", str(seed)) for template in templates]


# --- the status files and the progress line of a batch ----------------------------------------
class Ledger:
    """A batch directory's status files, written by the driver process only: ``trials.jsonl``
    (one line per finished attempt) and ``trials.csv`` (the current status of every trial)."""

    COLUMNS: ClassVar[list[str]] = ["trial", "agent", "seed", "overrides", "status", "error", "wall_time_s", "node"]

    def __init__(self, directory: Path, trials: list[Trial]):
        self.directory = directory
        self.trials = trials
        self.records: dict[str, dict] = {}
        self.running: dict[str, str] = {}  # trial name -> the node its attempt runs on (Ray)

    def add(self, trial: Trial, record: dict) -> None:
        self.records[trial.name] = record
        self.running.pop(trial.name, None)
        if not record.get("skipped"):
            line = {"trial": trial.name, "status": record["status"], "error": record["error"],
                    "wall_time_s": record["wall_time_s"], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self._append({**line, "node": record["node"]} if "node" in record else line)
        self.write_table()

    def logged_ok(self) -> set[str]:
        """The trials with an ``ok`` line in ``trials.jsonl`` (a driver killed after a trial's
        summary and before its line left none)."""
        path = self.directory / "trials.jsonl"
        lines = path.read_text().splitlines() if path.is_file() else []
        names = set()
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut by a kill
                continue
            if isinstance(entry, dict) and entry.get("status") == "ok":
                names.add(entry.get("trial"))
        return names

    def started(self, trial: Trial, node: str) -> None:
        """An attempt runs on ``node`` (Ray): ``running`` in ``trials.csv`` until its record comes."""
        self.running[trial.name] = node
        self.write_table()

    def retried(self, trial: Trial, node: str, error: str) -> None:
        """A lost attempt that runs again (a Ray node or worker died): one ``retried`` line."""
        self.running.pop(trial.name, None)
        self._append({"trial": trial.name, "status": "retried", "error": error, "wall_time_s": 0.0,
                      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "node": node})

    def _append(self, line: dict) -> None:
        with open(self.directory / "trials.jsonl", "a") as handle:
            handle.write(json.dumps(line) + "\n")

    def write_table(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.COLUMNS)
        writer.writeheader()
        for trial in self.trials:
            record = self.records.get(trial.name, {"status": "pending", "error": "", "wall_time_s": ""})
            if trial.name in self.running:
                record = {"status": "running", "error": "", "wall_time_s": "", "node": self.running[trial.name]}
            writer.writerow({"trial": trial.name, "agent": trial.agent, "seed": trial.seed,
                             "overrides": " ".join(trial.overrides), "status": record["status"],
                             "error": record["error"], "wall_time_s": record["wall_time_s"],
                             "node": record.get("node", "")})
        write_text_atomic(self.directory / "trials.csv", buffer.getvalue())


class Progress:
    """One tqdm line: finished/total, running, failed, rate and ETA (stderr; off when disabled)."""

    def __init__(self, total: int, done: int, label: str, enabled: bool = True, unit: str = "trial"):
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

    def write(self, text: str) -> None:
        """A line above the progress line (stderr)."""
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
