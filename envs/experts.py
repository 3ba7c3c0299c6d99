"""Experts for the intervention worlds (docs/rlif.md (a), (c)): they act when they take over and
judge the learner's actions with a Q function. Both satisfy :class:`causalrl.core.protocols.Expert`.

``LQRExpert(env, level=...)`` for :class:`causalrl.envs.factored.FactoredLQR`. Two roles (docs/rlif.md (a)):

- judging (pi_ref, Q^{pi_ref}): the *optimal* stationary policy of the discounted problem and
  its exact Q function, from the discounted Riccati equation of the relevant block
  (P = DARE(sqrt(g) A, sqrt(g) B, q I, c I), g = ``discount``):

      Q(s, a) = r(s, a) - g (A s_r + B a_r)' P (A s_r + B a_r) - g / (1 - g) tr(P N),

  with r(s, a) = -(q |s_r|^2 + c |a_r|^2) and N the transition-noise covariance. Irrelevant
  action dimensions and distractor states do not change Q. The action is clipped to [-1, 1]
  first, as the world clips it.
- acting (pi_exp): a = clip(-gain_scale K s_r + action_noise * eps), eps ~ N(0, I), zero on the
  irrelevant actions, with K the world's infinite-horizon Riccati gain. ``gain_scale`` 1 and no
  noise is optimal; 0 is the passive controller; a small negative value pushes the state the
  wrong way (the world is barely stable, so this is very costly).

Named levels (``LQR_EXPERT_LEVELS``) are calibrated on the normalised score of
``FactoredLQR``'s defaults (0 = uniform random actions, 1 = optimal). The scale is compressed
near 1 there: random actions are very costly (their drift accumulates), so even the passive
controller scores about 0.84. Measured with :func:`evaluate_expert` (2000 episodes, seed 0;
the noise-free column 500 episodes; values in ``LQR_EXPERT_SCORES``; the standard error of
each score is about 0.01):

    level    gain_scale  action_noise  normalised score  (its mean action alone, no noise)
    weak       -0.013       0.25            0.304             0.604
    medium      0.0         0.30            0.606             0.836
    strong      0.015       0.10            0.903             0.920
    optimal     1.0         0.0             0.999             0.999

The weak expert is bad on average (its mean action is wrong too), so imitating it caps a
learner well below 1, while its judge still tells good from bad actions. The LQR expert's judge
is an ORACLE (the exact optimal Q and policy, the same at every level), so results with it are
upper bounds; :class:`JudgedExpert` pairs an acting LQR level with a trained judge instead
(docs/rlif.md (a), (e)).

``PolicyExpert(model, noise=..., reference=None)`` wraps trained SB3 off-policy models (SAC,
TD3, RLIF): it acts with ``model``'s deterministic action plus Gaussian noise of std ``noise``
(in the [-1, 1]-scaled action units, clipped), and judges with ``reference``'s actor and
critic (``model``'s own when None): min over the Q heads for SAC/TD3-type critics, mean for
ensembles (``aggregate``), as docs/rlif.md (b) "How Q_ref is computed". A separate reference is the
paper's two-role expert (docs/rlif.md (a)): e.g. an early checkpoint of a training run acts (a weak
expert with systematic errors, docs/rlif.md (g) 9) while the finished run judges.
"""

from __future__ import annotations

import functools
from pathlib import Path

import gymnasium as gym
import numpy as np

from causalrl.core.rollout import episode_returns

__all__ = ["LQRExpert", "PolicyExpert", "JudgedExpert", "load_sb3_model", "load_sb3_algorithm", "LQR_EXPERT_LEVELS",
           "LQR_EXPERT_SCORES", "evaluate_expert", "collect_demonstrations"]

#: acting-policy parameters of the named levels (module docstring)
LQR_EXPERT_LEVELS = {
    "weak": {"gain_scale": -0.013, "action_noise": 0.25},
    "medium": {"gain_scale": 0.0, "action_noise": 0.30},
    "strong": {"gain_scale": 0.015, "action_noise": 0.10},
    "optimal": {"gain_scale": 1.0, "action_noise": 0.0},
}
#: measured normalised scores on FactoredLQR's defaults (evaluate_expert, 2000 episodes, seed 0)
LQR_EXPERT_SCORES = {"weak": 0.304, "medium": 0.606, "strong": 0.903, "optimal": 0.999}


