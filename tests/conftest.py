import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary working directory (run outputs land under it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

from causalrl.experiment.config.plugins import load_plugins  # noqa: E402

load_plugins()  # register the causalrl/ envs and the agents, as the runner does
