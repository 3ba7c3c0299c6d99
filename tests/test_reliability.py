"""Reliability guarantees of run directories (docs/runner.md, reliability):

- one process at a time: a run or resume holds an exclusive lock on its directory, so a second
  concurrent ``--resume`` fails with one line and the first completes byte-identical;
- resumes cannot lie: a checkpoint stores the fingerprint of the resolved config, and
  ``--resume`` refuses a config.yaml edited since, before changing anything in the directory;
- names are single folder names (no ``..``), a sweep cannot grid over ``seed``;
- every world refuses malformed actions (NaN, wrong or reshaped shapes) with one line;
- config files are size-capped; checkpoints are fsynced; our own checkpoint state loads
  without running code from the files (a planted pickle payload is refused).
"""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from causalrl.cli import main
from causalrl.experiment.config import MAX_CONFIG_BYTES, load_experiment
from causalrl.experiment.run.checkpoints import CheckpointCallback
from causalrl.experiment.run.rundir import lock_directory, make_run_dir
from causalrl.experiment.run.runner import run

SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
BANDIT = {"progress_bar": False, "total_steps": 1200, "log_interval": 100, "checkpoint_interval": 200,
          "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 5, "instance_seed": 0, "horizon": 1200},
          "agent": {"name": "csl-ucb"}}


def _stopped_run(root: Path, data: dict = BANDIT, checkpoints: int = 1) -> Path:
    """An unfinished run directory holding a real checkpoint (the run is stopped from a callback
    after its ``checkpoints``-th checkpoint, as a kill would leave it)."""
    original = CheckpointCallback._on_rollout_start
    written = []

    def stop(self):
        before = self.last_checkpoint
        original(self)
        if self.last_checkpoint is not None and self.last_checkpoint != before:
            written.append(self.last_checkpoint)
            if len(written) == checkpoints:
                raise KeyboardInterrupt

    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    CheckpointCallback._on_rollout_start = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            run(load_experiment(path)[0], run_dir=root / "runs" / "stopped")
    finally:
        CheckpointCallback._on_rollout_start = original
    return root / "runs" / "stopped"


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with a hash of its bytes (to show a refusal changed nothing)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != ".lock"}


def _one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("causalrl: error: ") and "Traceback" not in error, error
    return error


# --- the lock ----------------------------------------------------------------------------------
def test_a_resume_of_a_locked_run_directory_fails_with_one_line(in_tmp, capsys):
    run_dir = _stopped_run(in_tmp)
    before = _snapshot(run_dir)
    handle = lock_directory(run_dir)  # another process's run or resume holds the directory
    try:
        assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    finally:
        handle.close()
    assert "is in use by another causalrl process" in _one_line_error(capsys)
    assert _snapshot(run_dir) == before
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0  # released: it resumes


_RACER = """
import sys, time
from pathlib import Path
from causalrl.cli import main
import causalrl.experiment.run.runner  # the slow imports happen before the start signal
print("ready", flush=True)
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
sys.exit(main(["run", "--resume", sys.argv[2], "--no-progress"]))
"""


def test_two_concurrent_resumes_one_proceeds_one_fails_and_nothing_is_lost(in_tmp):
    run_dir = _stopped_run(in_tmp)
    go = in_tmp / "go"
    # both processes import everything first, then start the resume within a millisecond of each other
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(go), str(run_dir)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV) for _ in range(2)]
    assert [racer.stdout.readline().strip() for racer in racers] == ["ready", "ready"]
    go.touch()
    outcomes = [racer.communicate(timeout=600) for racer in racers]
    codes = sorted(racer.returncode for racer in racers)
    assert codes == [0, 2], outcomes
    (loser_err,) = [err for racer, (_, err) in zip(racers, outcomes) if racer.returncode == 2]
    assert loser_err.count("\n") == 1 and "is in use by another causalrl process" in loser_err, loser_err

    reference = run(load_experiment(in_tmp / "config.yaml")[0], run_dir=in_tmp / "reference")
    assert (run_dir / "progress.csv").read_bytes() == (reference.run_dir / "progress.csv").read_bytes()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["final"] == reference.summary["final"]


def test_run_folders_created_at_the_same_instant_are_distinct(tmp_path):
    barrier, made, errors = threading.Barrier(8), [], []

    def create():
        barrier.wait()
        try:
            made.append(make_run_dir(tmp_path / "exp", "Env__agent__s0__20261201-000000"))
        except Exception as error:  # noqa: BLE001 - the test reports any
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(made)) == 8
    assert min(path.name for path in made) == "Env__agent__s0__20261201-000000"


