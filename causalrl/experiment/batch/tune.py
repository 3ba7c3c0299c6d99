"""Hyperparameter search with Optuna: declared ranges, pruning on the running mean over seeds,
journal-file storage (one host) or an RDB URL (many hosts), resumable studies, and a held-out
evaluation of the best configuration against the default.

A tune file (YAML; a path or a shipped ``tune-*`` preset)::

    name: ucb-exploration          # the tune directory is <output_dir>/tune/<name>/
    description: free text
    base: default                  # preset name, YAML path (relative to this file) or an inline config
    fixed: [agents=ucb]            # overrides applied to every run; exactly one agent must remain
    search:                        # dotted override key -> range
      agents.ucb.exploration: {low: 0.01, high: 4.0, log: true}   # float (int when low/high are ints)
      agents.ucb.window: {choices: [null, 50, 100]}                # categorical
    objective: regret/cumulative   # a final metric of summary.json
    direction: minimize            # or maximize
    seeds: [0, 1, 2]               # search seeds: a trial's value is the mean over them
    held_out_seeds: [100, 101, 102]  # the best and the default configs are compared on these
    seed_overrides: [seed={seed}]  # what one seed sets (default); add env.instance_seed={seed}
    n_trials: 20                   # total finished trials of the study (all processes together)
    sampler: {type: tpe, seed: 0, n_startup_trials: 8}   # tpe | random
    pruner: {type: median, n_startup_trials: 5, n_warmup_steps: 0}  # median | none
    output_dir: runs

A trial runs its seeds one after another (each an ordinary run directory under
``trials/<agent>__t<number>__s<seed>``) and reports the running mean of the objective after each
seed as an intermediate value (step = seeds done - 1), so the median pruner stops a poor trial
after its first seeds. Failed runs fail their trial (recorded with the error line as the trial's
``error`` attribute); the study goes on.

Storage: ``<output_dir>/tune/<name>/study.log`` (Optuna's JournalStorage on a file) by default;
``--storage URL`` (e.g. ``postgresql://user:pw@host/db``) for many hosts, with heartbeats so a
dead worker's trial is failed and retried. Re-running ``causalrl tune`` on the same storage
resumes: a trial left running by a process that died on this host is failed and re-queued with
the same parameters, and only the missing trials are run. Each process stops once the study holds
``n_trials`` finished (complete, pruned or failed-with-error) trials.

Outputs next to the journal: ``best.yaml`` (the best configuration as a runnable experiment
file), ``heldout/`` (run directories of best and default on the held-out seeds) and
``result.json`` (best parameters, search value, held-out objective of best and default).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Any

import yaml
from tqdm.auto import tqdm

from causalrl.experiment.batch.trials import (
    DEFAULT_SEED_OVERRIDES,
    Progress,
    folder_name,
    format_value,
    parse_seeds,
    read_spec,
    resolve_base,
    run_trial,
    seeded_overrides,
    string_list,
)
from causalrl.experiment.config import (
    ConfigError,
    RunConfig,
    configs_from,
)
from causalrl.experiment.run.rundir import (
    DirectoryInUse,
    UnsafeRunDirectory,
    process_alive,
    remove_unfinished,
    write_json_atomic,
)

__all__ = ["TUNE_KEYS", "TuneOutcome", "TuneSpec", "load_tune", "run_tune"]

TUNE_KEYS = {
    "name": "the tune directory's name under <output_dir>/tune/ and the study name",
    "description": "free text",
    "base": "preset name, YAML path or inline experiment config",
    "fixed": "overrides applied to every run",
    "search": "dotted key -> {low, high, log, step, type} or {choices: [...]}",
    "objective": "final metric to optimise (default regret/cumulative)",
    "direction": "minimize or maximize (default minimize)",
    "seeds": "search seeds (list or count)",
    "held_out_seeds": "seeds for the final best-vs-default comparison",
    "seed_overrides": "overrides one seed sets, with {seed} replaced (default: [seed={seed}])",
    "n_trials": "total finished trials of the study",
    "sampler": "{type: tpe|random, seed, n_startup_trials}",
    "pruner": "{type: median|none, n_startup_trials, n_warmup_steps}",
    "output_dir": "parent of tune/<name> (default: runs)",
}


def _optuna():
    try:
        import optuna  # deferred: Optuna is an optional extra
    except ImportError:
        raise ConfigError("causalrl tune needs Optuna: pip install -e '.[optuna]'") from None
    return optuna


@dataclass
class TuneSpec:
    name: str
    directory: Path
    base: dict
    fixed: list[str]
    search: dict[str, dict]
    objective: str
    direction: str
    seeds: list[int]
    held_out_seeds: list[int]
    seed_templates: list[str]
    n_trials: int
    sampler: dict
    pruner: dict
    label: str

    def config(self, overrides: list[str], seed: int | None) -> RunConfig:
        """The one RunConfig for these search overrides and seed (None: the base's own seed)."""
        extra = seeded_overrides(self.seed_templates, seed) if seed is not None else []
        try:
            configs = configs_from(self.base, self.fixed + list(overrides) + extra)
        except ConfigError as error:
            raise ConfigError(f"{self.label}: [{' '.join(overrides) or 'default'}]: {error}") from None
        if len(configs) != 1:
            names = ", ".join(config.agent.name for config in configs)
            raise ConfigError(f"{self.label}: tune needs exactly one agent, got {names}; add `agents=NAME` to fixed")
        return replace(configs[0], progress_bar=False)


def _distribution(key: str, raw: Any, label: str) -> dict:
    where = f"{label}: search.{key}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: give {{low, high[, log, step, type]}} or {{choices: [...]}}")
    if "choices" in raw:
        if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
            raise ConfigError(f"{where}: choices must be a non-empty list and the only key")
        return {"choices": list(raw["choices"])}
    unknown = set(raw) - {"low", "high", "log", "step", "type"}
    if unknown or "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where}: give low and high (and optionally log, step, type), got {sorted(raw)}")
    low, high = raw["low"], raw["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise ConfigError(f"{where}: low and high must be numbers with low < high, got {low!r}, {high!r}")
    kind = raw.get("type", "int" if isinstance(low, int) and isinstance(high, int) else "float")
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}: type must be int or float, got {kind!r}")
    log = bool(raw.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    return {"low": low, "high": high, "log": log, "step": raw.get("step"), "type": kind}


def load_tune(source: str | Path, output_dir: str | Path | None = None) -> TuneSpec:
    """Read a tune file or preset and validate it (every range's endpoints build a valid config)."""
    raw, label, folder = read_spec(source, TUNE_KEYS)
    name = raw.get("name") or Path(str(source)).stem
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or Path(name).name != name:
        raise ConfigError(f"{label}: name must be a folder name (one path component, not '.' or '..'), got {name!r}")
    search_raw = raw.get("search")
    if not isinstance(search_raw, dict) or not search_raw:
        raise ConfigError(f"{label}: search must map dotted override keys to ranges, e.g. "
                          "agents.ucb.exploration: {low: 0.01, high: 4, log: true}")
    search = {key: _distribution(key, value, label) for key, value in search_raw.items()}
    direction = raw.get("direction", "minimize")
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"{label}: direction must be minimize or maximize, got {direction!r}")
    n_trials = raw.get("n_trials", 20)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise ConfigError(f"{label}: n_trials must be a positive integer, got {n_trials!r}")
    sampler = dict(raw.get("sampler") or {})
    pruner = dict(raw.get("pruner") or {})
    if sampler.get("type", "tpe") not in ("tpe", "random") or set(sampler) - {"type", "seed", "n_startup_trials"}:
        raise ConfigError(f"{label}: sampler must be {{type: tpe|random, seed, n_startup_trials}}, got {sampler}")
    if pruner.get("type", "median") not in ("median", "none") or set(pruner) - {"type", "n_startup_trials", "n_warmup_steps"}:
        raise ConfigError(f"{label}: pruner must be {{type: median|none, n_startup_trials, n_warmup_steps}}, got {pruner}")
    objective = raw.get("objective", "regret/cumulative")
    if not isinstance(objective, str):
        raise ConfigError(f"{label}: objective must be a metric name such as regret/cumulative")
    parent = Path(output_dir if output_dir is not None else raw.get("output_dir", "runs"))
    spec = TuneSpec(
        name=name, directory=parent / "tune" / name, base=resolve_base(raw.get("base"), folder, label),
        fixed=string_list(raw.get("fixed"), "fixed", label), search=search, objective=objective,
        direction=direction, seeds=parse_seeds(raw.get("seeds"), label),
        held_out_seeds=parse_seeds(raw.get("held_out_seeds", [1000, 1001, 1002]), label, "held_out_seeds"),
        seed_templates=string_list(raw.get("seed_overrides"), "seed_overrides", label) or list(DEFAULT_SEED_OVERRIDES),
        n_trials=n_trials, sampler=sampler, pruner=pruner, label=label,
    )
    overlap = set(spec.seeds) & set(spec.held_out_seeds)
    if overlap:
        raise ConfigError(f"{label}: held_out_seeds must not repeat search seeds ({sorted(overlap)})")
    for key, dist in search.items():  # both ends of every range must give a valid config
        for value in (dist["choices"] if "choices" in dist else (dist["low"], dist["high"])):
            spec.config([f"{key}={format_value(value)}"], spec.seeds[0])
    spec.config([], spec.seeds[0])
    return spec


