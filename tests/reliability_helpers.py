"""Helpers the reliability and fuzz suites share: the command line run in-process, and a run
stopped part-way as a kill would leave it."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from causalrl.cli import main
from causalrl.experiment.run.checkpoints import CheckpointCallback
from causalrl.experiment.run.runner import run


def cli(argv: list[str], cwd: Path | None = None, guard=None) -> tuple[int, str]:
    """``causalrl ARGV`` in this process (from ``cwd`` when given, inside the context manager
    ``guard`` when given, e.g. a deadline): its exit code and what it wrote to stderr."""
    err, out = io.StringIO(), io.StringIO()
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), guard or contextlib.nullcontext():
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code
    finally:
        os.chdir(here)
    return code, err.getvalue()


def stopped_run(config, run_dir: Path, checkpoints: int = 1) -> Path:
    """Run ``config`` into ``run_dir`` and stop it (a KeyboardInterrupt, as a kill would leave it)
    right after its ``checkpoints``-th checkpoint; 0: at step 15, before any checkpoint."""
    original = CheckpointCallback._on_rollout_start
    written = []

    def stop(self):
        before = self.last_checkpoint
        if checkpoints == 0 and self.model.num_timesteps >= 15:
            raise KeyboardInterrupt
        original(self)
        if self.last_checkpoint is not None and self.last_checkpoint != before:
            written.append(self.last_checkpoint)
            if len(written) == checkpoints:
                raise KeyboardInterrupt

    CheckpointCallback._on_rollout_start = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            run(config, run_dir=run_dir)
    finally:
        CheckpointCallback._on_rollout_start = original
    return Path(run_dir)
