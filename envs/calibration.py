"""The judge's threshold and the judge check of the value test (docs/rlif.md (c), "delta: auto").

The value test flags the learner's action a when Q(s, a) < Q(s, a_ref) - delta, i.e. when the
gap Q(s, a_ref) - Q(s, a) exceeds delta, with Q the judge's critic and a_ref a sample (or the mode)
of the judge's policy pi_ref. :func:`calibrate_delta` plays pi_ref's mode for ``n_states`` steps
from ``reset(seed=seed)`` (the run's seed) and, at every visited state, measures the gaps of

- the judge's *own* sampled actions (``n_actions`` draws of pi_ref, each against its own draw of
  a_ref): how far the judge's gaps spread when nothing is wrong;
- ``n_actions`` uniformly random actions (the former calibration, kept as ``method="uniform"``);

and, on ``n_states`` steps of their own rollouts from the same seed (where each would act), the
gaps of the acting expert's actions (``expert.act``) and of the do-nothing action (the middle of
the action bounds, zero for symmetric bounds).

``method="own"`` (the default) takes delta as the ``quantile`` quantile of the judge's own gaps
(:data:`DEFAULT_DELTA_QUANTILE`, 0.95): the judge flags its own sampled actions in about
1 - ``quantile`` of the steps, and anything measurably worse than the judge more often.
``method="uniform"`` takes the quantile of the uniform actions' gaps (the calibration of the
results made before the own-gap calibration; on tasks with a control cost it makes the judge
blind: uniform actions pay that cost, so delta lands above every gap a plausible policy has).

At the chosen delta it reports the share of steps the judge flags for its own policy
(``own_flag_rate``), the acting expert (``expert_flag_rate``) and the do-nothing action
(``null_flag_rate``). :func:`judge_check` refuses a judge that cannot tell the acting expert
from itself: when the acting expert is not the judge's own deterministic policy, its flag rate
must exceed the judge's own by ``margin`` (:data:`DEFAULT_JUDGE_MARGIN`, 0.15). The same
rollouts give the task returns of the judge's mode, the acting expert and doing nothing
(``judge_return``, ``expert_return``, ``null_return``): the reference lines of the RLIF report
(docs/reports.md).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from causalrl.core.checks import check_int

__all__ = ["calibrate_delta", "judge_check", "acts_as_judge", "null_action", "CALIBRATIONS",
           "DEFAULT_DELTA_QUANTILE", "DEFAULT_JUDGE_MARGIN"]

#: the one default quantile of ``delta: auto`` (of the judge's own gaps)
DEFAULT_DELTA_QUANTILE = 0.95
#: the one default margin of the judge check (flag rate on the acting expert minus on the judge)
DEFAULT_JUDGE_MARGIN = 0.15
#: calibration methods of ``delta: auto`` (module docstring)
CALIBRATIONS = ("own", "uniform")
_STREAM_SALT = 0x1A7E


def null_action(space: gym.spaces.Box) -> np.ndarray:
    """The do-nothing / mean action: the middle of the action bounds (zero when symmetric)."""
    return ((np.asarray(space.low, dtype=float) + np.asarray(space.high, dtype=float)) / 2).astype(space.dtype)


def acts_as_judge(expert) -> bool:
    """True when the acting expert is the judge's own deterministic policy (then the judge check
    has nothing to compare): a ``PolicyExpert`` whose acting model is its reference, without
    noise, or an ``LQRExpert`` that acts optimally (its judge is the optimal policy); any other
    expert says so with a boolean attribute ``acts_as_judge``."""
    declared = getattr(expert, "acts_as_judge", None)
    if isinstance(declared, bool):
        return declared
    if hasattr(expert, "model") and hasattr(expert, "reference"):
        return expert.model is expert.reference and not getattr(expert, "noise", 0) > 0
    if hasattr(expert, "gain_scale") and hasattr(expert, "action_noise"):
        return expert.gain_scale == 1.0 and not expert.action_noise > 0
    return False


def _reference_actions(expert, observations: np.ndarray, deterministic: bool, space) -> np.ndarray:
    """pi_ref's actions (``expert.reference_action``, else ``expert.act``) for a batch of states."""
    reference = getattr(expert, "reference_action", None)

    def one(observation):
        action = reference(observation, deterministic=deterministic) if callable(reference) else expert.act(observation)
        return np.asarray(action, dtype=space.dtype).reshape(space.shape)

    if callable(reference):
        batch = np.asarray(reference(observations, deterministic=deterministic), dtype=space.dtype)
        if batch.shape == (len(observations), *space.shape):
            return batch
    return np.stack([one(observation) for observation in observations])


