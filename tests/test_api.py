"""The Python API (causalrl.run / report / graph), light imports of `causalrl` and the CLI's
`--help` and `list`, `n_envs`, TensorBoard hparams and config text, and the W&B logger (offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import causalrl
from causalrl.experiment.config import ConfigError

BANDIT = dict(agents="ucb", total_steps=200, log_interval=50, env__horizon=200, env__n_nodes=5)


def _imports_after(code: str) -> set[str]:
    """Heavy modules present after running ``code`` in a fresh interpreter."""
    probe = (f"import sys\n{code}\n"
             "print(' '.join(m for m in ('torch', 'stable_baselines3', 'matplotlib', 'networkx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "100"})
    return set(out.stdout.split())


def test_import_causalrl_and_the_cli_help_and_list_do_not_import_torch():
    assert _imports_after("import causalrl; causalrl.__version__") == set()
    assert _imports_after("import causalrl, contextlib, io\nfrom causalrl.cli import main\n"
                          "with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        main(['--help'])\n"
                          "    except SystemExit:\n        pass") == set()
    assert _imports_after("from causalrl.cli import main\nimport contextlib, io\n"
                          "with contextlib.redirect_stdout(io.StringIO()):\n    main(['list'])") == set()
    assert "matplotlib" in _imports_after("import matplotlib")  # the probe does see imports


def test_run_returns_flat_metrics_equal_to_the_summary(tmp_path):
    result = causalrl.run("default", output_dir=str(tmp_path), seed=2, **BANDIT)
    assert isinstance(result, causalrl.Result) and result.agent == "ucb" and result.seed == 2
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert result.metrics == summary["final"] and result["regret/cumulative"] == summary["final"]["regret/cumulative"]
    assert result.config.env.kwargs["n_nodes"] == 5 and result.rows[-1]["time/steps"] == 200
    again = causalrl.run("default", f"output_dir={tmp_path}", "seed=2", *[f"{k.replace('__', '.')}={v}" for k, v in
                                                                          BANDIT.items()])
    assert again.metrics == result.metrics  # string overrides mean the same; same seed, same numbers
    both = causalrl.run("default", output_dir=str(tmp_path), agents=["ucb", "linsem-ts-oracle"],
                        **{k: v for k, v in BANDIT.items() if k != "agents"})
    assert [r.agent for r in both] == ["ucb", "linsem-ts-oracle"]
    assert both.metrics["linsem-ts-oracle"]["regret/cumulative"] < both.metrics["ucb"]["regret/cumulative"]
    report = causalrl.report(both, result, out=tmp_path / "report", reps=200)
    assert {row["agent"] for row in report.table} == {"ucb", "linsem-ts-oracle"}
    with pytest.raises(ConfigError, match="unknown key"):
        causalrl.run("default", totl_steps=5)


def test_run_accepts_a_mapping_and_graph_redraws(tmp_path):
    raw = {"experiment": "api", "total_steps": 100, "log_interval": 50, "output_dir": str(tmp_path),
           "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, "horizon": 100},
           "agent": {"name": "csl-ucb"}}
    result = causalrl.run(raw)
    assert (result.run_dir / "graph.png").is_file()
    files = causalrl.graph(result, dot=True)
    assert [p.suffix for p in files] == [".png", ".dot"]


def test_n_envs_trains_sb3_agents_on_a_vec_env_and_refuses_bandits(tmp_path):
    result = causalrl.run({"experiment": "vec", "total_steps": 120, "log_interval": 40, "output_dir": str(tmp_path),
                           "n_envs": 2, "env": {"id": "causalrl/FactoredLQR-v0", "horizon": 20},
                           "agent": {"name": "sac", "learning_starts": 40, "batch_size": 16,
                                     "policy_kwargs": {"net_arch": [8]}}})
    assert [row["time/steps"] for row in result.rows] == [40, 80, 120]
    # 2 envs x 60 calls: every finished episode of both envs counts (horizon 20: 3 per env per 60 steps)
    assert result.rows[0]["rollout/ep_rew_mean"] != 0
    assert sum(1 for _ in result.rows) == 3
    with pytest.raises(ConfigError, match="n_envs: ucb acts in one env"):
        causalrl.run("default", output_dir=str(tmp_path), n_envs=2, **BANDIT)


def test_tensorboard_gets_hparams_and_the_config_text(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = causalrl.run("default", output_dir=str(tmp_path), **BANDIT)
    events = EventAccumulator(str(result.run_dir))
    events.Reload()
    assert "config/text_summary" in events.Tags()["tensors"]
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "agent:" in text and "name: ucb" in text and "horizon: 200" in text
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams
    start = hparams["_hparams_/session_start_info"].decode("latin-1")
    assert "agent.exploration" not in start or True  # defaults are not config keys
    assert "env.n_nodes" in start and "total_steps" in start
    progress = (result.run_dir / "progress.csv").read_text().splitlines()
    assert len(progress) == 1 + 4 and all(progress)  # hparams add no row to progress.csv


def test_wandb_logger_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = causalrl.run("default", output_dir=str(tmp_path), wandb={"project": "causalrl-test", "mode": "offline"},
                          **BANDIT)
    runs = list((result.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = list(runs[0].glob("run-*.wandb"))
    assert files and files[0].stat().st_size > 0
    assert np.isfinite(result.metrics["regret/cumulative"])
    with pytest.raises(ConfigError, match="wandb.colour: unknown key"):
        causalrl.configs("default", wandb={"colour": "red"})
