"""Declared assumptions, separate from ground truth (causalrl/core/assumptions.py, docs/bandits.md
"Assumptions"): a world declares what the papers let an agent know in ``env.unwrapped.assumptions``;
an agent argument left at None takes the declared value, an explicit one that contradicts it is a
one-line ValueError, and only ORACLE agents read ``causal_structure``."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import causalrl.agents  # registers the agents
import causalrl.envs  # noqa: F401  (registers the envs)
from causalrl.agents import CSLUCB, UCB, LinSEMTS, LinSEMUCB
from causalrl.agents.base import declared_assumptions
from causalrl.agents.explore_commit import ExploreThenCommit
from causalrl.core.assumptions import Assumptions
from causalrl.core.registry import AGENTS

BANDIT_AGENTS = [UCB, LinSEMTS, LinSEMUCB, CSLUCB, ExploreThenCommit]


def _world(**kwargs):
    arguments = {"n_nodes": 4, "instance_seed": 1, "horizon": 300, **kwargs}
    return gym.make("causalrl/LinearSEMBandit-v0", **arguments)


class _Silent(gym.Env):
    """A bandit world that declares nothing."""

    action_space = gym.spaces.MultiBinary(3)
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,))


# --- the declaration ----------------------------------------------------------------------------
def test_bandit_worlds_declare_noise_horizon_and_stationarity():
    assert _world(noise_mean=3.0, noise_std=2.0).unwrapped.assumptions == Assumptions(
        noise_mean=3.0, noise_std=2.0, horizon=300, piecewise_stationary=False)
    piecewise = gym.make("causalrl/PiecewiseSEMBandit-v0", n_nodes=5, instance_seed=0, change_points=(100,),
                         horizon=200)
    assert piecewise.unwrapped.assumptions == Assumptions(noise_mean=1.0, noise_std=1.0, horizon=200,
                                                          piecewise_stationary=True)
    # ground truth stays where it was, apart from the declaration
    assert not hasattr(piecewise.unwrapped, "piecewise_stationary")
    assert gym.make("causalrl/FactoredLQR-v0").unwrapped.assumptions == Assumptions(horizon=50)


def test_noise_values_are_one_float_or_one_per_node():
    assert Assumptions(noise_mean=[2, 2, 2]).noise_mean == 2.0
    assert Assumptions(noise_mean=np.array([1.0, 2.0])).noise_mean == (1.0, 2.0)
    for bad in ("abc", float("nan"), [[1.0]], True):
        with pytest.raises(ValueError, match="^assumptions.noise_mean: must be a finite number"):
            Assumptions(noise_mean=bad)
    with pytest.raises(ValueError, match="^assumptions.noise_std: must be >= 0"):
        Assumptions(noise_std=-1.0)
    with pytest.raises(ValueError, match="^assumptions.horizon: must be a positive integer"):
        Assumptions(horizon=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Assumptions().horizon = 3


def test_declared_assumptions_walks_wrappers_and_refuses_other_types():
    env = gym.wrappers.RecordEpisodeStatistics(_world(noise_mean=3.0))
    assert declared_assumptions(env).noise_mean == 3.0
    assert declared_assumptions(_Silent()) == Assumptions()
    world = _Silent()
    world.assumptions = {"noise_mean": 3.0}
    with pytest.raises(ValueError, match="^env.unwrapped.assumptions: expected a causalrl.core.assumptions"):
        declared_assumptions(world)


# --- agents take the declared value ---------------------------------------------------------------
@pytest.mark.parametrize("agent_class", BANDIT_AGENTS)
def test_agents_take_the_declared_noise(agent_class):
    agent = agent_class("BanditPolicy", _world(noise_mean=3.0, noise_std=2.0), seed=0)
    assert (agent.noise_mean, agent.noise_std) == (3.0, 2.0)
    silent = UCB("BanditPolicy", _Silent())
    assert (silent.noise_mean, silent.noise_std) == (1.0, 1.0)  # the documented defaults


def test_csl_ucb_uses_the_declared_noise_mean_in_its_estimates():
    # nu enters every regression (X_i - nu_i on the parents, no intercept): with the declared
    # nu = 3 the weights are recovered; with nu = 1 (what the agent silently used before, shown
    # here by hiding the declaration) every column is biased
    errors = {}
    for hidden in (False, True):
        env = _world(noise_mean=3.0)
        if hidden:
            env.unwrapped.assumptions = Assumptions(horizon=300)
        agent = CSLUCB("BanditPolicy", env, seed=0).learn(300)
        assert agent.noise_mean == (1.0 if hidden else 3.0)
        truth = env.unwrapped.causal_structure
        errors[hidden] = max(np.abs(agent.weights[0] - truth.observational_weights).max(),
                             np.abs(agent.weights[1] - truth.interventional_weights).max())
    assert errors[False] < 0.35 < errors[True]


def test_per_node_noise_reaches_every_agent():
    env = _world(noise_mean=[1.0, 2.0, 1.0, 1.0])
    for agent_class in BANDIT_AGENTS[:4]:
        kwargs = {"change_detection": "column", "detect_after": 150} if agent_class is CSLUCB else {}
        agent = agent_class("BanditPolicy", env, seed=0, **kwargs).learn(250)
        np.testing.assert_array_equal(agent.noise_mean, [1.0, 2.0, 1.0, 1.0])
        assert np.all(np.isfinite(agent.predict(None, deterministic=True)[0]))


def test_horizon_comes_from_the_declaration():
    assert CSLUCB("BanditPolicy", _world()).horizon == 300
    assert LinSEMUCB("BanditPolicy", _world()).horizon == 300
    undeclared = _world()
    undeclared.unwrapped.assumptions = dataclasses.replace(undeclared.unwrapped.assumptions, horizon=None)
    for agent_class in (CSLUCB, LinSEMUCB):
        assert agent_class("BanditPolicy", undeclared, horizon=10).horizon == 10
        # the world's own `horizon` attribute (its truncation) is not a declaration
        assert undeclared.unwrapped.horizon == 300
        with pytest.raises(ValueError, match="^horizon: the world declares no horizon") as error:
            agent_class("BanditPolicy", undeclared)
        assert "\n" not in str(error.value)


# --- an explicit value that contradicts the declaration -------------------------------------------
@pytest.mark.parametrize("agent_class", BANDIT_AGENTS)
@pytest.mark.parametrize("field, declared, given", [
    ("noise_mean", 3.0, 1.0),
    ("noise_std", 2.0, 1.0),
])
def test_a_contradicting_noise_value_is_one_line_naming_the_field(agent_class, field, declared, given):
    with pytest.raises(ValueError) as error:
        agent_class("BanditPolicy", _world(**{field: declared}), **{field: given})
    assert str(error.value) == (f"{field}: the world declares {field}={declared} but the agent was given "
                                f"{given}; drop agent.{field} or make them agree")


@pytest.mark.parametrize("agent_class", [CSLUCB, LinSEMUCB])
def test_a_contradicting_horizon_is_one_line_naming_the_field(agent_class):
    with pytest.raises(ValueError) as error:
        agent_class("BanditPolicy", _world(), horizon=50)
    assert str(error.value) == ("horizon: the world declares horizon=300 but the agent was given 50; "
                                "drop agent.horizon or make them agree")


def test_an_agreeing_explicit_value_is_accepted():
    agent = CSLUCB("BanditPolicy", _world(noise_mean=3.0), noise_mean=3, noise_std=1.0, horizon=300)
    assert (agent.noise_mean, agent.noise_std, agent.horizon) == (3.0, 1.0, 300)
    per_node = _world(noise_mean=[1.0, 2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"^noise_mean: the world declares noise_mean=\[1, 2, 1, 1\] but"):
        UCB("BanditPolicy", per_node, noise_mean=1.0)
    # an invalid explicit value keeps its own message
    with pytest.raises(ValueError, match="^noise_std: must be > 0, got 0.0$"):
        UCB("BanditPolicy", _world(), noise_std=0.0)


# --- CSL-UCB's change_detection="auto" follows the declaration, not the world's class ------------
def test_change_detection_auto_follows_the_declared_stationarity():
    stationary = _world()
    assert CSLUCB("BanditPolicy", stationary).change_detection == "none"
    stationary.unwrapped.assumptions = dataclasses.replace(stationary.unwrapped.assumptions,
                                                           piecewise_stationary=True)
    assert CSLUCB("BanditPolicy", stationary).change_detection == "column"
    piecewise = gym.make("causalrl/PiecewiseSEMBandit-v0", n_nodes=5, instance_seed=0, change_points=(100,),
                         horizon=200)
    assert AGENTS.get("csl-ucb")("BanditPolicy", piecewise).change_detection == "column"
    piecewise.unwrapped.assumptions = Assumptions(horizon=200)  # stationarity not declared
    assert CSLUCB("BanditPolicy", piecewise).change_detection == "none"


def test_detectors_refuse_a_declared_zero_noise_std():
    noiseless = _world(noise_std=0.0)
    assert CSLUCB("BanditPolicy", noiseless).noise_std == 0.0  # no detector: sigma only scales U_a
    with pytest.raises(ValueError, match="^noise_std: the change detectors .* need sigma > 0"):
        CSLUCB("BanditPolicy", noiseless, change_detection="column")


# --- ground truth is read by ORACLE agents only ---------------------------------------------------
def _reads_ground_truth(path: Path) -> list[int]:
    """Lines of ``path`` whose code (not docstrings or comments) names ``causal_structure``."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if (isinstance(node, ast.Attribute) and node.attr == "causal_structure")
            or (isinstance(node, ast.Constant) and node.value == "causal_structure")]


def test_only_oracle_agents_read_causal_structure():
    from causalrl.agents import BUILTIN_AGENTS

    modules = {}
    for name, (target, _) in BUILTIN_AGENTS.items():
        module = target.partition(":")[0]
        if module.startswith("causalrl.agents."):
            modules.setdefault(module, set()).add(name)
    readers = {}
    for module, names in modules.items():
        spec = importlib.util.find_spec(module)
        origin = Path(spec.origin)
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        found = [f"{file.name}:{line}" for file in files for line in _reads_ground_truth(file)]
        if found:
            readers[module] = (names, found)
    assert readers, "the scan found no reader at all: the oracle agents read causal_structure"
    for module, (names, found) in readers.items():
        assert all(name.endswith("-oracle") for name in names), f"{module} reads ground truth at {found}"
