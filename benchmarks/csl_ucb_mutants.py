"""Mutation check of CSL-UCB's tests: each mutant is a wrong implementation of one step of
docs/csl-ucb.md (b)/(c); every one must make at least one fast test fail.

Each mutant is a list of exact text replacements in agents/csl_ucb.py. The script copies the
package and tests into a scratch folder (the working tree is never touched), applies one mutant
there, and runs the fast CSL-UCB and bandit-agent tests with ``-x`` from that folder (so that
folder's ``causalrl`` is the one imported). A mutant is *killed* when pytest fails; the table
names the first failing test.

    python benchmarks/csl_ucb_mutants.py [--only NAME ...] [--timeout 900]

Writes runs/benchmarks/csl_ucb_mutants/results.json. Exit status 1 when a mutant survives or a
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
TARGET = "agents/csl_ucb.py"
TESTS = ["tests/test_csl_ucb.py", "tests/test_bandit_agents.py"]

#: name -> (what it breaks, [(original text, mutated text), ...])
MUTANTS = {
    "every-round": ("structure relearned and estimates/decisions refreshed every round (periods ignored)", [
        ("if relearn or t % self.graph_period == 0:", "if True:"),
        ("if relearn or t % self.estimate_period == 0:", "if True:"),
    ]),
    "no-bonus": ("UCB bonus removed: play argmax mu_hat (kappa = 0)", [
        ("best = int(np.argmax(self.estimated_rewards + self.kappa * self.uncertainties))",
         "best = int(np.argmax(self.estimated_rewards))"),
    ]),
    "kappa-zero": ("kappa_0 = 0", [
        ("self.kappa0 = self.kappa_factor * scale / largest_uncertainty if largest_uncertainty > 0 else 0.0",
         "self.kappa0 = 0.0"),
    ]),
    "kappa-constant": ("kappa held at kappa_0 (no cosine anneal)", [
        ("return self.kappa0 * (1.0 + math.cos(math.pi * progress)) / 2.0", "return self.kappa0"),
    ]),
    "kappa-learn-call": ("anneal horizon taken from the current learn() call", [
        ("progress = min((t - latest_reset) / max(self.horizon - latest_reset, 1), 1.0)",
         "progress = min((t - latest_reset) / max(self._total_timesteps - latest_reset, 1), 1.0)"),
    ]),
    "all-samples": ("first-n_max rule dropped: every sample kept", [
        ("collecting = self.sample_counts[mechanisms, nodes] < self.n_max",
         "collecting = np.ones(self.n_nodes, dtype=bool)"),
    ]),
    "penalty-zero": ("asymmetric penalty weight w set to 0 (default)", [
        ("k: int = 5, penalty_weight: float = 1.0, delta: float = 0.05, kappa_factor: float = 0.5,\n                 horizon",
         "k: int = 5, penalty_weight: float = 0.0, delta: float = 0.05, kappa_factor: float = 0.5,\n                 horizon"),
    ]),
    "penalty-term-dropped": ("-w log|b_hat| term dropped from the edge score", [
        ("return information + penalty", "return information"),
    ]),
    "detect-in-stationary": ("registered csl-ucb runs change detection in stationary worlds", [
        ('change_detection = "column" if declared is True else "none"', 'change_detection = "column"'),
    ]),
    "no-sample-rule": ("detector tests columns whatever their fit's sample count", [
        ("testable = window_full & (self.fit_counts >= needed)", "testable = window_full"),
    ]),
    "known-reference": ("detector always against the known sigma (fit reference dropped)", [
        ('if self.detection_reference == "fit":', "if False:"),
    ]),
}


def apply(source: str, replacements) -> str:
    for original, mutated in replacements:
        if source.count(original) != 1:
            raise ValueError(f"replacement no longer matches {TARGET} exactly once: {original!r}")
        source = source.replace(original, mutated)
    return source


def copy_tree(destination: Path) -> None:
    for name in ("causalrl", "agents", "envs", "tests"):
        shutil.copytree(ROOT / name, destination / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", destination / "pyproject.toml")


def run_mutant(name: str, replacements, timeout: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"csl-mutant-{name}-") as folder:
        folder = Path(folder)
        copy_tree(folder)
        target = folder / TARGET
        target.write_text(apply(target.read_text(), replacements))
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
        # the copied causalrl must be the one imported, else the mutant was not tested
        return {"killed": completed.returncode != 0, "by": (failed or errors or ["(none)"])[0],
                "returncode": completed.returncode, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(MUTANTS))
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--output", type=Path, default=Path("runs/benchmarks/csl_ucb_mutants"))
    args = parser.parse_args()
    source = (ROOT / TARGET).read_text()
    for name, (_, replacements) in MUTANTS.items():
        apply(source, replacements)  # fail fast when the list no longer follows the code
    results = {}
    for name in args.only or list(MUTANTS):
        description, replacements = MUTANTS[name]
        results[name] = {"mutant": description, **run_mutant(name, replacements, args.timeout)}
        print(f"{name:<22} {'killed' if results[name]['killed'] else 'SURVIVED':<9} "
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
