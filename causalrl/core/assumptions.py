"""What a world lets an agent know: its declared assumptions (docs/bandits.md, "Assumptions").

The papers let a learner know a few facts about its world: the noise mean nu and standard
deviation sigma (CSL-UCB, LinSEM), the number of rounds T it plans for, and whether the world is
piecewise stationary. A world declares them in one place, ``env.unwrapped.assumptions`` (an
:class:`Assumptions`); agents read them from there and nowhere else. They are not ground truth:
graphs, weights and optimal values stay in ``env.unwrapped.causal_structure``, which only the
runner (for metrics) and agents labelled ORACLE read.

The rule every agent follows (:meth:`Assumptions.resolve`): an agent argument left at None takes
the declared value (or the agent's documented default when the world declares nothing); an
explicit agent value that contradicts the declaration is a one-line ``ValueError`` naming the
field and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Assumptions"]

#: relative tolerance under which an agent's noise value agrees with the declared one
_AGREEMENT_TOLERANCE = 1e-9


def _noise_value(value, name: str) -> float | tuple[float, ...]:
    """A noise parameter as one float, or a tuple with one float per node when they differ."""
    try:
        array = None if isinstance(value, (str, bool)) else np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim > 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: must be a finite number (or one per node), got {value!r}")
    if array.ndim == 1 and not np.all(array == array[0]):
        return tuple(float(entry) for entry in array)
    return float(array.flat[0])


def _horizon_value(value, name: str = "horizon") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def _flag_value(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: must be true or false, got {value!r}")
    return bool(value)


_NORMALISE = {
    "noise_mean": _noise_value,
    "noise_std": _noise_value,
    "horizon": _horizon_value,
    "piecewise_stationary": _flag_value,
}


def _agree(declared, given) -> bool:
    if isinstance(declared, (bool, int)) or isinstance(given, (bool, int)):
        return declared == given
    declared_array, given_array = np.atleast_1d(declared), np.atleast_1d(given)
    if declared_array.shape != given_array.shape:
        return False
    return bool(np.allclose(declared_array, given_array, rtol=_AGREEMENT_TOLERANCE, atol=0.0))


def _shown(value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{entry:g}" for entry in value) + "]"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Assumptions:
    """Facts a world lets its agents know; None means "not declared".

    :param noise_mean: nu, the mean of every node's exogenous noise: one float, or a tuple with
        one float per node when they differ (a list or array is accepted and normalised).
        Default None.
    :param noise_std: sigma, the standard deviation of every node's noise, >= 0; same forms as
        ``noise_mean``. Default None.
    :param horizon: T, the number of rounds per episode an agent with a schedule plans for
        (CSL-UCB's kappa anneal, LinSEM-UCB's confidence width). Default None.
    :param piecewise_stationary: True when the world's mechanisms change at unannounced rounds
        (a detector is worth running), False when they never change. Default None.
    """

    noise_mean: float | tuple[float, ...] | None = None
    noise_std: float | tuple[float, ...] | None = None
    horizon: int | None = None
    piecewise_stationary: bool | None = None

    def __post_init__(self):
        for name, normalise in _NORMALISE.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, normalise(value, f"assumptions.{name}"))
        if self.noise_std is not None and min(np.atleast_1d(self.noise_std)) < 0:
            raise ValueError(f"assumptions.noise_std: must be >= 0, got {_shown(self.noise_std)}")

    def resolve(self, name: str, given=None, default=None):
        """The value an agent uses for assumption ``name``.

        :param name: one of ``noise_mean``, ``noise_std``, ``horizon``, ``piecewise_stationary``.
        :param given: the agent's own argument; None (default) means "not given".
        :param default: the agent's documented value when neither the agent nor the world gives
            one. Default None.
        :return: ``given`` (normalised) when given, else the declared value, else ``default``.
        :raises ValueError: (one line, naming the field and the fix) when ``given`` is not a
            valid value or contradicts the declared one.
        """
        if name not in _NORMALISE:
            raise ValueError(f"{name}: not an assumption; choose one of {', '.join(_NORMALISE)}")
        declared = getattr(self, name)
        if given is None:
            return default if declared is None else declared
        given = _NORMALISE[name](given, name)
        if declared is not None and not _agree(declared, given):
            raise ValueError(
                f"{name}: the world declares {name}={_shown(declared)} but the agent was given "
                f"{_shown(given)}; drop agent.{name} or make them agree"
            )
        return given
