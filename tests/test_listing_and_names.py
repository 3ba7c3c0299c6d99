"""`causalrl list` prints one short line per name, and sweep and tune folders of plugin agents
(`module:Class`) carry no colon (it breaks scp and Windows paths)."""

import causalrl
from causalrl.api import SUMMARY_LIMIT, catalog, summary_line
from causalrl.experiment.batch.sweep import load_sweep
from causalrl.experiment.batch.trials import folder_name


def test_list_prints_one_sentence_of_at_most_100_characters_per_name():
    entries = [summary for section in catalog().values() for summary in section.values()]
    assert entries and all(len(summary) <= SUMMARY_LIMIT and "\n" not in summary for summary in entries)
    world = catalog()["envs"]["causalrl/HalfCheetahDistractors-v0"]
    assert world == "A MuJoCo env with reward-irrelevant distractor dimensions appended, as one env"
    long = "CIP: SAC with causal information prioritisation, " + "and more words " * 20 + ". A second sentence."
    cut = summary_line(long)
    assert len(cut) <= SUMMARY_LIMIT and cut.endswith("…") and not cut[:-1].endswith(" ")
    assert summary_line("Vanilla UCB (e.g. UCB1). Then details.") == "Vanilla UCB (e.g. UCB1)"


def test_sweep_trial_folders_of_plugin_agents_have_no_colon(tmp_path):
    assert folder_name("mypkg.learners:Greedy") == "mypkg.learners-Greedy"
    spec = {"name": "plug", "seeds": 2, "base": {"env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4},
                                                 "agent": {"name": "causalrl.agents.ucb:UCB"}, "total_steps": 10}}
    sweep = load_sweep(spec, output_dir=tmp_path)
    assert [trial.name for trial in sweep.trials] == ["causalrl.agents.ucb-UCB__base__s0", "causalrl.agents.ucb-UCB__base__s1"]
    assert sweep.trials[0].agent == "causalrl.agents.ucb:UCB"  # the agent keeps its name; only the folder changes
    assert all(":" not in str(sweep.directory / trial.name) for trial in sweep.trials)
    assert causalrl.configs(spec["base"])[0].agent.name == "causalrl.agents.ucb:UCB"
