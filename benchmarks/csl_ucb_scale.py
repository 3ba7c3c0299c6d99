"""CSL-UCB at growing N: seconds, peak memory and regret against UCB, T = 1500.

For each N and instance (paper generator, ``instance_seed`` 0..instances-1, agent seed 0) one
fresh process builds the world, runs CSL-UCB (the registered, stationary algorithm) for T rounds,
then UCB on the same world and noise seed. Reported per N (medians over instances): seconds to
build the world, seconds of CSL-UCB's ``learn``, UCB's seconds (the baseline measured in the same
process), CSL-UCB's CPU seconds (``time.process_time``: on shared cores the wall time also counts the
waits for a core; the CPU time is what the algorithm costs), the process's peak resident memory (``ru_maxrss``; it includes the interpreter, numpy,
torch and Stable-Baselines3 imported by the agents, about 250 MB, which ``import MB`` shows), and
the mean realised regret of CSL-UCB and UCB.

Targets (docs/csl-ucb.md, "Speed"): N = 18 in <= 10 s and N = 20 in <= 30 s per instance, peak
memory <= 1 GB. ``--profile N`` prints a cProfile of one N instead.

    python benchmarks/csl_ucb_scale.py [--nodes 10 12 15 18 20] [--instances 2] [--workers 1]

Writes runs/benchmarks/csl_ucb_scale/results.json.

Measured on 2 cores shared with other jobs (load average 15 to 18; instances 0-1; the CPU column
from a second run of N = 18, 20 on instance 0):

    N   arms       build s  CSL-UCB wall s  CPU s  UCB wall s  peak MB  CSL regret  UCB regret
    10      1,024   0.01       6.8            -     1.9         265          695       25,318
    12      4,096   0.03       7.6            -     1.8         267         -618      106,200
    15     32,768   0.38      18.0            -     3.3         289       18,105      361,059
    18    262,144   1.49      30.7 (15.1)    5.7    5.1         371      123,474      616,541
    20  1,048,576   2.59      45.7 (29.8)   12.2   10.6         651      119,555   20,262,529
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np


def _regret(agent_cls, env, horizon: int, seed: int = 0) -> tuple[float, float]:
    import time

    from causalrl.experiment.run.callbacks import MetricsCallback

    agent = agent_cls("BanditPolicy", env, seed=seed)
    metrics = MetricsCallback(log_interval=horizon)
    start, cpu_start = time.perf_counter(), time.process_time()
    agent.learn(horizon, callback=metrics)
    return (time.perf_counter() - start, time.process_time() - cpu_start,
            metrics.rows[-1]["regret/cumulative_realised"])


def measure(n_nodes: int, instance_seed: int, horizon: int) -> dict:
    import resource
    import time

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from causalrl.agents.csl_ucb import CSLUCB
    from causalrl.agents.ucb import UCB
    from causalrl.envs.bandits import LinearSEMBandit

    imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    env = LinearSEMBandit(n_nodes=n_nodes, instance_seed=instance_seed, horizon=horizon)
    build = time.perf_counter() - start
    csl_seconds, csl_cpu, csl_regret = _regret(CSLUCB, env, horizon)
    ucb_seconds, ucb_cpu, ucb_regret = _regret(UCB, env, horizon)
    return {"nodes": n_nodes, "instance": instance_seed, "build_seconds": build, "csl_seconds": csl_seconds,
            "csl_cpu_seconds": csl_cpu, "ucb_seconds": ucb_seconds, "ucb_cpu_seconds": ucb_cpu, "csl_regret": csl_regret, "ucb_regret": ucb_regret,
            "import_mb": imported, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def profile(n_nodes: int, horizon: int) -> None:
    import cProfile
    import pstats

    from causalrl.agents.csl_ucb import CSLUCB
    from causalrl.envs.bandits import LinearSEMBandit

    env = LinearSEMBandit(n_nodes=n_nodes, instance_seed=0, horizon=horizon)
    agent = CSLUCB("BanditPolicy", env, seed=0)
    profiler = cProfile.Profile()
    profiler.enable()
    agent.learn(horizon)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 12, 15, 18, 20])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--profile", type=int, default=None, metavar="N")
    parser.add_argument("--output", type=Path, default=Path("runs/benchmarks/csl_ucb_scale"))
    args = parser.parse_args()
    if args.profile is not None:
        profile(args.profile, args.horizon)
        return
    tasks = [(n_nodes, seed, args.horizon) for n_nodes in args.nodes for seed in range(args.instances)]
    # a fresh process per measurement, so ru_maxrss is that measurement's peak
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        results = list(pool.map(measure, *zip(*tasks)))
    load = os.getloadavg()[0]
    print(f"\nT={args.horizon}, {args.instances} instance(s) per N, agent seed 0, {args.workers} worker(s); "
          f"1-min load average at the end {load:.1f} on {os.cpu_count()} cores")
    header = (f"{'N':>3} {'arms':>9} {'build s':>8} {'CSL-UCB s':>10} {'CPU s':>7} {'UCB s':>7} {'peak MB':>8} {'import MB':>9} "
              f"{'CSL regret':>11} {'UCB regret':>11} {'CSL/UCB':>8}")
    print(header)
    print("-" * len(header))
    summary = {}
    for n_nodes in args.nodes:
        rows = [r for r in results if r["nodes"] == n_nodes]
        entry = {key: float(np.median([r[key] for r in rows]))
                 for key in ("build_seconds", "csl_seconds", "csl_cpu_seconds", "ucb_seconds", "peak_mb", "import_mb")}
        entry["csl_regret_mean"] = float(np.mean([r["csl_regret"] for r in rows]))
        entry["ucb_regret_mean"] = float(np.mean([r["ucb_regret"] for r in rows]))
        summary[n_nodes] = entry
        print(f"{n_nodes:>3} {1 << n_nodes:>9,} {entry['build_seconds']:>8.2f} {entry['csl_seconds']:>10.2f} "
              f"{entry['csl_cpu_seconds']:>7.2f} "
              f"{entry['ucb_seconds']:>7.2f} {entry['peak_mb']:>8.0f} {entry['import_mb']:>9.0f} "
              f"{entry['csl_regret_mean']:>11,.0f} {entry['ucb_regret_mean']:>11,.0f} "
              f"{entry['csl_regret_mean'] / entry['ucb_regret_mean']:>8.3f}")
    args.output.mkdir(parents=True, exist_ok=True)
    meta = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    (args.output / "results.json").write_text(
        json.dumps({"meta": {**meta, "load_average": load}, "summary": summary, "runs": results}, indent=1) + "\n")
    print(f"wrote {args.output}/results.json")


if __name__ == "__main__":
    main()
