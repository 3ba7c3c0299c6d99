"""Checkpoints and `causalrl run --resume`.

The kill harness starts `causalrl run` in a subprocess, SIGKILLs it once progress.csv holds a
randomly chosen number of rows (fixed seed), resumes it with `causalrl run --resume RUN_DIR` and
compares the directory with an uninterrupted run of the same config: progress.csv must have every
logged step exactly once and, for bandit agents (and, as measured, for SAC/CIP on CPU with one
thread), be byte-identical. Three kill points run by default; all ten with `-m slow`.
"""

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch
import yaml

from causalrl.cli import main
from causalrl.experiment.analysis.runs import find_runs
from causalrl.experiment.config import load_experiment
from causalrl.experiment.run.rundir import is_complete
from causalrl.experiment.run.runner import run

BANDIT = {"total_steps": 800, "log_interval": 50, "checkpoint_interval": 100,
          "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 6, "instance_seed": 0, "horizon": 800}}
PIECEWISE = {**BANDIT, "env": {"id": "causalrl/PiecewiseSEMBandit-v0", "n_nodes": 6, "instance_seed": 0,
                               "horizon": 800, "change_points": [300, 600]}}
TINY_RL = {"learning_starts": 40, "buffer_size": 1000, "batch_size": 32, "device": "cpu",
           "policy_kwargs": {"net_arch": [16, 16]}}
RL = {"total_steps": 240, "log_interval": 20, "checkpoint_interval": 40, "eval_interval": 40, "eval_episodes": 2,
      "env": {"id": "causalrl/FactoredLQR-v0", "n_relevant_states": 2, "n_distractor_states": 2,
              "n_relevant_actions": 1, "n_irrelevant_actions": 1, "horizon": 50}}
CIP = {**TINY_RL, "discovery_interval": 60, "discovery_samples": 50, "empowerment_warmup": 50, "inverse_model_arch": [16]}

CONFIGS = {
    "csl-ucb": {**BANDIT, "agent": {"name": "csl-ucb"}},
    "linsem-ts-oracle": {**BANDIT, "agent": {"name": "linsem-ts-oracle"}},
    "csl-ucb-piecewise": {**PIECEWISE, "agent": {"name": "csl-ucb"}},
    "sac": {**RL, "agent": {"name": "sac", **TINY_RL}},
    "cip": {**RL, "agent": {"name": "cip", **CIP}},
}
#: ten kill points: (config, rows in progress.csv when the SIGKILL is sent), drawn once from seed 7
_DRAW = np.random.default_rng(7)
KILL_POINTS = [(name, int(_DRAW.integers(0, CONFIGS[name]["total_steps"] // CONFIGS[name]["log_interval"] - 1)))
               for name in ["csl-ucb", "linsem-ts-oracle", "sac", "csl-ucb", "csl-ucb-piecewise",
                            "linsem-ts-oracle", "cip", "sac", "csl-ucb-piecewise", "cip"]]
FAST = 3  # the first three run by default (two bandit agents and SAC); the rest are marked slow
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture
def one_thread():
    """Reference runs in this process use one torch thread, as the subprocesses do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_config(folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"experiment": name, "progress_bar": False, **CONFIGS[name]}))
    return path


def _rows(csv: Path) -> int:
    try:
        return len(csv.read_text().splitlines()) - 1
    except OSError:
        return -1


def _kill_at(config_path: Path, output: Path, rows: int) -> Path:
    """Start `causalrl run` and SIGKILL it once progress.csv holds at least ``rows`` rows."""
    command = [sys.executable, "-m", "causalrl.cli", "run", str(config_path), f"output_dir={output}", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=SUBPROCESS_ENV)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        csvs = list(output.glob("*/*/progress.csv"))  # <experiment>/<run>/: never inside checkpoints being renamed
        if csvs and _rows(csvs[0]) >= rows:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the run ended before the kill: {err.decode()[-500:]}"
    (run_dir,) = {csv.parent for csv in output.glob("*/*/progress.csv")}
    return run_dir


def _agent_state(model_zip: Path) -> dict:
    """The pickled state of a bandit agent file."""
    return cloudpickle.load(io.BytesIO(zipfile.ZipFile(model_zip).read("data.pkl")))


def _assert_same(a, b, where: str = "agent") -> None:
    """Deep equality of two unpickled agent states (arrays, generators, nested objects)."""
    assert type(a) is type(b), where
    if isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{index}]")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        _assert_same(vars(a), vars(b), where)
    else:
        assert a == b or (a != a and b != b), where


def _kill_and_resume(tmp_path: Path, name: str, rows: int) -> None:
    config_path = _write_config(tmp_path, name)
    run_dir = _kill_at(config_path, tmp_path / "killed", rows)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "running" and not (run_dir / "summary.json").exists()
    assert [record.status for record in find_runs([run_dir])] == ["unfinished"] and not is_complete(run_dir)
    resumed = subprocess.run([sys.executable, "-m", "causalrl.cli", "run", "--resume", str(run_dir), "--no-progress"],
                             capture_output=True, text=True, timeout=300, env=SUBPROCESS_ENV)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    config = load_experiment(config_path)[0]
    reference = run(config, run_dir=tmp_path / "reference")
    steps = [int(float(row["time/steps"])) for row in csv.DictReader((run_dir / "progress.csv").open())]
    assert steps == list(range(config.log_interval, config.total_steps + 1, config.log_interval))  # none lost or twice
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps"] == config.total_steps
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    assert not (run_dir / "checkpoints").exists()
    assert (run_dir / "progress.csv").read_bytes() == (reference.run_dir / "progress.csv").read_bytes()
    assert summary["final"] == reference.summary["final"]
    if config.agent.name not in ("sac", "cip"):
        _assert_same(_agent_state(run_dir / "model.zip"), _agent_state(reference.run_dir / "model.zip"))


@pytest.mark.parametrize("name, rows", KILL_POINTS[:FAST], ids=[f"{n}-row{r}" for n, r in KILL_POINTS[:FAST]])
def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path, one_thread, name, rows):
    _kill_and_resume(tmp_path, name, rows)


@pytest.mark.slow
@pytest.mark.parametrize("name, rows", KILL_POINTS[FAST:], ids=[f"{n}-row{r}" for n, r in KILL_POINTS[FAST:]])
def test_sigkill_then_resume_loses_and_repeats_nothing_slow(tmp_path, one_thread, name, rows):
    _kill_and_resume(tmp_path, name, rows)


def test_checkpoints_do_not_change_results(in_tmp):
    config = load_experiment(_write_config(in_tmp, "linsem-ts-oracle"))[0]
    rare = type(config)(**{**config.__dict__, "checkpoint_interval": 10_000})
    often = type(config)(**{**config.__dict__, "checkpoint_interval": 7})
    assert (run(rare).run_dir / "progress.csv").read_bytes() == (run(often).run_dir / "progress.csv").read_bytes()


# --- the same seed gives the same progress.csv, for every registered agent -------------
DETERMINISM = {
    "bandit": {"total_steps": 120, "log_interval": 20, "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 5}},
    "rl": {"total_steps": 100, "log_interval": 20, "env": RL["env"]},
    "intervention": {"total_steps": 100, "log_interval": 20, "env": {**RL["env"], "id": "causalrl/FactoredLQRIntervention-v0"}},
}
#: tiny hyperparameters of the agents that are not bandits (the others run with their defaults)
TINY = {"sac": {**TINY_RL, "learning_starts": 30}, "cip": {**CIP, "learning_starts": 30},
        "ace": {**CIP, "learning_starts": 30}, "etc-dagma": {"explore_rounds": 60},
        "rlif": {**TINY_RL, "learning_starts": 30}, "dagger": {"round_steps": 50, "gradient_steps": 10},
        "hg-dagger": {"round_steps": 50, "gradient_steps": 10}}
INTERVENTION_AGENTS = ("rlif", "dagger", "hg-dagger")


def _agents():
    from causalrl.core.registry import AGENTS

    return AGENTS.names()


@pytest.mark.parametrize("agent", _agents())
def test_same_seed_gives_identical_progress_for_every_agent(in_tmp, one_thread, agent):
    if agent == "etc-dagma":
        pytest.importorskip("dagma")
    from causalrl.agents import BanditAgent
    from causalrl.core.registry import AGENTS

    world = ("bandit" if issubclass(AGENTS.get(agent), BanditAgent)
             else "intervention" if agent in INTERVENTION_AGENTS else "rl")
    data = {**DETERMINISM[world], "progress_bar": False, "agent": {"name": agent, **TINY.get(agent, {})}}
    path = in_tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_experiment(path)[0]
    first, second = (run(config).run_dir / "progress.csv" for _ in range(2))
    assert first.read_bytes() == second.read_bytes()
    header = first.read_text().splitlines()[0]
    assert "time" not in header.replace("time/steps", "")  # no wall-clock keys (time/fps) in the rows
    if agent in ("sac", "cip", "ace", "rlif"):
        assert "train/critic_loss" in header


# --- a NaN in a loss stops the run, leaves a checkpoint, and resume works -------------
def test_nan_loss_stops_with_message_and_a_usable_checkpoint(in_tmp, one_thread, monkeypatch, capsys):
    import stable_baselines3.sac.sac as sac_module

    real_functional = sac_module.F
    real_mse = real_functional.mse_loss
    calls = {"n": 0}

    def poisoned_mse(*args, **kwargs):  # the critic loss turns NaN from the 150th update on
        calls["n"] += 1
        loss = real_mse(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 2 * 150 else loss

    class Poisoned:
        def __getattr__(self, name):
            return poisoned_mse if name == "mse_loss" else getattr(real_functional, name)

    config_path = _write_config(in_tmp, "sac")
    monkeypatch.setattr(sac_module, "F", Poisoned())
    assert main(["run", str(config_path), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and re.match(r"causalrl: error: non-finite train/\w+_loss \(nan\) at step \d+; ", error), error
    (run_dir,) = {path.parent.relative_to(in_tmp) for path in in_tmp.rglob("progress.csv")}
    step = int(error.split(" at step ")[1].split(";")[0])
    assert f"state at failure saved to {run_dir}/checkpoints/failed_step_{step:010d}" in error
    assert f"`causalrl run --resume {run_dir}`" in error
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["checkpoint_step"] < step and "non-finite" in status["error"]
    assert not (run_dir / "summary.json").exists()

    monkeypatch.setattr(sac_module, "F", real_functional)  # the NaN source is gone: resume from the last good checkpoint
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_from_step"] == status["checkpoint_step"]
    rows = list(csv.DictReader((run_dir / "progress.csv").open()))
    assert [int(row["time/steps"]) for row in rows] == list(range(20, 241, 20))
    assert all(np.isfinite(float(row["train/critic_loss"])) for row in rows if row["train/critic_loss"])


def test_nan_observation_is_named(in_tmp, monkeypatch, capsys):
    from causalrl.envs.bandits import LinearSEMBandit

    real_step = LinearSEMBandit.step

    def step(self, action):
        observation, *rest = real_step(self, action)
        return (observation * np.nan if self.round == 130 else observation), *rest

    monkeypatch.setattr(LinearSEMBandit, "step", step)
    assert main(["run", str(_write_config(in_tmp, "linsem-ts-oracle")), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "non-finite observation" in error and "at step 130;" in error and "(resume from step 100)" in error, error

    # report and sweep see a failed run, never a finished one
    from causalrl.experiment.analysis.runs import find_runs
    from causalrl.experiment.run.rundir import is_complete

    (record,) = find_runs([in_tmp / "runs"])
    assert record.status == "failed" and "non-finite observation" in record.error and not is_complete(record.path)
