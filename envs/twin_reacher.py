"""TwinReacher: two independent planar 2-link arms in one MuJoCo scene, rewarded by arm A only.

Built from our own MJCF (``TWIN_REACHER_XML`` below, Reacher-like links, joints and motors),
stepped with the ``mujoco`` bindings directly; ``render_mode="rgb_array"`` draws top-down frames
with gymnasium's MuJoCo renderer (without a display through EGL, or ``MUJOCO_GL=osmesa``). The
arms stand 0.6 apart (reach 0.21 each) and no geom collides, so neither arm can influence the
other: arm B's joints and motors are reward-irrelevant by construction.

Observation (14, float32):

    0-3   arm A  cos q0, cos q1, sin q0, sin q1
    4-5   arm A  joint velocities
    6-7   arm A  fingertip - target (x, y)
    8-11  arm B  cos q0, cos q1, sin q0, sin q1
    12-13 arm B  joint velocities

Action (4, in [-1, 1]): motors A0, A1, B0, B1.

Reward, from the observation before the step (as gymnasium's Reacher):
``r = -distance_weight |fingertip_A - target|^2 - control_weight |a_A|^2``. The distance is
squared (an LQR-style cost) so the reward is an exact function of observation dims 6-7 and
actions 0-1; those are its parents in ``causal_structure``. Transition structure (block
diagonal per arm): every arm dimension depends on its arm's angles and velocities and on its
arm's motors; the fingertip-target offset also on itself (the target is fixed per episode).
Episodes truncate after ``horizon`` steps (50, as Reacher) and never terminate.

``distance="plain"`` (registered as ``causalrl/TwinReacherPlain-v0``, with distance weight 1)
is the variant shaped like gymnasium's Reacher-v5 rather than like a quadratic regression basis:
``r_t = -distance_weight |fingertip_A - target|_{t+1} - control_weight |a_A|^2``, the plain
(not squared) distance, measured *after* the step. Its parents are then the offset dimensions
6-7 of the next observation s_{t+1} (the convention of docs/factored-worlds.md: a state
dimension is a reward parent when it is one through s_t or s_{t+1}) and actions 0-1, so
``causal_structure`` is the same as the squared variant's; arm B stays irrelevant.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from causalrl.core.checks import check_action, check_int
from causalrl.core.structure import FactoredStructure
from causalrl.envs.render import check_render_mode, mujoco_frame

__all__ = ["TwinReacher", "TWIN_REACHER_XML"]

_ARM = """
    <body name="{arm}_link0" pos="{x} 0 .01">
      <geom fromto="0 0 0 0.1 0 0" name="{arm}_link0" rgba="0.0 0.4 0.6 1" size=".01" type="capsule"/>
      <joint axis="0 0 1" limited="false" name="{arm}_joint0" pos="0 0 0" type="hinge"/>
      <body name="{arm}_link1" pos="0.1 0 0">
        <joint axis="0 0 1" limited="true" name="{arm}_joint1" pos="0 0 0" range="-3.0 3.0" type="hinge"/>
        <geom fromto="0 0 0 0.1 0 0" name="{arm}_link1" rgba="0.0 0.4 0.6 1" size=".01" type="capsule"/>
        <site name="{arm}_fingertip" pos="0.11 0 0" size=".01"/>
      </body>
    </body>"""

TWIN_REACHER_XML = f"""
<mujoco model="twin_reacher">
  <compiler angle="radian" inertiafromgeom="true"/>
  <default>
    <joint armature="1" damping="1"/>
    <geom contype="0" conaffinity="0" friction="1 0.1 0.1" rgba="0.7 0.7 0 1"/>
  </default>
  <option gravity="0 0 -9.81" integrator="RK4" timestep="0.01"/>
  <worldbody>
    <geom name="ground" pos="0 0 0" rgba="0.9 0.9 0.9 1" size="1 1 10" type="plane"/>
    {_ARM.format(arm="a", x=-0.3)}
    {_ARM.format(arm="b", x=0.3)}
    <site name="a_target" pos="-0.2 0.1 .01" size=".009" rgba="0.9 0.2 0.2 1"/>
  </worldbody>
  <actuator>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" gear="200.0" joint="a_joint0"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" gear="200.0" joint="a_joint1"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" gear="200.0" joint="b_joint0"/>
    <motor ctrllimited="true" ctrlrange="-1.0 1.0" gear="200.0" joint="b_joint1"/>
  </actuator>
