"""Report statistics (IQM, stratified bootstrap) against hand computations, and the report's
tables, failed-run listing and plots on synthetic run directories."""

from __future__ import annotations

import csv
import json
import os
import re

import numpy as np
import pytest
import scipy.stats
import yaml

from causalrl.core.stats import (
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap_ci,
)
from causalrl.experiment.analysis.report import write_report


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
        # the fields the runner writes: report counts only such a summary as a finished run
        (path / "summary.json").write_text(json.dumps({"status": "complete", "final": final, "steps": 100,
                                                       "env": config["env"]["id"], "agent": agent["name"]}))
    if error is not None:
        (path / "error.json").write_text(json.dumps({"status": "failed", "error": error}))
    return path


def test_report_numbers_failed_runs_and_plots(tmp_path):
    sweep = tmp_path / "sweeps" / "a"
    regrets = [10.0, 20.0, 30.0, 40.0, 1000.0]
    for seed, regret in enumerate(regrets):
        _run_dir(sweep, f"ucb__x-0.5__s{seed}", {"name": "ucb", "exploration": 0.5}, seed,
                 final={"time/steps": 100, "regret/cumulative": regret, "regret/window_optimal_action_rate": 0.5},
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
    names = sorted(p.name.split("__")[0] + "__" + p.name.split("__")[1] for p in report.plots)
    assert names == ["curves__LinearSEMBandit-v0", "final__LinearSEMBandit-v0", "profiles__LinearSEMBandit-v0"]
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


# --- the report defects of the ecosystem review, each reproduced ---------------------------------
_LONG = {"horizon": 1500, "instance_seed": 0, "interventional_weights": "default", "noise_mean": 1.0,
         "noise_std": 1.0, "observational_weights": "default", "reward_scale": 1.0}


def test_plot_files_of_similar_envs_never_collide_and_each_heading_embeds_its_own(tmp_path):
    # two envs whose labels agree on their first 80 characters (n_nodes sorts after the long keys)
    for n_nodes in (8, 10):
        for seed in range(2):
            _run_dir(tmp_path / "runs", f"n{n_nodes}__s{seed}", {"name": "ucb"}, seed,
                     final={"regret/cumulative": float(n_nodes + seed)}, curve=[(50, 1.0), (100, 2.0)],
                     env_kwargs={**_LONG, "n_nodes": n_nodes, "zz_padding": "x" * 40})
    report = write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    names = [p.name for p in report.plots]
    assert len(names) == len(set(names)) == 6  # curves, final, profiles for each env
    markdown = report.markdown.read_text()
    sections = markdown.split("\n## ")[1:]
    embedded = [set(re.findall(r"\]\((\S+\.png)\)", section)) for section in sections if "n_nodes=" in section[:200]]
    assert len(embedded) == 2 and all(len(found) == 3 for found in embedded)
    assert not embedded[0] & embedded[1]  # no figure under both headings


def test_tune_report_keeps_held_out_runs_apart_from_search_runs(tmp_path):
    tune = tmp_path / "tune" / "t"
    agent = {"name": "linsem-ts-oracle", "posterior_scale": 0.23}
    for seed in range(4):
        _run_dir(tune / "trials", f"linsem-ts-oracle__t0003__s{seed}", agent, seed, final={"regret/cumulative": 10.0})
    for seed in (100, 101, 102):
        _run_dir(tune / "heldout" / "best-t0003", f"linsem-ts-oracle__s{seed}", agent, seed,
                 final={"regret/cumulative": 40.0})
    (tune / "result.json").write_text("{}")
    report = write_report([tune], out=tmp_path / "out", reps=200)
    rows = {r["agent"]: r for r in report.table if r["metric"] == "regret/cumulative"}
    assert set(rows) == {"linsem-ts-oracle (phase=held-out)", "linsem-ts-oracle (phase=search)"}
    assert rows["linsem-ts-oracle (phase=search)"]["runs"] == 4 and rows["linsem-ts-oracle (phase=search)"]["iqm"] == 10.0
    assert rows["linsem-ts-oracle (phase=held-out)"]["runs"] == 3 and rows["linsem-ts-oracle (phase=held-out)"]["iqm"] == 40.0
    assert "held-out runs (`phase=held-out`) are reported apart" in report.markdown.read_text()


def test_a_rerun_seed_is_collapsed_not_counted_twice(tmp_path):
    first = _run_dir(tmp_path / "runs", "csl__s0__a", {"name": "csl-ucb"}, 0, final={"regret/cumulative": 1337.0})
    second = _run_dir(tmp_path / "runs", "csl__s0__b", {"name": "csl-ucb"}, 0, final={"regret/cumulative": 1337.0})
    os.utime(first / "summary.json", (1_000, 1_000))  # `second` is the newer run
    _run_dir(tmp_path / "runs", "csl__s1", {"name": "csl-ucb"}, 1, final={"regret/cumulative": 900.0})
    report = write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    row = next(r for r in report.table if r["metric"] == "regret/cumulative")
    assert row["runs"] == 2 and row["ci_low"] < row["ci_high"]  # seeds 0 and 1, not 0, 0, 1
    markdown = report.markdown.read_text()
    assert "## Duplicated seeds (collapsed)" in markdown
    assert f"`{second.name}` | `{first.name}` | yes" in markdown
    assert "(+1 duplicated seeds, collapsed)" in markdown
    statuses = {r["run_dir"].split("/")[-1]: r["status"] for r in csv.DictReader(open(report.runs_csv))}
    assert statuses == {first.name: "duplicate", second.name: "ok", "csl__s1": "ok"}


def _captured_figures(monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", lambda figure=None: figures.append(figure))
    return figures


def test_curve_bands_are_distinct_and_the_legend_and_title_stay_off_the_data(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    for n_nodes in (8, 10):  # two configs: the titles carry the long env labels
        for index, exploration in enumerate([0.25, 0.5, 1.0, 2.0]):
            for seed in range(3):  # four overlapping bands that plateau at the same value (the review's case)
                curve = [(step, 1.0 - 0.5 ** (step / 50) + 0.01 * seed + 0.001 * index) for step in range(50, 301, 50)]
                _run_dir(tmp_path / "runs", f"n{n_nodes}__ucb__{exploration}__s{seed}",
                         {"name": "ucb", "exploration": exploration}, seed, final={"regret/cumulative": curve[-1][1]},
                         curve=curve, env_kwargs={**{k: f"{v}-{n_nodes}" for k, v in _LONG.items()}, "n_nodes": n_nodes})
    write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    figure = next(f for f in figures if f is not None and "CI band" in (f._suptitle.get_text() if f._suptitle else ""))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axis = figure.axes[0]
    hatched = [c for c in axis.collections if c.get_hatch()]
    assert len(hatched) == 4
    assert len({c.get_hatch() for c in hatched}) == 4 and len({tuple(c.get_edgecolor()[0][:3]) for c in hatched}) == 4
    assert len({line.get_linestyle() for line in axis.get_lines()}) == 4
    legend = figure.legends[0].get_window_extent(renderer)
    for each in figure.axes:
        assert not legend.overlaps(each.get_window_extent(renderer))  # the legend sits outside every panel
    title = figure._suptitle
    assert "\n" in title.get_text()  # long titles wrap
    box = title.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width  # and stay inside the figure


def test_performance_profile_and_probability_of_improvement_match_rliable_definitions():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 3)).round(1)  # (runs x tasks), rounded so there are ties
    y = rng.normal(0.3, size=(5, 3)).round(1)
    # rliable: per task Mann-Whitney U / (n_x n_y), averaged over tasks
    expected = np.mean([scipy.stats.mannwhitneyu(x[:, j], y[:, j], alternative="greater").statistic / 35
                        for j in range(3)])
    assert probability_of_improvement(x, y) == pytest.approx(expected)
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)
    assert probability_of_improvement(x, y, higher_is_better=False) == pytest.approx(probability_of_improvement(y, x))
    assert probability_of_improvement(np.ones((3, 2)), np.ones((4, 2))) == pytest.approx(0.5)
    # rliable's score distribution: share of all runs (and tasks) above tau
    taus = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(performance_profile(x, taus), [np.mean(x > tau) for tau in taus])
    np.testing.assert_allclose(performance_profile(x, taus, higher_is_better=False), [np.mean(x <= tau) for tau in taus])
    # unequal run counts: each task weighs the same
    assert performance_profile([np.array([0.0, 2.0]), np.array([2.0])], [1.0]) == pytest.approx([0.75])