def _q(expert, observations, actions) -> np.ndarray:
    return np.asarray(expert.q_value(observations, actions), dtype=float).reshape(len(observations))


def _rollout(env: gym.Env, n_states: int, seed: int, act, measure) -> list[float]:
    """Drive ``env`` with ``act(observation)`` for ``n_states`` steps from ``reset(seed=seed)``,
    calling ``measure(observation, action)`` at every state before the step; returns the task
    returns of the episodes that ended within those steps. When none did, the first episode is
    played on to its end (unmeasured; at most the env's ``max_episode_steps``, else 1000, steps in
    all), so that a return is known on long-episode tasks too."""
    episode, returns, total = 0, [], 0.0
    limit = getattr(getattr(env, "spec", None), "max_episode_steps", None) or 1000
    observation, _ = env.reset(seed=seed)
    for step in range(max(n_states, limit)):
        if step >= n_states and returns:
            break
        action = act(observation)
        if step < n_states:
            measure(observation, action)
        observation, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            episode += 1
            returns.append(total)
            total = 0.0
            observation, _ = env.reset(seed=seed + episode)
    return returns


def _gaps(env: gym.Env, expert, n_states: int, n_actions: int, seed: int, sample_reference: bool) -> dict:
    """The judge's gaps Q(s, a_ref) - Q(s, a) (module docstring): of its own sampled actions and of
    uniform actions on the states pi_ref's mode visits, of the acting expert's actions on the
    states it visits itself, and of the do-nothing action on the states doing nothing visits."""
    space = env.action_space
    rng = np.random.default_rng([seed, _STREAM_SALT + 2])
    if callable(getattr(expert, "seed", None)):  # sampled actions: the same seed, the same delta
        expert.seed(int(np.random.SeedSequence([seed, _STREAM_SALT + 3]).generate_state(1)[0]))
    gaps = {"own": [], "uniform": [], "expert": [], "null": []}

    def q_reference(observations):
        return _q(expert, observations, _reference_actions(expert, observations, not sample_reference, space))

    def judge_states(observation, action):
        observations = np.repeat(np.asarray(observation)[None], n_actions, axis=0)
        q_ref = q_reference(observations)
        own = _reference_actions(expert, observations, False, space)
        uniform = rng.uniform(space.low, space.high, size=(n_actions, *space.shape)).astype(space.dtype)
        gaps["own"].append(q_ref - _q(expert, observations, own))
        gaps["uniform"].append(q_ref - _q(expert, observations, uniform))

    def policy_states(name):
        def measure(observation, action):
            observations = np.asarray(observation)[None]
            gaps[name].append(q_reference(observations) - _q(expert, observations, np.asarray(action)[None]))
        return measure

    def judge_mode(observation):
        return _reference_actions(expert, np.asarray(observation)[None], True, space)[0]

    def acting(observation):
        return np.asarray(expert.act(observation), dtype=space.dtype).reshape(space.shape)

    null = null_action(space)
    returns = {"judge": _rollout(env, n_states, seed, judge_mode, judge_states),
               "expert": _rollout(env, n_states, seed, acting, policy_states("expert")),
               "null": _rollout(env, n_states, seed, lambda observation: null.copy(), policy_states("null"))}
    gaps = {name: np.concatenate(values) for name, values in gaps.items()}
    if not all(np.all(np.isfinite(values)) for values in gaps.values()):
        raise ValueError("delta: the judge's Q values are not finite on the reference's states; give delta as a number")
    return gaps, returns


