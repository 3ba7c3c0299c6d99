"""Sweeps: expansion and names, identical results for any worker count (and Ray, slow), failing
trials recorded while the others go on, and a SIGKILLed sweep that resumes without re-running."""

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

from causalrl.cli import main
from causalrl.experiment.batch.sweep import load_sweep, run_sweep
from causalrl.experiment.config import ConfigError
from causalrl.experiment.run.rundir import is_complete

BASE = {
    "experiment": "test-sweep",
    "total_steps": 100,
    "log_interval": 25,
    "save_model": False,
    "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, "horizon": 100},
    "agents": [{"name": "ucb"}],
}


def _sweep_file(tmp_path: Path, name: str = "grid", **spec) -> Path:
    data = {"name": name, "base": BASE, "overrides": {"grid": {"agent.exploration": [0.5, 2.0]}},
            "seeds": [0, 1, 2], "seed_overrides": ["seed={seed}", "env.instance_seed={seed}"], **spec}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _progress(run_dir: Path) -> list[dict]:
    """progress.csv as parsed rows (SB3's csv writer orders columns by hash, so compare values)."""
    with open(run_dir / "progress.csv", newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def _results(directory: Path) -> dict:
    return {trial.name: (json.loads((trial / "summary.json").read_text())["final"], _progress(trial))
            for trial in sorted(directory.iterdir()) if (trial / "config.yaml").exists()}


def test_expansion_names_and_errors(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path), output_dir=tmp_path / "runs")
    assert sweep.directory == tmp_path / "runs" / "sweeps" / "grid"
    assert [t.name for t in sweep.trials] == [f"ucb__exploration-{x}__s{s}" for x in (0.5, 2.0) for s in (0, 1, 2)]
    assert sweep.trials[4].config.agent.kwargs == {"exploration": 2.0}
    assert sweep.trials[4].config.env.kwargs["instance_seed"] == 1 and sweep.trials[4].config.seed == 1
    listed = load_sweep(_sweep_file(tmp_path, "listed", overrides={"list": [["agents.ucb.window=10"], []]}, seeds=2))
    assert [t.name for t in listed.trials] == ["ucb__window-10__s0", "ucb__window-10__s1",
                                               "ucb__base__s0", "ucb__base__s1"]
    with pytest.raises(ConfigError, match="exploraton"):
        load_sweep(_sweep_file(tmp_path, "bad", overrides={"grid": {"agent.exploraton": [1]}}))
    with pytest.raises(ConfigError, match="unknown key 'grids'"):
        load_sweep(_sweep_file(tmp_path, "bad2", grids={}))


def test_results_do_not_depend_on_worker_count(tmp_path):
    path = _sweep_file(tmp_path)
    one = run_sweep(load_sweep(path, output_dir=tmp_path / "w1"), workers=1, progress=False)
    two = run_sweep(load_sweep(path, output_dir=tmp_path / "w2"), workers=2, progress=False)
    assert not one.failed and not two.failed and len(one.records) == 6
    assert _results(one.directory) == _results(two.directory)
    # started again: every trial is finished, nothing is re-run
    again = run_sweep(load_sweep(path, output_dir=tmp_path / "w1"), workers=1, progress=False)
    assert all(record["skipped"] for record in again.records.values())
    assert len((one.directory / "trials.jsonl").read_text().splitlines()) == 6


def test_failing_trial_is_recorded_and_others_go_on(tmp_path, capsys):
    path = _sweep_file(tmp_path, "failing", overrides={"grid": {"agents.ucb.noise_std": [1.0, 0.0]}}, seeds=[0])
    status = main(["sweep", str(path), "--workers", "1", "--output-dir", str(tmp_path), "--no-progress"])
    assert status == 1
    out = capsys.readouterr().out
    assert "2 trials, 1 ok (0 already finished), 1 failed" in out
    directory = tmp_path / "sweeps" / "failing"
    table = {row["trial"]: row for row in csv.DictReader(open(directory / "trials.csv"))}
    assert table["ucb__noise_std-1.0__s0"]["status"] == "ok"
    failed = table["ucb__noise_std-0.0__s0"]
    assert failed["status"] == "failed" and failed["error"] == "ConfigError: agent[ucb].noise_std: must be > 0, got 0.0"
    assert "Traceback" in json.loads((directory / "ucb__noise_std-0.0__s0" / "error.json").read_text())["traceback"]
    assert main(["report", str(directory), "--reps", "200"]) == 0
    markdown = (directory / "report" / "report.md").read_text()
    assert "## Failed runs" in markdown and "ConfigError: agent[ucb].noise_std: must be > 0, got 0.0" in markdown


