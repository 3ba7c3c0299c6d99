"""Name -> factory registries (mechanism only: worlds and learners register themselves).

Environments use gymnasium's own registry under the ``causalrl/`` namespace; agents use
:class:`Registry`. Names are lower-case with dashes (``ucb``, ``linsem-ts-oracle``). Loading the
modules that register (the project's own and users' plugins) is the experiment layer's job
(``causalrl.experiment.config.plugins``); the kernel never imports worlds or learners.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

__all__ = ["Registry", "AGENTS", "ENV_NAMESPACE", "first_line"]

ENV_NAMESPACE = "causalrl"
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def first_line(text: str | None) -> str:
    """The first sentence-bearing paragraph of a docstring, joined onto one line."""
    paragraph = (text or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


class Registry:
    """A mapping of registry names to objects, with a one-line error on unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._summaries: dict[str, str] = {}

    def register(self, name: str, entry: Any, summary: str | None = None) -> Any:
        """Register ``entry`` under ``name``. ``entry`` may be the object or, to import it only
        when first used, a ``"module:attribute"`` string (then give ``summary``)."""
        if not _NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r}: use lower-case words joined by dashes")
        if name in self._entries and self._entries[name] is not entry and self._entries[name] != entry:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        self._summaries[name] = summary or first_line(getattr(entry, "__doc__", None))
        return entry

    def get(self, name: str) -> Any:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {known}")
        entry = self._entries[name]
        if isinstance(entry, str):  # registered lazily as "module:attribute"
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry

    def summary(self, name: str) -> str:
        return self._summaries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


AGENTS = Registry("agent")
