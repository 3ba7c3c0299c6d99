"""causalrl: causal reinforcement learning and causal bandits.

The kernel (this package) holds graphs, SEMs, statistics, metrics, configs, registries and the
runner; worlds live in the ``envs`` package and learners in ``agents``, both of which register
themselves when imported.
"""

__version__ = "0.1.0"
