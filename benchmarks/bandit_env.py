"""Speed of the linear-SEM bandit world against plain per-arm / per-round Python loops.

Measures, in one run on the same instances:
  * env rounds per second: ``LinearSEMBandit.step`` vs a plain loop that builds B_a entry by
    entry and inverts (I - B_a)^T every round (how research code typically samples);
  * the time to evaluate the expected reward of every intervention (2^N arms):
    ``LinearSEM.expected_rewards()`` vs a per-arm loop of ``np.linalg.solve``.
Speed is reported as a ratio against the loop measured in the same run (machines are noisy).

    python benchmarks/bandit_env.py [--nodes 10 15] [--rounds 5000] [--repeats 5]

Writes runs/benchmarks/bandit_env/results.json and speed.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import causalrl.envs  # noqa: E402,F401  (registers the worlds)
from causalrl.core.scm import all_interventions  # noqa: E402

OUTPUT = Path("runs/benchmarks/bandit_env")


def plain_round_loop(observational, interventional, actions, noise_mean, rng):
    """Per round: build B_a node by node, invert, multiply (the per-arm loop baseline)."""
    n_nodes = observational.shape[0]
    for action in actions:
        mixed = np.zeros((n_nodes, n_nodes))
        for node in range(n_nodes):
            mixed[:, node] = interventional[:, node] if action[node] else observational[:, node]
        noise = noise_mean + rng.standard_normal(n_nodes)
        _ = np.linalg.inv(np.eye(n_nodes) - mixed.T) @ noise


def plain_expected_rewards(observational, interventional, noise_mean, reward_node):
    n_nodes = observational.shape[0]
    rewards = []
    for action in all_interventions(n_nodes):
        mixed = np.where(action[None, :] > 0, interventional, observational)
        rewards.append(np.linalg.solve(np.eye(n_nodes) - mixed.T, noise_mean)[reward_node])
    return np.array(rewards)


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(n_nodes: int, rounds: int, repeats: int) -> dict:
    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=n_nodes, instance_seed=0, horizon=rounds + 1)
    sem = env.unwrapped.causal_structure
    actions = np.random.default_rng(0).integers(0, 2, size=(rounds, n_nodes))

    def env_rounds():
        env.reset(seed=0)
        for action in actions:
            env.step(action)

    env_seconds = best_of(repeats, env_rounds)
    loop_seconds = best_of(repeats, lambda: plain_round_loop(
        sem.observational_weights, sem.interventional_weights, actions, sem.noise_mean, np.random.default_rng(0)))
    vector_seconds = best_of(repeats, sem.expected_rewards)
    per_arm_repeats = repeats if n_nodes <= 12 else 1
    per_arm_seconds = best_of(per_arm_repeats, lambda: plain_expected_rewards(
        sem.observational_weights, sem.interventional_weights, sem.noise_mean, sem.reward_node))
    agree = np.allclose(sem.expected_rewards(), plain_expected_rewards(
        sem.observational_weights, sem.interventional_weights, sem.noise_mean, sem.reward_node))
    return {
        "n_nodes": n_nodes,
        "arms": 1 << n_nodes,
        "env_rounds_per_s": rounds / env_seconds,
        "loop_rounds_per_s": rounds / loop_seconds,
        "env_speedup": loop_seconds / env_seconds,
        "all_arms_vectorised_ms": vector_seconds * 1e3,
        "all_arms_per_arm_loop_ms": per_arm_seconds * 1e3,
        "all_arms_speedup": per_arm_seconds / vector_seconds,
        "closed_forms_agree": bool(agree),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 15])
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = [measure(n, args.rounds, args.repeats) for n in args.nodes]

    header = f"{'N':>3} {'arms':>7} | {'env rounds/s':>12} {'loop rounds/s':>13} {'ratio':>6} | " \
             f"{'all arms (ms)':>13} {'per-arm loop (ms)':>17} {'ratio':>7} | agree"
    print(header)
    print("-" * len(header))
    for row in results:
        print(f"{row['n_nodes']:>3} {row['arms']:>7} | {row['env_rounds_per_s']:>12,.0f} {row['loop_rounds_per_s']:>13,.0f} "
              f"{row['env_speedup']:>5.1f}x | {row['all_arms_vectorised_ms']:>13.2f} {row['all_arms_per_arm_loop_ms']:>17.1f} "
              f"{row['all_arms_speedup']:>6.0f}x | {row['closed_forms_agree']}")

    OUTPUT.mkdir(parents=True, exist_ok=True)
    meta = {"rounds": args.rounds, "repeats": args.repeats, "timing": "best of repeats, same run"}
    (OUTPUT / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    figure, axis = plt.subplots(figsize=(6, 3.5))
    labels = [f"N={row['n_nodes']}" for row in results]
    positions = np.arange(len(results))
    axis.bar(positions - 0.2, [row["env_speedup"] for row in results], 0.4, label="env rounds (vs per-round loop)")
    axis.bar(positions + 0.2, [row["all_arms_speedup"] for row in results], 0.4, label="all 2^N expected rewards (vs per-arm loop)")
    axis.set(xticks=positions, xticklabels=labels, ylabel="speed-up (x, log scale)", yscale="log",
             title="LinearSEMBandit speed against plain loops")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(OUTPUT / "speed.png", dpi=110)
    print(f"wrote {OUTPUT / 'results.json'} and {OUTPUT / 'speed.png'}  (median ratio "
          f"{statistics.median(row['all_arms_speedup'] for row in results):.0f}x for all arms)")


if __name__ == "__main__":
    main()
