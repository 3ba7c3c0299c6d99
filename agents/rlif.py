"""RLIF: interactive imitation learning as reinforcement learning (docs/rlif.md).

Spec: docs/rlif.md (Luo, Dong, Zhai, Ma, Levine, ICLR 2024, arXiv:2311.12996;
reference code pd-perry/RLIF @ d177b9b). The learner never sees the task reward. Its only
reward is the expert's decision to intervene (docs/rlif.md (a)):

    r~(s_t, a_t) = -1  if the learner controlled step t and the expert took over at step t+1,
                    0  otherwise,

read from the intervention wrapper's per-step ``info`` (``intervened``,
``intervention_started``, ``executed_action``; ``envs/intervention.py``). Because the label of
a transition is known one step later, each transition waits one step before it enters the
replay buffer. What is stored (docs/rlif.md (b) "Data", (g) 1-3, intended behaviour):

- every learner transition, with the learner's action: -1 if a takeover follows, else 0;
- every expert-controlled transition, with the *executed* (expert) action and reward 0;
- terminal transitions (mask 0 on true termination, 1 on time-limit truncation); episodes
  are never cut at an intervention;
- optional initial demonstrations, with rewards zeroed (docs/rlif.md (g) 4).

``reproduce_reference_quirks=True`` mimics the reference code's storage instead: of each
expert block only the last transition is kept, and the final transition of every episode is
dropped ((g) 2 and 3).

An env without the intervention ``info`` keys is refused at its first step (RLIF would
otherwise learn from all-zero rewards). The replay buffer is not part of ``save()`` (as in SB3;
``save_replay_buffer`` / ``load_replay_buffer`` keep it): after ``RLIF.load(...)``,
``learn(..., reset_num_timesteps=False)`` refills it, and updates wait until it holds a
transition (the one-step labelling lag leaves it empty at the first step).

Judge diagnostics go to the SB3 logger, averaged over each logging interval
(``causalrl.agents.judge_log``): ``judge/window_takeover_rate``, ``judge/window_bad_rate`` (the
learner's flagged share), ``judge/window_null_bad_rate`` (the share the do-nothing action would
get), ``judge/window_q_gap_mean``, ``judge/delta`` and the judge check's rates.

The learner is RLPD-style SAC (docs/rlif.md (b) table): a tanh-Gaussian actor; an ensemble of
``n_critics`` Q networks with LayerNorm, held as one vectorised ``EnsembleCritic`` (docs/rlif.md
(b) "Ensemble"; models saved with separate critic networks are converted on load); a target
that is the minimum over a random subset of ``n_target_critics`` target critics, with no
entropy term; ``utd_ratio`` critic updates per env step, then one actor and one temperature
update on the last critic minibatch; the actor uses the *mean* over the ensemble.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from causalrl.agents.ensemble import (
    EnsembleCritic,
    EnsembleSACPolicy,
    frozen_parameters,
    fused_adam,
)
from causalrl.agents.judge_log import record_judge_step
from causalrl.agents.nets import (
    load_demonstrations,
    squashed_gaussian_sample,
    temperature_step,
)
from causalrl.core.checks import check_int

__all__ = ["RLIF", "EnsembleCritic", "LayerNormCritic", "RLIFPolicy"]


class LayerNormCritic(EnsembleCritic):
    """``EnsembleCritic`` with LayerNorm by default (RLPD's ``critic_layer_norm``); the name of
    RLIF's critic before the ensemble was vectorised.

    :param layer_norm: a LayerNorm after every hidden Linear. Default True.
    """

    def __init__(self, *args, layer_norm: bool = True, **kwargs):
        super().__init__(*args, layer_norm=layer_norm, **kwargs)


class RLIFPolicy(EnsembleSACPolicy):
    """SAC's policy with an RLPD critic: ``n_critics`` (default 10) LayerNorm Q networks held as
    one vectorised ``EnsembleCritic`` (one batched product per layer for all of them, docs/rlif.md
    (b) "Ensemble"), (256, 256, 256) hidden layers by default (docs/rlif.md (b) table), and
    torch's fused Adam (``EnsembleSACPolicy``).

    :param critic_layer_norm: a LayerNorm after every hidden Linear of the critics (RLPD's
        ``critic_layer_norm``). Default True.
    :param compile_critics: run the critic ensembles (online and target) through
        ``torch.compile`` (``EnsembleCritic``'s ``compile``). Default False.
    """

    def __init__(self, *args, critic_layer_norm: bool = True, compile_critics: bool = False, **kwargs):
        kwargs.setdefault("net_arch", [256, 256, 256])
        kwargs.setdefault("n_critics", 10)
        super().__init__(*args, critic_layer_norm=critic_layer_norm, compile_critics=compile_critics, **kwargs)


class RLIF(SAC):
    """RLIF on RLPD-style SAC (module docstring; docs/rlif.md (b)). Needs an env wrapped by
    ``causalrl.envs.intervention.InterventionWrapper`` (or a registered intervention world); one env.

    SB3 ``SAC`` arguments with RLIF's defaults:

    :param learning_rate: actor, critic and temperature learning rate. Default 3e-4.
    :param buffer_size: replay capacity. Default 1_000_000.
    :param learning_starts: env steps of uniform random actions before updates start. Default
        100 (the reference starts at once on its demonstrations; set 0 with demonstrations).
    :param batch_size: minibatch size of every critic update. Default 256.
    :param tau: Polyak coefficient, after every critic update. Default 0.005.
    :param gamma: discount. Default 0.99.
    :param ent_coef: temperature; ``"auto_1.0"`` (default) learns it from alpha_0 = 1.0.
    :param target_entropy: ``"auto"`` (default) = -|A| / 2 (RLPD), or a number.
    :param policy_kwargs: ``net_arch`` (default [256, 256, 256] for actor and critics),
        ``critic_layer_norm`` (default True) ...
    :param seed, verbose, device, tensorboard_log, stats_window_size: as SB3.

    RLIF's own:

    :param utd_ratio: critic updates per env step (update-to-data ratio). Default 1 (the
        code's default; the scripts use 5 for pen, 1 for Walker2d, 15 for Hopper).
    :param n_critics: Q networks in the ensemble. Default 10.
    :param n_target_critics: size of the random subset whose minimum forms the target.
        Default 2.
    :param compile_critics: run the critic ensemble through ``torch.compile``: the same
        algorithm, faster per update on the CPU once compiled (tens of seconds, at the first
        update; docs/batched.md "Speed"); a machine where compilation fails warns once and runs
        eagerly. Default False.
    :param backup_entropy: subtract alpha log pi(a'|s') in the target. Default False (RLPD).
    :param demonstrations: optional initial data put in the buffer before learning, rewards
        zeroed (docs/rlif.md (b) "Data"): a dict (or ``.npz`` path) with ``observations``,
        ``actions`` (in the env's action units), ``next_observations`` and optional
        ``terminated`` / ``truncated`` (e.g. ``causalrl.envs.experts.collect_demonstrations``); any
        ``rewards`` are ignored. Actions are clipped to +-0.999 of the scaled range. Not saved
        with the model. Default None.
    :param bootstrap_terminations: store an env's true termination as a time-limit end, so the
        target bootstraps from the terminal state's value instead of an absorbing 0 (docs/rlif.md
        (g) 3). RLIF's rewards are <= 0, so with an absorbing 0 ending the episode is the
        learner's best outcome: on InvertedPendulum-v5 the learner then learns to drop the pole.
        The reference code never stores final transitions, which also leaves no absorbing 0.
        Default True; False stores terminations as terminal (SB3's convention).
    :param reproduce_reference_quirks: store only the last transition of each expert block and
        drop each episode's final transition, as the reference code does ((g) 2-3). Default False.
    """

    policy_aliases = {"MlpPolicy": RLIFPolicy}

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
        ent_coef="auto_1.0",
        target_entropy="auto",
        utd_ratio: int = 1,
        n_critics: int = 10,
        n_target_critics: int = 2,
        compile_critics: bool = False,
        backup_entropy: bool = False,
        demonstrations: dict | str | None = None,
        bootstrap_terminations: bool = True,
        reproduce_reference_quirks: bool = False,
        replay_buffer_class=None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device="auto",
        _init_setup_model: bool = True,
    ):
        for name, value in [("utd_ratio", utd_ratio), ("n_critics", n_critics), ("n_target_critics", n_target_critics)]:
            check_int(value, name)
        if n_target_critics > n_critics:
            raise ValueError(f"n_target_critics: at most n_critics ({n_critics}), got {n_target_critics}")
        self.utd_ratio = int(utd_ratio)
        self.n_critics = int(n_critics)
        self.n_target_critics = int(n_target_critics)
        self.backup_entropy = bool(backup_entropy)
        self.demonstrations = demonstrations
        self.bootstrap_terminations = bool(bootstrap_terminations)
        self.reproduce_reference_quirks = bool(reproduce_reference_quirks)
        self._pending_transition: dict | None = None
        policy_kwargs = dict(policy_kwargs or {})
        policy_kwargs["n_critics"] = self.n_critics
        policy_kwargs["compile_critics"] = bool(compile_critics)
        super().__init__(
            policy, env, learning_rate=learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
            batch_size=batch_size, tau=tau, gamma=gamma, train_freq=1, gradient_steps=self.utd_ratio,
            replay_buffer_class=replay_buffer_class, replay_buffer_kwargs=replay_buffer_kwargs,
            ent_coef=ent_coef, target_update_interval=1, target_entropy=target_entropy, use_sde=False,
            stats_window_size=stats_window_size, tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs,
            verbose=verbose, seed=seed, device=device, _init_setup_model=False,
        )
        if self.env is not None:
            if self.n_envs != 1:
                raise ValueError(f"env: RLIF labels transitions of one env; got {self.n_envs} envs")
            if not (isinstance(self.observation_space, spaces.Box) and isinstance(self.action_space, spaces.Box)):
                raise ValueError("env: RLIF needs Box observation and action spaces")
            if target_entropy == "auto":  # RLPD: -|A| / 2
                self.target_entropy = -float(np.prod(self.action_space.shape)) / 2.0
        if _init_setup_model:
            self._setup_model()

    # --- model and data ------------------------------------------------------------------------
    def _setup_model(self) -> None:
        super()._setup_model()
        if self.ent_coef_optimizer is not None:  # the temperature's Adam fused too, as the policy's
            self.ent_coef_optimizer = fused_adam(self.ent_coef_optimizer)
        self._pending_transition = None
        if self.demonstrations is not None:
            self.add_demonstrations(self.demonstrations)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["demonstrations", "_pending_transition"]

    def set_parameters(self, load_path_or_dict, exact_match: bool = True, device="auto") -> None:
        """SB3's ``set_parameters``, which also reads models saved before the critic ensemble was
        vectorised (separate ``critic.qf{i}`` networks and their Adam state; docs/rlif.md (b)
        "Ensemble"): their weights and optimiser moments are stacked into the ensemble's layout.

        :param load_path_or_dict: a saved model (path or file) or SB3's nested parameter dict.
        :param exact_match: as SB3: every module and parameter must be given. Default True.
        :param device: device to load onto. Default "auto".
        """
        params = load_path_or_dict
        if not isinstance(params, dict):
            _, params, _ = load_from_zip_file(load_path_or_dict, device=device, load_data=False)
        super().set_parameters(_convert_legacy_critics(dict(params), self.policy), exact_match, device)

    def add_demonstrations(self, demonstrations: dict | str) -> int:
        """Put demonstration transitions into the replay buffer with reward 0 (docs/rlif.md (b)
        "Data"; (g) 4: rewards are never read). Returns the number added."""
        demonstrations = load_demonstrations(demonstrations)
        observations = np.asarray(demonstrations["observations"], dtype=np.float32)
        next_observations = np.asarray(demonstrations["next_observations"], dtype=np.float32)
        actions = np.clip(self.policy.scale_action(np.asarray(demonstrations["actions"], dtype=np.float32)), -0.999, 0.999)
        count = len(observations)
        terminated = np.asarray(demonstrations.get("terminated", np.zeros(count)), dtype=bool)
        truncated = np.asarray(demonstrations.get("truncated", np.zeros(count)), dtype=bool)
        for index in range(count):
            self.replay_buffer.add(observations[index][None], next_observations[index][None], actions[index][None],
                                   np.zeros(1, dtype=np.float32), np.array([terminated[index] or truncated[index]]),
                                   [{"TimeLimit.truncated": bool(truncated[index] and not terminated[index])}])
        return count

    def _setup_learn(self, total_timesteps, callback=None, reset_num_timesteps=True, tb_log_name="run",
                     progress_bar=False):
        if reset_num_timesteps and self._pending_transition is not None:
            self._add_transition(self._pending_transition, 0.0)  # the env restarts: no takeover follows
            self._pending_transition = None
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    def _add_transition(self, transition: dict, reward: float) -> None:
        self.replay_buffer.add(transition["observation"], transition["next_observation"], transition["action"],
                               np.array([reward], dtype=np.float32), transition["done"], transition["infos"])

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos) -> None:
        """Label and store with a one-step lag (module docstring). ``reward`` (the env's task
        reward) is never read."""
        info = infos[0]
        if "intervened" not in info or "intervention_started" not in info:
            raise ValueError("env: RLIF learns from takeovers but the env's info has no 'intervened' / "
                             "'intervention_started'; wrap it in causalrl.envs.intervention.InterventionWrapper")
        self._record_judge(info)
        executed = info.get("executed_action")
        if executed is not None:  # docs/rlif.md (b) 3: expert steps store the executed action
            buffer_action = np.clip(self.policy.scale_action(np.asarray(executed, dtype=np.float32)), -1.0, 1.0)
        next_observation = deepcopy(new_obs)
        if dones[0] and info.get("terminal_observation") is not None:
            next_observation[0] = info["terminal_observation"]
        transition = {
            "observation": deepcopy(self._last_obs),
            "next_observation": next_observation,
            "action": np.asarray(buffer_action, dtype=np.float32).reshape(1, -1),
            "done": np.asarray(dones).copy(),
            # (g) 3: a true termination is stored as a time-limit end unless bootstrap_terminations is off
            "infos": [{"TimeLimit.truncated": bool(info.get("TimeLimit.truncated", False)
                                                   or (dones[0] and self.bootstrap_terminations))}],
            "intervened": bool(info.get("intervened", False)),
        }
        pending = self._pending_transition
        if pending is not None:
            # docs/rlif.md (a): -1 on the learner transition right before a takeover, 0 otherwise
            takeover = bool(info.get("intervention_started", False)) and not pending["intervened"]
            drop = self.reproduce_reference_quirks and pending["intervened"] and transition["intervened"]
            if not drop:
                self._add_transition(pending, -1.0 if takeover else 0.0)
        if dones[0]:  # no step follows in this episode: reward 0 ((g) 3: stored unless quirks)
            if not self.reproduce_reference_quirks:
                self._add_transition(transition, 0.0)
            self._pending_transition = None
        else:
            self._pending_transition = transition
        self._last_obs = new_obs
        self._last_original_obs = new_obs

    def _record_judge(self, info: dict) -> None:
        """Judge diagnostics of this step (``causalrl.agents.judge_log``), averaged per logging interval."""
        if getattr(self, "_logger", None):
            record_judge_step(self.logger, info, self.env)

    # --- updates (docs/rlif.md (b) "Critic update", "Actor and temperature updates") ----------------
    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        if self.replay_buffer.size() == 0:  # after load(): the first transition is stored one step late
            return
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        if self.ent_coef_optimizer is not None:
            ent_coef = th.exp(self.log_ent_coef.detach())
        else:
            ent_coef = self.ent_coef_tensor
        critic_losses = []
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            with th.no_grad():
                # y = r~ + gamma m min_{k in K} Qbar_k(s', a'), a' ~ pi(.|s'), |K| = n_target_critics
                next_actions, next_log_prob = self._sample(batch.next_observations)
                subset = th.randperm(self.n_critics, device=self.device)[: self.n_target_critics]
                # only the subset's target critics are evaluated (the others would be discarded)
                next_q = self.critic_target.q_values(batch.next_observations, next_actions, subset)
                next_q = next_q.min(dim=1, keepdim=True)[0]
                if self.backup_entropy:
                    next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
                discounts = batch.discounts if batch.discounts is not None else self.gamma
                target_q = batch.rewards + (1 - batch.dones) * discounts * next_q
            # L_Q = mean over critics and batch of (Q_i(s, a) - y)^2
            current_q = self.critic.q_values(batch.observations, batch.actions)
            critic_loss = F.mse_loss(current_q, target_q.expand_as(current_q))
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            critic_losses.append(critic_loss.item())
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            self._n_updates += 1

        # L_pi = E[alpha log pi(a~|s) - mean_i Q_i(s, a~)] on the last critic minibatch
        actions_pi, log_prob = self._sample(batch.observations)
        log_prob = log_prob.reshape(-1, 1)
        with frozen_parameters(self.critic):  # the actor loss updates the actor only
            q_pi = self.critic.q_values(batch.observations, actions_pi).mean(dim=1, keepdim=True)
        actor_loss = (ent_coef * log_prob - q_pi).mean()
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()
        # L_alpha = alpha (H_batch - H_target), H_batch = -mean log pi (optimised in log alpha)
        if self.ent_coef_optimizer is not None:
            temperature_step(self.log_ent_coef, self.ent_coef_optimizer, log_prob.detach(), self.target_entropy)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(ent_coef))
        self.logger.record("train/actor_loss", actor_loss.item())
        self.logger.record("train/critic_loss", float(np.mean(critic_losses)))

    def _sample(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """a ~ pi(.|s) reparameterised and log pi(a|s) summed over the action dimensions: SB3's
        ``actor.action_log_prob``, in fewer operations (``squashed_gaussian_sample``)."""
        actions, log_probs = squashed_gaussian_sample(*self.actor.get_action_dist_params(observations)[:2])
        return actions, log_probs.sum(dim=1)


# --- models saved with separate critic networks (before the vectorised ensemble) -------------------
def _legacy_member_names(policy_state: dict, prefix: str) -> dict[str, list[str]] | None:
    """Map each ``q_ensemble`` parameter (relative name) to its per-member legacy names, or None
    when ``policy_state`` has no legacy critic under ``prefix``. A legacy member ``qf{e}`` is an
    ``nn.Sequential`` of Linear (2-D weight) and LayerNorm (1-D weight) layers in index order."""
    if f"{prefix}qf0.0.weight" not in policy_state:
        return None
    members = sorted({int(key[len(prefix) + 2:].split(".")[0]) for key in policy_state
                      if key.startswith(f"{prefix}qf")})
    linears, norms = [], []
    indices = sorted({int(key.split(".")[-2]) for key in policy_state if key.startswith(f"{prefix}qf0.")})
    for index in indices:
        (linears if policy_state[f"{prefix}qf0.{index}.weight"].dim() == 2 else norms).append(index)
    targets = [f"hidden.{i}" for i in range(len(linears) - 1)] + ["output"]
    names: dict[str, list[str]] = {}
    for target, index in [*zip(targets, linears), *((f"norms.{i}", index) for i, index in enumerate(norms))]:
        for field in ("weight", "bias"):
            names[f"{target}.{field}"] = [f"{prefix}qf{member}.{index}.{field}" for member in members]
    return names


def _stack_legacy(tensors: list[th.Tensor], shape: th.Size) -> th.Tensor:
    """Stack per-member legacy tensors (Linear weights (out, in), biases and norms (width,)) into
    the ensemble's (E, in, out) / (E, 1, width) layout."""
    return th.stack([t.T if t.dim() == 2 else t.unsqueeze(0) for t in tensors]).reshape(shape)


def _convert_legacy_critics(params: dict, policy: RLIFPolicy) -> dict:
    """Rewrite the critic entries of an SB3 parameter dict saved with separate critic networks
    (policy weights and ``critic.optimizer`` state) into the ``EnsembleCritic`` layout."""
    state = params.get("policy")
    critic_names = state is not None and _legacy_member_names(state, "critic.")
    if not critic_names:
        return params
    state = dict(state)
    legacy_order = [key for key in state if key.startswith("critic.qf")]  # the old optimiser's parameter order
    for module in ("critic", "critic_target"):
        names = _legacy_member_names(state, f"{module}.")
        current = getattr(policy, module).state_dict()
        for name, old_names in names.items():
            key = f"q_ensemble.{name}"
            state[f"{module}.{key}"] = _stack_legacy([state.pop(old) for old in old_names], current[key].shape)
    params["policy"] = state
    optimizer_state = params.get("critic.optimizer")
    if optimizer_state is not None and len(optimizer_state["param_groups"][0]["params"]) == len(legacy_order):
        position = {name: index for index, name in enumerate(legacy_order)}
        new_state = {}
        for index, (name, parameter) in enumerate(policy.critic.named_parameters()):
            olds = [optimizer_state["state"].get(position[old]) for old in critic_names[name[len("q_ensemble."):]]]
            if any(old is None for old in olds):
                continue  # no update yet: no moments
            new_state[index] = {field: olds[0][field] if field == "step" else
                                _stack_legacy([old[field] for old in olds], parameter.shape) for field in olds[0]}
        count = len(list(policy.critic.parameters()))
        groups = [{**optimizer_state["param_groups"][0], "params": list(range(count))}]
        params["critic.optimizer"] = {"state": new_state, "param_groups": groups}
    return params