class LQRExpert:
    """Analytic expert for :class:`causalrl.envs.factored.FactoredLQR` (see the module docstring).

    :param env: a FactoredLQR, or any env/wrapper whose ``unwrapped`` is one.
    :param level: a name of ``LQR_EXPERT_LEVELS`` (sets ``gain_scale`` and ``action_noise``), or
        None to pass them directly. Default None.
    :param gain_scale: multiplies the optimal gain in the acting policy. Default 1.0.
    :param action_noise: std of the Gaussian noise added to the acting policy's action. Default 0.
    :param discount: g of the judging Q function. Default 0.99 (docs/rlif.md (b) table).
    :param seed: seed of the acting noise (``seed()`` reseeds it). Default None.
    """

    def __init__(self, env, level: str | None = None, gain_scale: float = 1.0, action_noise: float = 0.0,
                 discount: float = 0.99, seed: int | None = None):
        world = env.unwrapped if isinstance(env, gym.Env) else env
        if not hasattr(world, "riccati_gain") or not hasattr(world, "_relevant_block"):
            raise ValueError(f"env: LQRExpert needs a FactoredLQR world, got {type(world).__name__}")
        if level is not None:
            if level not in LQR_EXPERT_LEVELS:
                raise ValueError(f"level: unknown {level!r}; choose one of {', '.join(LQR_EXPERT_LEVELS)}")
            gain_scale, action_noise = LQR_EXPERT_LEVELS[level]["gain_scale"], LQR_EXPERT_LEVELS[level]["action_noise"]
        if not action_noise >= 0:
            raise ValueError(f"action_noise: must be >= 0, got {action_noise!r}")
        if not 0 < discount < 1:
            raise ValueError(f"discount: must lie in (0, 1), got {discount!r}")
        self.world = world
        self.level = level
        self.gain_scale = float(gain_scale)
        self.action_noise = float(action_noise)
        self.discount = float(discount)
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    @functools.cached_property
    def value_matrix(self) -> np.ndarray:
        """P of the discounted problem: V*(s) = -s_r' P s_r - g tr(P N) / (1 - g)."""
        from scipy.linalg import solve_discrete_are  # here: the default bandit run never loads scipy.linalg

        a, b, q, c = self.world._relevant_block()
        root = np.sqrt(self.discount)
        return solve_discrete_are(root * a, root * b, q, c)

    def reference_action(self, observation, deterministic: bool = True) -> np.ndarray:
        """pi_ref: the optimal action of the discounted problem (clipped). pi_ref is
        deterministic here, so ``deterministic`` changes nothing (docs/rlif.md (c))."""
        a, b, _, c = self.world._relevant_block()
        p, g = self.value_matrix, self.discount
        gain = np.linalg.solve(c + g * b.T @ p @ b, g * b.T @ p @ a)
        return self._full_action(-self._relevant_state(observation) @ gain.T)

    def act(self, observation) -> np.ndarray:
        """pi_exp: clip(-gain_scale K s_r + action_noise eps) on the relevant actions, 0 elsewhere."""
        relevant = -self.gain_scale * self._relevant_state(observation) @ self.world.riccati_gain.T
        if self.action_noise > 0:
            relevant = relevant + self.action_noise * self.rng.standard_normal(relevant.shape)
        return self._full_action(relevant)

    def q_value(self, observation, action):
        """Exact Q^{pi_ref}(s, a) of the discounted problem (float, or (batch,) for a batch)."""
        world = self.world
        state = self._relevant_state(observation)
        action = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)[..., : world.n_relevant_actions]
        a, b, _, _ = world._relevant_block()
        p, g = self.value_matrix, self.discount
        reward = -(world.state_cost * np.sum(state ** 2, -1) + world.action_cost * np.sum(action ** 2, -1))
        mean_next = state @ a.T + action @ b.T
        constant = g / (1 - g) * np.trace(p @ world._noise_cov())
        q_values = reward - g * np.einsum("...i,ij,...j->...", mean_next, p, mean_next) - constant
        return float(q_values) if np.ndim(q_values) == 0 else q_values

    def _relevant_state(self, observation) -> np.ndarray:
        return np.asarray(observation, dtype=float)[..., : self.world.n_relevant_states]

    def _full_action(self, relevant) -> np.ndarray:
        relevant = np.clip(relevant, -1.0, 1.0)
        action = np.zeros(relevant.shape[:-1] + (self.world.n_actions,), dtype=np.float32)
        action[..., : self.world.n_relevant_actions] = relevant
        return action

    def __repr__(self) -> str:
        return (f"LQRExpert(level={self.level!r}, gain_scale={self.gain_scale}, action_noise={self.action_noise}, "
                f"discount={self.discount})")


