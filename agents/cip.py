"""CIP: causal information prioritisation on SAC, and ACE (causally weighted entropy only).

Spec: docs/cip.md (Cao et al., ICLR 2025, arXiv:2502.10097; ACE: Ji et al., ICML
2024). This is the algorithm the paper intends, not the public release, which is inert in three
places (docs/cip.md (f) 1, 2, 5); here each part acts, and each has a constructor switch:

- ``causal_weights``: w_a = d_A softmax(b_a) from the discovered action -> reward coefficients,
  used in the critic target, the actor loss and the temperature loss (b.4, as ACE).
- ``augmentation``: counterfactual transitions that swap reward-irrelevant state dimensions
  (the same ones in s and s') between two real transitions, mixed into every minibatch at
  ``augmentation_ratio`` (b.2 with the resolutions of (f) 2-3).
- ``empowerment``: an inverse-dynamics model q(a | s, s') trained by maximum likelihood, and
  after a warm-up the causality-aware empowerment E_c = H_w[pi(.|s)] - H_w[q(.|s, s')] in the
  actor objective, with the conditional entropy estimated by the cross-entropy of the policy's
  own (reparameterised) actions under q (b.3, (f) 5).
- ``dormancy_reset``: gradient-dormancy-guided shrink-and-perturb (b.5).

Discovery (b.1) runs every ``discovery_interval`` env steps on the last ``discovery_samples``
real transitions of the replay buffer. The default estimator is an adaptive-lasso regression of
the standardised reward on standardised (s, a) (``causalrl.core.stats.adaptive_lasso``): the reward
is only an effect, so its parents are the variables with non-zero coefficients. Its basis holds
each variable and its square (``discovery_basis="quadratic"``): the rewards of control tasks
are usually costs quadratic in zero-mean variables, to which a linear-only fit is blind.
``discovery="direct-lingam"`` runs causal-learn's DirectLiNGAM on [s | a | r] as the release
does (optional extra ``causalrl[discovery]``).

Choices where the spec leaves room (each documented at its parameter): w_a scores are
|coefficients| relative to the strongest action (``weight_source="abs"``; the release's signed,
unit-dependent softmax is ``"signed"``, (f) 8); counterfactuals are mixed into each minibatch
rather than stored, so discovery always sees real data; the empowerment's s' is the replayed
next state (no forward model); networks are SB3's defaults (not the release's 3 x 256 ELU), so
CIP, ACE and SAC differ only in the causal parts and ``policy_delay`` (2, b.4); the alpha
initial value is SB3's (no ``reproduce_reference_quirks`` flag yet, (f) 9).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.utils import polyak_update
from torch import nn
from torch.nn import functional as F

from causalrl.agents.nets import gaussian_log_prob, mlp, squashed_gaussian_log_prob
from causalrl.core.checks import check_int
from causalrl.core.stats import adaptive_lasso

__all__ = ["CIP", "ACE", "InverseDynamics", "DISCOVERY_METHODS"]

DISCOVERY_METHODS = ("adaptive-lasso", "direct-lingam")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class InverseDynamics(nn.Module):
    """q_psi(a | s, s'): a diagonal Gaussian over the (scaled, [-1, 1]) action, from an MLP on
    [s, s'] (docs/cip.md b.3). Unsquashed, so the likelihood of a replayed action needs no atanh."""

    def __init__(self, n_states: int, n_actions: int, net_arch: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.body, width = mlp(2 * n_states, net_arch)
        self.mean = nn.Linear(width, n_actions)
        self.log_std = nn.Linear(width, n_actions)

    def log_prob(self, observations: th.Tensor, next_observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Per-dimension log q(a_i | s, s'), shape (batch, n_actions)."""
        hidden = self.body(th.cat([observations, next_observations], dim=1).float())  # float64 Box obs too
        mean, log_std = self.mean(hidden), self.log_std(hidden).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return gaussian_log_prob(actions, mean, log_std)


class CIP(SAC):
    """Causal information prioritisation on SAC (docs/cip.md; module docstring for the parts).

    Takes every argument of SB3's ``SAC`` (``learning_rate=3e-4``, ``buffer_size=1e6``,
    ``learning_starts=100``, ``batch_size=256``, ``tau=0.005``, ``gamma=0.99``,
    ``ent_coef="auto"``, ``target_entropy="auto"`` = -d_A, ``policy_kwargs`` ...; see SB3's
    docs) except gSDE and Dict observations, plus:

    :param causal_weights: use w_a in the critic target, actor and temperature losses (b.4);
        False keeps w_a = 1 (plain SAC entropy). Default True.
    :param discovery: ``"adaptive-lasso"`` (default), ``"direct-lingam"`` (causal-learn extra)
        or None (no discovery: w_a = 1 and no augmentation).
    :param discovery_interval: K, env steps between discovery rounds (b.1). Default 10_000.
    :param discovery_samples: N_c, most recent real transitions per round; a round is skipped
        while the buffer holds fewer. Default 10_000.
    :param discovery_basis: ``"quadratic"`` (each variable and its square, default) or
        ``"linear"`` (the adaptive-lasso regressors).
    :param weight_source: ``"abs"`` (default): w_a = d_A softmax(|b_a| / max_a' |b_a'| / tau),
        with |b_a| the norm of action a's coefficients on the standardised reward, so strong
        costs and strong rewards both rank high, whatever the reward's units; ``"signed"``: softmax of the signed linear coefficient, as the release
        (docs/cip.md (f) 8: a strong negative parent then gets a low weight).
    :param weight_temperature: tau in w_a = d_A softmax(score_a / tau). Default 1.0 (with
        ``"abs"`` scores in [0, 1]: a parent weighs up to e = 2.7 times a non-parent).
    :param augmentation: counterfactual data augmentation (b.2). Default True.
    :param augmentation_ratio: share of every minibatch replaced by counterfactual rows, once a
        discovery round has found reward-irrelevant state dimensions. Default 0.25.
    :param swap_probability: each reward-irrelevant state dimension is swapped with this
        probability (at least one per row). Default 0.5.
    :param empowerment: train the inverse model and add the empowerment term (b.3). Default True.
    :param empowerment_coef: lambda_E. Default 0.01.
    :param empowerment_warmup: gradient updates before the term enters the actor loss (the
        inverse model trains from the start). Default 2_000.
    :param inverse_model_arch: hidden widths of q(a | s, s'). Default (256, 256).
    :param policy_delay: actor, temperature and inverse-model updates happen on every
        ``policy_delay``-th critic update (b.4: 2); 1 updates them every step as SB3's SAC.
        Default 2.
    :param dormancy_reset: gradient-dormancy-guided shrink-and-perturb (b.5). Default True.
    :param reset_interval: gradient updates between resets. Default 100_000.
    :param reset_after: no reset before this many updates. Default 5_000.
    :param dormancy_threshold: a neuron is dormant when its weight-gradient row norm is below
        this share of its layer's mean. Default 0.05.
    :param reset_factor_range: f = clip(1 - dormant ratio, low, high); theta <- f theta +
        (1 - f) theta_fresh. Default (0.2, 0.9).
    """

    def __init__(
        self,
        policy,
        env,
        learning_rate=3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq=1,
        gradient_steps: int = 1,
        action_noise=None,
        replay_buffer_class=None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        ent_coef="auto",
        target_update_interval: int = 1,
        target_entropy="auto",
        causal_weights: bool = True,
        discovery: str | None = "adaptive-lasso",
        discovery_interval: int = 10_000,
        discovery_samples: int = 10_000,
        discovery_basis: str = "quadratic",
        weight_source: str = "abs",
        weight_temperature: float = 1.0,
        augmentation: bool = True,
        augmentation_ratio: float = 0.25,
        swap_probability: float = 0.5,
        empowerment: bool = True,
        empowerment_coef: float = 0.01,
        empowerment_warmup: int = 2_000,
        inverse_model_arch: tuple[int, ...] = (256, 256),
        policy_delay: int = 2,
        dormancy_reset: bool = True,
        reset_interval: int = 100_000,
        reset_after: int = 5_000,
        dormancy_threshold: float = 0.05,
        reset_factor_range: tuple[float, float] = (0.2, 0.9),
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device="auto",
        _init_setup_model: bool = True,
    ):
        if discovery is not None and discovery not in DISCOVERY_METHODS:
            raise ValueError(f"discovery: unknown {discovery!r}; choose one of {', '.join(DISCOVERY_METHODS)} or None")
        if discovery == "direct-lingam":
            try:
                import causallearn  # noqa: F401
            except ImportError:
                raise ImportError("discovery='direct-lingam' needs causal-learn: pip install -e '.[discovery]'") from None
        if discovery_basis not in ("quadratic", "linear"):
            raise ValueError(f"discovery_basis: unknown {discovery_basis!r}; choose 'quadratic' or 'linear'")
        if not weight_temperature > 0:
            raise ValueError(f"weight_temperature: must be > 0, got {weight_temperature!r}")
        if weight_source not in ("abs", "signed"):
            raise ValueError(f"weight_source: unknown {weight_source!r}; choose 'abs' or 'signed'")
        for name, value in [("discovery_interval", discovery_interval), ("discovery_samples", discovery_samples),
                            ("policy_delay", policy_delay), ("reset_interval", reset_interval)]:
            check_int(value, name)
        if discovery_samples < 10:
            raise ValueError(f"discovery_samples: needs at least 10 transitions for a regression, got {discovery_samples}")
        for name, value in [("augmentation_ratio", augmentation_ratio), ("swap_probability", swap_probability)]:
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: must lie in [0, 1], got {value!r}")
        low, high = reset_factor_range
        if not 0 <= low <= high <= 1:
            raise ValueError(f"reset_factor_range: need 0 <= low <= high <= 1, got {reset_factor_range!r}")
        self.causal_weights = causal_weights
        self.discovery = discovery
        self.discovery_interval = int(discovery_interval)
        self.discovery_samples = int(discovery_samples)
        self.discovery_basis = discovery_basis
        self.weight_source = weight_source
        self.weight_temperature = float(weight_temperature)
        self.augmentation = augmentation
        self.augmentation_ratio = float(augmentation_ratio)
        self.swap_probability = float(swap_probability)
        self.empowerment = empowerment
        self.empowerment_coef = float(empowerment_coef)
        self.empowerment_warmup = int(empowerment_warmup)
        self.inverse_model_arch = tuple(inverse_model_arch)
        self.policy_delay = int(policy_delay)
        self.dormancy_reset = dormancy_reset
        self.reset_interval = int(reset_interval)
        self.reset_after = int(reset_after)
        self.dormancy_threshold = float(dormancy_threshold)
        self.reset_factor_range = (float(low), float(high))
        # discovery results (numpy, saved with the model's data)
        self.reward_state_mask: np.ndarray | None = None
        self.reward_action_mask: np.ndarray | None = None
        self.reward_coefficients: dict[str, np.ndarray] = {}
        self.discovery_rounds = 0
        self.next_discovery_step = int(discovery_interval)
        super().__init__(
            policy, env, learning_rate=learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
            batch_size=batch_size, tau=tau, gamma=gamma, train_freq=train_freq, gradient_steps=gradient_steps,
            action_noise=action_noise, replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs, optimize_memory_usage=optimize_memory_usage,
            ent_coef=ent_coef, target_update_interval=target_update_interval, target_entropy=target_entropy,
            use_sde=False, stats_window_size=stats_window_size, tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs, verbose=verbose, seed=seed, device=device, _init_setup_model=False,
        )
        space = self.observation_space  # None while SB3's load() rebuilds the model without an env
        if space is not None and not (isinstance(space, spaces.Box) and len(space.shape) == 1):
            raise ValueError(f"env: {type(self).__name__} needs a 1-D Box observation space, got {self.observation_space}")
        if _init_setup_model:
            self._setup_model()

    # --- model -------------------------------------------------------------------------------
    def _setup_model(self) -> None:
        super()._setup_model()
        n_states = int(self.observation_space.shape[0])
        n_actions = int(np.prod(self.action_space.shape))
        self.inverse_model = InverseDynamics(n_states, n_actions, self.inverse_model_arch).to(self.device)
        self.inverse_optimizer = th.optim.Adam(self.inverse_model.parameters(), lr=self.lr_schedule(1))
        #: w_a (b.1 step 4); ones until the first discovery round
        self.action_weights = th.ones(n_actions, device=self.device)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["inverse_model", "inverse_optimizer", "action_weights"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return state_dicts + ["inverse_model", "inverse_optimizer"], variables + ["action_weights"]

    @property
    def learned_structure(self) -> dict[str, np.ndarray]:
        """Discovered reward parents, shaped as the env's ``causal_structure`` ({} before the
        first discovery round)."""
        if self.reward_state_mask is None:
            return {}
        return {"state_to_reward": self.reward_state_mask[:, None].copy(),
                "action_to_reward": self.reward_action_mask[:, None].copy()}

    # --- training (docs/cip.md b.6) ---------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer, self.inverse_optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        # b.1: every K env steps, discover the reward's parents on the last N_c real transitions
        if self.discovery is not None and self.num_timesteps >= self.next_discovery_step:
            while self.next_discovery_step <= self.num_timesteps:
                self.next_discovery_step += self.discovery_interval
            self._discover()
        weights = self.action_weights if self.causal_weights else th.ones_like(self.action_weights)

        critic_losses, actor_losses, inverse_losses, empowerments, ent_coefs = [], [], [], [], []
        for _ in range(gradient_steps):
            update = self._n_updates + 1
            # b.2: minibatch from D, with counterfactual rows swapping reward-irrelevant features
            batch = self._augment(self.replay_buffer.sample(batch_size, env=self._vec_normalize_env))
            ent_coef = th.exp(self.log_ent_coef.detach()) if self.log_ent_coef is not None else self.ent_coef_tensor
            ent_coefs.append(ent_coef.item())

            # b.4: y = r + gamma m (min_j Qbar_j(s', a') - alpha log pi_w(a'|s')),  a' ~ pi(.|s')
            target_q = self._soft_target(batch, ent_coef, weights)
            # b.4: critic loss sum_j MSE(Q_j(s, a), y), every update
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in self.critic(batch.observations, batch.actions))
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            critic_losses.append(critic_loss.item())

            if update % self.policy_delay == 0:
                # b.3 (i): inverse model q(a | s, s') by maximum likelihood on replay
                if self.empowerment:
                    inverse_loss = -self.inverse_model.log_prob(batch.observations, batch.next_observations, batch.actions).sum(1).mean()
                    self.inverse_optimizer.zero_grad()
                    inverse_loss.backward()
                    self.inverse_optimizer.step()
                    inverse_losses.append(inverse_loss.item())
                # b.4 + b.3 (ii): actor loss alpha log pi_w - min Q - lambda_E E_c (after warm-up)
                actions_pi, log_probs = self._sample_with_log_probs(batch.observations)
                weighted_log_prob = (log_probs @ weights).reshape(-1, 1)
                min_q = th.min(th.cat(self.critic(batch.observations, actions_pi), dim=1), dim=1, keepdim=True)[0]
                actor_loss = (ent_coef * weighted_log_prob - min_q).mean()
                if self.empowerment and update > self.empowerment_warmup:
                    empowerment = self._empowerment(batch.observations, batch.next_observations, actions_pi, log_probs, weights)
                    actor_loss = actor_loss - self.empowerment_coef * empowerment
                    empowerments.append(empowerment.item())
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()
                actor_losses.append(actor_loss.item())
                # b.4: temperature loss -log alpha (log pi_w + target entropy)
                if self.ent_coef_optimizer is not None:
                    ent_coef_loss = -(self.log_ent_coef * (weighted_log_prob.detach() + self.target_entropy)).mean()
                    self.ent_coef_optimizer.zero_grad()
                    ent_coef_loss.backward()
                    self.ent_coef_optimizer.step()
                # b.5: dormancy-guided shrink and perturb (reads the actor's fresh gradients)
                if self.dormancy_reset and update > self.reset_after and update % self.reset_interval < self.policy_delay:
                    self._dormancy_reset()

            # b.4: Polyak-averaged target critic
            if update % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            self._n_updates += 1

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for index, weight in enumerate(weights.tolist()):
            self.logger.record(f"causal/weights/a{index}", weight)
        self.logger.record("train/ent_coef", float(np.mean(ent_coefs)))
        self.logger.record("train/critic_loss", float(np.mean(critic_losses)))
        if actor_losses:
            self.logger.record("train/actor_loss", float(np.mean(actor_losses)))
        if inverse_losses:
            self.logger.record("train/inverse_model_loss", float(np.mean(inverse_losses)))
        if empowerments:
            self.logger.record("train/empowerment", float(np.mean(empowerments)))

    # --- the parts -----------------------------------------------------------------------------
    @th.no_grad()
    def _soft_target(self, batch, ent_coef: th.Tensor, weights: th.Tensor) -> th.Tensor:
        """b.4: y = r + gamma m (min_j Qbar_j(s', a') - alpha sum_i w_i l_i(a'|s')), a' ~ pi(.|s')."""
        discounts = batch.discounts if batch.discounts is not None else self.gamma
        next_actions, next_log_probs = self._sample_with_log_probs(batch.next_observations)
        next_q = th.min(th.cat(self.critic_target(batch.next_observations, next_actions), dim=1), dim=1, keepdim=True)[0]
        next_q = next_q - ent_coef * (next_log_probs @ weights).reshape(-1, 1)
        return batch.rewards + (1 - batch.dones) * discounts * next_q

    def _sample_with_log_probs(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """a ~ pi(.|s) reparameterised, and per-dimension log-probs l_i(a|s) (b.0), as SB3's
        squashed Gaussian computes them before summing."""
        mean, log_std, _ = self.actor.get_action_dist_params(observations)
        pre_tanh = mean + log_std.exp() * th.randn_like(mean)
        return th.tanh(pre_tanh), squashed_gaussian_log_prob(pre_tanh, mean, log_std)

    def _empowerment(self, observations, next_observations, actions_pi, log_probs, weights) -> th.Tensor:
        """E_c = H_w[pi(.|s)] - H_w[q(.|s, s')], estimated as
        mean[-sum_i w_i l_i(a~|s) + sum_i w_i log q_i(a~|s, s')] with a~ ~ pi (b.3 (ii)). The
        gradient reaches the actor through a~ and l; q's parameters are frozen here (its own
        maximum-likelihood step trains it)."""
        self.inverse_model.requires_grad_(False)
        inverse_log_probs = self.inverse_model.log_prob(observations, next_observations, actions_pi)
        self.inverse_model.requires_grad_(True)
        return (-(log_probs @ weights) + inverse_log_probs @ weights).mean()

    def _augment(self, batch):
        """Replace the first ``augmentation_ratio`` share of the rows by counterfactuals: row i
        takes a random non-empty subset of the reward-irrelevant state dimensions (the same
        ones in s and s') from a different row j of the batch; its action, reward and done stay
        its own (b.2). A batch is returned unchanged before the first discovery round or when
        every state dimension is a reward parent."""
        self.last_counterfactual_rows = 0
        if not self.augmentation or self.reward_state_mask is None or self.augmentation_ratio == 0:
            return batch
        irrelevant = th.as_tensor(~self.reward_state_mask, device=self.device)
        n_rows = int(round(self.augmentation_ratio * batch.observations.shape[0]))
        if not bool(irrelevant.any()) or n_rows == 0 or batch.observations.shape[0] < 2:
            return batch
        size = batch.observations.shape[0]
        partners = (th.arange(n_rows, device=self.device) + th.randint(1, size, (n_rows,), device=self.device)) % size
        swap = (th.rand(n_rows, irrelevant.numel(), device=self.device) < self.swap_probability) & irrelevant
        # at least one swapped dimension per row: one irrelevant dimension drawn at random
        forced = th.multinomial(irrelevant.float().expand(n_rows, -1), 1).squeeze(1)
        swap[th.arange(n_rows, device=self.device), forced] = True
        observations, next_observations = batch.observations.clone(), batch.next_observations.clone()
        observations[:n_rows] = th.where(swap, batch.observations[partners], batch.observations[:n_rows])
        next_observations[:n_rows] = th.where(swap, batch.next_observations[partners], batch.next_observations[:n_rows])
        self.last_counterfactual_rows = n_rows
        return batch._replace(observations=observations, next_observations=next_observations)

    def _recent_transitions(self, count: int):
        """(s, a, r) of the ``count`` most recent real transitions, or None if fewer exist."""
        buffer = self.replay_buffer
        n_envs = buffer.n_envs
        stored = (buffer.buffer_size if buffer.full else buffer.pos) * n_envs
        if stored < count:
            return None
        rows = (buffer.pos - 1 - np.arange(math.ceil(count / n_envs))) % buffer.buffer_size
        observations = buffer.observations[rows].reshape(-1, self.observation_space.shape[0])[:count]
        actions = buffer.actions[rows].reshape(-1, buffer.actions.shape[-1])[:count]
        rewards = buffer.rewards[rows].reshape(-1)[:count]
        return observations.astype(float), actions.astype(float), rewards.astype(float)

    def _discover(self) -> None:
        """b.1: the reward row of the causal model on the last N_c real transitions; sets the
        masks (non-zero coefficients) and w_a = d_A softmax(score_a)."""
        data = self._recent_transitions(self.discovery_samples)
        if data is None:
            return
        started = time.perf_counter()
        observations, actions, rewards = data
        n_states, n_actions = observations.shape[1], actions.shape[1]
        variables = np.concatenate([observations, actions], axis=1)
        if self.discovery == "direct-lingam":
            from causallearn.search.FCMBased.lingam import DirectLiNGAM

            model = DirectLiNGAM(measure="pwling")
            model.fit(np.concatenate([variables, rewards[:, None]], axis=1))
            linear = np.asarray(model.adjacency_matrix_)[-1, :-1]
            magnitude = np.abs(linear)
        else:
            scale = variables.std(0)
            standardised = (variables - variables.mean(0)) / np.where(scale > 0, scale, 1.0)
            target = (rewards - rewards.mean()) / (rewards.std() if rewards.std() > 0 else 1.0)
            basis = [standardised] + ([standardised ** 2] if self.discovery_basis == "quadratic" else [])
            coefficients = adaptive_lasso(np.concatenate(basis, axis=1), target).reshape(len(basis), -1)
            linear = coefficients[0]
            # the coefficient of a standardised square is per unit of (x/sd)^2; rescaled to the
            # standard deviation of that feature so both columns are "per standard deviation"
            if len(basis) == 2:
                coefficients[1] *= basis[1].std(0)
            magnitude = np.sqrt((coefficients ** 2).sum(0))
        parents = magnitude != 0
        self.reward_state_mask, self.reward_action_mask = parents[:n_states], parents[n_states:]
        self.reward_coefficients = {"linear": linear, "magnitude": magnitude}
        if self.weight_source == "abs":  # scale-free: relative to the strongest action parent
            score = magnitude[n_states:] / max(float(magnitude[n_states:].max()), 1e-12)
        else:
            score = linear[n_states:]
        weights = np.exp((score - score.max()) / self.weight_temperature)
        self.action_weights = th.as_tensor(n_actions * weights / weights.sum(), dtype=th.float32, device=self.device)
        self.discovery_rounds += 1
        self.logger.record("causal/discovery_rounds", self.discovery_rounds)
        self.logger.record("causal/discovery_seconds", time.perf_counter() - started)
        self.logger.record("causal/reward_state_parents", int(self.reward_state_mask.sum()))
        self.logger.record("causal/reward_action_parents", int(self.reward_action_mask.sum()))

    @th.no_grad()
    def _dormancy_reset(self) -> float:
        """b.5: f = clip(1 - beta, low, high) from the actor's gradient-dormant ratio beta, then
        theta <- f theta + (1 - f) theta_fresh for every Linear layer of the actor, critic, target
        critic and inverse model (orthogonal fresh init, zero bias); optimiser states cleared.
        Returns f."""
        dormant = total = 0
        for layer in self.actor.modules():
            if isinstance(layer, nn.Linear) and layer.weight.grad is not None:
                row_norms = layer.weight.grad.norm(dim=1)
                dormant += int((row_norms < self.dormancy_threshold * row_norms.mean()).sum())
                total += row_norms.numel()
        factor = float(np.clip(1 - dormant / max(total, 1), *self.reset_factor_range))
        for module in (self.actor, self.critic, self.critic_target, self.inverse_model):
            for layer in module.modules():
                if isinstance(layer, nn.Linear):
                    fresh = nn.init.orthogonal_(th.empty_like(layer.weight))
                    layer.weight.mul_(factor).add_((1 - factor) * fresh)
                    if layer.bias is not None:
                        layer.bias.mul_(factor)
        for optimizer in (self.actor.optimizer, self.critic.optimizer, self.inverse_optimizer):
            optimizer.state.clear()
        self.logger.record("causal/reset_factor", factor)
        return factor


class ACE(CIP):
    """ACE: SAC with causality-aware (weighted) entropy and dormancy-guided reset only (docs/cip.md (c)).

    CIP with ``augmentation=False`` and ``empowerment=False``; every other argument and default
    is CIP's (network sizes are SB3's, not ACE's 1024 / batch 512, so the comparison isolates the
    causal parts).
    """

    def __init__(self, policy, env, augmentation: bool = False, empowerment: bool = False, **kwargs):
        super().__init__(policy, env, augmentation=augmentation, empowerment=empowerment, **kwargs)
