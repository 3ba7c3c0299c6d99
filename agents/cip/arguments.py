"""The checks of CIP's own hyperparameters: each bad value is a one-line ``ValueError`` that names
it (docs/cip.md; the meaning and default of each is in :class:`causalrl.agents.cip.CIP`)."""

from __future__ import annotations

import math

from causalrl.agents.cip.discovery import DISCOVERY_METHODS, MIN_DISCOVERY_ROWS
from causalrl.core.checks import check_int

__all__ = ["OWN_ARGUMENTS", "checked_arguments", "finite"]

#: CIP's own constructor arguments (the others are SB3's SAC's)
OWN_ARGUMENTS = (
    "buffer_size", "causal_weights", "discovery", "discovery_start", "discovery_interval", "discovery_samples",
    "discovery_basis", "discovery_next_state", "stability_resamples", "stability_threshold", "transition_threshold",
    "weight_source", "weight_temperature", "constant_tolerance", "augmentation", "augmentation_ratio",
    "swap_probability", "empowerment", "empowerment_coef", "empowerment_max_grad_ratio", "empowerment_warmup",
    "inverse_model_arch", "inverse_min_std", "inverse_policy_share", "policy_delay", "model_update_interval",
    "dormancy_reset", "reset_interval", "reset_after", "dormancy_threshold", "reset_factor_range",
    "reproduce_reference_quirks",
)

#: positive integers, and integers >= 0
_POSITIVE = ("discovery_interval", "discovery_samples", "policy_delay", "model_update_interval", "reset_interval",
             "stability_resamples", "buffer_size")
_NON_NEGATIVE = ("discovery_start", "empowerment_warmup", "reset_after")
#: name -> (low, high, low excluded)
_BOUNDS = {
    "weight_temperature": (0.0, None, True), "stability_threshold": (0.0, 1.0, True),
    "transition_threshold": (0.0, None, True), "augmentation_ratio": (0.0, 1.0, False),
    "swap_probability": (0.0, 1.0, False), "empowerment_coef": (0.0, None, False),
    "empowerment_max_grad_ratio": (0.0, None, False), "inverse_min_std": (0.0, 1.0, True),
    "dormancy_threshold": (0.0, None, False), "constant_tolerance": (0.0, None, False),
    "inverse_policy_share": (0.0, 1.0, False),
}


def finite(value, name: str, low: float | None = None, high: float | None = None, low_open: bool = False) -> float:
    """``value`` as a finite float within the bounds, else a one-line ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number) or (low is not None and (number < low or (low_open and number == low))) \
            or (high is not None and number > high):
        bounds = f"{'(' if low_open else '['}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"{name}: must be a finite number in {bounds}, got {value!r}")
    return number


def checked_arguments(values: dict) -> dict:
    """``values`` (CIP's own hyperparameters by name) checked and normalised (ints, floats,
    tuples); the first bad one raises a one-line ``ValueError`` naming it."""
    checked = dict(values)
    discovery = values["discovery"]
    if discovery is not None and discovery not in DISCOVERY_METHODS:
        raise ValueError(f"discovery: unknown {discovery!r}; choose one of {', '.join(DISCOVERY_METHODS)} or None")
    if discovery == "direct-lingam":
        try:
            import causallearn  # noqa: F401
        except ImportError:
            raise ImportError("discovery='direct-lingam' needs causal-learn: pip install -e '.[discovery]'") from None
    if values["discovery_basis"] not in ("interactions", "quadratic", "linear"):
        raise ValueError(f"discovery_basis: unknown {values['discovery_basis']!r}; choose 'interactions', 'quadratic' "
                         "or 'linear'")
    if values["weight_source"] not in ("abs", "signed"):
        raise ValueError(f"weight_source: unknown {values['weight_source']!r}; choose 'abs' or 'signed'")
    for name in _POSITIVE:
        checked[name] = check_int(values[name], name)
    for name in _NON_NEGATIVE:
        checked[name] = check_int(values[name], name, minimum=0)
    if checked["discovery_samples"] < MIN_DISCOVERY_ROWS:
        raise ValueError(f"discovery_samples: needs at least {MIN_DISCOVERY_ROWS} transitions for a regression, "
                         f"got {checked['discovery_samples']}")
    if discovery is not None and checked["discovery_samples"] > checked["buffer_size"]:
        raise ValueError(f"discovery_samples: {checked['discovery_samples']} exceeds buffer_size "
                         f"{checked['buffer_size']}, so discovery would never run; lower discovery_samples or raise "
                         "buffer_size")
    for name, (low, high, low_open) in _BOUNDS.items():
        checked[name] = finite(values[name], name, low, high, low_open=low_open)
    arch = values["inverse_model_arch"]
    if arch is not None:
        try:
            checked["inverse_model_arch"] = tuple(check_int(width, "inverse_model_arch") for width in arch)
        except TypeError:
            raise ValueError(f"inverse_model_arch: must be a list of positive widths, got {arch!r}") from None
    try:
        low, high = (float(bound) for bound in values["reset_factor_range"])
    except (TypeError, ValueError):
        raise ValueError(f"reset_factor_range: must be a pair (low, high), got {values['reset_factor_range']!r}") from None
    if not 0 <= low <= high <= 1:
        raise ValueError(f"reset_factor_range: need 0 <= low <= high <= 1, got {values['reset_factor_range']!r}")
    checked["reset_factor_range"] = (low, high)
    checked["discovery_next_state"] = bool(values["discovery_next_state"])
    checked["reproduce_reference_quirks"] = bool(values["reproduce_reference_quirks"])
    return checked
