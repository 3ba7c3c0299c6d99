"""Protocols that worlds and learners share without importing each other (docs/architecture.md).

``Expert`` (docs/rlif.md (a), (c)): a policy that can take over control and judge the learner.
Implementations live in ``envs/experts.py`` (analytic LQR experts, trained SB3 policies);
intervention wrappers and the imitation learners (``agents/``) only rely on this surface.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Expert"]


@runtime_checkable
class Expert(Protocol):
    """An acting and judging expert for one env's observation and action spaces.

    ``act(observation)``: the expert's (possibly stochastic) action for one observation, in the
    env's action space; this is pi_exp, the policy that drives while it has taken over.

    ``q_value(observation, action)``: Q^{pi_ref}(s, a) of the reference (judging) policy, a
    float for one observation and action, or an array of shape (batch,) for a batch. Higher is
    better. Intervention wrappers compare it between the learner's action and a reference
    action (docs/rlif.md (c)).

    Optional, not part of the runtime check: ``reference_action(observation, deterministic=True)``
    (pi_ref's own action: its mode, or a sample with ``deterministic=False``, which the value test
    uses by default as the reference code does; wrappers fall back to ``act``) and ``seed(seed)`` (reseeds the expert's random
    stream; wrappers call it from ``reset(seed=...)`` so episodes are reproducible).
    """

    def act(self, observation) -> np.ndarray: ...

    def q_value(self, observation, action) -> float | np.ndarray: ...
