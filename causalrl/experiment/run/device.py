"""The torch device a run trains on, resolved before the run starts and recorded as used.

SB3 quietly trains on the CPU when it is given ``device="cuda"`` on a machine without CUDA. A run
resolves the ``agent.device`` its config asks for (``auto | cpu | cuda[:N] | mps``) to the device
this machine has, writes that one into config.yaml (and so into TensorBoard's hyperparameters),
and says so in one line when it falls back; summary.json records the device the agent's networks
were on (``device``). See docs/runner.md.
"""

from __future__ import annotations

import dataclasses
import re
import sys

__all__ = ["available_device", "resolve_device", "device_used"]


def available_device(requested: str) -> tuple[str, str]:
    """``(device, why)``: the device this machine runs ``requested`` on, and the reason when it is
    not the one asked for (empty otherwise; ``auto`` picks without a reason)."""
    import torch

    if requested == "auto":
        return ("cuda" if torch.cuda.is_available() else "cpu"), ""
    cuda = re.fullmatch(r"cuda(?::(\d+))?", requested)
    if cuda:
        if not torch.cuda.is_available():
            return "cpu", "CUDA is not available on this machine"
        index = int(cuda.group(1) or 0)
        if index >= torch.cuda.device_count():
            return "cpu", f"this machine has {torch.cuda.device_count()} CUDA device(s), no {requested}"
        return requested, ""
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "cpu", "MPS is not available on this machine"
    return requested, ""


def resolve_device(config, stream=None, resumed: bool = False):
    """``config`` with its ``agent.device`` (when it sets one) replaced by the device this machine
    runs it on; one line on ``stream`` (stderr) when that is a fallback. ``resumed``: the config
    of a run being resumed, whose config.yaml keeps the device it recorded."""
    requested = config.agent.kwargs.get("device")
    if not isinstance(requested, str):
        return config
    device, why = available_device(requested)
    if device == requested:
        return config
    if why:
        records = (f"goes on on {device}; summary.json records it" if resumed
                   else f"uses {device} and records device: {device} in config.yaml")
        print(f"causalrl: agent.device={requested}: {why}; this run {records}", file=stream or sys.stderr)
    agent = dataclasses.replace(config.agent, kwargs={**config.agent.kwargs, "device": device})
    return dataclasses.replace(config, agent=agent)


def device_used(agent) -> dict:
    """``{"device": ...}``: the torch device of the agent's networks (empty for agents without one,
    e.g. the bandit agents)."""
    device = getattr(agent, "device", None)
    return {} if device is None else {"device": str(device)}
