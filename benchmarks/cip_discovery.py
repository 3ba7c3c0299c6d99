"""CIP's discovery on worlds not shaped to its estimator, and its stability on Reacher-v5 (docs/cip.md (b.1), (d)).

For each world, ``--samples`` transitions of uniformly random actions fill a CIP agent's replay
buffer (no update is made), then one discovery round runs (``CIP._discover``: reward parents
among (s_t, a_t, s_{t+1}) by stability-selected adaptive lasso on each variable and its square,
the state -> state structure by t statistics, the closed reward-free blocks). Reported per world
and seed:

- F1 of the reward masks (state and action -> reward) against the world's ``causal_structure``
  (worlds with known structure only);
- whether the swappable blocks are exactly the true closed blocks
  (``FactoredStructure.closed_blocks``), or a subset of them (safe: every swap valid);
- on Reacher-v5 (no ground truth; the reward is -|fingertip - target| - 0.1 |a|^2 after the
  step), the discovered state parents per seed, each dimension's selection count over seeds and
  the mean pairwise Jaccard similarity of the masks, with stability selection (default 10
  subsamples) and without it (one fit on all rows), so the effect of stability selection shows.

Worlds: FactoredLQR on instance 7 (not the instance the presets were tuned on), FactoredNonlinear
with its default absolute-value cost (not quadratic), TwinReacher (squared distance before the
step) and TwinReacherPlain (gymnasium's unsquared distance after the step), all with the
acceptance sizes of docs/factored-worlds.md; and Reacher-v5.

    python benchmarks/cip_discovery.py [--samples 5000] [--seeds 5]

Writes runs/benchmarks/cip_discovery/results.json and table.md and prints the tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch as th

import causalrl.envs  # noqa: F401  (registers the worlds)
from causalrl.agents import CIP
from causalrl.core.metrics import structure_metrics

OUTPUT = Path("runs/benchmarks/cip_discovery")
LQR = dict(n_relevant_states=3, n_distractor_states=20, n_relevant_actions=2, n_irrelevant_actions=4)
WORLDS = {
    "FactoredLQR (instance 7)": ("causalrl/FactoredLQR-v0", dict(LQR, instance_seed=7)),
    "FactoredNonlinear (abs cost)": ("causalrl/FactoredNonlinear-v0", dict(LQR, instance_seed=7)),
    "TwinReacher (squared, before step)": ("causalrl/TwinReacher-v0", {}),
    "TwinReacherPlain (plain, after step)": ("causalrl/TwinReacherPlain-v0", {}),
    "Reacher-v5": ("Reacher-v5", {}),
}


def discover(env_id: str, kwargs: dict, samples: int, seed: int, resamples: int) -> CIP:
    env = gym.make(env_id, **kwargs)
    agent = CIP("MlpPolicy", env, seed=seed, learning_starts=samples, buffer_size=samples, discovery_samples=samples,
                discovery_interval=10 * samples, stability_resamples=resamples, policy_kwargs={"net_arch": [16]})
    agent.learn(samples)  # uniformly random actions until learning_starts: no update
    agent._discover()
    return agent


def jaccard(masks: list[np.ndarray]) -> float:
    pairs = [(a, b) for a, b in itertools.combinations(masks, 2)]
    return float(np.mean([(a & b).sum() / max((a | b).sum(), 1) for a, b in pairs])) if pairs else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    th.set_num_threads(1)
    results: dict = {"samples": args.samples, "seeds": args.seeds, "worlds": {}}
    lines = [f"CIP discovery on {args.samples} random-action transitions, seeds 0..{args.seeds - 1}", "",
             "| world | resamples | reward-mask F1 mean [min, max] | blocks exact / safe subset | state parents (seed 0) "
             "| mean Jaccard of state masks | seconds / round |", "|---|---|---|---|---|---|---|"]
    for label, (env_id, kwargs) in WORLDS.items():
        for resamples in ((10, 1) if env_id == "Reacher-v5" else (10,)):
            f1s, exact, safe, masks, seconds = [], 0, 0, [], []
            for seed in range(args.seeds):
                started = time.perf_counter()
                agent = discover(env_id, kwargs, args.samples, seed, resamples)
                seconds.append(time.perf_counter() - started)
                masks.append(agent.reward_state_mask.copy())
                truth = getattr(agent.env.envs[0].unwrapped, "causal_structure", None)
                if truth is not None:
                    learned = np.concatenate([agent.reward_state_mask, agent.reward_action_mask])[None]
                    true = np.concatenate([truth.state_to_reward[:, 0], truth.action_to_reward[:, 0]])[None]
                    f1s.append(structure_metrics(learned[..., None], true[..., None])["f1"])
                    true_blocks = [(s.tolist(), a.tolist()) for s, a in truth.closed_blocks()]
                    found = [(s.tolist(), a.tolist()) for s, a in agent.swap_blocks]
                    exact += found == true_blocks
                    true_states = {i for s, _ in true_blocks for i in s}
                    safe += all(set(s) <= true_states for s, _ in found)
            counts = np.sum(masks, axis=0).astype(int).tolist()
            entry = {"resamples": resamples, "f1": f1s, "blocks_exact": exact, "blocks_safe": safe,
                     "state_masks": [np.flatnonzero(m).tolist() for m in masks], "selection_counts": counts,
                     "jaccard": jaccard(masks), "seconds_per_round": float(np.mean(seconds)),
                     "augmentation_status": agent.augmentation_status}
            results["worlds"].setdefault(label, []).append(entry)
            f1_text = f"{np.mean(f1s):.3f} [{min(f1s):.3f}, {max(f1s):.3f}]" if f1s else "n/a (no ground truth)"
            block_text = f"{exact}/{args.seeds} / {safe}/{args.seeds}" if f1s else f"status: {agent.augmentation_status}"
            lines.append(f"| {label} | {resamples} | {f1_text} | {block_text} | {entry['state_masks'][0]} "
                         f"| {entry['jaccard']:.2f} | {entry['seconds_per_round']:.1f} |")
            print(lines[-1], flush=True)
            if env_id == "Reacher-v5":
                lines.append(f"|  | selection count per obs dim over {args.seeds} seeds | {counts} | | | | |")
    table = "\n".join(lines)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUTPUT / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
