"""Honest devices: ``agent.device`` is resolved before a run starts; a fallback (``cuda`` on a
machine without CUDA) prints one line, and config.yaml, TensorBoard's hyperparameters and
summary.json record the device the run used."""

from __future__ import annotations

import io
import json

import pytest
import torch

from causalrl.cli import main
from causalrl.experiment.config import parse_yaml
from causalrl.experiment.run.device import available_device, resolve_device

SAC = {"experiment": "honest", "total_steps": 100, "log_interval": 50, "env": {"id": "Pendulum-v1"},
       "agent": {"name": "sac", "learning_starts": 50, "batch_size": 16, "buffer_size": 500,
                 "policy_kwargs": {"net_arch": [8]}}}


def _run(folder, device: str) -> int:
    (folder / "sac.yaml").write_text(json.dumps({**SAC, "agent": {**SAC["agent"], "device": device}}))
    return main(["run", "--no-progress", "sac.yaml"])


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without CUDA (whatever it has), for SB3 and causalrl alike."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _only_run(root):
    (summary,) = root.rglob("summary.json")
    return summary.parent


def test_cuda_without_cuda_runs_on_cpu_says_so_once_and_records_cpu(in_tmp, capsys, no_cuda):
    assert _run(in_tmp, "cuda") == 0
    captured = capsys.readouterr()
    lines = [line for line in (captured.err + captured.out).splitlines() if "device" in line.lower()]
    assert lines == ["causalrl: agent.device=cuda: CUDA is not available on this machine; this run uses cpu and "
                     "records device: cpu in config.yaml"]
    run_dir = _only_run(in_tmp)
    config = parse_yaml((run_dir / "config.yaml").read_text(), "config.yaml")
    assert config["agent"]["device"] == "cpu"
    assert json.loads((run_dir / "summary.json").read_text())["device"] == "cpu"


def test_a_device_the_machine_has_is_kept_without_a_word(in_tmp, capsys, no_cuda):
    assert _run(in_tmp, "cpu") == 0
    captured = capsys.readouterr()
    assert "device" not in captured.err + captured.out
    run_dir = _only_run(in_tmp)
    assert parse_yaml((run_dir / "config.yaml").read_text(), "config.yaml")["agent"]["device"] == "cpu"
    assert json.loads((run_dir / "summary.json").read_text())["device"] == "cpu"


def test_available_device_resolves_auto_cuda_and_indices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert available_device("auto") == ("cuda", "")
    assert available_device("cuda:1") == ("cuda:1", "")
    assert available_device("cuda:2") == ("cpu", "this machine has 2 CUDA device(s), no cuda:2")
    assert available_device("cpu") == ("cpu", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert available_device("auto") == ("cpu", "")  # auto picks: no fallback to report
    assert available_device("cuda") == ("cpu", "CUDA is not available on this machine")


def test_resolve_device_leaves_configs_without_a_device_alone(no_cuda):
    from causalrl.experiment.config.validate import configs_from

    (config,) = configs_from({"env": {"id": "Pendulum-v1"}, "agent": {"name": "sac"}})
    stream = io.StringIO()
    assert resolve_device(config, stream) is config and stream.getvalue() == ""
    (auto,) = configs_from({"env": {"id": "Pendulum-v1"}, "agent": {"name": "sac", "device": "auto"}})
    resolved = resolve_device(auto, stream)
    assert resolved.agent.kwargs["device"] == "cpu" and stream.getvalue() == ""  # auto: recorded as used, silently


def test_a_run_written_on_a_cuda_machine_resumes_here_on_the_cpu_and_says_so(in_tmp, capsys, monkeypatch):
    import gymnasium.envs.classic_control.pendulum as pendulum
    import stable_baselines3.common.base_class as base_class

    import causalrl.experiment.run.device as device

    # the first part "on a CUDA machine": causalrl keeps device cuda (SB3 still trains on the CPU);
    # the env fails at its 70th step, after the checkpoint at step 50
    monkeypatch.setattr(device, "available_device", lambda requested: (requested, ""))
    monkeypatch.setattr(base_class, "get_device", lambda requested="auto": torch.device("cpu"))
    step, calls = pendulum.PendulumEnv.step, []

    def failing_step(self, action):
        calls.append(1)
        if len(calls) == 70:
            raise RuntimeError("the machine went away")
        return step(self, action)

    monkeypatch.setattr(pendulum.PendulumEnv, "step", failing_step)
    (in_tmp / "sac.yaml").write_text(json.dumps({**SAC, "checkpoint_interval": 50,
                                                 "agent": {**SAC["agent"], "device": "cuda"}}))
    assert main(["run", "--no-progress", "sac.yaml"]) == 1
    (run_dir,) = [path.parent for path in in_tmp.rglob("config.yaml") if path.parent.name != in_tmp.name]
    assert parse_yaml((run_dir / "config.yaml").read_text(), "config.yaml")["agent"]["device"] == "cuda"
    monkeypatch.undo()
    capsys.readouterr()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # resumed where there is no CUDA
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in (captured.err + captured.out).splitlines() if "device" in line.lower()]
    assert lines == ["causalrl: agent.device=cuda: CUDA is not available on this machine; this run goes on on "
                     "cpu; summary.json records it"]
    assert json.loads((run_dir / "summary.json").read_text())["device"] == "cpu"
    assert parse_yaml((run_dir / "config.yaml").read_text(), "config.yaml")["agent"]["device"] == "cuda"
