"""The judge of RLIF / DAgger / HG-DAgger (docs/rlif.md (c), (e)): the calibration of ``delta: auto``
on the run's seed, the judge check, a learner that cannot game the judge, ``keep_checkpoints`` and
sweep overrides; and fast tests that kill the mutants of benchmarks/rlif_mutants.py (each test
names the mutant it kills).

The toy task: a state s uniform in [-0.8, 0.8] each step, the right action is a = s; the judge's
Q(s, a) = -10 (a - s)^2, its policy samples a ~ N(s, ``spread``) (a sharp judge: 0.05; a blind
one: 0.6, whose own actions are as far off as the acting expert's); the weak acting expert does
nothing (a = 0).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from causalrl.agents.dagger import DAgger, HGDAgger
from causalrl.agents.rlif import RLIF
from causalrl.envs.calibration import DEFAULT_DELTA_QUANTILE
from causalrl.envs.intervention import InterventionWrapper

SMALL_RLIF = {"learning_starts": 10_000, "batch_size": 16, "n_critics": 2, "policy_kwargs": {"net_arch": [8]}}
SMALL_BC = {"batch_size": 16, "policy_kwargs": {"net_arch": [8]}}


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


class Track(gym.Env):
    """s ~ U[-0.8, 0.8] each step; reward -(a - s)^2; 50-step episodes; records executed actions."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.executed: list[float] = []

    def _draw(self):
        self.state = self.np_random.uniform(-0.8, 0.8, 1).astype(np.float32)
        return self.state.copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._draw(), {}

    def step(self, action):
        self.executed.append(float(np.asarray(action).reshape(-1)[0]))
        reward = -float((np.asarray(action).reshape(-1)[0] - self.state[0]) ** 2)
        self.t += 1
        return self._draw(), reward, False, self.t >= 50, {}


class TrackExpert:
    """The judge Q(s, a) = -10 (a - s)^2 with policy N(s, spread); acts with ``act_as`` (0: nothing)."""

    def __init__(self, spread: float = 0.05, act_as: float | None = 0.0, seed: int = 0):
        self.spread, self.act_as = spread, act_as
        self.acts_as_judge = act_as is None  # envs.calibration.acts_as_judge: no judge check then
        self.rng = np.random.default_rng(seed)

    def seed(self, seed):
        self.rng = np.random.default_rng(seed)

    def reference_action(self, observation, deterministic=True):
        observation = np.asarray(observation, dtype=np.float32)
        if deterministic:
            return np.clip(observation, -1, 1)
        return np.clip(observation + self.spread * self.rng.standard_normal(observation.shape), -1, 1).astype(np.float32)

    def act(self, observation):
        if self.act_as is None:  # the judge's own mode
            return self.reference_action(observation)
        return np.full(np.shape(observation), self.act_as, dtype=np.float32)

    def q_value(self, observation, action):
        values = -10.0 * np.sum((np.asarray(action, dtype=float) - np.asarray(observation, dtype=float)) ** 2, -1)
        return float(values) if np.ndim(values) == 0 else values


def wrapped(expert=None, **kwargs):
    settings = {"delta": "auto", "calibration_steps": 100, **kwargs}
    return InterventionWrapper(Track(), expert or TrackExpert(), **settings)


def takeover_rate(env, policy, steps=2000, seed=3):
    """Takeovers per learner-controlled step of ``policy`` in ``env``."""
    observation, _ = env.reset(seed=seed)
    learner_steps = takeovers = 0
    for _ in range(steps):
        observation, _, terminated, truncated, info = env.step(policy(observation))
        learner_steps += int(info["intervention_started"] or not info["intervened"])
        takeovers += int(info["intervention_started"])
        if terminated or truncated:
            observation, _ = env.reset()
    return takeovers / learner_steps


# --- calibration and judge check ---------------------------------------------------------------
def test_calibration_depends_on_the_run_seed_and_runs_once():
    """Kills ``calibration-seed-zero`` (every run calibrated on seed 0)."""
    deltas = {seed: wrapped().calibrate(seed)["delta"] for seed in (1, 2)}
    assert deltas[1] != deltas[2]
    assert wrapped().calibrate(1)["delta"] == deltas[1]
    env = wrapped()
    env.reset(seed=2)  # the first seeded reset calibrates on its seed ...
    stats = env.delta_calibration
    assert env.delta == deltas[2] and stats["seed"] == 2
    env.reset(seed=7)  # ... and later ones keep it
    assert env.delta_calibration is stats and env.delta == deltas[2]


