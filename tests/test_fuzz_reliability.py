"""Property-based fuzzing (hypothesis) of what the reliability review found, in-process:

- YAML alias bombs and deep nesting in configs, overrides, sweep files and run directories:
  refused at once (serious item 4: ``test_serious_4_yaml_alias_bombs_are_refused_at_once``);
- overrides against the new range checks (steps beyond any budget, infinite hyperparameters,
  empty agent selections, control characters in names, plugin specs);
- a checkpoint's ``state.json`` fields and ``state.pkl`` values, and ``structure.jsonl`` lines,
  under ``--resume`` and ``graph``;
- pickles (payloads, random bytes, hand-written class references) through the allowlist and the
  SB3 zip reader;
- observations of every shape and kind through ``core.checks.check_observation``.

Every case must exit 0, 1 or 2, print no traceback, print one ``causalrl: error:`` line when it
fails, leave a refused run directory byte-for-byte unchanged, never run a planted payload, and
never take more than a few seconds. ``FUZZ_EXAMPLES`` scales the number of examples.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pickle
import shutil
import signal
import string
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import cli as run_cli
from reliability_helpers import stopped_run

from causalrl.core.checks import check_observation
from causalrl.core.safe_pickle import UnsafePickleError, safe_load
from causalrl.experiment.config import ConfigError, parse_yaml, validate
from causalrl.experiment.run.runner import run

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
COUNTS = {"yaml": 80, "overrides": 50, "state.json": 40, "state.pkl": 20, "structure.jsonl": 30, "pickles": 80,
          "observations": 60}
TALLY: dict[str, int] = {}
UCB = {"progress_bar": False, "total_steps": 60, "log_interval": 10, "checkpoint_interval": 20,
       "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3, "horizon": 60, "instance_seed": 0},
       "agents": [{"name": "csl-ucb"}]}
PINNED = ["agents=ucb", "env.n_nodes=3", "total_steps=20", "log_interval=10", "env.horizon=20"]


def _settings(kind: str):
    return settings(max_examples=max(1, int(COUNTS[kind] * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def _tally(kind: str) -> None:
    TALLY[kind] = TALLY.get(kind, 0) + 1


class Hang(BaseException):
    """A case ran past its deadline (a BaseException: no handler of the code under test catches it)."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging) when the block runs longer than ``seconds`` (main thread only)."""
    def expired(signum, frame):
        raise Hang(f"took more than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cli(argv: list[str], cwd: Path | None = None, limit: float = 30.0) -> tuple[int, str]:
    """The command in this process, stopped as a Hang after ``limit`` seconds."""
    return run_cli(argv, cwd, guard=deadline(limit))


def contract(code: int, err: str, argv) -> None:
    assert code in (0, 1, 2), (argv, code, err[-2000:])
    assert "Traceback" not in err, (argv, err[-3000:])
    if code and not err.startswith("usage:"):
        assert len([line for line in err.splitlines() if line.startswith("causalrl: error:")]) == 1, (argv, err[-2000:])


def snapshot(folder: Path) -> dict:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != ".lock"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    folder = tmp_path_factory.mktemp("fuzz-reliability")
    yield folder
    torch.set_num_threads(threads)
    print(f"\nfuzz/reliability: {sum(TALLY.values())} cases {TALLY} in {time.perf_counter() - started:.1f}s")


@pytest.fixture(scope="module")
def stopped(root):
    """A CSL-UCB run stopped after its first checkpoint (it keeps a structure.jsonl), and its
    uninterrupted reference."""
    stopped_run(validate(UCB)[0], root / "stopped")
    reference = run(validate(UCB)[0], run_dir=root / "reference").run_dir
    return root / "stopped", reference


def _fresh(root: Path, name: str) -> Path:
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


# --- serious item 4: YAML alias bombs ------------------------------------------------------------------
def bomb(levels: int = 9, width: int = 10, indent: str = "") -> str:
    lines = [f"{indent}a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _bomb_config(where: str) -> str:
    base = "env: {id: causalrl/LinearSEMBandit-v0, n_nodes: 3}\nagent: {name: ucb}\nprogress_bar: false\n"
    if where == "description":
        return base + "description:\n" + bomb(indent="  ").replace("a0: ", "a0: ", 1)
    return base + "wandb:\n  mode: disabled\n  notes:\n" + bomb(indent="    ")


@pytest.mark.parametrize("where", ["description", "wandb.notes"])
def test_serious_4_yaml_alias_bombs_are_refused_at_once(tmp_path, where):
    (tmp_path / "bomb.yaml").write_text(_bomb_config(where))
    assert len((tmp_path / "bomb.yaml").read_bytes()) < 2048
    started = time.perf_counter()
    code, err = cli(["run", "bomb.yaml", "--no-progress"], cwd=tmp_path, limit=10)
    assert code == 2 and "bomb.yaml: expands to more than" in err, err
    assert time.perf_counter() - started < 5
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bomb.yaml"]  # no run directory


def test_serious_4_a_bomb_in_an_override_or_a_sweep_file_is_refused(tmp_path):
    value = "[" + ", ".join(["&x0 [a, a, a, a, a, a, a, a, a, a]"] + [f"&x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]"
                                                                     for i in range(1, 9)]) + "]"
    code, err = cli(["run", "default", f"description={value}", "--no-progress"], cwd=tmp_path, limit=10)
    assert code == 2 and "expands to more than" in err, err
    (tmp_path / "s.yaml").write_text("name: s\nbase:\n  env: {id: causalrl/LinearSEMBandit-v0}\n  agent: {name: ucb}\n"
                                     "  description:\n" + bomb(indent="    "))
    code, err = cli(["sweep", "s.yaml", "--no-progress"], cwd=tmp_path, limit=10)
    assert code == 2 and "expands to more than" in err, err


def test_serious_4_a_bomb_in_a_run_config_yaml_is_refused_by_resume(stopped, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped[0], run_dir)
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text() + "extra:\n" + bomb(indent="  "))
    before = snapshot(run_dir)
    code, err = cli(["run", "--resume", str(run_dir), "--no-progress"], limit=10)
    assert code == 2 and "expands to more than" in err, err
    assert snapshot(run_dir) == before


def test_serious_4_a_bomb_in_a_config_yaml_does_not_hang_report(stopped, tmp_path):
    run_dir = tmp_path / "runs" / "run"
    shutil.copytree(stopped[1], run_dir)
    config = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(config.replace("env:\n", "env:\n  extra:\n" + bomb(levels=8, indent="    "), 1))
    argv = ["report", str(tmp_path / "runs"), "--reps", "100", "--out", str(tmp_path / "out")]
    try:  # in a subprocess: a hang inside C code (json, yaml) is killed on time
        done = subprocess.run([sys.executable, "-m", "causalrl.cli", *argv], capture_output=True, text=True, timeout=90,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:  # the bomb expands to 10**9 values: unbounded, it never ends
        raise Hang("report took more than 90s") from None
    assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0 and "expands to more than" in (tmp_path / "out" / "report.md").read_text()


_anchor_names = st.sampled_from(["a", "b", "c", "d"])


@st.composite
def yaml_documents(draw):
    """YAML text with anchors, aliases (possibly nested, recursive or undefined) and nesting."""
    levels = draw(st.integers(1, 12))
    width = draw(st.integers(1, 12))
    parts = [f"x0: &x0 [{', '.join(['v'] * width)}]"]
    for i in range(1, levels):
        refs = draw(st.lists(st.integers(0, i), min_size=1, max_size=width))  # x{i} may even refer to itself
        parts.append(f"x{i}: &x{i} [" + ", ".join(f"*x{ref}" for ref in refs) + "]")
    depth = draw(st.integers(0, 150))
    parts.append("deep: " + "[" * depth + "]" * depth)
    if draw(st.booleans()):
        parts.append(f"junk: {draw(st.text(alphabet=string.printable, max_size=30))!r}")
    return "\n".join(draw(st.permutations(parts)))


@_settings("yaml")
@given(text=yaml_documents())
def test_fuzz_yaml_is_parsed_or_refused_at_once(root, text):
    _tally("yaml")
    started = time.perf_counter()
    with deadline(5):
        try:
            data = parse_yaml(text, "fuzz.yaml")
        except ConfigError as error:
            assert "fuzz.yaml" in str(error) and "\n" not in str(error)
        else:
            json.dumps(data, default=str)  # whatever is accepted is small enough to walk
    assert time.perf_counter() - started < 5


# --- overrides against the new range checks --------------------------------------------------------
_huge = st.sampled_from(["99999999999999999999999", str(10**12 + 1), "1e400", ".inf", "-.inf", ".nan", "1e20",
                         str(2**63), "-1", "0"])
_names = st.one_of(st.sampled_from(["", ",", ",,", " , ", "ucb,", "a\nb", "x\ty", "os:", "5", "[1]", "{a: 1}",
                                    ".hidden:X", "..:X", "os:system", "a:", ":b", "ucb"]),
                   st.text(alphabet=string.printable + "\x00\x7f", max_size=10))
_override = st.one_of(
    st.tuples(st.sampled_from(["total_steps", "log_interval", "checkpoint_interval", "eval_interval", "eval_episodes",
                               "n_envs", "seed", "agent.exploration", "agent.window", "env.horizon"]), _huge),
    st.tuples(st.sampled_from(["agents", "agent.name", "env.id", "experiment", "output_dir", "description"]), _names),
    st.tuples(st.sampled_from(["trust_models", "progress_bar", "save_model"]),
              st.sampled_from(["true", "false", "yes", "1", "2", "maybe", "null"])),
).map(lambda pair: f"{pair[0]}={pair[1]}")


@_settings("overrides")
@given(overrides=st.lists(_override, min_size=1, max_size=3))
def test_fuzz_overrides_against_the_range_checks(root, overrides):
    _tally("overrides")
    folder = _fresh(root, "overrides")
    argv = ["run", *PINNED, *overrides, "--no-progress"]
    code, err = cli(argv, cwd=folder, limit=60)
    contract(code, err, argv)
    if code == 0:  # whatever runs is a real, complete run inside the folder
        summaries = list(folder.rglob("summary.json"))
        assert summaries and all(json.loads(path.read_text())["status"] == "complete" for path in summaries)
    else:
        assert not any(json.loads(path.read_text()).get("status") == "complete" for path in folder.rglob("summary.json"))


# --- state.json, state.pkl and structure.jsonl under --resume and graph ----------------------------------
_json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
                                      st.text(max_size=8)),
                            lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner,
                                                                                                 max_size=3)),
                            max_leaves=8)
