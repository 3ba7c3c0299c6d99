"""CIP and ACE on SAC (agents/cip.py, docs/cip.md): each part acts, discovery finds the reward's
parents, save/load round-trips, and the runner logs structure and weights. Short runs with small
networks (a few hundred steps each), so the whole file stays fast on two shared cores."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

import causalrl.envs  # noqa: F401
from causalrl.agents import ACE, CIP
from causalrl.core.metrics import structure_metrics
from causalrl.core.registry import AGENTS
from causalrl.experiment.config import AgentConfig, EnvConfig, RunConfig
from causalrl.experiment.runner import run

SMALL = dict(policy_kwargs={"net_arch": [32, 32]}, inverse_model_arch=(32, 32), batch_size=64, learning_starts=100,
             buffer_size=10_000)
# the acceptance world: 3 relevant + 20 distractor states, 2 relevant + 4 irrelevant actions
LQR = dict(n_relevant_states=3, n_distractor_states=20, n_relevant_actions=2, n_irrelevant_actions=4)
ROUND = 300  # discovery every ROUND steps on the last ROUND transitions


def _reward_f1(agent, truth) -> float:
    learned = agent.learned_structure
    return structure_metrics(
        np.concatenate([learned["state_to_reward"], learned["action_to_reward"]])[None],
        np.concatenate([truth.state_to_reward, truth.action_to_reward])[None],
    )["f1"]


class _DiscoveryRecorder(BaseCallback):
    """F1 of the reward masks after each discovery round, and the counterfactual rows trained on."""

    def __init__(self, truth):
        super().__init__()
        self.truth, self.f1, self.counterfactual_rows = truth, [], 0

    def _on_step(self) -> bool:
        if self.model.discovery_rounds > len(self.f1):
            self.f1.append(_reward_f1(self.model, self.truth))
        self.counterfactual_rows += getattr(self.model, "last_counterfactual_rows", 0)
        return True


@pytest.fixture(scope="module")
def trained():
    """CIP on the acceptance FactoredLQR for two discovery rounds (~2 x 300 steps)."""
    th.manual_seed(0)
    env = gym.make("causalrl/FactoredLQR-v0", **LQR)
    agent = CIP("MlpPolicy", env, seed=0, discovery_interval=ROUND, discovery_samples=ROUND,
                empowerment_warmup=0, **SMALL)
    recorder = _DiscoveryRecorder(env.unwrapped.causal_structure)
    agent.learn(2 * ROUND + 20, callback=recorder)
    return env, agent, recorder


def test_registered():
    assert AGENTS.get("cip") is CIP and AGENTS.get("ace") is ACE and AGENTS.get("sac") is SAC
    ace = ACE("MlpPolicy", "Pendulum-v1", **SMALL)
    assert ace.causal_weights and not ace.augmentation and not ace.empowerment


def test_reward_masks_reach_f1_by_the_second_discovery_round(trained):
    """Acceptance 2 on FactoredLQR (measured: F1 = 1.0 in both rounds)."""
    _, agent, recorder = trained
    assert agent.discovery_rounds == 2 and len(recorder.f1) == 2
    assert recorder.f1[1] >= 0.95
    # the relevant actions carry the larger entropy weights; the weights average 1
    weights = agent.action_weights.numpy()
    assert weights.sum() == pytest.approx(6.0, rel=1e-5)
    assert weights[:2].min() > weights[2:].max()


def test_twin_reacher_reward_masks_reach_f1_by_the_second_discovery_round():
    """Acceptance 2 on the MuJoCo world: arm B's joints and motors are never reward parents."""
    env = gym.make("causalrl/TwinReacher-v0")
    agent = CIP("MlpPolicy", env, seed=0, discovery_interval=ROUND, discovery_samples=ROUND, **SMALL)
    recorder = _DiscoveryRecorder(env.unwrapped.causal_structure)
    agent.learn(2 * ROUND + 20, callback=recorder)
    assert agent.discovery_rounds == 2 and len(recorder.f1) == 2
    assert recorder.f1[1] >= 0.95, recorder.f1
    learned = agent.learned_structure
    assert not learned["state_to_reward"][8:].any() and not learned["action_to_reward"][2:].any()  # arm B


def test_weights_change_critic_targets(trained):
    _, agent, _ = trained
    batch = agent.replay_buffer.sample(64)
    alpha = th.tensor(0.5)
    ones = th.ones(6)
    skewed = th.tensor([3.0, 1.5, 0.5, 0.5, 0.25, 0.25])
    targets = []
    for weights in (ones, ones, skewed):
        th.manual_seed(1)
        targets.append(agent._soft_target(batch, alpha, weights))
    assert th.equal(targets[0], targets[1])
    assert (targets[0] - targets[2]).abs().max() > 1e-3
    # and train() passes the discovered weights (not ones) to the target
    seen = []
    original = agent._soft_target

    def spy(batch, ent_coef, weights):
        seen.append(weights.clone())
        return original(batch, ent_coef, weights)

    agent._soft_target = spy
    try:
        agent.train(gradient_steps=2, batch_size=32)
    finally:
        del agent._soft_target
    assert seen and all(th.equal(weights, agent.action_weights) for weights in seen)
    assert not th.equal(agent.action_weights, th.ones(6))


