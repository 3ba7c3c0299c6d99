"""Details users of SB3 and RL Zoo hit: a second bandit ``learn()`` goes on with the world's noise
(the seed goes to the first reset only, as in SB3); a constructor's own check names the config
field (``env.noise_std``, ``agent[csl-ucb].delta``), and ``total_steps=1e3`` is refused with the integer
to write; the report puts agents trained for different
budgets in one table with their budgets; the examples' docstrings state what each mode runs and
how long the full mode takes."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import gymnasium as gym
import pytest

from causalrl.cli import main
from causalrl.experiment.run.construct import field_error

ROOT = Path(__file__).resolve().parent.parent


class SeedRecorder(gym.Wrapper):
    """Records the seed of every reset."""

    def __init__(self, env):
        super().__init__(env)
        self.seeds = []

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        return self.env.reset(seed=seed, options=options)


def test_a_second_bandit_learn_goes_on_with_the_worlds_noise():
    from stable_baselines3.common.callbacks import BaseCallback

    from causalrl.agents import UCB

    class Rewards(BaseCallback):
        def __init__(self):
            super().__init__()
            self.values = []

        def _on_step(self):
            self.values.append(float(self.locals["rewards"][0]))
            return True

    env = SeedRecorder(gym.make("causalrl/LinearSEMBandit-v0", n_nodes=3, horizon=100))
    agent = UCB("BanditPolicy", env, seed=7)
    first, second = Rewards(), Rewards()
    agent.learn(8, callback=first)
    agent.learn(8, callback=second)  # reset_num_timesteps=True: the env is reset, not re-seeded
    assert env.seeds == [7, None]
    assert agent.num_timesteps == 8 and len(first.values) == len(second.values) == 8


@pytest.mark.parametrize("override, message", [
    ("env.noise_std=-1", "causalrl: error: env.noise_std: must be >= 0, got -1\n"),
    ("agents.csl-ucb.delta=2", "causalrl: error: agent[csl-ucb].delta: must be in (0, 1), got 2\n"),
    ("total_steps=1e3", "causalrl: error: total_steps: must be a positive integer, got '1e3'; write 1000\n"),
])
def test_bad_arguments_are_one_line_errors_naming_the_field(in_tmp, capsys, override, message):
    assert main(["run", "--no-progress", override]) == 2
    assert capsys.readouterr().err == message
    assert not (in_tmp / "runs").exists()


def test_field_error_prefixes_only_fields_the_config_gave():
    assert field_error("env", ValueError("noise_std: must be >= 0"), {"noise_std": -1}) == "env.noise_std: must be >= 0"
    assert field_error("env", ValueError("weights[0]: bad"), {"weights": 1}) == "env.weights[0]: bad"
    # a message about something the config did not set keeps the constructor's name in front
    assert (field_error("env", ValueError("graph: has a cycle"), {"noise_std": 1}, "env (causalrl/X-v0)")
            == "env (causalrl/X-v0): graph: has a cycle")
    assert field_error("agent[ucb]", TypeError("bad"), {}) == "agent[ucb]: TypeError: bad"


def test_report_puts_agents_of_different_budgets_in_one_table(in_tmp):
    from causalrl.experiment.analysis.report import write_report

    for agent, steps in (("ucb", 100), ("csl-ucb", 200)):
        for seed in (0, 1):
            assert main(["run", "--no-progress", f"agents={agent}", f"total_steps={steps}", "log_interval=50",
                         f"seed={seed}", "env.n_nodes=4", "env.horizon=200"]) == 0
    report = write_report([in_tmp / "runs"], out=in_tmp / "report", reps=200)
    markdown = report.markdown.read_text()
    sections = [line for line in markdown.splitlines() if line.startswith("## ") and "LinearSEM" in line]
    assert len(sections) == 1, sections  # one env table, not one per budget
    table = markdown.split(sections[0])[1].split("\n\n")[1].splitlines()
    assert table[0].startswith("| agent | runs | total_steps | ")
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[2] for line in table[2:]}
    assert rows == {"csl-ucb": "200", "ucb": "100"}


def _fast_and_full(tree: ast.Module) -> list[tuple[object, object]]:
    """(fast, full) of every module-level ``name = X if args.fast else Y`` whose branches are
    numbers (the sizes of a run: steps, rounds)."""
    pairs = []
    for statement in tree.body:
        node = statement.value if isinstance(statement, ast.Assign) else None
        if isinstance(node, ast.IfExp) and ast.unparse(node.test) == "args.fast":
            try:
                fast, full = ast.literal_eval(node.body), ast.literal_eval(node.orelse)
            except ValueError:
                continue
            if all(isinstance(v, int) for v in (fast, full)):
                pairs.append((fast, full))
            elif isinstance(fast, tuple) and all(isinstance(v, int) for v in (*fast, *full)):
                pairs += list(zip(fast, full))
    return pairs


def _spellings(number: int) -> set[str]:
    spelled = {str(number), f"{number:,}"}
    if number >= 1000 and number % 1000 == 0:
        spelled.add(f"{number // 1000}k")
    return spelled


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_example_docstrings_state_the_sizes_the_code_runs_and_the_full_duration(name):
    source = (ROOT / "examples" / name).read_text(encoding="utf-8")
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    lines = [line for line in doc.splitlines() if f"examples/{name}" in line]
    fast = next(line for line in lines if "--fast" in line)
    full = next(line for line in lines if "--fast" not in line)
    pairs = _fast_and_full(tree)
    assert pairs, f"{name}: no `X if args.fast else Y` sizes found"
    for small, large in pairs:
        if small != large:
            assert any(re.search(rf"\b{re.escape(s)}\b", fast) for s in _spellings(small)), (name, small, fast)
            assert any(re.search(rf"\b{re.escape(s)}\b", full) for s in _spellings(large)), (name, large, full)
    duration = r"about \d+(\.\d+)? (s|seconds|minutes?)\b"
    assert re.search(duration, full) or re.search(r"full mode takes " + duration, " ".join(doc.split())), \
        f"{name}: the docstring does not say how long the full mode takes"


def test_report_summary_json_keeps_budgets_apart_for_the_leaderboard(tmp_path):
    from causalrl.experiment.analysis.runs import find_runs, group_runs

    for name, steps in (("a", 100), ("b", 200)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.yaml").write_text(f"env: {{id: causalrl/LinearSEMBandit-v0}}\nagent: {{name: ucb}}\n"
                                            f"seed: 0\ntotal_steps: {steps}\n")
        (folder / "summary.json").write_text(json.dumps({"status": "complete", "env": "e", "agent": "ucb",
                                                         "steps": steps, "final": {"regret/cumulative": 1.0}}))
    runs = find_runs([tmp_path])
    assert len({group.env for group in group_runs(runs)}) == 2  # the leaderboard pairs equal budgets only
    together = group_runs(runs, budget_apart=False)
    assert len({group.env for group in together}) == 1
    assert sorted(group.agent for group in together) == ["ucb (total_steps=100)", "ucb (total_steps=200)"]