_fields = st.sampled_from(["step", "rows", "fingerprint", "format", "env_layers", "rng", "rng.python", "rng.numpy",
                           "rng.torch", "rng.action_space", "rng.python.1.0", "rng.numpy.2", "rng.torch.0", "new"])


def _set(data, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        data = data[int(part)] if isinstance(data, list) else data[part]
    if isinstance(data, list):
        data[int(parts[-1])] = value
    else:
        data[parts[-1]] = value


def _resume_case(stopped, root: Path, damage) -> None:
    folder = _fresh(root, "resume")
    run_dir = folder / "run"
    shutil.copytree(stopped[0], run_dir)
    damage(run_dir)
    before = snapshot(run_dir)
    argv = ["run", "--resume", str(run_dir), "--no-progress"]
    code, err = cli(argv, limit=60)
    contract(code, err, argv)
    if code == 2:
        assert snapshot(run_dir) == before, "a refused resume changed the run directory"
    elif code == 0:
        assert (run_dir / "progress.csv").read_bytes() == (stopped[1] / "progress.csv").read_bytes()


@_settings("state.json")
@given(edits=st.lists(st.tuples(_fields, _json_values), min_size=1, max_size=2))
def test_fuzz_state_json_fields_on_resume(root, stopped, edits):
    _tally("state.json")

    def damage(run_dir):
        (checkpoint,) = (run_dir / "checkpoints").glob("step_*")
        info = json.loads((checkpoint / "state.json").read_text())
        for field, value in edits:
            with contextlib.suppress(KeyError, IndexError, ValueError, TypeError):
                _set(info, field, value)
        (checkpoint / "state.json").write_text(json.dumps(info))

    _resume_case(stopped, root, damage)


_pkl_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(), st.text(max_size=5),
                                     st.builds(np.zeros, st.integers(0, 4))),
                           lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner,
                                                                                                max_size=3)),
                           max_leaves=6)


