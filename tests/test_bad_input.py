"""Malformed input at every entry point: each case gets a one-line
``causalrl: error: ...`` naming the field, a non-zero exit, and leaves no directory that claims to
be complete. Complements the cases in test_runner_cli.py (config keys, adjacency matrices) and
the API-level checks in test_envs.py / test_factored.py / test_cip.py.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from causalrl.cli import main
from causalrl.experiment.config import load_experiment
from causalrl.experiment.run.runner import run

BANDIT = ["env.n_nodes=4", "total_steps=60", "log_interval=20", "agents=ucb"]
FACTORED = {"env": {"id": "causalrl/FactoredLQR-v0"}, "total_steps": 10}
SWEEP = {"name": "s", "base": {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4}, "agent": {"name": "ucb"}},
         "fixed": ["total_steps=60"]}
TUNE = {"name": "t", "base": SWEEP["base"], "search": {"agent.exploration": {"low": 0.1, "high": 2.0}}}


def _with_checkpoint(root: Path) -> Path:
    """An unfinished run with a real checkpoint (made by stopping a run from a callback)."""
    from causalrl.experiment.run.checkpoints import CheckpointCallback

    original = CheckpointCallback._on_rollout_start

    def stop_after_first_checkpoint(self):
        original(self)
        if self.last_checkpoint is not None:
            raise KeyboardInterrupt

    CheckpointCallback._on_rollout_start = stop_after_first_checkpoint
    try:
        config = load_experiment(None, BANDIT + ["checkpoint_interval=20", "progress_bar=false"])[0]
        with pytest.raises(KeyboardInterrupt):
            run(config, run_dir=root / "runs" / "stopped")
    finally:
        CheckpointCallback._on_rollout_start = original
    return root / "runs" / "stopped"


def _setup_complete(root):
    config = load_experiment(None, BANDIT + ["progress_bar=false"])[0]
    return str(run(config, run_dir=root / "runs" / "complete").run_dir)


def _setup_no_config(root):
    (root / "notarun").mkdir()
    return str(root / "notarun")


def _setup_corrupt_model(root):
    run_dir = _with_checkpoint(root)
    (next((run_dir / "checkpoints").glob("step_*")) / "model.zip").write_bytes(b"not a zip")
    return str(run_dir)


def _setup_corrupt_state(root):
    run_dir = _with_checkpoint(root)
    (next((run_dir / "checkpoints").glob("step_*")) / "state.pkl").write_bytes(b"\x80\x04garbage")
    return str(run_dir)


def _setup_short_progress(root):
    run_dir = _with_checkpoint(root)
    (run_dir / "progress.csv").write_text("time/steps\n")
    return str(run_dir)


def _setup_still_running(root):
    run_dir = _with_checkpoint(root)
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "status": "running", "pid": os.getppid()}))
    return str(run_dir)


def _setup_bad_config_in_run(root):
    run_dir = _with_checkpoint(root)
    (run_dir / "config.yaml").write_text("env: {id: causalrl/LinearSEMBandit-v0}\nagent: {name: ucb}\nseed: -1\n")
    return str(run_dir)


def _binary(path: Path) -> str:
    path.write_bytes(bytes(range(256)) * 4)
    return str(path)


def _file(name, data):
    def setup(root):
        (root / name).write_text(data if isinstance(data, str) else yaml.safe_dump(data))
        return str(root / name)
    return setup


SAC_FILE = _file("f.yaml", {**FACTORED, "agent": {"name": "sac"}})
CIP_FILE = _file("c.yaml", {**FACTORED, "agent": {"name": "cip"}})

# name: (argv with {x} filled from setup(root), expected fragment of the one-line error, setup)
CASES = {
    # run: config keys and overrides
    "checkpoint_interval zero": (["run", *BANDIT, "checkpoint_interval=0"], "checkpoint_interval: must be a positive integer", None),
    "checkpoint_interval text": (["run", *BANDIT, "checkpoint_interval=often"], "checkpoint_interval: must be a positive integer", None),
    "negative log_interval": (["run", *BANDIT, "log_interval=-5"], "log_interval: must be a positive integer", None),
    "experiment with slash": (["run", *BANDIT, "experiment=a/b"], "experiment: must be a folder name", None),
    "progress_bar not bool": (["run", *BANDIT, "progress_bar=maybe"], "progress_bar: must be true or false", None),
    "output_dir not a string": (["run", *BANDIT, "output_dir=[1]"], "output_dir: must be a string", None),
    "agent override without key": (["run", *BANDIT, "agent=3"], "write agent.key=value", None),
    "agents override unknown name": (["run", "agents.nope.window=1"], "write agents.NAME.key=value with NAME one of", None),
    "policy not a string": (["run", *BANDIT, "agent.policy=5"], "agent[ucb].policy: must be a string", None),
    "bandit with an MLP policy": (["run", *BANDIT, "agent.policy=MlpPolicy"], "policy: bandit agents take 'BanditPolicy'", None),
    "bandit noise_std zero": (["run", *BANDIT, "agent.noise_std=0"], "noise_std: must be > 0", None),
    "empty agents list": (["run", "{x}"], "agents: must be a non-empty list",
                          _file("a.yaml", {"env": {"id": "causalrl/LinearSEMBandit-v0"}, "agents": []})),
    "agent without name": (["run", "{x}"], "agents[0]: must be a mapping with a `name`",
                           _file("b.yaml", {"env": {"id": "causalrl/LinearSEMBandit-v0"}, "agent": {"window": 3}})),
    # env constructors (bandit and factored worlds)
    "unknown generator": (["run", *BANDIT, "env.generator=tree"], "generator: unknown 'tree'", None),
    "hierarchical layers": (["run", *BANDIT, "env.generator=hierarchical", "env.n_nodes=6"], "n_nodes: hierarchical graphs need", None),
    "one weight matrix only": (["run", *BANDIT, "env.observational_weights=[[0,1],[0,0]]"], "give both matrices or neither", None),
    "decreasing change points": (["run", *BANDIT, "env.id=causalrl/PiecewiseSEMBandit-v0", "env.change_points=[40,20]"],
                                 "change_points: must be strictly increasing", None),
    "factored zero relevant states": (["run", "{x}", "env.n_relevant_states=0"], "n_relevant_states", SAC_FILE),
    "factored edge_prob above one": (["run", "{x}", "env.edge_prob=1.5"], "edge_prob: must lie in [0, 1]", SAC_FILE),
    "factored action_cost zero": (["run", "{x}", "env.action_cost=0"], "action_cost: must be a positive", SAC_FILE),
    # agent constructors (CIP/SAC hyperparameters, spaces)
    "cip weight_temperature zero": (["run", "{x}", "agent.weight_temperature=0"],
                                    "weight_temperature: must be", CIP_FILE),
    "cip too few discovery samples": (["run", "{x}", "agent.discovery_samples=5"],
                                      "discovery_samples: needs at least 10", CIP_FILE),
    "cip policy_delay zero": (["run", "{x}", "agent.policy_delay=0"], "policy_delay: must be a positive integer", CIP_FILE),
    "cip reset factors reversed": (["run", "{x}", "agent.reset_factor_range=[0.9,0.2]"],
                                   "reset_factor_range: need 0 <= low <= high <= 1", CIP_FILE),
    "sac on a bandit": (["run", "{x}"], "agent[sac]: The algorithm only supports",
                        _file("sb.yaml", {"env": {"id": "causalrl/LinearSEMBandit-v0"}, "agent": {"name": "sac"}})),
    # Stable-Baselines3 hyperparameters, checked against SB3_RANGES before any directory exists
    "sac gamma above one": (["run", "{x}", "agent.gamma=2"], "agent[sac].gamma: must be a number in [0.0, 1.0]", SAC_FILE),
    "sac batch_size zero": (["run", "{x}", "agent.batch_size=0"], "agent[sac].batch_size: must be a positive integer",
                            SAC_FILE),
    "sac tau negative": (["run", "{x}", "agent.tau=-3"], "agent[sac].tau: must be a number in [0.0, 1.0]", SAC_FILE),
    "cip gamma above one": (["run", "{x}", "agent.gamma=1.5"], "agent[cip].gamma: must be a number in [0.0, 1.0]",
                            CIP_FILE),
    "sac buffer beyond memory": (["run", "{x}", "agent.buffer_size=1000000000000"],
                                 "agent[sac].buffer_size: 1000000000000 transitions need about", SAC_FILE),
    "sac policy_kwargs not a mapping": (["run", "{x}", "agent.policy_kwargs=notadict"],
                                        "agent[sac].policy_kwargs: must be a mapping", SAC_FILE),
    "sac unknown device": (["run", "{x}", "agent.device=tpu"], "agent[sac].device: must be auto, cpu", SAC_FILE),
    "sac learning_rate text": (["run", "{x}", "agent.learning_rate=abc"], "agent[sac].learning_rate: must be", SAC_FILE),
    "yaml reads 1e300 as text": (["run", "{x}", "env.noise_std=1e300"], "write 1e+300 as e.g. 1.0e+300", SAC_FILE),
    # values of the wrong type, named with their field
    "instance_seed text": (["run", *BANDIT, "env.instance_seed=abc"], "env.instance_seed: must be an integer", None),
    "instance_seed null": (["run", *BANDIT, "env.instance_seed=null"], "env.instance_seed: must be an integer, got null",
                           None),
    "instance_seed negative": (["run", *BANDIT, "env.instance_seed=-1"], "env.instance_seed: must be an integer in [0",
                               None),
    "exploration text": (["run", *BANDIT, "agent.exploration=abc"], "agent[ucb].exploration: must be a number", None),
    "noise_std text": (["run", *BANDIT, "env.noise_std=abc"], "env.noise_std: must be a number, got 'abc'", None),
    "weight_low nan": (["run", *BANDIT, "env.weight_low=.nan"], "env.weight_low: must be a number, got nan", None),
    "seed beyond 32 bits": (["run", *BANDIT, f"seed={2**70}"], "seed: must be >= 0 and <= 2**32 - 1", None),
    "total_steps nan grammar": (["run", *BANDIT, "total_steps=.nan"], "total_steps: must be a positive integer, got nan",
                                None),
    "binary config file": (["run", "{x}"], "bin.yaml: not UTF-8 text", lambda root: _binary(root / "bin.yaml")),
    "experiment dot dot": (["run", *BANDIT, "experiment=.."], "experiment: must be a folder name", None),
    "report out onto a file": (["report", "{x}", "--out", "{x}/complete/config.yaml"], "exists and is not a folder",
                               lambda root: (_setup_complete(root), str(root / "runs"))[1]),
    # CLI arguments
    "resume a missing directory": (["run", "--resume", "nowhere/run"], "--resume nowhere/run: no such directory", None),
    "resume a non-run directory": (["run", "--resume", "{x}"], "not a run directory (no config.yaml)", _setup_no_config),
    "resume a complete run": (["run", "--resume", "{x}"], "the run is complete (summary.json); nothing to resume", _setup_complete),
    "resume with overrides": (["run", "seed=3", "--resume", "runs/x"], "--resume: give only the run directory", None),
    "resume a corrupted model.zip": (["run", "--resume", "{x}"], "/model.zip", _setup_corrupt_model),
    "resume a corrupted state.pkl": (["run", "--resume", "{x}"], "unreadable (UnpicklingError", _setup_corrupt_state),
    "resume with progress.csv cut short": (["run", "--resume", "{x}"], "holds 0 rows, but the checkpoint logged 1", _setup_short_progress),
    "resume a run still running": (["run", "--resume", "{x}"], "still running (pid", _setup_still_running),
    "resume with an edited bad config": (["run", "--resume", "{x}"], "seed: must be >= 0", _setup_bad_config_in_run),
    "sweep workers zero": (["sweep", "{x}", "--workers", "0"], "--workers: must be >= 1", _file("s.yaml", SWEEP)),
    "sweep without base": (["sweep", "{x}"], "base is missing", _file("s.yaml", {"name": "s"})),
    "sweep bad seeds": (["sweep", "{x}"], "seeds must be a positive count or a list of seeds", _file("s.yaml", {**SWEEP, "seeds": 0})),
    "sweep grid not a list": (["sweep", "{x}"], "overrides.grid.agent.exploration must be a non-empty list",
                              _file("s.yaml", {**SWEEP, "overrides": {"grid": {"agent.exploration": 2}}})),
    "tune bad direction": (["tune", "{x}"], "direction must be minimize or maximize", _file("t.yaml", {**TUNE, "direction": "up"})),
    "tune n_trials zero": (["tune", "{x}"], "n_trials must be a positive integer", _file("t.yaml", {**TUNE, "n_trials": 0})),
    "report on a file": (["report", "{x}"], "is not a directory", _file("r.txt", "x")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_input_is_one_line_and_leaves_nothing_complete(in_tmp, capsys, case):
    argv, message, setup = CASES[case]
    value = setup(in_tmp) if setup else None
    complete_before = {path for path in in_tmp.rglob("summary.json")}
    capsys.readouterr()
    code = main([item.replace("{x}", value) if value else item for item in argv] + ["--no-progress"] * (argv[0] == "run"))
    error = capsys.readouterr().err
    assert code != 0
    assert error.count("\n") == 1 and error.startswith("causalrl: error: ") and message in error, error
    assert "Traceback" not in error
    new_complete = {path for path in in_tmp.rglob("summary.json") if path not in complete_before
                    and json.loads(path.read_text()).get("status") == "complete"}
    assert not new_complete


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("action", [np.array([0, 1, 2, 0]), np.array([0, 1]), np.array([[0, 1, 0, 1]]), "0101"])
def test_bad_bandit_actions_are_one_line_errors(action):
    import gymnasium as gym

    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=4)
    env.reset(seed=0)
    with pytest.raises(ValueError) as error:
        env.step(action)
    assert str(error.value).startswith("action: expected a 0/1 vector of shape (4,)") and "\n" not in str(error.value)


def test_a_cut_error_line_keeps_what_failed_and_the_fix():
    from causalrl.experiment.config.schema import one_line

    error = ValueError(f"judge: {'/very/long/path' * 40}/model.zip: refused; load it with trust_models: true")
    line = one_line(error, limit=120)
    assert len(line) == 120 and line.startswith("ValueError: judge: /very/long")
    assert line.endswith("load it with trust_models: true") and " ... " in line
    assert one_line(ValueError("short"), limit=120) == "ValueError: short"
