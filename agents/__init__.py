"""Learners. Importing this package registers them in ``causalrl.registry.AGENTS``
(names are lower-case with dashes, e.g. ``ucb``, ``linsem-ts-oracle``)."""

from causalrl.registry import AGENTS

from agents.base import BanditAgent
from agents.csl_ucb import CSLUCB, CSLUCBGraphDetection, CSLUCBNoDetection
from agents.linsem import LinSEMTS, LinSEMUCB
from agents.ucb import UCB

AGENTS.register("ucb", UCB)
AGENTS.register("linsem-ts-oracle", LinSEMTS)
AGENTS.register("linsem-ucb-oracle", LinSEMUCB)
AGENTS.register("csl-ucb", CSLUCB)
AGENTS.register("csl-ucb-no-detection", CSLUCBNoDetection)
AGENTS.register("csl-ucb-graph-detection", CSLUCBGraphDetection)