def test_report_writes_probability_of_improvement_and_profiles(tmp_path):
    for seed in range(4):
        _run_dir(tmp_path / "runs", f"good__s{seed}", {"name": "linsem-ts-oracle"}, seed,
                 final={"regret/cumulative": 10.0 + seed})
        _run_dir(tmp_path / "runs", f"bad__s{seed}", {"name": "ucb"}, seed, final={"regret/cumulative": 100.0 + seed})
    report = write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    rows = list(csv.DictReader(open(tmp_path / "out" / "probability_of_improvement.csv")))
    pair = {(r["x"], r["y"]): float(r["p_x_better"]) for r in rows if r["metric"] == "regret/cumulative"}
    assert pair[("linsem-ts-oracle", "ucb")] == 1.0 and pair[("ucb", "linsem-ts-oracle")] == 0.0  # lower regret wins
    assert any(p.name.startswith("profiles__") for p in report.plots)
    assert "P(row > column)" in report.markdown.read_text()


# --- the RLIF report's reference lines (causalrl.experiment.analysis.references) -------------------
_BLOCK = {"expert": "runs/expert/x/kept/step_2000/model.zip", "reference": "runs/expert/x/model.zip", "delta": "auto"}


def _rlif_run(root, name, agent, seed, finals, judge=None, intervention=True, total_steps=3000):
    """A run on Reacher-v5 (with the intervention block when ``intervention``) whose learner-alone
    return is ``finals`` at steps 1500 and 3000, and whose summary has the ``judge`` block."""
    path = root / name
    path.mkdir(parents=True)
    env = {"id": "Reacher-v5", **({"intervention": _BLOCK} if intervention else {})}
    config = {"env": env, "agent": {"name": agent}, "experiment": "t", "seed": seed, "total_steps": total_steps}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "progress.csv").write_text("time/steps,eval/mean_reward\n" + "".join(
        f"{step},{value}\n" for step, value in zip((1500, total_steps), finals)))
    summary = {"status": "complete", "final": {"time/steps": total_steps, "eval/mean_reward": finals[-1]},
               "steps": total_steps, "env": "Reacher-v5", "agent": agent, **({"judge": judge} if judge else {})}
    (path / "summary.json").write_text(json.dumps(summary))


