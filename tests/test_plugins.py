"""User plugins and the one import namespace (docs/plugins.md, docs/architecture.md).

Nothing is installed: a small package is written to a temporary folder and put on the
subprocess's ``PYTHONPATH``. Entry points are declared by a ``*.dist-info`` folder beside it,
which ``importlib.metadata`` finds on ``sys.path`` exactly as it finds an installed one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

WORLD = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CoinWorld(gym.Env):
    """Two coins: pressing (action 1) pays 1 + noise, not pressing pays noise."""

    def __init__(self, horizon: int = 1000):
        self.action_space = spaces.MultiBinary(1)
        self.observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.horizon, self.t = horizon, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1), {}

    def step(self, action):
        self.t += 1
        expected = float(np.asarray(action)[0])
        reward = expected + self.np_random.normal()
        info = {"expected_reward": expected, "optimal_expected_reward": 1.0}
        return np.zeros(1), reward, False, self.t >= self.horizon, info


def register():
    gym.register(id="myplug/Coin-v0", entry_point="myplug.worlds:CoinWorld", disable_env_checker=True)
'''

LEARNER = '''
import numpy as np

from causalrl.agents.base import BanditAgent


class Greedy(BanditAgent):
    """Tries each arm once, then plays the arm with the best mean reward."""

    def __init__(self, policy, env, seed=None, verbose=0, noise_mean=0.0, noise_std=1.0, optimism: float = 0.0):
        self.optimism = optimism
        super().__init__(policy, env, seed, verbose, noise_mean, noise_std)

    def _setup(self):
        self.sums, self.counts = np.zeros(2), np.zeros(2)

    def _select_action(self):
        if self.counts.min() == 0:
            return np.array([int(np.argmin(self.counts))], dtype=np.int8)
        return self._greedy_action()

    def _greedy_action(self):
        means = (self.sums + self.optimism) / np.maximum(self.counts, 1)
        return np.array([int(np.argmax(means))], dtype=np.int8)

    def _update(self, action, observation, reward):
        arm = int(action[0])
        self.sums[arm] += reward
        self.counts[arm] += 1
'''


def _plugin_project(root: Path, entry_points: bool) -> dict:
    package = root / "myplug"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "worlds.py").write_text(WORLD)
    (package / "learners.py").write_text(LEARNER)
    if entry_points:
        info = root / "myplug-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent("""\
            [causalrl.agents]
            greedy = myplug.learners:Greedy

            [causalrl.envs]
            coin = myplug.worlds:register
            """))
    return {**os.environ, "PYTHONPATH": str(root), "MPLBACKEND": "Agg"}


def _causalrl(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "causalrl.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _check_run_sweep_report(tmp_path: Path, env: dict, env_id: str, agent: str) -> None:
    config = {"experiment": "plug", "total_steps": 200, "log_interval": 50, "progress_bar": False,
              "env": {"id": env_id}, "agent": {"name": agent}}
    (tmp_path / "plug.yaml").write_text(yaml.safe_dump(config))
    done = _causalrl(["run", "plug.yaml"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    [summary_path] = (tmp_path / "runs" / "plug").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "complete" and summary["agent"] == agent
    assert summary["final"]["regret/window_optimal_action_rate"] > 0.9  # greedy finds the paying coin

    sweep = {"name": "plug-sweep", "base": config, "overrides": {"grid": {"agent.optimism": [0.0, 0.5]}}, "seeds": 2}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    done = _causalrl(["sweep", "sweep.yaml", "--workers", "1", "--no-progress"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 trials, 4 ok" in done.stdout
    done = _causalrl(["report", "runs/sweeps/plug-sweep"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert agent in (tmp_path / "runs" / "sweeps" / "plug-sweep" / "report" / "report.md").read_text()


def test_module_class_names_run_sweep_and_report(tmp_path):
    env = _plugin_project(tmp_path / "site", entry_points=False)
    _check_run_sweep_report(tmp_path, env, "myplug.worlds:CoinWorld", "myplug.learners:Greedy")


def test_entry_point_plugins_run_sweep_and_report_and_are_listed(tmp_path):
    env = _plugin_project(tmp_path / "site", entry_points=True)
    _check_run_sweep_report(tmp_path, env, "myplug/Coin-v0", "greedy")
    listed = _causalrl(["list"], tmp_path, env)
    assert listed.returncode == 0 and "greedy" in listed.stdout


@pytest.mark.parametrize("override, message", [
    ("agent.name=nosuchmod:Agent", "agent.name: cannot import module 'nosuchmod'"),
    ("agent.name=causalrl.agents.ucb:Nope", "agent.name: module 'causalrl.agents.ucb' has no 'Nope'"),
    ("agent.name=causalrl.core.graph:chain_dag", "is not an agent class"),
    ("env.id=nosuchmod:World", "env.id: cannot import module 'nosuchmod'"),
    ("env.id=causalrl.core.graph:chain_dag", "is not a gymnasium.Env subclass"),
])
def test_missing_plugin_module_or_class_is_one_line_exit_2(tmp_path, override, message):
    config = {"env": {"id": "causalrl/LinearSEMBandit-v0"}, "agent": {"name": "ucb"}}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    done = _causalrl(["run", "one.yaml", override, "--no-progress"], tmp_path, dict(os.environ))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_projects_own_agents_and_envs_packages_do_not_shadow_ours(tmp_path):
    """A research repository with its own top-level ``agents/`` and ``envs/`` packages."""
    for name in ("agents", "envs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"MINE = {name!r}  # the user's own package\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "MPLBACKEND": "Agg"}
    done = _causalrl(["run", "agents=ucb,csl-ucb", "total_steps=200", "--no-progress"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "runs" / "default").glob("*/summary.json"))) == 2
    # and the user's packages are still theirs
    probe = subprocess.run([sys.executable, "-c", "import agents, envs, causalrl.agents; print(agents.MINE, envs.MINE)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.split() == ["agents", "envs"], probe.stderr


def test_only_the_causalrl_package_is_importable_at_top_level(tmp_path):
    probe = "import importlib.util as u; print([u.find_spec(n) is None for n in ('envs', 'agents')], u.find_spec('causalrl') is not None)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.stdout.strip() == "[True, True] True", done.stderr
