"""Observation wrappers that add reward-irrelevant dimensions, with composed ground truth.

``DistractorWrapper(env, n_distractors, kind)`` appends ``n_distractors`` state dimensions that
never affect the reward or the inner env's dynamics:

    gaussian      x_t ~ N(0, scale^2) afresh every step (no memory)
    random-walk   x_{t+1} = x_t + N(0, scale^2), x_0 ~ N(0, scale^2)
    ar1           x_{t+1} = rho x_t + N(0, scale^2 (1 - rho^2)), stationary N(0, scale^2)

Ground truth: the wrapper's ``causal_structure`` is the inner env's structure extended with
distractor rows that touch nothing but (for the random walk and AR(1)) their own next value.
When the inner env has no ``causal_structure`` (e.g. MuJoCo locomotion), its own block is taken
as dense (:meth:`FactoredStructure.dense`: every original dimension may affect the reward and
every next state), so the known part, the distractors, is still exact. Read it with
``env.get_wrapper_attr("causal_structure")``, which finds the outermost definition;
``env.unwrapped`` is the inner world and keeps the inner world's own structure. The registered
variants (:class:`DistractorVariant`) are single envs, so there ``env.unwrapped`` has it.

The distractors use their own random stream, seeded from ``reset(seed=...)``, so wrapping does
not change the inner env's trajectory for a given seed.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from causalrl.core.checks import check_action, check_int
from causalrl.core.structure import FactoredStructure
from causalrl.envs.render import check_render_mode, mujoco_frame

__all__ = ["DistractorWrapper", "DistractorVariant", "DISTRACTOR_KINDS"]

DISTRACTOR_KINDS = ("gaussian", "random-walk", "ar1")
#: mixes the reset seed into the distractors' own stream (any fixed constant would do)
_STREAM_SALT = 0xD157


class DistractorWrapper(gym.Wrapper):
    """Append reward-irrelevant distractor dimensions to a 1-D Box observation.

    :param env: the env to wrap; its observation space must be a 1-D ``Box``.
    :param n_distractors: number of appended dimensions (>= 1).
    :param kind: ``"gaussian"``, ``"random-walk"`` or ``"ar1"`` (see the module docstring).
        Default ``"gaussian"``.
    :param scale: standard deviation of the distractors' noise (> 0). Default 1.0.
    :param rho: AR(1) coefficient in [0, 1) (``kind="ar1"`` only). Default 0.9.
    """

    def __init__(self, env: gym.Env, n_distractors: int, kind: str = "gaussian", scale: float = 1.0, rho: float = 0.9):
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"env: DistractorWrapper needs a 1-D Box observation space, got {space}")
        check_int(n_distractors, "n_distractors")
        if kind not in DISTRACTOR_KINDS:
            raise ValueError(f"kind: unknown {kind!r}; choose one of {', '.join(DISTRACTOR_KINDS)}")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale: must be a positive number, got {scale!r}")
        if not 0 <= rho < 1:
            raise ValueError(f"rho: must lie in [0, 1), got {rho!r}")
        self.n_distractors, self.kind, self.scale, self.rho = int(n_distractors), kind, float(scale), float(rho)
        self.observation_space = spaces.Box(
            np.concatenate([space.low, np.full(self.n_distractors, -np.inf)]).astype(space.dtype),
            np.concatenate([space.high, np.full(self.n_distractors, np.inf)]).astype(space.dtype),
            dtype=space.dtype,
        )
        inner = getattr(env.unwrapped, "causal_structure", None)
        try:
            inner = env.get_wrapper_attr("causal_structure")
        except AttributeError:
            pass
        if not isinstance(inner, FactoredStructure):
            inner = FactoredStructure.dense(space.shape[0], int(np.prod(env.action_space.shape)))
        self._structure = inner.with_distractors(self.n_distractors, self_dependent=kind != "gaussian")
        self._rng = np.random.default_rng()
        self._distractors = np.zeros(self.n_distractors)

    @property
    def causal_structure(self) -> FactoredStructure:
        return self._structure

    def _draw(self, first: bool) -> np.ndarray:
        noise = self.scale * self._rng.standard_normal(self.n_distractors)
        if self.kind == "gaussian" or first:
            return noise
        if self.kind == "random-walk":
            return self._distractors + noise
        return self.rho * self._distractors + np.sqrt(1 - self.rho ** 2) * noise

    def _observation(self, observation) -> np.ndarray:
        return np.concatenate([observation, self._distractors]).astype(self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([seed, _STREAM_SALT])
        self._distractors = self._draw(first=True)
        return self._observation(observation), info

    def step(self, action):
        action = check_action(action, self.action_space.shape, dtype=self.action_space.dtype)
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._distractors = self._draw(first=False)
        return self._observation(observation), reward, terminated, truncated, info


class DistractorVariant(gym.Env):
    """A MuJoCo env with reward-irrelevant distractor dimensions appended, as one env.

    The registered variants (``causalrl/HalfCheetahDistractors-v0`` ...) are ``gym.make(env_id)``
    (with its own time limit) wrapped by :class:`DistractorWrapper`, presented as one env, so ``env.unwrapped.causal_structure`` is the composed ground truth
    (what the runner scores against). ``render_mode`` goes to the inner env, whose frames are the
    variant's (the distractors are not drawn).

    :param env_id: the inner env's registered id (fixed by each registration).
    :param n_distractors: as for :class:`DistractorWrapper`. Default 20.
    :param kind, scale, rho: as for :class:`DistractorWrapper` (same defaults).
    :param render_mode: ``"rgb_array"`` for the inner MuJoCo env's frames (headless: set
        ``MUJOCO_GL=egl`` or ``osmesa``; docs/worlds.md, "Rendering"), or None. Default None.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, env_id: str, n_distractors: int = 20, kind: str = "gaussian", scale: float = 1.0,
                 rho: float = 0.9, render_mode: str | None = None):
        self.render_mode = check_render_mode(render_mode, type(self))
        inner = gym.make(env_id) if render_mode is None else gym.make(env_id, render_mode=render_mode)
        self.wrapped = DistractorWrapper(inner, n_distractors, kind=kind, scale=scale, rho=rho)
        self.observation_space = self.wrapped.observation_space
        self.action_space = self.wrapped.action_space
        self.metadata = {**self.metadata, "render_fps": inner.metadata.get("render_fps", self.metadata["render_fps"])}

    def render(self):
        """The inner env's frame (``render_mode="rgb_array"``), else None."""
        if self.render_mode is None:
            return None
        return mujoco_frame(self.wrapped.render, type(self).__name__)

    @property
    def causal_structure(self) -> FactoredStructure:
        return self.wrapped.causal_structure

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.wrapped.reset(seed=seed, options=options)

    def step(self, action):
        return self.wrapped.step(action)

    def close(self):
        self.wrapped.close()
