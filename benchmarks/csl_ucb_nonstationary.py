"""CSL-UCB in piecewise-stationary worlds: per-column change detection against its ablations.

Protocol (preset ``csl-ucb-nonstationary``; the paper's schedule is not published): N=10,
T=5000, changes after rounds 1500 and 3000, two columns redrawn per change so that every
previously optimal intervention stops being optimal (docs/csl-ucb.md (e)). Algorithms: CSL-UCB with
per-column detection, without detection, with the whole-graph detector that restarts everything,
and sliding-window UCB (window 10).

Detection scoring (our definitions, printed with the table):
  * a detection at round t is *true* for the change at tau when tau < t <= tau + tolerance and it
    flags a column that changed at tau (a whole-graph alarm counts for any changed column);
  * detection delay = first true detection - tau, averaged over detected changes; a change with
    no true detection within the tolerance is *missed*;
  * every other detection is a *false alarm*, reported per 1000 rounds in which the detector
    runs (t > 200).

  * false alarms on *stationary* worlds: the column detector forced on (``change_detection=
    "column"``) in ``causalrl/LinearSEMBandit-v0`` at each N of ``--stationary-nodes``, T = 1500,
    every alarm false, per 1000 rounds in which the detector runs (1300 per run).

CSL-UCB here is the registered ``csl-ucb``: the piecewise world declares itself
(``piecewise_stationary = True``) and ``change_detection="auto"`` turns the column detector on.

    python benchmarks/csl_ucb_nonstationary.py [--instances 20] [--workers 2] [--tolerance 500]
        [--stationary-nodes 10 15 18] [--stationary-instances 10 6 3] [--false-alarms-only]

Writes runs/benchmarks/csl_ucb_nonstationary/results.json (false_alarms.json with
--false-alarms-only) and regret.png.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from csl_ucb_paper import bootstrap_mean_ci, play
from tqdm.auto import tqdm

ENV_ID = "causalrl/PiecewiseSEMBandit-v0"
ALGORITHMS = {
    "csl-ucb": ("csl-ucb", {}),
    "csl-ucb-no-detection": ("csl-ucb-no-detection", {}),
    "csl-ucb-graph-detection": ("csl-ucb-graph-detection", {}),
    "sw-ucb": ("ucb", {"window": 10}),
}
DETECT_AFTER = 200  # CSL-UCB's T_static: detection runs only after this round


def changed_columns(instance_seed: int, n_nodes: int, horizon: int, env_kwargs: dict) -> list[set]:
    """For each change point, the (mechanism, node) columns that the change redrew."""
    from causalrl.envs.bandits import PiecewiseSEMBandit

    env = PiecewiseSEMBandit(n_nodes=n_nodes, instance_seed=instance_seed, horizon=horizon, **env_kwargs)
    changes = []
    for before, after in zip(env.segments, env.segments[1:]):
        columns = set()
        for mechanism, name in enumerate(("observational_weights", "interventional_weights")):
            differs = np.any(getattr(before, name) != getattr(after, name), axis=0)
            columns |= {(mechanism, int(node)) for node in np.flatnonzero(differs)}
        changes.append(columns)
    return changes


def score_detections(detections, change_points, columns_per_change, horizon, tolerance) -> dict:
    true_detections, delays = set(), []
    for tau, columns in zip(change_points, columns_per_change):
        hits = [index for index, (t, mechanism, node) in enumerate(detections)
                if tau < t <= tau + tolerance and (node == -1 or (mechanism, node) in columns)]
        true_detections.update(hits)
        if hits:
            delays.append(detections[hits[0]][0] - tau)
    false_alarms = len(detections) - len(true_detections)
    return {
        "delays": delays,
        "missed": len(change_points) - len(delays),
        "false_alarms": false_alarms,
        "false_alarms_per_1000": 1000 * false_alarms / (horizon - DETECT_AFTER),
    }


def stationary_false_alarms(node_counts, instance_counts, workers: int, horizon: int = 1500) -> dict:
    """The column detector forced on in stationary worlds: every alarm is false."""
    if len(instance_counts) != len(node_counts):
        raise ValueError("--stationary-instances: give one count per --stationary-nodes value")
    tasks = [(n_nodes, seed) for n_nodes, count in zip(node_counts, instance_counts) for seed in range(count)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(play, "csl-ucb", seed, n_nodes, horizon, "causalrl/LinearSEMBandit-v0", None,
                               {"change_detection": "column"}) for n_nodes, seed in tasks]
        runs = [future.result() | {"nodes": n_nodes} for future, (n_nodes, _) in
                zip(tqdm(futures, desc="stationary runs", unit="run"), tasks)]
    table = {}
    print(f"\nFalse alarms of the column detector on stationary worlds (T={horizon}, detection after round "
          f"{DETECT_AFTER}, agent seed 0)")
    print(f"{'N':>3} {'instances':>9} {'alarms':>6} {'per 1000 rounds':>15} {'runs with alarms':>16} {'s/inst':>7}")
    for n_nodes in node_counts:
        chosen = [r for r in runs if r["nodes"] == n_nodes]
        alarms = sum(len(r["detections"]) for r in chosen)
        rate = 1000 * alarms / (len(chosen) * (horizon - DETECT_AFTER))
        table[n_nodes] = {"instances": len(chosen), "alarms": alarms, "per_1000_rounds": rate,
                          "runs_with_alarms": sum(bool(r["detections"]) for r in chosen),
                          "seconds_median": float(np.median([r["seconds"] for r in chosen]))}
        print(f"{n_nodes:>3} {len(chosen):>9} {alarms:>6} {rate:>15.3f} {table[n_nodes]['runs_with_alarms']:>16} "
              f"{table[n_nodes]['seconds_median']:>7.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=5000)
    parser.add_argument("--change-points", type=int, nargs="+", default=[1500, 3000])
    parser.add_argument("--columns-per-change", type=int, default=2)
    parser.add_argument("--tolerance", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    parser.add_argument("--output", type=Path, default=Path("runs/benchmarks/csl_ucb_nonstationary"))
    parser.add_argument("--stationary-nodes", type=int, nargs="+", default=[10, 15, 18])
    parser.add_argument("--stationary-instances", type=int, nargs="+", default=[10, 6, 3],
                        help="instances per N of --stationary-nodes")
    parser.add_argument("--false-alarms-only", action="store_true")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    env_kwargs = {"change_points": args.change_points, "columns_per_change": args.columns_per_change}
    false_alarms = stationary_false_alarms(args.stationary_nodes, args.stationary_instances, args.workers)
    if args.false_alarms_only:
        (args.output / "false_alarms.json").write_text(json.dumps(false_alarms, indent=1) + "\n")
        print(f"wrote {args.output}/false_alarms.json")
        return

    tasks = [(label, seed) for seed in range(args.instances) for label in args.algorithms]
    results = []
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(play, ALGORITHMS[label][0], seed, args.nodes, args.horizon, ENV_ID, env_kwargs,
                               ALGORITHMS[label][1]): label for label, seed in tasks}
        for future in tqdm(futures, desc="runs", unit="run"):
            results.append({**future.result(), "algorithm": futures[future]})
    changes = {seed: changed_columns(seed, args.nodes, args.horizon, env_kwargs) for seed in range(args.instances)}

    rng = np.random.default_rng(0)
    summary = {}
    for label in args.algorithms:
        runs = [r for r in results if r["algorithm"] == label]
        final = np.array([r["regret_realised"][-1] for r in runs])
        entry = {
            "regret_realised_mean": float(final.mean()),
            "regret_realised_mean_ci95": bootstrap_mean_ci(final, rng),
            "regret_pseudo_mean": float(np.mean([r["regret_pseudo"][-1] for r in runs])),
            "optimal_rate_last_window": float(np.mean([r["optimal_rate"][-1] for r in runs])),
            "seconds_median": float(np.median([r["seconds"] for r in runs])),
        }
        if label.startswith("csl-ucb") and label != "csl-ucb-no-detection":
            scores = [score_detections(r["detections"], args.change_points, changes[r["instance"]],
                                       args.horizon, args.tolerance) for r in runs]
            delays = [delay for score in scores for delay in score["delays"]]
            entry.update({
                "detection_delay_mean": float(np.mean(delays)) if delays else None,
                "changes_detected": len(delays),
                "changes_missed": int(sum(score["missed"] for score in scores)),
                "false_alarms_per_1000_rounds": float(np.mean([score["false_alarms_per_1000"] for score in scores])),
            })
        summary[label] = entry

    print(f"\nN={args.nodes}, T={args.horizon}, changes after {args.change_points}, "
          f"{args.columns_per_change} columns per change, {args.instances} instances, tolerance {args.tolerance}")
    header = (f"{'algorithm':<24} {'mean regret':>11} {'95% CI of mean':>20} {'pseudo':>8} {'opt. rate':>9} "
              f"{'delay':>7} {'detected/missed':>15} {'false/1000':>10} {'s/inst':>7}")
    print(header)
    print("-" * len(header))
    for label, entry in summary.items():
        low, high = entry["regret_realised_mean_ci95"]
        delay = entry.get("detection_delay_mean")
        detected = (f"{entry['changes_detected']}/{entry['changes_missed']}" if "changes_detected" in entry else "-")
        false_rate = entry.get("false_alarms_per_1000_rounds")
        print(f"{label:<24} {entry['regret_realised_mean']:>11,.0f} {f'[{low:,.0f}, {high:,.0f}]':>20} "
              f"{entry['regret_pseudo_mean']:>8,.0f} {entry['optimal_rate_last_window']:>9.2f} "
              f"{(f'{delay:.0f}' if delay is not None else '-'):>7} {detected:>15} "
              f"{(f'{false_rate:.3f}' if false_rate is not None else '-'):>10} {entry['seconds_median']:>7.2f}")

    meta = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    (args.output / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": results,
                                                          "stationary_false_alarms": false_alarms}) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    for label in args.algorithms:
        runs = [r for r in results if r["algorithm"] == label]
        steps = np.array(runs[0]["steps"])
        curves = np.array([r["regret_realised"] for r in runs])
        line, = axis.plot(steps, curves.mean(axis=0), label=label)
        axis.fill_between(steps, np.quantile(curves, 0.025, axis=0), np.quantile(curves, 0.975, axis=0),
                          color=line.get_color(), alpha=0.12)
    for tau in args.change_points:
        axis.axvline(tau, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="round", ylabel="cumulative regret (realised)",
             title=f"Piecewise-stationary bandit, {args.instances} instances\n(mean; band 2.5-97.5% quantiles; dotted: changes)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.output / "regret.png", dpi=110)
    print(f"wrote {args.output}/results.json and regret.png")


if __name__ == "__main__":
    main()