def _suggest(trial, key: str, dist: dict):
    if "choices" in dist:
        return trial.suggest_categorical(key, dist["choices"])
    if dist["type"] == "int":
        return trial.suggest_int(key, int(dist["low"]), int(dist["high"]), step=int(dist["step"] or 1), log=dist["log"])
    return trial.suggest_float(key, float(dist["low"]), float(dist["high"]), step=dist["step"], log=dist["log"])


def _overrides(params: dict) -> list[str]:
    return [f"{key}={format_value(value)}" for key, value in params.items()]


class _TrialFailed(Exception):
    """A run of the trial failed; the trial is marked failed and the study goes on."""


def _open_study(spec: TuneSpec, storage: str | None, study_name: str | None):
    optuna = _optuna()
    many_hosts = storage is not None and "://" in storage
    if many_hosts:
        # heartbeats: a trial whose process stops beating for grace_period is failed and retried once
        backend = optuna.storages.RDBStorage(
            storage, heartbeat_interval=30, grace_period=120,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1))
    else:
        path = Path(storage) if storage else spec.directory / "study.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    name = study_name or spec.name
    # peek at the study to derive this process's sampler seed (resumes and parallel workers must
    # not replay the first process's proposals)
    try:
        existing = len(optuna.load_study(study_name=name, storage=backend).trials)
    except KeyError:
        existing = 0
    seed = spec.sampler.get("seed", 0)
    if seed is not None:
        token = f"{seed}:{existing}" + (f":{socket.gethostname()}:{os.getpid()}" if many_hosts else "")
        seed = int(hashlib.sha1(token.encode()).hexdigest()[:8], 16) if (existing or many_hosts) else seed
    if spec.sampler.get("type", "tpe") == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.sampler.get("n_startup_trials", 8),
                                             constant_liar=True)
    if spec.pruner.get("type", "median") == "none":
        pruner = optuna.pruners.NopPruner()
    else:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=spec.pruner.get("n_startup_trials", 5),
                                             n_warmup_steps=spec.pruner.get("n_warmup_steps", 0))
    study = optuna.create_study(study_name=name, storage=backend, sampler=sampler, pruner=pruner,
                                direction=spec.direction, load_if_exists=True)
    if study.direction.name.lower() != spec.direction:
        raise ConfigError(f"study {name!r} in this storage was created with direction {study.direction.name.lower()}")
    return study