def test_calibration_records_the_judge_and_acting_expert_returns_on_the_run_seed():
    """The returns the report draws as reference lines: the judge's mode and the acting expert
    (doing nothing) played from the run's seed, episode by episode, as an independent rollout."""
    stats = wrapped().calibrate(5)  # 100 calibration steps: two 50-step episodes per policy

    def doing_nothing(episode):
        env = Track()
        observation, _ = env.reset(seed=5 + episode)
        total, done = 0.0, False
        while not done:
            observation, reward, _, done, _ = env.step(np.zeros(1, dtype=np.float32))
            total += reward
        return total

    expected = np.mean([doing_nothing(0), doing_nothing(1)])
    assert stats["judge_return"] == 0.0 and stats["judge_return_episodes"] == 2  # a = s costs nothing
    assert stats["expert_return"] == pytest.approx(expected) and stats["expert_return"] < -5
    assert stats["null_return"] == pytest.approx(expected) and stats["expert_return_episodes"] == 2
    short = wrapped(calibration_steps=40).calibrate(5)  # no episode ended in 40 steps: the first is played on
    assert short["expert_return"] == pytest.approx(doing_nothing(0)) and short["expert_return_episodes"] == 1


def test_own_calibration_flags_the_judge_rarely_and_anything_worse_often():
    stats = wrapped().calibrate(0)
    assert stats["method"] == "own" and stats["quantile"] == DEFAULT_DELTA_QUANTILE == 0.95
    assert stats["own_flag_rate"] <= 0.06
    assert stats["expert_flag_rate"] >= 0.8 and stats["null_flag_rate"] >= 0.8  # doing nothing is flagged
    assert stats["judge_check"] == "passed" and stats["how"].startswith("own (quantile 0.95")
    # the former calibration on uniform actions makes this judge blind to doing nothing
    uniform = wrapped(calibration="uniform", delta_quantile=0.5, force=True).calibrate(0)
    assert uniform["delta"] > 20 * stats["delta"] and uniform["expert_flag_rate"] < 0.4


def test_judge_check_refuses_a_blind_judge_unless_forced():
    """Kills ``judge-check-dropped``."""
    blind = TrackExpert(spread=0.6)
    with pytest.raises(ValueError, match=r"^judge check: at delta .* the judge flags the acting expert in") as error:
        wrapped(blind).reset(seed=0)
    assert "\n" not in str(error.value) and "force: true (--force)" in str(error.value)
    stats = wrapped(TrackExpert(spread=0.6), force=True).calibrate(0)
    assert stats["judge_check"].startswith("forced: judge check")
    assert stats["expert_flag_rate"] - stats["own_flag_rate"] < 0.15
    # the acting expert is the judge's own policy: nothing to compare, no refusal
    assert wrapped(TrackExpert(spread=0.6, act_as=None)).calibrate(0)["judge_check"].startswith("skipped")


def test_judge_check_refuses_through_the_config_path(tmp_path):
    from stable_baselines3 import SAC

    from causalrl.experiment.config import ConfigError, validate
    from causalrl.experiment.run.runner import build_env

    judge = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [8]}, seed=0)
    judge.save(tmp_path / "judge" / "model.zip")
    block = {"expert": str(tmp_path / "judge"), "noise": 0.0001, "delta": "auto", "calibration_steps": 30}
    (config,) = validate({"env": {"id": "Pendulum-v1", "intervention": block}, "agents": [{"name": "rlif"}],
                          "seed": 4})
    with pytest.raises(ConfigError, match=r"^env.intervention: judge check: .*force: true \(--force\)"):
        build_env(config)  # an untrained judge flags a copy of itself as often as itself
    (forced,) = validate({"env": {"id": "Pendulum-v1", "intervention": {**block, "force": True}},
                          "agents": [{"name": "rlif"}], "seed": 4})
    env = build_env(forced)
    assert env.delta_calibration["seed"] == 4 and env.delta_calibration["judge_check"].startswith("forced")
    assert build_env(forced, evaluation=True).delta_calibration is None  # the evaluation env never calibrates


