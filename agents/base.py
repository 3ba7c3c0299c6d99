"""The base class of bandit agents: the Stable-Baselines3 surface around a select -> step ->
update loop, so the runner, SB3 callbacks and SB3 loggers treat bandits and RL agents alike.

Subclasses implement ``_setup()`` (state), ``_select_action()`` and ``_update(action,
observation, reward)``, plus ``_greedy_action()`` for ``predict``. ``observe`` is the public
update, for plain gymnasium loops (``predict`` -> ``env.step`` -> ``observe``).

What an agent may know about its world (noise mean and std, horizon, stationarity) comes from
:func:`declared_assumptions` only (docs/bandits.md, "Assumptions"); ground truth
(``causal_structure``) is read only by agents labelled ORACLE.
"""

from __future__ import annotations

import cmath
import json
import math
import sys
import zipfile
from pathlib import Path

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
)
from stable_baselines3.common.logger import Logger
from tqdm.auto import tqdm

from causalrl.core.assumptions import Assumptions
from causalrl.core.checks import check_int, check_observation
from causalrl.core.safe_pickle import safe_load

__all__ = ["BanditAgent", "declared_assumptions"]

POLICY = "BanditPolicy"
_NOT_SAVED = ("env", "_logger", "_guarded")
#: nu and sigma when neither the agent nor the world gives them (the papers' nu = sigma = 1)
DEFAULT_NOISE_MEAN = 1.0
DEFAULT_NOISE_STD = 1.0


def declared_assumptions(env) -> Assumptions:
    """What ``env`` lets an agent know: ``env.unwrapped.assumptions`` (through any gymnasium
    wrappers), or an empty :class:`~causalrl.core.assumptions.Assumptions` (nothing declared)
    when the world has none.

    :param env: a gymnasium env, wrapped or not.
    :return: the world's declared assumptions.
    :raises ValueError: when ``env.unwrapped.assumptions`` exists but is not an ``Assumptions``.
    """
    declared = getattr(getattr(env, "unwrapped", env), "assumptions", None)
    if declared is None:
        return Assumptions()
    if not isinstance(declared, Assumptions):
        raise ValueError(
            f"env.unwrapped.assumptions: expected a causalrl.core.assumptions.Assumptions, got "
            f"{type(declared).__name__}; declare the world's assumptions with that class"
        )
    return declared


def _all_positive(value) -> bool:
    """False only for numbers (or sequences of them) with an entry <= 0; malformed values pass
    here and are refused, with their own message, by ``Assumptions.resolve``."""
    if isinstance(value, (str, bool)):
        return True
    try:
        return bool(np.all(np.asarray(value, dtype=float) > 0))
    except (TypeError, ValueError):
        return True


def _agent_noise(value):
    """A resolved noise parameter as the agents use it: a float, or a read-only per-node array."""
    if isinstance(value, tuple):
        array = np.array(value, dtype=float)
        array.setflags(write=False)
        return array
    return float(value)


