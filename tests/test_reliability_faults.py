"""Faults, bad plugins, exit codes, concurrency and load (docs/runner.md, reliability).

- A full disk (``ENOSPC`` injected at each kind of write, and a real ``RLIMIT_FSIZE`` limit in a
  subprocess), a SIGKILL during a resume, read-only folders: the command fails with one line, no
  summary claims the run complete, and a later ``--resume`` ends byte-identical to an
  uninterrupted run: nothing a resume writes is lost.
- Exit codes mean one thing each: 2 = bad input before anything ran (no run directory), 1 = the
  run failed (status.json says failed, with the step), 0 = complete; whatever plugin code raises,
  ``SystemExit(0)`` included.
- Observations from any world are checked like actions are.
- Serious item 3 of the reliability review: a sweep takes a trial's lock before it deletes and
  re-runs its directory (``test_serious_3_a_sweep_leaves_a_trial_held_by_a_live_resume_alone``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from reliability_helpers import cli

from causalrl.experiment.config import configs_from
from causalrl.experiment.run.rundir import is_complete, lock_directory
from causalrl.experiment.run.runner import run

CSL = {"progress_bar": False, "total_steps": 120, "log_interval": 20, "checkpoint_interval": 40,
       "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, "horizon": 120, "instance_seed": 0},
       "agent": {"name": "csl-ucb"}}
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TALLY_LABEL = "reliability/faults"  # cases counted and timed by tests/conftest.py


def one_line(err: str) -> None:
    assert err.count("\n") == 1 and err.startswith("causalrl: error: ") and "Traceback" not in err, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return run(configs_from(CSL)[0], run_dir=root / "reference").run_dir


def _config_file(folder: Path, data: dict = CSL) -> Path:
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump({**data, "output_dir": str(folder / "runs")}))
    return path


def _only_run(folder: Path) -> Path:
    (run_dir,) = list((folder / "runs").glob("*/*/config.yaml"))
    return run_dir.parent


def _same_as(run_dir: Path, reference: Path) -> None:
    assert is_complete(run_dir)
    for name in ("progress.csv", "structure.jsonl"):
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name


# --- a full disk at each kind of write ----------------------------------------------------------------
def _full_disk(after: int, only: str | None = None):
    calls = {"n": 0}

    def raise_after(real):
        def write(*args, **kwargs):
            if only is not None and Path(str(args[0])).name != only:
                return real(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)
        return write
    return raise_after


def _partial_append(run_dir, line):  # the snapshot append cut short by the full disk
    with open(Path(run_dir) / "structure.jsonl", "a") as handle:
        handle.write(json.dumps(line)[:25])
    raise OSError(errno.ENOSPC, "No space left on device")


FAULTS = {
    "progress row": ("causalrl.experiment.run.runner.ProgressCSV.write", 3),
    "status.json": ("causalrl.experiment.run.checkpoints.write_json_atomic", 2),
    "checkpoint staging": ("causalrl.experiment.run.checkpoints.fsync_tree", 1),
    "structure.jsonl append": ("causalrl.experiment.run.callbacks.append_snapshot", None),
    "summary.json": ("causalrl.experiment.run.runner.write_json_atomic", 0, "summary.json"),
    "run.json": ("causalrl.experiment.run.runner.write_json_atomic", 0, "run.json"),
    "final flush": ("causalrl.experiment.run.runner.fsync_tree", 0),
    "model.zip": ("causalrl.agents.base.BanditAgent.save", 2),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_full_disk_fails_the_run_with_one_line_and_resume_loses_nothing(tmp_path, monkeypatch, reference, fault):
    import importlib

    target, after, *only = FAULTS[fault]
    module_name, _, attribute = target.rpartition(".")
    try:
        owner = importlib.import_module(module_name)
    except ImportError:
        module_name, _, klass = module_name.rpartition(".")
        owner = getattr(importlib.import_module(module_name), klass)
    if after is None:
        monkeypatch.setattr(owner, attribute, _partial_append)
    else:
        monkeypatch.setattr(owner, attribute, _full_disk(after, *only)(getattr(owner, attribute)))
    code, err = cli(["run", str(_config_file(tmp_path)), "--no-progress"])
    monkeypatch.undo()
    assert code == 1, err
    one_line(err)
    assert "No space left on device" in err and "--resume" in err
    if fault == "run.json":  # the very first write: the run never started, there is nothing to resume
        (run_dir,) = (tmp_path / "runs").glob("*/*")
        assert not (run_dir / "config.yaml").exists() and not is_complete(run_dir)
        assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"
        return
    run_dir = _only_run(tmp_path)
    assert not is_complete(run_dir)
    assert json.loads((run_dir / "status.json").read_text())["status"] in ("failed", "running", "complete")
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 0, err
    _same_as(run_dir, reference)


_FSIZE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
from causalrl.cli import main
sys.exit(main(["run", sys.argv[1], "--no-progress"]))
"""


