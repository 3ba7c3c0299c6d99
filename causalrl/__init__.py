"""causalrl: causal reinforcement learning and causal bandits.

One import namespace, in layers (imports point down only; docs/architecture.md):

- ``causalrl.core``: the numpy kernel (graphs, linear SEMs, statistics, mutual information,
  structure types and metrics, shared protocols, registries);
- ``causalrl.envs`` and ``causalrl.agents``: worlds with known causal structure and the
  learners; they use the kernel and never each other;
- ``causalrl.experiment``: configs, the runner, sweeps, tuning, reports and plots;
- ``causalrl.cli``: the ``causalrl`` command.
"""

__version__ = "0.2.0"
