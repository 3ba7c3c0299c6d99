"""Judge diagnostics of a learner trained beside an intervention wrapper (docs/rlif.md (b), (e)),
shared by RLIF, DAgger and HG-DAgger; averaged over each logging interval:

    judge/window_takeover_rate   share of learner-controlled steps at which the expert took over
    judge/window_bad_rate        the learner's flagged share: judged learner actions found bad
    judge/window_null_bad_rate   the share the do-nothing (mid-bounds) action would get on the same
                                 steps: a learner whose bad rate is not clearly below it is no
                                 better than doing nothing in the judge's eyes
    judge/window_q_gap_mean      mean Q(s, a_ref) - Q(s, a_pi) of the value test

and, once calibrated, the constants ``judge/delta`` and the judge check's rates at it
(``judge/own_flag_rate``, ``judge/expert_flag_rate``, ``judge/null_flag_rate``). A falling
takeover rate alone is not progress: read it beside the learner-alone evaluation return.
"""

from __future__ import annotations

import weakref

import numpy as np

__all__ = ["record_judge_step"]


#: env -> (delta, calibration stats), read once: constants of the run, logged every judged step
_CALIBRATIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _calibration(env) -> tuple[float, dict | None]:
    if env in _CALIBRATIONS:
        return _CALIBRATIONS[env]
    try:
        delta = float(env.get_attr("delta", indices=[0])[0])
        stats = env.get_attr("delta_calibration", indices=[0])[0]
    except (AttributeError, TypeError, ValueError):
        return float("nan"), None
    found = delta, stats if isinstance(stats, dict) else None
    if np.isfinite(delta):  # calibrated (at the run's first reset): it no longer changes
        _CALIBRATIONS[env] = found
    return found


def record_judge_step(logger, info: dict, env=None) -> None:
    """Record one step's judge diagnostics (module docstring) from the wrapper's ``info``."""
    if logger is None or "intervened" not in info:
        return
    if info.get("intervention_started") or not info["intervened"]:
        logger.record_mean("judge/window_takeover_rate", float(bool(info.get("intervention_started"))))
    if not info.get("judged"):
        return
    logger.record_mean("judge/window_bad_rate", float(info.get("judged_bad", False)))
    if "null_judged_bad" in info:
        logger.record_mean("judge/window_null_bad_rate", float(info["null_judged_bad"]))
    gap = info.get("q_gap")
    if gap is None or not np.isfinite(gap):
        return  # the distance gate has no Q gap
    logger.record_mean("judge/window_q_gap_mean", float(gap))
    delta, stats = _calibration(env) if env is not None else (float("nan"), None)
    if np.isfinite(delta):
        logger.record("judge/delta", delta)
    for name in ("own_flag_rate", "expert_flag_rate", "null_flag_rate"):
        if stats is not None and name in stats:
            logger.record(f"judge/{name}", float(stats[name]))
