"""DAgger and HG-DAgger: interactive behaviour-cloning baselines of RLIF (docs/rlif.md (d), (g) 8).

Both learn a tanh-Gaussian MLP policy by behaviour cloning (maximise log pi(a|s), no entropy
term; AdamW, weight decay 1e-3, docs/rlif.md (d) "Common") on an aggregated dataset, in rounds:
collect ``round_steps`` env steps, add the labelled samples to the aggregate, then take
``gradient_steps`` BC steps on all of it. They use the same experts and intervention worlds
as RLIF: the expert is ``expert=`` or, by default, the env's ``expert`` attribute (set by
``causalrl.envs.intervention.InterventionWrapper`` and the registered intervention worlds).

``DAgger`` (textbook, the semantics of ``imitation``'s ``SimpleDAggerTrainer``, docs/rlif.md (d)):
the expert labels *every* visited state; at each step the expert's action is executed with
probability beta_r (round r) and the learner's otherwise. ``labels="reference-uniform"`` is
the reference code's variant: the learner rolls out alone (beta = 0), a ``relabel_rate`` share
of the steps (drawn per step; the code draws floor(rate T) indices per trajectory) get the
expert's label and the rest keep the executed action (the learner's, on an env whose wrapper
has ``strategy="none"``, as in the reference's learner-only rollouts).

``HGDAgger`` (textbook HG-DAgger): the learner acts; the env's intervention wrapper gates the
expert (value-based, random, or the reference's L1 ``"distance"`` gate); only the
expert-controlled samples (``info["intervened"]``, with ``info["executed_action"]``) are
added. ``train_on="all"`` is the reference code's variant: every executed transition (expert
and learner actions) is added.

Either learner works on any wrapped env, whatever the wrapper's own takeovers: DAgger's labels
come from the expert directly, so the wrapper only changes which states are visited.
Neither reads the reward.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from causalrl.agents.judge_log import record_judge_step
from causalrl.agents.nets import load_demonstrations, mlp, squashed_gaussian_log_prob
from causalrl.core.checks import check_int

__all__ = ["DAgger", "HGDAgger", "BCPolicy", "BETA_SCHEDULES"]

BETA_SCHEDULES = ("linear", "exponential", "constant")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
#: behaviour-cloning targets are clipped to +-(1 - this) before atanh (docs/rlif.md (b): +-0.999)
ACTION_CLIP = 1e-3


class BCPolicy(BasePolicy):
    """tanh-squashed diagonal Gaussian MLP policy trained by maximum likelihood (docs/rlif.md (d)).

    :param net_arch: hidden widths. Default (256, 256).
    :param activation_fn: hidden activation. Default ReLU.
    :param optimizer_class, optimizer_kwargs: default AdamW with weight decay 1e-3.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule,
                 net_arch: list[int] | tuple[int, ...] = (256, 256), activation_fn: type[nn.Module] = nn.ReLU,
                 optimizer_class: type[th.optim.Optimizer] = th.optim.AdamW,
                 optimizer_kwargs: dict[str, Any] | None = None):
        optimizer_kwargs = {"weight_decay": 1e-3} if optimizer_kwargs is None else optimizer_kwargs
        super().__init__(observation_space, action_space, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, squash_output=True)
        self.net_arch = list(net_arch)
        self.activation_fn = activation_fn
        body, width = mlp(int(np.prod(observation_space.shape)), self.net_arch, activation_fn)
        n_actions = int(np.prod(action_space.shape))
        self.body = nn.Sequential(nn.Flatten(), *body)
        self.mean = nn.Linear(width, n_actions)
        self.log_std = nn.Linear(width, n_actions)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(net_arch=self.net_arch, activation_fn=self.activation_fn, optimizer_class=self.optimizer_class,
                    optimizer_kwargs=self.optimizer_kwargs, lr_schedule=None)
        return data

    def distribution_parameters(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        hidden = self.body(observations.float())
        return self.mean(hidden), self.log_std(hidden).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def log_prob(self, observations: th.Tensor, scaled_actions: th.Tensor) -> th.Tensor:
        """log pi(a|s) of [-1, 1]-scaled actions (clipped to +-0.999), shape (batch,)."""
        actions = scaled_actions.clamp(-1 + ACTION_CLIP, 1 - ACTION_CLIP)
        mean, log_std = self.distribution_parameters(observations)
        return squashed_gaussian_log_prob(th.atanh(actions), mean, log_std).sum(dim=1)

    def forward(self, observations: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return self._predict(observations, deterministic)

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        mean, log_std = self.distribution_parameters(observation)
        if deterministic:
            return th.tanh(mean)
        return th.tanh(mean + log_std.exp() * th.randn_like(mean))


class _InteractiveBC(BaseAlgorithm):
    """Shared machinery of DAgger and HG-DAgger: rounds of collect -> aggregate -> BC."""

    policy_aliases = {"MlpPolicy": BCPolicy}
    policy: BCPolicy

    def __init__(self, policy, env, expert=None, learning_rate=3e-4, batch_size: int = 256,
                 round_steps: int = 1000, gradient_steps: int = 2500, deterministic_rollouts: bool = False,
                 demonstrations: dict | str | None = None, pretrain_steps: int = 100_000,
                 policy_kwargs: dict[str, Any] | None = None, stats_window_size: int = 100,
                 tensorboard_log: str | None = None, verbose: int = 0, seed: int | None = None, device="auto",
                 _init_setup_model: bool = True):
        for name, value in [("batch_size", batch_size), ("round_steps", round_steps)]:
            check_int(value, name)
        for name, value in [("gradient_steps", gradient_steps), ("pretrain_steps", pretrain_steps)]:
            check_int(value, name, minimum=0)
        super().__init__(policy, env, learning_rate, policy_kwargs=policy_kwargs, stats_window_size=stats_window_size,
                         tensorboard_log=tensorboard_log, verbose=verbose, device=device, support_multi_env=False,
                         seed=seed, supported_action_spaces=(spaces.Box,))
        self.batch_size = int(batch_size)
        self.round_steps = int(round_steps)
        self.gradient_steps = int(gradient_steps)
        self.deterministic_rollouts = bool(deterministic_rollouts)
        self.demonstrations = demonstrations
        self.pretrain_steps = int(pretrain_steps)
        self.expert = expert
        self.rounds = 0
        self._observations: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        if _init_setup_model:
            self._setup_model()

    # --- model and data ------------------------------------------------------------------------
    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule,
                                        **self.policy_kwargs).to(self.device)
        self._observations, self._labels = [], []
        if self.expert is None and self.env is not None:
            try:
                self.expert = self.env.get_attr("expert", indices=[0])[0]
            except AttributeError:
                self.expert = None

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["expert", "demonstrations", "_observations", "_labels"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer"], []

    def _require_expert(self):
        if self.expert is None:
            raise ValueError(f"expert: {type(self).__name__} needs an Expert (pass expert=..., or use an env "
                             "wrapped by causalrl.envs.intervention.InterventionWrapper)")
        return self.expert

    def _add_samples(self, observations, env_actions) -> None:
        """Aggregate (s, label); labels in env action units, stored [-1, 1]-scaled."""
        scaled = self.policy.scale_action(np.asarray(env_actions, dtype=np.float32).reshape(-1, *self.action_space.shape))
        self._observations.append(np.asarray(observations, dtype=np.float32).reshape(-1, *self.observation_space.shape))
        self._labels.append(np.clip(scaled, -1.0, 1.0).astype(np.float32))

    @property
    def dataset_size(self) -> int:
        return int(sum(len(rows) for rows in self._labels))

    def _train_bc(self, gradient_steps: int) -> None:
        """Maximise log pi(a|s) on minibatches of the aggregate (docs/rlif.md (d))."""
        if not self._labels or gradient_steps == 0:
            return
        self._observations = [np.concatenate(self._observations)]
        self._labels = [np.concatenate(self._labels)]
        observations = th.as_tensor(self._observations[0], device=self.device)
        labels = th.as_tensor(self._labels[0], device=self.device)
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            rows = th.randint(0, len(labels), (min(self.batch_size, len(labels)),), device=self.device)
            loss = -self.policy.log_prob(observations[rows], labels[rows]).mean()
            self.policy.optimizer.zero_grad()
            loss.backward()
            self.policy.optimizer.step()
            losses.append(loss.item())
        self.policy.set_training_mode(False)
        self.logger.record("train/bc_loss", float(np.mean(losses)))
        self.logger.record("train/dataset_size", len(labels))

    # --- the loop --------------------------------------------------------------------------------
    def _round_action(self, observation: np.ndarray, learner_action: np.ndarray) -> tuple[np.ndarray, dict]:
        """The action to execute at this step and what to remember for ``_label``."""
        raise NotImplementedError

    def _label(self, observation, memo: dict, info: dict) -> np.ndarray | None:
        """The BC label of this step (env action units), or None to skip it."""
        raise NotImplementedError

    def learn(self, total_timesteps: int, callback=None, log_interval: int | None = None, tb_log_name: str = "run",
              reset_num_timesteps: bool = True, progress_bar: bool = False):
        self._require_expert()
        total_timesteps, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                                      progress_bar)
        callback.on_training_start(locals(), globals())
        if self.demonstrations is not None and self.rounds == 0 and reset_num_timesteps:
            demonstrations = load_demonstrations(self.demonstrations)
            self._add_samples(demonstrations["observations"], demonstrations["actions"])
            self._train_bc(self.pretrain_steps)
        while self.num_timesteps < total_timesteps:
            callback.on_rollout_start()
            steps = min(self.round_steps, total_timesteps - self.num_timesteps)
            for _ in range(steps):
                observation = self._last_obs
                learner_action, _ = self.predict(observation, deterministic=self.deterministic_rollouts)
                action, memo = self._round_action(observation[0], learner_action[0])
                new_obs, rewards, dones, infos = self.env.step(action[None])
                record_judge_step(self.logger, infos[0], self.env)
                label = self._label(observation[0], memo, infos[0])
                if label is not None:
                    self._add_samples(observation[0], label)
                self.num_timesteps += 1
                callback.update_locals(locals())
                if not callback.on_step():
                    callback.on_training_end()
                    return self
                self._update_info_buffer(infos, dones)
                self._last_obs = new_obs
            callback.on_rollout_end()
            self._train_bc(self.gradient_steps)
            self.rounds += 1
            self.logger.record("train/rounds", self.rounds)
            if log_interval is not None and self.rounds % log_interval == 0:
                self.logger.dump(self.num_timesteps)
        callback.on_training_end()
        return self


class DAgger(_InteractiveBC):
    """DAgger by behaviour cloning with expert labels on every visited state (module docstring).

    :param expert: an ``causalrl.core.protocols.Expert``; default None = the env's ``expert``.
    :param beta_schedule: probability of executing the expert's action in round r:
        ``"linear"`` (default) beta_r = clip((R - r) / R, 0, 1) with R = ``beta_rampdown_rounds``
        (imitation's ``LinearBetaSchedule``); ``"exponential"`` beta_r = ``beta_decay`` ** r;
        ``"constant"`` beta_r = ``beta_decay``.
    :param beta_rampdown_rounds: R. Default 15.
    :param beta_decay: p of the exponential / constant schedules. Default 0.5.
    :param labels: ``"expert"`` (default: textbook) or ``"reference-uniform"`` (the reference
        code's ``DaggerUniformSampler``: learner-only rollouts, a ``relabel_rate`` share of the
        steps labelled by the expert, the rest keep the learner's action).
    :param relabel_rate: share of relabelled steps of ``"reference-uniform"``. Default 0.5.
    :param learning_rate: AdamW learning rate. Default 3e-4.
    :param batch_size: BC minibatch. Default 256.
    :param round_steps: env steps per round (the reference: 5 trajectories of 200). Default 1000.
    :param gradient_steps: BC steps after each round (reference 25 x 100). Default 2500.
    :param deterministic_rollouts: the learner acts with its mean action; False (default)
        samples, as the reference.
    :param demonstrations: optional initial expert data (dict or ``.npz`` with ``observations``
        and ``actions``), added to the aggregate before the first round. Default None.
    :param pretrain_steps: BC steps on the demonstrations before the first round (reference
        500 x 200). Default 100_000; unused without demonstrations.
    :param policy_kwargs: ``BCPolicy`` arguments (``net_arch`` default (256, 256)).
    :param seed, verbose, device, tensorboard_log, stats_window_size: as SB3.
    """

    def __init__(self, policy, env, expert=None, beta_schedule: str = "linear", beta_rampdown_rounds: int = 15,
                 beta_decay: float = 0.5, labels: str = "expert", relabel_rate: float = 0.5, **kwargs):
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule: unknown {beta_schedule!r}; choose one of {', '.join(BETA_SCHEDULES)}")
        if labels not in ("expert", "reference-uniform"):
            raise ValueError(f"labels: choose 'expert' or 'reference-uniform', got {labels!r}")
        if not 0 <= beta_decay <= 1 or not 0 <= relabel_rate <= 1:
            raise ValueError("beta_decay and relabel_rate: must lie in [0, 1]")
        if not beta_rampdown_rounds >= 1:
            raise ValueError(f"beta_rampdown_rounds: must be >= 1, got {beta_rampdown_rounds!r}")
        self.beta_schedule = beta_schedule
        self.beta_rampdown_rounds = int(beta_rampdown_rounds)
        self.beta_decay = float(beta_decay)
        self.labels = labels
        self.relabel_rate = float(relabel_rate)
        self._rng = np.random.default_rng(kwargs.get("seed"))
        super().__init__(policy, env, expert=expert, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["_rng"]

    def _setup_model(self) -> None:
        super()._setup_model()
        self._rng = np.random.default_rng(self.seed)

    @property
    def beta(self) -> float:
        """beta of the current round (0 for the reference variant: learner-only rollouts)."""
        if self.labels == "reference-uniform":
            return 0.0
        if self.beta_schedule == "linear":
            return float(np.clip((self.beta_rampdown_rounds - self.rounds) / self.beta_rampdown_rounds, 0, 1))
        if self.beta_schedule == "exponential":
            return self.beta_decay ** self.rounds
        return self.beta_decay

    def _round_action(self, observation, learner_action):
        expert_action = np.asarray(self.expert.act(observation), dtype=np.float32)
        execute_expert = self._rng.random() < self.beta
        return (expert_action if execute_expert else learner_action), {"expert": expert_action,
                                                                         "learner": learner_action}

    def _label(self, observation, memo, info):
        if self.labels == "expert":
            return memo["expert"]
        # reference: relabel a share of the steps with the expert, keep the executed action elsewhere
        executed = info.get("executed_action", memo["learner"])
        return memo["expert"] if self._rng.random() < self.relabel_rate else executed


class HGDAgger(_InteractiveBC):
    """HG-DAgger: the intervention wrapper gates the expert; BC on its takeovers (module docstring).

    Takes DAgger's arguments except the beta and label ones, plus:

    :param train_on: ``"expert"`` (default: only expert-controlled samples, textbook) or
        ``"all"`` (every executed transition, the reference code's ``BinarySampler`` runs; with
        the env's ``strategy="distance"`` gate this is the reference "HG-DAgger / original").

    The expert is not called by the learner: the env's intervention wrapper gates and acts.
    ``expert=`` is accepted for symmetry with DAgger (and kept as ``self.expert``).
    """

    def __init__(self, policy, env, expert=None, train_on: str = "expert", **kwargs):
        if train_on not in ("expert", "all"):
            raise ValueError(f"train_on: choose 'expert' or 'all', got {train_on!r}")
        self.train_on = train_on
        super().__init__(policy, env, expert=expert, **kwargs)

    def _round_action(self, observation, learner_action):
        return learner_action, {"learner": learner_action}

    def _label(self, observation, memo, info):
        if "intervened" not in info:
            raise ValueError("env: HG-DAgger needs an intervention wrapper (info['intervened']); see envs/intervention.py")
        executed = info.get("executed_action", memo["learner"])
        if self.train_on == "all" or info["intervened"]:
            return executed
        return None

    def _require_expert(self):  # the wrapper gates and acts; the expert itself is not called here
        try:
            strategy = self.env.get_attr("strategy", indices=[0])[0] if self.env is not None else None
        except AttributeError:
            strategy = None
        if strategy == "none":
            raise ValueError("env: HG-DAgger learns from the expert's takeovers, but the intervention strategy is "
                             "'none' (the expert never takes over); use strategy='value', 'distance' or 'random', "
                             "or DAgger")
        return self.expert
