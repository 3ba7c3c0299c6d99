"""CIP: causal information prioritisation on SAC; ACE (causally weighted entropy only); and a
SAC with CIP's delayed actor schedule as the like-for-like baseline.

Spec: docs/cip.md (Cao et al., ICLR 2025, arXiv:2502.10097; ACE: Ji et al., ICML 2024,
arXiv:2402.14528). This is the algorithm the paper intends, not the public release, which is
inert in three places (docs/cip.md (f) 1, 2, 6); here each part acts, and each has a
constructor switch:

- ``causal_weights`` (``discovery.py``, b.1): w_a = d_A softmax(score_a) from the action ->
  reward coefficients of a fit of r on (s_t, a_t), the paper's model, so an action's effect
  through the next state counts; used in the critic target, the actor loss and the temperature
  loss (b.4, as ACE).
- ``augmentation`` (``augmentation.py``, b.2): counterfactual transitions that swap a *closed,
  reward-free block* (state dimensions with the actions that drive them, in s, a and s')
  between two real transitions, mixed into the critic's and actor's minibatches. The reward
  parents that guard it come from a second fit, of r on (s_t, a_t, s_{t+1}); (near-)constant
  dimensions are never swapped. With no such block nothing is augmented, and the reason is
  printed and logged.
- ``empowerment`` (``empowerment.py``, b.3): an inverse-dynamics model q(a | s, s') and a
  forward model f(s, a) -> s', trained on real rows, q also on the current policy's actions
  under f; after a warm-up the actor ascends
  E_c = H_w[pi(.|s)] + E_{a~pi} sum_i w_i log q_i(a | s, f(s, a)), its gradient at the actor's
  outputs capped at a stated share of the SAC loss's gradient there.
- ``dormancy_reset`` (``reset.py``, b.5): gradient-dormancy-guided shrink-and-perturb.

``agent.py`` holds CIP, ``variants.py`` ACE and the ablations; ``CIP.train`` reads like the
pseudocode of docs/cip.md (b.6).
Each discovery round is recorded in ``CIP.discovery_log`` (``records.py``). Every choice where
the spec leaves room, and every departure from the paper and the release, is listed in
docs/cip.md (f).
"""

from causalrl.agents.cip.agent import CIP, REFERENCE_INITIAL_ALPHA
from causalrl.agents.cip.discovery import DISCOVERY_METHODS
from causalrl.agents.cip.empowerment import ForwardModel, InverseDynamics
from causalrl.agents.cip.variants import ACE, CIPNoEmpowerment, DelayedSAC

__all__ = [
           "ACE",
           "CIP",
           "DISCOVERY_METHODS",
           "REFERENCE_INITIAL_ALPHA",
           "CIPNoEmpowerment",
           "DelayedSAC",
           "ForwardModel",
           "InverseDynamics",
]
