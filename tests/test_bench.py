"""`causalrl bench`: a tiny suite end to end (sweeps, report, leaderboard), a second run that skips
finished trials, one-line errors for bad suite files, ``{bench_dir}`` substitution, and every
shipped suite file read for every tier."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from causalrl.cli import main
from causalrl.experiment.batch.bench import TIERS, load_stage, load_suite, suite_names
from causalrl.experiment.config import ConfigError

BASE = {
    "experiment": "test-bench",
    "total_steps": 100,
    "log_interval": 25,
    "save_model": False,
    "env": {"id": "causalrl/LinearSEMBandit-v0", "n_nodes": 4, "horizon": 100},
    "agents": [{"name": "ucb"}, {"name": "linsem-ts-oracle"}],
}
TIERS_SPEC = {
    "smoke": {"overrides": ["total_steps=50", "env.horizon=50"], "seeds": 2},
    "standard": {"seeds": 3},
    "full": {"seeds": [0, 1, 2, 3]},
}


def _files(tmp_path: Path, **suite) -> Path:
    """A sweep file and a suite file (``bench-tiny.yaml``) running it; ``suite`` replaces keys
    (a value of None removes the key)."""
    sweep = {"name": "tiny-sweep", "base": BASE, "seeds": 5, "seed_overrides": ["seed={seed}", "env.instance_seed={seed}"]}
    (tmp_path / "sweep-tiny.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    data = {"description": "A tiny bandit suite.\nSecond line.", "docs": "docs/cli.md",
            "stages": [{"sweep": "sweep-tiny.yaml"}], "tiers": TIERS_SPEC,
            "compare": {"baseline": "ucb", "metrics": ["regret/cumulative"]}}
    data.update(suite)
    path = tmp_path / "bench-tiny.yaml"
    path.write_text(yaml.safe_dump({key: value for key, value in data.items() if value is not None}, sort_keys=False))
    return path


def _bench(path: Path, out: Path, *extra: str) -> int:
    return main(["bench", str(path), "--tier", "smoke", "--workers", "1", "--no-progress", "--output-dir", str(out),
                 "--reps", "200", *extra])


def test_a_suite_runs_end_to_end_and_again_skips_finished_trials(tmp_path, capsys):
    path = _files(tmp_path)
    assert _bench(path, tmp_path / "runs") == 0
    folder = tmp_path / "runs" / "bench" / "tiny" / "smoke"
    sweep = folder / "sweeps" / "tiny-sweep"
    trials = sorted(d.name for d in sweep.iterdir() if (d / "summary.json").exists())
    assert trials == [f"{agent}__base__s{seed}" for agent in ("linsem-ts-oracle", "ucb") for seed in (0, 1)]
    config = yaml.safe_load((sweep / "ucb__base__s1" / "config.yaml").read_text())
    assert config["total_steps"] == 50 and config["env"]["horizon"] == 50  # the smoke tier's overrides
    assert (folder / "report" / "report.md").is_file() and (folder / "bench.yaml").is_file()
    leaderboard = (folder / "leaderboard.md").read_text()
    assert f"causalrl bench {path} --tier smoke" in leaderboard
    out = capsys.readouterr().out
    assert "bench tiny (smoke tier)" in out and "4 trials, 4 ok (0 already finished), 0 failed" in out
    lines = (sweep / "trials.jsonl").read_text().splitlines()

    assert _bench(path, tmp_path / "runs") == 0  # again: nothing is re-run
    assert "4 trials, 4 ok (4 already finished), 0 failed" in capsys.readouterr().out
    assert (sweep / "trials.jsonl").read_text().splitlines() == lines
    assert not (folder / "vs-linsem-ts-oracle").exists()


def test_also_against_writes_one_more_leaderboard_per_baseline(tmp_path, capsys):
    path = _files(tmp_path, compare={"baseline": "ucb", "metrics": ["regret/cumulative"],
                                     "also_against": ["linsem-ts-oracle"]})
    assert _bench(path, tmp_path / "runs") == 0
    folder = tmp_path / "runs" / "bench" / "tiny" / "smoke"
    main_board = (folder / "leaderboard.csv").read_text()
    other_board = (folder / "vs-linsem-ts-oracle" / "leaderboard.csv").read_text()
    out = capsys.readouterr().out
    assert "baseline: ucb " in out and "baseline: linsem-ts-oracle " in out and "vs-linsem-ts-oracle/leaderboard.md" in out
    # each board pairs the other agent with its own baseline: the differences change sign
    rows = {board: list(csv.DictReader(io.StringIO(text))) for board, text in (("ucb", main_board),
                                                                                ("oracle", other_board))}
    ucb_vs_oracle = [float(r["difference"]) for r in rows["oracle"] if r["agent"] == "ucb"]
    oracle_vs_ucb = [float(r["difference"]) for r in rows["ucb"] if r["agent"] == "linsem-ts-oracle"]
    assert ucb_vs_oracle and ucb_vs_oracle == pytest.approx([-d for d in oracle_vs_ucb])


@pytest.mark.parametrize(("change", "message"), [
    ({"tiers": {"smoke": TIERS_SPEC["smoke"], "standard": {"seeds": 3}}}, "tiers: tier 'full' is missing"),
    ({"stagez": []}, "unknown key 'stagez'"),
    ({"stages": [{"sweep": "no-such-sweep"}]}, "stages[0].sweep: unknown preset or file 'no-such-sweep'"),
    ({"stages": [{"sweep": "sweep-tiny.yaml", "tiers": {"smoke": {"seed": 3}}}]}, "stages[0].tiers.smoke: unknown key 'seed'"),
    ({"tiers": {**TIERS_SPEC, "smoke": {"seeds": -1}}}, "tiers.smoke: seeds must be a positive count"),
    ({"compare": {"baseline": "ucb"}}, "compare.metrics must be a non-empty list"),
    ({"compare": {"baseline": "ucb", "metrics": ["regret/cumulative"], "also_against": "linsem-ts-oracle"}},
     "compare.also_against must be a list of agents other than the baseline"),
    ({"compare": {"baseline": "ucb", "metrics": ["regret/cumulative"], "also_against": ["ucb"]}},
     "compare.also_against must be a list of agents other than the baseline"),
    ({"stages": [{"sweep": "sweep-tiny.yaml", "overrides": ["agents.ucb.exploraton=2"]}]}, "exploraton"),
])
def test_bad_suite_files_are_one_line_errors(tmp_path, capsys, change, message):
    assert _bench(_files(tmp_path, **change), tmp_path / "runs") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("causalrl: error: ") and "\n" not in error and message in error
    assert not list((tmp_path / "runs").glob("bench/tiny/smoke/sweeps/*/*/summary.json"))


def test_bench_dir_is_replaced_and_stages_of_one_sweep_get_their_own_folders(tmp_path):
    stages = [{"sweep": "sweep-tiny.yaml", "overrides": ["agents=ucb"], "compare": False},
              {"sweep": "sweep-tiny.yaml", "overrides": ["agents=linsem-ts-oracle"],
               "tiers": {"smoke": {"overrides": ["output_dir={bench_dir}/from-stage-1"], "seeds": [7]}}}]
    suite = load_suite(_files(tmp_path, stages=stages), "smoke", output_dir=tmp_path / "runs")
    folder = tmp_path / "runs" / "bench" / "tiny" / "smoke"
    assert suite.directory == folder and [stage.compare for stage in suite.stages] == [False, True]
    assert [stage.name for stage in suite.stages] == ["tiny-sweep__agents-ucb", "tiny-sweep__agents-linsem-ts-oracle"]
    assert suite.stages[0].seeds == [0, 1] and suite.stages[1].seeds == [7]  # the stage's tier wins over the suite's
    assert suite.stages[1].overrides == ("agents=linsem-ts-oracle", "total_steps=50", "env.horizon=50",
                                         f"output_dir={folder}/from-stage-1")
    sweep = load_stage(suite, suite.stages[1])
    assert sweep.directory == folder / "sweeps" / "tiny-sweep__agents-linsem-ts-oracle"
    assert [trial.name for trial in sweep.trials] == ["linsem-ts-oracle__base__s7"]
    assert sweep.trials[0].config.output_dir == f"{folder}/from-stage-1"
    assert suite.description.splitlines()[0] == "A tiny bandit suite." and suite.baseline == "ucb"


def test_a_stage_is_validated_only_when_it_runs(tmp_path):
    """A later stage may name a file an earlier stage writes: reading the suite does not validate
    its trials; loading the stage does, with the stage named."""
    stages = [{"sweep": "sweep-tiny.yaml"}, {"sweep": "sweep-tiny.yaml", "overrides": ["agents.ucb.exploraton=2"]}]
    suite = load_suite(_files(tmp_path, stages=stages), "smoke", output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"stages\[1\]: .*exploraton"):
        load_stage(suite, suite.stages[1])


@pytest.mark.parametrize("tier", TIERS)
def test_every_shipped_suite_reads_for_every_tier(tier, tmp_path):
    names = suite_names()
    assert {"csl-ucb-paper", "cip-gym", "structure-learning", "csl-ucb-nonstationary", "rlif-factored",
            "rlif-judge-quality"} <= set(names)
    for name in names:
        suite = load_suite(name, tier, output_dir=tmp_path)
        assert suite.stages and suite.directory == tmp_path / "bench" / suite.name / tier
        assert json.dumps([stage.overrides for stage in suite.stages])  # plain text, no placeholders left
        assert not any("{bench_dir}" in text for stage in suite.stages for text in stage.overrides)


@pytest.mark.slow
def test_every_shipped_suite_runs_end_to_end_at_the_smoke_tier(tmp_path, capsys):
    """`causalrl bench all --tier smoke`: every suite's stages, report and leaderboard (about five
    minutes on 2 cores, so `-m slow`; the README's test command and CI run the same command
    directly). Each suite must leave a leaderboard whose rows pair every compared agent with the
    baseline."""
    code = main(["bench", "all", "--tier", "smoke", "--workers", "2", "--no-progress", "--output-dir", str(tmp_path)])
    output = capsys.readouterr()
    assert code == 0, output.out[-2000:] + output.err[-2000:]
    suites = suite_names()
    assert suites
    for source in suites:
        suite = load_suite(source, "smoke", tmp_path)
        leaderboard = suite.directory / "leaderboard.md"
        assert leaderboard.is_file(), source
        text = leaderboard.read_text()
        assert f"causalrl bench {source} --tier smoke" in text, source
        assert "n pairs" in text and "(baseline)" in text, source