@pytest.mark.parametrize("limit", [3_000, 40_000])
def test_a_real_file_size_limit_fails_the_run_and_resume_finishes_it(tmp_path, reference, limit):
    done = subprocess.run([sys.executable, "-c", _FSIZE, str(_config_file(tmp_path)), str(limit)], capture_output=True,
                          text=True, env=SUBPROCESS_ENV, timeout=300)
    assert done.returncode == 1, done.stderr
    one_line(done.stderr)
    run_dir = _only_run(tmp_path)
    assert not is_complete(run_dir)
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 0, err
    _same_as(run_dir, reference)


# --- SIGKILL during a resume -----------------------------------------------------------------------------
LONG = {**CSL, "total_steps": 800, "log_interval": 50, "checkpoint_interval": 100,
        "env": {**CSL["env"], "n_nodes": 6, "horizon": 800}}


def test_sigkill_during_a_resume_then_resume_again_loses_and_repeats_nothing(tmp_path):
    config = _config_file(tmp_path, LONG)

    def rows(path: Path) -> int:
        return len(path.read_text().splitlines()) - 1 if path.exists() else -1

    for attempt, kill_at in enumerate((4, 10)):
        argv = ["run", str(config), "--no-progress"] if attempt == 0 else ["run", "--resume", str(_only_run(tmp_path)),
                                                                          "--no-progress"]
        process = subprocess.Popen([sys.executable, "-m", "causalrl.cli", *argv], env=SUBPROCESS_ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None:
            found = list((tmp_path / "runs").glob("*/*/progress.csv"))  # never inside checkpoints being renamed
            if found and rows(found[0]) >= kill_at:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL, process.stderr.read()
    run_dir = _only_run(tmp_path)
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 0, err
    reference = run(configs_from(LONG)[0], run_dir=tmp_path / "reference").run_dir
    _same_as(run_dir, reference)


# --- read-only folders ---------------------------------------------------------------------------------------
def test_a_read_only_output_folder_is_one_line_exit_2_and_no_directory(tmp_path, monkeypatch):
    import causalrl.experiment.run.rundir as rundir

    def refuse(parent, stem):
        raise PermissionError(errno.EACCES, "Permission denied", str(parent))

    monkeypatch.setattr(rundir, "make_run_dir", refuse)
    monkeypatch.setattr("causalrl.experiment.run.runner.make_run_dir", refuse)
    code, err = cli(["run", str(_config_file(tmp_path)), "--no-progress"])
    assert code == 2 and "Permission denied" in err, err
    one_line(err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
@pytest.mark.parametrize("command", ["run", "resume", "report"])
def test_read_only_folders_are_one_line(tmp_path, reference, command):
    folder = tmp_path / "ro"
    shutil.copytree(reference.parent, folder)
    (folder / "reference" / "summary.json").unlink()
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    try:
        argv = {"run": ["run", "default", f"output_dir={folder}", "agents=ucb", "total_steps=20", "env.n_nodes=3",
                        "--no-progress"],
                "resume": ["run", "--resume", str(folder / "reference"), "--no-progress"],
                "report": ["report", str(folder), "--reps", "100"]}[command]
        code, err = cli(argv)
        assert code == 2, err
        one_line(err)
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


# --- serious item 3: the sweep and a live resume ---------------------------------------------------------------
SWEEP = {"name": "s", "base": {"progress_bar": False, "total_steps": 40, "log_interval": 10,
                               "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3, "horizon": 40},
                               "agent": {"name": "ucb"}},
         "seeds": [0, 1]}


def _sweep(tmp_path: Path, spec: dict = SWEEP) -> tuple[int, str]:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    return cli(["sweep", "s.yaml", "--workers", "1", "--no-progress"], cwd=tmp_path)


def _snapshot(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != ".lock"}


def test_serious_3_a_sweep_leaves_a_trial_held_by_a_live_resume_alone(tmp_path):
    assert _sweep(tmp_path)[0] == 0
    trials = sorted(path for path in (tmp_path / "runs" / "sweeps" / "s").iterdir() if path.is_dir())
    held = trials[0]
    (held / "summary.json").unlink()  # unfinished: the sweep would delete and re-run it ...
    before = _snapshot(held)
    handle = lock_directory(held)  # ... but a `causalrl run --resume` of it is running
    try:
        code, err = _sweep(tmp_path)
        assert code == 1 and "in use by another causalrl process" in err, err
        assert _snapshot(held) == before  # nothing deleted, nothing mixed in
    finally:
        handle.close()
    code, err = _sweep(tmp_path)  # the resume ended: now the sweep re-runs it
    assert code == 0, err
    assert all(is_complete(trial) for trial in trials)


def test_a_trial_directory_that_is_a_symbolic_link_fails_that_trial_only(tmp_path):
    assert _sweep(tmp_path)[0] == 0
    trials = sorted(path for path in (tmp_path / "runs" / "sweeps" / "s").iterdir() if path.is_dir())
    outside = tmp_path / "outside"
    shutil.move(trials[0], outside)
    (outside / "summary.json").unlink()
    trials[0].symlink_to(outside)
    before = _snapshot(outside)
    code, err = _sweep(tmp_path)
    assert code == 1 and "symbolic link" in err and "Traceback" not in err, err
    assert _snapshot(outside) == before


def test_many_trials_with_two_workers_all_complete_and_the_tables_agree(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SWEEP, "seeds": 8, "name": "load"}))
    code, err = cli(["sweep", "s.yaml", "--workers", "2", "--no-progress"], cwd=tmp_path)
    assert code == 0, err
    folder = tmp_path / "runs" / "sweeps" / "load"
    trials = [path for path in folder.iterdir() if path.is_dir() and (path / "config.yaml").exists()]
    assert len(trials) == 8 and all(is_complete(trial) for trial in trials)
    table = (folder / "trials.csv").read_text().splitlines()[1:]
    assert len(table) == 8 and all(",ok," in row for row in table)


