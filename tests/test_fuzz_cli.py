"""Property-based fuzzing of the command line (hypothesis), in-process through
``causalrl.cli.main``: malformed overrides, config files, sweep and tune files, damaged run
directories for ``report`` and ``--resume``.

Every case must exit 0, 1 or 2, print no traceback, print one ``causalrl: error:`` line when
it exits 2 after parsing, and never leave a ``summary.json`` that says complete when the input
was rejected. Runs that are valid train a few steps of UCB on a 3-node bandit, so a few hundred
cases take well under a minute. ``FUZZ_EXAMPLES`` scales the number of cases per command.
"""

import contextlib
import io
import json
import os
import shutil
import string
import time
from pathlib import Path

import pytest
import torch
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causalrl.cli import main

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "1"))
COUNTS = {"run": 90, "sweep": 35, "tune": 25, "report": 30, "resume": 30}  # 210 cases per run of the suite
PINNED = ["agents=ucb", "env.n_nodes=3", "total_steps=20", "log_interval=10", "env.horizon=20"]
BASE = {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 3, "horizon": 20}, "agent": {"name": "ucb"},
        "total_steps": 20, "log_interval": 10, "progress_bar": False}
TALLY: dict[str, int] = {}
CODES: dict[str, int] = {}


def _settings(command: str):
    return settings(max_examples=max(1, int(COUNTS[command] * SCALE)), deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))


# --- value strategies ---------------------------------------------------------------------------
_junk_text = st.text(alphabet=string.printable + "éü\u2603\x00", max_size=12)
_numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0, -1, 1, 2, 0.5, -0.0, 1e300, 1e-300, 2**32, 2**63]))
_plain = st.one_of(st.none(), st.booleans(), _numbers, _junk_text)
_values = st.recursive(_plain, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_junk_text, inner, max_size=3)), max_leaves=6)
TOP_KEYS = ["seed", "total_steps", "log_interval", "checkpoint_interval", "eval_interval", "eval_episodes",
            "experiment", "output_dir", "progress_bar", "save_model", "description", "env", "agent", "agents",
            "n_envs", "nope"]
ENV_KEYS = ["id", "n_nodes", "instance_seed", "generator", "edge_prob", "weight_low", "weight_high", "noise_mean",
            "noise_std", "nodes_per_layer", "horizon", "observational_weights", "interventional_weights",
            "change_points", "bogus"]
AGENT_KEYS = ["exploration", "window", "noise_std", "noise_mean", "name", "policy", "verbose", "gamma", "bogus"]
_keys = st.one_of(st.sampled_from(TOP_KEYS), st.sampled_from(ENV_KEYS).map("env.{}".format),
                  st.sampled_from(AGENT_KEYS).map("agent.{}".format), st.sampled_from(AGENT_KEYS).map("agents.ucb.{}".format),
                  _junk_text)


def _render(value) -> str:
    """An override's value as the user would type it: YAML text, or raw junk."""
    if isinstance(value, str):
        return value
    try:
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
    except (yaml.YAMLError, ValueError, OverflowError):
        return str(value)


def _cheap(key: str, value) -> bool:
    """Skip valid-but-expensive values (the fuzz is about malformed input, not long runs)."""
    try:
        parsed = yaml.safe_load(value) if isinstance(value, str) else value
    except yaml.YAMLError:
        return True
    if key in ("total_steps", "log_interval", "checkpoint_interval", "eval_interval", "eval_episodes", "env.horizon",
               "n_envs") and isinstance(parsed, int) and parsed > 50:
        return False
    if key in ("env.n_nodes",) and isinstance(parsed, int) and 6 < parsed <= 40:
        return False  # valid sizes that enumerate 2^N arms
    if key == "output_dir" and isinstance(parsed, str) and (parsed.startswith(("/", "~")) or ".." in parsed):
        return False  # would write outside the test's folder
    if key in ("env", "agent", "agents", "env.id", "agent.name", "agents.ucb.name"):
        return not isinstance(parsed, (dict, list)) or not parsed  # other worlds/agents: slow to build
    return True


_override = st.tuples(_keys, _values).filter(lambda kv: _cheap(*kv)).map(lambda kv: f"{kv[0]}={_render(kv[1])}")
_raw_override = st.one_of(_override, _junk_text, st.sampled_from(["=", "a..b=1", "env.=3", "agents.x=1", "=3"]))


