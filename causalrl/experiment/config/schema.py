"""The run config's schema: every top-level key, its type, its default, its check and its
meaning, written once, in :class:`RunConfig`'s fields. ``TOP_LEVEL_KEYS`` (what ``causalrl
list`` and the error messages show) and the validation in :mod:`.validate` are read from here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

__all__ = ["ConfigError", "EnvConfig", "AgentConfig", "RunConfig", "Setting", "TOP_LEVEL_KEYS", "WANDB_KEYS",
           "MAX_SEED", "MAX_STEPS", "settings", "to_yaml", "fingerprint", "check_name", "RESULT_NEUTRAL_KEYS"]

MAX_SEED = 2**32 - 1  # numpy's legacy seeding (SB3's set_random_seed) takes 32-bit seeds
#: the most steps any counter may reach: SB3 and numpy count steps in 64-bit integers, and a
#: billion steps is years of CPU time for these agents
MAX_STEPS = 10**12
#: keys that change no result, left out of the fingerprint (docs/runner.md, the config fingerprint)
RESULT_NEUTRAL_KEYS = ("progress_bar", "trust_models", "keep_checkpoints")
#: keys a ``wandb`` mapping may have (arguments of ``wandb.init``)
WANDB_KEYS = ("project", "entity", "group", "tags", "mode", "name", "notes")


class ConfigError(ValueError):
    """A config that cannot run; the message names the field and the fix."""


def one_line(error: BaseException, with_type: bool = True, limit: int | None = None) -> str:
    """An error as one line, the one way every command, trial table and report shows errors:
    ``Type: message`` (``message`` alone with ``with_type=False``), whitespace collapsed, a
    ``KeyError``'s key unquoted, at most ``limit`` characters when given: a longer line keeps its
    start (what failed) and its end (the fix) around " ... "."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else error
    text = " ".join(str(text).split())
    if with_type:
        text = f"{type(error).__name__}: {text}".rstrip(": ")
    if limit is None or len(text) <= limit:
        return text
    head = (limit - 5) // 2
    return f"{text[:head]} ... {text[len(text) - (limit - 5 - head):]}"


@dataclass(frozen=True)
class Setting:
    """What a top-level key means and which values it takes: ``kind`` (int, str, bool, or None
    for a key with its own parser), ``low`` and ``high`` (the smallest and largest integer
    allowed) and ``must`` (the phrase an error prints after "must be")."""

    help: str
    kind: type | None = None
    low: int | None = None
    must: str = ""
    high: int | None = None

    def allows(self, value) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def _setting(default, help: str, kind: type | None = None, low: int | None = None, must: str = "",
             high: int | None = None):
    if kind is int and low == 1 and high is None:  # counts of steps, episodes, ...
        high = MAX_STEPS
    return field(default=default, metadata={"setting": Setting(help, kind, low, must, high)})


@dataclass(frozen=True)
class EnvConfig:
    id: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    name: str
    policy: str | None = None
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; ``to_dict`` is what ``config.yaml`` holds. The defaults below
    are the only ones: validation reads them from these fields."""

    env: EnvConfig
    agent: AgentConfig
    experiment: str = _setting("default", "name of the experiment folder under output_dir", str)
    seed: int = _setting(0, "seed of the agent, the env noise and every RNG", int, 0, " >= 0")
    total_steps: int = _setting(1500, "env steps (bandit rounds) to train for", int, 1, " a positive integer")
    log_interval: int = _setting(100, "steps between rows of progress.csv", int, 1, " a positive integer")
    checkpoint_interval: int | None = _setting(
        None, "steps between resumable checkpoints (default: a tenth of total_steps, at least log_interval)", int, 1,
        " a positive integer (steps between checkpoints)")
    eval_interval: int = _setting(
        0, "steps between evaluations of the deterministic policy alone (a multiple of log_interval; 0: none)", int, 0,
        " >= 0 (0: no evaluation)", high=MAX_STEPS)
    eval_episodes: int = _setting(
        10, "episodes per evaluation (seeds 1_000_000.. so every run sees the same episodes)", int, 1,
        " a positive integer")
    output_dir: str = _setting("runs", "where run directories are created", str)
    progress_bar: bool = _setting(True, "show a progress bar", bool)
    save_model: bool = _setting(True, "write model.zip at the end", bool)
    description: str = _setting("", "free text", str)
    n_envs: int = _setting(1, "parallel envs of an SB3 agent (SB3's make_vec_env, DummyVecEnv; bandit agents take 1)",
                           int, 1, " >= 1 (parallel envs of an SB3 agent)", high=1024)
    trust_models: bool = _setting(
        False, "load the SB3 model files this config names (env.intervention, env.judge) with SB3's own loader, "
        "which unpickles them and can run code: only for files you trust (README, Pickles)", bool)
    keep_checkpoints: list | None = _setting(
        None, "steps whose model.zip is kept as kept/step_<step>/model.zip after the run completes (e.g. [2000, 5000]: "
        "a weaker expert from the same run)")
    wandb: dict | None = _setting(
        None, "log to Weights & Biases too: true, or {project, entity, group, tags, mode} (needs the wandb extra)")

    @property
    def checkpoint_every(self) -> int:
        """Steps between checkpoints: ``checkpoint_interval``, by default a tenth of the run."""
        return self.checkpoint_interval or max(self.log_interval, self.total_steps // 10)

    def to_dict(self) -> dict:
        data = asdict(self)
        agent = {"name": self.agent.name, **({"policy": self.agent.policy} if self.agent.policy else {})}
        data["agent"] = {**agent, **self.agent.kwargs}
        data["env"] = {"id": self.env.id, **self.env.kwargs}
        return data


def settings() -> dict[str, tuple[object, Setting]]:
    """Each scalar top-level key with its default and :class:`Setting`, in the schema's order."""
    return {item.name: (item.default, item.metadata["setting"]) for item in fields(RunConfig)
            if "setting" in item.metadata}


#: every top-level key of a config file with its meaning (defaults are the fields of RunConfig)
TOP_LEVEL_KEYS = {
    **{name: setting.help for name, (_, setting) in settings().items()},
    "env": "the env: id plus constructor arguments",
    "agent": "one agent: name, optional policy, hyperparameters",
    "agents": "a list of agents (one run each)",
}


def to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def fingerprint(config: RunConfig) -> str:
    """A hash of the resolved config as config.yaml holds it (all but ``progress_bar`` and
    ``trust_models``, which change no result). A checkpoint stores it; ``--resume`` refuses a config.yaml edited since."""
    data = yaml.safe_load(to_yaml(config))
    for key in RESULT_NEUTRAL_KEYS:
        data.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def check_name(value, field: str) -> str:
    """``value`` when it is one path component other than ``.`` and ``..`` (an experiment,
    sweep or tune name becomes a folder under output_dir); else a one-line error."""
    if (not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value
            or any(ord(character) < 32 or ord(character) == 127 for character in value) or Path(value).name != value):
        raise ConfigError(f"{field}: must be a folder name (one path component, not '.' or '..', no '/' and no "
                          "control characters such as a newline), "
                          f"got {value!r}")
    return value
