"""ACE's gradient-dormancy-guided shrink-and-perturb, which CIP keeps (docs/cip.md b.5; Ji et al.,
ICML 2024, arXiv:2402.14528)."""

from __future__ import annotations

import numpy as np
import torch as th
from torch import nn

from causalrl.agents.ensemble import EnsembleLinear

__all__ = ["dormancy_reset", "dormant_ratio"]


def dormant_ratio(module: nn.Module, threshold: float) -> float:
    """beta: the share of neurons of ``module``'s Linear layers whose weight-gradient row norm is
    below ``threshold`` times their layer's mean (layers without a gradient are skipped)."""
    dormant = total = 0
    for layer in module.modules():
        if isinstance(layer, nn.Linear) and layer.weight.grad is not None:
            row_norms = layer.weight.grad.norm(dim=1)
            dormant += int((row_norms < threshold * row_norms.mean()).sum())
            total += row_norms.numel()
    return dormant / max(total, 1)


@th.no_grad()
def dormancy_reset(actor: nn.Module, modules: list[nn.Module], optimizers: list, threshold: float,
                   factor_range: tuple[float, float]) -> float:
    """b.5: f = clip(1 - beta, low, high) from the ``actor``'s gradient-dormant ratio beta, then
    theta <- f theta + (1 - f) theta_fresh for every Linear layer of ``modules``, each member of
    an ensemble layer as its own Linear (orthogonal fresh init, zero bias); the ``optimizers``'
    states are cleared. Returns f."""
    factor = float(np.clip(1 - dormant_ratio(actor, threshold), *factor_range))
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, EnsembleLinear)):
                layer.weight.mul_(factor).add_((1 - factor) * _orthogonal_like(layer))
                if layer.bias is not None:
                    layer.bias.mul_(factor)
    for optimizer in optimizers:
        optimizer.state.clear()
    return factor


def _orthogonal_like(layer: nn.Linear | EnsembleLinear) -> th.Tensor:
    """A fresh orthogonal weight in ``layer``'s layout: (out, in) for a Linear; one (out, in)
    draw per member, transposed to (in, out), for an ensemble layer."""
    if isinstance(layer, nn.Linear):
        return nn.init.orthogonal_(th.empty_like(layer.weight))
    return th.stack([nn.init.orthogonal_(th.empty(layer.out_features, layer.in_features)).T
                     for _ in range(layer.n_members)]).to(layer.weight.device)
