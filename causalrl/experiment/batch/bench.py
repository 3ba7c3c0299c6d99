"""Benchmark suites (``causalrl bench SUITE --tier smoke|standard|full``): every published number
comes from a suite of sweeps run through the shared runner and summarised by the report and the
leaderboard (docs/cli.md, "Benchmark suites").

A suite file (YAML; a path or a shipped ``bench-<suite>`` preset)::

    bench: csl-ucb-paper            # the suite's folder name (default: the file stem without "bench-")
    description: >                  # free text; its first line is what `causalrl list` shows
      ...
    docs: docs/csl-ucb.md (e)       # where the docs explain or quote it (shown in leaderboard.md)
    stages:                         # run in order; each is a sweep
      - sweep: sweep-csl-ucb-paper  # sweep preset, YAML path (relative to this file) or inline sweep mapping
        overrides: [save_model=false]          # optional: sweep-level overrides of this stage, every tier
        tiers:                                 # optional: this stage's tier overrides/seeds, over the suite's
          smoke: {overrides: [total_steps=200]}
        compare: true               # optional (default true): false leaves the stage out of the leaderboard
    tiers:                          # all three; each applies to every stage
      smoke:    {overrides: [total_steps=100, env.horizon=100], seeds: 2}
      standard: {seeds: 100}        # seeds: a list, or a count n (0..n-1); absent: the sweep file's seeds
      full:     {seeds: 100, overrides: [total_steps=3000]}
    compare:                        # what the leaderboard pairs
      baseline: ucb                 # the agent every other agent is paired against
      metrics: [regret/cumulative, regret/window_optimal_action_rate]
      also_against: [linsem-ts-oracle]  # optional: one more leaderboard per agent named here

A stage's sweep-level overrides are, in this order (a later one wins): the stage's ``overrides``,
the suite's tier ``overrides``, the stage's tier ``overrides``; its seeds are the stage's tier
``seeds``, else the suite's tier ``seeds``, else the sweep file's. ``{bench_dir}`` in an override
(and in any string of an inline sweep mapping) is replaced by the tier's folder, so a later stage
can name what an earlier one wrote (``"env.judge={bench_dir}/sweeps/judges/*/model.zip"``; quote
such an override inside ``[...]``, where YAML reads ``{`` as a mapping).

The suite's folder::

    <output_dir>/bench/<suite>/<tier>/
      bench.yaml                  the resolved suite: every stage's sweep, overrides and seeds
      sweeps/<sweep name>/        one sweep directory per stage (the sweep file's plain name)
      report/                     the report of the compared stages
      leaderboard.md|csv|png      paired differences against the baseline, and the command
      vs-<agent>/leaderboard.*    the same against each agent of ``compare.also_against``

Every suite file is checked whole before anything runs (keys, tiers, stages, that each stage's
sweep exists); each stage's trials are validated just before the stage runs, because an override
may name a file that an earlier stage writes. Running a suite again skips finished trials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from causalrl.experiment.batch.sweep import Sweep, SweepOutcome, load_sweep, run_sweep, sweep_name
from causalrl.experiment.batch.trials import hashed_name, parse_seeds, slug, string_list
from causalrl.experiment.config import ConfigError, preset_names, read_source
from causalrl.experiment.run.rundir import write_text_atomic

__all__ = [
    "BENCH_DIR",
    "SUITE_KEYS",
    "TIERS",
    "Stage",
    "Suite",
    "load_stage",
    "load_suite",
    "run_suite",
    "suite_names",
]

TIERS = ("smoke", "standard", "full")
#: the placeholder for the tier's folder in overrides
BENCH_DIR = "{bench_dir}"
PRESET_PREFIX = "bench-"

SUITE_KEYS = {
    "bench": "the suite's folder name under <output_dir>/bench/ (default: file stem without 'bench-')",
    "description": "free text; the first line is what `causalrl list` shows",
    "docs": "where the docs explain or quote the suite (shown in leaderboard.md)",
    "stages": "list of sweeps run in order: {sweep, overrides, tiers, compare}",
    "tiers": "smoke, standard and full: {overrides: [key=value, ...], seeds: list or count}",
    "compare": "{baseline: agent, metrics: [metric, ...]}",
}
STAGE_KEYS = {
    "sweep": "sweep preset, YAML path (relative to the suite file) or inline sweep mapping",
    "overrides": "sweep-level overrides of this stage in every tier",
    "tiers": "this stage's tier overrides and seeds, over the suite's",
    "compare": "false leaves this stage out of the leaderboard (default true)",
}
TIER_KEYS = {"overrides": "sweep-level overrides (key=value)", "seeds": "a list of seeds, or a count n (0..n-1)"}
COMPARE_KEYS = {"baseline": "the agent every other agent is paired against", "metrics": "final metrics to compare",
                "also_against": "more baselines: one more leaderboard each, in vs-<agent>/"}


@dataclass(frozen=True)
class Stage:
    """One stage of a suite at one tier: a sweep, its sweep-level overrides and seeds."""

    index: int
    sweep: str | dict  # a preset name, a YAML path or an inline sweep mapping
    name: str  # its directory under <suite dir>/sweeps/
    overrides: tuple[str, ...]  # the tier's, with {bench_dir} replaced
    seeds: list[int] | None  # None: the sweep file's own
    compare: bool
    label: str  # "<suite file>: stages[i]", for error lines


@dataclass(frozen=True)
class Suite:
    """A suite file read for one tier (see the module docstring for the format)."""

    name: str
    tier: str
    directory: Path  # <output_dir>/bench/<name>/<tier>
    description: str
    docs: str
    stages: tuple[Stage, ...]
    baseline: str | None
    metrics: tuple[str, ...]
    source: str  # what names the suite on the command line: the preset's suite name or the path
    label: str
    also_against: tuple[str, ...] = ()  # more baselines, one leaderboard each in vs-<agent>/

    def sweep_dir(self, stage: Stage) -> Path:
        return self.directory / "sweeps" / stage.name

    @property
    def compared(self) -> list[Stage]:
        return [stage for stage in self.stages if stage.compare]


def suite_names() -> list[str]:
    """The shipped suites (presets ``bench-<suite>``), by the name ``causalrl bench`` takes."""
    return [name[len(PRESET_PREFIX):] for name in preset_names() if name.startswith(PRESET_PREFIX)]


# --- reading and checking a suite file --------------------------------------------------------
def _read(source: str | Path) -> tuple[dict, str, Path | None, str]:
    """The raw mapping, label, folder (None: a preset) and command-line name of a suite."""
    text = str(source)
    if Path(text).suffix in (".yaml", ".yml") or Path(text).exists():
        raw, label = read_source(text)
        return raw, label, Path(text).parent, text
    suite = text.removeprefix(PRESET_PREFIX)
    if suite not in suite_names():
        raise ConfigError(f"unknown bench suite {text!r}; give a suite file or one of: "
                          f"{', '.join(suite_names()) or '(none shipped)'}, or all")
    raw, label = read_source(PRESET_PREFIX + suite)
    return raw, label, None, suite


def _check_keys(raw: Any, keys: dict, label: str, what: str = "a mapping") -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: must be {what} with keys {', '.join(keys)}")
    for key in raw:
        if key not in keys:
            raise ConfigError(f"{label}: unknown key {key!r}; known keys: {', '.join(keys)}")
    return raw


def _tier(raw: Any, label: str) -> dict:
    """A tier mapping checked: ``{"overrides": [...], "seeds": [...] or None}``."""
    raw = _check_keys({} if raw is None else raw, TIER_KEYS, label)
    seeds = raw.get("seeds")
    return {"overrides": string_list(raw.get("overrides"), "overrides", label),
            "seeds": None if seeds is None else parse_seeds(seeds, label)}


def _tiers(raw: Any, label: str, required: bool) -> dict[str, dict]:
    if raw is None and not required:
        return {}
    raw = _check_keys(raw, dict.fromkeys(TIERS), label, "a mapping of the tiers")
    missing = [tier for tier in TIERS if tier not in raw]
    if required and missing:
        raise ConfigError(f"{label}: tier {missing[0]!r} is missing; give all of {', '.join(TIERS)}")
    return {tier: _tier(raw[tier], f"{label}.{tier}") for tier in TIERS if tier in raw}


def _compare(raw: Any, label: str) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    raw = _check_keys(raw, COMPARE_KEYS, f"{label}: compare")
    baseline, metrics, also = raw.get("baseline"), raw.get("metrics"), raw.get("also_against") or []
    if not isinstance(baseline, str) or not baseline:
        raise ConfigError(f"{label}: compare.baseline must name the agent every other agent is paired against")
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ConfigError(f"{label}: compare.metrics must be a non-empty list of final metrics, e.g. [regret/cumulative]")
    if not isinstance(also, list) or not all(isinstance(a, str) and a and a != baseline for a in also):
        raise ConfigError(f"{label}: compare.also_against must be a list of agents other than the baseline, "
                          f"e.g. [sac-delayed]")
    return baseline, tuple(metrics), tuple(also)


def _substitute(value: Any, bench_dir: str) -> Any:
    """``value`` with ``{bench_dir}`` replaced in every string (lists and mappings walked)."""
    if isinstance(value, str):
        return value.replace(BENCH_DIR, bench_dir)
    if isinstance(value, list):
        return [_substitute(item, bench_dir) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, bench_dir) for key, item in value.items()}
    return value


def _stage_sweep(raw: Any, folder: Path | None, index: int, label: str, bench_dir: str) -> tuple[str | dict, str]:
    """The stage's sweep source (paths resolved against the suite's folder) and its plain name."""
    if isinstance(raw, dict):
        raw = _substitute(raw, bench_dir)
        raw.setdefault("name", f"stage-{index}")
        base = raw.get("base")
        if folder is not None and isinstance(base, str) and (folder / base).is_file():
            raw["base"] = str(folder / base)
    elif isinstance(raw, str) and raw:
        if folder is not None and (folder / raw).is_file():
            raw = str(folder / raw)
    else:
        raise ConfigError(f"{label}.sweep: give a sweep preset name, a YAML path or an inline sweep mapping")
    try:
        return raw, sweep_name(raw)
    except ConfigError as error:
        raise ConfigError(f"{label}.sweep: {error}") from None


def _stage(raw: Any, index: int, folder: Path | None, tier: str, suite_tier: dict, label: str,
           bench_dir: str) -> tuple[Stage, list[str]]:
    """One stage at ``tier``, and its every-tier overrides (what tells two runs of one sweep apart)."""
    label = f"{label}: stages[{index}]"
    raw = _check_keys(raw, STAGE_KEYS, label)
    if "sweep" not in raw:
        raise ConfigError(f"{label}: sweep is missing; give a sweep preset name, a YAML path or an inline sweep")
    sweep, name = _stage_sweep(raw["sweep"], folder, index, label, bench_dir)
    own = string_list(raw.get("overrides"), "overrides", label)
    stage_tier = _tiers(raw.get("tiers"), f"{label}.tiers", required=False).get(tier, {})
    compare = raw.get("compare", True)
    if not isinstance(compare, bool):
        raise ConfigError(f"{label}: compare must be true or false, got {compare!r}")
    overrides = own + suite_tier["overrides"] + stage_tier.get("overrides", [])
    seeds = stage_tier.get("seeds") or suite_tier["seeds"]
    stage = Stage(index, sweep, name, tuple(_substitute(overrides, bench_dir)), seeds, compare, label)
    return stage, own


def _unique_names(stages: list[Stage], owns: list[list[str]], label: str) -> list[Stage]:
    """Stages that run the same sweep get its name plus the slug of their every-tier overrides."""
    names = [stage.name for stage in stages]
    for index, (stage, own) in enumerate(zip(stages, owns)):
        if names.count(stage.name) > 1 and own:
            text = f"{stage.name}__{slug(own)}"
            stages[index] = replace(stage, name=text if len(text) <= 80 else hashed_name(text, own))
    names = [stage.name for stage in stages]
    for index, name in enumerate(names):
        if names.count(name) > 1:
            other = names.index(name, index + 1)
            raise ConfigError(f"{label}: stages[{index}] and stages[{other}] would both write sweeps/{name}; "
                              "give them different `overrides` or sweeps with different names")
    return stages


def load_suite(source: str | Path, tier: str = "standard", output_dir: str | Path | None = None) -> Suite:
    """Read a suite (a ``bench-<suite>`` preset by suite name, or a YAML path) for ``tier`` and
    check the whole file: keys, all three tiers, every stage and that its sweep exists (one-line
    :class:`ConfigError` naming the field). Stages' trials are validated by :func:`load_stage`.
    The suite's folder is ``<output_dir>/bench/<suite>/<tier>`` (``output_dir`` default: runs)."""
    if tier not in TIERS:
        raise ConfigError(f"--tier: choose {', '.join(TIERS)}, got {tier!r}")
    raw, label, folder, source_name = _read(source)
    _check_keys(raw, SUITE_KEYS, label)
    default = Path(str(source)).stem if folder is not None else source_name
    name = raw.get("bench") or default.removeprefix(PRESET_PREFIX)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
        raise ConfigError(f"{label}: bench must be letters, digits, '.', '_' or '-' (not '.' or '..'), got {name!r}")
    for key in ("description", "docs"):
        if not isinstance(raw.get(key) or "", str):
            raise ConfigError(f"{label}: {key} must be text")
    tiers = _tiers(raw.get("tiers"), f"{label}: tiers", required=True)
    entries = raw.get("stages")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{label}: stages must be a non-empty list of {{sweep: ...}} mappings")
    directory = Path(output_dir if output_dir is not None else "runs") / "bench" / name / tier
    built = [_stage(entry, index, folder, tier, tiers[tier], label, str(directory)) for index, entry in enumerate(entries)]
    stages = _unique_names([stage for stage, _ in built], [own for _, own in built], label)
    baseline, metrics, also = _compare(raw.get("compare"), label) if any(s.compare for s in stages) else (None, (), ())
    return Suite(name, tier, directory, (raw.get("description") or "").strip(), (raw.get("docs") or "").strip(),
                 tuple(stages), baseline, metrics, source_name, label, also)


