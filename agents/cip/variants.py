"""CIP's ablations and baselines (docs/cip.md (c)): ACE (causally weighted entropy and reset
only), CIP without empowerment, and SAC with CIP's delayed actor schedule.

Spec: docs/cip.md (c); ACE: Ji et al., ICML 2024, arXiv:2402.14528.
"""

from __future__ import annotations

from causalrl.agents.cip.agent import CIP

__all__ = ["ACE", "CIPNoEmpowerment", "DelayedSAC"]


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
