"""`causalrl tune`: validation, a small search that beats the default on held-out seeds, and a
study whose process died mid-trial resuming where it stopped."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from causalrl.experiment.batch.tune import _open_study, load_tune, run_tune  # noqa: E402
from causalrl.experiment.config import ConfigError  # noqa: E402

BASE = {
    "experiment": "test-tune",
    "total_steps": 150,
    "log_interval": 50,
    "save_model": False,
    "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 6, "instance_seed": 1, "horizon": 150},
    "agents": [{"name": "linsem-ts-oracle"}],
}


def _tune_file(tmp_path: Path, name: str = "ts", **spec) -> Path:
    data = {"name": name, "base": BASE,
            "search": {"agents.linsem-ts-oracle.posterior_scale": {"low": 0.01, "high": 3.0, "log": True}},
            "objective": "regret/cumulative", "direction": "minimize", "seeds": [0, 1],
            "held_out_seeds": [100, 101, 102, 103], "n_trials": 6,
            "sampler": {"type": "tpe", "seed": 0, "n_startup_trials": 4},
            "pruner": {"type": "median", "n_startup_trials": 3}, **spec}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_validation_errors(tmp_path):
    with pytest.raises(ConfigError, match="low and high must be numbers with low < high"):
        load_tune(_tune_file(tmp_path, search={"agents.linsem-ts-oracle.posterior_scale": {"low": 2, "high": 1}}))
    with pytest.raises(ConfigError, match="posterior_scal"):
        load_tune(_tune_file(tmp_path, search={"agents.linsem-ts-oracle.posterior_scal": {"low": 0.1, "high": 1.0}}))
    with pytest.raises(ConfigError, match="exactly one agent"):
        load_tune(_tune_file(tmp_path, base={**BASE, "agents": ["linsem-ts-oracle", "ucb"]}))
    with pytest.raises(ConfigError, match="held_out_seeds must not repeat"):
        load_tune(_tune_file(tmp_path, held_out_seeds=[1, 5]))


def test_search_beats_the_default_on_held_out_seeds(tmp_path):
    spec = load_tune(_tune_file(tmp_path), output_dir=tmp_path)
    outcome = run_tune(spec, progress=False)
    best, default = outcome.held_out["best"]["mean"], outcome.held_out["default"]["mean"]
    assert best < default, outcome.text
    result = json.loads((spec.directory / "result.json").read_text())
    assert result["trials"] == 6 and result["best_params"] == outcome.best_params
    best_config = yaml.safe_load((spec.directory / "best.yaml").read_text())
    assert best_config["agent"]["posterior_scale"] == pytest.approx(outcome.best_params["agents.linsem-ts-oracle.posterior_scale"])


def test_interrupted_study_resumes(tmp_path):
    spec = load_tune(_tune_file(tmp_path, "resume", n_trials=4), output_dir=tmp_path)
    run_tune(spec, n_trials=2, evaluate=False, progress=False)
    first_runs = {p: p.stat().st_mtime_ns for p in (spec.directory / "trials").iterdir()}
    # a third trial was running when its process died (journal storage has no heartbeat)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = _open_study(spec, None, None)
    stale = study.ask()
    stale.suggest_float("agents.linsem-ts-oracle.posterior_scale", 0.01, 3.0, log=True)
    stale.set_user_attr("host", socket.gethostname())
    stale.set_user_attr("pid", dead.pid)
    half_done = spec.directory / "trials" / f"linsem-ts-oracle__t{stale.number:04d}__s0"
    half_done.mkdir()

    outcome = run_tune(spec, evaluate=False, progress=False)
    assert "re-queued 1 interrupted" in outcome.text
    trials = _open_study(spec, None, None).trials
    states = [t.state.name for t in trials]
    assert states.count("FAIL") == 1 and trials[stale.number].state.name == "FAIL"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == stale.number]
    assert len(retry) == 1 and retry[0].params == stale.params and retry[0].state.name in ("COMPLETE", "PRUNED")
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 4  # n_trials reached, no more
    assert not half_done.exists()
    for path, mtime in first_runs.items():  # the first two trials were not re-run
        assert path.stat().st_mtime_ns == mtime
