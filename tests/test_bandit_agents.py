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


# --- the plain gym loop and chunked learning play the same rounds as one learn() ---------------
class ActionRecorder(BaseCallback):
    def __init__(self):
        super().__init__()
        self.actions = []  # kept across learn() calls

    def _on_step(self):
        self.actions.append(np.array(self.locals["actions"][0]))
        return True


@pytest.mark.parametrize("name", ["csl-ucb", "ucb", "linsem-ts-oracle", "linsem-ucb-oracle"])
def test_chunked_learn_and_the_plain_loop_equal_one_learn(name):
    horizon = 450
    agent_cls = AGENTS.get(name)

    def fresh():
        return agent_cls("BanditPolicy", _env(5, instance_seed=2, horizon=horizon), seed=7)

    whole = ActionRecorder()
    one = fresh().learn(horizon, callback=whole)
    chunks = ActionRecorder()
    chunked = fresh()
    for part in range(3):
        chunked.learn(horizon // 3, callback=chunks, reset_num_timesteps=part == 0)
    # the plain gymnasium loop with the public update
    loop = fresh()
    env = loop.get_env()
    observation, info = env.reset(seed=7)
    played = []
    for _ in range(horizon):
        action, _ = loop.predict(observation)
        observation, reward, _, _, info = env.step(action)
        loop.observe(action, observation, reward, info)
        played.append(action)
    np.testing.assert_array_equal(np.array(chunks.actions), np.array(whole.actions))
    np.testing.assert_array_equal(np.array(played), np.array(whole.actions))
    assert one.num_timesteps == chunked.num_timesteps == loop.num_timesteps == horizon
    np.testing.assert_array_equal(one.predict(None, deterministic=True)[0], loop.predict(None, deterministic=True)[0])
    if name == "csl-ucb":  # the schedule follows the declared horizon, not the learn() call
        assert one.kappa == chunked.kappa == loop.kappa


# --- bandit worlds refuse nonsense with one line naming the field -------------------------------
@pytest.mark.parametrize("kwargs, field", [
    ({"edge_prob": 2.0}, "edge_prob"),
    ({"edge_prob": float("nan")}, "edge_prob"),
    ({"generator": "hierarchical", "n_nodes": 7, "nodes_per_layer": 0}, "nodes_per_layer"),
    ({"generator": "hierarchical", "n_nodes": 7, "nodes_per_layer": -1}, "nodes_per_layer"),
    ({"weight_low": float("nan")}, "weight_low"),
    ({"weight_low": 3.0, "weight_high": 2.0}, "weight_low"),
    ({"weight_low": 1e299, "weight_high": 1e300}, "weight_high"),
    ({"instance_seed": None}, "instance_seed"),
    ({"instance_seed": "abc"}, "instance_seed"),
    ({"n_nodes": 26}, "n_nodes"),
    ({"noise_std": 1e300}, "noise_std"),
    ({"noise_mean": "abc"}, "noise_mean"),
])
def test_bandit_worlds_refuse_bad_instances(kwargs, field):
    arguments = {"n_nodes": 6, "instance_seed": 0, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}") as error:
        gym.make("causalrl/LinearSEMBandit-v0", **arguments)
    assert "\n" not in str(error.value)


def test_user_weights_that_overflow_are_refused_at_construction():
    weights = np.zeros((3, 3))
    weights[0, 1] = weights[1, 2] = 1e200
    with pytest.raises(ValueError, match="^observational_weights/interventional_weights: expected node values"):
        gym.make("causalrl/LinearSEMBandit-v0", observational_weights=weights, interventional_weights=weights)
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match="^n_nodes: at most 20"):
        gym.make("causalrl/LinearSEMBandit-v0", n_nodes=26)
    assert time.perf_counter() - start < 1.0  # refused before any enumeration


def test_the_world_keeps_only_the_reward_column():
    env = _env(12).unwrapped
    arrays = [value for value in vars(env).values() if isinstance(value, np.ndarray)]
    assert max(array.size for array in arrays) == 1 << 12  # the reward vector, not (2^N, N)
    assert env.expected_rewards.shape == (1 << 12,)
    np.testing.assert_allclose(env.expected_rewards, env.causal_structure.expected_values()[:, -1])


@pytest.mark.parametrize("name", ["ucb", "csl-ucb", "linsem-ts-oracle", "linsem-ucb-oracle", "etc-dagma"])
def test_bandit_agents_take_a_registered_env_id(name):
    # the base class builds the env from an id (gym.make); UCB used to read env.action_space first
    agent = AGENTS.get(name)("BanditPolicy", "causalrl/LinearSEMBandit-v0", seed=0)
    assert agent.n_nodes == 10 and agent.env.spec.id == "causalrl/LinearSEMBandit-v0"
    agent.learn(3)
