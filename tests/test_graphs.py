"""Graph pictures and exports: edge classes against hand-built graphs, structure_metrics on what
the API hands out, graph.png for every run of an agent with a learned structure (tiny budgets),
``causalrl graph`` at a checkpoint step, networkx and DOT export, and the report's grid."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import causalrl.envs  # noqa: F401  (registers the causalrl/ ids)
from causalrl.cli import main
from causalrl.core.metrics import edge_classes, structure_metrics
from causalrl.experiment.analysis.report import write_report
from causalrl.experiment.config import AgentConfig, EnvConfig, RunConfig
from causalrl.experiment.figures.graphs import draw_structure, to_dot, to_networkx
from causalrl.experiment.run.history import read_history
from causalrl.experiment.run.runner import run

# a 4-node truth: 0 -> 1 -> 3, 0 -> 2 -> 3
TRUE = np.zeros((4, 4), dtype=bool)
TRUE[0, 1] = TRUE[1, 3] = TRUE[0, 2] = TRUE[2, 3] = True


def _learned():
    """The truth with 1 -> 3 reversed, 0 -> 2 missing and 0 -> 3 extra."""
    learned = TRUE.copy()
    learned[1, 3], learned[3, 1] = False, True
    learned[0, 2] = False
    learned[0, 3] = True
    return learned


def test_edge_classes_name_each_error_once_and_agree_with_shd():
    classes = edge_classes(_learned(), TRUE)
    edges = {kind: sorted(map(tuple, np.argwhere(mask).tolist())) for kind, mask in classes.items()}
    assert edges == {"true_positive": [(0, 1), (2, 3)], "false_positive": [(0, 3)], "false_negative": [(0, 2)],
                     "reversed": [(3, 1)]}
    counted = sum(int(mask.sum()) for kind, mask in classes.items() if kind != "true_positive")
    assert counted == structure_metrics(_learned(), TRUE)["shd"] == 3
    # a learned edge in both directions is one true positive plus one extra edge, not a reversal
    both = TRUE.copy()
    both[1, 0] = True
    assert edge_classes(both, TRUE)["reversed"].sum() == 0 and edge_classes(both, TRUE)["false_positive"][1, 0]
    # rectangular masks (state -> reward) have no reversals
    rect = edge_classes(np.array([[1], [0], [1]]), np.array([[1], [1], [0]]))
    assert rect["true_positive"][:, 0].tolist() == [True, False, False] and rect["reversed"].sum() == 0
    assert rect["false_negative"][:, 0].tolist() == [False, True, False]


def test_structure_metrics_takes_what_the_api_hands_out():
    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=5, instance_seed=3)
    truth = env.unwrapped.causal_structure  # a LinearSEM object
    learned = {"observational_weights": truth.observational_weights.T != 0,  # every edge reversed
               "interventional_weights": truth.interventional_weights != 0}
    scores = structure_metrics(learned, truth)
    n_obs = int((truth.observational_weights != 0).sum())
    assert scores["shd"] == n_obs  # each reversal counts once
    stacked = structure_metrics(np.stack([learned["observational_weights"], learned["interventional_weights"]]),
                                np.stack([truth.observational_weights, truth.interventional_weights]))
    assert scores == stacked
    # a factored world's FactoredStructure against CIP-shaped learned masks
    factored = gym.make("causalrl/FactoredLQR-v0").unwrapped.causal_structure
    exact = structure_metrics({"state_to_reward": factored.state_to_reward,
                               "action_to_reward": factored.action_to_reward}, factored)
    assert exact["shd"] == 0 and exact["f1"] == 1.0
    with pytest.raises(ValueError, match="no structure learned yet"):
        structure_metrics(None, truth)
    with pytest.raises(ValueError, match="no discovery round yet"):
        structure_metrics({}, factored)
    with pytest.raises(ValueError, match="'state_to_reward' is not in the true structure"):
        structure_metrics({"state_to_reward": factored.state_to_reward}, truth)


def test_networkx_and_dot_exports_carry_the_edge_classes():
    learned = {"observational_weights": _learned()}
    truth = {"observational_weights": TRUE}
    graph = to_networkx(learned, truth)
    kinds = sorted((u, v, d["kind"]) for u, v, d in graph.edges(data=True))
    assert kinds == [("0", "1", "true_positive"), ("0", "2", "false_negative"), ("0", "3", "false_positive"),
                     ("2", "3", "true_positive"), ("3", "1", "reversed")]
    dot = to_dot(learned, truth)
    assert dot.startswith("digraph") and dot.count("->") == 5
    assert 'tooltip="reversed"' in dot and "style=dashed" in dot and "style=dotted" in dot


def test_draw_structure_styles_each_class_differently(tmp_path):
    figure = draw_structure({"observational_weights": _learned()}, {"observational_weights": TRUE})
    styles = {}
    for patch in figure.axes[0].patches:  # networkx draws each arrow as a FancyArrowPatch
        styles.setdefault((patch.get_edgecolor(), patch.get_linestyle()), 0)
        styles[(patch.get_edgecolor(), patch.get_linestyle())] += 1
    assert sorted(styles.values()) == [1, 1, 1, 2]  # 2 true positives; extra, missing, reversed: one style each
    assert "SHD 3" in figure.axes[0].get_title()
    figure.savefig(tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 5_000


_TINY_SAC = {"discovery_interval": 100, "discovery_samples": 100, "policy_kwargs": {"net_arch": [16]},
             "batch_size": 32, "learning_starts": 50, "buffer_size": 1000}
GRAPH_AGENTS = [
    ("csl-ucb", "causalrl/LinearSEMBandit-v0", {"n_nodes": 4, "instance_seed": 0, "horizon": 120}, {}, 120),
    ("etc-dagma", "causalrl/LinearSEMBandit-v0", {"n_nodes": 4, "instance_seed": 0, "horizon": 80},
     {"explore_rounds": 30}, 80),
    ("cip", "causalrl/FactoredLQR-v0", {}, dict(_TINY_SAC, stability_resamples=2, discovery_basis="linear"), 120),
    ("ace", "causalrl/FactoredLQR-v0", {}, _TINY_SAC, 120),
]


@pytest.mark.parametrize("agent, env_id, env_kwargs, agent_kwargs, steps", GRAPH_AGENTS, ids=[a[0] for a in GRAPH_AGENTS])
def test_every_run_of_an_agent_with_a_learned_structure_writes_graph_png(tmp_path, agent, env_id, env_kwargs,
                                                                          agent_kwargs, steps):
    if agent == "etc-dagma":
        pytest.importorskip("dagma")
    config = RunConfig(env=EnvConfig(env_id, env_kwargs), agent=AgentConfig(agent, None, agent_kwargs),
                       experiment="graphs", total_steps=steps, log_interval=steps // 4, output_dir=str(tmp_path),
                       progress_bar=False, save_model=False)
    result = run(config)
    assert (result.run_dir / "graph.png").stat().st_size > 5_000
    history = read_history(result.run_dir)
    assert [line["step"] for line in history][-1] == steps and len(history) >= 2
    assert history[-1]["learned"], f"{agent} learned nothing in {steps} steps"
    assert history[-1]["truth"] and set(history[-1]["learned"]) <= set(history[-1]["truth"])


def test_graph_command_redraws_at_a_checkpoint_and_the_report_shows_a_grid(tmp_path, capsys):
    runs = []
    for seed in (0, 1):
        config = RunConfig(env=EnvConfig("causalrl/LinearSEMBandit-v0", {"n_nodes": 4, "instance_seed": 0, "horizon": 120}),
                           agent=AgentConfig("csl-ucb"), experiment="g", seed=seed, total_steps=120, log_interval=30,
                           output_dir=str(tmp_path), progress_bar=False, save_model=False)
        runs.append(run(config).run_dir)
    first = runs[0]
    steps = [line["step"] for line in read_history(first)]
    assert main(["graph", str(first), "--checkpoint", str(steps[0]), "--dot"]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(first / f"graph_step{steps[0]}.png"), str(first / f"graph_step{steps[0]}.dot")]
    assert (first / f"graph_step{steps[0]}.png").stat().st_size > 5_000
    assert main(["graph", str(first), "--checkpoint", "7"]) == 2  # a step with no snapshot: one-line error
    assert "no snapshot at that step" in capsys.readouterr().err
    report = write_report([tmp_path / "g"], out=tmp_path / "report", reps=200)
    grid = [p for p in report.plots if p.name.startswith("graphs__")]
    assert len(grid) == 1 and grid[0].stat().st_size > 10_000
    assert f"]({grid[0].name})" in report.markdown.read_text()
    line = json.loads((first / "structure.jsonl").read_text().splitlines()[-1])
    assert line["reward_node"] == 3


def test_what_the_last_update_learned_reaches_structure_jsonl_discovery_jsonl_and_graph_png(tmp_path):
    # CIP discovers inside train(), which SB3 calls after the step's callbacks: a round at the
    # run's last step comes after that step's snapshot and must still be recorded at the end
    from types import SimpleNamespace

    from causalrl.experiment.run.callbacks import StructureHistory

    model = SimpleNamespace(num_timesteps=100, discovery_log=[{"round": 1, "step": 100}],
                            learned_structure={"state_to_reward": np.array([[1], [0]], dtype=bool)})
    history = StructureHistory(tmp_path, interval=100)
    history.model = model
    history.num_timesteps = 100
    history._on_step()  # the snapshot at step 100, before the last update
    model.learned_structure = {"state_to_reward": np.array([[0], [1]], dtype=bool)}  # the last update's round
    model.discovery_log = [*model.discovery_log, {"round": 2, "step": 100}]
    history._on_training_end()
    lines = read_history(tmp_path)
    assert [line["step"] for line in lines] == [100, 100] and lines[-1]["learned"]["state_to_reward"] == [[0], [1]]
    assert [json.loads(r)["round"] for r in (tmp_path / "discovery.jsonl").read_text().splitlines()] == [1, 2]
    assert (tmp_path / "graph.png").stat().st_size > 1000
    # nothing new learned at the end: no second line, the discovery log still rewritten
    model.discovery_log = [*model.discovery_log, {"round": 3, "step": 100}]
    history._on_training_end()
    assert len(read_history(tmp_path)) == 2
    assert len((tmp_path / "discovery.jsonl").read_text().splitlines()) == 3