def test_killed_sweep_resumes_without_rerunning(tmp_path):
    path = _sweep_file(tmp_path, "killed", overrides={"grid": {"agent.exploration": [0.5, 1.0, 2.0]}},
                       seeds=[0, 1, 2, 3])
    expected = {t.name for t in load_sweep(path, output_dir=tmp_path).trials}
    directory = tmp_path / "sweeps" / "killed"
    command = [sys.executable, "-m", "causalrl.cli", "sweep", str(path), "--workers", "1",
               "--output-dir", str(tmp_path), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        done = [d for d in directory.glob("ucb__*") if is_complete(d)] if directory.exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = {d.name: (d / "summary.json").stat().st_mtime_ns for d in directory.glob("ucb__*") if is_complete(d)}
    assert 3 <= len(finished) < len(expected), "the kill should land half-way"

    assert main(["sweep", str(path), "--workers", "1", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    trial_dirs = [d.name for d in directory.iterdir() if d.is_dir()]
    assert sorted(trial_dirs) == sorted(expected)  # complete, no duplicates, nothing extra
    assert all(is_complete(directory / name) for name in expected)
    for name, mtime in finished.items():  # finished trials were not re-run
        assert (directory / name / "summary.json").stat().st_mtime_ns == mtime
    ok_lines = [json.loads(line)["trial"] for line in (directory / "trials.jsonl").read_text().splitlines()
                if json.loads(line)["status"] == "ok"]
    assert sorted(ok_lines) == sorted(expected)  # each trial finished exactly once


def test_a_trial_finished_without_its_ledger_line_gets_the_line_on_resume(tmp_path):
    path = _sweep_file(tmp_path, "lineless", seeds=[0, 1])
    assert main(["sweep", str(path), "--workers", "1", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    directory = tmp_path / "sweeps" / "lineless"
    lines = (directory / "trials.jsonl").read_text().splitlines()
    lost = json.loads(lines[-1])["trial"]  # the driver was killed after this trial's summary, before its line
    (directory / "trials.jsonl").write_text("".join(line + "\n" for line in lines[:-1]))
    mtime = (directory / lost / "summary.json").stat().st_mtime_ns
    assert main(["sweep", str(path), "--workers", "1", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    assert (directory / lost / "summary.json").stat().st_mtime_ns == mtime  # not run again
    ok_lines = [json.loads(line)["trial"] for line in (directory / "trials.jsonl").read_text().splitlines()
                if json.loads(line)["status"] == "ok"]
    assert sorted(ok_lines) == sorted(json.loads(line)["trial"] for line in lines)  # each exactly once


@pytest.mark.slow
def test_ray_backend_gives_the_same_results(tmp_path):
    pytest.importorskip("ray")
    path = _sweep_file(tmp_path)
    local = run_sweep(load_sweep(path, output_dir=tmp_path / "local"), workers=1, progress=False)
    status = main(["sweep", str(path), "--backend", "ray", "--workers", "2", "--output-dir", str(tmp_path / "ray"),
                   "--no-progress"])
    assert status == 0
    assert _results(local.directory) == _results(tmp_path / "ray" / "sweeps" / "grid")


def test_a_finished_sac_trial_with_policy_kwargs_is_skipped_when_the_sweep_runs_again(tmp_path, capsys):
    # SB3 writes use_sde into the policy_kwargs it is given; config.yaml must still record the
    # sweep's config, or a second run of the sweep refuses the finished trial as changed
    sac = {"experiment": "sac", "total_steps": 60, "log_interval": 30, "save_model": False, "env": {"id": "Pendulum-v1"},
           "agents": [{"name": "sac", "learning_starts": 30, "batch_size": 16, "buffer_size": 100,
                       "policy_kwargs": {"net_arch": [8]}}]}
    path = tmp_path / "sac-sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "sac-sweep", "base": sac, "seeds": [0]}, sort_keys=False))
    argv = ["sweep", str(path), "--workers", "1", "--output-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    (config,) = (tmp_path / "sweeps" / "sac-sweep").glob("*/config.yaml")
    assert yaml.safe_load(config.read_text())["agent"]["policy_kwargs"] == {"net_arch": [8]}
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 trials, 1 ok (1 already finished)" in capsys.readouterr().out