# --- the harness --------------------------------------------------------------------------------
def _complete(root: Path) -> set[Path]:
    found = set()
    for path in root.rglob("summary.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("status") == "complete":
            found.add(path)
    return found


def _call(root: Path, argv: list[str], command: str) -> None:
    """Run ``causalrl argv`` in ``root`` and check the contract."""
    TALLY[command] = TALLY.get(command, 0) + 1
    before = _complete(root)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse usage errors
                code = exit_.code
    finally:
        os.chdir(cwd)
    text = err.getvalue()
    CODES[f"{command}:{code}"] = CODES.get(f"{command}:{code}", 0) + 1
    assert code in (0, 1, 2), (argv, code, text[-2000:])
    assert "Traceback" not in text, (argv, text[-3000:])
    lines = [line for line in text.splitlines() if line.startswith("causalrl: error:")]
    if code in (1, 2) and not text.startswith("usage:"):
        assert len(lines) == 1, (argv, text[-2000:])
    if code != 0:
        assert _complete(root) <= before, (argv, "a rejected input left a complete summary.json")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("fuzz")
    started = time.perf_counter()
    yield folder
    torch.set_num_threads(threads)
    print(f"\nfuzz: {sum(TALLY.values())} cases {TALLY} in {time.perf_counter() - started:.1f}s; exit codes {CODES}")


def _fresh(root: Path, name: str) -> Path:
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


# --- run: overrides and config files ------------------------------------------------------------
@_settings("run")
@given(overrides=st.lists(_raw_override, min_size=1, max_size=3), as_file=st.booleans(),
       file_bytes=st.one_of(st.none(), st.binary(max_size=64)))
def test_fuzz_run(root, overrides, as_file, file_bytes):
    folder = _fresh(root, "run")
    argv = ["run"]
    if file_bytes is not None:
        (folder / "c.yaml").write_bytes(file_bytes)
        argv.append("c.yaml")
    elif as_file:  # the same keys as a file: nested mapping from the dotted overrides
        data = json.loads(json.dumps(BASE))
        for text in overrides:
            key, _, value = text.partition("=")
            parts = [part for part in key.split(".") if part]
            node = data
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else {}
            if parts and isinstance(node, dict):
                try:
                    node[parts[-1]] = yaml.safe_load(value)
                except yaml.YAMLError:
                    node[parts[-1]] = value
        try:
            (folder / "c.yaml").write_text(yaml.safe_dump(data))
        except (yaml.YAMLError, ValueError, UnicodeEncodeError):
            return
        argv.append("c.yaml")
        overrides = PINNED[2:]  # keep valid files short
    _call(folder, [*argv, *PINNED, *overrides, "--no-progress"], "run")


# --- sweep and tune files -----------------------------------------------------------------------
_grid = st.dictionaries(_keys, st.lists(_values, min_size=0, max_size=2), max_size=2)
_seeds = st.one_of(st.none(), st.integers(-2, 3), st.lists(st.integers(-2, 5), max_size=3), _values)
_name = st.one_of(st.sampled_from(["s", "..", ".", "a/b", "", "ok-name"]), _junk_text, _values)


@_settings("sweep")
@given(name=_name, grid=st.one_of(_grid, _values), seeds=_seeds, fixed=st.lists(_raw_override, max_size=2),
       extra=st.dictionaries(st.sampled_from(["seed_overrides", "output_dir", "description", "bogus", "base"]),
                             _values, max_size=1))
def test_fuzz_sweep(root, name, grid, seeds, fixed, extra):
    folder = _fresh(root, "sweep")
    spec = {"name": name, "base": BASE, "fixed": fixed, "overrides": {"grid": grid}, "seeds": seeds, **extra}
    if isinstance(spec.get("output_dir"), str) and not spec["output_dir"].replace(".", "").strip("/"):
        spec["output_dir"] = "out"
    if isinstance(spec.get("output_dir"), str):
        spec["output_dir"] = "out/" + spec["output_dir"].replace("..", "").lstrip("/~")
    try:
        (folder / "s.yaml").write_text(yaml.safe_dump(spec))
    except (yaml.YAMLError, ValueError, UnicodeEncodeError):
        return
    _call(folder, ["sweep", "s.yaml", "--workers", "1", "--no-progress"], "sweep")


@_settings("tune")
@given(name=_name, search=st.dictionaries(_keys, _values, max_size=2), seeds=_seeds,
       extra=st.dictionaries(st.sampled_from(["objective", "direction", "n_trials", "sampler", "pruner",
                                              "held_out_seeds", "bogus"]), _values, max_size=2))
def test_fuzz_tune(root, name, search, seeds, extra):
    folder = _fresh(root, "tune")
    spec = {"name": name, "base": BASE, "search": search, "seeds": seeds, **extra}
    try:
        (folder / "t.yaml").write_text(yaml.safe_dump(spec))
    except (yaml.YAMLError, ValueError, UnicodeEncodeError):
        return
    _call(folder, ["tune", "t.yaml", "--n-trials", "1", "--no-eval", "--no-progress"], "tune")


# --- report on damaged run directories ----------------------------------------------------------
_file_content = st.one_of(st.binary(max_size=64), _values.map(lambda v: json.dumps(v, default=str)),
                          _values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)))


