"""Batched SAC over K seeds in one process (causalrl.agents.batched_sac, docs/batched.md).

Mutants each test kills: a seed's random stream, replay indices or env seed leaking into another
learner, a loss averaged instead of summed over seeds, parameters shared between seeds
(test_seed_alone_equals_seed_in_batch); a different update order, loss scale, entropy term,
target rule or Polyak schedule than SB3's SAC (test_update_matches_sb3_sac_train); a transposed
or misplaced member in the export (test_export_to_sb3_and_back); a lost optimiser, temperature
or random-stream state (test_save_and_load_continue_the_same_streams); a missing device
fallback line (test_cuda_request_falls_back_to_cpu_with_one_line).
"""

import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from causalrl.agents import batched_sac
from causalrl.agents.batched_sac import BatchedSAC, resolve_device

SMALL = {"learning_starts": 20, "batch_size": 32, "policy_kwargs": {"net_arch": [16, 16]}, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _state(model, k):
    """Learner k's parameters: actor, critics, targets, temperature, as flat tensors."""
    tensors = [p[k] for p in model.actor.parameters()]
    n = model.critic.n_critics
    for module in (model.critic, model.critic_target):
        tensors += [p[k * n:(k + 1) * n] for p in module.parameters()]
    return [*tensors, model.log_ent_coef[k : k + 1]]


def test_seed_alone_equals_seed_in_batch():
    """Acceptance: seed 3 trained alone (K = 1) and inside a K = 5 batch holds the same
    parameters after 40 updates (float tolerance), and so does its replay buffer."""
    alone = BatchedSAC("Pendulum-v1", [3], **SMALL).learn(60)
    batch = BatchedSAC("Pendulum-v1", [0, 1, 2, 3, 4], **SMALL).learn(60)
    assert alone._n_updates == batch._n_updates == 40
    for ours, theirs in zip(_state(alone, 0), _state(batch, 3)):
        th.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    for name, tensor in alone.replay_buffer.tensors.items():
        th.testing.assert_close(tensor[0, :60], batch.replay_buffer.tensors[name][3, :60], msg=name)
    assert not th.allclose(_state(batch, 2)[0], _state(batch, 3)[0])  # other seeds did differ


def test_update_matches_sb3_sac_train():
    """Given the same weights, minibatch and noise, three updates move every parameter as
    SB3's ``SAC.train`` does (with target_update_interval=2: targets after updates 0 and 2)."""
    model = BatchedSAC("Pendulum-v1", [7], target_update_interval=2, ent_coef="auto_0.3", **SMALL)
    sb3 = model.to_sb3(0)
    rng = np.random.default_rng(0)
    batch = {"observations": rng.normal(size=(32, 3)), "actions": rng.uniform(-1, 1, (32, 1)),
             "next_observations": rng.normal(size=(32, 3)), "rewards": rng.normal(size=32),
             "dones": (rng.uniform(size=32) < 0.2).astype(float)}
    batch = {name: th.as_tensor(value, dtype=th.float32) for name, value in batch.items()}
    samples = ReplayBufferSamples(batch["observations"], batch["actions"], batch["next_observations"],
                                  batch["dones"][:, None], batch["rewards"][:, None])
    sb3.replay_buffer.sample = lambda *args, **kwargs: samples
    sb3.set_logger(configure(None, []))
    th.manual_seed(11)
    sb3.train(gradient_steps=3, batch_size=32)
    model.noise_generators[0].manual_seed(11)  # the same normal draws as SB3's global generator
    for step in range(3):
        model._gradient_step({name: value[None] for name, value in batch.items()}, step)
    exported = model.to_sb3(0)
    for (name, ours), theirs in zip(exported.policy.state_dict().items(), sb3.policy.state_dict().values()):
        th.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)
    th.testing.assert_close(exported.log_ent_coef, sb3.log_ent_coef, rtol=1e-6, atol=1e-7)


def test_export_to_sb3_and_back(tmp_path):
    model = BatchedSAC("Pendulum-v1", [1, 2], **SMALL).learn(40)
    observations = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    ours = model.predict(observations, deterministic=True)[0]
    model.save_seed(1, tmp_path / "seed2.zip")
    loaded = SAC.load(tmp_path / "seed2.zip")
    np.testing.assert_allclose(loaded.predict(observations[1], deterministic=True)[0], ours[1], rtol=1e-6)
    other = BatchedSAC("Pendulum-v1", [5, 6], **SMALL)
    other.load_seed(0, str(tmp_path / "seed2.zip"))
    for theirs, mine in zip(_state(model, 1), _state(other, 0)):
        th.testing.assert_close(theirs, mine)
    assert not th.equal(_state(other, 1)[0], _state(model, 1)[0])  # slot 1 untouched


def test_save_and_load_continue_the_same_streams(tmp_path):
    model = BatchedSAC("Pendulum-v1", [0, 1], **SMALL).learn(40)
    model.save(tmp_path / "batched.pt")
    loaded = BatchedSAC.load(tmp_path / "batched.pt", "Pendulum-v1", device="cpu")
    for k in range(2):
        for ours, theirs in zip(_state(model, k), _state(loaded, k)):
            assert th.equal(ours, theirs)
    assert loaded.num_timesteps == 40 and loaded._n_updates == model._n_updates
    # the same noise and minibatch-index streams: one more sample draws the same numbers
    np.testing.assert_array_equal(model.predict(np.zeros((2, 3)))[0], loaded.predict(np.zeros((2, 3)))[0])
    assert model.rngs[1].integers(1 << 30) == loaded.rngs[1].integers(1 << 30)
    loaded.learn(10, reset_num_timesteps=False)
    assert loaded.num_timesteps == 50


def test_callbacks_and_loggers_per_seed(tmp_path):
    class StopAt(BaseCallback):
        def _on_step(self):
            return self.model.num_timesteps < 30

    model = BatchedSAC("Pendulum-v1", [0, 1], **SMALL)
    model.set_loggers([configure(str(tmp_path / f"s{seed}"), ["csv"]) for seed in model.seeds])
    model.learn(1000, callback=StopAt(), log_interval=1)
    assert model.num_timesteps == 30
    model = BatchedSAC("Pendulum-v1", [0, 1], **{**SMALL, "learning_starts": 100})
    model.set_loggers([configure(str(tmp_path / f"s{seed}"), ["csv"]) for seed in model.seeds])
    model.learn(400, log_interval=1)  # Pendulum-v1 episodes are 200 steps
    for seed in model.seeds:
        rows = (tmp_path / f"s{seed}" / "progress.csv").read_text().splitlines()
        assert len(rows) == 3 and "rollout/ep_rew_mean" in rows[0] and "train/critic_loss" in rows[0]


def test_cuda_request_falls_back_to_cpu_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(th.cuda, "is_available", lambda: False)
    monkeypatch.setattr(batched_sac, "_FALLBACK_PRINTED", False)
    assert resolve_device("cuda") == th.device("cpu")
    assert resolve_device("cuda") == th.device("cpu")
    assert resolve_device("auto") == th.device("cpu")
    assert capsys.readouterr().out.count("CUDA is not available") == 1


def test_unknown_policy_kwargs_are_refused():
    with pytest.raises(ValueError, match=r"^policy_kwargs: BatchedSAC takes net_arch.*\['use_sde'\]"):
        BatchedSAC("Pendulum-v1", [0], policy_kwargs={"use_sde": True}, device="cpu")