class PolicyExpert:
    """Expert from a trained SB3 off-policy model (see the module docstring).

    :param model: the acting policy, an SB3 off-policy algorithm (SAC, TD3, RLIF ...).
    :param noise: std of the Gaussian noise added to the deterministic action, in [-1, 1]-scaled
        action units; the sub-optimality knob. Default 0.
    :param aggregate: ``"min"`` (default, SAC/TD3 twin heads) or ``"mean"`` (ensembles) over the
        critic's Q heads.
    :param seed: seed of the acting noise. Default None.
    :param reference: the judging model (pi_ref, Q^{pi_ref}), an SB3 off-policy algorithm with a
        ``critic`` and the same spaces as ``model``; None (default) judges with ``model``.
    """

    def __init__(self, model, noise: float = 0.0, aggregate: str = "min", seed: int | None = None, reference=None):
        reference = model if reference is None else reference
        for name, value in (("model", model), ("reference", reference)):
            if not hasattr(value, "critic") or not hasattr(value, "policy"):
                raise ValueError(f"{name}: PolicyExpert needs an SB3 off-policy model with a critic, "
                                 f"got {type(value).__name__}")
        if reference.observation_space != model.observation_space or reference.action_space != model.action_space:
            raise ValueError("reference: its observation and action spaces must match model's")
        if aggregate not in ("min", "mean"):
            raise ValueError(f"aggregate: choose 'min' or 'mean', got {aggregate!r}")
        if not noise >= 0:
            raise ValueError(f"noise: must be >= 0, got {noise!r}")
        self.model = model
        self.reference = reference
        self.noise = float(noise)
        self.aggregate = aggregate
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def reference_action(self, observation, deterministic: bool = True) -> np.ndarray:
        """pi_ref: the reference model's action, its mode (``deterministic=True``) or a sample
        from its policy (``False``, what the reference code's value test uses, docs/rlif.md (c)).
        Samples of a squashed-Gaussian actor (SAC, RLIF) come from this expert's own random
        stream (``seed``), so a seeded episode is reproducible; deterministic actors (TD3, DDPG)
        return their action either way."""
        import torch as th

        judge = self.reference
        params = getattr(getattr(judge, "actor", None), "get_action_dist_params", None)
        if deterministic or not callable(params):
            action, _ = judge.predict(np.asarray(observation), deterministic=True)
            return action
        observation = np.asarray(observation, dtype=np.float32)
        with th.no_grad():
            obs_t = th.as_tensor(observation.reshape(-1, *judge.observation_space.shape), device=judge.device)
            mean, log_std, _ = params(obs_t)
            mean, std = mean.cpu().numpy(), np.exp(log_std.cpu().numpy())
        scaled = np.tanh(mean + std * self.rng.standard_normal(mean.shape))
        action = judge.policy.unscale_action(scaled).astype(judge.action_space.dtype)
        return action.reshape(observation.shape[:-len(judge.observation_space.shape)] + judge.action_space.shape)

    def act(self, observation) -> np.ndarray:
        """pi_exp: the acting model's deterministic action plus scaled Gaussian noise, clipped
        to the bounds."""
        action, _ = self.model.predict(np.asarray(observation), deterministic=True)
        if self.noise > 0:
            policy = self.model.policy
            scaled = policy.scale_action(action) + self.noise * self.rng.standard_normal(np.shape(action))
            action = policy.unscale_action(np.clip(scaled, -1.0, 1.0))
        return np.asarray(action, dtype=self.model.action_space.dtype)

    def q_value(self, observation, action):
        """The reference critic's Q(s, a), min or mean over its heads (float, or (batch,) for a
        batch)."""
        import torch as th

        judge = self.reference
        observation = np.asarray(observation, dtype=np.float32)
        single = observation.ndim == len(judge.observation_space.shape)
        scaled = judge.policy.scale_action(np.clip(np.asarray(action, dtype=np.float32), judge.action_space.low,
                                                   judge.action_space.high))
        with th.no_grad():
            obs_t = th.as_tensor(observation.reshape(-1, *judge.observation_space.shape), device=judge.device)
            act_t = th.as_tensor(scaled.reshape(obs_t.shape[0], -1), dtype=th.float32, device=judge.device)
            heads = th.cat(judge.critic(obs_t, act_t), dim=1)
            values = (heads.min(dim=1)[0] if self.aggregate == "min" else heads.mean(dim=1)).cpu().numpy()
        return float(values[0]) if single else values