# --- exit codes and bad plugin worlds and agents ---------------------------------------------------------------
PLUGIN = '''
import sys
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from causalrl.agents.ucb import UCB


class Coins(gym.Env):
    """Two coins; the fault (if any) happens at step 7."""
    at = 7

    def __init__(self, horizon: int = 30):
        self.action_space = spaces.MultiBinary(2)
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.horizon, self.t = horizon, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3), {}

    def step(self, action):
        self.t += 1
        if self.t == self.at:
            self.fail()
        expected = float(np.sum(action))
        info = {"expected_reward": expected, "optimal_expected_reward": 2.0}
        return self.observation(), expected + self.np_random.normal(), False, self.t >= self.horizon, info

    def observation(self):
        return np.zeros(3)

    def fail(self):
        pass


def world(name, fail=None, observation=None):
    return type(name, (Coins,), {**({"fail": fail} if fail else {}), **({"observation": observation} if observation else {})})


def _raise(error):
    def fail(self):
        raise error
    return fail


ValueErrorWorld = world("ValueErrorWorld", _raise(ValueError("missing")))
KeyErrorWorld = world("KeyErrorWorld", _raise(KeyError("missing")))
OSErrorWorld = world("OSErrorWorld", _raise(OSError(5, "Input/output error")))
RuntimeErrorWorld = world("RuntimeErrorWorld", _raise(RuntimeError("boom")))
RecursionWorld = world("RecursionWorld", _raise(RecursionError("maximum recursion depth exceeded")))
ExitZeroWorld = world("ExitZeroWorld", lambda self: sys.exit(0))
ExitTwoWorld = world("ExitTwoWorld", lambda self: sys.exit(2))
ExitTextWorld = world("ExitTextWorld", lambda self: sys.exit("bye"))
MemoryWorld = world("MemoryWorld", _raise(MemoryError()))
SevenDimWorld = world("SevenDimWorld", observation=lambda self: np.zeros(7 if self.t == self.at else 3))
TextObservationWorld = world("TextObservationWorld",
                             observation=lambda self: np.array(["a", "b", "c"]) if self.t == self.at else np.zeros(3))
BatchObservationWorld = world("BatchObservationWorld", observation=lambda self: np.zeros((1, 3) if self.t == self.at else 3))
NaNRewardWorld = world("NaNRewardWorld")
NaNRewardWorld.step = lambda self, action: (np.zeros(3), float("nan"), False, False,
                                            {"expected_reward": 0.0, "optimal_expected_reward": 2.0})


class ExitOnBuildWorld(Coins):
    def __init__(self, horizon: int = 30):
        sys.exit(0)


class ExitingAgent(UCB):
    def learn(self, *args, **kwargs):
        sys.exit(0)


class ExitOnBuildAgent(UCB):
    def __init__(self, *args, **kwargs):
        sys.exit(0)
'''

