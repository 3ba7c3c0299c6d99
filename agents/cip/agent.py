"""CIP on SAC. ``CIP.train`` reads like the pseudocode of docs/cip.md (b.6); the parts live beside
this file (discovery, augmentation, empowerment, reset), the ablations and baselines in
``variants.py``.

Spec: docs/cip.md (Cao et al., ICLR 2025, arXiv:2502.10097; ACE: Ji et al., ICML 2024,
arXiv:2402.14528).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.logger import SeqWriter
from stable_baselines3.common.utils import polyak_update
from torch import nn
from torch.nn import functional as F

from causalrl.agents.cip import records
from causalrl.agents.cip.arguments import OWN_ARGUMENTS, checked_arguments
from causalrl.agents.cip.augmentation import counterfactual_batch
from causalrl.agents.cip.discovery import (
    DiscoverySettings,
    discover,
    recent_transitions,
    reward_parents,
)
from causalrl.agents.cip.empowerment import (
    ForwardModel,
    InverseDynamics,
    combine_actor_gradients,
    empowerment_estimate,
    model_losses,
)
from causalrl.agents.cip.reset import dormancy_reset
from causalrl.agents.ensemble import (
    EnsembleCritic,
    EnsembleSACPolicy,
    frozen_parameters,
    fused_adam,
)
from causalrl.agents.nets import squashed_gaussian_sample, temperature_step

__all__ = ["CIP", "REFERENCE_INITIAL_ALPHA"]

#: alpha the release uses until its first temperature update (docs/cip.md (f) 9)
REFERENCE_INITIAL_ALPHA = 0.2


def _q_table(critic, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """Q_j(s, a) of every critic, shape (B, n_critics): the ensemble's table as it comes out of
    its one pass, or SB3's tuple of critics side by side."""
    if isinstance(critic, EnsembleCritic):
        return critic.q_values(observations, actions)
    return th.cat(critic(observations, actions), dim=1)


