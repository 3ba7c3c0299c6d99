"""causalrl: causal reinforcement learning and causal bandits.

One import namespace, in layers (imports point down only; docs/architecture.md):

- ``causalrl.core``: the numpy kernel (graphs, linear SEMs, statistics, mutual information,
  structure types and metrics, shared protocols, registries);
- ``causalrl.envs`` and ``causalrl.agents``: worlds with known causal structure and the
  learners; they use the kernel and never each other;
- ``causalrl.experiment``: rooms for configs, runs, batches (sweeps, tuning, benchmark suites)
  and analysis (reports, leaderboards), plus figures;
- ``causalrl.api``: the Python API (one function per command);
- ``causalrl.cli``: the ``causalrl`` command, a thin shell over the API.

The Python API mirrors the commands: ``causalrl.run``, ``causalrl.sweep``, ``causalrl.tune``,
``causalrl.report`` and ``causalrl.graph`` (``causalrl.api``). They are imported on
first use, so ``import causalrl`` stays light (no torch).
"""

__version__ = "0.2.0"

_API = ("run", "sweep", "tune", "report", "graph", "configs", "Result", "Results")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module("causalrl.api"), name)
    raise AttributeError(f"module 'causalrl' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
