"""Simulated expert interventions (docs/rlif.md (a), (c)): ``InterventionWrapper`` lets an
:class:`causalrl.core.protocols.Expert` watch the learner and take over.

Each ``step(action)`` receives the *learner's* proposed action a_pi for the current
observation s. While the learner is in control the wrapper decides whether the expert takes over:

- ``strategy="value"`` (docs/rlif.md (c) value-based): the action is *bad* when
      additive form (``threshold_form="additive"``, default):  Q(s, a_pi) < Q(s, a_ref) - delta
      relative form (``"relative"``):   Q(s, a_pi) < Q(s, a_ref) - (1 - alpha) |Q(s, a_ref)|
      reference form (``"relative-raw"``): Q(s, a_pi) < alpha Q(s, a_ref)  (the code's test;
          it flips meaning when Q < 0, docs/rlif.md (g) 5, so it is not the default)
  with Q the expert's ``q_value`` and a_ref the expert's ``reference_action`` (pi_ref; or its
  acting action with ``reference="expert"``, the code's 'ref' strategies). a_ref is *sampled*
  from pi_ref by default, as the reference code does (``sample_reference=False``: its mode; a
  sampled a_ref has a lower Q, which makes the test more lenient). The expert then takes
  over with probability beta if the action is bad and 1 - beta otherwise, and keeps control for
  ``takeover_steps`` (k) steps (default 4). ``delta="auto"`` calibrates delta in Q units once,
  at the first ``reset(seed=...)`` or :meth:`InterventionWrapper.calibrate` (the run's seed;
  ``causalrl.envs.calibration``): by default the ``delta_quantile`` (0.95) quantile of the gaps
  Q(s, a_ref) - Q(s, a) of the judge's *own* sampled actions a on the states it visits, so the
  judge flags its own policy in about 5% of the steps and anything measurably worse more often
  (``calibration="uniform"``: of uniformly random actions, the former calibration). It then runs
  the judge check (refuses a judge that flags the acting expert no more than itself, by
  ``judge_margin``, unless ``force``). The value chosen is ``wrapper.delta`` and its statistics
  (how it was calibrated, the flag rates of the judge's own policy, the acting expert and the
  do-nothing action) ``wrapper.delta_calibration``.
- ``strategy="random"`` (docs/rlif.md (c) random): take over with probability ``rate`` at each step
  the learner controls, for ``takeover_steps`` steps (default k = 1 as in the code's random
  script: an independent draw every step).
- ``strategy="distance"`` (docs/rlif.md (d), the reference HG-DAgger gate): bad when the L1 distance
  between a_pi and the expert's action is at least ``distance_threshold``; take over with
  probability 1 - epsilon if bad, epsilon otherwise, epsilon = 0.05 exp(-0.1 n_episodes).
- ``strategy="none"``: the expert never takes over (it only labels, e.g. for DAgger).

After the k expert steps control returns to the learner. With ``hand_back=True`` (default, the
reference code: its RLIF loop and its HG-DAgger sampler skip the check at the step a block
ends, docs/rlif.md (b) pseudocode) the learner's first action after a takeover is executed
unchecked and its next one is checked, so every takeover follows a learner step: a learner
that stays bad earns RLIF's -1 once per block instead of letting takeovers chain into one long
expert-driven stretch with no -1. With ``hand_back=False`` the first action is checked at
once. ``"random"`` draws every step independently either way (docs/rlif.md (g) 7). While the
expert controls, the executed action is ``expert.act(s)``; the learner's action is ignored.
Rewards are the wrapped env's (the task reward) and are passed through unchanged: learners
that must not see them (RLIF) ignore them. Per-step ``info`` (the contract of docs/rlif.md (c)):

    intervened            the expert executed this step's action
    intervention_started  the expert took over at this step after a learner-controlled step
                          (the learner's previous transition is the one RLIF labels -1)
    executed_action       the action actually sent to the env (learner's or expert's)
    learner_action        the action the learner proposed
    task_reward           the env's reward for this step
    judged                the strategy tested the learner's action at this step
    judged_bad            ... and found it bad (False when not judged)
    q_gap                 Q(s, a_ref) - Q(s, a_pi) of a value test (only at steps that ran one)
    null_judged_bad       the same value test would flag the do-nothing (mid-bounds) action
                          (only at steps that ran one)

The wrapper follows gymnasium's wrapper convention (``gymnasium.utils.RecordConstructorArgs``),
so ``env.spec`` and gymnasium's ``check_env`` can recreate it.

The wrapper's random stream (the Bernoulli draws) and the expert's (``expert.seed``, when it
has one) are reseeded from ``reset(seed=...)``, so a seeded episode is reproducible.
``FactoredLQRIntervention`` (``causalrl/FactoredLQRIntervention-v0``) is FactoredLQR with an
LQRExpert of a named level and this wrapper, presented as one env.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from causalrl.core.checks import check_action, check_int
from causalrl.core.protocols import Expert
from causalrl.core.structure import FactoredStructure
from causalrl.envs.calibration import (
    CALIBRATIONS,
    DEFAULT_DELTA_QUANTILE,
    DEFAULT_JUDGE_MARGIN,
    acts_as_judge,
    calibrate_delta,
    judge_check,
    null_action,
)
from causalrl.envs.render import check_render_mode, framed

__all__ = ["InterventionWrapper", "FactoredLQRIntervention", "calibrate_delta", "STRATEGIES", "THRESHOLD_FORMS",
           "DEFAULT_TAKEOVER_STEPS", "CALIBRATIONS"]

STRATEGIES = ("value", "random", "distance", "none")
THRESHOLD_FORMS = ("additive", "relative", "relative-raw")
#: k per strategy when ``takeover_steps`` is None: the reference code's values (docs/rlif.md (g) 6-7)
DEFAULT_TAKEOVER_STEPS = {"value": 4, "distance": 4, "random": 1, "none": 1}
_STREAM_SALT = 0x1A7E




class InterventionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """An expert that watches the learner and takes over (see the module docstring).

    :param env: the env to wrap (continuous ``Box`` actions).
    :param expert: an :class:`causalrl.core.protocols.Expert` for this env.
    :param strategy: ``"value"`` (default), ``"random"``, ``"distance"`` or ``"none"``.
    :param threshold_form: ``"additive"`` (default), ``"relative"`` or ``"relative-raw"``.
    :param delta: delta of the additive form, in Q units (>= 0; smaller is more eager), or
        ``"auto"``: calibrated by ``causalrl.envs.calibration.calibrate_delta`` once, at the first
        ``reset(seed=...)`` or :meth:`calibrate` (which resets and steps ``env``). Default 0.5.
    :param delta_quantile: the quantile of ``"auto"``. Default 0.95 (the judge flags its own
        sampled actions in about 5% of the steps).
    :param calibration: ``"own"`` (default: the judge's own sampled actions' gaps) or
        ``"uniform"`` (uniformly random actions' gaps, the former calibration).
    :param calibration_steps: states the reference visits for ``"auto"``. Default 200.
    :param judge_margin: the judge check of ``"auto"``: the judge's flag rate on the acting
        expert must exceed its rate on its own policy by this much, else :meth:`calibrate`
        raises a one-line ``ValueError`` (skipped when the acting expert is the judge's own
        deterministic policy). Default 0.15.
    :param force: run even when the judge check fails (the rates are still measured). Default False.
    :param alpha: alpha of the relative forms. Default 0.97 (docs/rlif.md (c)).
    :param beta: probability of taking over after a bad action (1 - beta after a good one).
        Default 0.95.
    :param takeover_steps: k, steps the expert keeps control. Default None: 4 for ``"value"`` and
        ``"distance"``, 1 for ``"random"`` (the code's per-step draws), as the reference code.
    :param rate: p, the per-step takeover probability of ``"random"``. Default 0.5.
    :param reference: ``"reference"`` (default: a_ref = pi_ref's action, ``expert.reference_action``
        when it has one) or ``"expert"`` (a_ref = the acting expert's action).
    :param sample_reference: a_ref is a sample of pi_ref (default True, as the reference code's
        value test) or its mode (False). An expert whose pi_ref is deterministic (the LQR
        oracle) gives the same action either way.
    :param distance_threshold: L1 threshold of ``"distance"``. Default 1.0.
    :param hand_back: execute the learner's first action after a takeover unchecked (module
        docstring; ``"value"`` and ``"distance"``). Default True.
    """

    def __init__(self, env: gym.Env, expert: Expert, strategy: str = "value", threshold_form: str = "additive",
                 delta: float | str = 0.5, alpha: float = 0.97, beta: float = 0.95, takeover_steps: int | None = None,
                 rate: float = 0.5, reference: str = "reference", distance_threshold: float = 1.0,
                 hand_back: bool = True, sample_reference: bool = True,
                 delta_quantile: float = DEFAULT_DELTA_QUANTILE, calibration_steps: int = 200,
                 calibration: str = "own", judge_margin: float = DEFAULT_JUDGE_MARGIN, force: bool = False):
        gym.utils.RecordConstructorArgs.__init__(
            self, expert=expert, strategy=strategy, threshold_form=threshold_form, delta=delta, alpha=alpha, beta=beta,
            takeover_steps=takeover_steps, rate=rate, reference=reference, distance_threshold=distance_threshold,
            hand_back=hand_back, sample_reference=sample_reference, delta_quantile=delta_quantile,
            calibration_steps=calibration_steps, calibration=calibration, judge_margin=judge_margin, force=force)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"env: InterventionWrapper needs a Box action space, got {env.action_space}")
        if not isinstance(expert, Expert):
            raise ValueError(f"expert: needs act(observation) and q_value(observation, action), got {expert!r}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: unknown {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if threshold_form not in THRESHOLD_FORMS:
            raise ValueError(f"threshold_form: unknown {threshold_form!r}; choose one of {', '.join(THRESHOLD_FORMS)}")
        if reference not in ("reference", "expert"):
            raise ValueError(f"reference: choose 'reference' or 'expert', got {reference!r}")
        for name, value in [("beta", beta), ("rate", rate)]:
            if not 0 <= value <= 1:
                raise ValueError(f"{name}: must lie in [0, 1], got {value!r}")
        if isinstance(delta, str):
            if delta != "auto":
                raise ValueError(f"delta: a number >= 0 (Q units) or 'auto', got {delta!r}")
        elif isinstance(delta, bool) or not isinstance(delta, (int, float, np.number)) or not delta >= 0:
            raise ValueError(f"delta: must be a number >= 0 (Q units) or 'auto', got {delta!r}")
        if isinstance(delta_quantile, bool) or not isinstance(delta_quantile, (int, float)) or not 0 < delta_quantile < 1:
            raise ValueError(f"delta_quantile: must lie in (0, 1), got {delta_quantile!r}")
        check_int(calibration_steps, "calibration_steps")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration: choose one of {', '.join(CALIBRATIONS)}, got {calibration!r}")
        if isinstance(judge_margin, bool) or not isinstance(judge_margin, (int, float)) or not -1 <= judge_margin <= 1:
            raise ValueError(f"judge_margin: must be a number in [-1, 1], got {judge_margin!r}")
        if takeover_steps is None:
            takeover_steps = DEFAULT_TAKEOVER_STEPS[strategy]
        check_int(takeover_steps, "takeover_steps")
        self.expert = expert
        self.strategy = strategy
        self.threshold_form = threshold_form
        self.sample_reference = bool(sample_reference)
        #: statistics of the "auto" calibration of delta (None when delta was given or before it ran)
        self.delta_calibration: dict | None = None
        self._calibration = {"quantile": float(delta_quantile), "n_states": int(calibration_steps),
                             "method": calibration, "margin": float(judge_margin), "force": bool(force)}
        self._pending_calibration = delta == "auto"
        self.delta = float("nan") if delta == "auto" else float(delta)
        self.alpha, self.beta = float(alpha), float(beta)
        self.takeover_steps = int(takeover_steps)
        self.rate = float(rate)
        self.reference = reference
        self.distance_threshold = float(distance_threshold)
        self.hand_back = bool(hand_back)
        self._handing_back = False
        self._rng = np.random.default_rng()
        self._observation = None
        self._expert_action = None  # the acting expert's action at the current step (one draw per step)
        self._judgement: tuple | None = None  # (bad, q_gap, do-nothing bad) of the current step's test
        self._remaining = 0
        self._previous_intervened = False
        self.episodes = 0
        #: counters over the wrapper's lifetime
        self.total_steps = 0
        self.total_interventions = 0

    def calibrate(self, seed: int = 0) -> dict | None:
        """Calibrate ``delta="auto"`` on the run's ``seed`` and run the judge check (class
        docstring), once: later calls return the same statistics. Resets and steps the wrapped env.
        Returns ``delta_calibration`` (None when delta was given)."""
        if not self._pending_calibration:
            return self.delta_calibration
        settings = self._calibration
        delta, stats = calibrate_delta(self.env, self.expert, settings["quantile"], settings["n_states"],
                                       seed=int(seed), sample_reference=self.sample_reference,
                                       method=settings["method"])
        stats["judge_margin"] = settings["margin"]
        if acts_as_judge(self.expert):
            stats["judge_check"] = "skipped: the acting expert is the judge's own policy"
        else:
            failure = judge_check(stats, settings["margin"])
            if failure is not None and not settings["force"]:
                raise ValueError(failure)
            stats["judge_check"] = "passed" if failure is None else "forced: " + failure
        self.delta, self.delta_calibration, self._pending_calibration = delta, stats, False
        return stats

    # --- the takeover decision --------------------------------------------------------------
    def _expert_act(self, observation) -> np.ndarray:
        """The acting expert's action at this step, drawn once: the action judged (distance gate,
        ``reference="expert"``) is the one executed, as in the reference code."""
        if self._expert_action is None:
            space = self.env.action_space
            self._expert_action = np.asarray(self.expert.act(observation), dtype=space.dtype).reshape(space.shape)
        return self._expert_action

    def is_bad_action(self, observation, action) -> bool:
        """The strategy's test of the learner's action (``"value"`` and ``"distance"``)."""
        if self.strategy == "distance":
            bad = float(np.abs(self._expert_act(observation) - action).sum()) >= self.distance_threshold
            self._judgement = (bool(bad), float("nan"), None)
            return bool(bad)
        if self.reference == "reference" and hasattr(self.expert, "reference_action"):
            reference_action = self.expert.reference_action(observation, deterministic=not self.sample_reference)
        else:
            reference_action = self._expert_act(observation)
        q_learner = float(self.expert.q_value(observation, action))
        q_reference = float(self.expert.q_value(observation, reference_action))
        bad = self._flags(q_learner, q_reference)
        q_null = float(self.expert.q_value(observation, null_action(self.env.action_space)))
        self._judgement = (bool(bad), q_reference - q_learner, self._flags(q_null, q_reference))
        return bool(bad)

    def _flags(self, q_value: float, q_reference: float) -> bool:
        """The value test: an action of Q ``q_value`` is bad against a_ref's ``q_reference``."""
        if self.threshold_form == "additive":
            return bool(q_value < q_reference - self.delta)
        if self.threshold_form == "relative":
            return bool(q_value < q_reference - (1 - self.alpha) * abs(q_reference))
        return bool(q_value < self.alpha * q_reference)

    def _takes_over(self, observation, action) -> bool:
        if self.strategy == "none":
            return False
        if self.strategy == "random":
            return bool(self._rng.random() < self.rate)
        bad = self.is_bad_action(observation, action)
        if self.strategy == "value":
            probability = self.beta if bad else 1 - self.beta
        else:  # distance: decaying epsilon (docs/rlif.md (d) BinarySampler)
            epsilon = 0.05 * np.exp(-0.1 * self.episodes)
            probability = 1 - epsilon if bad else epsilon
        return bool(self._rng.random() < probability)

    # --- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self._pending_calibration:  # once, on the run's seed (0 when the first reset has none)
            self.calibrate(0 if seed is None else seed)
        observation, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([seed, _STREAM_SALT])
            if callable(getattr(self.expert, "seed", None)):
                self.expert.seed(int(np.random.SeedSequence([seed, _STREAM_SALT + 1]).generate_state(1)[0]))
        if self._observation is not None:
            self.episodes += 1
        self._observation = observation
        self._remaining = 0
        self._previous_intervened = False
        self._handing_back = False
        return observation, info

    def evaluation_env(self) -> gym.Env:
        """The wrapped env without the expert, for evaluating the learner alone
        (``causalrl.experiment.run.evaluation``). It is this wrapper's own inner env: evaluate on a
        wrapper built for evaluation, not on the one a learner trains in."""
        return self.env

    def render(self):
        """The wrapped env's frame (its own ``render_mode``), with an orange border while the
        expert acts (docs/worlds.md, "Rendering")."""
        frame = self.env.render()
        if isinstance(frame, np.ndarray) and frame.ndim == 3 and self._previous_intervened:
            return framed(frame)
        return frame

    def step(self, action):
        if self._observation is None:
            raise gym.error.ResetNeeded("InterventionWrapper: call reset() before step()")
        space = self.env.action_space
        learner_action = np.clip(check_action(action, space.shape, dtype=space.dtype), space.low, space.high)
        self._expert_action, self._judgement = None, None
        started = False
        if self._remaining == 0 and not self._handing_back and self._takes_over(self._observation, learner_action):
            self._remaining = self.takeover_steps
            started = not self._previous_intervened
        intervened = self._remaining > 0
        if intervened:
            executed = self._expert_act(self._observation).copy()
            self._remaining -= 1
        else:
            executed = learner_action
        self._handing_back = (intervened and self._remaining == 0 and self.hand_back
                              and self.strategy in ("value", "distance"))
        observation, reward, terminated, truncated, info = self.env.step(executed)
        info = dict(info)
        bad, gap, null_bad = self._judgement if self._judgement is not None else (False, None, None)
        info.update(intervened=intervened, intervention_started=started, executed_action=executed.copy(),
                    learner_action=learner_action, task_reward=float(reward), judged=self._judgement is not None,
                    judged_bad=bad)
        if gap is not None and np.isfinite(gap):
            info["q_gap"] = float(gap)
        if null_bad is not None:
            info["null_judged_bad"] = bool(null_bad)
        self._observation = observation
        self._previous_intervened = intervened
        self.total_steps += 1
        self.total_interventions += int(intervened)
        return observation, reward, terminated, truncated, info