def _rlif_runs(root, with_sac=True):
    for seed in range(3):
        judge = {"delta": 0.1, "judge_return": -4.0 - seed, "expert_return": -10.0 - seed}  # means -5 and -11
        for agent in ("rlif", "dagger"):
            _rlif_run(root, f"{agent}__s{seed}", agent, seed, (-12.0, -9.0 + seed), judge)
        if with_sac:
            _rlif_run(root, f"sac__s{seed}", "sac", seed, (-8.0, -6.0 - seed), intervention=False)
    _rlif_run(root, "sac__long__s0", "sac", 0, (-8.0, -1.0), intervention=False, total_steps=20000)  # other budget


def _reference_figure(figures):
    return next(f for f in figures if f is not None and f._suptitle is not None
                and "learner-alone return with" in f._suptitle.get_text())


def _assert_reference_lines(figure, expected: dict):
    """The figure's horizontal lines (y constant, spanning the axis) are ``expected``: label start -> y."""
    axis = figure.axes[0]
    lines = {line.get_label(): line.get_ydata()[0] for line in axis.get_lines()
             if len(line.get_ydata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]
             and tuple(line.get_xdata()) == (0, 1)}
    for start, value in expected.items():
        found = [y for label, y in lines.items() if label.startswith(start)]
        assert found == [pytest.approx(value)], f"no reference line {start!r} at {value}: {lines}"
    assert axis.get_ylabel() == "learner-alone return (evaluation, expert off)"