def calibrate_delta(env: gym.Env, expert, quantile: float = DEFAULT_DELTA_QUANTILE, n_states: int = 200,
                    n_actions: int = 32, seed: int = 0, sample_reference: bool = True, method: str = "own",
                    delta: float | None = None) -> tuple[float, dict]:
    """delta of the additive value test in the judge's Q units, and the judge's flag rates at it
    (module docstring). Resets and steps ``env`` (three rollouts from ``reset(seed=seed)``): give
    the run's seed.

    :param env: the env (unwrapped by the intervention wrapper) to play pi_ref on.
    :param expert: the expert: ``q_value``, ``act`` and (optionally) ``reference_action`` and ``seed``.
    :param quantile: the quantile of the gaps that delta is. Default :data:`DEFAULT_DELTA_QUANTILE`.
    :param n_states: states pi_ref visits. Default 200.
    :param n_actions: own samples and uniform actions per state. Default 32.
    :param seed: seed of the rollout and of every draw. Default 0.
    :param sample_reference: a_ref is a sample of pi_ref (as the value test) or its mode.
    :param method: ``"own"`` (default) or ``"uniform"``: which gaps delta is the quantile of.
    :param delta: a given delta: only measure the flag rates at it (no calibration). Default None.
    :returns: (delta, statistics): ``delta``, ``method``, ``quantile``, ``seed``, the gap spread
        of the method (``gap_min``, ``gap_max``, ``gap_mean``, ``count``), the flag rates, and the
        mean task return of the episodes each rollout ended (``judge_return``: the judge's mode,
        ``expert_return``: the acting expert, ``null_return``: doing nothing; the first episode is
        played to its end when none ended within ``n_states`` steps; None when it still did not)
        with their counts (``*_return_episodes``).
    """
    check_int(n_states, "calibration_steps")
    check_int(n_actions, "n_actions")
    if method not in CALIBRATIONS:
        raise ValueError(f"calibration: choose one of {', '.join(CALIBRATIONS)}, got {method!r}")
    if not 0 < quantile < 1:
        raise ValueError(f"delta_quantile: must lie in (0, 1), got {quantile!r}")
    gaps, returns = _gaps(env, expert, n_states, n_actions, seed, sample_reference)
    chosen = gaps[method]
    if delta is None:
        if method == "own" and np.ptp(gaps["own"]) == 0:
            raise ValueError("delta: auto calibrates on the spread of the judge's own sampled actions, but this judge's "
                             "policy is deterministic (all its gaps are equal); give delta as a number or set "
                             "calibration: uniform")
        delta = max(float(np.quantile(chosen, quantile)), 0.0)
        how = f"{method} (quantile {quantile:g} of the judge's {'own sampled' if method == 'own' else 'uniform'} " \
              f"actions' gaps, seed {seed})"
    else:
        delta, how = float(delta), "given"
    stats = {"delta": float(delta), "method": method if how != "given" else "given", "quantile": float(quantile),
             "seed": int(seed), "how": how, "gap_min": float(chosen.min()), "gap_max": float(chosen.max()),
             "gap_mean": float(chosen.mean()), "count": int(chosen.size)}
    for name in ("own", "expert", "null"):
        stats[f"{name}_flag_rate"] = float(np.mean(gaps[name] > delta))
    for name, episodes in returns.items():  # None: no episode ended within n_states steps
        stats[f"{name}_return"] = float(np.mean(episodes)) if episodes else None
        stats[f"{name}_return_episodes"] = len(episodes)
    return float(delta), stats


def judge_check(stats: dict, margin: float = DEFAULT_JUDGE_MARGIN) -> str | None:
    """None when the judge flags the acting expert more often than its own policy by at least
    ``margin``; else the one-line reason (what was measured and what to change)."""
    own, acting = stats["own_flag_rate"], stats["expert_flag_rate"]
    if acting - own >= margin:
        return None
    return (f"judge check: at delta {stats['delta']:.4g} ({stats['how']}) the judge flags the acting expert in "
            f"{acting:.1%} of its steps and its own policy in {own:.1%}, less than the margin {margin:g} apart: it "
            "cannot tell them apart; use a better-trained judge (reference), a weaker acting expert, another "
            "delta / delta_quantile, or force: true (--force) to run anyway")