@_settings("report")
@given(files=st.dictionaries(st.sampled_from(["config.yaml", "summary.json", "status.json", "progress.csv",
                                              "error.json"]), _file_content, min_size=1, max_size=4),
       out=st.sampled_from([None, "out", "runs/r/config.yaml", "file.txt"]), reps=st.sampled_from(["100", "-5", "x"]))
def test_fuzz_report(root, files, out, reps):
    folder = _fresh(root, "report")
    run_dir = folder / "runs" / "r"
    run_dir.mkdir(parents=True)
    for name, content in files.items():
        (run_dir / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "file.txt").write_text("x")
    argv = ["report", "runs", "--reps", reps] + (["--out", out] if out else [])
    _call(folder, argv, "report")


# --- --resume of damaged run directories ----------------------------------------------------------
@pytest.fixture(scope="module")
def stopped(root):
    """An unfinished run directory with a real checkpoint (stopped after its first one)."""
    from causalrl.experiment.config import validate
    from causalrl.experiment.run.checkpoints import CheckpointCallback
    from causalrl.experiment.run.runner import run

    original = CheckpointCallback._on_rollout_start

    def stop(self):
        original(self)
        if self.last_checkpoint is not None:
            raise KeyboardInterrupt

    config = validate({**BASE, "total_steps": 60, "checkpoint_interval": 20,
                       "env": {**BASE["env"], "horizon": 60}, "agents": [BASE["agent"]]})[0]
    CheckpointCallback._on_rollout_start = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            run(config, run_dir=root / "stopped")
    finally:
        CheckpointCallback._on_rollout_start = original
    return root / "stopped"


_targets = st.sampled_from(["config.yaml", "status.json", "progress.csv", "ckpt/state.json", "ckpt/state.pkl",
                            "ckpt/model.zip", "config-edit", "remove"])


@_settings("resume")
@given(damage=st.lists(st.tuples(_targets, _file_content, _override), min_size=1, max_size=2))
def test_fuzz_resume(root, stopped, damage):
    folder = _fresh(root, "resume")
    run_dir = folder / "run"
    shutil.copytree(stopped, run_dir)
    (checkpoint,) = (run_dir / "checkpoints").glob("step_*")
    for target, content, override in damage:
        data = content if isinstance(content, bytes) else content.encode()
        if target == "config-edit":  # a dotted edit of config.yaml (the fingerprint must catch it)
            key, _, value = override.partition("=")
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            node, parts = config, [part for part in key.split(".") if part]
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else {}
            if parts and isinstance(node, dict) and _cheap(key, value):
                try:
                    node[parts[-1]] = yaml.safe_load(value)
                    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
                except (yaml.YAMLError, ValueError, UnicodeEncodeError):
                    pass
        elif target == "remove":
            shutil.rmtree(checkpoint, ignore_errors=True)
        elif target.startswith("ckpt/"):
            if checkpoint.exists():
                (checkpoint / target[5:]).write_bytes(data)
        else:
            (run_dir / target).write_bytes(data)
    _call(folder, ["run", "--resume", "run", "--no-progress"], "resume")
