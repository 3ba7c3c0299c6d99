"""Batched SAC: K independent Soft Actor-Critic learners, one per seed, trained in one process
with vectorised networks (docs/batched.md).

Each seed k has its own actor, twin critics, target critics, entropy temperature, gymnasium env
(reset with seed k's value), replay buffer slice and random streams; the networks of all seeds
are stacked into ``EnsembleMLP``s (``causalrl.agents.ensemble``), so one ``torch.baddbmm`` per
layer updates every seed at once. The algorithm is Stable-Baselines3's ``SAC`` (Haarnoja et al.,
arXiv:1801.01290 and arXiv:1812.05905) step for step, per seed:

- acting: uniform random actions for the first ``learning_starts`` steps, then a sample of the
  tanh-squashed diagonal Gaussian policy (log-std clamped to [-20, 2]); the buffer stores the
  action in [-1, 1], the env gets it rescaled to its bounds;
- storage: time-limit truncations are bootstrapped, terminations are not (SB3's
  ``handle_timeout_termination``); the next observation of a finished episode is its last one;
- training: after every ``train_freq`` env steps, once more than ``learning_starts`` steps are
  done, ``gradient_steps`` updates (-1: as many as steps collected), each in SB3's order:
  sample a batch; a ~ pi(.|s); temperature step on -log alpha (log pi + H_target); target
  y = r + gamma (1 - d) (min_j Qbar_j(s', a') - alpha log pi(a'|s')); critic step on
  0.5 sum_j mse(Q_j(s, a), y); actor step on alpha log pi(a|s) - min_j Q_j(s, a) with the
  updated critics; Polyak update of the targets when the update's index within the call is a
  multiple of ``target_update_interval`` (SB3's rule).

**Independence.** Seed k's numbers depend only on seed k: its parameters are its own slices of
the stacked tensors (Adam is element-wise, and the losses are *summed* over seeds, so seed k's
gradient is its own loss's); its random numbers come from its own streams, derived from its
seed by ``numpy.random.SeedSequence(seed).spawn(3)``: a torch CPU generator for initialisation
(drawn as SB3 builds the networks: actor, then the twin critics; the targets copy the critics),
a torch generator on the training device for the policy noise (acting and updates), and a numpy
generator for warm-up actions and minibatch indices. So a seed trained alone (K = 1) or inside
a batch gives the same parameters up to float rounding (tests/test_batched.py).

Not the same random numbers as an SB3 ``SAC`` with the same seed (SB3 draws from global
generators); the same update rule given the same weights, minibatch and noise
(tests/test_batched.py checks it against SB3's ``SAC.train``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
)
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.torch_layers import get_actor_critic_arch
from stable_baselines3.common.utils import FloatSchedule, polyak_update
from torch import nn

from causalrl.agents.ensemble import EnsembleMLP, frozen_parameters

__all__ = ["BatchedActor", "BatchedCritic", "BatchedReplayBuffer", "BatchedSAC", "resolve_device"]

#: SB3's SAC log-std clamp (stable_baselines3.sac.policies)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
#: SB3's SquashedDiagGaussianDistribution epsilon in log(1 - tanh(u)^2 + eps)
SQUASH_EPS = 1e-6
_HALF_LOG_2PI = float(np.log(np.sqrt(2 * np.pi)))
_FALLBACK_PRINTED = False


def resolve_device(device: str | th.device = "auto") -> th.device:
    """The torch device for ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``;
    ``"cuda"`` without a GPU falls back to the CPU with one printed line (once per process).

    :param device: ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or a ``torch.device``. Default "auto".
    """
    global _FALLBACK_PRINTED
    name = str(device)
    if name == "auto":
        return th.device("cuda" if th.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not th.cuda.is_available():
        if not _FALLBACK_PRINTED:
            print(f"device: {name!r} asked for but CUDA is not available; using the CPU")
            _FALLBACK_PRINTED = True
        return th.device("cpu")
    return th.device(name)


def _seed_streams(seed: int, device: th.device) -> tuple[th.Generator, th.Generator, np.random.Generator]:
    """Seed ``seed``'s three streams (module docstring): initialisation, policy noise, numpy."""
    init_seq, noise_seq, numpy_seq = np.random.SeedSequence(int(seed)).spawn(3)
    init = th.Generator().manual_seed(int(init_seq.generate_state(1, np.uint64)[0]))
    noise = th.Generator(device=device).manual_seed(int(noise_seq.generate_state(1, np.uint64)[0]))
    return init, noise, np.random.default_rng(numpy_seq)