def _counted(study) -> list:
    """Trials that count towards n_trials: complete, pruned, or failed with a recorded error
    (a trial failed because its process died is not counted; it is re-queued instead)."""
    from optuna.trial import TrialState  # deferred with optuna itself (optional)

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and "error" in t.user_attrs)]


def _requeue_stale(spec: TuneSpec, study) -> int:
    """Fail and re-queue trials left running by a dead process on this host (journal storage has
    no heartbeat). Returns how many were re-queued."""
    from optuna.trial import TrialState  # deferred with optuna itself (optional)

    host, count = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or pid is None or pid == os.getpid() or process_alive(pid):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        for run_dir in (spec.directory / "trials").glob(f"*__t{trial.number:04d}__s*"):
            try:
                remove_unfinished(run_dir)  # under the run's lock, never through a link
            except (DirectoryInUse, UnsafeRunDirectory):
                continue
        count += 1
    return count


@dataclass
class TuneOutcome:
    directory: Path
    best_params: dict
    best_value: float | None
    held_out: dict  # label -> {"seeds": [...], "values": [...], "mean": float}
    text: str


def _evaluate(spec: TuneSpec, label: str, overrides: list[str], bar=None) -> dict:
    values, errors = [], []
    for seed in spec.held_out_seeds:
        config = spec.config(overrides, seed)
        if bar is not None:
            bar.set_postfix_str(f"{label} seed {seed}")
        record = run_trial(config, spec.directory / "heldout" / label / f"{folder_name(config.agent.name)}__s{seed}")
        if bar is not None:
            bar.update(1)
        if record["status"] != "ok" or spec.objective not in record["final"]:
            errors.append(record["error"] or f"no metric {spec.objective!r}")
            continue
        values.append(float(record["final"][spec.objective]))
    return {"overrides": overrides, "seeds": spec.held_out_seeds, "values": values,
            "mean": fmean(values) if values else None, "errors": errors}


