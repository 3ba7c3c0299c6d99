import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from causalrl.cli import main
from causalrl.experiment.config import ConfigError, load_experiment
from causalrl.experiment.run.runner import run


def _run_dirs(root: Path):
    return sorted(path.parent for path in root.rglob("progress.csv"))


def test_default_experiment_writes_complete_run_directories(in_tmp, capsys):
    assert main(["run", "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    run_dirs = _run_dirs(in_tmp / "runs")
    assert [str(path.relative_to(in_tmp)) for path in run_dirs] == sorted(line for line in printed if line.startswith("runs/"))
    assert {path.name.split("__")[1] for path in run_dirs} >= {"ucb", "linsem-ts-oracle"}
    for run_dir in run_dirs:
        for name in ("config.yaml", "progress.csv", "summary.json", "regret.png", "model.zip"):
            assert (run_dir / name).is_file(), name
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["steps"] == 1500
        header = (run_dir / "progress.csv").read_text().splitlines()[0].split(",")
        assert {"time/steps", "regret/cumulative", "regret/cumulative_realised", "regret/window_optimal_action_rate"} <= set(header)
        assert len((run_dir / "progress.csv").read_text().splitlines()) == 1 + 15  # one row per 100 rounds
    by_agent = {json.loads((d / "summary.json").read_text())["agent"]: json.loads((d / "summary.json").read_text())
                for d in run_dirs}
    # the oracle Thompson sampler beats uniform-arm UCB by a wide margin on this instance
    assert by_agent["linsem-ts-oracle"]["final"]["regret/cumulative"] < 0.2 * by_agent["ucb"]["final"]["regret/cumulative"]
    assert list((in_tmp / "runs" / "default").glob("comparison__*.png"))


def test_config_yaml_reruns_the_same_experiment(in_tmp):
    first = run(load_experiment(None, ["agents=ucb", "total_steps=300", "progress_bar=false"])[0])
    rerun = load_experiment(first.run_dir / "config.yaml")
    assert len(rerun) == 1 and rerun[0] == load_experiment(None, ["agents=ucb", "total_steps=300", "progress_bar=false"])[0]


def test_same_seed_gives_byte_identical_progress(in_tmp):
    overrides = ["total_steps=400", "log_interval=50", "progress_bar=false", "seed=5", "env.n_nodes=7"]
    for agent in ("ucb", "linsem-ts-oracle", "linsem-ucb-oracle"):
        config = load_experiment(_single_agent_file(in_tmp, agent), overrides)[0]
        first, second = ((run(config).run_dir / "progress.csv").read_bytes() for _ in range(2))
        assert first == second, agent
    config = load_experiment(_single_agent_file(in_tmp, "linsem-ts-oracle"), overrides + ["seed=6"])[0]
    assert (run(config).run_dir / "progress.csv").read_bytes() != first  # the seed matters


def _single_agent_file(folder: Path, agent: str) -> Path:
    path = folder / f"{agent}.yaml"
    path.write_text(yaml.safe_dump({"env": {"id": "causalrl/LinearSEMBandit-v0"}, "agent": {"name": agent}}))
    return path


def test_overrides_reach_env_and_agent():
    config = load_experiment(None, ["env.n_nodes=6", "agents.ucb.window=10", "agents=ucb", "seed=2"])
    assert len(config) == 1
    assert config[0].env.kwargs["n_nodes"] == 6 and config[0].agent.kwargs == {"window": 10} and config[0].seed == 2


MALFORMED = {
    "unknown agent": (["agents.ucb.name=nope"], "agent.name: unknown agent 'nope'"),
    "unknown env": (["env.id=causalrl/Nope-v0"], "env.id: unknown env"),
    "unknown top-level override": (["horizon=10"], "unknown key 'horizon'"),
    "unknown env override": (["env.bogus=1"], "env.bogus: unknown key"),
    "unknown agent override": (["agent.bogus=1"], "agent[csl-ucb].bogus: unknown key"),
    "override without value": (["default", "seed"], "write key=value"),
    "cyclic adjacency": (["env.observational_weights=[[0,1],[1,0]]", "env.interventional_weights=[[0,0],[0,0]]"],
                         "observational_weights: graph has a cycle"),
    "non-square adjacency": (["env.observational_weights=[[0,1,0],[0,0,1]]", "env.interventional_weights=[[0,0],[0,0]]"],
                             "observational_weights: must be a square"),
    "negative noise std": (["env.noise_std=-1"], "noise_std: must be >= 0"),
    "non-positive horizon": (["env.horizon=0"], "horizon: must be a positive integer"),
    "non-positive total_steps": (["total_steps=0"], "total_steps: must be a positive integer"),
    "string seed": (["seed=abc"], "seed: must be an integer"),
    "agent selection": (["agents=foo"], "foo not in this experiment"),
    "eval_interval off the log grid": (["eval_interval=150"], "eval_interval: must be a multiple of log_interval"),
    "negative eval_interval": (["eval_interval=-100"], "eval_interval: must be >= 0"),
    "zero eval_episodes": (["eval_episodes=0"], "eval_episodes: must be a positive integer"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_bad_input_is_a_one_line_error_and_leaves_nothing(in_tmp, capsys, case):
    overrides, message = MALFORMED[case]
    assert main(["run", "--no-progress", *overrides]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("causalrl: error: ") and message in error, error
    assert not list(in_tmp.rglob("summary.json"))


@pytest.mark.parametrize("content, message", [
    ("env: [unclosed\n", "malformed YAML at line"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("env: {id: causalrl/LinearSEMBandit-v0}\n", "agent: missing"),
    ("agent: {name: ucb}\n", "env: must be a mapping with an `id`"),
    ("env: {id: causalrl/LinearSEMBandit-v0}\nagent: {name: ucb}\nhorizon: 3\n", "horizon: unknown key"),
])
def test_bad_files_are_one_line_errors(in_tmp, capsys, content, message):
    (in_tmp / "bad.yaml").write_text(content)
    assert main(["run", "bad.yaml"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error
    assert main(["run", "missing.yaml"]) == 2
    assert "not found" in capsys.readouterr().err


def test_console_script_exit_status_and_debug_traceback(in_tmp):
    command = [sys.executable, "-m", "causalrl.cli", "run", "env.noise_std=-1"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2 and quiet.stderr.strip().count("\n") == 0 and "Traceback" not in quiet.stderr
    loud = subprocess.run(command + ["--debug"], capture_output=True, text=True, timeout=120)
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_list_names_envs_agents_and_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("causalrl/LinearSEMBandit-v0", "causalrl/PiecewiseSEMBandit-v0", "ucb", "linsem-ts-oracle", "default"):
        assert name in out


def test_config_error_type():
    with pytest.raises(ConfigError):
        load_experiment("no-such-preset")


def test_every_shipped_run_preset_validates():
    from causalrl.experiment.config import preset_names, read_source

    run_presets = [name for name in preset_names()  # bench-* suites: tests/test_bench.py
                   if "base" not in read_source(name)[0] and not name.startswith("bench-")]
    assert {"default", "csl-ucb-paper", "csl-ucb-nonstationary", "cip-factored"} <= set(run_presets)
    for name in run_presets:
        assert load_experiment(name), name


def test_every_shipped_sweep_preset_expands_into_valid_trials():
    from causalrl.experiment.batch.sweep import load_sweep
    from causalrl.experiment.config import preset_names

    sweeps = [name for name in preset_names() if name.startswith("sweep-")]
    assert {"sweep-cip-gym", "sweep-cip-gym-delay1", "sweep-cip-invpend-10k", "sweep-csl-ucb-paper"} <= set(sweeps)
    for name in sweeps:
        trials = load_sweep(name).trials
        assert trials and all(not trial.config.progress_bar for trial in trials), name
    invpend = load_sweep("sweep-cip-invpend-10k").trials
    assert sorted({(t.agent, t.config.agent.kwargs.get("empowerment_warmup")) for t in invpend}, key=str) == \
        [("cip", 2000), ("cip", 300), ("sac", None)]
    assert {t.config.total_steps for t in invpend} == {10_000}
    delay1 = load_sweep("sweep-cip-gym-delay1").trials
    assert {(t.agent, t.config.agent.kwargs.get("policy_delay")) for t in delay1} == {("cip", 1)} and len(delay1) == 25


def test_options_and_overrides_mix_in_any_order(in_tmp, capsys):
    assert main(["run", "default", "--no-progress", "agents=ucb", "total_steps=200"]) == 0
    summary = json.loads(next(in_tmp.rglob("summary.json")).read_text())
    assert summary["agent"] == "ucb" and summary["steps"] == 200
    with pytest.raises(SystemExit):
        main(["run", "default", "--bogus-flag"])
