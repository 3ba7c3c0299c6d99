"""CSL-UCB paper protocol: regret, optimal-intervention rate, reward gain and speed.

Stationary protocol of docs/csl-ucb.md (e): N=10, nu=1, sigma=1, T=1500, paper generator, one
instance per ``instance_seed`` in 0..instances-1; every algorithm plays every instance with
agent seed 0. For each algorithm the benchmark reports, over instances:
  * mean cumulative regret at T (realised, as the paper's code, and pseudo-regret), the 95%
    bootstrap CI of the mean, the 2.5% / 97.5% quantiles (the paper's bands) and the median;
  * the optimal-intervention rate per 100-round window (last window in the table);
  * CSL-UCB's reward gain over it, (sum reward_CSL - sum reward_base) / |sum reward_base|, averaged
    over instances (docs/csl-ucb.md (g) item 9's working definition);
  * seconds per instance (agent.learn only; median).

    python benchmarks/csl_ucb_paper.py [--instances 100] [--workers 2] [--nodes 10]
        [--algorithms csl-ucb ucb linsem-ts-oracle linsem-ucb-oracle etc-dagma]

Writes runs/benchmarks/csl_ucb_paper[_N<n>]/results.json, regret.png and optimal_rate.png.
With several workers the per-instance seconds include contention for the cores.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

DEFAULT_ALGORITHMS = ["csl-ucb", "ucb", "linsem-ts-oracle", "linsem-ucb-oracle", "etc-dagma"]


def play(algorithm: str, instance_seed: int, n_nodes: int, horizon: int,
         env_id: str = "causalrl/LinearSEMBandit-v0", env_kwargs: dict | None = None,
         agent_kwargs: dict | None = None) -> dict:
    """One algorithm on one instance: its logged rows every 100 rounds, its learn() time and,
    for agents that detect changes, its detections."""
    import gymnasium as gym

    from causalrl.core.registry import AGENTS
    from causalrl.experiment.config.plugins import load_plugins
    from causalrl.experiment.run.callbacks import MetricsCallback

    load_plugins()
    env = gym.make(env_id, n_nodes=n_nodes, instance_seed=instance_seed, horizon=horizon, **(env_kwargs or {}))
    agent_cls = AGENTS.get(algorithm)
    agent = agent_cls(agent_cls.default_policy, env, seed=0, **(agent_kwargs or {}))
    metrics = MetricsCallback(log_interval=100)
    start = time.perf_counter()
    agent.learn(horizon, callback=metrics)
    seconds = time.perf_counter() - start
    return {
        "algorithm": algorithm,
        "instance": instance_seed,
        "seconds": seconds,
        "steps": [row["time/steps"] for row in metrics.rows],
        "regret_realised": [row["regret/cumulative_realised"] for row in metrics.rows],
        "regret_pseudo": [row["regret/cumulative"] for row in metrics.rows],
        "optimal_rate": [row["regret/optimal_action_rate"] for row in metrics.rows],
        "reward_sum": metrics.reward_sum,
        "detections": [list(map(int, d)) for d in getattr(agent, "detections", [])],
    }


def bootstrap_mean_ci(values: np.ndarray, rng: np.random.Generator, resamples: int = 10_000) -> tuple[float, float]:
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def summarise(results: list[dict], algorithms: list[str]) -> dict:
    rng = np.random.default_rng(0)
    by_algorithm = {name: sorted((r for r in results if r["algorithm"] == name), key=lambda r: r["instance"])
                    for name in algorithms}
    summary = {}
    csl_rewards = (np.array([r["reward_sum"] for r in by_algorithm["csl-ucb"]])
                   if "csl-ucb" in by_algorithm else None)
    for name, runs in by_algorithm.items():
        final_realised = np.array([r["regret_realised"][-1] for r in runs])
        final_pseudo = np.array([r["regret_pseudo"][-1] for r in runs])
        rewards = np.array([r["reward_sum"] for r in runs])
        entry = {
            "instances": len(runs),
            "regret_realised_mean": float(final_realised.mean()),
            "regret_realised_mean_ci95": bootstrap_mean_ci(final_realised, rng),
            "regret_realised_q025": float(np.quantile(final_realised, 0.025)),
            "regret_realised_q975": float(np.quantile(final_realised, 0.975)),
            "regret_realised_median": float(np.median(final_realised)),
            "regret_pseudo_mean": float(final_pseudo.mean()),
            "regret_pseudo_mean_ci95": bootstrap_mean_ci(final_pseudo, rng),
            "optimal_rate_last_window": float(np.mean([r["optimal_rate"][-1] for r in runs])),
            "optimal_rate_per_window": np.mean([r["optimal_rate"] for r in runs], axis=0).tolist(),
            "seconds_median": float(np.median([r["seconds"] for r in runs])),
            "seconds_max": float(np.max([r["seconds"] for r in runs])),
        }
        if csl_rewards is not None and name != "csl-ucb":
            gains = (csl_rewards - rewards) / np.abs(rewards)
            entry["csl_reward_gain_mean"] = float(gains.mean())
            entry["csl_reward_gain_median"] = float(np.median(gains))
        summary[name] = entry
    return summary


def print_table(summary: dict) -> None:
    header = (f"{'algorithm':<20} {'mean regret':>11} {'95% CI of mean':>19} {'2.5%..97.5% quantiles':>23} "
              f"{'median':>8} {'pseudo':>8} {'opt. rate':>9} {'CSL gain':>9} {'s/inst':>7}")
    print(header)
    print("-" * len(header))
    for name, entry in summary.items():
        low, high = entry["regret_realised_mean_ci95"]
        gain = f"{entry['csl_reward_gain_mean']:+9.2f}" if "csl_reward_gain_mean" in entry else f"{'-':>9}"
        interval = f"[{low:,.0f}, {high:,.0f}]"
        quantiles = f"{entry['regret_realised_q025']:,.0f}..{entry['regret_realised_q975']:,.0f}"
        print(f"{name:<20} {entry['regret_realised_mean']:>11,.0f} {interval:>19} {quantiles:>23} "
              f"{entry['regret_realised_median']:>8,.0f} {entry['regret_pseudo_mean']:>8,.0f} "
              f"{entry['optimal_rate_last_window']:>9.2f} {gain} {entry['seconds_median']:>7.2f}")


def plot(results: list[dict], summary: dict, output: Path, n_nodes: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (axis, pseudo_axis) = plt.subplots(1, 2, figsize=(13, 4.5))
    rate_figure, rate_axis = plt.subplots(figsize=(7, 4.5))
    for name in summary:
        runs = [r for r in results if r["algorithm"] == name]
        steps = np.array(runs[0]["steps"])
        line = None
        for panel, key in ((axis, "regret_realised"), (pseudo_axis, "regret_pseudo")):
            curves = np.array([r[key] for r in runs])
            color = None if line is None else line.get_color()
            line, = panel.plot(steps, curves.mean(axis=0), color=color, label=f"{name} (mean)")
            panel.fill_between(steps, np.quantile(curves, 0.025, axis=0), np.quantile(curves, 0.975, axis=0),
                               color=line.get_color(), alpha=0.12)
        rate_axis.plot(steps, summary[name]["optimal_rate_per_window"], marker="o", markersize=3,
                       color=line.get_color(), label=name)
    axis.set(xlabel="round", ylabel="cumulative regret, realised (sum max mu - X_N)",
             title=f"Realised regret (paper's metric), N={n_nodes}, {len(runs)} instances")
    pseudo_axis.set(xlabel="round", ylabel="cumulative pseudo-regret (sum max mu - mu_a)", yscale="log",
                    title="Pseudo-regret (log scale); bands: 2.5-97.5% quantiles")
    pseudo_axis.grid(alpha=0.3)
    pseudo_axis.legend(fontsize=8)
    rate_axis.set(xlabel="round", ylabel="optimal-intervention rate (per 100-round window)", ylim=(-0.02, 1.02),
                  title=f"Optimal-intervention rate, N={n_nodes}, {len(runs)} instances (mean)")
    for ax, fig, name in ((axis, figure, "regret.png"), (rate_axis, rate_figure, "optimal_rate.png")):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(output / name, dpi=110)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--first-instance", type=int, default=0)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--algorithms", nargs="+", default=DEFAULT_ALGORITHMS)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--replot", action="store_true", help="redraw the plots from OUTPUT/results.json")
    args = parser.parse_args()
    output = args.output or Path("runs/benchmarks") / ("csl_ucb_paper" + ("" if args.nodes == 10 else f"_N{args.nodes}"))
    output.mkdir(parents=True, exist_ok=True)
    if args.replot:
        saved = json.loads((output / "results.json").read_text())
        print_table(saved["summary"])
        plot(saved["runs"], saved["summary"], output, saved["meta"]["nodes"])
        return

    tasks = [(name, seed, args.nodes, args.horizon) for seed in range(args.first_instance, args.first_instance + args.instances)
             for name in args.algorithms]
    results = []
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(play, *task) for task in tasks]
        for future in tqdm(futures, desc="runs", unit="run"):
            results.append(future.result())
    summary = summarise(results, args.algorithms)
    print(f"\nN={args.nodes}, T={args.horizon}, instances {args.first_instance}..{args.first_instance + args.instances - 1}, "
          f"agent seed 0, {args.workers} worker(s)")
    print_table(summary)
    meta = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    (output / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": results}) + "\n")
    plot(results, summary, output, args.nodes)
    print(f"wrote {output}/results.json, regret.png, optimal_rate.png")


if __name__ == "__main__":
    main()
