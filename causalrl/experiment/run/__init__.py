"""The run room: one run from a validated config (the runner), its run directory and
locks, the metrics and checkpoint callbacks, resume, evaluation of the policy alone, intervention
envs built from a config, and tracking (TensorBoard, Weights & Biases). It reads configs and
draws figures; it knows nothing of sweeps or reports. Import from the modules, e.g.
``from causalrl.experiment.run.runner import run`` (the room does not import torch on its own)."""
