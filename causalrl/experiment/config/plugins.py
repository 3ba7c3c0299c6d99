"""Loading worlds and learners: the project's own, users' entry points, and ``module:Class``.

The kernel's registries are filled by importing the modules that register into them. This module
does that import, once, for

- the project's own packages ``causalrl.envs`` and ``causalrl.agents``;
- installed plugins: entry points in the group ``causalrl.agents`` (name -> an agent class,
  registered under the entry point's name) and ``causalrl.envs`` (a module, or a callable
  that registers gymnasium ids when called);
- names written ``module:Class`` in a config (``agent: {name: mypkg.agents:MyAgent}``,
  ``env: {id: mypkg.envs:MyEnv}``), imported on demand.

See docs/plugins.md.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points

from causalrl.core.registry import AGENTS, ENV_NAMESPACE

__all__ = ["load_plugins", "registered_env_ids", "resolve_agent", "resolve_env_class", "is_import_path",
           "PluginError", "BUILTIN_PACKAGES", "AGENT_GROUP", "ENV_GROUP"]

BUILTIN_PACKAGES = ("causalrl.envs", "causalrl.agents")
AGENT_GROUP, ENV_GROUP = "causalrl.agents", "causalrl.envs"
_loaded = False


class PluginError(ValueError):
    """A plugin or ``module:Class`` name that cannot be loaded (one line, names the fix)."""


def is_import_path(name: str) -> bool:
    """Whether a config name is written ``module:Class``."""
    if not isinstance(name, str):
        return False
    module, sep, attribute = name.partition(":")
    return bool(sep and module and attribute) and "/" not in module


def import_object(path: str, field: str):
    """The object named ``module:attribute``; a one-line :class:`PluginError` naming ``field``."""
    module_name, _, attribute = path.partition(":")
    if not isinstance(path, str) or not module_name or module_name.startswith(".") or not attribute:
        raise PluginError(f"{field}: write an absolute module:Class name (e.g. mypkg.agents:MyAgent), got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, TypeError, ValueError) as error:
        raise PluginError(f"{field}: cannot import module {module_name!r} ({error}); "
                          "put its package on sys.path or install it") from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PluginError(f"{field}: module {module_name!r} has no {attribute!r}; check the name after ':'")
        target = getattr(target, part)
    return target


def load_plugins() -> None:
    """Import the project's worlds and learners and every installed entry-point plugin (once)."""
    global _loaded
    if _loaded:
        return
    for package in BUILTIN_PACKAGES:
        importlib.import_module(package)
    for entry in entry_points(group=AGENT_GROUP):
        try:
            AGENTS.register(entry.name, entry.load())
        except Exception as error:  # a broken plugin names itself instead of a traceback
            raise PluginError(f"entry point {entry.name!r} ({entry.value}) in group {AGENT_GROUP}: "
                              f"{type(error).__name__}: {error}") from None
    for entry in entry_points(group=ENV_GROUP):
        try:
            loaded = entry.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded()
        except Exception as error:
            raise PluginError(f"entry point {entry.name!r} ({entry.value}) in group {ENV_GROUP}: "
                              f"{type(error).__name__}: {error}") from None
    _loaded = True


def resolve_agent(name: str):
    """The agent class of a registered name or of ``module:Class``."""
    if not isinstance(name, str) or not name:
        raise PluginError(f"agent.name: must be an agent name or module:Class (see `causalrl list`), got {name!r}")
    if is_import_path(name):
        agent_cls = import_object(name, "agent.name")
        if not isinstance(agent_cls, type) or not callable(getattr(agent_cls, "learn", None)):
            raise PluginError(f"agent.name: {name!r} is not an agent class (it needs learn/predict, as SB3 algorithms)")
        return agent_cls
    load_plugins()
    try:
        return AGENTS.get(name)
    except KeyError as error:
        raise PluginError(f"agent.name: {error.args[0]} (or write module:Class)") from None


def resolve_env_class(env_id: str):
    """The env class of a gymnasium id (``causalrl/...``, any registered id, gymnasium's own
    ``module:Env-v0``) or of ``module:Class``; None when the entry point is a factory function."""
    import gymnasium as gym

    if is_import_path(env_id):
        if not re.search(r"-v\d+$", env_id):  # else gymnasium's own "module:Env-v0" form
            env_cls = import_object(env_id, "env.id")
            if not (isinstance(env_cls, type) and issubclass(env_cls, gym.Env)):
                raise PluginError(f"env.id: {env_id!r} is not a gymnasium.Env subclass")
            return env_cls
    load_plugins()
    try:
        spec = gym.spec(env_id)
    except Exception:  # gymnasium raises its own error types per failure
        raise PluginError(f"env.id: unknown env {env_id!r}; see `causalrl list` for the registered ids, "
                          "or write module:Class") from None
    entry = spec.entry_point
    if isinstance(entry, str):
        entry = import_object(entry, "env.id")
    return entry if isinstance(entry, type) else None


def registered_env_ids() -> list[str]:
    """Ids of the gymnasium environments registered under the causalrl namespace."""
    import gymnasium as gym

    load_plugins()
    return sorted(env_id for env_id in gym.registry if env_id.startswith(ENV_NAMESPACE + "/"))