class JudgedExpert:
    """Two separate roles in one expert (docs/rlif.md (a)): ``acting`` drives when it takes over
    (its ``act``), ``judge`` decides when to take over (its ``q_value`` and
    ``reference_action``). E.g. an :class:`LQRExpert` of a named level acting and a
    :class:`PolicyExpert` around a trained SAC judging: the paper's setting, where the judge is
    a trained agent rather than the exact optimal Q.

    :param acting: an object with ``act(observation)`` (and optionally ``seed``).
    :param judge: an :class:`causalrl.core.protocols.Expert` whose ``q_value`` (and
        ``reference_action`` when it has one) judge the learner.
    """

    def __init__(self, acting, judge):
        if not callable(getattr(acting, "act", None)):
            raise ValueError(f"acting: needs act(observation), got {type(acting).__name__}")
        if not callable(getattr(judge, "q_value", None)):
            raise ValueError(f"judge: needs q_value(observation, action), got {type(judge).__name__}")
        self.acting = acting
        self.judge = judge

    def seed(self, seed: int | None) -> None:
        for role in (self.acting, self.judge):
            if callable(getattr(role, "seed", None)):
                role.seed(seed)

    def act(self, observation) -> np.ndarray:
        return self.acting.act(observation)

    def q_value(self, observation, action):
        return self.judge.q_value(observation, action)

    def reference_action(self, observation, deterministic: bool = True) -> np.ndarray:
        if callable(getattr(self.judge, "reference_action", None)):
            return self.judge.reference_action(observation, deterministic=deterministic)
        return self.judge.act(observation)

    def __repr__(self) -> str:
        return f"JudgedExpert(acting={self.acting!r}, judge={self.judge!r})"


#: SB3 algorithms whose saved model.zip an expert or judge can be (off-policy, with a critic)
SB3_EXPERT_ALGORITHMS = ("sac", "td3", "ddpg")


def load_sb3_model(path, algorithm: str = "sac", device: str = "cpu"):
    """Load a saved SB3 off-policy model (``model.zip`` of e.g. ``causalrl run expert``) to act
    or judge in a :class:`PolicyExpert`. ``path``: a ``.zip`` file, a run directory holding
    ``model.zip``, or a glob pattern of either (the newest match). Models of the project's own
    agents (RLIF) are loaded by their class's ``load`` instead (the experiment layer does that
    for configs)."""
    import glob

    import stable_baselines3

    if algorithm not in SB3_EXPERT_ALGORITHMS:
        raise ValueError(f"algorithm: choose one of {', '.join(SB3_EXPERT_ALGORITHMS)}, got {algorithm!r}")
    if glob.has_magic(str(path)):
        matches = sorted(glob.glob(str(path)), key=lambda p: Path(p).stat().st_mtime)
        if not matches:
            raise ValueError(f"expert model {path}: nothing matches; train one first (e.g. `causalrl run expert`)")
        path = matches[-1]
    path = Path(path)
    if path.is_dir():
        path = path / "model.zip"
    if not path.is_file():
        raise ValueError(f"expert model {path}: not found; give a model.zip (e.g. from `causalrl run expert`)")
    # no unpickling unless the user trusts the file (README, Pickles); no replay buffer: it only acts
    return load_sb3_algorithm(getattr(stable_baselines3, algorithm.upper()), path, device=device, buffer_size=1)


