"""Sweeps on an existing Ray cluster (``causalrl sweep NAME --ray-address HOST:PORT``, or the
sweep file's ``ray_address``). The cluster test builds two nodes on this machine
(``ray.cluster_utils.Cluster``, loopback only): the trials run on both nodes, the second node is
removed while a trial runs on it, that trial runs again on the head node, every trial finishes
exactly once, and every run directory holds the same bytes as the local sweep's (wall times and
process ids aside)."""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from causalrl.cli import main
from causalrl.experiment.batch.sweep import load_sweep, resolve_backend, run_sweep
from causalrl.experiment.config import ConfigError
from causalrl.experiment.run.rundir import is_complete

STEPS = 2000
SWEEP = {
    "name": "cluster",
    "base": {"experiment": "ray-cluster", "total_steps": STEPS, "log_interval": 250, "save_model": False,
             "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, "horizon": STEPS}, "agents": [{"name": "ucb"}]},
    "overrides": {"grid": {"agent.exploration": [0.5, 2.0]}},
    "seeds": [0, 1, 2],
    "seed_overrides": ["seed={seed}", "env.instance_seed={seed}"],
}


def _rows(table: Path) -> list[dict]:
    try:
        with open(table, newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError:  # not written yet
        return []


class _RemoveWhenRunning(threading.Thread):
    """Removes ``node`` from ``cluster`` once a trial has finished on it and the next one runs on it
    (``trials.csv`` names each running and finished trial's node)."""

    def __init__(self, cluster, node, table: Path):
        super().__init__(daemon=True)
        self.cluster, self.node, self.table = cluster, node, table
        self.removed_during: str | None = None
        self.finished_there_before: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            rows = [row for row in _rows(self.table) if row["node"] == self.node.node_id]
            finished = [row["trial"] for row in rows if row["status"] == "ok"]
            running = [row["trial"] for row in rows if row["status"] == "running"]
            if finished and running:
                self.cluster.remove_node(self.node)
                self.removed_during, self.finished_there_before = running[0], finished
                return
            time.sleep(0.02)


def _same_bytes(one: Path, other: Path) -> list[str]:
    """The files of two run directories that differ: all but the TensorBoard event file (its name
    holds the host and pid), .lock and status.json (the pid); summary.json without its wall time."""
    names = sorted(path.name for path in one.iterdir() if not path.name.startswith("events.out"))
    assert names == sorted(path.name for path in other.iterdir() if not path.name.startswith("events.out"))
    differ = []
    for name in names:
        if name in (".lock", "status.json"):
            continue
        a, b = (one / name).read_bytes(), (other / name).read_bytes()
        if name == "summary.json":
            a, b = (b"\n".join(line for line in text.splitlines() if b'"wall_time_s"' not in line) for text in (a, b))
        if a != b:
            differ.append(name)
    return differ


def test_a_ray_address_selects_ray_and_a_bad_one_is_refused(tmp_path, capsys):
    plain = load_sweep(SWEEP)
    assert resolve_backend(plain, None, None) == ("local", None)
    assert resolve_backend(plain, None, "head:6379") == ("ray", "head:6379")
    assert resolve_backend(plain, "ray", None) == ("ray", None)  # RAY_ADDRESS, a `ray start` cluster or a new one
    on_cluster = load_sweep({**SWEEP, "ray_address": "head:6379"})
    assert resolve_backend(on_cluster, None, None) == ("ray", "head:6379")
    assert resolve_backend(on_cluster, None, "other:6379") == ("ray", "other:6379")  # the command line wins
    assert resolve_backend(on_cluster, "local", None) == ("local", None)  # --backend local ignores the file's
    with pytest.raises(ConfigError, match="ray_address must be a Ray cluster address"):
        load_sweep({**SWEEP, "ray_address": 6379})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    status = main(["sweep", str(path), "--backend", "local", "--ray-address", "head:6379", "--no-progress",
                   "--output-dir", str(tmp_path)])
    assert status == 2 and not (tmp_path / "sweeps").exists()
    assert "--ray-address: runs the sweep on Ray; drop --backend local or the address" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray cluster of two nodes with one CPU each on this machine: ``(cluster, second node)``."""
    # keep every node on 127.0.0.1: without it Ray gives the nodes the host's outside address
    previous = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        second = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster, second
    finally:
        ray.shutdown()
        cluster.shutdown()
        if previous is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = previous


@pytest.mark.ray_cluster
def test_a_vectorized_sweep_runs_each_batch_as_one_ray_trial(tmp_path, two_nodes):
    cluster, _ = two_nodes
    sweep = {"name": "batched", "seeds": [0, 1], "vectorize_seeds": True,
             "base": {"experiment": "batched", "total_steps": 300, "log_interval": 100, "save_model": False,
                      "env": {"id": "Pendulum-v1"},
                      "agents": [{"name": "sac", "learning_starts": 100, "batch_size": 16, "buffer_size": 500,
                                  "policy_kwargs": {"net_arch": [8, 8]}, "device": "cpu"}]}}
    path = tmp_path / "batched.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    local = run_sweep(load_sweep(path, output_dir=tmp_path / "local"), workers=1, progress=False)
    assert not local.failed
    assert main(["sweep", str(path), "--ray-address", cluster.address, "--output-dir", str(tmp_path / "ray"),
                 "--no-progress"]) == 0
    directory = tmp_path / "ray" / "sweeps" / "batched"
    lines = [json.loads(line) for line in (directory / "trials.jsonl").read_text().splitlines()]
    assert sorted(line["trial"] for line in lines) == ["sac__base__s0", "sac__base__s1"]
    assert len({line["node"] for line in lines}) == 1  # one Ray trial ran both seeds
    pids = {events.name.split(".")[-2] for name in ("sac__base__s0", "sac__base__s1")
            for events in (directory / name).glob("events.out.tfevents.*")}
    assert len(pids) == 1  # in one process
    assert [path.name for path in (directory / "ray_results").glob("*/sac__*")] == ["sac__base__s0-1"]
    for name in ("sac__base__s0", "sac__base__s1"):
        assert _same_bytes(local.directory / name, directory / name) == [], name


@pytest.mark.ray_cluster
def test_a_sweep_on_two_ray_nodes_survives_losing_one(tmp_path, two_nodes):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    local = run_sweep(load_sweep(path, output_dir=tmp_path / "local"), workers=1, progress=False)
    assert not local.failed and len(local.records) == 6

    cluster, second = two_nodes
    head = cluster.head_node.node_id
    directory = tmp_path / "ray" / "sweeps" / "cluster"
    remover = _RemoveWhenRunning(cluster, second, directory / "trials.csv")
    remover.start()
    status = main(["sweep", str(path), "--ray-address", cluster.address, "--output-dir", str(tmp_path / "ray"),
                   "--no-progress"])
    remover.join(timeout=5)
    assert status == 0
    assert remover.removed_during is not None, "the second node should have been removed mid-sweep"

    lines = [json.loads(line) for line in (directory / "trials.jsonl").read_text().splitlines()]
    names = sorted(trial.name for trial in load_sweep(path).trials)
    ok = {line["trial"]: line for line in lines if line["status"] == "ok"}
    assert sorted(line["trial"] for line in lines if line["status"] == "ok") == names  # each finished exactly once
    assert all(is_complete(directory / name) for name in names)
    # the trials ran on both nodes; the one running on the removed node ran again on the head node
    assert {ok[name]["node"] for name in remover.finished_there_before} == {second.node_id}
    assert [(line["trial"], line["node"]) for line in lines if line["status"] == "retried"] == [
        (remover.removed_during, second.node_id)]
    assert ok[remover.removed_during]["node"] == head
    assert {line["node"] for line in ok.values()} == {head, second.node_id}
    assert len(lines) == len(names) + 1  # nothing else: no failed attempt

    for name in names:
        assert _same_bytes(local.directory / name, directory / name) == [], name
