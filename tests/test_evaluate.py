"""`causalrl evaluate RUN_DIR` (RL Zoo's enjoy): the saved agent plays alone on its env rebuilt from
config.yaml, with a mean return, a 95% bootstrap CI and, on request, a video (docs/cli.md)."""

import imageio.v2 as imageio
import numpy as np
import pytest

import causalrl
from causalrl.cli import main
from causalrl.envs.bandits import LinearSEMBandit
from causalrl.experiment.config import ConfigError
from causalrl.experiment.run.replay import write_video

BANDIT = dict(agents="ucb", total_steps=200, log_interval=50, env__horizon=40, env__n_nodes=4)


def test_evaluate_plays_the_saved_policy_alone_as_the_runners_evaluation_does(tmp_path):
    # an intervention world: trained with its expert, evaluated (by the runner and here) without it
    result = causalrl.run({
        "env": {"id": "causalrl/FactoredLQRIntervention-v0", "n_distractor_states": 1, "horizon": 8},
        "agent": {"name": "sac", "learning_starts": 30, "policy_kwargs": {"net_arch": [8]}},
        "total_steps": 40, "log_interval": 20, "eval_interval": 40, "eval_episodes": 3, "output_dir": str(tmp_path)})
    evaluation = causalrl.evaluate(result, episodes=3, video=tmp_path / "videos")
    # the same seeded episodes (EVAL_SEED + i) as the runner's last evaluation of the same policy
    assert evaluation.mean == pytest.approx(result.metrics["eval/mean_reward"], rel=1e-9)
    assert evaluation.normalised_score == pytest.approx(result.metrics["eval/deterministic_normalised_score"], rel=1e-9)
    assert len(evaluation.returns) == 3 and evaluation.ci_low <= evaluation.mean <= evaluation.ci_high
    assert "95% CI" in evaluation.text and "deterministic policy" in evaluation.text
    frames = imageio.mimread(evaluation.video)  # the first episode: the reset frame and one per step
    assert len(frames) == 9 and frames[0].shape == (240, 320, 3)
    assert not np.all(frames[0][:6] == (230, 159, 0))  # evaluated alone: no expert border


def test_evaluate_command_prints_one_line_for_a_bandit_run(tmp_path, capsys):
    run_dir = causalrl.run("default", output_dir=str(tmp_path), **BANDIT).run_dir
    assert main(["evaluate", str(run_dir), "--episodes", "2", "--stochastic", "--seed", "5"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("ucb on causalrl/LinearSEMBandit-v0: mean return ")
    assert "over 2 episodes (stochastic policy, reset seeds 5..6)" in line
    once = causalrl.evaluate(run_dir, episodes=1)
    assert once.ci_low == once.mean == once.ci_high and "1 episode: no interval" in once.text


def test_evaluate_refuses_with_one_line(tmp_path, capsys, monkeypatch):
    run_dir = causalrl.run("default", output_dir=str(tmp_path), **BANDIT).run_dir
    monkeypatch.setattr(LinearSEMBandit, "metadata", {"render_modes": []})
    with pytest.raises(ConfigError, match=r"^--video: causalrl/LinearSEMBandit-v0 cannot draw frames"):
        causalrl.evaluate(run_dir, video=tmp_path / "videos")
    (run_dir / "model.zip").unlink()
    assert main(["evaluate", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip().endswith("no model.zip (the run is unfinished, or ran with "
                                                    "save_model=false); evaluate a complete run that saved its model")
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert main(["evaluate", str(run_dir), "--episodes", "0"]) == 2


def test_videos_are_gifs_without_imageio_ffmpeg_and_keep_browser_speeds(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    frames = [np.full((24, 32, 3), value, dtype=np.uint8) for value in range(0, 250, 5)]  # 50 frames
    path = write_video(frames, tmp_path / "clip", fps=50)
    assert path.name == "clip.gif" and len(imageio.mimread(path)) == 25  # every 2nd frame: 25 fps
