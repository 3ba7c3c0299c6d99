"""Mutation check of the RLIF, DAgger and HG-DAgger tests: each mutant is a wrong implementation
of one step of docs/rlif.md (a)-(d) or of the judge's calibration and check (docs/rlif.md (c),
"delta: auto"); every one must make at least one fast test fail.

Each mutant is a list of exact text replacements in one file (agents/rlif.py, agents/dagger.py,
envs/intervention.py or envs/calibration.py). The script copies the package and tests into a
scratch folder (the working tree is never touched), applies one mutant there, and runs the fast
judge tests (tests/test_rlif_judge.py, whose tests name the mutants they kill) with ``-x`` from
that folder (so that folder's ``causalrl`` is the one imported). A mutant is *killed* when pytest
fails; the table names the first failing test.

    python benchmarks/rlif_mutants.py [--only NAME ...] [--timeout 900]

Writes runs/benchmarks/rlif_mutants/results.json. Exit status 1 when a mutant survives or a
replacement no longer matches the source (the mutant list must follow the code).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_rlif_judge.py"]

#: name -> (what it breaks, file, [(original text, mutated text), ...])
MUTANTS = {
    "hg-dagger-learner-label": ("HG-DAgger trained on the learner's own action on intervened steps", "agents/dagger.py", [
        ('if self.train_on == "all" or info["intervened"]:\n            return executed',
         'if self.train_on == "all" or info["intervened"]:\n            return memo["learner"]'),
    ]),
    "hg-dagger-trains-on-all": ("HG-DAgger (textbook) adds the learner's steps too", "agents/dagger.py", [
        ('if self.train_on == "all" or info["intervened"]:', "if True:"),
    ]),
    "dagger-no-aggregation": ("DAgger trains on the newest samples only (no aggregate)", "agents/dagger.py", [
        ("self._observations = [np.concatenate(self._observations)]\n        self._labels = [np.concatenate(self._labels)]",
         "self._observations = self._observations[-1:]\n        self._labels = self._labels[-1:]"),
    ]),
    "dagger-beta-dropped": ("DAgger never executes the expert (beta ignored)", "agents/dagger.py", [
        ("execute_expert = self._rng.random() < self.beta", "execute_expert = False"),
    ]),
    "rlif-no-minus-one": ("RLIF reward not set to -1 on intervention", "agents/rlif.py", [
        ("self._add_transition(pending, -1.0 if takeover else 0.0)", "self._add_transition(pending, 0.0)"),
    ]),
    "rlif-wrong-step": ("RLIF's -1 on the last expert step of a block instead of the learner step before it",
                        "agents/rlif.py", [
        ('takeover = bool(info.get("intervention_started", False)) and not pending["intervened"]',
         'takeover = pending["intervened"] and not transition["intervened"]'),
    ]),
    "rlif-learner-action-on-expert-steps": ("RLIF stores the learner's proposed action on expert steps",
                                            "agents/rlif.py", [
        ("if executed is not None:  # docs/rlif.md (b) 3", "if False:  # docs/rlif.md (b) 3"),
    ]),
    "noise-floor-dropped": ("takeover probability 1 / 0 instead of beta / 1 - beta", "envs/intervention.py", [
        ("probability = self.beta if bad else 1 - self.beta", "probability = 1.0 if bad else 0.0"),
    ]),
    "delta-sign-flipped": ("value test Q(s, a) < Q(s, a_ref) + delta", "envs/intervention.py", [
        ("return bool(q_value < q_reference - self.delta)", "return bool(q_value < q_reference + self.delta)"),
    ]),
    "calibration-seed-zero": ("delta calibrated on seed 0 for every run", "envs/intervention.py", [
        ("seed=int(seed), sample_reference=self.sample_reference,", "seed=0, sample_reference=self.sample_reference,"),
    ]),
    "judge-check-dropped": ("a judge that cannot tell the acting expert from itself is not refused",
                            "envs/intervention.py", [
        ('if failure is not None and not settings["force"]:', "if False:"),
    ]),
    "calibration-uniform": ("delta from uniform actions' gaps whatever the method (the blind judge)",
                            "envs/calibration.py", [
        ("chosen = gaps[method]", 'chosen = gaps["uniform"]'),
    ]),
}


def apply(source: str, replacements, target: str) -> str:
    for original, mutated in replacements:
        if source.count(original) != 1:
            raise ValueError(f"replacement no longer matches {target} exactly once: {original!r}")
        source = source.replace(original, mutated)
    return source


def copy_tree(destination: Path) -> None:
    for name in ("causalrl", "agents", "envs", "tests"):
        shutil.copytree(ROOT / name, destination / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", destination / "pyproject.toml")


def run_mutant(name: str, target: str, replacements, timeout: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"rlif-mutant-{name}-") as folder:
        folder = Path(folder)
        copy_tree(folder)
        path = folder / target
        path.write_text(apply(path.read_text(), replacements, target))
        environment = {**os.environ, "PYTHONPATH": str(folder), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        start = time.perf_counter()
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "pytest", *TESTS, "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow"],
                cwd=folder, env=environment, capture_output=True, text=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return {"killed": True, "by": f"timeout after {timeout} s", "seconds": timeout}
        output = completed.stdout + completed.stderr
        failed = re.findall(r"^FAILED (\S+)", output, flags=re.MULTILINE)
        errors = re.findall(r"^ERROR (\S+)", output, flags=re.MULTILINE)
        return {"killed": completed.returncode != 0, "by": (failed or errors or ["(none)"])[0],
                "returncode": completed.returncode, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(MUTANTS))
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--output", type=Path, default=Path("runs/benchmarks/rlif_mutants"))
    args = parser.parse_args()
    for name, (_, target, replacements) in MUTANTS.items():
        apply((ROOT / target).read_text(), replacements, target)  # fail fast when the list no longer follows the code
    results = {}
    for name in args.only or list(MUTANTS):
        description, target, replacements = MUTANTS[name]
        results[name] = {"mutant": description, "file": target, **run_mutant(name, target, replacements, args.timeout)}
        print(f"{name:<36} {'killed' if results[name]['killed'] else 'SURVIVED':<9} "
              f"{results[name]['seconds']:>7.1f}s  {results[name]['by']}", flush=True)
    print()
    print("| mutant | what it breaks | killed | first failing test |\n|---|---|---|---|")
    for name, entry in results.items():
        print(f"| {name} | {entry['mutant']} | {'yes' if entry['killed'] else 'NO'} | {entry['by']} |")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0 if all(entry["killed"] for entry in results.values()) else 1)


if __name__ == "__main__":
    main()
