"""Every registered world renders rgb_array frames (docs/worlds.md, "Rendering"): numpy-drawn bars
for the factored worlds and the bandits, MuJoCo frames for the MuJoCo worlds (headless through
EGL: ``causalrl.envs.render.mujoco_frame`` picks it when no display is present)."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_util import make_vec_env

from causalrl.envs.bandits import LinearSEMBandit
from causalrl.envs.factored import FactoredLQR
from causalrl.envs.render import FRAME_HEIGHT, FRAME_WIDTH
from causalrl.experiment.config.plugins import registered_env_ids

NUMPY_DRAWN = ["causalrl/LinearSEMBandit-v0", "causalrl/PiecewiseSEMBandit-v0", "causalrl/FactoredLQR-v0",
               "causalrl/FactoredNonlinear-v0", "causalrl/FactoredLQRIntervention-v0"]


@pytest.mark.parametrize("env_id", registered_env_ids())
def test_every_registered_world_renders_an_rgb_frame(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    assert "rgb_array" in env.unwrapped.metadata["render_modes"] and env.unwrapped.metadata["render_fps"] > 0
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    if env_id in NUMPY_DRAWN:
        assert frame.shape == (FRAME_HEIGHT, FRAME_WIDTH, 3)
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 3  # bars (or a scene), not one colour
    env.close()


@pytest.mark.parametrize("env_id", NUMPY_DRAWN)
def test_gymnasium_checker_with_its_render_check_passes(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded Box warnings
        gymnasium_check_env(gym.make(env_id).unwrapped)  # makes the env again with every render mode
    env = gym.make(env_id)
    env.reset(seed=0)
    assert env.render() is None  # render_mode None (the default) draws nothing


def test_frames_follow_the_state_and_mark_the_reward_node():
    env = LinearSEMBandit(n_nodes=5, instance_seed=1, render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    env.step(np.array([1, 0, 1, 0, 0]))
    after = env.render()
    assert not np.array_equal(before, after)
    green = np.all(after == (0, 158, 115), axis=-1)
    assert green[: FRAME_HEIGHT // 3].any()  # the reward node's bar is green in the node band
    orange = np.all(after == (213, 94, 0), axis=-1)[FRAME_HEIGHT // 3: 2 * FRAME_HEIGHT // 3]
    columns = np.flatnonzero(orange.any(axis=0))
    assert columns.min() < FRAME_WIDTH // 5 and FRAME_WIDTH * 2 // 5 < columns.max() < FRAME_WIDTH * 3 // 5  # nodes 0, 2


def test_intervention_frames_are_bordered_while_the_expert_acts():
    env = gym.make("causalrl/FactoredLQRIntervention-v0", render_mode="rgb_array", strategy="random", rate=1.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["intervened"]
    assert np.all(env.render()[0, 0] == (230, 159, 0))
    alone = env.unwrapped.evaluation_env()  # the learner alone renders too
    alone.reset(seed=0)
    assert alone.render().shape == (FRAME_HEIGHT, FRAME_WIDTH, 3)


def test_unknown_render_modes_are_one_line_errors_and_sb3_vec_envs_render():
    with pytest.raises(ValueError, match=r"^render_mode: FactoredLQR renders \['rgb_array'\] only, got 'human'"):
        FactoredLQR(render_mode="human")
    vec_env = make_vec_env("causalrl/FactoredLQR-v0", n_envs=2, seed=0)  # asks for render_mode="rgb_array"
    vec_env.reset()
    assert [image.shape for image in vec_env.get_images()] == [(FRAME_HEIGHT, FRAME_WIDTH, 3)] * 2
    vec_env.close()
