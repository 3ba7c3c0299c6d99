"""A planted payload in any file any command loads never runs (README, "Pickles"; docs/runner.md).

Every payload here would create a marker file (``os.system("touch ...")``); each case asserts the
marker does not exist afterwards, whatever the command answered, and that the answer was one
line, never a traceback. Covered: Stable-Baselines3 ``model.zip`` files named by a config
(``env.intervention.expert`` / ``reference``, ``env.judge``, in ``run``, ``sweep`` and on
``--resume``), every pickled entry of such a zip and its tensors, an SB3 checkpoint's
``model.zip`` and ``replay_buffer.pkl``, and every other run file (``config.yaml``,
``state.json``, ``state.pkl``, ``status.json``, ``summary.json``, ``run.json``,
``structure.jsonl``, ``progress.csv``, ``error.json``) under ``run --resume``, ``report`` and
``graph``. Serious item 1 of the reliability review is
``test_serious_1_a_payload_in_a_model_named_by_a_config_never_runs``.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from reliability_helpers import cli, stopped_run

from causalrl.core.safe_pickle import UnsafePickleError, bare_reference, safe_load, sb3_custom_objects
from causalrl.experiment.config import configs_from, validate
from causalrl.experiment.run.runner import run

WORLD = {"n_relevant_states": 2, "n_distractor_states": 1, "n_relevant_actions": 1, "n_irrelevant_actions": 1}
TINY_SAC = {"name": "sac", "learning_starts": 10, "batch_size": 8, "buffer_size": 100, "device": "cpu",
            "policy_kwargs": {"net_arch": [8]}}
LEARNER = {"name": "rlif", "learning_starts": 10, "batch_size": 8, "buffer_size": 100, "device": "cpu",
           "policy_kwargs": {"net_arch": [8]}}
TALLY_LABEL = "reliability/security"  # cases counted and timed by tests/conftest.py


class Payload:
    """Pickles to ``os.system("touch MARKER")``: unpickling it runs the command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def no_traceback(code: int, err: str) -> None:
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err, err
    if code:
        assert err.count("causalrl: error:") == 1, err


@pytest.fixture(scope="module")
def sac_files(tmp_path_factory):
    """A saved SAC (model.zip of a finished run, the expert/judge) and a SAC run stopped after
    its first checkpoint (model.zip + replay_buffer.pkl + state files)."""
    root = tmp_path_factory.mktemp("sac")
    base = {"progress_bar": False, "total_steps": 40, "log_interval": 20, "checkpoint_interval": 20,
            "env": {"id": "causalrl/FactoredLQR-v0", **WORLD}, "agents": [TINY_SAC]}
    model = run(validate(base)[0], run_dir=root / "expert").run_dir / "model.zip"
    stopped_run(validate({**base, "total_steps": 60})[0], root / "stopped")
    return {"model": model, "stopped": root / "stopped"}