@_settings("state.pkl")
@given(part=st.sampled_from(["metrics", "logger", "env"]), key=st.sampled_from(["rows", "steps", "reward_sum", "round",
                                                                                 "horizon", "_sem", "is_bandit", "x"]),
       value=_pkl_values)
def test_fuzz_state_pkl_values_on_resume(root, stopped, part, key, value):
    _tally("state.pkl")
    import cloudpickle

    from causalrl.experiment.run.checkpoints import _STATE_GLOBALS, _STATE_PACKAGES

    def damage(run_dir):
        (checkpoint,) = (run_dir / "checkpoints").glob("step_*")
        layers = {}

        class Layer:
            def __init__(self, position):
                self.position = position

        def persistent_load(position):
            return layers.setdefault(position, Layer(position))

        with open(checkpoint / "state.pkl", "rb") as file:
            state = safe_load(file, _STATE_GLOBALS, _STATE_PACKAGES, persistent_load=persistent_load)
        target = state[part][-1] if part == "env" else state[part]
        target[key] = value

        class Pickler(cloudpickle.Pickler):
            def persistent_id(self, obj):
                return obj.position if isinstance(obj, Layer) else None

        with open(checkpoint / "state.pkl", "wb") as file:
            Pickler(file).dump(state)

    _resume_case(stopped, root, damage)


