"""Watching and re-evaluating a trained agent: ``causalrl evaluate RUN_DIR`` (RL Zoo's ``enjoy``;
docs/cli.md, "evaluate").

The run's env is rebuilt from its config.yaml (:func:`causalrl.experiment.run.runner.build_env`)
and, as the runner's evaluations do (:mod:`causalrl.experiment.run.evaluation`), the policy plays
alone: an intervention world is played without its expert (``evaluation_env``). The agent is
loaded from the run's model.zip with its class from the registry, the way ``--resume`` loads a
checkpoint: an SB3 model without unpickling anything (``causalrl.envs.experts.load_sb3_algorithm``;
SB3's own loader only with ``trust_models``, README "Pickles"), a bandit agent with its own safe
loader. Episode i is reset with ``seed + i`` (default :data:`EVAL_SEED`: the episodes the runner's
``eval/mean_reward`` is measured on). A bandit agent does not learn while it is
evaluated: every round plays the frozen policy (its greedy arm when deterministic).

With ``video``, the first episode is recorded (at most :data:`MAX_VIDEO_FRAMES` frames) as MP4
when ``imageio-ffmpeg`` is installed (the ``video`` extra), else as GIF; worlds that cannot
render (``"rgb_array"`` not in ``metadata["render_modes"]``) are refused with one line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from causalrl.agents.base import BanditAgent
from causalrl.core.safe_pickle import trusting
from causalrl.core.stats import stratified_bootstrap_ci
from causalrl.envs.experts import load_sb3_algorithm
from causalrl.envs.render import mujoco_frame
from causalrl.experiment.config import ConfigError, RunConfig, load_experiment
from causalrl.experiment.config.plugins import resolve_agent
from causalrl.experiment.run.evaluation import EVAL_SEED, evaluation_env
from causalrl.experiment.run.runner import build_env

__all__ = ["MAX_GIF_FPS", "MAX_VIDEO_FRAMES", "Evaluation", "evaluate_run", "load_run_agent", "write_video"]

#: frames recorded at most (a bandit episode has thousands of rounds)
MAX_VIDEO_FRAMES = 1000
#: a GIF keeps every k-th frame so that it plays at most this fast (browsers slow faster GIFs down)
MAX_GIF_FPS = 25


@dataclass(frozen=True)
class Evaluation:
    """What ``causalrl evaluate`` measured.

    :param run_dir: the run directory.
    :param agent: the agent's name.
    :param env: the env id.
    :param returns: the undiscounted return of each episode, in order.
    :param mean: their mean.
    :param ci_low: lower end of the 95% bootstrap confidence interval of the mean.
    :param ci_high: upper end (equal to ``ci_low`` and ``mean`` for one episode).
    :param deterministic: whether the policy acted deterministically.
    :param seed: the reset seed of the first episode.
    :param normalised_score: the world's ``normalised_score`` of ``mean`` (None when it has none).
    :param video: the recorded file (None without ``video``).
    """

    run_dir: Path
    agent: str
    env: str
    returns: np.ndarray
    mean: float
    ci_low: float
    ci_high: float
    deterministic: bool
    seed: int
    normalised_score: float | None = None
    video: Path | None = None

    @property
    def text(self) -> str:
        """The command line's report, one line (two with a video)."""
        n = len(self.returns)
        interval = f" [95% CI {self.ci_low:.4g}, {self.ci_high:.4g}]" if n > 1 else " (1 episode: no interval)"
        line = (f"{self.agent} on {self.env}: mean return {self.mean:.4g}{interval} over {n} episodes "
                f"({'deterministic' if self.deterministic else 'stochastic'} policy, reset seeds {self.seed}.."
                f"{self.seed + n - 1})")
        if self.normalised_score is not None:
            line += f"; normalised score {self.normalised_score:.3f}"
        return line + (f"\nvideo: {self.video}" if self.video is not None else "")


def _run_config(run_dir: Path, trust_models: bool) -> RunConfig:
    if not run_dir.is_dir():
        raise ConfigError(f"evaluate {run_dir}: no such directory; give a run directory (runs/<experiment>/<run>)")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"evaluate {run_dir}: not a run directory (no config.yaml); give runs/<experiment>/<run>")
    if not (run_dir / "model.zip").is_file():
        raise ConfigError(f"evaluate {run_dir}: no model.zip (the run is unfinished, or ran with save_model=false); "
                          "evaluate a complete run that saved its model")
    configs = load_experiment(run_dir / "config.yaml")
    if len(configs) != 1:
        raise ConfigError(f"evaluate {run_dir}: config.yaml names {len(configs)} agents; a run has exactly one")
    # the directory is what is trusted (as --resume): the flag decides, not the file's own trust_models
    return dataclasses.replace(configs[0], trust_models=trust_models)


def load_run_agent(config: RunConfig, path: Path, env):
    """The agent saved at ``path`` (a run's model.zip), loaded with its class from the registry.

    :param config: the run's config (agent name, ``trust_models``).
    :param path: the model.zip.
    :param env: the env the agent will play (checked against the saved spaces).
    :return: the agent, on the CPU for SB3 models.
    :raises ValueError: one line when the file cannot be loaded or was saved for other spaces.
    """
    agent_cls = resolve_agent(config.agent.name)
    if isinstance(agent_cls, type) and issubclass(agent_cls, BanditAgent):
        return agent_cls.load(path, env=env)
    # no replay buffer: the agent only acts (an off-policy model would allocate its whole buffer)
    extra = {"buffer_size": 1} if isinstance(agent_cls, type) and issubclass(agent_cls, OffPolicyAlgorithm) else {}
    with trusting(config.trust_models):
        agent = load_sb3_algorithm(agent_cls, path, device="cpu", **extra)
    for name in ("observation_space", "action_space"):
        saved, live = getattr(agent, name, None), getattr(env, name)
        if saved is not None and getattr(saved, "shape", None) != getattr(live, "shape", None):
            raise ValueError(f"{path}: saved for {name} {saved}, but the run's config builds {live}; "
                             "evaluate the run directory the model was trained in")
    return agent


