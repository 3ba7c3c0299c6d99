"""Report statistics (IQM, stratified bootstrap) against hand computations, and the report's
tables, failed-run listing and plots on synthetic run directories."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.stats
import yaml

from causalrl.core.stats import iqm, stratified_bootstrap_ci
from causalrl.experiment.report import write_report


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([10, 20, 30, 40, 1000]) == pytest.approx(30.0)  # floor(5/4) = 1 dropped each end
    assert iqm([3.0, 1.0, 2.0]) == pytest.approx(2.0)  # n < 4: the mean
    scores = np.random.default_rng(0).normal(size=(9, 4))
    assert iqm(scores) == pytest.approx(scipy.stats.trim_mean(scores.ravel(), 0.25))
    np.testing.assert_allclose(iqm(scores, axis=0), scipy.stats.trim_mean(scores, 0.25, axis=0))


def test_stratified_bootstrap_matches_hand_enumeration():
    # task A runs {0, 10}, task B run {5}; a replicate resamples A's two runs, B stays 5:
    # pooled means 5/3 (p=1/4), 5 (p=1/2), 25/3 (p=1/4) -> 95% interval [5/3, 25/3]
    point, low, high = stratified_bootstrap_ci([np.array([0.0, 10.0]), np.array([5.0])], np.mean, reps=4000, seed=1)
    assert point == pytest.approx(5.0)
    assert low == pytest.approx(5 / 3) and high == pytest.approx(25 / 3)
    # one run per task: nothing to resample within a stratum, so the interval is the point
    matrix = np.array([[1.0, 7.0, 4.0]])  # (runs=1 x tasks=3), rliable layout
    assert stratified_bootstrap_ci(matrix, iqm, reps=200) == pytest.approx((4.0, 4.0, 4.0))
    # curves: extra axes are carried along
    curves = np.arange(12.0).reshape(4, 3)
    point, low, high = stratified_bootstrap_ci([curves], np.mean, reps=500)
    np.testing.assert_allclose(point, curves.mean(axis=0))
    assert np.all(low <= point) and np.all(point <= high)


def _run_dir(root, name, agent, seed, final=None, error=None, curve=None, env_kwargs=None):
    path = root / name
    path.mkdir(parents=True)
    config = {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, **(env_kwargs or {})}, "agent": agent,
              "experiment": "t", "seed": seed, "total_steps": 100, "log_interval": 50, "output_dir": "runs",
              "progress_bar": False, "save_model": False, "description": ""}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    if curve is not None:
        rows = ["time/steps,regret/cumulative,reward/cumulative"] + [f"{s},{r},{2 * r}" for s, r in curve]
        (path / "progress.csv").write_text("\n".join(rows) + "\n")
    if final is not None:
        (path / "summary.json").write_text(json.dumps({"status": "complete", "final": final}))
    if error is not None:
        (path / "error.json").write_text(json.dumps({"status": "failed", "error": error}))
    return path


def test_report_numbers_failed_runs_and_plots(tmp_path):
    sweep = tmp_path / "sweeps" / "a"
    regrets = [10.0, 20.0, 30.0, 40.0, 1000.0]
    for seed, regret in enumerate(regrets):
        _run_dir(sweep, f"ucb__x-0.5__s{seed}", {"name": "ucb", "exploration": 0.5}, seed,
                 final={"time/steps": 100, "regret/cumulative": regret, "regret/optimal_action_rate": 0.5},
                 curve=[(50, regret / 2), (100, regret)])
    for seed in range(3):
        _run_dir(sweep, f"ucb__x-2__s{seed}", {"name": "ucb", "exploration": 2.0}, seed,
                 final={"time/steps": 100, "regret/cumulative": 100.0 + seed}, curve=[(50, 50.0), (100, 100.0 + seed)])
    _run_dir(sweep, "ucb__x-2__s3", {"name": "ucb", "exploration": 2.0}, 3, error="ValueError: noise_std: must be > 0")
    (sweep / "unrelated").mkdir()

    report = write_report([sweep], out=tmp_path / "out", reps=1000)
    rows = {(r["agent"], r["metric"]): r for r in csv.DictReader(open(report.csv))}
    low_x = rows[("ucb (exploration=0.5)", "regret/cumulative")]
    assert int(low_x["runs"]) == 5
    assert float(low_x["iqm"]) == pytest.approx(30.0)  # hand: mean of 20, 30, 40
    assert float(low_x["mean"]) == pytest.approx(220.0)
    assert float(low_x["median"]) == pytest.approx(30.0)
    assert float(low_x["ci_low"]) <= 30.0 <= float(low_x["ci_high"])
    _, expected_low, expected_high = stratified_bootstrap_ci([np.array(regrets)], iqm, reps=1000, seed=0)
    assert float(low_x["ci_low"]) == pytest.approx(expected_low) and float(low_x["ci_high"]) == pytest.approx(expected_high)
    high_x = rows[("ucb (exploration=2.0)", "regret/cumulative")]
    assert int(high_x["runs"]) == 3 and float(high_x["iqm"]) == pytest.approx(101.0)

    markdown = report.markdown.read_text()
    assert "## Failed runs" in markdown and "ValueError: noise_std: must be > 0" in markdown and "ucb__x-2__s3" in markdown
    assert "| ucb (exploration=0.5) | 5 | 30 [" in markdown
    assert "3 (+1 failed/unfinished)" in markdown
    names = sorted(p.name for p in report.plots)
    assert names == ["curves__LinearSEMBandit-v0.png", "final__LinearSEMBandit-v0.png"]
    assert all(p.stat().st_size > 10_000 for p in report.plots)
    run_rows = list(csv.DictReader(open(report.runs_csv)))
    assert {r["status"] for r in run_rows} == {"ok", "failed"}


def test_report_over_several_sweeps_pools_envs_and_handles_one_run(tmp_path):
    for n_nodes, root in ((4, tmp_path / "s1"), (5, tmp_path / "s2")):
        for seed in range(2):
            _run_dir(root, f"ucb__s{seed}", {"name": "ucb"}, seed, final={"regret/cumulative": 10.0 * n_nodes + seed},
                     curve=[(50, 1.0), (100, 2.0)], env_kwargs={"n_nodes": n_nodes, "instance_seed": seed})
    report = write_report([tmp_path / "s1", tmp_path / "s2"], out=tmp_path / "out", reps=500)
    envs = {r["env"] for r in report.table}
    assert envs == {"LinearSEMBandit-v0 (n_nodes=4)", "LinearSEMBandit-v0 (n_nodes=5)", "(all envs: 2)"}
    pooled = next(r for r in report.table if r["env"].startswith("(all") and r["metric"] == "regret/cumulative")
    assert pooled["runs"] == 4 and pooled["iqm"] == pytest.approx(np.mean([41.0, 50.0]))  # middle two of 40,41,50,51
    single = write_report([next((tmp_path / "s1").iterdir())], reps=200)  # one run directory
    assert "(1 run)" in single.markdown.read_text()