_lines = st.one_of(_json_values.map(json.dumps), st.text(alphabet=string.printable, max_size=40),
                   st.sampled_from(['{"step": 5, "learned": {"a": [[0, 1], [1, 0]]}, "truth": null}',
                                    '{"step": 5, "learned": 5}', '{"step": 1e9}', '{"step": -1, "learned": {}}',
                                    '{"step": 3, "learned": {"a": [[2]]}}', "[" * 2000 + "]" * 2000]))


@_settings("structure.jsonl")
@given(lines=st.lists(_lines, max_size=3), tail=st.text(alphabet=string.printable, max_size=20),
       command=st.sampled_from(["resume", "graph"]))
def test_fuzz_structure_jsonl_under_resume_and_graph(root, stopped, lines, tail, command):
    _tally("structure.jsonl")

    def damage(run_dir):
        kept = (run_dir / "structure.jsonl").read_text()
        (run_dir / "structure.jsonl").write_text(kept + "".join(line.replace("\n", " ") + "\n" for line in lines) + tail)

    if command == "resume":
        _resume_case(stopped, root, damage)
        return
    folder = _fresh(root, "graph")
    shutil.copytree(stopped[0], folder / "run")
    damage(folder / "run")
    argv = ["graph", str(folder / "run"), "--out", str(folder / "g.png")]
    code, err = cli(argv, limit=60)
    contract(code, err, argv)


# --- pickles through the allowlist and the SB3 zip reader ----------------------------------------------------
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


_DANGEROUS = ["os system", "posix system", "builtins eval", "builtins exec", "subprocess Popen", "builtins getattr",
              "importlib import_module", "functools partial", "shutil rmtree", "pathlib Path", "causalrl.envs.experts Path",
              "numpy load", "torch load", "stable_baselines3.common.save_util load_from_pkl", "pickle loads"]


@_settings("pickles")
@given(kind=st.sampled_from(["payload", "global", "mutated", "bytes"]), name=st.sampled_from(_DANGEROUS),
       data=st.binary(max_size=64), position=st.integers(0, 200), value=_pkl_values)
def test_fuzz_pickles_never_run_code(root, kind, name, data, position, value):
    _tally("pickles")
    marker = root / "PWNED"
    if kind == "payload":
        blob = pickle.dumps({"x": value, "y": _Payload(marker)})
    elif kind == "global":
        module, attribute = name.split(" ")
        blob = b"c" + module.encode() + b"\n" + attribute.encode() + b"\n(S'touch " + str(marker).encode() + b"'\ntR."
    elif kind == "mutated":
        clean = bytearray(pickle.dumps({"x": value, "y": _Payload(marker)}))
        clean[position % len(clean)] = data[0] if data else 0
        blob = bytes(clean)
    else:
        blob = data
    with deadline(5):
        try:
            safe_load(blob, class_packages=("causalrl.core", "gymnasium.spaces"))
        except (UnsafePickleError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, OverflowError, MemoryError, RecursionError, UnicodeDecodeError, ImportError):
            pass
    assert not marker.exists()
    # the same bytes as a pickled entry of an SB3 model.zip's settings
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.policies import BasePolicy

    from causalrl.core.safe_pickle import sb3_custom_objects

    path = root / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps({"policy_class": {":serialized:": base64.b64encode(blob).decode()},
                                             "observation_space": {":serialized:": base64.b64encode(blob).decode()}}))
    with deadline(5), contextlib.suppress(ValueError):  # UnsafePickleError is a ValueError
        sb3_custom_objects(path, {"policy_class": BasePolicy, "replay_buffer_class": ReplayBuffer}, ("stable_baselines3",))
    assert not marker.exists()


# --- observations -------------------------------------------------------------------------------------------
_arrays = st.one_of(
    st.tuples(st.lists(st.integers(0, 4), max_size=3), st.sampled_from(["f8", "f4", "i8", "u1", "b1", "U1", "O"])).map(
        lambda spec: np.zeros(tuple(spec[0]), dtype=spec[1])),
    st.lists(st.one_of(st.floats(), st.text(max_size=2), st.lists(st.floats(), max_size=2)), max_size=4),
    st.none(), st.text(max_size=4), st.floats())


@_settings("observations")
@given(observation=_arrays, shape=st.lists(st.integers(0, 4), max_size=3))
def test_fuzz_observations_are_checked_like_actions(observation, shape):
    _tally("observations")
    try:
        array = check_observation(observation, shape)
    except ValueError as error:
        assert str(error).startswith("observation: ") and "\n" not in str(error)
    else:
        assert array.shape == tuple(shape) and array.dtype.kind in "biuf"
