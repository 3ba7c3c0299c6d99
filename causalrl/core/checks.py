"""Argument checks shared by worlds and learners, each a one-line ``ValueError`` that names the
argument and what it must be."""

from __future__ import annotations

import numpy as np

__all__ = ["check_int", "check_action", "check_observation"]


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer (not a bool) >= ``minimum``; else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: must be {kind}, got {value!r}")
    return int(value)


def check_action(action, shape, low=None, high=None, dtype=float, name: str = "action") -> np.ndarray:
    """``action`` as a ``dtype`` array of exactly ``shape`` whose entries are finite numbers (and
    within ``[low, high]`` when given); else a one-line error naming ``name``.

    No reshaping: a (2, 2) array is not a (4,) action, and a batch of one is not one action.
    Worlds that clip to their bounds pass no ``low``/``high`` and clip the returned array."""
    shape = tuple(int(size) for size in np.atleast_1d(shape)) if np.ndim(shape) else (int(shape),)
    expected = f"{name}: expected a finite numeric array of shape {shape}"
    try:
        array = np.asarray(action)
    except (ValueError, TypeError):  # ragged nested lists
        raise ValueError(f"{expected}, got a ragged {type(action).__name__}") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{expected}, got {type(action).__name__} of dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{expected}, got shape {array.shape}")
    array = array.astype(dtype)
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"{expected}, got {array[~finite].flat[0]} at index {np.argwhere(~finite)[0].tolist()}")
    if low is not None or high is not None:
        below = array < (-np.inf if low is None else low)
        above = array > (np.inf if high is None else high)
        if below.any() or above.any():
            raise ValueError(f"{name}: entries must lie in [{low}, {high}], got {array[below | above].flat[0]}")
    return array


def check_observation(observation, shape, name: str = "observation") -> np.ndarray:
    """``observation`` as an array when it is a numeric array of exactly ``shape`` (the world's
    observation space, with a leading batch size for vectorised envs); else a one-line error
    naming ``name``. The counterpart of :func:`check_action` for what a world returns: a world
    whose observations do not fit its own space is refused instead of fed to the agent. NaN and
    inf are left to the runner's non-finite guard, which names the step."""
    shape = tuple(int(size) for size in shape)
    expected = f"{name}: the world returned something other than a numeric array of shape {shape}"
    try:
        array = np.asarray(observation)
    except (ValueError, TypeError):  # ragged nested lists
        raise ValueError(f"{expected}: a ragged {type(observation).__name__}; fix the world's reset/step") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{expected}: {type(observation).__name__} of dtype {array.dtype}; fix the world's reset/step")
    if array.shape != shape:
        raise ValueError(f"{expected}: shape {array.shape}; fix the world's reset/step or its observation_space")
    return array