def _search(spec: TuneSpec, study, target: int, progress: bool) -> None:
    """Run trials until the study holds ``target`` counted trials (all processes together)."""
    optuna = _optuna()
    from optuna.trial import TrialState  # deferred with optuna itself (optional)

    agent = folder_name(spec.config([], spec.seeds[0]).agent.name)
    counted = _counted(study)
    bar = Progress(target, min(len(counted), target), f"tune {spec.name}", enabled=progress)
    bar.failed = sum(1 for t in counted if t.state == TrialState.FAIL)
    host, pid = socket.gethostname(), os.getpid()

    def objective(trial) -> float:
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", pid)
        overrides = _overrides({key: _suggest(trial, key, dist) for key, dist in spec.search.items()})
        values = []
        for step, seed in enumerate(spec.seeds):
            config = spec.config(overrides, seed)
            record = run_trial(config, spec.directory / "trials" / f"{agent}__t{trial.number:04d}__s{seed}")
            if record["status"] == "ok" and spec.objective not in record["final"]:
                record = {**record, "status": "failed",
                          "error": f"KeyError: no final metric {spec.objective!r}; have {', '.join(record['final'])}"}
            if record["status"] != "ok":
                trial.set_user_attr("error", f"seed {seed}: {record['error']}")
                raise _TrialFailed(record["error"])
            values.append(float(record["final"][spec.objective]))
            trial.report(fmean(values), step)  # intermediate value: running mean over seeds
            if trial.should_prune():
                raise optuna.TrialPruned()
        return fmean(values)

    def after_trial(study, trial) -> None:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            bar.finished(trial.state == TrialState.FAIL)
            if trial.state == TrialState.FAIL:
                bar.bar.write(f"trial {trial.number} failed: {trial.user_attrs.get('error', '')}")
            bar.started()
        if len(_counted(study)) >= target:
            study.stop()

    try:
        if len(counted) < target:
            bar.started()
            study.optimize(objective, n_trials=None, callbacks=[after_trial], catch=(_TrialFailed,))
    finally:
        bar.close()


