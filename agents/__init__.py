"""Learners. Importing this package registers them in ``causalrl.registry.AGENTS``
(names are lower-case with dashes, e.g. ``ucb``, ``linsem-ts-oracle``)."""

from stable_baselines3 import SAC

from agents.base import BanditAgent
from agents.cip import ACE, CIP
from agents.csl_ucb import CSLUCB, CSLUCBGraphDetection, CSLUCBNoDetection
from agents.dagger import DAgger, HGDAgger
from agents.explore_commit import ExploreThenCommit
from agents.linsem import LinSEMTS, LinSEMUCB
from agents.rlif import RLIF
from agents.ucb import UCB
from causalrl.registry import AGENTS

__all__ = ["BanditAgent", "UCB", "LinSEMTS", "LinSEMUCB", "CSLUCB", "CSLUCBNoDetection", "CSLUCBGraphDetection",
           "ExploreThenCommit", "CIP", "ACE", "RLIF", "DAgger", "HGDAgger"]

# causal bandits (csl-ucb.md)
AGENTS.register("ucb", UCB)
AGENTS.register("linsem-ts-oracle", LinSEMTS)
AGENTS.register("linsem-ucb-oracle", LinSEMUCB)
AGENTS.register("etc-dagma", ExploreThenCommit)
AGENTS.register("csl-ucb", CSLUCB)
AGENTS.register("csl-ucb-no-detection", CSLUCBNoDetection)
AGENTS.register("csl-ucb-graph-detection", CSLUCBGraphDetection)
# causal information prioritisation (cip.md)
AGENTS.register("sac", SAC, "Soft Actor-Critic (Stable-Baselines3), the plain baseline")
AGENTS.register("cip", CIP)
AGENTS.register("ace", ACE)
# RLIF and interactive imitation baselines (rlif.md)
AGENTS.register("rlif", RLIF)
AGENTS.register("dagger", DAgger)
AGENTS.register("hg-dagger", HGDAgger)
