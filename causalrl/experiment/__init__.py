"""Orchestration: configs, the runner and its run directories, checkpoints, evaluation, sweeps
(local or Ray), tuning (Optuna), reports and plots, and plugin loading. It builds worlds and
learners through the registries and is the only layer that loads them (docs/architecture.md)."""