# --- running ----------------------------------------------------------------------------------
def load_stage(suite: Suite, stage: Stage) -> Sweep:
    """The stage's sweep, every trial validated (call it once the stages before it have run)."""
    try:
        return load_sweep(stage.sweep, output_dir=suite.directory, overrides=stage.overrides, seeds=stage.seeds,
                          name=stage.name)
    except ConfigError as error:
        raise ConfigError(f"{stage.label}: {error}") from None


def _resolved(suite: Suite) -> dict:
    return {"bench": suite.name, "tier": suite.tier, "source": suite.source, "docs": suite.docs,
            "stages": [{"sweep": stage.sweep, "name": stage.name, "overrides": list(stage.overrides),
                        "seeds": stage.seeds, "compare": stage.compare} for stage in suite.stages],
            "compare": {"baseline": suite.baseline, "metrics": list(suite.metrics), "also_against": list(suite.also_against)}}


def run_suite(suite: Suite, workers: int | None = None, progress: bool = False) -> list[SweepOutcome]:
    """Run the suite's stages in order (each a sweep under ``<suite dir>/sweeps/``) and return
    their outcomes. Finished trials are skipped, so running a suite again only runs what is missing."""
    suite.directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(suite.directory / "bench.yaml", yaml.safe_dump(_resolved(suite), sort_keys=False))
    outcomes: list[SweepOutcome] = []
    for stage in suite.stages:
        try:
            sweep = load_stage(suite, stage)
        except ConfigError as error:
            failed = [outcome.directory for outcome in outcomes if outcome.failed]
            if failed:  # the likely cause: a file an earlier stage should have written
                raise ConfigError(f"{error} (an earlier stage had failed trials: {failed[0] / 'trials.csv'})") from None
            raise
        outcomes.append(run_sweep(sweep, workers=workers, progress=progress))
    return outcomes
