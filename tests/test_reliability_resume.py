"""``--resume`` reads the run directory as untrusted input (docs/runner.md, "Resume reads the run
directory as untrusted input"): every file it trusts is range-checked, no symbolic link is
followed out of the directory, and every check runs before the first byte changes. Each case
either refuses with one ``causalrl: error:`` line, exit status 2 and the directory byte-for-byte
unchanged, or resumes to a progress.csv byte-identical to an uninterrupted run.

Serious items of the reliability review, one named test each: 2 (a symlinked ``checkpoints/``),
5 (a partial last line in ``structure.jsonl``), 6 (``rows`` out of range), 7 (the fingerprint of
a run without a checkpoint), 8 (damaged checkpoints refused before anything changes).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import yaml
from reliability_helpers import cli, stopped_run

from causalrl.experiment.config import validate
from causalrl.experiment.run.runner import run

UCB = {"progress_bar": False, "total_steps": 60, "log_interval": 10, "checkpoint_interval": 20,
       "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3, "horizon": 60, "instance_seed": 0},
       "agents": [{"name": "ucb"}]}
CSL = {"progress_bar": False, "total_steps": 120, "log_interval": 20, "checkpoint_interval": 40,
       "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, "horizon": 120, "instance_seed": 0},
       "agents": [{"name": "csl-ucb"}]}
TALLY_LABEL = "reliability/resume"  # cases counted and timed by tests/conftest.py


def _stopped(root: Path, data: dict, name: str, checkpoints: int = 1) -> Path:
    """A run stopped (as a kill would) after its ``checkpoints``-th checkpoint (0: before the first)."""
    return stopped_run(validate(data)[0], root / name, checkpoints)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Stopped runs (UCB after its first checkpoint and before any, CSL-UCB with a
    structure.jsonl) and their uninterrupted references, made once and copied per case."""
    root = tmp_path_factory.mktemp("made")
    made = {"ucb": _stopped(root, UCB, "ucb"), "ucb0": _stopped(root, UCB, "ucb0", checkpoints=0),
            "csl": _stopped(root, CSL, "csl")}
    made["ucb-ref"] = run(validate(UCB)[0], run_dir=root / "ucb-ref").run_dir
    made["csl-ref"] = run(validate(CSL)[0], run_dir=root / "csl-ref").run_dir
    return made


def _copy(made: dict, name: str, root: Path) -> Path:
    target = root / "run"
    shutil.copytree(made[name], target, symlinks=True)
    return target


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (links as their target text) with a hash of its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.name == ".lock":
            continue
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = "link:" + os.readlink(path)
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "dir"
    return found