def _held_out_lines(spec: TuneSpec, held_out: dict) -> list[str]:
    lines = []
    for label, result in held_out.items():
        shown = "n/a" if result["mean"] is None else f"{result['mean']:.6g}"
        lines.append(f"held-out {label:<8} {spec.objective} mean = {shown} over seeds {spec.held_out_seeds}"
                     + (f" ({len(result['errors'])} failed: {result['errors'][0]})" if result["errors"] else ""))
    best_mean, default_mean = held_out["best"]["mean"], held_out["default"]["mean"]
    if best_mean is not None and default_mean is not None:
        better = best_mean < default_mean if spec.direction == "minimize" else best_mean > default_mean
        lines.append(f"best is {'better' if better else 'not better'} than the default on held-out seeds "
                     f"({best_mean:.6g} vs {default_mean:.6g})")
    return lines


def run_tune(spec: TuneSpec, n_trials: int | None = None, storage: str | None = None, study_name: str | None = None,
             evaluate: bool = True, progress: bool = True) -> TuneOutcome:
    """Run (or resume) the study until it holds ``n_trials`` counted trials, then evaluate the best
    configuration and the default on the held-out seeds."""
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.trial import TrialState  # deferred with optuna itself (optional)

    target = n_trials if n_trials is not None else spec.n_trials
    if target < 1:
        raise ConfigError(f"--n-trials: must be >= 1, got {target}")
    spec.directory.mkdir(parents=True, exist_ok=True)
    study = _open_study(spec, storage, study_name)
    requeued = _requeue_stale(spec, study)
    _search(spec, study, target, progress)

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    counted = _counted(study)
    states = {state: sum(1 for t in counted if t.state == state) for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    lines = [f"study {study.study_name}: {len(counted)} trials ({states[TrialState.COMPLETE]} complete, "
             f"{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed)"
             + (f"; re-queued {requeued} interrupted" if requeued else "")]
    if not complete:
        lines.append("no complete trial yet")
        return TuneOutcome(spec.directory, {}, None, {}, "\n".join(lines))
    best = study.best_trial
    best_overrides = _overrides(best.params)
    lines.append(f"best trial {best.number}: {spec.objective} = {best.value:.6g} (mean over search seeds {spec.seeds})")
    lines.append(f"  {' '.join(best_overrides)}")
    best_config = spec.config(best_overrides, None)
    (spec.directory / "best.yaml").write_text(
        f"# best of study {study.study_name} (trial {best.number}); run it with `causalrl run <this file>`\n"
        + yaml.safe_dump(replace(best_config, progress_bar=True).to_dict(), sort_keys=False))
    held_out = {}
    if evaluate:
        with tqdm(total=2 * len(spec.held_out_seeds), desc="held-out evaluation", unit="run",
                  disable=not progress) as bar:
            held_out = {"best": _evaluate(spec, f"best-t{best.number:04d}", best_overrides, bar),
                        "default": _evaluate(spec, "default", [], bar)}
        lines += _held_out_lines(spec, held_out)
    write_json_atomic(spec.directory / "result.json", {
        "study": study.study_name, "objective": spec.objective, "direction": spec.direction,
        "trials": len(counted), "best_trial": best.number, "best_params": best.params, "best_value": best.value,
        "best_overrides": best_overrides, "held_out": held_out,
    })
    lines.append(f"best config: {spec.directory / 'best.yaml'}  result: {spec.directory / 'result.json'}")
    return TuneOutcome(spec.directory, dict(best.params), best.value, held_out, "\n".join(lines))