class BanditAgent:
    """Common machinery of the bandit learners.

    :param policy: must be ``"BanditPolicy"`` (kept for the SB3 call signature).
    :param env: a gymnasium env (or registered id) with a ``MultiBinary(N)`` action space, N >= 1.
    :param seed: seeds the agent's own random stream and the env's first reset. Default None.
    :param verbose: 0 silent, 1 prints the logger's rows to stdout when no logger is set.
        Default 0.
    :param noise_mean: nu, the known noise mean of every node (the papers' assumption). Default
        None: the world's declared ``noise_mean`` (``env.unwrapped.assumptions``), or 1.0 when it
        declares none. A value that contradicts the declaration is a ``ValueError``.
    :param noise_std: sigma, the known noise standard deviation of every node (an explicit value
        must be > 0). Default None: the world's declared ``noise_std``, or 1.0 when it declares
        none; same rule.

    After construction ``noise_mean`` and ``noise_std`` are floats, or read-only length-N arrays
    when the world declares different values per node.
    """

    default_policy = POLICY
    #: ``learn`` checks every observation the world returns itself (``core.checks``), so the
    #: runner's metrics callback need not check it again each round
    checks_observations = True
    #: arrays holding only copies of observations (they grow with the rounds): the NaN guard
    #: checks each observation once, as it arrives, instead of these every round
    _observed_data: tuple[str, ...] = ()

    def __init__(self, policy: str, env, seed: int | None = None, verbose: int = 0,
                 noise_mean: float | None = None, noise_std: float | None = None):
        if policy != POLICY:
            raise ValueError(f"policy: bandit agents take {POLICY!r}, got {policy!r}")
        if isinstance(env, str):
            env = gym.make(env)
        space = env.action_space
        if not isinstance(space, spaces.MultiBinary) or len(space.shape) != 1:
            raise ValueError(f"env: bandit agents need a 1-D MultiBinary action space, got {space}")
        if noise_std is not None and not _all_positive(noise_std):
            raise ValueError(f"noise_std: must be > 0, got {noise_std}")
        assumptions = declared_assumptions(env)
        self.env = env
        self.n_nodes = int(space.shape[0])
        self.seed = seed
        self.verbose = verbose
        self.noise_mean = _agent_noise(assumptions.resolve("noise_mean", noise_mean, DEFAULT_NOISE_MEAN))
        self.noise_std = _agent_noise(assumptions.resolve("noise_std", noise_std, DEFAULT_NOISE_STD))
        for name in ("noise_mean", "noise_std"):
            size = np.size(getattr(self, name))
            if size != 1 and size != self.n_nodes:
                raise ValueError(f"{name}: {size} values for N={self.n_nodes} nodes; "
                                 "give one per node or a single value")
        self.rng = np.random.default_rng(seed)
        self.num_timesteps = 0
        self._total_timesteps = 0
        self._logger: Logger | None = None
        self._last_observation = None
        self._setup()
        self._check_finite(None)

    # --- what subclasses implement -------------------------------------------------------
    def _setup(self) -> None:
        raise NotImplementedError

    def _select_action(self) -> np.ndarray:
        raise NotImplementedError

    def _update(self, action: np.ndarray, observation: np.ndarray, reward: float) -> None:
        raise NotImplementedError

    def _greedy_action(self) -> np.ndarray:
        raise NotImplementedError

    # --- SB3 surface ---------------------------------------------------------------------
    @property
    def logger(self) -> Logger:
        if self._logger is None:
            # a folder-less logger (SB3's configure(None) would create a temp folder per agent)
            from stable_baselines3.common.logger import HumanOutputFormat

            self._logger = Logger(None, [HumanOutputFormat(sys.stdout)] if self.verbose else [])
        return self._logger

    def set_logger(self, logger: Logger) -> None:
        self._logger = logger

    def get_env(self):
        return self.env

    def set_env(self, env) -> None:
        if env.action_space != self.env.action_space:
            raise ValueError(f"env: action space {env.action_space} differs from {self.env.action_space}")
        self.env = env
        self._last_observation = None

    def set_random_seed(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def predict(self, observation=None, state=None, episode_start=None, deterministic: bool = False):
        """The agent's current choice (bandits ignore the observation): the greedy action when
        ``deterministic``, else what ``learn`` would play next. Returns ``(action, None)``."""
        action = self._greedy_action() if deterministic else self._select_action()
        return np.asarray(action, dtype=np.int8), None

    def _init_callback(self, callback, progress_bar: bool) -> BaseCallback:
        if isinstance(callback, list):
            callback = CallbackList(callback)
        elif callback is None:
            callback = CallbackList([])
        elif not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        callback.init_callback(self)
        return callback

    def learn(self, total_timesteps: int, callback=None, log_interval: int | None = None,
              progress_bar: bool = False, reset_num_timesteps: bool = True, tb_log_name: str = "run"):
        """Play ``total_timesteps`` rounds: select -> env.step -> update, calling ``callback``
        after each round with SB3's locals (``infos``, ``rewards``, ``new_obs``, ``actions``, ``dones``);
        each round is one rollout (``on_rollout_start`` / ``on_rollout_end``).
        ``log_interval`` and ``tb_log_name`` exist for SB3 compatibility; rows are written by
        the callbacks (the runner's MetricsCallback)."""
        check_int(total_timesteps, "total_timesteps")
        if reset_num_timesteps or self._last_observation is None:
            if reset_num_timesteps:
                self.num_timesteps = 0
            # as SB3: the seed goes to the env's first reset only; a later learn() goes on with its noise
            seed = self.seed if self._last_observation is None else None
            self._last_observation, _ = self.env.reset(seed=seed)
        self._total_timesteps = self.num_timesteps + int(total_timesteps)
        callback = self._init_callback(callback, progress_bar)
        callback.on_training_start(locals(), globals())
        bar = tqdm(total=int(total_timesteps), disable=not progress_bar, unit="round", leave=False)
        while self.num_timesteps < self._total_timesteps:
            # one round is one rollout (as SB3's off-policy loop with train_freq=1): at its start
            # the agent and env state are whole, which is where checkpoints are taken
            callback.on_rollout_start()
            action = np.asarray(self._select_action(), dtype=np.int8)
            observation, reward, terminated, truncated, info = self.env.step(action)
            shape = getattr(self.env.observation_space, "shape", None)
            if isinstance(shape, tuple):  # what the world returns is checked as what it is given (core.checks)
                check_observation(observation, shape)
            self.observe(action, observation, reward, info, check=False)  # checked after the callbacks saw it
            infos, rewards, new_obs = [info], np.array([reward]), np.asarray(observation)[None]
            actions, dones = action[None], np.array([terminated or truncated])
            bar.update(1)
            callback.update_locals(locals())
            if not callback.on_step():
                break
            self._check_finite(self.num_timesteps, observation)
            self._last_observation = observation
            if terminated or truncated:
                self._last_observation, _ = self.env.reset()
            callback.on_rollout_end()
        bar.close()
        callback.on_training_end()
        return self

    def observe(self, action, observation, reward, info=None, check: bool = True) -> None:
        """Learn from one round played outside ``learn``: the plain gymnasium loop
        ``action, _ = agent.predict(obs)``, ``obs, reward, *_, info = env.step(action)``,
        ``agent.observe(action, obs, reward, info)`` plays exactly the rounds ``learn`` plays (same
        seed, same actions). Call it once after each stochastic ``predict``. The NaN guard
        (:meth:`_check_finite`) runs after the update; ``check=False`` leaves it to the caller
        (``learn`` runs it after its callbacks, so that the runner's guard names the bad
        observation or reward first)."""
        self.num_timesteps += 1
        observation = np.asarray(observation, dtype=float)
        self._update(np.asarray(action, dtype=np.int8), observation, float(reward))
        if check:
            self._check_finite(self.num_timesteps, observation)

    def _check_finite(self, round_: int | None, observation: np.ndarray | None = None) -> None:
        """The NaN guard inside every bandit agent: its numbers (float settings such as
        ``exploration``, and every numeric array it learns) must stay finite. At construction a
        non-finite setting is a ``ValueError``; after an update a ``FloatingPointError`` names the
        attribute and the round, so that a diverging agent stops instead of acting on NaN.

        It runs every round, so it reads only the attributes that hold a number, an array or None
        (not yet set); that list is made again whenever an attribute is added or removed. It skips
        the arrays named in :attr:`_observed_data` (copies of observations, which grow with the
        rounds): each observation is checked the round it arrives (``observation``)."""
        state = self.__dict__
        if observation is not None and not np.isfinite(observation).all():
            raise FloatingPointError(f"{type(self).__name__}.observation: non-finite values in round {round_}; "
                                     "check the world's step")
        guarded = state.get("_guarded")
        if guarded is None or guarded[0] != len(state):
            state["_guarded"] = None  # counted in the length below
            names = tuple(name for name, value in state.items() if name not in self._observed_data
                          and (value is None or isinstance(value, (int, float, np.ndarray, np.number))))
            guarded = state["_guarded"] = (len(state), names)
        for name in guarded[1]:
            value = state.get(name)
            if isinstance(value, float):
                finite = math.isfinite(value)
            elif isinstance(value, np.ndarray) and value.dtype.kind in "fc":
                # one reduction per round: the sum is finite when every entry is (else look closer,
                # since finite entries can also overflow it)
                finite = cmath.isfinite(value.sum()) or bool(np.isfinite(value).all())
            else:
                continue
            if not finite:
                if round_ is None:
                    raise ValueError(f"{name}: must be a finite number, got {value}")
                raise FloatingPointError(f"{type(self).__name__}.{name}: non-finite values after round {round_}; "
                                         "check the agent's settings (a huge or infinite hyperparameter?)")

    def declared_horizon(self, horizon: int | None = None) -> int | None:
        """The number of rounds the agent plans for.

        :param horizon: the agent's own ``horizon`` argument, or None.
        :return: ``horizon`` when given, else the world's declared horizon
            (``env.unwrapped.assumptions.horizon``), else None.
        :raises ValueError: when ``horizon`` contradicts the declared horizon.
        """
        return declared_assumptions(self.env).resolve("horizon", horizon)

    def per_node(self, value) -> np.ndarray:
        """``value`` (a float or a length-N array, e.g. ``noise_mean``) with one entry per node."""
        return np.broadcast_to(np.asarray(value, dtype=float), (self.n_nodes,))

    def get_parameters(self) -> dict[str, np.ndarray]:
        """The agent's numeric arrays by attribute name (SB3's name for the learned state; the
        runner checks them for NaN/inf)."""
        return {key: value for key, value in vars(self).items()
                if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number)}

    # --- persistence ---------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the agent's whole state (a pickle inside a zip, like SB3; ``load`` reads it
        through an allowlist of numpy types, so a planted pickle runs no code). The env is not
        saved; pass it to ``load``."""
        state = {key: value for key, value in self.__dict__.items() if key not in _NOT_SAVED}
        meta = {"class": type(self).__name__, "module": type(self).__module__, "format": 1}
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(".zip")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("meta.json", json.dumps(meta))
            archive.writestr("data.pkl", cloudpickle.dumps(state))
        temporary.replace(path)

    @classmethod
    def load(cls, path, env=None, force_reset: bool = True, **_):
        """Restore an agent written by ``save``; ``env`` is required to keep playing.
        ``force_reset=False`` (as SB3's) keeps the saved position in the episode, so that
        ``learn(..., reset_num_timesteps=False)`` continues without resetting the env (the
        runner's resume, which restores the env's state too)."""
        path = Path(path)
        if not path.exists() and path.with_suffix(".zip").exists():
            path = path.with_suffix(".zip")
        try:
            with zipfile.ZipFile(path) as archive:
                meta = json.loads(archive.read("meta.json"))
                state = safe_load(archive.read("data.pkl"), class_packages=("causalrl.core", "causalrl.agents"))
        except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a causalrl bandit agent file ({error}); pass a file written by save()") from None
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{path}: holds a {meta.get('class')} agent; load it with that class")
        agent = cls.__new__(cls)
        agent.__dict__.update(state)
        agent.env = env
        agent._logger = None
        if force_reset or "_last_observation" not in state:
            agent._last_observation = None
        return agent