# --- the config fingerprint ----------------------------------------------------------------------
@pytest.mark.parametrize("key, value", [("n_nodes", 4), ("instance_seed", 7)])
def test_resume_refuses_a_config_edited_after_the_checkpoint(in_tmp, capsys, key, value):
    run_dir = _stopped_run(in_tmp)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["env"][key] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = _snapshot(run_dir)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    assert "config.yaml changed since the checkpoint was written" in _one_line_error(capsys)
    assert _snapshot(run_dir) == before  # nothing changed
    assert not (run_dir / "summary.json").exists()


def test_resume_with_total_steps_below_the_checkpoint_changes_nothing(in_tmp, capsys):
    run_dir = _stopped_run(in_tmp, checkpoints=2)  # checkpoint at step 400
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["total_steps"] = 300
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = _snapshot(run_dir)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    _one_line_error(capsys)
    assert _snapshot(run_dir) == before


def test_an_unedited_resume_still_matches_the_fingerprint(in_tmp):
    run_dir = _stopped_run(in_tmp)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    reference = run(load_experiment(in_tmp / "config.yaml")[0], run_dir=in_tmp / "reference")
    assert (run_dir / "progress.csv").read_bytes() == (reference.run_dir / "progress.csv").read_bytes()


# --- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", ""])
def test_experiment_names_are_single_folder_names(in_tmp, capsys, name):
    assert main(["run", "agents=ucb", "total_steps=20", f"experiment={name}", "--no-progress"]) == 2
    error = _one_line_error(capsys)
    assert "experiment: must" in error
    assert not any(in_tmp.iterdir()) and not any(in_tmp.parent.glob("LinearSEMBandit-v0__*"))


@pytest.mark.parametrize("command", ["sweep", "tune"])
@pytest.mark.parametrize("name", ["..", "."])
def test_sweep_and_tune_names_are_single_folder_names(in_tmp, capsys, command, name):
    base = {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3}, "agent": {"name": "ucb"}}
    spec = {"name": name, "base": base, "fixed": ["total_steps=20"]}
    if command == "tune":
        spec["search"] = {"agent.exploration": {"low": 0.1, "high": 2.0}}
    (in_tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main([command, "spec.yaml", "--no-progress"]) == 2
    assert "name must" in _one_line_error(capsys)
    assert sorted(path.name for path in in_tmp.iterdir()) == ["spec.yaml"]


@pytest.mark.parametrize("overrides", [{"grid": {"seed": [5, 6]}}, {"list": [["seed=5"], ["seed=6"]]}])
def test_a_sweep_over_seed_is_refused(in_tmp, capsys, overrides):
    base = {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3}, "agent": {"name": "ucb"}}
    (in_tmp / "s.yaml").write_text(yaml.safe_dump({"name": "s", "base": base, "overrides": overrides}))
    assert main(["sweep", "s.yaml", "--no-progress"]) == 2
    assert "each trial's seed comes from `seeds`" in _one_line_error(capsys)
    assert not (in_tmp / "runs").exists()


def test_a_sweep_grid_value_of_the_wrong_type_is_refused_before_any_trial(in_tmp, capsys):
    base = {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3}, "agent": {"name": "ucb"}}
    grid = {"grid": {"agent.exploration": [1.0, "abc"]}}
    (in_tmp / "s.yaml").write_text(yaml.safe_dump({"name": "s", "base": base, "overrides": grid,
                                                   "fixed": ["total_steps=20"]}))
    assert main(["sweep", "s.yaml", "--no-progress"]) == 2
    assert "exploration: must be a number, got 'abc'" in _one_line_error(capsys)
    assert not (in_tmp / "runs").exists()


# --- malformed actions in every registered world ---------------------------------------------------
def _env_ids():
    from causalrl.experiment.config.plugins import load_plugins, registered_env_ids

    load_plugins()
    return registered_env_ids()


