"""CIP: causal information prioritisation on SAC; ACE (causally weighted entropy only); and a
SAC with CIP's delayed actor schedule as the like-for-like baseline.

Spec: docs/cip.md (Cao et al., ICLR 2025, arXiv:2502.10097; ACE: Ji et al., ICML 2024,
arXiv:2402.14528). This is the algorithm the paper intends, not the public release, which is
inert in three places (docs/cip.md (f) 1, 2, 5); here each part acts, and each has a
constructor switch:

- ``causal_weights``: w_a = d_A softmax(score_a) from the discovered action -> reward
  coefficients, used in the critic target, the actor loss and the temperature loss (b.4, as ACE).
- ``augmentation``: counterfactual transitions that swap a *closed, reward-free block* (state
  dimensions with the actions that drive them, in s, a and s') between two real transitions,
  mixed into the critic's and actor's minibatches (b.2). A block is closed when, in the learned
  state -> state structure, nothing outside drives it and it drives nothing outside, and none
  of its dimensions is a parent of the reward or the termination flag (through s or s'). With
  no such block nothing is augmented, and the reason is logged.
- ``empowerment``: an inverse-dynamics model q(a | s, s') and a forward model f(s, a) -> s',
  both trained by maximum likelihood on real rows only (one step on every
  ``model_update_interval``-th actor update); after a warm-up the actor ascends
  E_c = H_w[pi(.|s)] + E_{a~pi} sum_i w_i log q_i(a | s, f(s, a)) (b.3 (ii) with s'_model = the
  next state the policy's own action would produce), with its gradient at the actor's outputs
  capped at a stated share of the SAC loss's gradient there (``empowerment_max_grad_ratio``).
- ``dormancy_reset``: gradient-dormancy-guided shrink-and-perturb (b.5).

Discovery (b.1) runs every ``discovery_interval`` env steps on the last ``discovery_samples``
real transitions of the replay buffer: the reward's parents among (s_t, a_t, s_{t+1}) by a
stability-selected adaptive-lasso regression on each variable and its square
(``causalrl.core.stats.stability_selection`` / ``adaptive_lasso``), or causal-learn's
DirectLiNGAM (optional extra ``causalrl[discovery]``); and the state -> state structure by the
t statistics of the regressions of s_{t+1} on (s_t, a_t) (``regression_t_statistics``).
Every choice where the spec leaves room, and every departure from the paper and the release,
is listed in docs/cip.md (f).
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
from causalrl.core.stats import (
    adaptive_lasso,
    regression_t_statistics,
    stability_selection,
)
from causalrl.core.structure import closed_blocks

__all__ = ["CIP", "ACE", "CIPNoEmpowerment", "DelayedSAC", "InverseDynamics", "ForwardModel", "DISCOVERY_METHODS"]

DISCOVERY_METHODS = ("adaptive-lasso", "direct-lingam")
LOG_STD_MAX = 2.0
#: alpha the release uses until its first temperature update (docs/cip.md (f) 9)
REFERENCE_INITIAL_ALPHA = 0.2


class InverseDynamics(nn.Module):
    """q_psi(a | s, s'): a diagonal Gaussian over the (scaled, [-1, 1]) action, from an MLP on
    [s, s'] (docs/cip.md b.3). Unsquashed, so the likelihood of a replayed action needs no
    atanh. Its standard deviation is floored at ``min_std`` (b.3: the floor bounds the
    precision, hence the size of the empowerment gradient)."""

    def __init__(self, n_states: int, n_actions: int, net_arch: tuple[int, ...] = (256, 256), min_std: float = 0.05):
        super().__init__()
        body, width = mlp(2 * n_states, net_arch)
        self.net = nn.Sequential(body, nn.Linear(width, 2 * n_actions))  # mean and log std, in one layer
        self.n_actions = n_actions
        self.log_std_min = math.log(min_std)

    def log_prob(self, observations: th.Tensor, next_observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Per-dimension log q(a_i | s, s'), shape (batch, n_actions)."""
        outputs = self.net(th.cat([observations, next_observations], dim=1).float())  # float64 Box obs too
        mean, log_std = outputs[:, :self.n_actions], outputs[:, self.n_actions:]
        return gaussian_log_prob(actions, mean, log_std.clamp(self.log_std_min, LOG_STD_MAX))


class ForwardModel(nn.Module):
    """f_phi(s, a) -> s': the mean next state, s + MLP([s, a]), fitted by least squares on real
    transitions (docs/cip.md b.3 (ii): the s'_model the empowerment term conditions q on)."""

    def __init__(self, n_states: int, n_actions: int, net_arch: tuple[int, ...] = (256, 256)):
        super().__init__()
        body, width = mlp(n_states + n_actions, net_arch)
        self.net = nn.Sequential(body, nn.Linear(width, n_states))

    def forward(self, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        observations = observations.float()
        return observations + self.net(th.cat([observations, actions.float()], dim=1))


def _finite(value, name: str, low: float | None = None, high: float | None = None, low_open: bool = False) -> float:
    """``value`` as a finite float within the bounds, else a one-line ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number) or (low is not None and (number < low or (low_open and number == low))) \
            or (high is not None and number > high):
        bounds = f"{'(' if low_open else '['}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"{name}: must be a finite number in {bounds}, got {value!r}")
    return number


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
    :param discovery_samples: N_c, most recent real transitions per round (at most
        ``buffer_size``); a round is skipped while the buffer holds fewer. Default 10_000.
    :param discovery_basis: ``"quadratic"`` (each variable and its square, default) or
        ``"linear"``: the regressors of the reward and transition regressions.
    :param discovery_next_state: also offer s_{t+1} as a reward parent (gymnasium's MuJoCo envs
        compute the reward after the step); a state dimension is a reward parent when s_i or
        s'_i is. Default True.
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
    :param empowerment_warmup: gradient updates before the term enters the actor loss (the
        models train from the start). Default 2_000.
    :param inverse_model_arch: hidden widths of q(a | s, s') and f(s, a); None (default): the
        actor's widths.
    :param inverse_min_std: floor of q's standard deviation (actions scaled to [-1, 1]).
        Default 0.05.
    :param policy_delay: actor and temperature updates happen on every ``policy_delay``-th
        critic update (b.4: 2); 1 updates them every step as SB3's SAC, which learns faster
        at short budgets (docs/cip.md (d)). Default 2.
    :param model_update_interval: the inverse and forward models take one step on every
        ``model_update_interval``-th actor update (docs/cip.md (f)); 1 steps them with every
        actor update (b.6). Default 2.
    :param dormancy_reset: gradient-dormancy-guided shrink-and-perturb (b.5). Default True.
    :param reset_interval: gradient updates between resets. Default 100_000.
    :param reset_after: no reset before this many updates. Default 5_000.
    :param dormancy_threshold: a neuron is dormant when its weight-gradient row norm is below
        this share of its layer's mean. Default 0.05.
    :param reset_factor_range: f = clip(1 - dormant ratio, low, high); theta <- f theta +
        (1 - f) theta_fresh. Default (0.2, 0.9).
    :param reproduce_reference_quirks: use alpha = 0.2 until the first temperature update, then
        exp(log alpha) from log alpha = 0, as the release (docs/cip.md (f) 9; only with
        ``ent_coef="auto"``). Default False (SB3: alpha = 1.0 from the start).
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
        discovery_next_state: bool = True,
        stability_resamples: int = 10,
        stability_threshold: float = 0.6,
        transition_threshold: float = 5.0,
        weight_source: str = "abs",
        weight_temperature: float = 1.0,
        augmentation: bool = True,
        augmentation_ratio: float = 0.25,
        swap_probability: float = 0.5,
        empowerment: bool = True,
        empowerment_coef: float = 0.01,
        empowerment_max_grad_ratio: float = 0.2,
        empowerment_warmup: int = 2_000,
        inverse_model_arch: tuple[int, ...] | None = None,
        inverse_min_std: float = 0.05,
        policy_delay: int = 2,
        model_update_interval: int = 2,
        dormancy_reset: bool = True,
        reset_interval: int = 100_000,
        reset_after: int = 5_000,
        dormancy_threshold: float = 0.05,
        reset_factor_range: tuple[float, float] = (0.2, 0.9),
        reproduce_reference_quirks: bool = False,
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
        if weight_source not in ("abs", "signed"):
            raise ValueError(f"weight_source: unknown {weight_source!r}; choose 'abs' or 'signed'")
        for name, value in [("discovery_interval", discovery_interval), ("discovery_samples", discovery_samples),
                            ("policy_delay", policy_delay), ("model_update_interval", model_update_interval),
                            ("reset_interval", reset_interval),
                            ("stability_resamples", stability_resamples), ("buffer_size", buffer_size)]:
            check_int(value, name)
        for name, value in [("empowerment_warmup", empowerment_warmup), ("reset_after", reset_after)]:
            check_int(value, name, minimum=0)
        if discovery_samples < 10:
            raise ValueError(f"discovery_samples: needs at least 10 transitions for a regression, got {discovery_samples}")
        if discovery is not None and discovery_samples > buffer_size:
            raise ValueError(f"discovery_samples: {discovery_samples} exceeds buffer_size {buffer_size}, so discovery "
                             "would never run; lower discovery_samples or raise buffer_size")
        _finite(weight_temperature, "weight_temperature", 0.0, low_open=True)
        _finite(stability_threshold, "stability_threshold", 0.0, 1.0, low_open=True)
        _finite(transition_threshold, "transition_threshold", 0.0, low_open=True)
        _finite(augmentation_ratio, "augmentation_ratio", 0.0, 1.0)
        _finite(swap_probability, "swap_probability", 0.0, 1.0)
        _finite(empowerment_coef, "empowerment_coef", 0.0)
        _finite(empowerment_max_grad_ratio, "empowerment_max_grad_ratio", 0.0)
        _finite(inverse_min_std, "inverse_min_std", 0.0, 1.0, low_open=True)
        _finite(dormancy_threshold, "dormancy_threshold", 0.0)
        if inverse_model_arch is not None:
            try:
                inverse_model_arch = tuple(check_int(width, "inverse_model_arch") for width in inverse_model_arch)
            except TypeError:
                raise ValueError(f"inverse_model_arch: must be a list of positive widths, got {inverse_model_arch!r}") from None
        try:
            low, high = (float(bound) for bound in reset_factor_range)
        except (TypeError, ValueError):
            raise ValueError(f"reset_factor_range: must be a pair (low, high), got {reset_factor_range!r}") from None
        if not 0 <= low <= high <= 1:
            raise ValueError(f"reset_factor_range: need 0 <= low <= high <= 1, got {reset_factor_range!r}")
        self.causal_weights = causal_weights
        self.discovery = discovery
        self.discovery_interval = int(discovery_interval)
        self.discovery_samples = int(discovery_samples)
        self.discovery_basis = discovery_basis
        self.discovery_next_state = bool(discovery_next_state)
        self.stability_resamples = int(stability_resamples)
        self.stability_threshold = float(stability_threshold)
        self.transition_threshold = float(transition_threshold)
        self.weight_source = weight_source
        self.weight_temperature = float(weight_temperature)
        self.augmentation = augmentation
        self.augmentation_ratio = float(augmentation_ratio)
        self.swap_probability = float(swap_probability)
        self.empowerment = empowerment
        self.empowerment_coef = float(empowerment_coef)
        self.empowerment_max_grad_ratio = float(empowerment_max_grad_ratio)
        self.empowerment_warmup = int(empowerment_warmup)
        self.inverse_model_arch = inverse_model_arch
        self.inverse_min_std = float(inverse_min_std)
        self.policy_delay = int(policy_delay)
        self.model_update_interval = int(model_update_interval)
        self.dormancy_reset = dormancy_reset
        self.reset_interval = int(reset_interval)
        self.reset_after = int(reset_after)
        self.dormancy_threshold = float(dormancy_threshold)
        self.reset_factor_range = (low, high)
        self.reproduce_reference_quirks = bool(reproduce_reference_quirks)
        # discovery results (numpy, saved with the model's data)
        self.reward_state_mask: np.ndarray | None = None
        self.reward_action_mask: np.ndarray | None = None
        self.transition_state_mask: np.ndarray | None = None
        self.transition_action_mask: np.ndarray | None = None
        self.reward_coefficients: dict[str, np.ndarray] = {}
        self.swap_blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self.augmentation_status = "no discovery round yet"
        self.discovery_rounds = 0
        self.next_discovery_step = int(discovery_interval)
        self.temperature_updates = 0
        self.last_counterfactual_rows = 0
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
        arch = self.inverse_model_arch
        if arch is None:  # the actor's hidden widths
            arch = tuple(layer.out_features for layer in self.actor.latent_pi if isinstance(layer, nn.Linear))
        self.inverse_model = InverseDynamics(n_states, n_actions, arch, self.inverse_min_std).to(self.device)
        self.forward_model = ForwardModel(n_states, n_actions, arch).to(self.device)
        # one optimiser (and one backward pass) for both models: their losses share no parameter
        # (fused: one Adam kernel over all their parameters instead of one per tensor)
        self.model_optimizer = th.optim.Adam([*self.inverse_model.parameters(), *self.forward_model.parameters()],
                                             lr=self.lr_schedule(1), fused=True)
        #: w_a (b.1 step 4); ones until the first discovery round
        self.action_weights = th.ones(n_actions, device=self.device)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["inverse_model", "forward_model", "model_optimizer", "action_weights"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return state_dicts + ["inverse_model", "forward_model", "model_optimizer"], variables + ["action_weights"]

    @property
    def learned_structure(self) -> dict[str, np.ndarray]:
        """Discovered reward parents, shaped as the env's ``causal_structure`` ({} before the
        first discovery round). The learned state -> state structure is
        :attr:`learned_transition_structure`."""
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

    # --- training (docs/cip.md b.6) ---------------------------------------------------------------
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer, self.model_optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        # b.1: every K env steps, discover the reward's parents and the transition structure
        if self.discovery is not None and self.num_timesteps >= self.next_discovery_step:
            while self.next_discovery_step <= self.num_timesteps:
                self.next_discovery_step += self.discovery_interval
            self._discover()
        weights = self.action_weights if self.causal_weights else th.ones_like(self.action_weights)

        critic_losses, actor_losses, model_losses, empowerments, ratios, ent_coefs = [], [], [], [], [], []
        for _ in range(gradient_steps):
            update = self._n_updates + 1
            # b.2: minibatch from D; the critic and actor also see counterfactual rows, the models never
            real = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            batch = self._augment(real)
            ent_coef = self._current_ent_coef()
            ent_coefs.append(ent_coef.item())

            # b.4: y = r + gamma m (min_j Qbar_j(s', a') - alpha log pi_w(a'|s')),  a' ~ pi(.|s')
            target_q = self._soft_target(batch, ent_coef, weights)
            # b.4: critic loss sum_j MSE(Q_j(s, a), y), every update
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in self.critic(batch.observations, batch.actions))
            self.critic.optimizer.zero_grad()
            if self.empowerment and update % (self.policy_delay * self.model_update_interval) == 0:
                # b.3 (i): inverse model q(a | s, s') and forward model f(s, a) on real rows only,
                # every model_update_interval-th actor update (docs/cip.md (f) 14), in one
                # backward pass with the critic's loss (they share no parameter)
                model_losses.append(self._model_step(real, critic_loss))
            else:
                critic_loss.backward()
            self.critic.optimizer.step()
            critic_losses.append(critic_loss.item())

            if update % self.policy_delay == 0:
                # b.4 + b.3 (ii): actor loss alpha log pi_w - min Q - lambda E_c (after warm-up)
                with_empowerment = self.empowerment and update > self.empowerment_warmup
                outputs = self.actor.get_action_dist_params(batch.observations)[:2]  # mean, log std
                # with the term, both losses are built on detached copies of the actor's outputs,
                # so their gradients can be compared there before one backward pass (b.3)
                heads = [output.detach().requires_grad_() for output in outputs] if with_empowerment else outputs
                actions_pi, log_probs = self._squashed_sample(*heads)
                weighted_log_prob = (log_probs @ weights).reshape(-1, 1)
                min_q = th.min(th.cat(self.critic(batch.observations, actions_pi), dim=1), dim=1, keepdim=True)[0]
                actor_loss = (ent_coef * weighted_log_prob - min_q).mean()
                self.actor.optimizer.zero_grad()
                if with_empowerment:
                    empowerment = self._empowerment(batch.observations, actions_pi, log_probs, weights)
                    coefficient, ratio = self._combine_actor_gradients(actor_loss, empowerment, heads, outputs)
                    actor_loss = actor_loss - coefficient * empowerment
                    empowerments.append(empowerment.item())
                    ratios.append(ratio)
                else:
                    actor_loss.backward()
                self.actor.optimizer.step()
                actor_losses.append(actor_loss.item())
                # b.4: temperature loss -log alpha (log pi_w + target entropy)
                if self.ent_coef_optimizer is not None:
                    ent_coef_loss = -(self.log_ent_coef * (weighted_log_prob.detach() + self.target_entropy)).mean()
                    self.ent_coef_optimizer.zero_grad()
                    ent_coef_loss.backward()
                    self.ent_coef_optimizer.step()
                    self.temperature_updates += 1
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
        if model_losses:
            self.logger.record("train/inverse_model_loss", float(np.mean([loss[0] for loss in model_losses])))
            self.logger.record("train/forward_model_loss", float(np.mean([loss[1] for loss in model_losses])))
        if empowerments:
            self.logger.record("train/empowerment", float(np.mean(empowerments)))
            self.logger.record("cip/empowerment_grad_ratio", float(np.mean(ratios)))

    # --- the parts -----------------------------------------------------------------------------
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
        next_q = th.min(th.cat(self.critic_target(batch.next_observations, next_actions), dim=1), dim=1, keepdim=True)[0]
        next_q = next_q - ent_coef * (next_log_probs @ weights).reshape(-1, 1)
        return batch.rewards + (1 - batch.dones) * discounts * next_q

    def _sample_with_log_probs(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """a ~ pi(.|s) reparameterised, and per-dimension log-probs l_i(a|s) (b.0), as SB3's
        squashed Gaussian computes them before summing."""
        return self._squashed_sample(*self.actor.get_action_dist_params(observations)[:2])

    @staticmethod
    def _squashed_sample(mean: th.Tensor, log_std: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """a = tanh(mean + std eps), eps ~ N(0, I), and its per-dimension log-probs."""
        pre_tanh = mean + log_std.exp() * th.randn_like(mean)
        return th.tanh(pre_tanh), squashed_gaussian_log_prob(pre_tanh, mean, log_std)

    def _model_step(self, real, other_loss: th.Tensor | None = None) -> tuple[float, float]:
        """b.3 (i): one maximum-likelihood step of q(a | s, s') and one least-squares step of
        f(s, a) on real transitions (never on counterfactual rows). ``other_loss`` (the critic's,
        which shares no parameter with the models) is backpropagated in the same pass; its
        optimiser steps elsewhere."""
        inverse_loss = -self.inverse_model.log_prob(real.observations, real.next_observations, real.actions).sum(1).mean()
        forward_loss = F.mse_loss(self.forward_model(real.observations, real.actions), real.next_observations.float())
        self.model_optimizer.zero_grad()
        (inverse_loss + forward_loss + (0.0 if other_loss is None else other_loss)).backward()
        self.model_optimizer.step()
        return inverse_loss.item(), forward_loss.item()

    def _empowerment(self, observations, actions_pi, log_probs, weights) -> th.Tensor:
        """E_c = H_w[pi(.|s)] - H_w[q(.|s, s')] with s' = f(s, a~), estimated as
        mean[-sum_i w_i l_i(a~|s) + sum_i w_i log q_i(a~ | s, f(s, a~))], a~ ~ pi (b.3 (ii)).
        The next state is the one the policy's own action would produce, so raising the term
        makes a~ recoverable from its effect; it does not pull a~ toward the replayed action.
        Gradients reach the actor through a~ (also inside f) and l; :meth:`_combine_actor_gradients`
        takes them at the actor's outputs only, so the term never trains the models (their own
        steps do)."""
        predicted_next = self.forward_model(observations, actions_pi)
        inverse_log_probs = self.inverse_model.log_prob(observations, predicted_next, actions_pi)
        return ((inverse_log_probs - log_probs) @ weights).mean()

    def _combine_actor_gradients(self, sac_loss: th.Tensor, empowerment: th.Tensor, heads: list[th.Tensor],
                                 outputs: list[th.Tensor]) -> tuple[float, float]:
        """Set the actor's gradients to those of SAC loss - c E_c, with
        c = min(lambda_E, kappa |g_SAC| / |g_E|), where g is a loss's gradient at the actor's
        outputs (the mean and log std of every row): both losses reach the actor's parameters
        only through them, so one backward pass of the combined output gradient through the
        actor does the rest (b.3: the term never moves the actor's outputs more than kappa
        times the SAC loss does). ``heads`` are the detached outputs the losses were built on,
        ``outputs`` the same tensors with the actor's graph. Returns (c, c |g_E| / |g_SAC|)."""
        sac_grads = th.autograd.grad(sac_loss, heads, retain_graph=True)
        emp_grads = th.autograd.grad(empowerment, heads)
        sac_norm, emp_norm = (float(th.linalg.vector_norm(th.cat([g.reshape(-1) for g in grads])))
                              for grads in (sac_grads, emp_grads))
        coefficient = self.empowerment_coef
        if emp_norm > 0 and coefficient * emp_norm > self.empowerment_max_grad_ratio * sac_norm:
            coefficient = self.empowerment_max_grad_ratio * sac_norm / emp_norm
        th.autograd.backward(outputs, [th.add(g, e, alpha=-coefficient) for g, e in zip(sac_grads, emp_grads)])
        return coefficient, coefficient * emp_norm / max(sac_norm, 1e-12)

    def _augment(self, batch):
        """Replace the first ``augmentation_ratio`` share of the rows by counterfactuals: row i
        takes, from a different row j of the batch, the states (in s and s') and actions of a
        random non-empty subset of the closed reward-free blocks; its reward and done stay its
        own (b.2). Returned unchanged when no closed block is known (before discovery, or when
        discovery found no reward parent or no closed block: ``augmentation_status`` says why)."""
        self.last_counterfactual_rows = 0
        if not self.augmentation or not self.swap_blocks or self.augmentation_ratio == 0:
            return batch
        size = batch.observations.shape[0]
        n_rows = int(round(self.augmentation_ratio * size))
        if n_rows == 0 or size < 2:
            return batch
        n_states, n_actions = batch.observations.shape[1], batch.actions.shape[1]
        state_blocks = th.zeros(len(self.swap_blocks), n_states, device=self.device)
        action_blocks = th.zeros(len(self.swap_blocks), n_actions, device=self.device)
        for index, (states, actions) in enumerate(self.swap_blocks):
            state_blocks[index, th.as_tensor(states, dtype=th.long)] = 1.0
            action_blocks[index, th.as_tensor(actions, dtype=th.long)] = 1.0
        partners = (th.arange(n_rows, device=self.device) + th.randint(1, size, (n_rows,), device=self.device)) % size
        chosen = th.rand(n_rows, len(self.swap_blocks), device=self.device) < self.swap_probability
        chosen[th.arange(n_rows, device=self.device), th.randint(0, len(self.swap_blocks), (n_rows,), device=self.device)] = True
        swap_states = (chosen.float() @ state_blocks) > 0
        swap_actions = (chosen.float() @ action_blocks) > 0
        observations, next_observations = batch.observations.clone(), batch.next_observations.clone()
        actions = batch.actions.clone()
        observations[:n_rows] = th.where(swap_states, batch.observations[partners], batch.observations[:n_rows])
        next_observations[:n_rows] = th.where(swap_states, batch.next_observations[partners], batch.next_observations[:n_rows])
        actions[:n_rows] = th.where(swap_actions, batch.actions[partners], batch.actions[:n_rows])
        self.last_counterfactual_rows = n_rows
        return batch._replace(observations=observations, next_observations=next_observations, actions=actions)

    def _recent_transitions(self, count: int):
        """(s, a, r, s', terminated) of the ``count`` most recent real transitions, or None."""
        buffer = self.replay_buffer
        n_envs = buffer.n_envs
        stored = (buffer.buffer_size if buffer.full else buffer.pos) * n_envs
        if stored < count:
            return None
        rows = (buffer.pos - 1 - np.arange(math.ceil(count / n_envs))) % buffer.buffer_size
        n_states = self.observation_space.shape[0]
        observations = buffer.observations[rows].reshape(-1, n_states)[:count]
        if buffer.optimize_memory_usage:
            next_observations = buffer.observations[(rows + 1) % buffer.buffer_size].reshape(-1, n_states)[:count]
        else:
            next_observations = buffer.next_observations[rows].reshape(-1, n_states)[:count]
        actions = buffer.actions[rows].reshape(-1, buffer.actions.shape[-1])[:count]
        rewards = buffer.rewards[rows].reshape(-1)[:count]
        terminated = (buffer.dones[rows] * (1 - buffer.timeouts[rows])).reshape(-1)[:count]
        return (observations.astype(float), actions.astype(float), rewards.astype(float),
                next_observations.astype(float), terminated.astype(float))

    def _basis(self, variables: np.ndarray) -> np.ndarray:
        """Standardised variables, and their squares with the quadratic basis."""
        scale = variables.std(0)
        standardised = (variables - variables.mean(0)) / np.where(scale > 0, scale, 1.0)
        if self.discovery_basis == "quadratic":
            return np.concatenate([standardised, standardised ** 2], axis=1)
        return standardised

    def _parents(self, variables: np.ndarray, target: np.ndarray, seed) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """b.1: stability-selected parents of ``target`` among the columns of ``variables``.
        Returns (kept, frequency, linear coefficient, magnitude) per variable; the magnitude (the
        norm of a variable's coefficients on the standardised target, per standard deviation of
        each regressor) comes from one fit on all rows and is zero for an unstable parent."""
        n_variables = variables.shape[1]
        target = (target - target.mean()) / (target.std() if target.std() > 0 else 1.0)
        if self.discovery == "direct-lingam":
            from causallearn.search.FCMBased.lingam import DirectLiNGAM

            def fit(x, y):
                model = DirectLiNGAM(measure="pwling")
                model.fit(np.concatenate([x, y[:, None]], axis=1))
                return np.asarray(model.adjacency_matrix_)[-1, :-1]

            linear = fit(variables, target)
            magnitude = np.abs(linear)
            kept, frequency = stability_selection(variables, target, fit, self.stability_resamples,
                                                  threshold=self.stability_threshold, seed=seed)
        else:
            basis = self._basis(variables)
            blocks = basis.shape[1] // n_variables

            def fit(x, y):
                return adaptive_lasso(x, y).reshape(blocks, n_variables)

            def select(x, y):
                return (fit(x, y) != 0).any(0)

            coefficients = fit(basis, target)
            linear = coefficients[0].copy()
            if blocks == 2:  # a square's coefficient, per standard deviation of that square
                coefficients[1] *= basis[:, n_variables:].std(0)
            magnitude = np.sqrt((coefficients ** 2).sum(0))
            kept, frequency = stability_selection(basis, target, select, self.stability_resamples,
                                                  threshold=self.stability_threshold, seed=seed)
        return kept, frequency, linear, np.where(kept, magnitude, 0.0)

    def _transition_edges(self, inputs: np.ndarray, next_observations: np.ndarray) -> np.ndarray:
        """b.2: the (S + A, S) state/action -> next-state edges: |t| above ``transition_threshold``
        in the regression of each s'_i on the basis of (s, a), plus every pairwise product of
        the standardised inputs when there are at least 4 rows per column (couplings such as
        cos q * qdot in rotating bodies are invisible to an additive basis; a product's edge
        counts for both its factors). Extra edges only shrink the swappable blocks."""
        n_rows, n_inputs = inputs.shape
        basis = self._basis(inputs)
        rows, cols = np.triu_indices(n_inputs, 1)
        with_products = self.discovery_basis == "quadratic" and basis.shape[1] + rows.size <= n_rows / 4
        self.transition_basis = "quadratic + products" if with_products else self.discovery_basis
        if with_products:
            basis = np.concatenate([basis, basis[:, rows] * basis[:, cols]], axis=1)
        significant = regression_t_statistics(basis, next_observations) > self.transition_threshold
        blocks = (basis.shape[1] - rows.size * with_products) // n_inputs
        edges = significant[:blocks * n_inputs].reshape(blocks, n_inputs, -1).any(0)
        if with_products:
            products = significant[blocks * n_inputs:]
            np.logical_or.at(edges, rows, products)
            np.logical_or.at(edges, cols, products)
        return edges

    def _discover(self) -> None:
        """b.1 + b.2: the reward's (and termination's) parents among (s, a, s'), the state ->
        state structure, the closed reward-free blocks, and w_a = d_A softmax(score_a)."""
        data = self._recent_transitions(self.discovery_samples)
        if data is None:
            return
        started = time.perf_counter()
        observations, actions, rewards, next_observations, terminated = data
        n_states, n_actions = observations.shape[1], actions.shape[1]
        seed = [int(self.seed or 0), self.discovery_rounds]
        parts = [observations, actions] + ([next_observations] if self.discovery_next_state else [])
        variables = np.concatenate(parts, axis=1)
        kept, frequency, linear, magnitude = self._parents(variables, rewards, seed)

        def fold(mask):  # a state dimension is a parent through s_t or s_{t+1}
            states = mask[:n_states].copy()
            if self.discovery_next_state:
                states |= mask[n_states + n_actions:]
            return states, mask[n_states:n_states + n_actions].copy()

        self.reward_state_mask, self.reward_action_mask = fold(kept)
        state_frequency = frequency[:n_states].copy()
        if self.discovery_next_state:
            state_frequency = np.maximum(state_frequency, frequency[n_states + n_actions:])
        # parents of termination (when the window holds some) are never swapped either
        blocked_states, blocked_actions = self.reward_state_mask.copy(), self.reward_action_mask.copy()
        if 0 < terminated.sum() < terminated.size:
            done_kept = self._parents(variables, terminated, seed + [1])[0]
            done_states, done_actions = fold(done_kept)
            blocked_states |= done_states
            blocked_actions |= done_actions
        edges = self._transition_edges(np.concatenate([observations, actions], axis=1), next_observations)
        self.transition_state_mask, self.transition_action_mask = edges[:n_states], edges[n_states:]
        # b.2: closed blocks, only once the reward has a discovered state parent
        if not blocked_states.any():
            self.swap_blocks = []
            self.augmentation_status = "off: discovery found no state parent of the reward"
        else:
            self.swap_blocks = closed_blocks(edges[:n_states], edges[n_states:], blocked_states, blocked_actions)
            self.augmentation_status = "on" if self.swap_blocks else "off: no closed reward-free block"
        if self.augmentation and self.augmentation_status != "on":
            self.logger.log(f"CIP discovery round {self.discovery_rounds + 1}: augmentation {self.augmentation_status}")
        self.reward_coefficients = {"linear": linear, "magnitude": magnitude, "frequency": frequency}
        magnitude_a = magnitude[n_states:n_states + n_actions]
        if self.weight_source == "abs":  # scale-free: relative to the strongest action parent
            score = magnitude_a / max(float(magnitude_a.max()), 1e-12)
        else:
            score = linear[n_states:n_states + n_actions]
        weights = np.exp((score - score.max()) / self.weight_temperature)
        self.action_weights = th.as_tensor(n_actions * weights / weights.sum(), dtype=th.float32, device=self.device)
        self.discovery_rounds += 1
        self._log_discovery(time.perf_counter() - started, state_frequency, frequency[n_states:n_states + n_actions])

    def _log_discovery(self, seconds: float, state_frequency: np.ndarray, action_frequency: np.ndarray) -> None:
        """The round's masks, selection frequencies, weights and augmentation state (``cip/...``)."""
        record = self.logger.record
        record("causal/discovery_rounds", self.discovery_rounds)
        record("causal/discovery_seconds", seconds)
        record("causal/reward_state_parents", int(self.reward_state_mask.sum()))
        record("causal/reward_action_parents", int(self.reward_action_mask.sum()))
        record("cip/discovery_round", self.discovery_rounds)
        for index, (parent, share) in enumerate(zip(self.reward_state_mask, state_frequency)):
            record(f"cip/state_parent/s{index}", int(parent))
            record(f"cip/state_parent_frequency/s{index}", float(share))
        for index, (parent, share, weight) in enumerate(zip(self.reward_action_mask, action_frequency,
                                                            self.action_weights.tolist())):
            record(f"cip/action_parent/a{index}", int(parent))
            record(f"cip/action_parent_frequency/a{index}", float(share))
            record(f"cip/action_weight/a{index}", float(weight))
        record("cip/transition_edges", int(self.transition_state_mask.sum() + self.transition_action_mask.sum()))
        record("cip/augmentation_active", int(self.augmentation and bool(self.swap_blocks)))
        record("cip/swappable_states", int(sum(len(states) for states, _ in self.swap_blocks)))
        record("cip/swappable_actions", int(sum(len(actions) for _, actions in self.swap_blocks)))

    @th.no_grad()
    def _dormancy_reset(self) -> float:
        """b.5: f = clip(1 - beta, low, high) from the actor's gradient-dormant ratio beta, then
        theta <- f theta + (1 - f) theta_fresh for every Linear layer of the actor, critic, target
        critic and the two models (orthogonal fresh init, zero bias); optimiser states cleared.
        Returns f."""
        dormant = total = 0
        for layer in self.actor.modules():
            if isinstance(layer, nn.Linear) and layer.weight.grad is not None:
                row_norms = layer.weight.grad.norm(dim=1)
                dormant += int((row_norms < self.dormancy_threshold * row_norms.mean()).sum())
                total += row_norms.numel()
        factor = float(np.clip(1 - dormant / max(total, 1), *self.reset_factor_range))
        for module in (self.actor, self.critic, self.critic_target, self.inverse_model, self.forward_model):
            for layer in module.modules():
                if isinstance(layer, nn.Linear):
                    fresh = nn.init.orthogonal_(th.empty_like(layer.weight))
                    layer.weight.mul_(factor).add_((1 - factor) * fresh)
                    if layer.bias is not None:
                        layer.bias.mul_(factor)
        for optimizer in (self.actor.optimizer, self.critic.optimizer, self.model_optimizer):
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


class DelayedSAC(CIP):
    """SAC with CIP's update schedule: CIP with every causal part off (no discovery, w_a = 1, no
    augmentation, no empowerment, no reset), so actor and temperature step on every
    ``policy_delay``-th (default 2nd) critic update, as in CIP and ACE. The like-for-like
    baseline of docs/cip.md (d); SB3's ``SAC`` updates its actor every step.
    """

    def __init__(self, policy, env, **kwargs):
        for name in ("causal_weights", "augmentation", "empowerment", "dormancy_reset"):
            kwargs.setdefault(name, False)
        kwargs.setdefault("discovery", None)
        super().__init__(policy, env, **kwargs)


class CIPNoEmpowerment(CIP):
    """CIP without the empowerment term: causal weights, counterfactual augmentation and reset
    (the "+ augmentation" row of the ablation in docs/cip.md (d))."""

    def __init__(self, policy, env, empowerment: bool = False, **kwargs):
        super().__init__(policy, env, empowerment=empowerment, **kwargs)
