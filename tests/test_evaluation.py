"""The runner's evaluation of the deterministic policy alone (eval_interval / eval_episodes)."""

import csv

import gymnasium as gym
import numpy as np
import yaml
from stable_baselines3 import SAC

import causalrl.envs  # noqa: F401  (registers the worlds)
from causalrl.core.rollout import episode_returns
from causalrl.envs.factored import FactoredLQR
from causalrl.experiment.config import load_experiment
from causalrl.experiment.run.evaluation import EVAL_SEED, evaluation_env
from causalrl.experiment.run.runner import run

WORLD = {"n_distractor_states": 2, "horizon": 20}


def _rows(run_dir):
    with open(run_dir / "progress.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluation_rows_match_the_saved_policy_replayed_alone(in_tmp):
    (in_tmp / "exp.yaml").write_text(yaml.safe_dump({
        "env": {"id": "causalrl/FactoredLQR-v0", **WORLD},
        "agent": {"name": "sac", "learning_starts": 100, "policy_kwargs": {"net_arch": [16, 16]}},
        "total_steps": 330, "log_interval": 100, "eval_interval": 200, "eval_episodes": 3, "progress_bar": False}))
    result = run(load_experiment(in_tmp / "exp.yaml")[0])
    rows = _rows(result.run_dir)
    assert [row["time/steps"] for row in rows] == ["100", "200", "300", "330"]
    evaluated = [row["time/steps"] for row in rows if row["eval/mean_reward"]]
    assert evaluated == ["200", "330"]  # every eval_interval steps and on the last row
    # the last evaluation is the saved model's deterministic policy on the same seeded episodes
    world = FactoredLQR(**WORLD)
    model = SAC.load(result.run_dir / "model.zip")
    returns = episode_returns(world, lambda obs: model.predict(obs, deterministic=True)[0], 3, EVAL_SEED)
    assert float(rows[-1]["eval/mean_reward"]) == np.float64(returns.mean())
    assert float(rows[-1]["eval/deterministic_normalised_score"]) == world.normalised_score(returns.mean())
    assert result.summary["final"]["eval/deterministic_normalised_score"] == world.normalised_score(returns.mean())


def test_runs_without_eval_interval_log_no_evaluation(in_tmp):
    config = load_experiment(None, ["agents=ucb", "total_steps=200", "progress_bar=false"])[0]
    assert not any(key.startswith("eval/deterministic") for key in _rows(run(config).run_dir)[0])


def test_intervention_worlds_evaluate_the_learner_without_the_expert():
    env = gym.make("causalrl/FactoredLQRIntervention-v0", expert_level="weak", strategy="random", rate=1.0,
                   takeover_steps=1, n_distractor_states=2)
    alone = evaluation_env(env)
    assert isinstance(alone.unwrapped, FactoredLQR)
    np.testing.assert_array_equal(alone.unwrapped.dynamics, env.unwrapped.world.dynamics)
    action = np.full(env.action_space.shape, 0.7, dtype=np.float32)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(action)
    assert info["intervened"]  # rate 1: the expert always takes over in training
    alone.reset(seed=0)
    _, _, _, _, info = alone.step(action)
    assert "intervened" not in info
    plain = gym.make("causalrl/FactoredLQR-v0")
    assert evaluation_env(plain) is plain
