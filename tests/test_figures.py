"""Pictures that cannot mislead: each defect the ecosystem review found in a figure, reproduced on
the figure's matplotlib objects (legend entries, panel count, axis scale, step drawing, warnings,
subtitle lines, arrowhead spacing, node spacing); see docs/reports.md."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch

from causalrl.experiment.analysis.figures import FEW_RUNS, plot_curves, plot_final, plot_profiles
from causalrl.experiment.figures.curves import plot_bandit_runs
from causalrl.experiment.figures.graphs import draw_structure, plot_graph_grid
from causalrl.experiment.figures.style import pyplot


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    pyplot().close("all")


def _stats(value):
    return {"iqm": value, "ci_low": value - 1, "ci_high": value + 1}


def _visible(figure):
    return [axis for axis in figure.axes if axis.axison]


def test_final_metrics_keep_every_metric_and_the_legend_every_agent():
    metrics = ["eval/deterministic_normalised_score", "regret/cumulative", "regret/window_optimal_action_rate",
               "reward/cumulative", "structure/shd", "structure/f1"]
    rows = [("csl-ucb", {m: _stats(0.5) for m in metrics}), ("ucb", {"regret/cumulative": _stats(9.0)})]
    figure = plot_final("env", rows, None)
    assert sorted(axis.get_title() for axis in _visible(figure)) == sorted(metrics)  # none dropped (was: 4)
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["csl-ucb", "ucb"]  # was: the last panel's
    shd = next(axis for axis in figure.axes if axis.get_title() == "structure/shd")
    assert "no value" in [text.get_text() for text in shd.texts]  # ucb has no structure: said, not silent
    rate = next(axis for axis in figure.axes if axis.get_title() == "regret/window_optimal_action_rate")
    assert rate.get_xlim() == (-0.02, 1.02)  # a rate is shown on all of [0, 1]


def _regret_rows(final):
    return [{"time/steps": step, "regret/cumulative": final * step / 1000, "regret/cumulative_realised": final * step / 1000,
             "regret/window_optimal_action_rate": 0.5} for step in range(100, 1001, 100)]


def test_comparison_plot_has_a_log_axis_when_regrets_span_orders_of_magnitude():
    spread = plot_bandit_runs({"csl-ucb": _regret_rows(1337), "linsem-ts-oracle": _regret_rows(310),
                               "ucb": _regret_rows(24663)}, None)
    assert spread.axes[0].get_yscale() == "symlog"
    assert any("final 24,663" in text.get_text() for text in spread.axes[0].get_legend().get_texts())
    markers = {line.get_marker() for line in spread.axes[0].get_lines() if line.get_marker() not in (None, "None")}
    assert len(markers) == 3  # a curve hidden under another still shows its own markers
    close = plot_bandit_runs({"a": _regret_rows(100), "b": _regret_rows(150)}, None)
    assert close.axes[0].get_yscale() == "linear"


def test_performance_profiles_are_exact_steps_and_few_runs_get_a_warning_not_a_band():
    rng = np.random.default_rng(0)
    tasks = {"regret/cumulative": {"few": [rng.normal(size=FEW_RUNS)], "many": [rng.normal(size=20)]}}
    figure = plot_profiles("env", tasks, None, reps=200)
    axis = figure.axes[0]
    assert {line.get_drawstyle() for line in axis.get_lines()} == {"steps-post"}  # was: sloped lines between taus
    assert len([c for c in axis.collections if c.get_hatch()]) == 1  # the band of "many" only
    note = figure.legends[0].get_title().get_text()
    assert "no band for few" in note and f"n <= {FEW_RUNS}" in note
    # the steps sit exactly on the runs' values: at each value the share changes by one run
    line = next(line for line in axis.get_lines() if line.get_label().startswith("many"))
    assert sorted(np.round(np.abs(np.diff(line.get_ydata())), 6))[-20:] == [0.05] * 20


def test_report_curves_name_cumulative_reward_and_put_spread_regrets_on_a_log_axis():
    cache = {name: {"reward/cumulative": {100: 1.0, 200: 2.0}, "regret/cumulative": {100: final / 2, 200: final}}
             for name, final in (("ucb", 24663.0), ("csl-ucb", 1337.0))}
    groups = [SimpleNamespace(agent=name, ok=[SimpleNamespace(path=name)]) for name in cache]
    figure = plot_curves("env", groups, None, 200, cache)
    titles = {axis.get_title(): axis for axis in figure.axes}
    assert "cumulative reward" in titles and "return" not in titles  # a bandit has no episode return
    assert titles["regret"].get_yscale() == "symlog"


def test_report_curves_of_a_one_row_run_are_drawn_as_markers():
    cache = {"ucb": {"regret/cumulative": {100: 50.0}}, "csl-ucb": {"regret/cumulative": {100: 20.0, 200: 30.0,
                                                                                          300: 35.0, 400: 38.0}}}
    groups = [SimpleNamespace(agent=name, ok=[SimpleNamespace(path=name)]) for name in cache]
    lines = {line.get_label(): line for line in plot_curves("env", groups, None, 200, cache).axes[0].get_lines()}
    assert lines["ucb (n=1)"].get_marker() == "o"  # one point: a line alone would draw nothing
    assert lines["csl-ucb (n=1)"].get_marker() in ("None", None, "")  # a long curve stays a plain line


def test_curves_and_final_metrics_warn_when_an_agent_has_too_few_runs_for_its_interval():
    from causalrl.experiment.analysis.figures import FEW_RUNS, plot_final

    def legend_title(figure):
        return figure.legends[0].get_title().get_text()

    seeds = {"few": 2, "many": FEW_RUNS + 1}
    cache = {f"{agent}{seed}": {"regret/cumulative": {100: 10.0 + seed, 200: 20.0 + seed}}
             for agent, count in seeds.items() for seed in range(count)}
    groups = [SimpleNamespace(agent=agent, ok=[SimpleNamespace(path=f"{agent}{seed}") for seed in range(count)])
              for agent, count in seeds.items()]
    title = legend_title(plot_curves("env", groups, None, 200, cache))
    assert "warning: n <= 4 runs for few:" in title and "many" not in title
    assert "warning" not in legend_title(plot_curves("env", groups[1:], None, 200, cache))
    stats = {"regret/cumulative": {"iqm": 1.0, "ci_low": 0.5, "ci_high": 1.5}}
    rows = [(agent, {m: {**s, "runs": count} for m, s in stats.items()}) for agent, count in seeds.items()]
    title = legend_title(plot_final("env", rows, None))
    assert "warning: n <= 4 runs for few:" in title and "many" not in title
    assert "warning" not in legend_title(plot_final("env", rows[1:], None))


def _chain_into_reward(n=7):
    truth = np.zeros((n, n), dtype=bool)
    truth[: n - 1, n - 1] = True  # every node -> R
    for j in range(n - 2):
        truth[j, j + 1] = True  # and a chain: every parent of R sits right above it
    learned = truth.copy()
    learned[0, 2] = True  # one extra edge
    return {"observational_weights": learned}, {"observational_weights": truth}


def _tips_near(axis, centre, reach: float = 40.0) -> np.ndarray:
    """Display coordinates of the arrow ends within ``reach`` pixels of ``centre``."""
    centre = axis.transData.transform(centre)
    tips = []
    for patch in axis.patches:
        if isinstance(patch, FancyArrowPatch):
            vertices = axis.transData.transform(patch.get_path().vertices)
            distance = np.linalg.norm(vertices - centre, axis=1)
            if distance.min() < reach:
                tips.append(vertices[np.argmin(distance)])
    return np.array(tips)


def test_graph_png_subtitles_break_between_phrases_and_arrowheads_on_the_reward_node_stay_apart():
    learned, truth = _chain_into_reward()
    figure = draw_structure(learned, truth, reward_node=6, title="csl-ucb on a chain")
    axis = figure.axes[0]
    assert axis.get_title().split("\n") == ["observational weights", "SHD 1 · F1 0.96",
                                            "11 TP · 1 extra · 0 missing · 0 reversed"]
    figure.canvas.draw()
    reward = next(text for text in axis.texts if text.get_text() == "R")
    tips = _tips_near(axis, reward.get_position())
    assert len(tips) == 6
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(tips) for b in tips[i + 1:]]
    assert min(gaps) > 5.0  # pixels; every arrow came in on one point before (0.1 px apart)
    assert "node 6" in [text.get_text() for text in axis.texts]  # R's index is shown


def test_reward_parent_picture_keeps_nodes_apart_and_off_the_subtitle():
    learned = {"state_to_reward": np.eye(12, 1, dtype=bool), "action_to_reward": np.eye(4, 1, dtype=bool)}
    truth = {"state_to_reward": np.arange(12)[:, None] < 3, "action_to_reward": np.arange(4)[:, None] < 2}
    figure = draw_structure(learned, truth, title="cip reward parents")
    axis = figure.axes[0]
    figure.canvas.draw()
    nodes = axis.collections[0]
    centres = axis.transData.transform(nodes.get_offsets())
    diameter = np.sqrt(nodes.get_sizes()[0]) * figure.dpi / 72
    rows = np.sort(centres[:, 1])
    assert np.min(np.diff(rows)) > diameter  # 16 sources, none touching its neighbour
    title = axis.title.get_window_extent(figure.canvas.get_renderer())
    assert rows.max() + diameter / 2 < title.y0  # and the top one clear of the subtitle
    tips = [max(axis.transData.transform(patch.get_path().vertices), key=lambda point: point[0])
            for patch in axis.patches if isinstance(patch, FancyArrowPatch)]  # arrows point right, into r
    ends = [tip[1] for tip in tips]
    assert len(ends) == len(set(np.round(ends, 1)))  # every arrow meets r at its own height


def test_report_grid_draws_every_mechanism_with_its_shd_and_counts_runs_left_out():
    learned, truth = _chain_into_reward()
    both = {**learned, "interventional_weights": truth["observational_weights"]}
    truths = {**truth, "interventional_weights": truth["observational_weights"]}
    rows = [("csl-ucb", [(f"seed {seed}", both, truths, 6) for seed in range(8)])]
    figure = plot_graph_grid(rows, None, columns=6)
    drawn = [axis for axis in figure.axes if axis.get_title()]
    assert len(drawn) == 12  # both mechanisms of six runs (was: the first mechanism only)
    assert all("SHD" in axis.get_title() for axis in drawn)
    labels = [text.get_text() for axis in figure.axes for text in axis.texts]
    assert sum("(+2 more runs, not drawn)" in label for label in labels) == 2
    assert any("interventional weights" in label for label in labels)
