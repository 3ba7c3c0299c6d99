"""Checks and messages for building a run's world and learner from its config: a constructor's
own check becomes a one-line error that names the config field (``env.noise_std: must be >= 0``,
``agent[csl-ucb].delta: must be in (0, 1)``), and a replay buffer that cannot fit in memory is
refused before it is allocated. See docs/runner.md.
"""

from __future__ import annotations

import os
import re

import numpy as np

from causalrl.experiment.config import ConfigError, one_line

__all__ = ["CONSTRUCTION_ERRORS", "field_error", "check_buffer_memory"]

#: what a world or learner constructor raises for a bad argument it does not check itself
CONSTRUCTION_ERRORS = (TypeError, ArithmeticError, RuntimeError, MemoryError, AttributeError, IndexError)


def field_error(where: str, error: BaseException, fields, fallback: str | None = None, limit: int = 300) -> str:
    """``error`` as one line that names the config field it is about: a message that starts with
    one of ``fields`` (the arguments the config gave) gets ``where.`` in front (``noise_std: must be
    >= 0`` -> ``env.noise_std: must be >= 0``); any other gets ``fallback: `` (default ``where``).

    :param where: the config's name of the constructor (``env``, ``agent[csl-ucb]``).
    :param error: what the constructor raised.
    :param fields: the argument names the config passed.
    :param fallback: the prefix of a message that names none of ``fields``.
    :param limit: longest message kept.
    """
    text = one_line(error, with_type=not isinstance(error, ValueError), limit=limit)
    name = re.match(r"[A-Za-z_]\w*", text)
    if name and name.group(0) in set(fields) and text[name.end():].startswith((":", "[", ".")):
        return f"{where}.{text}"
    return f"{fallback or where}: {text}"


def check_buffer_memory(config, env) -> None:
    """Refuse a replay buffer that cannot fit in this machine's memory (SB3 allocates it whole,
    observations twice, float32) before it is allocated."""
    size = config.agent.kwargs.get("buffer_size")
    if not isinstance(size, int) or isinstance(size, bool) or not hasattr(os, "sysconf"):
        return
    try:
        observation = int(np.prod(env.observation_space.shape or (1,)))
        action = int(np.prod(env.action_space.shape or (1,)))
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, TypeError, ValueError, OSError):
        return
    needed = size * config.n_envs * (2 * observation + action + 2) * 4
    if needed > available:
        raise ConfigError(f"agent[{config.agent.name}].buffer_size: {size} transitions need about {needed / 2**30:,.1f} GiB, "
                          f"more than this machine's {available / 2**30:,.1f} GiB of memory; lower buffer_size")
