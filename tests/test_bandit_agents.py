import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from causalrl.agents import UCB, LinSEMTS, LinSEMUCB
from causalrl.core.registry import AGENTS


class RegretRecorder(BaseCallback):
    def _init_callback(self):
        self.regret = []

    def _on_step(self):
        info = self.locals["infos"][0]
        self.regret.append(info["optimal_expected_reward"] - info["expected_reward"])
        return True


def _env(n_nodes=6, instance_seed=0, **kwargs):
    return gym.make("causalrl/LinearSEMBandit-v0", n_nodes=n_nodes, instance_seed=instance_seed, **kwargs)


def test_ucb_plays_every_arm_once_then_exploits():
    agent = UCB("BanditPolicy", _env(4), seed=0)
    recorder = RegretRecorder()
    agent.learn(16, callback=recorder)
    assert np.all(agent.pulls == 1)  # 2^4 arms, one pull each, in index order
    agent.learn(400, callback=recorder, reset_num_timesteps=False)
    mu = agent.env.unwrapped.expected_rewards
    assert mu[np.argmax(agent.pulls)] > mu.max() - 0.01  # the most-pulled arm is (one of) the best
    assert agent.num_timesteps == 416


def test_sliding_window_mean_uses_recent_pulls_only():
    agent = UCB("BanditPolicy", _env(2), seed=0, window=2)
    arm = np.array([1, 0], dtype=np.int8)
    for reward in (10.0, 1.0, 3.0):
        agent._update(arm, np.zeros(2), reward)
    assert agent._means()[1] == pytest.approx(2.0)  # last two pulls of arm 1


@pytest.mark.parametrize("agent_cls", [LinSEMTS, LinSEMUCB])
def test_oracle_linsem_learns_the_true_weights_and_finds_the_optimum(agent_cls):
    env = _env(6, instance_seed=3)
    agent = agent_cls("BanditPolicy", env, seed=1)
    recorder = RegretRecorder()
    agent.learn(600, callback=recorder)
    mean, _ = agent._posterior()
    truth = env.unwrapped.causal_structure
    true_columns = np.stack([truth.observational_weights.T, truth.interventional_weights.T])
    # columns seen in >= 100 rounds are estimated to within 0.5 (noise std 1: std error ~ 0.1 / |x|)
    well_sampled = agent.sample_counts >= 100
    assert well_sampled.sum() >= 6
    assert np.abs(mean - true_columns)[well_sampled].max() < 0.5
    late = np.mean(np.array(recorder.regret[-100:]) < 0.01)
    assert late >= 0.9
    greedy, _ = agent.predict(None, deterministic=True)
    mu = env.unwrapped.expected_rewards
    assert mu.max() - mu[int((greedy.astype(int) << np.arange(6)).sum())] < 0.01


def test_oracle_agents_refuse_envs_without_ground_truth():
    class Plain(gym.Env):
        action_space = gym.spaces.MultiBinary(3)
        observation_space = gym.spaces.Box(-1, 1, (3,))
    with pytest.raises(ValueError, match="causal_structure"):
        LinSEMTS("BanditPolicy", Plain())


def test_bad_agent_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="^policy"):
        UCB("MlpPolicy", _env())
    with pytest.raises(ValueError, match="^exploration"):
        UCB("BanditPolicy", _env(), exploration=-1)
    with pytest.raises(ValueError, match="^env"):
        UCB("BanditPolicy", gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="^total_timesteps"):
        UCB("BanditPolicy", _env()).learn(0)


@pytest.mark.parametrize("name", ["ucb", "linsem-ts-oracle", "linsem-ucb-oracle"])
def test_save_load_continues_identically(tmp_path, name):
    agent_cls = AGENTS.get(name)
    agent = agent_cls("BanditPolicy", _env(5), seed=0)
    agent.learn(120)
    agent.save(tmp_path / "agent")
    restored = agent_cls.load(tmp_path / "agent.zip", env=_env(5))
    assert np.array_equal(restored.predict(None, deterministic=True)[0], agent.predict(None, deterministic=True)[0])
    assert np.array_equal(restored.predict(None)[0], agent.predict(None)[0])  # same RNG state
    with pytest.raises(ValueError, match="holds a"):
        (UCB if name != "ucb" else LinSEMTS).load(tmp_path / "agent.zip")
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a causalrl bandit agent file"):
        agent_cls.load(tmp_path / "junk.zip")


def test_same_seed_same_actions():
    runs = []
    for _ in range(2):
        agent = LinSEMTS("BanditPolicy", _env(5), seed=4)
        recorder = RegretRecorder()
        agent.learn(200, callback=recorder)
        runs.append(recorder.regret)
    assert runs[0] == runs[1]