def test_rlif_report_draws_the_acting_expert_judge_and_task_reward_sac_lines(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    _rlif_runs(tmp_path / "runs")
    report = write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    figure = _reference_figure(figures)
    sac = iqm(np.array([-6.0, -7.0, -8.0]))  # the 3000-step SAC runs; the 20000-step run is another budget
    _assert_reference_lines(figure, {"acting expert": -11.0, "judge": -5.0, "task-reward SAC, 3,000 steps": sac})
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "acting expert (mean of 6 runs' calibration episodes, 3 seeds): -11" in legend  # rlif and dagger runs
    assert any(text.startswith("judge (its mode policy, mean of 6 runs'") for text in legend)
    assert {"rlif (n=3)", "dagger (n=3)"} <= set(legend)  # the learners' curves beside the lines
    assert sum(p.name.startswith("references__Reacher-v5") for p in report.plots) == 1  # the SAC env: no figure
    markdown = report.markdown.read_text()
    assert "| reference: acting expert (mean of 6 runs' calibration episodes, 3 seeds): -11 | 6 | " in markdown
    assert "| reference: task-reward SAC, 3,000 steps (IQM of 3 runs' final eval/mean_reward [" in markdown
    assert markdown.count("| reference: ") == 3  # only the RLIF env's table has them, not the SAC env's


def test_rlif_report_legend_says_what_is_missing_and_what_to_run(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    _rlif_runs(tmp_path / "runs", with_sac=False)
    report = write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    figure = _reference_figure(figures)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    missing = ("task-reward SAC: not among the runs at 3000 steps (found at total_steps 20000); add "
               "`causalrl run expert env.id=Reacher-v5 total_steps=3000`")
    assert missing in legend
    _assert_reference_lines(figure, {"acting expert": -11.0, "judge": -5.0})
    assert not any(line.get_label().startswith("task-reward SAC") and len(line.get_ydata())
                   for line in figure.axes[0].get_lines())  # no line drawn for it
    assert f"| reference: {missing} | – | " in report.markdown.read_text()


def test_rlif_report_without_judge_returns_says_so(tmp_path, monkeypatch):
    figures = _captured_figures(monkeypatch)
    for seed in range(2):  # delta given: no calibration, no judge block
        _rlif_run(tmp_path / "runs", f"rlif__s{seed}", "rlif", seed, (-12.0, -9.0))
    write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    legend = [text.get_text() for text in _reference_figure(figures).legends[0].get_texts()]
    assert any(text.startswith("judge: no return recorded (summary.json judge block has no judge_return") for text in legend)
    assert any(text.startswith("acting expert: no return recorded") for text in legend)


def test_the_reference_line_check_kills_a_report_that_drops_the_lines(tmp_path, monkeypatch):
    """Mutant: the figure drawn without its reference lines; the check above must fail on it."""
    import causalrl.experiment.analysis.report as report_module

    figures = _captured_figures(monkeypatch)
    original = report_module.plot_references
    monkeypatch.setattr(report_module, "plot_references", lambda env, groups, references, *rest:
                        original(env, groups, [], *rest))
    _rlif_runs(tmp_path / "runs")
    write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200)
    with pytest.raises(AssertionError, match="no reference line 'acting expert'"):
        _assert_reference_lines(_reference_figure(figures), {"acting expert": -11.0, "judge": -5.0})


def _discovery_line(weights, swapping, states=(2,)):
    weights = np.asarray(weights, dtype=float)
    blocks = [{"states": list(states), "actions": []}] if swapping is not None else []
    return json.dumps({"round": 1, "step": 100, "action_weights": weights.tolist(),
                       "action_weight_ratio": float(weights.max() / weights.min()), "swapped_blocks": blocks,
                       "swapping": bool(swapping)})


def test_causal_parts_table_counts_rounds_that_acted_and_the_seeds_rank_agreement(tmp_path):
    sweep = tmp_path / "sweep"
    rounds = {0: [([1.0, 1.0, 1.0], None), ([2.0, 1.0, 0.5], True)],  # final ranking a0 > a1 > a2
              1: [([1.0, 1.4, 1.0], False), ([2.0, 0.5, 1.0], True)],  # a0 > a2 > a1: Spearman 0.5
              2: [([1.0, 1.0, 1.0], False)]}  # all weights equal: no ranking, left out of the agreement
    for seed, lines in rounds.items():
        path = _run_dir(sweep, f"cip__s{seed}", {"name": "cip"}, seed, final={"time/steps": 100, "regret/cumulative": 1.0})
        body = "\n".join(_discovery_line(weights, swapping, states=(1, 2)) for weights, swapping in lines)
        (path / "discovery.jsonl").write_text(body + "\n" + '{"round": 3, "act')  # a line cut by a kill
    one_action = _run_dir(sweep, "ace__s0", {"name": "ace"}, 0, final={"time/steps": 100, "regret/cumulative": 1.0})
    (one_action / "discovery.jsonl").write_text(_discovery_line([1.0], swapping=False) + "\n")
    _run_dir(sweep, "ucb__s0", {"name": "ucb"}, 0, final={"time/steps": 100, "regret/cumulative": 1.0})

    markdown = write_report([sweep], out=tmp_path / "out", reps=200).markdown.read_text()
    table = markdown.split("## Causal parts (discovery rounds)")[1]
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| ") and "---" not in line and "agent" not in line}
    assert set(rows) == {"cip", "ace"}  # ucb discovers nothing: no row
    # cip: 3 seeds, 5 rounds; ratios 1, 4, 1.4, 4, 1 -> 2 of 5 reach 1.5; swapped in 2 rounds, 2 dims each
    assert rows["cip"][1:] == ["3", "2/5", "1.40", "2/5", "2.0", "1.67, 0.83, 0.83", "0.50"]
    assert rows["ace"][1:] == ["1", "n/a (1 action, 1 rounds)", "1.00", "0/1", "0.0", "1.00", "n/a"]


def test_a_nested_block_labels_only_its_entries_that_differ(tmp_path):
    # two intervention worlds of one env id that differ only in the judge threshold: the table and
    # the figure titles say `intervention.delta=...`, not the whole block twice
    block = {"expert": "expert.zip", "judge": "judge.zip", "strategy": "value", "beta": 0.95}
    for delta in (0.1, 0.5):
        for seed in range(2):
            _run_dir(tmp_path / "runs", f"ucb__d{delta}__s{seed}", {"name": "ucb"}, seed,
                     final={"time/steps": 100, "regret/cumulative": 10.0 + seed},
                     env_kwargs={"intervention": {**block, "delta": delta}})
    markdown = write_report([tmp_path / "runs"], out=tmp_path / "out", reps=200).markdown.read_text()
    headings = [line for line in markdown.splitlines() if line.startswith("## ") and "LinearSEM" in line]
    assert headings == ["## LinearSEMBandit-v0 (intervention.delta=0.1)", "## LinearSEMBandit-v0 (intervention.delta=0.5)"]