@pytest.mark.parametrize("env_id", _env_ids())
def test_every_world_refuses_malformed_actions(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    shape = env.action_space.shape
    good = np.zeros(shape, dtype=env.action_space.dtype)
    size = int(np.prod(shape))
    nan = good.astype(float)
    nan.flat[0] = np.nan
    bad = {"nan": nan, "wrong length": np.zeros(size + 1), "batch of one": good[None], "text": "x" * size,
           "none": None}
    if size % 2 == 0:
        bad["reshaped"] = np.zeros((2, size // 2))  # the same number of entries, another shape
    for label, action in bad.items():
        with pytest.raises(ValueError) as error:
            env.step(action)
        message = str(error.value)
        assert message.startswith("action: ") and "\n" not in message, (env_id, label, message)
    env.step(good)  # a well-formed action still works after the refusals
    env.close()


# --- size limits and unreadable files --------------------------------------------------------------
def test_an_oversized_config_file_is_refused_quickly(in_tmp, capsys):
    path = in_tmp / "huge.yaml"
    path.write_text("description: " + "x" * (MAX_CONFIG_BYTES + 1) + "\n")
    started = time.perf_counter()
    assert main(["run", str(path), "--no-progress"]) == 2
    assert time.perf_counter() - started < 5
    error = _one_line_error(capsys)
    assert "huge.yaml" in error and "MiB a config file may have" in error


def test_a_binary_config_file_is_named(in_tmp, capsys):
    (in_tmp / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    assert main(["run", "bin.yaml", "--no-progress"]) == 2
    error = _one_line_error(capsys)
    assert "bin.yaml: not UTF-8 text" in error


# --- durability ----------------------------------------------------------------------------------
def test_checkpoints_are_fsynced_before_they_are_renamed(in_tmp, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(descriptor):
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}") if os.path.exists("/proc/self/fd") else descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    _stopped_run(in_tmp)
    staged = [path for path in synced if isinstance(path, str) and ".step_" in path]
    for name in ("model.zip", "state.json", "state.pkl"):
        assert any(path.endswith(name) for path in staged), (name, staged)
    assert any(path.endswith("/checkpoints") for path in synced if isinstance(path, str))


# --- checkpoints load without running code ----------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_payload_in_state_pkl_is_refused_without_running(in_tmp, capsys):
    run_dir = _stopped_run(in_tmp)
    checkpoint = next((run_dir / "checkpoints").glob("step_*"))
    marker = in_tmp / "PWNED"
    (checkpoint / "state.pkl").write_bytes(pickle.dumps({"metrics": _Payload(marker), "logger": {}, "env": []}))
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    error = _one_line_error(capsys)
    assert "refused to load posix.system" in error or "refused to load os.system" in error, error
    assert not marker.exists()


def test_a_planted_payload_in_a_bandit_model_zip_is_refused_without_running(in_tmp, capsys):
    run_dir = _stopped_run(in_tmp)
    model = next((run_dir / "checkpoints").glob("step_*")) / "model.zip"
    marker = in_tmp / "PWNED"
    with zipfile.ZipFile(model) as archive:
        meta = archive.read("meta.json")
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("meta.json", meta)
        archive.writestr("data.pkl", pickle.dumps({"counts": _Payload(marker)}))
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    assert "system: not an allowed type" in _one_line_error(capsys)
    assert not marker.exists()


def test_checkpoint_counters_and_rng_states_are_json(in_tmp):
    run_dir = _stopped_run(in_tmp)
    info = json.loads(next((run_dir / "checkpoints").glob("step_*")).joinpath("state.json").read_text())
    assert info["step"] == 200 and info["rows"] == 2 and len(info["fingerprint"]) == 16
    assert set(info["rng"]) == {"python", "numpy", "torch", "action_space"}
    # state.pkl holds only what the allowlist rebuilds: loading it with plain pickle finds no os/subprocess names
    names = []

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            names.append(module)
            return super().find_class(module, name)

        def persistent_load(self, pid):
            return None

    Recorder(io.BytesIO(next((run_dir / "checkpoints").glob("step_*")).joinpath("state.pkl").read_bytes())).load()
    assert not any(module.split(".")[0] in ("os", "posix", "subprocess", "builtins") for module in names), names


# --- report on damaged run directories ----------------------------------------------------------
@pytest.mark.parametrize("damage", ["config list", "summary list", "final list", "config binary", "env list"])
def test_report_on_damaged_runs_is_no_traceback(in_tmp, capsys, damage):
    config = load_experiment(None, ["agents=ucb", "env.n_nodes=3", "total_steps=40", "log_interval=20",
                                    "progress_bar=false"])[0]
    run(config, run_dir=in_tmp / "runs" / "good")
    bad = run(config, run_dir=in_tmp / "runs" / "bad").run_dir
    summary = json.loads((bad / "summary.json").read_text())
    if damage == "config list":
        (bad / "config.yaml").write_text("- 1\n- 2\n")
    elif damage == "config binary":
        (bad / "config.yaml").write_bytes(bytes(range(256)))
    elif damage == "env list":
        (bad / "config.yaml").write_text(yaml.safe_dump({**config.to_dict(), "env": [1, 2]}))
    elif damage == "summary list":
        (bad / "summary.json").write_text("[1, 2]")
    else:
        (bad / "summary.json").write_text(json.dumps({**summary, "final": [1, 2]}))
    capsys.readouterr()
    assert main(["report", str(in_tmp / "runs"), "--reps", "100", "--out", str(in_tmp / "out")]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    runs = (in_tmp / "out" / "runs.csv").read_text()
    bad_rows = [line for line in runs.splitlines() if "/runs/bad," in line]
    assert bad_rows and not any(",ok," in line for line in bad_rows)  # reported, never as a finished run
    assert any(",ok," in line for line in runs.splitlines() if "/runs/good," in line)