FAILING_WORLDS = ["ValueErrorWorld", "KeyErrorWorld", "OSErrorWorld", "RuntimeErrorWorld", "RecursionWorld",
                  "ExitZeroWorld", "ExitTwoWorld", "ExitTextWorld", "MemoryWorld", "SevenDimWorld",
                  "TextObservationWorld", "BatchObservationWorld"]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    name = f"plugin_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _plugin_run(tmp_path: Path, world: str, agent: str = "ucb") -> tuple[int, str]:
    data = {"progress_bar": False, "total_steps": 30, "log_interval": 10, "output_dir": str(tmp_path / "runs"),
            "env": {"id": world}, "agent": {"name": agent}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    return cli(["run", str(tmp_path / "p.yaml"), "--no-progress"])


@pytest.mark.parametrize("world", FAILING_WORLDS)
def test_a_failure_inside_a_plugin_world_exits_1_with_status_failed_at_its_step(tmp_path, plugin, world):
    code, err = _plugin_run(tmp_path, f"{plugin}:{world}")
    assert code == 1, err
    one_line(err)
    run_dir = _only_run(tmp_path)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["step"] in (6, 7), status
    assert "failed at step" in err and not is_complete(run_dir)
    if "Observation" in world or world == "SevenDimWorld":
        assert "observation: the world returned something other than a numeric array of shape" in err, err


def test_a_nan_reward_from_a_plugin_world_exits_1(tmp_path, plugin):
    code, err = _plugin_run(tmp_path, f"{plugin}:NaNRewardWorld")
    assert code == 1 and "non-finite reward" in err, err
    one_line(err)


@pytest.mark.parametrize("world, agent", [("ExitOnBuildWorld", "ucb"), ("Coins", "{plugin}:ExitOnBuildAgent")])
def test_sys_exit_while_building_is_bad_input_exit_2_and_no_directory(tmp_path, plugin, world, agent):
    code, err = _plugin_run(tmp_path, f"{plugin}:{world}", agent.format(plugin=plugin))
    assert code == 2 and "sys.exit(0)" in err, err
    one_line(err)
    assert not (tmp_path / "runs").exists()


def test_sys_exit_0_inside_a_plugin_agent_is_no_success(tmp_path, plugin):
    code, err = _plugin_run(tmp_path, f"{plugin}:Coins", f"{plugin}:ExitingAgent")
    assert code == 1, err
    assert json.loads((_only_run(tmp_path) / "status.json").read_text())["status"] == "failed"


def test_a_well_behaved_plugin_world_completes_with_exit_0(tmp_path, plugin):
    code, err = _plugin_run(tmp_path, f"{plugin}:Coins")
    assert code == 0, err
    assert is_complete(_only_run(tmp_path))


def test_a_failed_plugin_run_resumes_once_the_world_is_fixed(tmp_path, plugin, monkeypatch):
    code, _ = _plugin_run(tmp_path, f"{plugin}:ValueErrorWorld")
    assert code == 1
    module = __import__(plugin)
    monkeypatch.setattr(module.ValueErrorWorld, "fail", lambda self: None)
    code, err = cli(["run", "--resume", str(_only_run(tmp_path)), "--no-progress"])
    assert code == 0, err


# --- nonsense is refused before anything runs ----------------------------------------------------------------
BANDIT = ["env.n_nodes=3", "total_steps=20", "log_interval=10", "env.horizon=20"]
SAC = ["sac.yaml", "total_steps=20", "log_interval=10"]
SAC_FILE = {"env": {"id": "causalrl/FactoredLQR-v0", "n_relevant_states": 2, "n_distractor_states": 1},
            "agent": {"name": "sac"}}
NONSENSE = {
    "total_steps beyond int64": ([*BANDIT, "agents=ucb", "total_steps=99999999999999999999999"], "total_steps: must be at most"),
    "total_steps beyond any budget": ([*BANDIT, "agents=ucb", "total_steps=1000000000001"], "total_steps: must be at most"),
    "an empty agent selection": ([*BANDIT, "agents=,"], "override 'agents=,'"),
    "infinite UCB exploration": ([*BANDIT, "agents=ucb", "agent.exploration=.inf"], "exploration: must be a finite number"),
    "infinite posterior scale": ([*BANDIT, "agents=linsem-ts-oracle", "agent.posterior_scale=.inf"],
                                 "posterior_scale: must be a finite number"),
    "a window beyond 64 bits": ([*BANDIT, "agents=ucb", "agent.window=100000000000000000000"], "does not fit a 64-bit"),
    "a number as agent name": ([*BANDIT, "agents=ucb", "agent.name=5"], "agent.name: must be an agent name"),
    "a mapping as agent name": ([*BANDIT, "agents=ucb", "agent.name=os:"], "agent.name: must be an agent name"),
    "a relative plugin module": ([*BANDIT, "agents=ucb", "env.id=.hidden:X"], "env.id: write an absolute module:Class"),
    "SAC action_noise": ([*SAC, "agent.action_noise=5"], "action_noise: must be null"),
    "SAC net_arch of zero width": ([*SAC, "agent.policy_kwargs={net_arch: [0]}"], "policy_kwargs: must be a mapping"),
    "SAC batch larger than the buffer": ([*SAC, "agent.buffer_size=50", "agent.batch_size=64"],
                                         "batch_size: 64 is larger than buffer_size 50"),
    "n_envs beyond 1024": ([*BANDIT, "agents=ucb", "n_envs=5000"], "n_envs: must be at most 1024"),
}


@pytest.mark.parametrize("case", list(NONSENSE))
def test_nonsense_is_refused_before_anything_runs(tmp_path, case):
    overrides, message = NONSENSE[case]
    (tmp_path / "sac.yaml").write_text(yaml.safe_dump(SAC_FILE))
    code, err = cli(["run", *overrides, "--no-progress"], cwd=tmp_path)
    assert code == 2 and message in err, err
    one_line(err)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sac.yaml"]


@pytest.mark.parametrize("key, value, message", [("experiment", "a\nb", "experiment: must be a folder name"),
                                                 ("output_dir", "", "output_dir: must name a folder"),
                                                 ("output_dir", " ", "output_dir: must name a folder")])
def test_names_that_are_no_folder_names_are_refused_in_files(tmp_path, key, value, message):
    data = {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3}, "agent": {"name": "ucb"}, key: value}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    code, err = cli(["run", "c.yaml", "total_steps=20", "--no-progress"], cwd=tmp_path)
    assert code == 2 and message in err, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["c.yaml"]


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path):
    (tmp_path / "default").mkdir()
    code, err = cli(["run", "default", *BANDIT, "agents=ucb", "--no-progress"], cwd=tmp_path)
    assert code == 0, err


