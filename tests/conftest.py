import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (bitwise comparisons of batched and separate networks), then
    the thread count the session had."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary working directory (run outputs land under it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

from causalrl.experiment.config.plugins import load_plugins  # noqa: E402

load_plugins()  # register the causalrl/ envs and the agents, as the runner does
