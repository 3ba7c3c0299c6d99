"""Leaderboards of paired differences against a baseline, on synthetic run directories: a known
shift is recovered exactly, runs pair by seed (not by folder order), unpaired runs are counted and
left out, lower-is-better metrics flip P(improvement), leaderboard.md names its command and marks
significant differences, and an unknown baseline is a one-line error."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from causalrl.experiment.analysis.leaderboard import write_leaderboard

BASE = [10.0, 13.5, 7.25, 20.0, 4.5, 9.75]  # exact in binary: value + 1 - value == 1


def _run_dir(root, name, agent, seed, final, env_kwargs=None):
    path = root / name
    path.mkdir(parents=True)
    config = {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, "instance_seed": seed, **(env_kwargs or {})},
              "agent": {"name": agent}, "experiment": "t", "seed": seed, "total_steps": 100}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    # the fields the runner writes: only such a summary counts as a finished run
    (path / "summary.json").write_text(json.dumps({"status": "complete", "final": final, "steps": 100,
                                                   "env": config["env"]["id"], "agent": agent}))
    return path


def _row(board, agent, metric):
    return next(r for r in board.rows if r["agent"] == agent and r["metric"] == metric)


def test_a_known_paired_shift_is_recovered_and_lower_is_better_flips_the_probability(tmp_path):
    for seed, value in enumerate(BASE):
        final = {"regret/cumulative": value, "reward/cumulative": value}
        _run_dir(tmp_path / "runs", f"ucb__s{seed}", "ucb", seed, final)
        _run_dir(tmp_path / "runs", f"csl__s{seed}", "csl-ucb", seed, {k: v + 1 for k, v in final.items()})
    board = write_leaderboard([tmp_path / "runs"], tmp_path / "out", baseline="ucb",
                              metrics=["reward/cumulative", "regret/cumulative"], reps=200)
    reward, regret = _row(board, "csl-ucb", "reward/cumulative"), _row(board, "csl-ucb", "regret/cumulative")
    for row in (reward, regret):
        assert row["n_pairs"] == 6 and row["unpaired"] == 0
        assert (row["difference"], row["difference_low"], row["difference_high"]) == (1.0, 1.0, 1.0)
        assert row["significant"] is True
    assert reward["better"] == "higher" and reward["p_improvement"] == 1.0  # +1 reward: better on every seed
    assert regret["better"] == "lower" and regret["p_improvement"] == 0.0  # +1 regret: worse on every seed
    assert (regret["p_improvement_low"], regret["p_improvement_high"]) == (0.0, 0.0)
    assert board.markdown.is_file() and board.png.stat().st_size > 5_000
    with open(board.csv) as handle:
        assert [r["agent"] for r in csv.DictReader(handle)] == ["ucb", "csl-ucb"] * 2


def test_runs_pair_by_seed_not_by_folder_order(tmp_path):
    # folders sort in a different order than seeds, and the instance is seeded from the trial seed
    agent_order, baseline_order = [3, 0, 5, 1, 4, 2], [5, 4, 3, 2, 1, 0]
    for index, seed in enumerate(agent_order):
        _run_dir(tmp_path / "runs", f"csl__{index}", "csl-ucb", seed, {"regret/cumulative": 100.0 * seed - 2})
    for index, seed in enumerate(baseline_order):
        _run_dir(tmp_path / "runs", f"ucb__{index}", "ucb", seed, {"regret/cumulative": 100.0 * seed})
    board = write_leaderboard(tmp_path / "runs", tmp_path / "out", "ucb", ["regret/cumulative"], reps=200)
    row = _row(board, "csl-ucb", "regret/cumulative")
    assert row["n_pairs"] == 6
    assert (row["difference"], row["difference_low"], row["difference_high"]) == (-2.0, -2.0, -2.0)
    assert row["p_improvement"] == 1.0  # lower regret on every paired instance


def test_unpaired_runs_are_counted_and_left_out(tmp_path):
    for seed in range(6):
        _run_dir(tmp_path / "runs", f"ucb__s{seed}", "ucb", seed, {"regret/cumulative": BASE[seed]})
    for seed in (0, 1, 2, 3, 10):  # seed 10 has no baseline partner; seeds 4 and 5 have no agent run
        value = 1000.0 if seed == 10 else 0.0
        _run_dir(tmp_path / "runs", f"csl__s{seed}", "csl-ucb", seed, {"regret/cumulative": value})
    board = write_leaderboard([tmp_path / "runs"], tmp_path / "out", "ucb", ["regret/cumulative"], reps=200)
    row = _row(board, "csl-ucb", "regret/cumulative")
    assert (row["n_pairs"], row["unpaired"], row["unpaired_agent"], row["unpaired_baseline"]) == (4, 3, 1, 2)
    assert row["runs"] == 5  # the IQM uses every complete run of the agent
    assert row["difference"] == pytest.approx(-sum(BASE[:4]) / 4)  # the seed-10 run (1000) is left out
    markdown = board.markdown.read_text()
    assert "| csl-ucb | 4 (unpaired: 3) |" in markdown
    assert "n = 4: the intervals are wide" in markdown


def test_markdown_names_the_command_and_marks_only_significant_differences(tmp_path):
    noise = [-1.0, 1.0, -2.0, 2.0, 0.5, -0.5]  # centred on 0: not significant
    for seed, value in enumerate(BASE):
        _run_dir(tmp_path / "runs", f"ucb__s{seed}", "ucb", seed, {"regret/cumulative": value})
        _run_dir(tmp_path / "runs", f"good__s{seed}", "linsem-ts-oracle", seed, {"regret/cumulative": value - 5})
        _run_dir(tmp_path / "runs", f"same__s{seed}", "csl-ucb", seed, {"regret/cumulative": value + noise[seed]})
    command = "causalrl bench csl-ucb --tier smoke"
    board = write_leaderboard([tmp_path / "runs"], tmp_path / "out", "ucb", ["regret/cumulative"], reps=500,
                              title="csl-ucb (smoke tier)", command=command)
    markdown = board.markdown.read_text()
    assert markdown.startswith("# csl-ucb (smoke tier)\n") and f"Command: `{command}`" in markdown
    lines = {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "**-5 [-5, -5]**" in lines["linsem-ts-oracle"]
    assert "**" not in lines["csl-ucb"] and not _row(board, "csl-ucb", "regret/cumulative")["significant"]
    assert "the intervals are wide" not in markdown  # 6 pairs
    agents = [line.split(" | ")[0].strip("| ") for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert agents == ["ucb", "linsem-ts-oracle", "csl-ucb"]  # the baseline, then best first
    assert "linsem-ts-oracle" in board.text and " *" in board.text
    again = write_leaderboard([tmp_path / "runs"], tmp_path / "again", "ucb", ["regret/cumulative"], reps=500,
                              title="csl-ucb (smoke tier)", command=command)
    assert again.csv.read_text() == board.csv.read_text()  # the bootstrap is seeded: reproducible


def test_an_unknown_baseline_or_metric_is_a_one_line_error(tmp_path):
    for seed in range(2):
        _run_dir(tmp_path / "runs", f"ucb__s{seed}", "ucb", seed, {"regret/cumulative": 1.0})
        _run_dir(tmp_path / "runs", f"csl__s{seed}", "csl-ucb", seed, {"regret/cumulative": 2.0})
    with pytest.raises(ValueError, match="^baseline 'sac': no such agent in the runs; agents present: csl-ucb, ucb$"):
        write_leaderboard([tmp_path / "runs"], tmp_path / "out", "sac", ["regret/cumulative"], reps=200)
    with pytest.raises(ValueError, match="^leaderboard: metrics: no complete run logged task/window_return_mean; "):
        write_leaderboard([tmp_path / "runs"], tmp_path / "out", "ucb", ["task/window_return_mean"], reps=200)


def test_each_env_gets_its_own_axis_and_a_metric_an_env_does_not_log_no_section(tmp_path, monkeypatch):
    # returns on one env are 1,000 times the other's: on one shared axis the small env's
    # intervals would vanish, so every env x metric is a panel of its own
    from causalrl.experiment.analysis import leaderboard

    drawn = {}

    def keep_panels(panels, path, title=""):
        drawn["panels"] = panels
        return None

    monkeypatch.setattr(leaderboard, "plot_forest", keep_panels)
    for seed, value in enumerate(BASE):
        for n_nodes, scale in ((4, 1.0), (5, 1000.0)):
            final = {"regret/cumulative": scale * value} | ({"structure/shd": value} if n_nodes == 4 else {})
            _run_dir(tmp_path / "runs", f"ucb_{n_nodes}__s{seed}", "ucb", seed, final, {"n_nodes": n_nodes})
            shifted = {key: number + scale for key, number in final.items()}
            _run_dir(tmp_path / "runs", f"csl_{n_nodes}__s{seed}", "csl-ucb", seed, shifted, {"n_nodes": n_nodes})
    board = write_leaderboard([tmp_path / "runs"], tmp_path / "out", baseline="ucb",
                              metrics=["regret/cumulative", "structure/shd"], reps=200)
    titles = [panel.title for panel in drawn["panels"]]
    assert len(titles) == 3 and len(set(titles)) == 3  # two envs x regret, one env x shd
    assert all(len(panel.rows) == 1 for panel in drawn["panels"])
    assert sum(1 for row in board.rows if row["metric"] == "structure/shd") == 2  # the n_nodes=5 env has no section
