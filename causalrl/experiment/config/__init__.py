"""The config room: the schema (the only defaults), where raw configs come from (files,
presets, overrides), what constructors accept, validation, and plugin loading. It knows nothing
of running; every other room reads configs through the names below."""

from causalrl.experiment.config.plugins import PluginError, load_plugins, registered_env_ids, resolve_agent
from causalrl.experiment.config.schema import (
    TOP_LEVEL_KEYS,
    AgentConfig,
    ConfigError,
    EnvConfig,
    RunConfig,
    check_name,
    fingerprint,
    one_line,
    to_yaml,
)
from causalrl.experiment.config.sources import (
    MAX_CONFIG_BYTES,
    apply_overrides,
    load_yaml_file,
    parse_yaml,
    preset_names,
    read_source,
)
from causalrl.experiment.config.validate import configs_from, load_experiment, validate

__all__ = ["AgentConfig", "ConfigError", "EnvConfig", "MAX_CONFIG_BYTES", "PluginError", "RunConfig", "TOP_LEVEL_KEYS",
           "apply_overrides", "check_name", "configs_from", "fingerprint", "load_experiment", "load_plugins",
           "load_yaml_file", "one_line", "parse_yaml", "preset_names", "read_source", "registered_env_ids", "resolve_agent",
           "to_yaml", "validate"]