</mujoco>
"""

ARM_A_BASE = np.array([-0.3, 0.0])
TARGET_RADIUS = 0.2
#: side of a rendered frame in pixels, and the camera above the middle of the two arms
RENDER_SIZE = 320
_CAMERA = {"distance": 1.3, "elevation": -90.0, "azimuth": 90.0, "lookat": np.array([0.0, 0.0, 0.0])}


def _structure() -> FactoredStructure:
    arm_a, arm_b = np.arange(0, 8), np.arange(8, 14)
    state_to_state = np.zeros((14, 14), dtype=bool)
    state_to_state[np.ix_(arm_a[:6], arm_a)] = True        # angles and velocities drive all of arm A
    state_to_state[np.ix_([6, 7], [6, 7])] = True          # offset_{t+1} = offset_t + tip motion
    state_to_state[np.ix_(arm_b, arm_b)] = True
    action_to_state = np.zeros((4, 14), dtype=bool)
    action_to_state[np.ix_([0, 1], arm_a)] = True
    action_to_state[np.ix_([2, 3], arm_b)] = True
    return FactoredStructure(
        state_to_reward=np.isin(np.arange(14), [6, 7])[:, None],
        action_to_reward=np.array([[True], [True], [False], [False]]),
        state_to_state=state_to_state,
        action_to_state=action_to_state,
    )


class TwinReacher(gym.Env):
    """Two independent 2-link arms; reward from arm A only (see the module docstring).

    :param horizon: steps per episode (truncation). Default 50.
    :param frame_skip: MuJoCo steps (0.01 s each) per env step. Default 2.
    :param distance_weight: weight of the fingertip-target distance of arm A. Default 10.0.
    :param control_weight: weight of the squared motor commands of arm A. Default 0.1.
    :param distance: ``"squared"`` (squared distance before the step) or ``"plain"`` (the
        distance after the step, as gymnasium's Reacher; see the module docstring). Default
        ``"squared"``.
    :param render_mode: ``"rgb_array"`` for :meth:`render` frames (top-down, ``RENDER_SIZE``
        pixels square; docs/worlds.md, "Rendering"), or None. Default None.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, horizon: int = 50, frame_skip: int = 2, distance_weight: float = 10.0,
                 control_weight: float = 0.1, distance: str = "squared", render_mode: str | None = None):
        self.render_mode = check_render_mode(render_mode, type(self))
        for name, value in [("horizon", horizon), ("frame_skip", frame_skip)]:
            check_int(value, name)
        for name, value in [("distance_weight", distance_weight), ("control_weight", control_weight)]:
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be a non-negative number, got {value!r}")
        if distance not in ("squared", "plain"):
            raise ValueError(f"distance: unknown {distance!r}; choose 'squared' or 'plain'")
        self.distance = distance
        self.horizon, self.frame_skip = int(horizon), int(frame_skip)
        self.distance_weight, self.control_weight = float(distance_weight), float(control_weight)
        self.model = mujoco.MjModel.from_xml_string(TWIN_REACHER_XML)
        self.data = mujoco.MjData(self.model)
        self._tip_a = self.model.site("a_fingertip").id
        self._target = self.model.site("a_target").id
        self.observation_space = spaces.Box(-np.inf, np.inf, (14,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._structure = _structure()
        self._t = 0
        self._renderer = None
        # frames per second of the simulated time (0.01 s per MuJoCo step), as gymnasium's MuJoCo envs
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / (0.01 * self.frame_skip)))}

    @property
    def causal_structure(self) -> FactoredStructure:
        return self._structure

    def _observation(self) -> np.ndarray:
        q, qd = self.data.qpos, self.data.qvel
        offset = self.data.site_xpos[self._tip_a][:2] - self.data.site_xpos[self._target][:2]
        return np.concatenate([np.cos(q[:2]), np.sin(q[:2]), qd[:2], offset,
                               np.cos(q[2:]), np.sin(q[2:]), qd[2:]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        while True:  # a target within reach of arm A, as gymnasium's Reacher
            goal = self.np_random.uniform(-TARGET_RADIUS, TARGET_RADIUS, 2)
            if np.linalg.norm(goal) < TARGET_RADIUS:
                break
        self.model.site_pos[self._target][:2] = ARM_A_BASE + goal
        self.data.qpos[:] = self.np_random.uniform(-0.1, 0.1, 4)
        self.data.qvel[:] = self.np_random.uniform(-0.005, 0.005, 4)
        mujoco.mj_forward(self.model, self.data)
        self._t = 0
        return self._observation(), {}

    def step(self, action):
        action = np.clip(check_action(action, (4,)), -1.0, 1.0)
        offset = self._observation()[6:8].astype(float)
        control_cost = self.control_weight * float(action[:2] @ action[:2])
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        if self.distance == "plain":  # after the step, unsquared, as gymnasium's Reacher
            offset = self._observation()[6:8].astype(float)
            distance_cost = self.distance_weight * float(np.sqrt(offset @ offset))
        else:
            distance_cost = self.distance_weight * float(offset @ offset)
        self._t += 1
        info = {"distance": float(np.sqrt(offset @ offset)), "reward_distance": -distance_cost,
                "reward_control": -control_cost}
        return self._observation(), -distance_cost - control_cost, False, self._t >= self.horizon, info

    def render(self):
        """With ``render_mode="rgb_array"``, a top-down uint8 frame of both arms and arm A's
        target (red); None otherwise. Without a display it renders through EGL unless
        ``MUJOCO_GL`` says otherwise."""
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            # imported here: gymnasium's renderer loads OpenGL bindings, which only frames need
            from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer

            self._renderer = MujocoRenderer(self.model, self.data, dict(_CAMERA), width=RENDER_SIZE, height=RENDER_SIZE)
        return mujoco_frame(lambda: self._renderer.render(self.render_mode), type(self).__name__)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
