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
``causalrl.bench``, ``causalrl.report``, ``causalrl.evaluate`` and ``causalrl.graph``
(``causalrl.api``). They are imported on
first use, so ``import causalrl`` stays light (no torch).
"""

import os as _os

__version__ = "0.2.0"


def _check_subpackages() -> None:
    """``causalrl/envs`` and ``causalrl/agents`` are links to the top-level folders in a checkout
    (real folders in a wheel). A checkout made without symbolic links holds 7-byte text files
    there; say so at once rather than fail later, or silently import another install's copy."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    for name in ("envs", "agents"):
        path = _os.path.join(here, name)
        if _os.path.isdir(path):  # follows the link
            continue
        if _os.path.isfile(path):
            raise ImportError(
                f"{path} is a plain file, not a link to ../{name}: this checkout was made without symbolic "
                f"links (git core.symlinks=false, Windows' default); clone again with "
                f"`git -c core.symlinks=true clone ...` (on Windows enable Developer Mode) or install the wheel"
            )
        raise ImportError(f"{path} is missing (a link to ../{name} in a checkout, a folder in a wheel); "
                          f"check out or install causalrl again")


_check_subpackages()

_API = ("run", "sweep", "tune", "bench", "report", "evaluate", "graph", "configs", "Result", "Results", "BenchOutcome")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module("causalrl.api"), name)
    raise AttributeError(f"module 'causalrl' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