def test_cli_force_runs_a_refused_judge_and_records_the_check(in_tmp, capsys):
    import json

    import yaml
    from stable_baselines3 import SAC

    from causalrl.cli import main

    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [8]}, seed=0).save(in_tmp / "judge" / "model.zip")
    config = {"env": {"id": "Pendulum-v1", "intervention": {"expert": "judge", "noise": 0.0001, "delta": "auto",
                                                             "calibration_steps": 30}},
              "agents": [{"name": "dagger", "round_steps": 20, "gradient_steps": 2, "batch_size": 8,
                          "policy_kwargs": {"net_arch": [8]}}],
              "total_steps": 40, "log_interval": 20, "seed": 3, "save_model": False}
    (in_tmp / "blind.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()  # SB3's warning about the new folder
    assert main(["run", "blind.yaml", "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "judge check" in error[0] and "--force" in error[0]
    assert not list(in_tmp.rglob("summary.json"))  # refused before a run directory was made
    assert main(["run", "blind.yaml", "--no-progress", "--force"]) == 0
    (summary,) = [json.loads(path.read_text()) for path in in_tmp.rglob("summary.json")]
    judge = summary["judge"]
    assert judge["seed"] == 3 and judge["method"] == "own" and judge["judge_check"].startswith("forced")
    assert {"delta", "own_flag_rate", "expert_flag_rate", "null_flag_rate"} <= set(judge)
    assert {"judge_return", "expert_return", "null_return", "judge_return_episodes"} <= set(judge)  # report's lines


# --- no gaming: a learner that copies a weak policy ------------------------------------------------
def test_a_learner_copying_the_weak_expert_cannot_reach_the_takeover_floor():
    """Acceptance: at the calibrated delta, copying the do-nothing expert keeps the takeover rate
    far above the floor 1 - beta; the judge's own policy sits at the floor. Kills
    ``delta-sign-flipped`` and ``noise-floor-dropped``."""
    env = wrapped()
    copy_weak = takeover_rate(env, lambda observation: np.zeros(1, np.float32))
    assert copy_weak > 0.3  # hand-back: every other learner step is unchecked, so 0.5 is the ceiling
    judge_like = takeover_rate(wrapped(), lambda observation: np.clip(observation, -1, 1))
    assert 0.02 < judge_like < 0.09  # the 1 - beta = 0.05 floor: nonzero, as the paper's noisy expert


def test_the_do_nothing_share_is_reported_beside_the_learners():
    env = wrapped()
    env.reset(seed=0)
    infos = [env.step(np.clip(env.unwrapped.state, -1, 1))[4] for _ in range(200)]
    judged = [info for info in infos if info["judged"]]
    assert judged and all("null_judged_bad" in info for info in judged)
    assert np.mean([info["null_judged_bad"] for info in judged]) > 0.8
    assert np.mean([info["judged_bad"] for info in judged]) < 0.1


# --- RLIF labels ----------------------------------------------------------------------------------
def _rlif_buffer_and_infos(steps=200):
    env = InterventionWrapper(Track(), TrackExpert(act_as=0.5), strategy="random", rate=0.3, takeover_steps=2)
    model = RLIF("MlpPolicy", env, seed=1, **SMALL_RLIF)
    infos = []

    from stable_baselines3.common.callbacks import BaseCallback

    class Record(BaseCallback):
        def _on_step(self):
            infos.append(dict(self.locals["infos"][0]))
            return True

    model.learn(steps, callback=Record())
    return model, infos


def test_rlif_labels_minus_one_on_the_learner_step_before_each_takeover():
    """Kills ``rlif-no-minus-one``, ``rlif-wrong-step`` and ``rlif-learner-action-on-expert-steps``."""
    model, infos = _rlif_buffer_and_infos()
    size = model.replay_buffer.size()
    assert size == len(infos) == 200
    rewards = model.replay_buffer.rewards[:size, 0]
    expected = np.zeros(size)
    for t in range(size - 1):
        same_episode = not (infos[t].get("TimeLimit.truncated") or "terminal_observation" in infos[t])
        if same_episode and infos[t + 1]["intervention_started"] and not infos[t]["intervened"]:
            expected[t] = -1.0
    assert expected.sum() <= -10  # takeovers happened
    np.testing.assert_array_equal(rewards, expected)
    actions = model.replay_buffer.actions[:size, 0, 0]
    expert = np.array([info["intervened"] for info in infos])
    np.testing.assert_allclose(actions[expert], 0.5, atol=1e-6)  # the executed (expert) action, scaled = 0.5


# --- DAgger and HG-DAgger -----------------------------------------------------------------------
def test_hg_dagger_learns_the_experts_executed_action_on_takeovers_only():
    """Kills ``hg-dagger-learner-label`` and ``hg-dagger-trains-on-all``."""
    env = InterventionWrapper(Track(), TrackExpert(act_as=0.5), strategy="random", rate=0.4, takeover_steps=2)
    model = HGDAgger("MlpPolicy", env, seed=0, round_steps=100, gradient_steps=1, **SMALL_BC)
    model.learn(100)
    labels = np.concatenate(model._labels)[:, 0]
    takeovers = int(np.sum(np.isclose(env.unwrapped.executed, 0.5, atol=1e-6)))
    assert 10 < len(labels) < 100
    assert len(labels) >= takeovers - 1 and len(labels) <= takeovers + 1
    np.testing.assert_allclose(labels, 0.5, atol=1e-6)


def test_dagger_aggregates_every_round_and_executes_the_expert_with_probability_beta():
    """Kills ``dagger-no-aggregation`` and ``dagger-beta-dropped``."""
    env = InterventionWrapper(Track(), TrackExpert(act_as=0.5), strategy="none")
    model = DAgger("MlpPolicy", env, seed=0, round_steps=50, gradient_steps=2, beta_schedule="linear",
                   beta_rampdown_rounds=2, **SMALL_BC)
    model.learn(150)
    assert model.dataset_size == 150
    executed = np.array(env.unwrapped.executed)
    expert_share = [np.mean(np.isclose(executed[r * 50:(r + 1) * 50], 0.5, atol=1e-6)) for r in range(3)]
    assert expert_share[0] == 1.0  # beta_0 = 1
    assert 0.25 < expert_share[1] < 0.75  # beta_1 = 0.5
    assert expert_share[2] < 0.1  # beta_2 = 0: the learner acts


# --- keep_checkpoints and sweep overrides ---------------------------------------------------------
def test_keep_checkpoints_survive_the_run(in_tmp):
    from causalrl.experiment.config import ConfigError, validate
    from causalrl.experiment.run.runner import run

    raw = {"env": {"id": "Pendulum-v1"}, "agents": [{"name": "sac", "learning_starts": 10, "batch_size": 8,
                                                      "policy_kwargs": {"net_arch": [8]}}],
           "total_steps": 60, "log_interval": 20, "keep_checkpoints": [40, 20], "progress_bar": False}
    (config,) = validate(raw)
    result = run(config)
    assert not (result.run_dir / "checkpoints").exists()
    kept = sorted(path.relative_to(result.run_dir).as_posix() for path in result.run_dir.glob("kept/*/model.zip"))
    assert kept == ["kept/step_20/model.zip", "kept/step_40/model.zip"]
    from stable_baselines3 import SAC

    early, final = SAC.load(result.run_dir / kept[0]), SAC.load(result.run_dir / "model.zip")
    assert early.num_timesteps < final.num_timesteps
    with pytest.raises(ConfigError, match=r"^keep_checkpoints: must be a list of positive steps"):
        validate({**raw, "keep_checkpoints": [0, 20]})
    assert validate({**raw, "keep_checkpoints": [20, 100]})[0].keep_checkpoints == [20]  # 100 is never reached


def test_rlif_mujoco_sweep_takes_the_env_from_a_sweep_override(in_tmp):
    from stable_baselines3 import SAC

    from causalrl.experiment.batch.sweep import load_sweep

    judge = SAC("MlpPolicy", "Reacher-v5", policy_kwargs={"net_arch": [8]}, seed=0)
    run_dir = in_tmp / "runs" / "expert" / "Reacher-v5__sac__s0__20261206-000000"
    judge.save(run_dir / "model.zip")
    judge.save(run_dir / "kept" / "step_2000" / "model.zip")
    sweep = load_sweep("rlif-mujoco", overrides=["env.id=Reacher-v5"], seeds=[1])
    assert sweep.directory.name.startswith("rlif-mujoco__")
    experts = {trial.config.env.kwargs["intervention"]["expert"] for trial in sweep.trials}
    assert {trial.config.env.id for trial in sweep.trials} == {"Reacher-v5"}
    assert experts == {str(run_dir / "model.zip"), str(run_dir / "kept" / "step_2000" / "model.zip")} or \
        experts == {str((run_dir / "model.zip").relative_to(in_tmp)),
                    str((run_dir / "kept" / "step_2000" / "model.zip").relative_to(in_tmp))}