def refused(run_dir: Path, *words: str) -> str:
    """Resume ``run_dir``: one error line (containing ``words``), exit 2, nothing changed."""
    before = snapshot(run_dir)
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith("causalrl: error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert snapshot(run_dir) == before, "a refused resume changed the run directory"
    return err


def resumed(run_dir: Path, reference: Path) -> None:
    """Resume ``run_dir``: exit 0 and the same progress.csv (and structure.jsonl) as ``reference``."""
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 0, err
    assert (run_dir / "progress.csv").read_bytes() == (reference / "progress.csv").read_bytes()
    if (reference / "structure.jsonl").exists():
        assert (run_dir / "structure.jsonl").read_bytes() == (reference / "structure.jsonl").read_bytes()


def _checkpoint(run_dir: Path) -> Path:
    (folder,) = (run_dir / "checkpoints").glob("step_*")
    return folder


def _edit_state_json(run_dir: Path, edit) -> None:
    path = _checkpoint(run_dir) / "state.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


# --- serious item 2: no symbolic link is followed out of the run directory -------------------------
def test_serious_2_a_symlinked_checkpoints_folder_is_refused_and_its_target_untouched(made, tmp_path):
    run_dir = _copy(made, "ucb", tmp_path)
    outside = tmp_path / "outside"
    shutil.move(run_dir / "checkpoints", outside)  # the link's target even holds a real checkpoint
    (outside / "keep.txt").write_text("not causalrl's")
    (run_dir / "checkpoints").symlink_to(outside)
    before = snapshot(outside)
    refused(run_dir, "symbolic link", "checkpoints")
    assert snapshot(outside) == before and sorted(p.name for p in outside.iterdir()) == ["keep.txt", "step_0000000020"]


LINKED = ["progress.csv", "status.json", "config.yaml", ".lock", "run.json", "checkpoints/step_0000000020",
          "checkpoints/step_0000000020/state.pkl", "checkpoints/step_0000000020/model.zip",
          "checkpoints/step_0000000020/state.json", "events.link"]


@pytest.mark.parametrize("name", LINKED)
def test_a_symbolic_link_anywhere_in_a_run_directory_is_refused(made, tmp_path, name):
    run_dir = _copy(made, "ucb", tmp_path)
    outside = tmp_path / "outside"
    path = run_dir / name
    if path.exists():
        shutil.move(path, outside)
    else:
        outside.write_text("x")
    path.symlink_to(outside)
    target_before = snapshot(tmp_path / "outside") if outside.is_dir() else outside.read_bytes()
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"])
    assert code == 2 and err.count("\n") == 1 and "symbolic link" in err, err
    assert (snapshot(outside) if outside.is_dir() else outside.read_bytes()) == target_before


def test_a_pipe_in_a_run_directory_is_refused_without_blocking(made, tmp_path):
    run_dir = _copy(made, "ucb", tmp_path)
    (run_dir / "progress.csv").unlink()
    os.mkfifo(run_dir / "progress.csv")  # reading it would block forever
    refused(run_dir, "not a regular file")


# --- serious item 5: a partial last line of structure.jsonl ---------------------------------------
@pytest.mark.parametrize("tail", ['{"step":160,"learned":{"state_to_reward":[[0,1', '{"step":', "\x00\x01garbage", "{}"])
def test_serious_5_a_partial_last_line_of_structure_jsonl_neither_blocks_resume_nor_graph(made, tmp_path, tail):
    run_dir = _copy(made, "csl", tmp_path)
    with open(run_dir / "structure.jsonl", "a") as handle:
        handle.write(tail)  # what a kill or a full disk leaves during an append (no newline)
    code, err = cli(["graph", str(run_dir)])
    assert code == 0, err
    resumed(run_dir, made["csl-ref"])
    code, err = cli(["graph", str(run_dir)])
    assert code == 0, err


DAMAGED_LINES = {"not JSON": "{oops\n", "a list": "[1, 2]\n", "scalar learned": '{"step": 1, "learned": 5}\n',
                 "text step": '{"step": "x", "learned": {}}\n', "ragged matrix": '{"step": 1, "learned": {"a": [[1], [1, 0]]}}\n',
                 "deeply nested": "[" * 100_000 + "]" * 100_000 + "\n"}


@pytest.mark.parametrize("damage", list(DAMAGED_LINES))
@pytest.mark.parametrize("command", ["resume", "graph"])
def test_a_damaged_line_of_structure_jsonl_is_named_and_changes_nothing(made, tmp_path, damage, command):
    run_dir = _copy(made, "csl", tmp_path)
    lines = (run_dir / "structure.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "structure.jsonl").write_text(DAMAGED_LINES[damage] + "".join(lines))
    if command == "resume":
        refused(run_dir, "structure.jsonl: line 1")
    else:
        before = snapshot(run_dir)
        code, err = cli(["graph", str(run_dir)])
        assert code == 2 and err.count("\n") == 1 and "structure.jsonl: line 1" in err, err
        assert snapshot(run_dir) == before


# --- serious item 6: rows out of range ----------------------------------------------------------------
@pytest.mark.parametrize("rows", [0, -2, -1, 1, 3, 6, 10**12, 2**70, True, "abc", 1.5, None])
def test_serious_6_rows_out_of_range_are_refused_and_progress_csv_kept(made, tmp_path, rows):
    run_dir = _copy(made, "ucb", tmp_path)
    _edit_state_json(run_dir, lambda info: info.update(rows=rows))  # the checkpoint logged 2 rows at step 20
    refused(run_dir, "checkpoint")
    assert (run_dir / "progress.csv").exists()


def test_an_unedited_checkpoint_resumes_byte_identical(made, tmp_path):
    resumed(_copy(made, "ucb", tmp_path), made["ucb-ref"])


def test_rows_logged_after_the_checkpoint_are_cut_back_once(made, tmp_path):
    run_dir = _copy(made, "ucb", tmp_path)
    reference_rows = (made["ucb-ref"] / "progress.csv").read_text().splitlines(keepends=True)
    (run_dir / "progress.csv").write_text("".join(reference_rows[:5]) + reference_rows[5][:7])  # + a cut row
    resumed(run_dir, made["ucb-ref"])


# --- serious item 7: the fingerprint is stored at run start -------------------------------------------
def _edit_config(run_dir: Path, **changes) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["agent"].update(changes)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_serious_7_a_run_killed_before_its_first_checkpoint_refuses_an_edited_config(made, tmp_path):
    run_dir = _copy(made, "ucb0", tmp_path)
    assert not list((run_dir / "checkpoints").glob("step_*")) and (run_dir / "progress.csv").exists()
    _edit_config(run_dir, exploration=3.0)
    refused(run_dir, "config.yaml changed since the run started", "run.json")


def test_serious_7_a_complete_run_whose_summary_was_lost_refuses_an_edited_config(made, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(made["ucb-ref"], run_dir)
    (run_dir / "summary.json").unlink()  # a full disk at the very end: status.json already says complete
    _edit_config(run_dir, exploration=3.0)
    refused(run_dir, "config.yaml changed since the run started")


def test_serious_7_an_unedited_run_without_a_checkpoint_restarts_and_matches(made, tmp_path):
    resumed(_copy(made, "ucb0", tmp_path), made["ucb-ref"])


@pytest.mark.parametrize("damage", ["missing", "not JSON", "no fingerprint", "a list"])
def test_a_run_without_a_checkpoint_needs_a_readable_run_json(made, tmp_path, damage):
    run_dir = _copy(made, "ucb0", tmp_path)
    content = {"missing": None, "not JSON": "{", "no fingerprint": '{"format": 1}', "a list": "[1]"}[damage]
    if content is None:
        (run_dir / "run.json").unlink()
    else:
        (run_dir / "run.json").write_text(content)
    refused(run_dir, "run.json")


def test_a_run_json_fingerprint_also_guards_a_checkpointed_run(made, tmp_path):
    run_dir = _copy(made, "ucb", tmp_path)
    (run_dir / "run.json").write_text(json.dumps({"format": 1, "fingerprint": "0" * 16}))
    refused(run_dir, "config.yaml changed since the run started")


# --- serious item 8: a damaged checkpoint is refused before anything changes ---------------------------
def _rng(key, value):
    return lambda info: info["rng"].__setitem__(key, value)


def _python_state(edit):
    def apply(info):
        info["rng"]["python"] = edit(info["rng"]["python"])
    return apply


def _numpy_state(edit):
    def apply(info):
        info["rng"]["numpy"] = edit(info["rng"]["numpy"])
    return apply


STATE_JSON_DAMAGE = {
    "python rng a number": _rng("python", 5),
    "python rng version 2": _python_state(lambda s: [2, *s[1:]]),
    "python rng short": _python_state(lambda s: [s[0], s[1][:10], s[2]]),
    "python rng word too big": _python_state(lambda s: [s[0], [2**40] + s[1][1:], s[2]]),
    "python rng gauss text": _python_state(lambda s: [s[0], s[1], "x"]),
    "numpy rng short": _numpy_state(lambda s: [s[0], s[1][:100], *s[2:]]),
    "numpy rng other kind": _numpy_state(lambda s: ["PCG64", *s[1:]]),
    "numpy rng position": _numpy_state(lambda s: [s[0], s[1], 999, *s[3:]]),
    "numpy rng negative key": _numpy_state(lambda s: [s[0], [-1] + s[1][1:], *s[2:]]),
    "numpy rng float keys": _numpy_state(lambda s: [s[0], [0.5] * 624, *s[2:]]),
    "torch rng of length 3": _rng("torch", [1, 2, 3]),
    "torch rng byte 300": lambda info: info["rng"]["torch"].__setitem__(0, 300),
    "action_space rng on a bandit": _rng("action_space", {"bit_generator": "PCG64", "state": {}}),
    "rng missing": lambda info: info.pop("rng"),
    "rng extra key": _rng("extra", 1),
    "step text": lambda info: info.update(step="20"),
    "step zero": lambda info: info.update(step=0),
    "step negative": lambda info: info.update(step=-5),
    "step not the folder's": lambda info: info.update(step=30),
    "step beyond total_steps": lambda info: info.update(step=10**9),
    "format 1": lambda info: info.update(format=1),
    "fingerprint a number": lambda info: info.update(fingerprint=5),
    "env_layers numbers": lambda info: info.update(env_layers=[1, 2]),
    "not a mapping": lambda info: (info.clear(), info.update({"0": [1]})),
}


@pytest.mark.parametrize("damage", list(STATE_JSON_DAMAGE))
def test_serious_8_a_damaged_state_json_is_refused_before_anything_changes(made, tmp_path, damage):
    run_dir = _copy(made, "ucb", tmp_path)
    _edit_state_json(run_dir, STATE_JSON_DAMAGE[damage])
    refused(run_dir, "checkpoint")


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, "{" + " " * (5 * 2**20) + "}", "\xff\xfe", ""])
def test_serious_8_an_unreadable_state_json_is_refused(made, tmp_path, content):
    run_dir = _copy(made, "ucb", tmp_path)
    (_checkpoint(run_dir) / "state.json").write_text(content, errors="surrogateescape")
    refused(run_dir, "state.json")


def _edit_state_pkl(run_dir: Path, edit) -> None:
    import cloudpickle

    from causalrl.core.safe_pickle import safe_load
    from causalrl.experiment.run.checkpoints import _STATE_GLOBALS, _STATE_PACKAGES

    path = _checkpoint(run_dir) / "state.pkl"
    refs = {}

    def persistent_load(position):
        refs.setdefault(position, _Layer(position))
        return refs[position]

    with open(path, "rb") as file:
        state = safe_load(file, _STATE_GLOBALS, _STATE_PACKAGES, persistent_load=persistent_load)
    edit(state)

    class Pickler(cloudpickle.Pickler):
        def persistent_id(self, obj):
            return obj.position if isinstance(obj, _Layer) else None

    with open(path, "wb") as file:
        Pickler(file).dump(state)


class _Layer:
    def __init__(self, position):
        self.position = position


STATE_PKL_DAMAGE = {
    "metrics rows text": lambda s: s["metrics"].update(rows="abc"),
    "metrics rows one short": lambda s: s["metrics"]["rows"].pop(),
    "metrics steps off": lambda s: s["metrics"].update(steps=999),
    "metrics counter text": lambda s: s["metrics"].update(reward_sum="x"),
    "metrics shadows a method": lambda s: s["metrics"].update(_on_step=None),
    "env instance_seed text": lambda s: s["env"][-1].update(instance_seed="x"),
    "env world's SEM replaced": lambda s: s["env"][-1].update(_sem=5),
    "env horizon -1": lambda s: s["env"][-1].update(horizon=-1),
    "env step replaced": lambda s: s["env"][-1].update(step=0),
    "env one layer more": lambda s: s["env"].append({}),
    "logger not a mapping": lambda s: s.update(logger=[1]),
    "an extra key": lambda s: s.update(extra=1),
}


@pytest.mark.parametrize("damage", list(STATE_PKL_DAMAGE))
def test_serious_8_state_pkl_values_that_do_not_fit_the_run_are_refused(made, tmp_path, damage):
    run_dir = _copy(made, "ucb", tmp_path)
    _edit_state_pkl(run_dir, STATE_PKL_DAMAGE[damage])
    refused(run_dir, "checkpoint")


@pytest.mark.parametrize("entry", ["step_abc", "step_12", "step_0000000099.file", "step_"])
def test_serious_8_a_foreign_entry_in_checkpoints_is_refused(made, tmp_path, entry):
    run_dir = _copy(made, "ucb", tmp_path)
    path = run_dir / "checkpoints" / entry
    if entry.endswith(".file"):
        path.write_text("x")
    else:
        path.mkdir()
    refused(run_dir, entry)


def test_a_leftover_staging_folder_is_ignored(made, tmp_path):
    run_dir = _copy(made, "ucb", tmp_path)
    (run_dir / "checkpoints" / ".step_0000000040.tmp").mkdir()  # a kill while a checkpoint was staged
    resumed(run_dir, made["ucb-ref"])


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00", b"time/steps\n10\n30\n", b"a,b\n1,2\n3,4\n5,6\n"])
def test_a_progress_csv_that_does_not_fit_the_checkpoint_is_refused(made, tmp_path, content):
    run_dir = _copy(made, "ucb", tmp_path)
    (run_dir / "progress.csv").write_bytes(content)
    refused(run_dir, "progress.csv")


@pytest.mark.parametrize("status", [{"status": "running", "pid": pid} for pid in (0, -1, 2**70, "1", True)])
def test_impossible_pids_in_status_json_do_not_read_as_running(made, tmp_path, status):
    run_dir = _copy(made, "ucb", tmp_path)
    (run_dir / "status.json").write_text(json.dumps(status))
    resumed(run_dir, made["ucb-ref"])


def test_a_planted_summary_without_metrics_is_no_complete_run(made, tmp_path):
    run_dir = _copy(made, "ucb", tmp_path)
    (run_dir / "summary.json").write_text(json.dumps({"status": "complete"}))
    resumed(run_dir, made["ucb-ref"])  # resumable: not complete


def test_a_trust_models_line_in_the_run_config_is_ignored_by_resume(made, tmp_path):
    """The run directory is what resume must not trust: trust comes from --trust-models only."""
    run_dir = _copy(made, "ucb", tmp_path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["trust_models"] = True  # left out of the fingerprint, so the resume goes on ...
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    from causalrl.experiment.run.runner import resume

    result = resume(run_dir, progress_bar=False)
    assert result.config.trust_models is False  # ... without trusting anything


def test_a_state_pkl_with_a_pickled_payload_never_runs(made, tmp_path):
    run_dir = _copy(made, "ucb", tmp_path)
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (_checkpoint(run_dir) / "state.pkl").write_bytes(pickle.dumps({"metrics": Payload(), "logger": {}, "env": []}))
    refused(run_dir, "refused to load")
    assert not marker.exists()
