"""Metric names SB3 users recognise: a run of SB3's SAC through ``causalrl run`` and a plain SB3
SAC with its own logger write the same TensorBoard tags for the same quantities; windowed
metrics say so; the README and docs/runner.md list is the one generated from
``causalrl.experiment.run.metric_names``; older run folders are read under today's names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from causalrl.cli import main
from causalrl.experiment.run.metric_names import METRICS, OLD_NAMES, TABLE_FILES, markdown_table, replace_table

ROOT = Path(__file__).resolve().parent.parent


def _scalar_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in folder.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


def test_causalrl_run_of_sb3_sac_writes_sb3s_tensorboard_tags(in_tmp, one_torch_thread):
    import stable_baselines3

    tiny = {"learning_starts": 100, "batch_size": 32, "buffer_size": 1000, "policy_kwargs": {"net_arch": [16]}}
    (in_tmp / "sac.yaml").write_text(json.dumps({
        "experiment": "names", "total_steps": 400, "log_interval": 200, "seed": 0, "progress_bar": False,
        "env": {"id": "Pendulum-v1"}, "agent": {"name": "sac", **tiny}}))
    assert main(["run", "--no-progress", "sac.yaml"]) == 0
    (run_dir,) = (in_tmp / "runs" / "names").iterdir()
    ours = _scalar_tags(run_dir)

    # SB3's own SAC with its own TensorBoard logger: one dump at the end of each 200-step episode
    model = stable_baselines3.SAC("MlpPolicy", "Pendulum-v1", seed=0, tensorboard_log=str(in_tmp / "sb3"), **tiny)
    model.learn(400, log_interval=1)
    theirs = _scalar_tags(in_tmp / "sb3")

    shared = {"rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "train/actor_loss", "train/critic_loss",
              "train/ent_coef", "train/ent_coef_loss", "train/learning_rate"}
    assert shared <= theirs, theirs  # what SB3 itself writes
    assert theirs <= ours, f"SB3 writes {sorted(theirs - ours)} that the causalrl run does not"
    assert not {"reward/mean", "eval/return_mean", "reward/episode_return_mean"} & ours
    with open(run_dir / "progress.csv") as handle:
        header = next(csv.reader(handle))
    assert "rollout/ep_rew_mean" in header and "time/fps" not in header  # wall clock stays out of the file
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"]["rollout/ep_len_mean"] == 200.0  # Pendulum's episodes: SB3's meaning


def test_reward_window_mean_is_the_mean_of_its_window(in_tmp):
    assert main(["run", "--no-progress", "agents=ucb", "total_steps=300", "log_interval=100"]) == 0
    (run_dir,) = (in_tmp / "runs").rglob("progress.csv")
    with open(run_dir) as handle:
        rows = list(csv.DictReader(handle))
    cumulative = [0.0] + [float(row["reward/cumulative"]) for row in rows]
    for index, row in enumerate(rows):
        window = cumulative[index + 1] - cumulative[index]
        assert float(row["reward/window_mean"]) == pytest.approx(window / 100, rel=1e-9)
    assert "regret/window_optimal_action_rate" in rows[0] and "reward/mean" not in rows[0]


@pytest.mark.parametrize("name", TABLE_FILES)
def test_the_metric_list_in_readme_and_docs_is_the_generated_one(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    assert replace_table(text, name) == text, (f"{name}: its metric list differs from metric_names.METRICS; "
                                               "run `python -m causalrl.experiment.run.metric_names`")
    assert markdown_table() in text


def test_the_table_names_every_metric_once_and_old_names_map_to_listed_ones():
    names = [metric.name for metric in METRICS]
    assert len(names) == len(set(names))
    assert set(OLD_NAMES.values()) <= set(names) and not set(OLD_NAMES) & set(names)
    windowed = [metric.name for metric in METRICS if "last `log_interval`" in metric.meaning
                or "last 100 rounds" in metric.meaning]
    assert windowed and all("window" in name for name in windowed)


def test_report_reads_a_run_folder_written_with_the_old_names(tmp_path):
    from causalrl.experiment.analysis.runs import find_runs

    run_dir = tmp_path / "old" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("env: {id: causalrl/LinearSEMBandit-v0}\nagent: {name: ucb}\nseed: 0\n")
    (run_dir / "progress.csv").write_text("time/steps,reward/mean,regret/optimal_action_rate\n100,0.5,0.25\n")
    (run_dir / "summary.json").write_text(json.dumps({
        "status": "complete", "env": "causalrl/LinearSEMBandit-v0", "agent": "ucb", "steps": 100, "final": {
        "time/steps": 100, "reward/mean": 0.5, "regret/optimal_action_rate": 0.25, "eval/return_mean": 3.0}}))
    (record,) = find_runs([tmp_path])
    assert record.status == "ok"
    assert record.final == {"time/steps": 100.0, "reward/window_mean": 0.5, "regret/window_optimal_action_rate": 0.25,
                            "task/window_return_mean": 3.0}
    assert record.curves() == {"reward/window_mean": {100.0: 0.5}, "regret/window_optimal_action_rate": {100.0: 0.25}}