def test_bandit_agents_carry_the_nan_guard():
    import gymnasium as gym
    import numpy as np

    from causalrl.agents.ucb import UCB
    from causalrl.experiment.config.plugins import load_plugins

    load_plugins()
    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=3, horizon=50)
    with pytest.raises(ValueError, match="^exploration: must be a finite number"):
        UCB("BanditPolicy", env, exploration=float("inf"))  # refused when built, from Python too
    agent = UCB("BanditPolicy", env, seed=0)
    agent.learn(5)
    agent.__dict__[next(key for key, value in vars(agent).items()
                        if isinstance(value, np.ndarray) and value.dtype.kind == "f")] *= np.nan
    with pytest.raises(FloatingPointError, match="non-finite values after round 6"):
        agent.learn(5, reset_num_timesteps=False)


def test_csl_ucb_guard_checks_each_observation_once_not_its_growing_history():
    import gymnasium as gym
    import numpy as np

    from causalrl.agents.csl_ucb import CSLUCB
    from causalrl.experiment.config.plugins import load_plugins

    load_plugins()
    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=3, horizon=50)
    agent = CSLUCB("BanditPolicy", env, seed=0)
    observation, _ = env.reset(seed=0)
    for _ in range(3):  # the plain gymnasium loop
        action, _ = agent.predict(observation)
        observation, reward, *_ = env.step(action)
        agent.observe(action, observation, reward)
    agent.history_values[0, 0] = np.nan  # an old row: checked the round it arrived, not re-read each round
    agent.observe(action, observation, reward)
    with pytest.raises(FloatingPointError, match=r"^CSLUCB.observation: non-finite values in round 5"):
        agent.observe(action, np.full_like(observation, np.nan), reward)  # a new one is caught at once
