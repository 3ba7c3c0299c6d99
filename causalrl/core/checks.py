"""Argument checks shared by worlds and learners, each a one-line ``ValueError`` that names the
argument and what it must be."""

from __future__ import annotations

import numpy as np

__all__ = ["check_int"]


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer (not a bool) >= ``minimum``; else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: must be {kind}, got {value!r}")
    return int(value)