def load_sb3_algorithm(algorithm_class, path, **load_kwargs):
    """``algorithm_class.load(path, **load_kwargs)`` without running code from the file: every
    pickled entry of the zip's settings is rebuilt by
    :func:`causalrl.core.safe_pickle.sb3_custom_objects` (the policy and replay-buffer classes
    must be SB3's or causalrl's, the rest numpy values, spaces, schedules) and the tensors load
    with ``torch.load(weights_only=True)``. Inside ``causalrl.core.safe_pickle.trusting()`` SB3's
    own loader runs instead (the user's ``trust_models``, README "Pickles").

    :param algorithm_class: an SB3 algorithm class (SAC, TD3, RLIF, CIP, ...).
    :param path: the ``model.zip``.
    :param load_kwargs: passed to ``algorithm_class.load`` (``env``, ``device``, ...).
    :return: the loaded algorithm.
    :raises ValueError: one line naming the file when it is damaged, needs code to load, or holds
        a model of another class.
    """
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.policies import BasePolicy

    from causalrl.core.safe_pickle import models_trusted, sb3_custom_objects

    if models_trusted():
        return algorithm_class.load(path, **load_kwargs)
    packages = tuple({"stable_baselines3", "causalrl.agents", algorithm_class.__module__.split(".")[0]})
    objects = sb3_custom_objects(path, {"policy_class": BasePolicy, "replay_buffer_class": ReplayBuffer}, packages)
    try:
        return algorithm_class.load(path, custom_objects=objects, **load_kwargs)
    except Exception as error:  # a damaged or foreign file, whatever SB3 or torch raise for it: one line
        text = " ".join(str(error.args[0] if isinstance(error, KeyError) and error.args else error).split())[:200]
        raise ValueError(f"{path}: cannot load as {algorithm_class.__name__} ({type(error).__name__}: {text})") from None


def evaluate_expert(env: gym.Env, policy, n_episodes: int = 100, seed: int = 0) -> dict:
    """Mean undiscounted return of ``policy`` (an Expert, or any callable obs -> action) on
    ``env``, and the normalised score when the world has one. Seeds each episode (seed + i)."""
    act = policy.act if hasattr(policy, "act") else policy
    if hasattr(policy, "seed") and callable(policy.seed):
        policy.seed(seed)
    returns = episode_returns(env, act, n_episodes, seed)
    result = {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)), "episodes": n_episodes}
    score = getattr(env.unwrapped, "normalised_score", None)
    if callable(score):
        try:
            result["normalised_score"] = float(score(result["return_mean"]))
        except AttributeError:
            pass
    return result


def collect_demonstrations(env: gym.Env, expert, n_steps: int, seed: int = 0) -> dict:
    """Roll out ``expert.act`` for ``n_steps`` steps; returns arrays ``observations``,
    ``actions``, ``next_observations``, ``terminated``, ``truncated`` (no rewards: demonstrations
    for RLIF carry none, docs/rlif.md (g) 4)."""
    if hasattr(expert, "seed") and callable(expert.seed):
        expert.seed(seed)
    rows = {key: [] for key in ("observations", "actions", "next_observations", "terminated", "truncated")}
    observation, _ = env.reset(seed=seed)
    episode = 0
    for _ in range(n_steps):
        action = expert.act(observation)
        next_observation, _, terminated, truncated, _ = env.step(action)
        for key, value in zip(rows, (observation, action, next_observation, terminated, truncated)):
            rows[key].append(np.asarray(value))
        observation = next_observation
        if terminated or truncated:
            episode += 1
            observation, _ = env.reset(seed=seed + episode)
    return {key: np.stack(values) for key, values in rows.items()}