def _build(config: RunConfig, video: bool):
    """The env the policy plays alone (:func:`evaluation_env` of the run's env); with ``video``,
    built again with ``render_mode="rgb_array"`` once the world says it can render."""
    env = build_env(config)
    if not video:
        return evaluation_env(env)
    modes = list(env.metadata.get("render_modes") or [])
    if "rgb_array" not in modes:
        env.close()
        raise ConfigError(f"--video: {config.env.id} cannot draw frames (render_modes {modes}); evaluate without "
                          "--video, or give the world render_mode='rgb_array' (docs/worlds.md, Rendering)")
    env.close()
    kwargs = {**config.env.kwargs, "render_mode": "rgb_array"}
    return evaluation_env(build_env(dataclasses.replace(config, env=dataclasses.replace(config.env, kwargs=kwargs))))


def _play(env, agent, episodes: int, deterministic: bool, seed: int, record: bool, name: str):
    """Returns of ``episodes`` episodes (episode i reset with ``seed + i``) and, with ``record``,
    the first episode's frames."""
    returns, frames = [], []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        keep = record and episode == 0
        if keep:
            frames.append(mujoco_frame(env.render, name))
        total, done = 0.0, False
        while not done:
            action, _ = agent.predict(observation, deterministic=deterministic)
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
            if keep and len(frames) < MAX_VIDEO_FRAMES:
                frames.append(mujoco_frame(env.render, name))
        returns.append(total)
    return np.asarray(returns), frames


def write_video(frames: list[np.ndarray], stem: Path, fps: float) -> Path:
    """``frames`` as ``<stem>.mp4`` when imageio can write MP4 (``imageio-ffmpeg`` installed), else
    as ``<stem>.gif`` (at most :data:`MAX_GIF_FPS` frames per second).

    :param frames: uint8 RGB frames of one shape.
    :param stem: the file's path without its suffix (its folder is created).
    :param fps: frames per second of the world (``metadata["render_fps"]``).
    :return: the file written.
    """
    import imageio.v2 as imageio  # imported here: only videos need it (it comes with gymnasium[mujoco])

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        path = stem.with_name(stem.name + ".mp4")
        # macro_block_size=1: frames of any size (a bar frame is 320 x 240, MuJoCo's 480 x 480)
        imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
        return path
    step = max(1, int(np.ceil(fps / MAX_GIF_FPS)))
    path = stem.with_name(stem.name + ".gif")
    imageio.mimsave(path, frames[::step], duration=1000.0 * step / fps, loop=0)
    return path


def _interval(returns: np.ndarray, reps: int) -> tuple[float, float, float]:
    if len(returns) == 1:
        return float(returns[0]), float(returns[0]), float(returns[0])
    mean, low, high = stratified_bootstrap_ci([returns], lambda values, axis: np.mean(values, axis=axis), reps=reps)
    return float(mean), float(low), float(high)


def evaluate_run(run_dir, episodes: int = 10, video=None, deterministic: bool = True, seed: int | None = None,
                 trust_models: bool = False, reps: int = 2000) -> Evaluation:
    """Play a run's saved agent alone on its env, rebuilt from config.yaml (see the module docstring).

    :param run_dir: a complete run directory (config.yaml and model.zip).
    :param episodes: episodes to play (>= 1). Default 10.
    :param video: a folder for a video of the first episode (``<run>__episode-0.mp4``, or ``.gif``
        without ``imageio-ffmpeg``). Default None: no video.
    :param deterministic: act with ``predict(obs, deterministic=True)``. Default True.
    :param seed: reset seed of the first episode (episode i: ``seed + i``). Default None:
        :data:`EVAL_SEED`, the episodes the runner's ``eval/mean_reward`` uses.
    :param trust_models: let SB3's own loader unpickle the model files (``--trust-models``; README,
        Pickles). Default False.
    :param reps: bootstrap replicates of the confidence interval (>= 100). Default 2000.
    :return: the :class:`Evaluation`.
    """
    run_dir = Path(run_dir)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"--episodes: a positive integer, got {episodes!r}")
    if reps < 100:
        raise ConfigError(f"--reps: use at least 100 bootstrap replicates, got {reps}")
    seed = EVAL_SEED if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed: a non-negative integer, got {seed!r}")
    config = _run_config(run_dir, trust_models)
    env = _build(config, video is not None)
    try:
        agent = load_run_agent(config, run_dir / "model.zip", env)
        returns, frames = _play(env, agent, episodes, deterministic, seed, video is not None, config.env.id)
        score = getattr(env.unwrapped, "normalised_score", None)
        fps = float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()
    mean, low, high = _interval(returns, reps)
    path = None
    if video is not None:
        path = write_video(frames, Path(video) / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', run_dir.resolve().name)}__episode-0", fps)
    return Evaluation(run_dir, config.agent.name, config.env.id, returns, mean, low, high, deterministic, seed,
                      float(score(mean)) if callable(score) else None, path)
