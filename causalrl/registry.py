"""Name -> factory registries (mechanism only: worlds and learners register themselves).

Environments use gymnasium's own registry under the ``causalrl/`` namespace; agents and presets
use :class:`Registry`. Names are lower-case with dashes (``ucb``, ``linsem-ts-oracle``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Registry", "AGENTS", "ENV_NAMESPACE", "PLUGINS", "load_plugins", "registered_env_ids"]

ENV_NAMESPACE = "causalrl"
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Registry:
    """A mapping of registry names to objects, with a one-line error on unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._summaries: dict[str, str] = {}

    def register(self, name: str, entry: Any, summary: str | None = None) -> Any:
        if not _NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r}: use lower-case words joined by dashes")
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        doc = (getattr(entry, "__doc__", None) or "").strip().splitlines()
        self._summaries[name] = summary or (doc[0] if doc else "")
        return entry

    def get(self, name: str) -> Any:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {known}")
        return self._entries[name]

    def summary(self, name: str) -> str:
        return self._summaries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


AGENTS = Registry("agent")

#: modules that register worlds and learners when imported, loaded by name (the kernel never
#: imports them directly, as gymnasium loads env plugins)
PLUGINS = ["envs", "agents"]


def load_plugins() -> None:
    import importlib

    for module in PLUGINS:
        importlib.import_module(module)


def registered_env_ids() -> list[str]:
    """Ids of the gymnasium environments registered under the causalrl namespace."""
    import gymnasium as gym

    load_plugins()
    return sorted(env_id for env_id in gym.registry if env_id.startswith(ENV_NAMESPACE + "/"))