class _SpacesOnly(gym.Env):
    """An env that only carries spaces (for ``to_sb3`` when the learners' envs were given as
    instances); it cannot be stepped."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def step(self, action):
        raise NotImplementedError("this env only carries spaces: pass env= to to_sb3 to train or evaluate")

    def reset(self, *, seed=None, options=None):
        raise NotImplementedError("this env only carries spaces: pass env= to to_sb3 to train or evaluate")


class BatchedActor(nn.Module):
    """K tanh-squashed diagonal Gaussian policies (SB3's SAC ``Actor`` without gSDE): a hidden
    MLP, then a mean head and a log-std head (drawn in that order, as SB3 builds ``mu`` then
    ``log_std``).

    :param n_seeds: number of learners K.
    :param obs_dim: flattened observation width.
    :param action_dim: action width.
    :param net_arch: hidden widths.
    :param activation_fn: hidden activation. Default ReLU.
    :param generators: one initialisation generator per learner. Default None (torch's global).
    """

    def __init__(self, n_seeds: int, obs_dim: int, action_dim: int, net_arch: Sequence[int],
                 activation_fn: type[nn.Module] = nn.ReLU, generators: Sequence[th.Generator] | None = None):
        super().__init__()
        self.action_dim = int(action_dim)
        self.net = EnsembleMLP(n_seeds, obs_dim, net_arch, (action_dim, action_dim), activation_fn,
                               generators=generators)

    def distribution(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Mean and clamped log-std, each (K, B, action_dim), of the pre-tanh Gaussian.

        :param obs: (K, B, obs_dim)."""
        mean, log_std = self.net(obs).split(self.action_dim, dim=-1)
        return mean, th.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: th.Tensor, noise: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Reparameterised actions tanh(mean + std noise) in [-1, 1] and their log-density
        (SB3's ``log_prob_from_params``), shapes (K, B, action_dim) and (K, B).

        :param obs: (K, B, obs_dim).
        :param noise: standard normal draws (K, B, action_dim).
        """
        mean, log_std = self.distribution(obs)
        std = log_std.exp()
        gaussian = mean + noise * std
        actions = th.tanh(gaussian)
        log_prob = (-((gaussian - mean) ** 2) / (2 * std**2) - th.log(std) - _HALF_LOG_2PI).sum(-1)
        return actions, log_prob - th.log(1 - actions**2 + SQUASH_EPS).sum(-1)

    def mode(self, obs: th.Tensor) -> th.Tensor:
        """Deterministic actions tanh(mean), (K, B, action_dim).

        :param obs: (K, B, obs_dim)."""
        return th.tanh(self.distribution(obs)[0])


class BatchedCritic(nn.Module):
    """``n_critics`` Q networks per learner (SB3's ``ContinuousCritic``); member k n + j is learner
    k's critic j, drawn from learner k's generator after its actor.

    :param n_seeds: number of learners K.
    :param obs_dim: flattened observation width.
    :param action_dim: action width.
    :param net_arch: hidden widths.
    :param activation_fn: hidden activation. Default ReLU.
    :param n_critics: critics per learner. Default 2.
    :param generators: one initialisation generator per learner. Default None (torch's global).
    """

    def __init__(self, n_seeds: int, obs_dim: int, action_dim: int, net_arch: Sequence[int],
                 activation_fn: type[nn.Module] = nn.ReLU, n_critics: int = 2,
                 generators: Sequence[th.Generator] | None = None):
        super().__init__()
        self.n_seeds, self.n_critics = int(n_seeds), int(n_critics)
        member_generators = None if generators is None else [g for g in generators for _ in range(n_critics)]
        self.net = EnsembleMLP(self.n_seeds * self.n_critics, obs_dim + action_dim, net_arch, 1, activation_fn,
                               generators=member_generators)

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Q values (K, B, n_critics).

        :param obs: (K, B, obs_dim).
        :param actions: (K, B, action_dim) in [-1, 1].
        """
        q = self.net(th.cat([obs, actions], dim=-1))  # (K n, B, 1), learner k's critics read input k
        return q.view(self.n_seeds, self.n_critics, -1).transpose(1, 2)


class BatchedReplayBuffer:
    """One replay buffer per learner, stored as (K, capacity, ...) tensors; all learners add in
    lockstep, each samples its minibatch indices from its own numpy generator (SB3's uniform
    sampling with replacement over the stored transitions).

    :param n_seeds: number of learners K.
    :param capacity: transitions per learner.
    :param obs_dim: flattened observation width.
    :param action_dim: action width.
    :param device: torch device of the tensors.
    :param rngs: one numpy generator per learner.
    """

    def __init__(self, n_seeds: int, capacity: int, obs_dim: int, action_dim: int, device: th.device,
                 rngs: Sequence[np.random.Generator]):
        self.capacity, self.device, self.rngs = int(capacity), device, list(rngs)
        shapes = {"observations": (obs_dim,), "next_observations": (obs_dim,), "actions": (action_dim,),
                  "rewards": (), "dones": ()}
        self.tensors = {name: th.zeros((n_seeds, self.capacity, *shape), dtype=th.float32, device=device)
                        for name, shape in shapes.items()}
        self.pos, self.full = 0, False
        self._seed_index = th.arange(n_seeds, device=device).unsqueeze(1)

    def size(self) -> int:
        """Transitions stored per learner."""
        return self.capacity if self.full else self.pos

    def add(self, **arrays: np.ndarray) -> None:
        """Store one transition per learner: arrays ``observations``, ``next_observations``,
        ``actions``, ``rewards``, ``dones`` with K rows each."""
        for name, array in arrays.items():
            self.tensors[name][:, self.pos] = th.as_tensor(array, dtype=th.float32).to(self.device)
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, batch_size: int) -> dict[str, th.Tensor]:
        """A minibatch per learner, tensors (K, batch_size, ...).

        :param batch_size: transitions per learner."""
        indices = np.stack([rng.integers(0, self.size(), size=batch_size) for rng in self.rngs])
        indices = th.as_tensor(indices, device=self.device)
        return {name: tensor[self._seed_index, indices] for name, tensor in self.tensors.items()}


class BatchedSAC:
    """K independent SB3-style SAC learners, one per seed, in one process (module docstring).

    :param env: a gymnasium id (``gym.make(env, **env_kwargs)`` per seed), a callable returning
        a new env, or a sequence of K envs (Box observations and actions).
    :param seeds: one seed per learner; K = ``len(seeds)``.
    :param learning_rate: Adam learning rate of actor, critics and temperature, a float or a
        function of the remaining progress (1 -> 0) as in SB3. Default 3e-4.
    :param buffer_size: replay capacity per learner. Default 1_000_000.
    :param learning_starts: env steps of uniform random actions before updates start. Default 100.
    :param batch_size: minibatch size per learner. Default 256.
    :param tau: Polyak coefficient. Default 0.005.
    :param gamma: discount. Default 0.99.
    :param train_freq: env steps between training phases (steps only; SB3's episode unit is not
        offered, since the learners' episodes end at different steps). Default 1.
    :param gradient_steps: updates per training phase; -1: as many as env steps collected. Default 1.
    :param ent_coef: temperature: ``"auto"`` (learned from 1.0), ``"auto_<init>"``, or a fixed
        float. Default "auto".
    :param target_update_interval: Polyak update when an update's index within its training phase
        is a multiple of this (SB3's rule). Default 1.
    :param target_entropy: ``"auto"`` (-|A|) or a float. Default "auto".
    :param policy_kwargs: ``net_arch`` (a list for actor and critics, or ``{"pi": [...], "qf":
        [...]}``; default [256, 256]), ``activation_fn`` (default ReLU), ``n_critics`` (default 2).
    :param env_kwargs: keyword arguments of ``gym.make`` when ``env`` is an id. Default None.
    :param stats_window_size: episodes averaged in ``rollout/ep_rew_mean``. Default 100.
    :param verbose: 1 prints one line per seed at each log dump. Default 0.
    :param device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (``resolve_device``). Default "auto".
    """

    def __init__(self, env: str | Callable[[], gym.Env] | Sequence[gym.Env], seeds: Sequence[int],
                 learning_rate: float | Callable[[float], float] = 3e-4, buffer_size: int = 1_000_000,
                 learning_starts: int = 100, batch_size: int = 256, tau: float = 0.005, gamma: float = 0.99,
                 train_freq: int = 1, gradient_steps: int = 1, ent_coef: str | float = "auto",
                 target_update_interval: int = 1, target_entropy: str | float = "auto",
                 policy_kwargs: dict[str, Any] | None = None, env_kwargs: dict[str, Any] | None = None,
                 stats_window_size: int = 100, verbose: int = 0, device: str | th.device = "auto"):
        self.seeds = [int(seed) for seed in seeds]
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if not isinstance(train_freq, int) or train_freq < 1:
            raise ValueError(f"train_freq: a positive number of env steps, got {train_freq!r}")
        self.n_seeds = len(self.seeds)
        self.learning_rate, self.buffer_size = learning_rate, int(buffer_size)
        self.learning_starts = int(learning_starts)
        self.batch_size, self.tau, self.gamma = int(batch_size), float(tau), float(gamma)
        self.train_freq, self.gradient_steps = int(train_freq), int(gradient_steps)
        self.ent_coef, self.target_update_interval = ent_coef, int(target_update_interval)
        self.policy_kwargs, self.env_kwargs = dict(policy_kwargs or {}), dict(env_kwargs or {})
        unknown = sorted(set(self.policy_kwargs) - {"net_arch", "activation_fn", "n_critics"})
        if unknown:
            raise ValueError(f"policy_kwargs: BatchedSAC takes net_arch, activation_fn and n_critics, got {unknown}")
        self.stats_window_size, self.verbose = int(stats_window_size), int(verbose)
        self.device = resolve_device(device)
        self.lr_schedule = FloatSchedule(learning_rate)
        self.env_source = env
        self.envs = self._make_envs(env)
        self.observation_space, self.action_space = self.envs[0].observation_space, self.envs[0].action_space
        if not (isinstance(self.observation_space, gym.spaces.Box) and isinstance(self.action_space, gym.spaces.Box)):
            raise ValueError("env: BatchedSAC needs Box observation and action spaces")  # noqa: TRY004
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.action_dim = int(np.prod(self.action_space.shape))
        self.target_entropy = (float(-np.prod(self.action_space.shape).astype(np.float32))
                               if target_entropy == "auto" else float(target_entropy))
        self._setup_model()

    # --- construction ----------------------------------------------------------------------------
    def _make_envs(self, env) -> list[gym.Env]:
        if isinstance(env, str):
            return [gym.make(env, **self.env_kwargs) for _ in self.seeds]
        if callable(env):
            return [env() for _ in self.seeds]
        envs = list(env)
        if len(envs) != self.n_seeds:
            raise ValueError(f"env: one env per seed ({self.n_seeds}), got {len(envs)}")
        return envs

    def _setup_model(self) -> None:
        streams = [_seed_streams(seed, self.device) for seed in self.seeds]
        init_generators = [s[0] for s in streams]
        self.noise_generators = [s[1] for s in streams]
        self.rngs = [s[2] for s in streams]
        actor_arch, critic_arch = get_actor_critic_arch(self.policy_kwargs.get("net_arch", [256, 256]))
        activation_fn = self.policy_kwargs.get("activation_fn", nn.ReLU)
        n_critics = int(self.policy_kwargs.get("n_critics", 2))
        self.actor = BatchedActor(self.n_seeds, self.obs_dim, self.action_dim, actor_arch, activation_fn,
                                  init_generators).to(self.device)
        self.critic = BatchedCritic(self.n_seeds, self.obs_dim, self.action_dim, critic_arch, activation_fn,
                                    n_critics, init_generators).to(self.device)
        self.critic_target = deepcopy(self.critic)
        self.critic_target.requires_grad_(False)
        learning_rate = self.lr_schedule(1)
        self.actor_optimizer = th.optim.Adam(self.actor.parameters(), lr=learning_rate)
        self.critic_optimizer = th.optim.Adam(self.critic.parameters(), lr=learning_rate)
        if isinstance(self.ent_coef, str) and self.ent_coef.startswith("auto"):
            initial = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 1.0
            if initial <= 0:
                raise ValueError(f"ent_coef: the initial temperature must be > 0, got {initial}")
            self.log_ent_coef = th.log(th.full((self.n_seeds,), initial, device=self.device)).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=learning_rate)
        else:
            self.log_ent_coef, self.ent_coef_optimizer = None, None
            self.ent_coef_tensor = th.full((self.n_seeds,), float(self.ent_coef), device=self.device)
        self.replay_buffer = BatchedReplayBuffer(self.n_seeds, self.buffer_size, self.obs_dim, self.action_dim,
                                                 self.device, self.rngs)
        self.num_timesteps, self._n_updates, self._total_timesteps = 0, 0, 0
        self._last_obs: np.ndarray | None = None
        self._envs_seeded = False
        self._episode_returns, self._episode_lengths = np.zeros(self.n_seeds), np.zeros(self.n_seeds, dtype=int)
        self.episodes = np.zeros(self.n_seeds, dtype=int)
        self.ep_info_buffers = [deque(maxlen=self.stats_window_size) for _ in self.seeds]
        self._train_stats: dict[str, np.ndarray] = {}
        self.loggers: list[Logger] | None = None
        self._null_logger = Logger(folder=None, output_formats=[])
        self._low = th.as_tensor(self.action_space.low.reshape(-1), dtype=th.float32)
        self._high = th.as_tensor(self.action_space.high.reshape(-1), dtype=th.float32)

    # --- SB3-like surface ------------------------------------------------------------------------
    @property
    def logger(self) -> Logger:
        """Seed 0's logger (what an SB3 callback reads as ``self.logger``); a silent one when no
        loggers are set."""
        return self.loggers[0] if self.loggers else self._null_logger

    def set_loggers(self, loggers: Sequence[Logger] | None) -> None:
        """One SB3 ``Logger`` per seed (e.g. ``configure(run_dir_k, ["csv"])`` for a
        ``progress.csv`` per seed), or None for no logging.

        :param loggers: K loggers or None."""
        if loggers is not None and len(loggers) != self.n_seeds:
            raise ValueError(f"loggers: one per seed ({self.n_seeds}), got {len(loggers)}")
        self.loggers = None if loggers is None else list(loggers)

    def get_env(self) -> list[gym.Env]:
        """The K envs (seed order)."""
        return self.envs

    def _noise(self, batch: int) -> th.Tensor:
        """Standard normal (K, batch, action_dim), learner k's block from its own noise stream."""
        return th.stack([th.empty((batch, self.action_dim), device=self.device).normal_(generator=g)
                         for g in self.noise_generators])

    def _unscale(self, scaled: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] to the env's bounds (SB3's ``unscale_action``)."""
        low, high = self._low.numpy(), self._high.numpy()
        return low + 0.5 * (scaled + 1.0) * (high - low)

    def predict(self, observation: np.ndarray, state=None, episode_start=None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Actions of every learner in the env's units, SB3's ``predict`` per seed.

        :param observation: (K, *obs_shape): row k is seed k's observation; or (K, N, *obs_shape).
        :param state: unused (SB3's signature). Default None.
        :param episode_start: unused (SB3's signature). Default None.
        :param deterministic: the policy's mode instead of a sample (a sample draws from each
            seed's noise stream). Default False.
        :return: actions (K, action_dim) (or (K, N, action_dim)) and None.
        """
        obs = th.as_tensor(np.asarray(observation, dtype=np.float32), device=self.device)
        single = obs.dim() == 1 + len(self.observation_space.shape)
        obs = obs.reshape(self.n_seeds, -1, self.obs_dim)
        with th.no_grad():
            if deterministic:
                scaled = self.actor.mode(obs)
            else:
                scaled = self.actor.sample(obs, self._noise(obs.shape[1]))[0]
        actions = self._unscale(scaled.cpu().numpy()).reshape(self.n_seeds, -1, *self.action_space.shape)
        return (actions[:, 0] if single else actions), None

    # --- interaction ------------------------------------------------------------------------------
    def _reset_envs(self) -> None:
        """Start new episodes; the envs' first reset takes their learner's seed (SB3's
        ``env.seed(seed)``), later ones none."""
        seeds = self.seeds if not self._envs_seeded else [None] * self.n_seeds
        self._last_obs = np.stack([np.asarray(env.reset(seed=seed)[0], dtype=np.float32).reshape(-1)
                                   for env, seed in zip(self.envs, seeds)])
        self._envs_seeded = True
        self._episode_returns[:], self._episode_lengths[:] = 0.0, 0

    def _sample_actions(self) -> np.ndarray:
        """Scaled actions (K, action_dim) in [-1, 1]: uniform during warm-up (from each seed's
        numpy stream), else a policy sample (from each seed's noise stream)."""
        if self.num_timesteps < self.learning_starts:
            return np.stack([rng.uniform(-1.0, 1.0, self.action_dim) for rng in self.rngs]).astype(np.float32)
        obs = th.as_tensor(self._last_obs, device=self.device).unsqueeze(1)
        with th.no_grad():
            return self.actor.sample(obs, self._noise(1))[0][:, 0].cpu().numpy()

    def _step_envs(self, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
        """Step every env; finished episodes are reset. Returns the stored next observations (the
        last observation of a finished episode), rewards, terminations, episode ends and infos."""
        actions = self._unscale(scaled)
        next_obs = np.empty_like(self._last_obs)
        rewards, terminated, ended = np.zeros(self.n_seeds), np.zeros(self.n_seeds), np.zeros(self.n_seeds, bool)
        infos, new_obs = [], np.empty_like(self._last_obs)
        for k, env in enumerate(self.envs):
            obs, reward, term, trunc, info = env.step(actions[k].reshape(self.action_space.shape))
            next_obs[k] = new_obs[k] = np.asarray(obs, dtype=np.float32).reshape(-1)
            rewards[k], terminated[k], ended[k] = reward, term, term or trunc
            self._episode_returns[k] += reward
            self._episode_lengths[k] += 1
            if ended[k]:
                self.ep_info_buffers[k].append({"r": self._episode_returns[k], "l": int(self._episode_lengths[k])})
                self._episode_returns[k], self._episode_lengths[k] = 0.0, 0
                self.episodes[k] += 1
                new_obs[k] = np.asarray(env.reset()[0], dtype=np.float32).reshape(-1)
            infos.append(info)
        self._new_obs = new_obs
        return next_obs, rewards, terminated, ended, infos

    def _init_callback(self, callback) -> BaseCallback:
        if isinstance(callback, list):
            callback = CallbackList(callback)
        elif callback is None:
            callback = CallbackList([])
        elif not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        callback.init_callback(self)
        return callback

    def learn(self, total_timesteps: int, callback=None, log_interval: int = 4,
              reset_num_timesteps: bool = True, progress_bar: bool = False) -> BatchedSAC:
        """Train every learner for ``total_timesteps`` env steps each (SB3's off-policy loop).

        :param total_timesteps: env steps per learner.
        :param callback: an SB3 callback, a list of them, or a function ``(locals, globals) ->
            bool``; it sees this object as ``model`` (``model.num_timesteps`` counts steps per
            learner) and returning False stops every learner. Default None.
        :param log_interval: dump a seed's logger every this many of its episodes. Default 4.
        :param reset_num_timesteps: start counting from 0 (and new episodes). Default True.
        :param progress_bar: unused (SB3's signature). Default False.
        """
        if reset_num_timesteps:
            self.num_timesteps = 0
            self.episodes[:] = 0
            self.ep_info_buffers = [deque(maxlen=self.stats_window_size) for _ in self.seeds]
        if reset_num_timesteps or self._last_obs is None:
            self._reset_envs()
        self._total_timesteps = int(total_timesteps) + self.num_timesteps
        self._start_time, self._start_steps = time.time_ns(), self.num_timesteps
        callback = self._init_callback(callback)
        callback.on_training_start(locals(), globals())
        while self.num_timesteps < self._total_timesteps:
            callback.on_rollout_start()
            collected, keep_going = 0, True
            while collected < self.train_freq:
                scaled = self._sample_actions()
                next_obs, rewards, terminated, ended, infos = self._step_envs(scaled)
                self.num_timesteps += 1
                collected += 1
                callback.update_locals({**locals(), "new_obs": self._new_obs, "dones": ended})
                if not callback.on_step():
                    keep_going = False
                    break
                self.replay_buffer.add(observations=self._last_obs, next_observations=next_obs, actions=scaled,
                                       rewards=rewards, dones=terminated)
                self._last_obs = self._new_obs
                for k in np.flatnonzero(ended):
                    if log_interval and self.episodes[k] % log_interval == 0:
                        self._dump_logs(int(k))
            callback.on_rollout_end()
            if not keep_going:
                break
            if self.num_timesteps > 0 and self.num_timesteps > self.learning_starts:
                steps = self.gradient_steps if self.gradient_steps >= 0 else collected
                if steps > 0:
                    self.train(steps, self.batch_size)
        callback.on_training_end()
        return self

    # --- updates (SB3's SAC.train, module docstring) ----------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` SAC updates of every learner.

        :param gradient_steps: updates.
        :param batch_size: minibatch size per learner. Default 256.
        """
        progress_remaining = 1.0 - self.num_timesteps / max(self._total_timesteps, 1)
        optimizers = [self.actor_optimizer, self.critic_optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr_schedule(progress_remaining)
        stats = []
        for gradient_step in range(gradient_steps):
            stats.append(self._gradient_step(self.replay_buffer.sample(batch_size), gradient_step))
        self._n_updates += gradient_steps
        self._train_stats = {name: np.mean([s[name] for s in stats], axis=0) for name in stats[0]}

    def _gradient_step(self, batch: dict[str, th.Tensor], gradient_step: int) -> dict[str, np.ndarray]:
        """One update of every learner on its minibatch (SB3's order, module docstring); losses are
        summed over learners so each learner's gradient is its own loss's. Returns the per-learner
        losses and temperatures."""
        obs, next_obs = batch["observations"], batch["next_observations"]
        batch_size = obs.shape[1]
        actions_pi, log_prob = self.actor.sample(obs, self._noise(batch_size))
        stats = {}
        if self.ent_coef_optimizer is not None:
            ent_coef = th.exp(self.log_ent_coef.detach())
            ent_coef_loss = -(self.log_ent_coef.unsqueeze(1) * (log_prob + self.target_entropy).detach()).mean(1)
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.sum().backward()
            self.ent_coef_optimizer.step()
            stats["ent_coef_loss"] = ent_coef_loss.detach().cpu().numpy()
        else:
            ent_coef = self.ent_coef_tensor
        with th.no_grad():
            next_actions, next_log_prob = self.actor.sample(next_obs, self._noise(batch_size))
            next_q = self.critic_target(next_obs, next_actions).min(dim=-1).values
            next_q = next_q - ent_coef.unsqueeze(1) * next_log_prob
            target_q = batch["rewards"] + (1 - batch["dones"]) * self.gamma * next_q
        current_q = self.critic(obs, batch["actions"])  # (K, B, n_critics)
        critic_loss = 0.5 * ((current_q - target_q.unsqueeze(-1)) ** 2).mean(dim=1).sum(dim=-1)
        self.critic_optimizer.zero_grad()
        critic_loss.sum().backward()
        self.critic_optimizer.step()
        with frozen_parameters(self.critic):  # the actor loss updates the actor only
            min_q_pi = self.critic(obs, actions_pi).min(dim=-1).values
        actor_loss = (ent_coef.unsqueeze(1) * log_prob - min_q_pi).mean(dim=1)
        self.actor_optimizer.zero_grad()
        actor_loss.sum().backward()
        self.actor_optimizer.step()
        if gradient_step % self.target_update_interval == 0:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        stats.update(ent_coef=ent_coef.cpu().numpy(), actor_loss=actor_loss.detach().cpu().numpy(),
                     critic_loss=critic_loss.detach().cpu().numpy())
        return stats

    def _dump_logs(self, k: int) -> None:
        """Seed ``k``'s SB3 log lines (``time/*``, ``rollout/*``, ``train/*``), then a dump."""
        if not self.loggers:
            return
        logger, episodes = self.loggers[k], self.ep_info_buffers[k]
        elapsed = max((time.time_ns() - self._start_time) / 1e9, 1e-9)
        logger.record("time/episodes", int(self.episodes[k]), exclude="tensorboard")
        logger.record("time/fps", int((self.num_timesteps - self._start_steps) / elapsed))
        logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        if episodes:
            logger.record("rollout/ep_rew_mean", float(np.mean([e["r"] for e in episodes])))
            logger.record("rollout/ep_len_mean", float(np.mean([e["l"] for e in episodes])))
        if self._train_stats:
            logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
            for name, values in self._train_stats.items():
                logger.record(f"train/{name}", float(values[k]))
        if self.verbose:
            print(f"seed {self.seeds[k]}: {self.num_timesteps} steps, {int(self.episodes[k])} episodes")
        logger.dump(step=self.num_timesteps)

    # --- saving, loading, and one seed as an SB3 SAC ------------------------------------------------
    _HYPERPARAMETERS = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
                        "gradient_steps", "ent_coef", "target_update_interval", "target_entropy", "policy_kwargs",
                        "env_kwargs", "stats_window_size", "verbose")

    def save(self, path) -> None:
        """Every learner's state, to continue training with ``BatchedSAC.load``: hyperparameters,
        seeds, networks, optimisers, temperatures, random streams and counters. As in SB3, not the
        replay buffer nor the envs (a loaded model starts new episodes). Written with
        ``torch.save`` (pickle): load only files you trust.

        :param path: file to write."""
        state = {
            "hyperparameters": {name: getattr(self, name) for name in self._HYPERPARAMETERS},
            "seeds": self.seeds, "num_timesteps": self.num_timesteps, "n_updates": self._n_updates,
            "episodes": self.episodes.tolist(),
            "modules": {name: getattr(self, name).state_dict() for name in ("actor", "critic", "critic_target")},
            "optimizers": {name: getattr(self, name).state_dict() for name in
                           ("actor_optimizer", "critic_optimizer", "ent_coef_optimizer")
                           if getattr(self, name) is not None},
            "log_ent_coef": None if self.log_ent_coef is None else self.log_ent_coef.detach().cpu(),
            "noise_generators": [g.get_state() for g in self.noise_generators],
            "rngs": [rng.bit_generator.state for rng in self.rngs],
        }
        th.save(state, path)

    @classmethod
    def load(cls, path, env, device: str | th.device = "auto") -> BatchedSAC:
        """A saved ``BatchedSAC`` (``save``), with new envs.

        :param path: file written by ``save``.
        :param env: as the constructor's ``env``.
        :param device: as the constructor's. Default "auto".
        """
        state = th.load(path, map_location="cpu", weights_only=False)
        hyperparameters = dict(state["hyperparameters"])
        target_entropy = hyperparameters.pop("target_entropy")
        model = cls(env, state["seeds"], target_entropy=target_entropy, device=device, **hyperparameters)
        for name, module_state in state["modules"].items():
            getattr(model, name).load_state_dict(module_state)
        for name, optimizer_state in state["optimizers"].items():
            getattr(model, name).load_state_dict(optimizer_state)
        if state["log_ent_coef"] is not None:
            with th.no_grad():
                model.log_ent_coef.copy_(state["log_ent_coef"])
        for generator, generator_state in zip(model.noise_generators, state["noise_generators"]):
            generator.set_state(generator_state)
        for rng, rng_state in zip(model.rngs, state["rngs"]):
            rng.bit_generator.state = rng_state
        model.num_timesteps, model._n_updates = state["num_timesteps"], state["n_updates"]
        model.episodes = np.asarray(state["episodes"], dtype=int)
        return model

    def to_sb3(self, index: int, env: gym.Env | None = None) -> SAC:
        """Learner ``index`` as a Stable-Baselines3 ``SAC`` with its weights, targets, temperature
        and counters (not its optimiser moments nor its replay buffer): ``predict``, ``save``,
        ``SAC.load``, the runner's evaluation and the experts (``PolicyExpert``) then work on it.

        :param index: position of the seed in ``seeds``.
        :param env: env of the SB3 model. Default None: a new env made like the learners'.
        """
        if env is None:
            env = (gym.make(self.env_source, **self.env_kwargs) if isinstance(self.env_source, str)
                   else self.env_source() if callable(self.env_source)
                   else _SpacesOnly(self.observation_space, self.action_space))
        model = SAC("MlpPolicy", env, learning_rate=self.learning_rate, buffer_size=self.buffer_size,
                    learning_starts=self.learning_starts, batch_size=self.batch_size, tau=self.tau, gamma=self.gamma,
                    train_freq=self.train_freq, gradient_steps=self.gradient_steps, ent_coef=self.ent_coef,
                    target_update_interval=self.target_update_interval, target_entropy=self.target_entropy,
                    policy_kwargs=self.policy_kwargs, seed=self.seeds[index], device=self.device)
        policy = model.policy
        with th.no_grad():
            body, heads = self.actor.net.member_modules(index)
            policy.actor.latent_pi.load_state_dict(body.state_dict())
            policy.actor.mu.load_state_dict(heads[0].state_dict())
            policy.actor.log_std.load_state_dict(heads[1].state_dict())
            for name in ("critic", "critic_target"):
                ours, theirs = getattr(self, name), getattr(policy, name)
                for j, network in enumerate(theirs.q_networks):
                    body, heads = ours.net.member_modules(index * ours.n_critics + j)
                    network.load_state_dict(nn.Sequential(*body, *heads).state_dict())
            if self.log_ent_coef is not None:
                model.log_ent_coef.copy_(self.log_ent_coef[index : index + 1])
        model.num_timesteps, model._n_updates = self.num_timesteps, self._n_updates
        return model

    def save_seed(self, index: int, path) -> None:
        """Save learner ``index`` as an SB3 ``SAC`` zip (``to_sb3``), loadable with ``SAC.load``.

        :param index: position of the seed in ``seeds``.
        :param path: file to write."""
        self.to_sb3(index).save(path)

    def load_seed(self, index: int, model: SAC | str) -> None:
        """Put the weights, targets and temperature of an SB3 ``SAC`` (or a saved one) with the
        same networks into learner ``index`` (the inverse of ``to_sb3``; optimiser moments are not
        read).

        :param index: position of the seed in ``seeds``.
        :param model: an SB3 SAC or the path of one."""
        model = SAC.load(model, device=self.device) if isinstance(model, str) else model
        actor = model.policy.actor
        self.actor.net.load_member(index, list(actor.latent_pi), [actor.mu, actor.log_std])
        for name in ("critic", "critic_target"):
            ours = getattr(self, name)
            for j, network in enumerate(getattr(model.policy, name).q_networks):
                ours.net.load_member(index * ours.n_critics + j, list(network)[:-1], [network[-1]])
        if self.log_ent_coef is not None and getattr(model, "log_ent_coef", None) is not None:
            with th.no_grad():
                self.log_ent_coef[index] = model.log_ent_coef.detach().reshape(())