def _min_q(critic, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """min_j Q_j(s, a), shape (B, 1)."""
    return _q_table(critic, observations, actions).min(dim=1, keepdim=True)[0]


class CIP(SAC):
    """Causal information prioritisation on SAC (docs/cip.md; the package docstring lists the parts).

    Takes every argument of SB3's ``SAC`` (``learning_rate=3e-4``, ``buffer_size=1e6``,
    ``learning_starts=100``, ``batch_size=256``, ``tau=0.005``, ``gamma=0.99``,
    ``ent_coef="auto"``, ``target_entropy="auto"`` = -d_A, ``policy_kwargs`` ...; see SB3's
    docs) except gSDE and Dict observations, plus the following. Units: "env steps" count
    ``num_timesteps``; "updates" count gradient (critic) updates. ``"MlpPolicy"`` is SB3's SAC
    policy with its twin critics held as one batched ensemble and torch's fused Adam
    (``causalrl.agents.ensemble.EnsembleSACPolicy``: the same networks and update rule);
    SB3's ``SACPolicy`` class, passed as ``policy``, keeps SB3's separate critics.

    :param causal_weights: use w_a in the critic target, actor and temperature losses (b.4);
        False keeps w_a = 1 (plain SAC entropy). Default True.
    :param discovery: ``"adaptive-lasso"`` (default), ``"direct-lingam"`` (causal-learn extra)
        or None (no discovery: w_a = 1 and no augmentation).
    :param discovery_start: env step of the first discovery round when that is before
        ``discovery_interval``; later rounds run at every multiple of ``discovery_interval``
        (b.1). A round uses the ``discovery_samples`` most recent transitions, or all stored
        when fewer. Default 2_000.
    :param discovery_interval: K, env steps between discovery rounds (b.1). Default 10_000.
    :param discovery_samples: N_c, most recent real transitions per round (at most
        ``buffer_size``). Default 10_000.
    :param discovery_basis: ``"interactions"`` (default: each variable and its square, and in the
        action fit each action's products with the other variables), ``"quadratic"`` or ``"linear"``.
    :param discovery_next_state: also offer s_{t+1} as a reward parent in the fit whose state
        parents guard augmentation (gymnasium's MuJoCo envs compute the reward after the step);
        a state dimension is a reward parent when s_i or s'_i is. The action weights always come
        from the fit on (s_t, a_t), where an action's effect through s_{t+1} counts (b.1).
        Default True.
    :param stability_resamples: subsamples of half the rows on which the reward parents are
        selected (b.1, stability selection); 1 selects once on all rows. Default 10.
    :param stability_threshold: share of the subsamples that must select a parent. Default 0.6.
    :param transition_threshold: |t| above which a coefficient of the regression of s'_i on
        (s, a) is a state -> state edge. Default 5.0 (about 1e-3 family-wise false edges over a
        thousand tests; a missed weak edge could let an open block look closed).
    :param weight_source: ``"abs"`` (default): w_a = d_A softmax(|b_a| / max_a' |b_a'| / tau),
        with |b_a| the norm of action a's coefficients on the standardised reward, so strong
        costs and strong rewards both rank high, whatever the reward's units; ``"signed"``:
        softmax of the signed linear coefficient, as the release (docs/cip.md (f) 8).
    :param weight_temperature: tau in w_a = d_A softmax(score_a / tau). Default 1.0.
    :param constant_tolerance: a state or action dimension whose standard deviation in the
        discovery window is at most this times (1 + |mean|) is constant: never a parent, never
        swapped (b.1). Default 1e-6.
    :param augmentation: counterfactual data augmentation of closed reward-free blocks (b.2).
        Default True.
    :param augmentation_ratio: share of every critic/actor minibatch replaced by counterfactual
        rows, once a discovery round has found a closed block. Default 0.25.
    :param swap_probability: each closed block is swapped with this probability (at least one
        per counterfactual row). Default 0.5.
    :param empowerment: train the inverse and forward models and add the empowerment term
        (b.3). Default True.
    :param empowerment_coef: lambda_E. Default 0.01.
    :param empowerment_max_grad_ratio: kappa: the empowerment term's gradient at the actor's
        outputs (mean and log std of each row) is scaled to at most kappa times the norm of the
        SAC loss's gradient there (b.3; lambda_E applies below that cap). Default 0.2.
    :param empowerment_warmup: updates before the term enters the actor loss (the models train
        from the start). Default 2_000.
    :param inverse_model_arch: hidden widths of q(a | s, s') and f(s, a); None (default): the
        actor's widths.
    :param inverse_min_std: floor of q's standard deviation (actions scaled to [-1, 1]).
        Default 0.05.
    :param inverse_policy_share: rho: q's loss is (1 - rho) times its negative log-likelihood on
        the replayed (s, a, s') plus rho times that on (s, a~, f(s, a~)) with a~ the current
        policy's actions, where the term evaluates q (b.3 (i)). With rho < 1, q's mean leans
        toward the buffer's actions wherever the action cannot be read off the next state, and
        the term pulls a~ that way; 0 is the replay-only fit of earlier versions. Default 1.0.
    :param policy_delay: actor and temperature updates happen on every ``policy_delay``-th
        update (b.4: 2); 1 updates them every step as SB3's SAC, which learns faster at short
        budgets (docs/cip.md (d)). Default 2.
    :param model_update_interval: the inverse and forward models take one step on every
        ``model_update_interval``-th actor update (docs/cip.md (f) 14); 1 steps them with every
        actor update (b.6). Default 2.
    :param dormancy_reset: gradient-dormancy-guided shrink-and-perturb (b.5). Default True.
    :param reset_interval: updates between resets. Default 100_000.
    :param reset_after: no reset before this many updates. Default 5_000.
    :param dormancy_threshold: a neuron is dormant when its weight-gradient row norm is below
        this share of its layer's mean. Default 0.05.
    :param reset_factor_range: f = clip(1 - dormant ratio, low, high); theta <- f theta +
        (1 - f) theta_fresh. Default (0.2, 0.9).
    :param reproduce_reference_quirks: use alpha = 0.2 until the first temperature update, then
        exp(log alpha) from log alpha = 0, as the release (docs/cip.md (f) 9; only with
        ``ent_coef="auto"``). Default False (SB3: alpha = 1.0 from the start).

    After each round, ``discovery_log`` holds one plain-data record per round (step, reward
    parents, action weights, swapped blocks by index and, where the env has ``state_names`` /
    ``action_names``, by name, constant dimensions, Jaccard index of the parent sets against the
    previous round); the same goes to the logger as ``cip/...`` keys, and one line is printed
    whenever the round's summary changes (docs/cip.md b.1).
    """

    policy_aliases = {"MlpPolicy": EnsembleSACPolicy}

    def __init__(
        self, policy, env, learning_rate=3e-4, buffer_size: int = 1_000_000, learning_starts: int = 100,
        batch_size: int = 256, tau: float = 0.005, gamma: float = 0.99, train_freq=1, gradient_steps: int = 1,
        action_noise=None, replay_buffer_class=None, replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False, ent_coef="auto", target_update_interval: int = 1, target_entropy="auto",
        causal_weights: bool = True, discovery: str | None = "adaptive-lasso", discovery_start: int = 2_000,
        discovery_interval: int = 10_000, discovery_samples: int = 10_000, discovery_basis: str = "interactions",
        discovery_next_state: bool = True, stability_resamples: int = 10, stability_threshold: float = 0.6,
        transition_threshold: float = 5.0, weight_source: str = "abs", weight_temperature: float = 1.0,
        constant_tolerance: float = 1e-6, augmentation: bool = True, augmentation_ratio: float = 0.25,
        swap_probability: float = 0.5, empowerment: bool = True, empowerment_coef: float = 0.01,
        empowerment_max_grad_ratio: float = 0.2, empowerment_warmup: int = 2_000,
        inverse_model_arch: tuple[int, ...] | None = None, inverse_min_std: float = 0.05,
        inverse_policy_share: float = 1.0, policy_delay: int = 2,
        model_update_interval: int = 2, dormancy_reset: bool = True, reset_interval: int = 100_000,
        reset_after: int = 5_000, dormancy_threshold: float = 0.05,
        reset_factor_range: tuple[float, float] = (0.2, 0.9), reproduce_reference_quirks: bool = False,
        stats_window_size: int = 100, tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None, verbose: int = 0, seed: int | None = None, device="auto",
        _init_setup_model: bool = True,
    ):
        arguments = locals()
        for name, value in checked_arguments({name: arguments[name] for name in OWN_ARGUMENTS}).items():
            setattr(self, name, value)
        # discovery results (numpy, saved with the model's data)
        self.reward_state_mask: np.ndarray | None = None
        self.reward_action_mask: np.ndarray | None = None
        self.transition_state_mask: np.ndarray | None = None
        self.transition_action_mask: np.ndarray | None = None
        self.constant_states: np.ndarray | None = None
        self.reward_coefficients: dict[str, np.ndarray] = {}
        self.swap_blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.augmentation_status = "no discovery round yet"
        self.discovery_rounds = 0
        #: one plain-data record per discovery round (records.round_record)
        self.discovery_log: list[dict] = []
        self.next_discovery_step = self._first_discovery_step()
        self.temperature_updates = 0
        self.last_counterfactual_rows = 0
        self._last_round_line = ""
        super().__init__(
            policy, env, learning_rate=learning_rate, buffer_size=self.buffer_size, learning_starts=learning_starts,
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
        if self.ent_coef_optimizer is not None:  # the temperature's Adam fused too, as the policy's
            self.ent_coef_optimizer = fused_adam(self.ent_coef_optimizer)
        n_states = int(self.observation_space.shape[0])
        n_actions = int(np.prod(self.action_space.shape))
        arch = self.inverse_model_arch
        if arch is None:  # the actor's hidden widths
            arch = tuple(layer.out_features for layer in self.actor.latent_pi if isinstance(layer, nn.Linear))
        self.inverse_model = InverseDynamics(n_states, n_actions, arch, self.inverse_min_std).to(self.device)
        self.forward_model = ForwardModel(n_states, n_actions, arch).to(self.device)
        # one optimiser (and one backward pass) for both models: their losses share no parameter
        # (fused: one Adam kernel over all their parameters instead of one per tensor)
        self.model_optimizer = th.optim.Adam([*self.inverse_model.parameters(), *self.forward_model.parameters()],
                                             lr=self.lr_schedule(1), fused=True)
        #: w_a (b.1 step 5); ones until the first discovery round
        self.action_weights = th.ones(n_actions, device=self.device)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["inverse_model", "forward_model", "model_optimizer", "action_weights"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return state_dicts + ["inverse_model", "forward_model", "model_optimizer"], variables + ["action_weights"]

    @property
    def learned_structure(self) -> dict[str, np.ndarray]:
        """Discovered reward parents, shaped as the env's ``causal_structure`` ({} before the
        first discovery round): state parents through s_t or s_{t+1}, action parents in the fit
        on (s_t, a_t). The learned state -> state structure is :attr:`learned_transition_structure`;
        each round's record is in :attr:`discovery_log`."""
        if self.reward_state_mask is None:
            return {}
        return {"state_to_reward": self.reward_state_mask[:, None].copy(),
                "action_to_reward": self.reward_action_mask[:, None].copy()}

    @property
    def learned_transition_structure(self) -> dict[str, np.ndarray]:
        """Discovered ``state_to_state`` (S, S) and ``action_to_state`` (A, S) edges ({} before
        the first discovery round)."""
        if self.transition_state_mask is None:
            return {}
        return {"state_to_state": self.transition_state_mask.copy(),
                "action_to_state": self.transition_action_mask.copy()}

    # --- schedule ------------------------------------------------------------------------------
    def _first_discovery_step(self) -> int:
        """b.1: the first round at min(discovery_start, K) env steps, then every multiple of K."""
        return min(self.discovery_start, self.discovery_interval)

    def _setup_learn(self, total_timesteps, callback=None, reset_num_timesteps=True, tb_log_name="run",
                     progress_bar=False):
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if reset_num_timesteps:
            self.next_discovery_step = self._first_discovery_step()
        for line in records.schedule_lines(self, self._total_timesteps):  # what the settings imply at this budget
            self._announce(line)
        return result

    def _announce(self, line: str) -> None:
        """``line`` through the logger's text output when it has one, else printed: visible
        without verbose, and never twice."""
        if any(isinstance(output, SeqWriter) for output in self.logger.output_formats):
            self.logger.log(line)
        else:
            print(line, flush=True)

    # --- training (docs/cip.md b.6) ---------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer, self.model_optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        # b.1: at the first round's step and every K env steps after, discover the reward's parents,
        # the transition structure, the closed reward-free blocks and w_a
        if self.discovery is not None and self.num_timesteps >= self.next_discovery_step:
            self.next_discovery_step = (self.num_timesteps // self.discovery_interval + 1) * self.discovery_interval
            self._discover()
        weights = self.action_weights if self.causal_weights else th.ones_like(self.action_weights)
        stats = defaultdict(list)
        for _ in range(gradient_steps):
            update = self._n_updates + 1
            # b.2: minibatch from D; the critic and actor also see counterfactual rows, the models never
            real = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            batch = self._augment(real)
            ent_coef = self._current_ent_coef()
            stats["ent_coef"].append(ent_coef.item())
            # b.4 critic step (with b.3 (i), the models' step on real rows, when due)
            self._critic_step(batch, real, ent_coef, weights, update, stats)
            if update % self.policy_delay == 0:
                # b.4 + b.3 (ii): actor, temperature, and (b.5) the dormancy reset when due
                self._actor_step(batch, ent_coef, weights, update, stats)
            # b.4: Polyak-averaged target critic
            if update % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            self._n_updates += 1
        records.record_training(self.logger.record, self._n_updates, weights, stats)

    def _critic_step(self, batch, real, ent_coef: th.Tensor, weights: th.Tensor, update: int, stats) -> None:
        """b.4: L_Q = sum_j MSE(Q_j(s, a), y) on every update; on every ``model_update_interval``-th
        actor update the models' step (b.3 (i), real rows only) shares its backward pass (they
        share no parameter)."""
        target_q = self._soft_target(batch, ent_coef, weights)
        q_values = _q_table(self.critic, batch.observations, batch.actions)
        # 0.5 sum_j MSE(Q_j, y) as 0.5 n_critics times the mean over the whole table (one operation)
        critic_loss = 0.5 * q_values.shape[1] * F.mse_loss(q_values, target_q.expand_as(q_values))
        self.critic.optimizer.zero_grad()
        if self.empowerment and update % (self.policy_delay * self.model_update_interval) == 0:
            stats["models"].append(self._model_step(real, critic_loss))
        else:
            critic_loss.backward()
        self.critic.optimizer.step()
        stats["critic"].append(critic_loss.item())

    def _actor_step(self, batch, ent_coef: th.Tensor, weights: th.Tensor, update: int, stats) -> None:
        """b.4: L_pi = alpha log pi_w(a~|s) - min_j Q_j(s, a~) [- c E_c after the warm-up, b.3 (ii)],
        then the temperature loss -log alpha (log pi_w + target entropy) and, when due, b.5."""
        with_empowerment = self.empowerment and update > self.empowerment_warmup
        outputs = self.actor.get_action_dist_params(batch.observations)[:2]  # mean, log std
        # with the term, both losses are built on detached copies of the actor's outputs, so
        # their gradients can be compared there before one backward pass (b.3)
        heads = [output.detach().requires_grad_() for output in outputs] if with_empowerment else outputs
        actions_pi, log_probs = squashed_gaussian_sample(*heads)
        weighted_log_prob = (log_probs @ weights).reshape(-1, 1)
        with frozen_parameters(self.critic):  # the actor loss updates the actor only
            min_q = _min_q(self.critic, batch.observations, actions_pi)
        actor_loss = (ent_coef * weighted_log_prob - min_q).mean()
        self.actor.optimizer.zero_grad()
        if with_empowerment:
            term = self._empowerment(batch.observations, actions_pi, log_probs, weights)
            coefficient, ratio = self._combine_actor_gradients(actor_loss, term, heads, outputs)
            stats["actor"].append(actor_loss.item() - coefficient * term.item())
            stats["empowerment"].append(term.item())
            stats["ratio"].append(ratio)
        else:
            actor_loss.backward()
            stats["actor"].append(actor_loss.item())
        self.actor.optimizer.step()
        if self.ent_coef_optimizer is not None:
            self._temperature_step(weighted_log_prob.detach())
        # b.5: dormancy-guided shrink and perturb (reads the actor's fresh gradients)
        if self.dormancy_reset and update > self.reset_after and update % self.reset_interval < self.policy_delay:
            self._dormancy_reset()

    # --- SAC pieces with causal weights (b.0, b.4) ---------------------------------------------------
    def _temperature_step(self, weighted_log_prob: th.Tensor) -> None:
        """b.4: one step on the loss -log alpha (log pi_w + target entropy), averaged over the
        batch (:func:`causalrl.agents.nets.temperature_step`)."""
        temperature_step(self.log_ent_coef, self.ent_coef_optimizer, weighted_log_prob, self.target_entropy)
        self.temperature_updates += 1

    def _current_ent_coef(self) -> th.Tensor:
        """alpha: exp(log alpha), or the fixed coefficient; with ``reproduce_reference_quirks``
        0.2 until the first temperature update (docs/cip.md (f) 9)."""
        if self.log_ent_coef is None:
            return self.ent_coef_tensor
        if self.reproduce_reference_quirks and self.temperature_updates == 0:
            return th.tensor([REFERENCE_INITIAL_ALPHA], device=self.device)
        return th.exp(self.log_ent_coef.detach())

    @th.no_grad()
    def _soft_target(self, batch, ent_coef: th.Tensor, weights: th.Tensor) -> th.Tensor:
        """b.4: y = r + gamma m (min_j Qbar_j(s', a') - alpha sum_i w_i l_i(a'|s')), a' ~ pi(.|s')."""
        discounts = batch.discounts if batch.discounts is not None else self.gamma
        next_actions, next_log_probs = self._sample_with_log_probs(batch.next_observations)
        next_q = _min_q(self.critic_target, batch.next_observations, next_actions)
        next_q = next_q - ent_coef * (next_log_probs @ weights).reshape(-1, 1)
        return batch.rewards + (1 - batch.dones) * discounts * next_q

    def _sample_with_log_probs(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """a ~ pi(.|s) reparameterised, and per-dimension log-probs l_i(a|s) (b.0): the density of
        SB3's squashed Gaussian, before summing."""
        return squashed_gaussian_sample(*self.actor.get_action_dist_params(observations)[:2])

    # --- the parts (each in its own module) ------------------------------------------------------
    def _model_step(self, real, other_loss: th.Tensor | None = None) -> tuple[float, float]:
        """b.3 (i): one step of q (maximum likelihood on the current policy's actions under the
        forward model and, with ``inverse_policy_share`` < 1, on the replayed rows) and of f
        (least squares) on real transitions.
        ``other_loss`` (the critic's) is backpropagated in the same pass; its optimiser steps
        elsewhere."""
        policy_actions = None
        if self.inverse_policy_share > 0:
            with th.no_grad():
                policy_actions = squashed_gaussian_sample(*self.actor.get_action_dist_params(real.observations)[:2],
                                                       log_probs=False)[0]
        inverse_loss, forward_loss = model_losses(self.inverse_model, self.forward_model, real, policy_actions,
                                                  self.inverse_policy_share)
        self.model_optimizer.zero_grad()
        (inverse_loss + forward_loss + (0.0 if other_loss is None else other_loss)).backward()
        self.model_optimizer.step()
        return inverse_loss.item(), forward_loss.item()

    def _empowerment(self, observations, actions_pi, log_probs, weights) -> th.Tensor:
        """b.3 (ii): E_c at the policy's actions (:func:`empowerment.empowerment_estimate`)."""
        return empowerment_estimate(self.inverse_model, self.forward_model, observations, actions_pi, log_probs, weights)

    def _combine_actor_gradients(self, sac_loss, empowerment_term, heads, outputs) -> tuple[float, float]:
        """b.3 (ii): the actor's gradient of SAC loss - c E_c, c capped (:func:`empowerment.combine_actor_gradients`)."""
        return combine_actor_gradients(sac_loss, empowerment_term, heads, outputs, self.empowerment_coef,
                                       self.empowerment_max_grad_ratio)

    def _augment(self, batch):
        """b.2: the batch with its first ``augmentation_ratio`` of rows made counterfactual
        (unchanged before a round has found a closed block: ``augmentation_status`` says why)."""
        if not self.augmentation:
            self.last_counterfactual_rows = 0
            return batch
        batch, self.last_counterfactual_rows = counterfactual_batch(batch, self.swap_blocks, self.augmentation_ratio,
                                                                    self.swap_probability)
        return batch

    def _dormancy_reset(self) -> float:
        """b.5 on the actor, critics, target critic and both models; returns the factor f."""
        factor = dormancy_reset(self.actor, [self.actor, self.critic, self.critic_target, self.inverse_model,
                                             self.forward_model],
                                [self.actor.optimizer, self.critic.optimizer, self.model_optimizer],
                                self.dormancy_threshold, self.reset_factor_range)
        self.logger.record("causal/reset_factor", factor)
        return factor

    def _discovery_settings(self) -> DiscoverySettings:
        return DiscoverySettings(self.discovery or "adaptive-lasso", self.discovery_basis, self.discovery_next_state,
                                 self.stability_resamples, self.stability_threshold, self.transition_threshold,
                                 self.weight_source, self.weight_temperature, self.constant_tolerance)

    def _parents(self, variables: np.ndarray, target: np.ndarray, seed):
        """b.1: stability-selected parents of ``target`` (:func:`discovery.reward_parents`)."""
        return reward_parents(variables, target, self._discovery_settings(), seed)

    def _discover(self) -> None:
        """b.1 + b.2 on the most recent real transitions; records the round (``discovery_log``,
        ``cip/...`` keys) and prints its one-line summary when that changed."""
        data = recent_transitions(self.replay_buffer, self.discovery_samples, self.observation_space.shape[0])
        if data is None:
            return
        started = time.perf_counter()
        found = discover(data, self._discovery_settings(), [int(self.seed or 0), self.discovery_rounds])
        previous = None if self.reward_state_mask is None else (self.reward_state_mask, self.reward_action_mask)
        self.reward_state_mask, self.reward_action_mask = found.reward_state_mask, found.reward_action_mask
        self.transition_state_mask, self.transition_action_mask = found.transition_state_mask, found.transition_action_mask
        self.constant_states, self.swap_blocks = found.constant_states, found.swap_blocks
        self.augmentation_status, self.reward_coefficients = found.augmentation_status, found.reward_coefficients
        self.transition_basis = found.transition_basis
        self.action_weights = th.as_tensor(found.action_weights, dtype=th.float32, device=self.device)
        self.discovery_rounds += 1
        n_states, n_actions = found.reward_state_mask.size, found.reward_action_mask.size
        entry = records.round_record(found, self.discovery_rounds, self.num_timesteps, previous,
                                     records.dimension_names(self.env, "state_names", n_states),
                                     records.dimension_names(self.env, "action_names", n_actions))
        entry["swapping"] = bool(self.augmentation and found.swap_blocks)  # b.2: whether this agent swaps now
        self.discovery_log.append(entry)
        records.record_round(self.logger.record, found, entry, time.perf_counter() - started, self.augmentation)
        line = records.round_line(entry, self.augmentation)
        if line != self._last_round_line:
            self._announce(f"CIP discovery round {entry['round']} (step {entry['step']}, {entry['transitions']} "
                           f"transitions): {line}")
            self._last_round_line = line
