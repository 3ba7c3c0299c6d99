"""What the mutation checks (csl_ucb_mutants.py, rlif_mutants.py) share: each mutant is a list of
exact text replacements in one file; the package and tests are copied into a scratch folder (the
working tree is never touched), one mutant is applied there, and the given fast tests run with
``-x`` from that folder (so that folder's ``causalrl`` is the one imported). A mutant is *killed*
when pytest fails; the table names the first failing test. Exit status 1 when a mutant survives
or a replacement no longer matches the source (the mutant list must follow the code).
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


def apply(source: str, replacements, target: str) -> str:
    """``source`` with each (original, mutated) replacement made; each original must occur once."""
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


def run_mutant(name: str, target: str, replacements, tests: list[str], timeout: int) -> dict:
    """Apply one mutant to a scratch copy and run ``tests`` there: killed, by which test, seconds."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{name}-") as folder:
        folder = Path(folder)
        copy_tree(folder)
        path = folder / target
        path.write_text(apply(path.read_text(), replacements, target))
        environment = {**os.environ, "PYTHONPATH": str(folder), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        start = time.perf_counter()
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow"],
                cwd=folder, env=environment, capture_output=True, text=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return {"killed": True, "by": f"timeout after {timeout} s", "seconds": timeout}
        output = completed.stdout + completed.stderr
        failed = re.findall(r"^FAILED (\S+)", output, flags=re.MULTILINE)
        errors = re.findall(r"^ERROR (\S+)", output, flags=re.MULTILINE)
        return {"killed": completed.returncode != 0, "by": (failed or errors or ["(none)"])[0],
                "returncode": completed.returncode, "seconds": round(time.perf_counter() - start, 1)}


def main(description: str, mutants: dict, tests: list[str], output: str) -> None:
    """The command line of a mutation check: ``mutants`` maps a name to (what it breaks, file,
    replacements); prints a table, writes ``output``/results.json, exits 1 if one survives."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--only", nargs="+", choices=list(mutants))
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--output", type=Path, default=Path(output))
    args = parser.parse_args()
    for name, (_, target, replacements) in mutants.items():
        apply((ROOT / target).read_text(), replacements, target)  # fail fast when the list no longer follows the code
    results = {}
    for name in args.only or list(mutants):
        what, target, replacements = mutants[name]
        results[name] = {"mutant": what, "file": target, **run_mutant(name, target, replacements, tests, args.timeout)}
        print(f"{name:<36} {'killed' if results[name]['killed'] else 'SURVIVED':<9} "
              f"{results[name]['seconds']:>7.1f}s  {results[name]['by']}", flush=True)
    print()
    print("| mutant | what it breaks | killed | first failing test |\n|---|---|---|---|")
    for name, entry in results.items():
        print(f"| {name} | {entry['mutant']} | {'yes' if entry['killed'] else 'NO'} | {entry['by']} |")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0 if all(entry["killed"] for entry in results.values()) else 1)