def test_augmented_transitions_reach_batches_and_differ_only_in_irrelevant_dims(trained):
    _, agent, recorder = trained
    assert recorder.counterfactual_rows > 0  # they were in the minibatches training used
    irrelevant = ~agent.reward_state_mask
    assert irrelevant.sum() == 20
    real = agent.replay_buffer.sample(64)
    mixed = agent._augment(real)
    n_rows = agent.last_counterfactual_rows
    assert n_rows == 16  # augmentation_ratio 0.25 of 64
    for field in ("actions", "rewards", "dones"):
        assert th.equal(getattr(mixed, field), getattr(real, field))
    for field in ("observations", "next_observations"):
        new, old = getattr(mixed, field).numpy(), getattr(real, field).numpy()
        assert np.array_equal(new[n_rows:], old[n_rows:])
        assert np.array_equal(new[:n_rows, ~irrelevant], old[:n_rows, ~irrelevant])
        assert (new[:n_rows, irrelevant] != old[:n_rows, irrelevant]).any(axis=1).all()
        # every swapped value comes from another real transition of the batch
        assert np.isin(new[:n_rows, irrelevant], old[:, irrelevant]).all()
    # the same dimensions are swapped in s and s'
    changed_s = mixed.observations.numpy()[:n_rows] != real.observations.numpy()[:n_rows]
    changed_next = mixed.next_observations.numpy()[:n_rows] != real.next_observations.numpy()[:n_rows]
    assert np.array_equal(changed_s, changed_next)


def test_inverse_model_loss_falls(trained):
    _, agent, _ = trained
    batch = agent.replay_buffer.sample(256)

    def loss() -> float:
        with th.no_grad():
            return -agent.inverse_model.log_prob(batch.observations, batch.next_observations, batch.actions).sum(1).mean().item()

    untrained = CIP("MlpPolicy", agent.env, seed=1, **SMALL).inverse_model
    with th.no_grad():
        fresh = -untrained.log_prob(batch.observations, batch.next_observations, batch.actions).sum(1).mean().item()
    before = loss()
    agent.train(gradient_steps=200, batch_size=64)
    after = loss()
    assert before < fresh and after < before


def test_empowerment_sends_gradient_to_the_actor_only(trained):
    _, agent, _ = trained
    batch = agent.replay_buffer.sample(64)
    agent.actor.optimizer.zero_grad()
    agent.inverse_optimizer.zero_grad()
    actions, log_probs = agent._sample_with_log_probs(batch.observations)
    empowerment = agent._empowerment(batch.observations, batch.next_observations, actions, log_probs, agent.action_weights)
    empowerment.backward()
    actor_grad = sum(float(p.grad.abs().sum()) for p in agent.actor.parameters() if p.grad is not None)
    assert actor_grad > 0
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in agent.inverse_model.parameters())
    # and its inverse-model part alone (the conditional entropy) also reaches the actor
    agent.actor.optimizer.zero_grad()
    actions, log_probs = agent._sample_with_log_probs(batch.observations)
    agent._empowerment(batch.observations, batch.next_observations, actions, 0 * log_probs, agent.action_weights).backward()
    assert sum(float(p.grad.abs().sum()) for p in agent.actor.parameters() if p.grad is not None) > 0


def test_dormancy_reset_shrinks_and_perturbs(trained):
    _, agent, _ = trained
    agent.train(gradient_steps=2, batch_size=32)  # fresh actor gradients
    before = [p.clone() for p in agent.critic.parameters()]
    factor = agent._dormancy_reset()
    assert 0.2 <= factor <= 0.9
    assert any(not th.equal(a, b) for a, b in zip(before, agent.critic.parameters()))


def test_pendulum_trains_predicts_saves_and_loads(tmp_path):
    agent = CIP("MlpPolicy", gym.make("Pendulum-v1"), seed=0, discovery_interval=150, discovery_samples=100,
                empowerment_warmup=10, **SMALL)
    agent.learn(300)
    assert agent.discovery_rounds >= 1 and agent.num_timesteps == 300
    observations = np.stack([agent.observation_space.sample() for _ in range(16)])
    actions, _ = agent.predict(observations, deterministic=True)
    agent.save(tmp_path / "cip.zip")
    loaded = CIP.load(tmp_path / "cip.zip", env=gym.make("Pendulum-v1"))
    assert np.array_equal(loaded.predict(observations, deterministic=True)[0], actions)
    for name, value in loaded.inverse_model.state_dict().items():
        assert th.equal(value, agent.inverse_model.state_dict()[name])
    assert th.equal(loaded.action_weights, agent.action_weights)
    assert np.array_equal(loaded.reward_state_mask, agent.reward_state_mask)
    assert loaded.discovery_rounds == agent.discovery_rounds
    loaded.learn(50, reset_num_timesteps=False)  # and it keeps training


def test_runs_through_the_runner_and_logs_structure_and_weights(tmp_path):
    config = RunConfig(
        env=EnvConfig("causalrl/FactoredLQR-v0", {"n_distractor_states": 5, "n_irrelevant_actions": 2}),
        agent=AgentConfig("cip", None, {"discovery_interval": 200, "discovery_samples": 200, **SMALL}),
        experiment="test-cip", total_steps=400, log_interval=100, output_dir=str(tmp_path),
        progress_bar=False, save_model=False,
    )
    result = run(config)
    assert result.rows[-1]["structure/f1"] >= 0.95
    progress = pd.read_csv(result.run_dir / "progress.csv")
    assert progress["structure/f1"].iloc[-1] >= 0.95
    weights = progress[[f"causal/weights/a{i}" for i in range(4)]].iloc[-1].to_numpy()
    assert weights.sum() == pytest.approx(4.0, rel=1e-4) and weights[:2].min() > weights[2:].max()
    assert (result.run_dir / "summary.json").exists()


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="^discovery: "):
        CIP("MlpPolicy", "Pendulum-v1", discovery="pc")
    with pytest.raises(ValueError, match="^augmentation_ratio: "):
        CIP("MlpPolicy", "Pendulum-v1", augmentation_ratio=2.0)
    try:
        import causallearn  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"causal-learn"):
            CIP("MlpPolicy", "Pendulum-v1", discovery="direct-lingam")