class FactoredLQRIntervention(gym.Env):
    """FactoredLQR with an LQR expert that watches the learner and takes over, as one env.

    ``causalrl/FactoredLQRIntervention-v0`` is FactoredLQR + an expert + InterventionWrapper, as
    one env (so ``env.unwrapped`` carries the world's ground truth and scores, and the expert
    as ``env.unwrapped.expert``).

    The acting expert is always ``LQRExpert(level=expert_level)``. The judge (pi_ref and
    Q^{pi_ref}, docs/rlif.md (a)) is either the ORACLE, the exact optimal Q and policy of the
    discounted problem (``judge="oracle"``, the default: an upper bound no real judge reaches),
    or a trained SB3 agent (``judge=<model.zip or run directory>``, e.g. the ``judge-factored``
    preset's SAC): its critic gives Q and its policy the reference action, as in the paper,
    whose judges are trained agents.

    :param expert_level: a name of ``causalrl.envs.experts.LQR_EXPERT_LEVELS``. Default ``"medium"``.
    :param expert_discount: discount of the oracle judge's Q. Default 0.99.
    :param judge: ``"oracle"`` (default) or the path of a saved SB3 model (``.zip`` or a run
        directory holding ``model.zip``) trained on FactoredLQR with the same world arguments.
    :param judge_algorithm: the SB3 class of ``judge``: ``"sac"`` (default), ``"td3"`` or ``"ddpg"``.
    :param world_kwargs: FactoredLQR's arguments (``n_relevant_states``, ``horizon`` ...).

    The intervention arguments (``strategy``, ``threshold_form``, ``delta``, ``alpha``, ``beta``,
    ``takeover_steps``, ``rate``, ``reference``, ``distance_threshold``, ``hand_back``,
    ``sample_reference``, ``delta_quantile``, ``calibration``, ``judge_margin``, ``force``) are
    :class:`InterventionWrapper`'s, with the same
    defaults.
    :param render_mode: ``"rgb_array"`` for FactoredLQR's bar frames, bordered orange while the
        expert acts (docs/worlds.md, "Rendering"), or None. Default None; the
        ``evaluation_env()`` renders the same way.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, expert_level: str = "medium", expert_discount: float = 0.99, judge: str = "oracle",
                 judge_algorithm: str = "sac", strategy: str = "value", threshold_form: str = "additive",
                 delta: float | str = 0.5, alpha: float = 0.97, beta: float = 0.95, takeover_steps: int | None = None,
                 rate: float = 0.5, reference: str = "reference", distance_threshold: float = 1.0,
                 hand_back: bool = True, sample_reference: bool = True,
                 delta_quantile: float = DEFAULT_DELTA_QUANTILE, calibration: str = "own",
                 judge_margin: float = DEFAULT_JUDGE_MARGIN, force: bool = False,
                 render_mode: str | None = None, **world_kwargs):
        from causalrl.envs.experts import (
            JudgedExpert,
            LQRExpert,
            PolicyExpert,
            load_sb3_model,
        )
        from causalrl.envs.factored import FactoredLQR

        self.render_mode = check_render_mode(render_mode, type(self))
        if not isinstance(judge, str) or not judge:
            raise ValueError(f"judge: 'oracle' or the path of a saved SB3 model, got {judge!r}")
        self.world = FactoredLQR(**world_kwargs, render_mode=render_mode)
        self._world_kwargs = dict(world_kwargs)
        self.judge = judge
        self.expert = LQRExpert(self.world, level=expert_level, discount=expert_discount)
        if judge != "oracle":
            model = load_sb3_model(judge, judge_algorithm)
            if model.observation_space != self.world.observation_space or model.action_space != self.world.action_space:
                raise ValueError(f"judge: {judge} was trained on other spaces than this FactoredLQR's; train it with "
                                 "the same world arguments")
            self.expert = JudgedExpert(self.expert, PolicyExpert(model))
        self.wrapped = InterventionWrapper(
            self.world, self.expert, strategy=strategy, threshold_form=threshold_form, delta=delta, alpha=alpha,
            beta=beta, takeover_steps=takeover_steps, rate=rate, reference=reference,
            distance_threshold=distance_threshold, hand_back=hand_back, sample_reference=sample_reference,
            delta_quantile=delta_quantile, calibration=calibration, judge_margin=judge_margin, force=force)
        self.observation_space = self.wrapped.observation_space
        self.action_space = self.wrapped.action_space

    @property
    def strategy(self) -> str:
        return self.wrapped.strategy

    @property
    def delta(self) -> float:
        """delta of the value test (calibrated when built with ``delta="auto"``)."""
        return self.wrapped.delta

    @property
    def delta_calibration(self) -> dict | None:
        """How delta was calibrated and the judge's flag rates (``InterventionWrapper.delta_calibration``)."""
        return self.wrapped.delta_calibration

    def calibrate(self, seed: int = 0) -> dict | None:
        """``InterventionWrapper.calibrate``: calibrate ``delta="auto"`` once on ``seed``."""
        return self.wrapped.calibrate(seed)

    @property
    def causal_structure(self) -> FactoredStructure:
        return self.world.causal_structure

    @property
    def optimal_return(self) -> float:
        return self.world.optimal_return

    @property
    def random_return(self) -> float:
        return self.world.random_return

    def normalised_score(self, episode_return: float) -> float:
        """The world's score of a task-reward return: 0 = random, 1 = optimal."""
        return self.world.normalised_score(episode_return)

    def evaluation_env(self) -> gym.Env:
        """A fresh FactoredLQR of the same instance without the expert: the learner alone
        (``causalrl.experiment.run.evaluation``)."""
        from causalrl.envs.factored import FactoredLQR

        return FactoredLQR(**self._world_kwargs, render_mode=self.render_mode)

    def render(self):
        """FactoredLQR's frame, bordered orange while the expert acts (``render_mode="rgb_array"``)."""
        return self.wrapped.render()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.wrapped.reset(seed=seed, options=options)

    def step(self, action):
        return self.wrapped.step(action)
