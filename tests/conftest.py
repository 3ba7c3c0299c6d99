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


# --- case tallies of the reliability suites ----------------------------------------------------
# A test module that sets TALLY_LABEL gets its cases counted (one per test call, parametrised
# cases each) and, at its end, one line "LABEL: N cases in S s"; it runs on one torch thread.
_TALLIES: dict[str, dict[str, int]] = {}


@pytest.fixture(autouse=True)
def _tally_case(request):
    label = getattr(request.module, "TALLY_LABEL", None)
    if label is not None:
        cases = _TALLIES.setdefault(label, {})
        cases[request.node.originalname] = cases.get(request.node.originalname, 0) + 1
    yield


@pytest.fixture(scope="module", autouse=True)
def _tally_report(request):
    label = getattr(request.module, "TALLY_LABEL", None)
    if label is None:
        yield
        return
    import time

    import torch

    started, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    print(f"\n{label}: {sum(_TALLIES.get(label, {}).values())} cases in {time.perf_counter() - started:.1f}s")
