"""CIP's causality-aware empowerment (docs/cip.md b.3): the inverse-dynamics model q(a | s, s'),
the forward model f(s, a) -> s', their training step, the term E_c, and how its gradient is
combined with the SAC loss's at the actor's outputs.

Spec: docs/cip.md (b.3), Cao et al., ICLR 2025, arXiv:2502.10097.
"""

from __future__ import annotations

import math

import torch as th
from torch import nn
from torch.nn import functional as F

from causalrl.agents.nets import gaussian_log_prob, mlp

__all__ = [
    "LOG_STD_MAX", "ForwardModel", "InverseDynamics", "combine_actor_gradients", "empowerment_estimate", "model_losses",
]

LOG_STD_MAX = 2.0


class InverseDynamics(nn.Module):
    """q_psi(a | s, s'): a diagonal Gaussian over the (scaled, [-1, 1]) action, from an MLP on
    [s, s'] (docs/cip.md b.3). Unsquashed, so the likelihood of a replayed action needs no
    atanh. Its standard deviation is floored at ``min_std`` (b.3: the floor bounds the
    precision, hence the size of the empowerment gradient).

    :param n_states: observation dimensions.
    :param n_actions: action dimensions.
    :param net_arch: hidden widths. Default (256, 256).
    :param min_std: floor of the standard deviation. Default 0.05.
    """

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
    transitions (docs/cip.md b.3 (ii): the s'_model the empowerment term conditions q on).

    :param n_states: observation dimensions.
    :param n_actions: action dimensions.
    :param net_arch: hidden widths. Default (256, 256).
    """

    def __init__(self, n_states: int, n_actions: int, net_arch: tuple[int, ...] = (256, 256)):
        super().__init__()
        body, width = mlp(n_states + n_actions, net_arch)
        self.net = nn.Sequential(body, nn.Linear(width, n_states))

    def forward(self, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        observations = observations.float()
        return observations + self.net(th.cat([observations, actions.float()], dim=1))


def model_losses(inverse_model: InverseDynamics, forward_model: ForwardModel, real, policy_actions: th.Tensor | None,
                 policy_share: float = 1.0) -> tuple[th.Tensor, th.Tensor]:
    """b.3 (i): the inverse model's negative log-likelihood and the forward model's squared error
    on a batch of real transitions ``real`` (never counterfactual rows).

    q's loss is (1 - rho) NLL on the replayed (s, a, s') + rho NLL on (s, a~, f(s, a~)), with
    a~ = ``policy_actions``, the current policy's actions in the same states (detached, as is
    f(s, a~), so that part trains q only), and rho = ``policy_share``. The second set is where
    the empowerment term evaluates q (b.3 (ii)): fitted there, q inverts the forward model where
    the policy acts, and where the action cannot be read off f(s, a~) its mean leans toward the
    policy's own actions, not toward the replayed ones; the pull toward the buffer's actions
    vanishes as q fits (docs/cip.md (f) 6). rho = 0 (or ``policy_actions=None``) is the
    replay-only fit, whose q leans toward the buffer's action distribution."""
    share = 0.0 if policy_actions is None else float(policy_share)
    parts = []  # weighted NLLs (a weight of 1 multiplies nothing)
    if share < 1.0:
        replayed = -inverse_model.log_prob(real.observations, real.next_observations, real.actions).sum(1).mean()
        parts.append(replayed if share == 0.0 else (1.0 - share) * replayed)
    if share > 0.0:
        with th.no_grad():
            model_next = forward_model(real.observations, policy_actions)
        policy = -inverse_model.log_prob(real.observations, model_next, policy_actions.detach()).sum(1).mean()
        parts.append(policy if share == 1.0 else share * policy)
    inverse_loss = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    forward_loss = F.mse_loss(forward_model(real.observations, real.actions), real.next_observations.float())
    return inverse_loss, forward_loss


def empowerment_estimate(inverse_model: InverseDynamics, forward_model: ForwardModel, observations: th.Tensor,
                actions_pi: th.Tensor, log_probs: th.Tensor, weights: th.Tensor) -> th.Tensor:
    """E_c = H_w[pi(.|s)] - H_w[q(.|s, s')] with s' = f(s, a~), estimated as
    mean[-sum_i w_i l_i(a~|s) + sum_i w_i log q_i(a~ | s, f(s, a~))], a~ ~ pi (b.3 (ii)).

    The next state is the one the policy's own action would produce, and q is fitted on such
    rows too (:func:`model_losses`), so raising the term makes a~ recoverable from its effect
    rather than pulling it toward the replayed actions. Gradients reach the actor through a~
    (also inside f) and l; :func:`combine_actor_gradients` takes them at the actor's outputs
    only, so the term never trains the models (their own steps do)."""
    predicted_next = forward_model(observations, actions_pi)
    inverse_log_probs = inverse_model.log_prob(observations, predicted_next, actions_pi)
    return ((inverse_log_probs - log_probs) @ weights).mean()


def combine_actor_gradients(sac_loss: th.Tensor, empowerment_term: th.Tensor, heads: list[th.Tensor],
                            outputs: list[th.Tensor], coef: float, max_grad_ratio: float) -> tuple[float, float]:
    """Set the actor's gradients to those of SAC loss - c E_c, with
    c = min(lambda_E, kappa |g_SAC| / |g_E|) (``coef`` = lambda_E, ``max_grad_ratio`` = kappa),
    where g is a loss's gradient at the actor's outputs (the mean and log std of every row): both
    losses reach the actor's parameters only through them, so one backward pass of the combined
    output gradient through the actor does the rest (b.3: the term never moves the actor's
    outputs more than kappa times the SAC loss does). ``heads`` are the detached outputs the
    losses were built on, ``outputs`` the same tensors with the actor's graph.
    Returns (c, c |g_E| / |g_SAC|)."""
    sac_grads = th.autograd.grad(sac_loss, heads, retain_graph=True)
    emp_grads = th.autograd.grad(empowerment_term, heads)
    # the norm of all outputs' gradients together, from each output's norm
    sac_norm, emp_norm = (math.hypot(*(float(th.linalg.vector_norm(g)) for g in grads)) for grads in (sac_grads, emp_grads))
    coefficient = coef
    if emp_norm > 0 and coefficient * emp_norm > max_grad_ratio * sac_norm:
        coefficient = max_grad_ratio * sac_norm / emp_norm
    th.autograd.backward(outputs, [th.add(g, e, alpha=-coefficient) for g, e in zip(sac_grads, emp_grads)])
    return coefficient, coefficient * emp_norm / max(sac_norm, 1e-12)
