"""Seeds in one process (``vectorize_seeds: true`` in a sweep): the seeds of a SAC config train as
one BatchedSAC in one process, each seed into its own ordinary run directory that ``report`` reads
like any run; seed s gives the same numbers alone or in a batch; a batched run killed with
SIGKILL and continued with ``causalrl run --resume`` ends with every seed's progress.csv
byte-identical to an uninterrupted batched run; what cannot be batched is refused in one line."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from stable_baselines3 import SAC

from causalrl.cli import main
from causalrl.experiment.batch.sweep import load_sweep, run_sweep
from causalrl.experiment.config import ConfigError
from causalrl.experiment.run.rundir import is_complete

SWEEP = {
    "name": "batched",
    "base": {"experiment": "batched", "total_steps": 600, "log_interval": 100, "checkpoint_interval": 200,
             "env": {"id": "Pendulum-v1"},
             "agents": [{"name": "sac", "learning_starts": 100, "batch_size": 16, "buffer_size": 1000,
                         "policy_kwargs": {"net_arch": [8, 8]}, "device": "cpu"}]},
    "seeds": [0, 1, 2],
    "vectorize_seeds": True,
}


def _file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / f"{changes.get('name', 'batched')}.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, **changes}, sort_keys=False))
    return path


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "progress.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_seeds_train_in_one_process_into_ordinary_run_directories(tmp_path, capsys):
    path = _file(tmp_path)
    sweep = load_sweep(path, output_dir=tmp_path / "three")
    outcome = run_sweep(sweep, workers=1, progress=False)
    assert not outcome.failed and len(outcome.records) == 3
    pids = set()
    for trial in sweep.trials:
        run_dir = sweep.trial_dir(trial)
        assert is_complete(run_dir)
        assert yaml.safe_load((run_dir / "config.yaml").read_text()) == trial.config.to_dict()  # the seed's own config
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["seed"] == trial.seed and summary["seeds_in_process"] == 3 and summary["steps"] == 600
        assert [int(row["time/steps"]) for row in _rows(run_dir)] == [100, 200, 300, 400, 500, 600]
        assert "train/actor_loss" in _rows(run_dir)[-1] and not (run_dir / "checkpoints").exists()
        assert SAC.load(run_dir / "model.zip").num_timesteps == 600  # the seed as a Stable-Baselines3 SAC
        pids |= {events.name.split(".")[-2] for events in run_dir.glob("events.out.tfevents.*")}
    assert len(pids) == 1  # every seed's TensorBoard file was written by one process

    # seed 1 alone (a batch of one) gives the numbers it gave inside the batch of three
    alone = run_sweep(load_sweep(_file(tmp_path, seeds=[1]), output_dir=tmp_path / "one"), workers=1, progress=False)
    inside, single = _rows(outcome.directory / "sac__base__s1"), _rows(alone.directory / "sac__base__s1")
    assert list(inside[0]) == list(single[0]) and len(inside) == len(single)
    for a, b in zip(inside, single):
        for key in a:
            assert (a[key] == b[key] == "") or float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), key
    # seeds differ from one another (each seed's numbers are its own)
    assert _rows(outcome.directory / "sac__base__s0")[-1] != inside[-1]

    # report reads batched runs like single ones
    assert main(["report", str(outcome.directory), "--reps", "200"]) == 0
    assert "n=3" in capsys.readouterr().out


def test_a_killed_batched_run_resumes_byte_identical(tmp_path):
    path = _file(tmp_path, fixed=["total_steps=1000"])
    reference = run_sweep(load_sweep(path, output_dir=tmp_path / "whole"), workers=1, progress=False)
    assert not reference.failed

    directory = tmp_path / "killed" / "sweeps" / "batched"
    command = [sys.executable, "-m", "causalrl.cli", "sweep", str(path), "--workers", "1",
               "--output-dir", str(tmp_path / "killed"), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    seeds = [directory / f"sac__base__s{seed}" for seed in (0, 1, 2)]
    deadline, shared = time.time() + 240, set()
    while time.time() < deadline and process.poll() is None:
        try:  # a checkpoint every seed holds, and rows logged after it: the kill lands between checkpoints
            shared = set.intersection(*({p.name for p in (s / "checkpoints").glob("step_*")} for s in seeds))
            rows = min(len(_rows(s)) for s in seeds)
        except (OSError, TypeError):
            shared, rows = set(), 0
        if shared and rows > int(max(shared)[5:]) // 100:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert shared and not any(is_complete(s) for s in seeds), "the kill should land half-way"

    assert main(["run", "--resume", str(seeds[1])]) == 0  # any seed's directory continues the whole batch
    for seed in seeds:
        assert is_complete(seed)
        assert (seed / "progress.csv").read_bytes() == (reference.directory / seed.name / "progress.csv").read_bytes()
        summary = json.loads((seed / "summary.json").read_text())
        assert summary["resumed_from_step"] == int(max(shared)[5:])
    assert main(["sweep", str(path), "--workers", "1", "--output-dir", str(tmp_path / "killed"), "--no-progress"]) == 0
    with open(directory / "trials.csv", newline="") as handle:  # the sweep finds every seed finished
        assert [row["status"] for row in csv.DictReader(handle)] == ["ok", "ok", "ok"]


def test_what_cannot_be_batched_is_refused_in_one_line(tmp_path):
    bandit = {"experiment": "b", "total_steps": 10, "env": {"id": "causalrl/LinearSEMBandit-v0"},
              "agents": [{"name": "ucb"}]}
    with pytest.raises(ConfigError, match=r"vectorize_seeds: agent ucb cannot train seeds in one process"):
        load_sweep(_file(tmp_path, base=bandit))
    with pytest.raises(ConfigError, match=r"vectorize_seeds: agent\.use_sde is not supported by the batched learner"):
        load_sweep(_file(tmp_path, fixed=["agent.use_sde=true"]))
    with pytest.raises(ConfigError, match=r"vectorize_seeds: eval_interval is not supported"):
        load_sweep(_file(tmp_path, fixed=["eval_interval=200"]))
    with pytest.raises(ConfigError, match=r"vectorize_seeds must be true or false"):
        load_sweep(_file(tmp_path, vectorize_seeds="yes"))


def test_a_batch_that_failed_after_a_seed_finished_resumes_the_others(tmp_path, monkeypatch):
    from causalrl.experiment.run import batched

    finish = batched._finish

    def finish_then_fail(model, k, seed, step, started):  # a full disk while the second seed completes
        if k == 1:
            raise OSError("No space left on device")
        return finish(model, k, seed, step, started)

    monkeypatch.setattr(batched, "_finish", finish_then_fail)
    path = _file(tmp_path, fixed=["total_steps=400"])
    outcome = run_sweep(load_sweep(path, output_dir=tmp_path), workers=1, progress=False)
    assert {name: record["status"] for name, record in outcome.records.items()} == {
        "sac__base__s0": "ok", "sac__base__s1": "failed", "sac__base__s2": "failed"}
    seeds = [outcome.directory / f"sac__base__s{seed}" for seed in (0, 1, 2)]
    assert is_complete(seeds[0]) and json.loads((seeds[0] / "status.json").read_text())["status"] == "complete"
    assert json.loads((seeds[1] / "status.json").read_text())["status"] == "failed"
    logged = [_rows(seed) for seed in seeds[1:]]  # every row was logged before the failure
    finished = (seeds[0] / "summary.json").stat().st_mtime_ns

    monkeypatch.setattr(batched, "_finish", finish)
    assert main(["run", "--resume", str(seeds[2])]) == 0  # seeds 1 and 2 go on as a batch of two
    assert all(is_complete(seed) for seed in seeds) and (seeds[0] / "summary.json").stat().st_mtime_ns == finished
    for seed, before in zip(seeds[1:], logged):
        assert json.loads((seed / "summary.json").read_text())["resumed_from_step"] == 200
        after = _rows(seed)
        assert [row["time/steps"] for row in after] == [row["time/steps"] for row in before]
        for a, b in zip(after, before):
            assert all((a[k] == b[k] == "") or float(a[k]) == pytest.approx(float(b[k]), rel=1e-5, abs=1e-6) for k in a)
