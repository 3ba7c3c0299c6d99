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
  acting action with ``reference="expert"``, the code's 'ref' strategies). The expert then takes
  over with probability beta if the action is bad and 1 - beta otherwise, and keeps control for
  ``takeover_steps`` (k) steps.
- ``strategy="random"`` (docs/rlif.md (c) random): take over with probability ``rate`` at each step
  the learner controls, for ``takeover_steps`` steps (k = 1 as in the code's random script:
  an independent draw every step).
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
that must not see them (RLIF) ignore them. Per-step ``info`` (DESIGN.md contract):

    intervened            the expert executed this step's action
    intervention_started  the expert took over at this step after a learner-controlled step
                          (the learner's previous transition is the one RLIF labels -1)
    executed_action       the action actually sent to the env (learner's or expert's)
    learner_action        the action the learner proposed
    task_reward           the env's reward for this step

The wrapper's random stream (the Bernoulli draws) and the expert's (``expert.seed``, when it
has one) are reseeded from ``reset(seed=...)``, so a seeded episode is reproducible.
``FactoredLQRIntervention`` (``causalrl/FactoredLQRIntervention-v0``) is FactoredLQR with an
LQRExpert of a named level and this wrapper, presented as one env.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from causalrl.core.checks import check_int
from causalrl.core.protocols import Expert
from causalrl.core.structure import FactoredStructure

__all__ = ["InterventionWrapper", "FactoredLQRIntervention", "STRATEGIES", "THRESHOLD_FORMS"]

STRATEGIES = ("value", "random", "distance", "none")
THRESHOLD_FORMS = ("additive", "relative", "relative-raw")
_STREAM_SALT = 0x1A7E


class InterventionWrapper(gym.Wrapper):
    """An expert that watches the learner and takes over (see the module docstring).

    Args:
        env: the env to wrap (continuous ``Box`` actions).
        expert: an :class:`causalrl.core.protocols.Expert` for this env.
        strategy: ``"value"`` (default), ``"random"``, ``"distance"`` or ``"none"``.
        threshold_form: ``"additive"`` (default), ``"relative"`` or ``"relative-raw"``.
        delta: delta of the additive form (>= 0; smaller is more eager). Default 0.5.
        alpha: alpha of the relative forms. Default 0.97 (docs/rlif.md (c)).
        beta: probability of taking over after a bad action (1 - beta after a good one).
            Default 0.95.
        takeover_steps: k, steps the expert keeps control. Default 4 (``"random"``: use 1 for
            the code's per-step draws).
        rate: p, the per-step takeover probability of ``"random"``. Default 0.5.
        reference: ``"reference"`` (default: a_ref = pi_ref's action, ``expert.reference_action``
            when it has one) or ``"expert"`` (a_ref = the acting expert's action).
        distance_threshold: L1 threshold of ``"distance"``. Default 1.0.
        hand_back: execute the learner's first action after a takeover unchecked (module
            docstring; ``"value"`` and ``"distance"``). Default True.
    """

    def __init__(self, env: gym.Env, expert: Expert, strategy: str = "value", threshold_form: str = "additive",
                 delta: float = 0.5, alpha: float = 0.97, beta: float = 0.95, takeover_steps: int = 4,
                 rate: float = 0.5, reference: str = "reference", distance_threshold: float = 1.0,
                 hand_back: bool = True):
        super().__init__(env)
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
        if not delta >= 0:
            raise ValueError(f"delta: must be >= 0, got {delta!r}")
        check_int(takeover_steps, "takeover_steps")
        self.expert = expert
        self.strategy = strategy
        self.threshold_form = threshold_form
        self.delta, self.alpha, self.beta = float(delta), float(alpha), float(beta)
        self.takeover_steps = int(takeover_steps)
        self.rate = float(rate)
        self.reference = reference
        self.distance_threshold = float(distance_threshold)
        self.hand_back = bool(hand_back)
        self._handing_back = False
        self._rng = np.random.default_rng()
        self._observation = None
        self._remaining = 0
        self._previous_intervened = False
        self.episodes = 0
        #: counters over the wrapper's lifetime
        self.total_steps = 0
        self.total_interventions = 0

    # --- the takeover decision --------------------------------------------------------------
    def is_bad_action(self, observation, action) -> bool:
        """The strategy's test of the learner's action (``"value"`` and ``"distance"``)."""
        if self.strategy == "distance":
            return float(np.abs(np.asarray(self.expert.act(observation)) - action).sum()) >= self.distance_threshold
        if self.reference == "reference" and hasattr(self.expert, "reference_action"):
            reference_action = self.expert.reference_action(observation)
        else:
            reference_action = self.expert.act(observation)
        q_learner = float(self.expert.q_value(observation, action))
        q_reference = float(self.expert.q_value(observation, reference_action))
        if self.threshold_form == "additive":
            return q_learner < q_reference - self.delta
        if self.threshold_form == "relative":
            return q_learner < q_reference - (1 - self.alpha) * abs(q_reference)
        return q_learner < self.alpha * q_reference

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

    def step(self, action):
        if self._observation is None:
            raise gym.error.ResetNeeded("InterventionWrapper: call reset() before step()")
        space = self.env.action_space
        learner_action = np.clip(np.asarray(action, dtype=space.dtype).reshape(space.shape), space.low, space.high)
        started = False
        if self._remaining == 0 and not self._handing_back and self._takes_over(self._observation, learner_action):
            self._remaining = self.takeover_steps
            started = not self._previous_intervened
        intervened = self._remaining > 0
        if intervened:
            executed = np.asarray(self.expert.act(self._observation), dtype=space.dtype).reshape(space.shape)
            self._remaining -= 1
        else:
            executed = learner_action
        self._handing_back = (intervened and self._remaining == 0 and self.hand_back
                              and self.strategy in ("value", "distance"))
        observation, reward, terminated, truncated, info = self.env.step(executed)
        info = dict(info)
        info.update(intervened=intervened, intervention_started=started, executed_action=executed.copy(),
                    learner_action=learner_action, task_reward=float(reward))
        self._observation = observation
        self._previous_intervened = intervened
        self.total_steps += 1
        self.total_interventions += int(intervened)
        return observation, reward, terminated, truncated, info


class FactoredLQRIntervention(gym.Env):
    """``causalrl/FactoredLQRIntervention-v0``: FactoredLQR + LQRExpert(level) +
    InterventionWrapper, as one env (so ``env.unwrapped`` carries the world's ground truth and
    scores, and the expert as ``env.unwrapped.expert``).

    Args:
        expert_level: a name of ``causalrl.envs.experts.LQR_EXPERT_LEVELS``. Default ``"medium"``.
        expert_discount: discount of the expert's judging Q. Default 0.99.
        strategy, threshold_form, delta, alpha, beta, takeover_steps, rate, reference,
            distance_threshold, hand_back: as for :class:`InterventionWrapper` (same defaults).
        **world_kwargs: FactoredLQR's arguments (``n_relevant_states``, ``horizon`` ...).
    """

    metadata = {"render_modes": []}

    def __init__(self, expert_level: str = "medium", expert_discount: float = 0.99, strategy: str = "value",
                 threshold_form: str = "additive", delta: float = 0.5, alpha: float = 0.97, beta: float = 0.95,
                 takeover_steps: int = 4, rate: float = 0.5, reference: str = "reference",
                 distance_threshold: float = 1.0, hand_back: bool = True, render_mode: str | None = None,
                 **world_kwargs):
        from causalrl.envs.experts import LQRExpert
        from causalrl.envs.factored import FactoredLQR

        if render_mode is not None:
            raise ValueError("render_mode: FactoredLQRIntervention has no rendering; leave it None")
        self.world = FactoredLQR(**world_kwargs)
        self._world_kwargs = dict(world_kwargs)
        self.expert = LQRExpert(self.world, level=expert_level, discount=expert_discount)
        self.wrapped = InterventionWrapper(
            self.world, self.expert, strategy=strategy, threshold_form=threshold_form, delta=delta, alpha=alpha,
            beta=beta, takeover_steps=takeover_steps, rate=rate, reference=reference,
            distance_threshold=distance_threshold, hand_back=hand_back)
        self.observation_space = self.wrapped.observation_space
        self.action_space = self.wrapped.action_space

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
        (``causalrl.experiment.evaluation``)."""
        from causalrl.envs.factored import FactoredLQR

        return FactoredLQR(**self._world_kwargs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.wrapped.reset(seed=seed, options=options)

    def step(self, action):
        return self.wrapped.step(action)
