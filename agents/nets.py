"""Small torch pieces that several learners share: an MLP body, the diagonal-Gaussian (and
tanh-squashed) log-density, and reading demonstration data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch as th
from torch import nn

__all__ = ["mlp", "gaussian_log_prob", "squashed_gaussian_log_prob", "squashed_gaussian_sample", "temperature_step",
           "load_demonstrations", "SQUASH_EPS"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
#: SB3's SquashedDiagGaussianDistribution epsilon in log(1 - tanh(u)^2 + eps)
SQUASH_EPS = 1e-6
DEMONSTRATION_KEYS = ("observations", "actions", "next_observations")


def mlp(in_features: int, net_arch, activation_fn: type[nn.Module] = nn.ReLU,
        layer_norm: bool = False) -> tuple[nn.Sequential, int]:
    """Hidden layers Linear (-> LayerNorm) -> activation for each width of ``net_arch``, and the
    width of the last one (``in_features`` when ``net_arch`` is empty)."""
    layers, width = [], int(in_features)
    for hidden in net_arch:
        layers += [nn.Linear(width, hidden), *([nn.LayerNorm(hidden)] if layer_norm else []), activation_fn()]
        width = hidden
    return nn.Sequential(*layers), width


def gaussian_log_prob(values: th.Tensor, mean: th.Tensor, log_std: th.Tensor) -> th.Tensor:
    """Per-dimension log N(values; mean, exp(log_std)^2)."""
    return -0.5 * ((values - mean) / log_std.exp()) ** 2 - log_std - _HALF_LOG_2PI


def squashed_gaussian_log_prob(pre_tanh: th.Tensor, mean: th.Tensor, log_std: th.Tensor) -> th.Tensor:
    """Per-dimension log-density of ``tanh(pre_tanh)`` when ``pre_tanh ~ N(mean, exp(log_std)^2)``
    (the change of variables SB3's SAC uses)."""
    return gaussian_log_prob(pre_tanh, mean, log_std) - th.log(1 - th.tanh(pre_tanh) ** 2 + SQUASH_EPS)


def squashed_gaussian_sample(mean: th.Tensor, log_std: th.Tensor,
                             log_probs: bool = True) -> tuple[th.Tensor, th.Tensor | None]:
    """a = tanh(mean + std eps), eps ~ N(0, I) (reparameterised), and, unless ``log_probs`` is
    False, its per-dimension log-density as :func:`squashed_gaussian_log_prob` gives it, written
    with (pre_tanh - mean) / std = eps: the same function of (mean, log_std, eps), equal up to
    float rounding, in fewer operations forward and backward."""
    noise = th.randn_like(mean)
    actions = th.tanh(mean + log_std.exp() * noise)
    if not log_probs:
        return actions, None
    return actions, -0.5 * noise.square() - log_std - _HALF_LOG_2PI - th.log(1 - actions.square() + SQUASH_EPS)


def temperature_step(log_alpha: th.Tensor, optimizer: th.optim.Optimizer, log_probs: th.Tensor,
                     target_entropy: float) -> None:
    """One ``optimizer`` step on SAC's temperature loss -log alpha (log pi + target entropy),
    averaged over the batch of (detached) ``log_probs``: its gradient in log alpha,
    -mean(log pi + target entropy), is set directly, the same step without building and running a
    backward pass."""
    log_alpha.grad = -(log_probs + target_entropy).mean().reshape(log_alpha.shape)
    optimizer.step()


def load_demonstrations(source: dict | str | Path, field: str = "demonstrations") -> dict:
    """Demonstration arrays from a mapping or an ``.npz`` file (read without pickles): at least
    ``observations``, ``actions`` and ``next_observations`` of equal length; optional
    ``terminated`` and ``truncated``."""
    if isinstance(source, (str, Path)):
        try:
            with np.load(source, allow_pickle=False) as archive:
                source = dict(archive)
        except (OSError, ValueError) as error:
            raise ValueError(f"{field}: cannot read {str(source)!r} as an .npz of arrays ({error})") from None
    missing = [key for key in DEMONSTRATION_KEYS if key not in source]
    if missing:
        raise ValueError(f"{field}: missing {', '.join(missing)}; give arrays {', '.join(DEMONSTRATION_KEYS)}")
    lengths = {key: len(source[key]) for key in DEMONSTRATION_KEYS}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{field}: arrays of different lengths {lengths}; give one row per transition")
    return dict(source)
