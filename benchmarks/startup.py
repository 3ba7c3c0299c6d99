"""Start-up benchmark: wall time of ``causalrl --help`` and of the default experiment
(``causalrl run``), for a baseline checkout and for this tree, in one benchmark run.

    python benchmarks/startup.py                       # baseline: git commit 2f4c673
    python benchmarks/startup.py --baseline REV --repeats 3

The baseline is checked out with ``git worktree add`` into a temporary folder (the working tree
is not touched) and run with the same interpreter through PYTHONPATH, so both sides share the
installed packages. Each command runs ``--repeats`` times per side, interleaved (baseline, this
tree, baseline, ...) so that machine load hits both alike; the table shows medians and the ratio
baseline / this tree (> 1: this tree is faster), of wall time and of CPU time (user + system seconds
of the command; steadier than wall time on a shared machine).

A second pair of rows measures the same with a warm bytecode cache (PYTHONPYCACHEPREFIX in a
temporary folder, PYTHONDONTWRITEBYTECODE unset): where the environment forbids writing .pyc
files and the packages were installed with ``pip install --no-compile``, every start compiles
torch, SB3 and matplotlib from source, and this shows how much of the start-up that is.

Writes runs/benchmarks/startup.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _worktree(revision: str) -> Path:
    folder = Path(tempfile.gettempdir()) / f"causalrl-before-{revision[:12]}"
    if not (folder / "causalrl" / "__init__.py").is_file():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), revision], check=True,
                       capture_output=True)
    return folder


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``."""
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-800:]}")
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="2f4c673", help="git revision of the baseline (default 2f4c673)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per command and side (default 3)")
    parser.add_argument("--no-cache-rows", action="store_true", help="skip the warm-bytecode-cache rows")
    parser.add_argument("--out", default=str(ROOT / "runs" / "benchmarks"), help="folder for startup.json")
    args = parser.parse_args()

    sides = {"baseline": _worktree(args.baseline), "this tree": ROOT}
    scratch = Path(tempfile.mkdtemp(prefix="causalrl-startup-"))
    base_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    commands = {
        "causalrl --help": ["-m", "causalrl.cli", "--help"],
        "causalrl list": ["-m", "causalrl.cli", "list"],
        "causalrl run (default experiment)": ["-m", "causalrl.cli", "run", "--no-progress"],
    }
    modes = {"as installed": {}}
    if not args.no_cache_rows:
        modes["warm bytecode cache"] = {"PYTHONPYCACHEPREFIX": str(scratch / "pycache")}

    # check that each side imports its own code
    for side, folder in sides.items():
        env = {**base_env, "PYTHONPATH": str(folder)}
        found = subprocess.run([sys.executable, "-c", "import causalrl; print(causalrl.__file__)"], env=env,
                               cwd=scratch, capture_output=True, text=True, check=True).stdout.strip()
        assert Path(found).resolve().is_relative_to(folder.resolve()), f"{side} imports {found}"

    results = []
    for mode, extra in modes.items():
        for label, command in commands.items():
            times, cpu_times = {side: [] for side in sides}, {side: [] for side in sides}
            warm_up = bool(extra)  # fill the bytecode cache first (not timed)
            for repeat in range(args.repeats + warm_up):
                for side, folder in sides.items():
                    env = {**base_env, "PYTHONPATH": str(folder), **extra}
                    if extra:
                        env.pop("PYTHONDONTWRITEBYTECODE", None)
                    output = scratch / f"{side.replace(' ', '-')}-{mode.replace(' ', '-')}-{repeat}"
                    full = [sys.executable, *command] + ([f"output_dir={output}"] if "run" in command else [])
                    elapsed, cpu = _time(full, env, scratch)
                    if not (warm_up and repeat == 0):
                        times[side].append(elapsed)
                        cpu_times[side].append(cpu)
            baseline, current = statistics.median(times["baseline"]), statistics.median(times["this tree"])
            cpu_baseline, cpu_current = statistics.median(cpu_times["baseline"]), statistics.median(cpu_times["this tree"])
            results.append({"mode": mode, "command": label, "baseline_s": baseline, "this_tree_s": current,
                            "ratio_baseline_over_this": baseline / current, "baseline_runs": times["baseline"],
                            "this_tree_runs": times["this tree"], "baseline_cpu_s": cpu_baseline,
                            "this_tree_cpu_s": cpu_current, "cpu_ratio_baseline_over_this": cpu_baseline / cpu_current,
                            "baseline_cpu_runs": cpu_times["baseline"], "this_tree_cpu_runs": cpu_times["this tree"]})
            print(f"  {mode:<20} {label:<36} baseline {baseline:7.2f}s  this tree {current:7.2f}s  "
                  f"ratio {baseline / current:5.2f}  (CPU ratio {cpu_baseline / cpu_current:5.2f})", flush=True)

    load = os.getloadavg()
    print()
    print(f"Start-up wall time, median of {args.repeats} (baseline {args.baseline}; load average {load[0]:.1f})")
    print("| mode | command | baseline s | this tree s | baseline / this tree | CPU s baseline | CPU s this tree "
          "| CPU baseline / this tree |")
    print("|---|---|---|---|---|---|---|---|")
    for row in results:
        print(f"| {row['mode']} | {row['command']} | {row['baseline_s']:.2f} | {row['this_tree_s']:.2f} | "
              f"{row['ratio_baseline_over_this']:.2f} | {row['baseline_cpu_s']:.2f} | {row['this_tree_cpu_s']:.2f} | "
              f"{row['cpu_ratio_baseline_over_this']:.2f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.json").write_text(json.dumps({
        "baseline": args.baseline, "repeats": args.repeats, "python": sys.version.split()[0],
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"), "load_average": load,
        "cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"wrote {out / 'startup.json'}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
