"""Learners, imported as ``causalrl.agents``. Importing this package registers their names in
``causalrl.core.registry.AGENTS`` (lower-case with dashes, e.g. ``ucb``, ``linsem-ts-oracle``);
each module is imported only when its agent is first used, so naming or listing agents does not
load torch. ``from causalrl.agents import CIP`` works as usual.
"""

from __future__ import annotations

import importlib

from causalrl.core.registry import AGENTS

if __name__ != "causalrl.agents":  # one identity per module (docs/architecture.md, "Where things live")
    raise ImportError(f"{__name__!r} is the folder of causalrl.agents: import causalrl.agents instead (a second import "
                      "name would give every class and registration a second copy; docs/architecture.md)")

#: registry name -> (module:Class, one-line summary); the summaries are what `causalrl list` prints
BUILTIN_AGENTS = {
    # causal bandits (docs/csl-ucb.md, docs/bandits.md)
    "ucb": ("causalrl.agents.ucb:UCB", "UCB over all 2^N interventions, blind to the graph (Auer et al. 2002)."),
    "linsem-ts-oracle": ("causalrl.agents.linsem:LinSEMTS",
                         "ORACLE: LinSEM-TS, Thompson sampling on the true graph (Varici et al. 2023, arXiv:2208.12764)."),
    "linsem-ucb-oracle": ("causalrl.agents.linsem:LinSEMUCB",
                          "ORACLE: LinSEM-UCB, optimism on the true graph (Varici et al. 2023, arXiv:2208.12764)."),
    "etc-dagma": ("causalrl.agents.explore_commit:ExploreThenCommit",
                  "Explore-then-commit: random rounds, DAGMA structure learning, then greedy on the fitted SEM."),
    "csl-ucb": ("causalrl.agents.csl_ucb:CSLUCB",
                "CSL-UCB: causal sub-graph learning with asymmetric error control plus UCB (stationary, as published)."),
    "csl-ucb-no-detection": ("causalrl.agents.csl_ucb:CSLUCBNoDetection",
                             "CSL-UCB without change detection (ablation for piecewise-stationary worlds)."),
    "csl-ucb-graph-detection": ("causalrl.agents.csl_ucb:CSLUCBGraphDetection",
                                "CSL-UCB with a whole-graph change detector and full restarts (ablation)."),
    # causal information prioritisation (docs/cip.md)
    "sac": ("stable_baselines3:SAC", "Soft Actor-Critic (Stable-Baselines3), the plain baseline."),
    "cip": ("causalrl.agents.cip:CIP",
            "CIP: SAC with causal information prioritisation (Cao et al. 2025, arXiv:2502.10097)."),
    "ace": ("causalrl.agents.cip:ACE",
            "ACE: SAC with causality-aware weighted entropy and dormancy reset (Ji et al. 2024, arXiv:2402.14528)."),
    "sac-delayed": ("causalrl.agents.cip:DelayedSAC",
                    "SAC with CIP's schedule (actor and temperature every 2nd update): CIP's like-for-like baseline."),
    "cip-no-empowerment": ("causalrl.agents.cip:CIPNoEmpowerment",
                           "CIP ablation: causal weights and counterfactual augmentation, no empowerment term."),
    # RLIF and interactive imitation baselines (docs/rlif.md)
    "rlif": ("causalrl.agents.rlif:RLIF",
             "RLIF: off-policy RL whose reward is the expert's decision to intervene (Luo et al. 2024, arXiv:2311.12996)."),
    "dagger": ("causalrl.agents.dagger:DAgger", "DAgger: behaviour cloning on expert labels of visited states (Ross et al. 2011)."),
    "hg-dagger": ("causalrl.agents.dagger:HGDAgger",
                  "HG-DAgger: behaviour cloning on the expert's takeovers (Kelly et al. 2019, arXiv:1810.02890)."),
}
for _name, (_path, _summary) in BUILTIN_AGENTS.items():
    AGENTS.register(_name, _path, _summary)

_EXPORTS = {
    "BanditAgent": "causalrl.agents.base", "UCB": "causalrl.agents.ucb", "LinSEMTS": "causalrl.agents.linsem",
    "LinSEMUCB": "causalrl.agents.linsem", "CSLUCB": "causalrl.agents.csl_ucb",
    "CSLUCBNoDetection": "causalrl.agents.csl_ucb", "CSLUCBGraphDetection": "causalrl.agents.csl_ucb",
    "ExploreThenCommit": "causalrl.agents.explore_commit", "CIP": "causalrl.agents.cip", "ACE": "causalrl.agents.cip",
    "DelayedSAC": "causalrl.agents.cip", "CIPNoEmpowerment": "causalrl.agents.cip",
    "RLIF": "causalrl.agents.rlif", "DAgger": "causalrl.agents.dagger", "HGDAgger": "causalrl.agents.dagger",
    "EnsembleMLP": "causalrl.agents.ensemble", "EnsembleCritic": "causalrl.agents.ensemble",
    "EnsembleSACPolicy": "causalrl.agents.ensemble",
    "BatchedSAC": "causalrl.agents.batched_sac",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'causalrl.agents' has no attribute {name!r}")