def _zip_items(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path: Path, items: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in items.items():
            archive.writestr(name, data)
    return path


def global_reference(module: str, name: str) -> bytes:
    """A pickle that only names ``module.name`` (the GLOBAL opcode), written by hand."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n."


def pickled_keys(model: Path) -> list[str]:
    data = json.loads(_zip_items(model)["data"])
    return sorted(key for key, value in data.items() if isinstance(value, dict) and ":serialized:" in value)


def plant(model: Path, key: str, pickled: bytes, target: Path) -> Path:
    """A copy of ``model`` whose data entry ``key`` is the pickle ``pickled``."""
    items = _zip_items(model)
    data = json.loads(items["data"])
    data[key] = {":type:": "<class 'object'>", ":serialized:": base64.b64encode(pickled).decode()}
    items["data"] = json.dumps(data).encode()
    return _write_zip(target, items)


# SB3 2.x writes these 11 pickled entries for SAC (and the SAC family: CIP, ACE, RLIF, DAgger)
SAC_PICKLED = ["_last_episode_starts", "_last_obs", "_last_original_obs", "action_space", "ep_info_buffer",
               "ep_success_buffer", "lr_schedule", "observation_space", "policy_class", "replay_buffer_class",
               "train_freq"]


def test_the_planted_keys_are_every_pickled_entry_sb3_writes(sac_files):
    assert pickled_keys(sac_files["model"]) == SAC_PICKLED


def _config(tmp_path: Path, place: str, model: str, good: str) -> Path:
    if place == "intervention.expert":
        env = {"id": "causalrl/FactoredLQR-v0", **WORLD, "intervention": {"expert": model}}
    elif place == "intervention.reference":
        env = {"id": "causalrl/FactoredLQR-v0", **WORLD, "intervention": {"expert": good, "reference": model}}
    else:
        env = {"id": "causalrl/FactoredLQRIntervention-v0", **WORLD, "judge": model}
    data = {"progress_bar": False, "total_steps": 20, "log_interval": 10, "output_dir": str(tmp_path / "runs"),
            "env": env, "agent": LEARNER}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


PLACES = ["intervention.expert", "intervention.reference", "judge"]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("key", SAC_PICKLED)
def test_serious_1_a_payload_in_a_model_named_by_a_config_never_runs(sac_files, tmp_path, place, key):
    marker = tmp_path / "PWNED"
    evil = plant(sac_files["model"], key, pickle.dumps(Payload(marker)), tmp_path / "evil.zip")
    code, err = cli(["run", str(_config(tmp_path, place, str(evil), str(sac_files["model"]))), "--no-progress"])
    assert code == 2 and "evil.zip" in err and key in err, err
    no_traceback(code, err)
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()  # refused before any directory was made


@pytest.mark.parametrize("place", PLACES)
def test_a_model_named_by_a_config_loads_without_unpickling(sac_files, tmp_path, place):
    code, err = cli(["run", str(_config(tmp_path, place, str(sac_files["model"]), str(sac_files["model"]))),
                     "--no-progress"])
    assert code == 0, err


@pytest.mark.parametrize("reference", ["posix:system", "os:system", "builtins:eval", "subprocess:Popen",
                                       "stable_baselines3.common.vec_env:SubprocVecEnv", "antigravity:fly",
                                       "causalrl.envs.experts:Path", "stable_baselines3.sac.policies:Actor"])
def test_a_class_reference_outside_sb3_policies_is_refused_without_importing(sac_files, tmp_path, reference):
    module, name = reference.split(":")
    pickled = global_reference(module, name)
    assert bare_reference(pickled) == (module, name)
    evil = plant(sac_files["model"], "policy_class", pickled, tmp_path / "evil.zip")
    code, err = cli(["run", str(_config(tmp_path, "judge", str(evil), "")), "--no-progress"])
    assert code == 2 and ("policy_class" in err or "cannot load as SAC" in err), err  # Actor: an SB3 policy of
    no_traceback(code, err)                                                           # the wrong shape
    assert "antigravity" not in sys.modules


def test_a_payload_in_the_tensors_never_runs(sac_files, tmp_path):
    marker = tmp_path / "PWNED"
    items = _zip_items(sac_files["model"])
    items["policy.pth"] = pickle.dumps(Payload(marker))  # torch.load(weights_only=True) refuses it
    evil = _write_zip(tmp_path / "evil.zip", items)
    code, err = cli(["run", str(_config(tmp_path, "judge", str(evil), "")), "--no-progress"])
    assert code == 2 and "evil.zip" in err, err
    assert not marker.exists()


def test_a_payload_in_a_model_named_by_a_sweep_never_runs(sac_files, tmp_path):
    marker = tmp_path / "PWNED"
    evil = plant(sac_files["model"], "observation_space", pickle.dumps(Payload(marker)), tmp_path / "evil.zip")
    base = {"progress_bar": False, "total_steps": 20, "log_interval": 10,
            "env": {"id": "causalrl/FactoredLQRIntervention-v0", **WORLD}, "agent": LEARNER}
    spec = {"name": "s", "base": base, "overrides": {"list": [[f"env.judge={evil}"], ["env.judge=oracle"]]}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    code, err = cli(["sweep", "s.yaml", "--workers", "1", "--no-progress"], cwd=tmp_path)
    assert code == 1 and "Traceback" not in err and "observation_space" in err, err  # the trial failed, the other ran
    assert not marker.exists()


def test_trust_models_is_the_only_way_to_unpickle_and_says_so(sac_files, tmp_path):
    """A model whose learning rate is a (harmless) function needs code to load: refused with the
    hint, and loaded with --trust-models."""
    import gymnasium as gym
    from stable_baselines3 import SAC

    from causalrl.experiment.config.plugins import load_plugins

    load_plugins()
    agent = SAC("MlpPolicy", gym.make("causalrl/FactoredLQR-v0", **WORLD), learning_rate=lambda _: 3e-4,
                policy_kwargs={"net_arch": [8]}, buffer_size=100, device="cpu")
    agent.save(tmp_path / "schedule.zip")
    config = _config(tmp_path, "judge", str(tmp_path / "schedule.zip"), "")
    code, err = cli(["run", str(config), "--no-progress"])
    assert code == 2 and "learning_rate" in err and "trust_models: true" in err, err
    code, err = cli(["run", str(config), "--no-progress", "--trust-models"])
    assert code == 0, err


# --- an SB3 checkpoint on --resume ----------------------------------------------------------------
def _stopped_copy(sac_files, tmp_path: Path) -> tuple[Path, Path]:
    run_dir = tmp_path / "run"
    shutil.copytree(sac_files["stopped"], run_dir)
    (checkpoint,) = (run_dir / "checkpoints").glob("step_*")
    return run_dir, checkpoint


@pytest.mark.parametrize("key", SAC_PICKLED)
def test_a_payload_in_an_sb3_checkpoint_model_never_runs_on_resume(sac_files, tmp_path, key):
    run_dir, checkpoint = _stopped_copy(sac_files, tmp_path)
    marker = tmp_path / "PWNED"
    plant(checkpoint / "model.zip", key, pickle.dumps(Payload(marker)), tmp_path / "evil.zip")
    shutil.copy(tmp_path / "evil.zip", checkpoint / "model.zip")
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 2 and "model.zip" in err, err
    no_traceback(code, err)
    assert not marker.exists()


@pytest.mark.parametrize("content", ["payload", "a list", "an int", "a dict buffer"])
def test_a_payload_or_a_stranger_in_replay_buffer_pkl_never_runs(sac_files, tmp_path, content):
    run_dir, checkpoint = _stopped_copy(sac_files, tmp_path)
    marker = tmp_path / "PWNED"
    data = {"payload": Payload(marker), "a list": [1, 2], "an int": 5, "a dict buffer": {"observations": [1]}}[content]
    (checkpoint / "replay_buffer.pkl").write_bytes(pickle.dumps(data))
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 2 and "replay_buffer.pkl" in err, err
    assert not marker.exists()


@pytest.mark.parametrize("edit", ["buffer_size", "batch_size", "policy_kwargs", "num_timesteps", "gamma"])
def test_sb3_checkpoint_settings_must_match_the_config(sac_files, tmp_path, edit):
    run_dir, checkpoint = _stopped_copy(sac_files, tmp_path)
    items = _zip_items(checkpoint / "model.zip")
    data = json.loads(items["data"])
    data[edit] = {"buffer_size": 10**12, "batch_size": 10**9, "policy_kwargs": {"net_arch": [10**6]},
                  "num_timesteps": 5, "gamma": 7.0}[edit]
    items["data"] = json.dumps(data).encode()
    _write_zip(checkpoint / "model.zip", items)
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 2 and edit in err, err


def test_an_sb3_checkpoint_resumes_without_unpickling(sac_files, tmp_path, monkeypatch):
    run_dir, _ = _stopped_copy(sac_files, tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("an unrestricted unpickler was used")

    import stable_baselines3.common.off_policy_algorithm as off_policy
    import stable_baselines3.common.save_util as save_util

    monkeypatch.setattr(save_util.cloudpickle, "loads", forbidden)
    monkeypatch.setattr(off_policy, "load_from_pkl", forbidden)
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 0, err


def test_a_changed_expert_file_is_checked_again_on_resume(sac_files, tmp_path):
    marker = tmp_path / "PWNED"
    expert = tmp_path / "expert.zip"
    shutil.copy(sac_files["model"], expert)
    config = _config(tmp_path, "intervention.expert", str(expert), "")
    data = yaml.safe_load(config.read_text())
    data.update(total_steps=40, checkpoint_interval=20)
    stopped_run(configs_from(data)[0], tmp_path / "stopped")
    plant(sac_files["model"], "action_space", pickle.dumps(Payload(marker)), expert)  # swapped after the start
    code, err = cli(["run", "--resume", str(tmp_path / "stopped"), "--no-progress"])
    assert code == 2 and "expert.zip" in err, err
    assert not marker.exists()


# --- every other file a command reads -------------------------------------------------------------
RUN_FILES = ["config.yaml", "summary.json", "status.json", "run.json", "progress.csv", "structure.jsonl", "error.json",
             "checkpoints/step_0000000020/state.json", "checkpoints/step_0000000020/state.pkl",
             "checkpoints/step_0000000020/model.zip"]


def _contents(marker: Path) -> dict[str, bytes]:
    command = f"touch {marker}"
    return {"pickle": pickle.dumps(Payload(marker)),
            "yaml tag": f"!!python/object/apply:os.system [{command!r}]\n".encode(),
            "yaml tag in a key": f"env: !!python/object/apply:os.system [{command!r}]\nagent: {{name: ucb}}\n".encode(),
            "json holding a pickle": json.dumps({"status": "complete", "final": {"x": 1},
                                                 "data": base64.b64encode(pickle.dumps(Payload(marker))).decode()}).encode()}


@pytest.fixture(scope="module")
def bandit_stopped(tmp_path_factory):
    root = tmp_path_factory.mktemp("bandit")
    data = {"progress_bar": False, "total_steps": 60, "log_interval": 10, "checkpoint_interval": 20,
            "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3, "horizon": 60}, "agents": [{"name": "csl-ucb"}]}
    stopped_run(validate(data)[0], root / "stopped")
    return root / "stopped"


@pytest.mark.parametrize("command", ["resume", "report", "graph"])
@pytest.mark.parametrize("content", ["pickle", "yaml tag", "yaml tag in a key", "json holding a pickle"])
@pytest.mark.parametrize("name", RUN_FILES)
def test_a_payload_in_any_run_file_never_runs(bandit_stopped, tmp_path, command, content, name):
    run_dir = tmp_path / "runs" / "run"
    shutil.copytree(bandit_stopped, run_dir)
    marker = tmp_path / "PWNED"
    (run_dir / name).write_bytes(_contents(marker)[content])
    argv = {"resume": ["run", "--resume", str(run_dir), "--no-progress"],
            "report": ["report", str(tmp_path / "runs"), "--reps", "100", "--out", str(tmp_path / "out")],
            "graph": ["graph", str(run_dir)]}[command]
    code, err = cli(argv)
    no_traceback(code, err)
    assert not marker.exists()


# --- the allowlist itself -------------------------------------------------------------------------------
def test_a_class_merely_imported_into_an_allowed_module_is_refused():
    reference = global_reference("causalrl.envs.experts", "Path")
    assert bare_reference(reference) == ("causalrl.envs.experts", "Path")
    with pytest.raises(UnsafePickleError):
        safe_load(reference, class_packages=("causalrl.envs",))


def test_sb3_custom_objects_replaces_every_pickled_entry(sac_files):
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.policies import BasePolicy

    objects = sb3_custom_objects(sac_files["model"], {"policy_class": BasePolicy, "replay_buffer_class": ReplayBuffer},
                                 ("stable_baselines3",))
    assert sorted(objects) == SAC_PICKLED
