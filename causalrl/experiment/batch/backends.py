"""Where a batch's trials run: local worker processes, or a Ray cluster through Ray Tune. Both run
the same trainable (:func:`causalrl.experiment.batch.trials.run_trial`) and report each trial's
record through ``on_result(trial, record)`` as it finishes; each run seeds everything from its
config, so results do not depend on the backend or the worker count.

On Ray each trial's record also names the node that ran it (``node``: Ray's node id, in
``trials.jsonl``). A trial whose worker or node is lost is run again from the start, up to
:data:`RAY_RETRIES` times (its unfinished run directory is deleted first, as on any restart), and
the lost attempt is a ``retried`` line in ``trials.jsonl``; a trial finishes once.

A job is a ``(trial, trial_dir)`` pair. Both backends run groups of jobs, each group in one
process (on Ray: one Ray trial): one job each, or with ``batched`` the seeds of one config as one
batch (``vectorize_seeds``; :func:`causalrl.experiment.batch.trials.run_trials`).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from causalrl.experiment.batch.trials import Ledger, Progress, Trial, failed_record, run_trials
from causalrl.experiment.config import ConfigError, one_line

__all__ = ["BACKENDS", "RAY_RETRIES", "Job", "check_backend", "run_local", "run_ray"]

BACKENDS = ("local", "ray")
Job = tuple[Trial, Path]
OnResult = Callable[[Trial, dict], None]
#: how many times Ray runs a trial again whose worker or node was lost
RAY_RETRIES = 3


def check_backend(backend: str) -> None:
    """Refuse an unknown backend, or Ray when it is not installed, before anything is written."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: choose local or ray, got {backend!r}")
    if backend == "ray":
        _ray()


def _ray():
    try:  # deferred: Ray is an optional extra, and heavy
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    return ray


# --- local worker processes -------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the batch process dies (even by SIGKILL), so a restarted
    batch never races an orphaned worker (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _run_group(group: list[Job], batched: bool) -> list[dict]:
    return run_trials([trial.config for trial, _ in group], [trial_dir for _, trial_dir in group], batched)


def run_local(groups: list[list[Job]], workers: int, on_result: OnResult, progress: Progress,
              batched: bool = False) -> None:
    """Run the groups of jobs in this process (``workers`` <= 1) or in a pool of ``workers``
    processes, each group in one process (with ``batched``, its seeds as one batch)."""
    if workers <= 1:
        for group in groups:
            progress.started(len(group))
            for (trial, _), record in zip(group, _run_group(group, batched)):
                on_result(trial, record)
        return
    # spawn: the parent has torch imported, and forking a process with torch's threads is unsafe
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_run_group, group, batched): group for group in groups}
        progress.started(sum(len(group) for group in groups[:workers]))
        remaining = len(groups)
        for future in as_completed(futures):
            group = futures[future]
            try:
                records = future.result()
            except Exception as error:  # the worker process itself died (BrokenProcessPool, ...)
                records = [failed_record(one_line(error))] * len(group)
            remaining -= 1
            progress.running = min(workers, remaining) + len(group)
            for (trial, _), record in zip(group, records):
                on_result(trial, record)


# --- Ray Tune ---------------------------------------------------------------------------------
def _ray_trainable(config: dict) -> None:
    """The Ray Tune function trainable: the same run_trials as the local backend, for one group
    (one trial, or with ``batched`` the seeds of one config in this one process)."""
    import ray  # deferred: Ray is optional (this runs in a Ray worker)
    from ray import tune

    node, group = ray.get_runtime_context().get_node_id(), config["trial"]
    tune.report({"trial_node": node})  # the driver learns where the trial runs before it ends
    records = run_trials([t["config"] for t in group["trials"]], [t["dir"] for t in group["trials"]], group["batched"])
    tune.report({"trial_node": node, "trial_records": json.dumps([{**record, "node": node} for record in records])})


def _group_name(group: list[Job]) -> str:
    """A group's Ray trial name: its trial's, or for a batch its trials' without the seed and the seeds."""
    if len(group) == 1:
        return group[0][0].name
    return f"{group[0][0].name.rsplit('__', 1)[0]}__s{'-'.join(str(trial.seed) for trial, _ in group)}"


def run_ray(groups: list[list[Job]], name: str, directory: Path, workers: int | None, on_result: OnResult,
            progress: Progress, storage: str | None = None, address: str | None = None,
            ledger: Ledger | None = None, batched: bool = False) -> None:
    """Run the groups of jobs as one Ray Tune grid named ``name`` (storage: ``storage``, default
    ``<directory>/ray_results``) on the cluster at ``address`` (default: ``RAY_ADDRESS``, a local
    ``ray start`` cluster, else a new local one), at most ``workers`` at once, each group as one
    Ray trial (with ``batched``, its seeds as one batch). A trial whose worker or node is lost runs
    again (up to :data:`RAY_RETRIES` times). ``ledger`` hears where each attempt runs
    (``trials.csv``: running, node) and of each lost attempt (``trials.jsonl``)."""
    ray = _ray()
    from ray import tune  # deferred with ray itself

    by_name = {_group_name(group): group for group in groups}
    nodes: dict[str, str] = {}  # group name -> the node its current attempt runs on

    class _Report(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.started(len(by_name.get(trial.config["trial"]["name"], [])))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            name = trial.config["trial"]["name"]
            nodes[name] = result.get("trial_node", "")
            if name in by_name and "trial_records" not in result and ledger is not None:
                for job, _ in by_name[name]:
                    ledger.started(job, nodes[name])
            if name in by_name and "trial_records" in result:
                for (job, _), record in zip(by_name.pop(name), json.loads(result["trial_records"])):
                    on_result(job, record)

        def on_trial_recover(self, iteration, trials, trial, **info):
            name = trial.config["trial"]["name"]
            if name in by_name:
                error = "RayTrialError: the trial's worker or node was lost; running it again"
                progress.write(f"trial {name}: {error}")
                for job, _ in by_name[name] if ledger is not None else []:
                    ledger.retried(job, nodes.get(name, ""), error)

        def on_trial_error(self, iteration, trials, trial, **info):
            name = trial.config["trial"]["name"]
            if name in by_name:  # Ray itself failed the trial (worker lost, ...)
                error = getattr(trial, "error_file", None) or "see the Ray logs"
                for job, _ in by_name.pop(name):
                    on_result(job, failed_record(f"RayTrialError: {error}"))

    # ray.init() joins RAY_ADDRESS or a `ray start` cluster on this node, else starts a local one
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    storage_path = storage or str((directory / "ray_results").resolve())
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).resolve())
    grid = [{"name": group_name, "batched": batched,
             "trials": [{"config": trial.config.to_dict(), "dir": str(trial_dir.resolve())} for trial, trial_dir in group]}
            for group_name, group in by_name.items()]
    tuner = tune.Tuner(
        tune.with_resources(_ray_trainable, {"cpu": 1}),
        param_space={"trial": tune.grid_search(grid)},
        # reuse_actors: a worker process imports the suite once and runs trial after trial, as a
        # local worker does (each run seeds everything from its config)
        tune_config=tune.TuneConfig(max_concurrent_trials=workers or None, reuse_actors=True,
                                    trial_dirname_creator=lambda trial: trial.config["trial"]["name"]),
        run_config=tune.RunConfig(name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage_path,
                                  callbacks=[_Report()], verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=RAY_RETRIES)),
    )
    try:
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    for left in list(by_name):  # anything Ray never reported
        for job, _ in by_name.pop(left):
            on_result(job, failed_record("RayTrialError: the trial reported nothing"))
