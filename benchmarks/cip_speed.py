"""Wall time per env step of CIP against SAC at the same actor-update schedule, measured in the same run.

The agents are trained in alternating chunks (SAC, CIP with policy_delay=1, SAC with
policy_delay=2, CIP, SAC, ...) in
one process on one thread, so a noisy, shared machine slows them alike; each agent's time per
step is its total wall time over its steps (env stepping, acting, storing and training,
discovery included: by default a discovery round every third of the run, more often than the
10k-step default, so its amortised cost is overstated, not hidden).

    python benchmarks/cip_speed.py [--steps 3000] [--chunk 250] [--env causalrl/FactoredLQR-v0]
        [--net-arch 256 256]

``--net-arch`` sets the actor and critic widths of all four (default SB3's (256, 256); the
cip presets use 64 64); CIP's inverse and forward models take the actor's widths (its default).

Besides the ratio of total times, the table gives the median over alternation rounds of the
ratio within a round (both agents of a pair ran back to back there, under the same load).

Writes runs/benchmarks/cip_speed/results.json and table.md (results_64x64.json ... for other
widths) and prints the table. Pairs compared at the same schedule (the ratio that counts):

- ``cip-delay1`` (actor, temperature and models every update) against ``sac`` (SB3's SAC, actor
  every update);
- ``cip`` (its default, every 2nd update, docs/cip.md b.4) against ``sac-delayed`` (SAC with
  the same schedule, ``causalrl.agents.cip.DelayedSAC``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC

import causalrl.envs  # noqa: F401  (registers the worlds)
from causalrl.agents import CIP, DelayedSAC

OUTPUT = Path("runs/benchmarks/cip_speed")
ENV_KWARGS = {"causalrl/FactoredLQR-v0": dict(n_distractor_states=20, n_irrelevant_actions=4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="env steps per agent")
    parser.add_argument("--chunk", type=int, default=250, help="steps per alternation")
    parser.add_argument("--env", default="causalrl/FactoredLQR-v0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--net-arch", type=int, nargs="+", default=[256, 256])
    args = parser.parse_args()
    th.set_num_threads(1)

    discovery = dict(discovery_interval=max(args.steps // 3, 10), discovery_samples=max(args.steps // 3, 10))
    common = dict(seed=args.seed, learning_starts=100, policy_kwargs={"net_arch": args.net_arch})
    variants = {
        "sac": lambda env: SAC("MlpPolicy", env, **common),
        "cip-delay1": lambda env: CIP("MlpPolicy", env, empowerment_warmup=0, policy_delay=1, **common, **discovery),
        "sac-delayed": lambda env: DelayedSAC("MlpPolicy", env, **common),
        "cip": lambda env: CIP("MlpPolicy", env, empowerment_warmup=0, **common, **discovery),
    }
    baseline = {"sac": "sac", "cip-delay1": "sac", "sac-delayed": "sac-delayed", "cip": "sac-delayed"}
    agents = {name: make(gym.make(args.env, **ENV_KWARGS.get(args.env, {}))) for name, make in variants.items()}
    seconds = dict.fromkeys(agents, 0.0)
    done = dict.fromkeys(agents, 0)
    rounds = []  # per alternation round: each agent's seconds for its chunk
    while min(done.values()) < args.steps:
        rounds.append({})
        for name, agent in agents.items():
            steps = min(args.chunk, args.steps - done[name])
            started = time.perf_counter()
            agent.learn(steps, reset_num_timesteps=done[name] == 0)
            rounds[-1][name] = time.perf_counter() - started
            seconds[name] += rounds[-1][name]
            done[name] += steps
    per_step = {name: seconds[name] / done[name] for name in agents}
    # the ratio within each round, where both agents saw the same machine load; its median over
    # the rounds after the first (warm-up: no updates yet) resists load spikes in single rounds
    round_median = {name: float(np.median([r[name] / r[baseline[name]] for r in rounds[1:] or rounds]))
                    for name in agents}
    results = {
        "env": args.env, "steps_per_agent": args.steps, "chunk": args.chunk, "seed": args.seed,
        "net_arch": args.net_arch, "torch_threads": 1, "machine": platform.processor() or platform.machine(),
        "ms_per_step": {name: 1000 * value for name, value in per_step.items()},
        "ratio_to_sac": {name: per_step[name] / per_step["sac"] for name in agents},
        "ratio_same_schedule": {name: per_step[name] / per_step[baseline[name]] for name in agents},
        "ratio_same_schedule_round_median": round_median,
        "cip_discovery_rounds": agents["cip"].discovery_rounds,
    }
    lines = [f"CIP vs SAC wall time per env step on {args.env} ({args.steps} steps each, alternating chunks of "
             f"{args.chunk}, net_arch {args.net_arch})",
             "", "| agent | ms / step | ratio to SB3 SAC | baseline at the same schedule | ratio to it "
             "| median of per-round ratios |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {1000 * per_step[name]:.2f} | {per_step[name] / per_step['sac']:.2f} | {baseline[name]} "
              f"| {per_step[name] / per_step[baseline[name]]:.2f} | {round_median[name]:.2f} |" for name in agents]
    table = "\n".join(lines)
    suffix = "" if args.net_arch == [256, 256] else "_" + "x".join(map(str, args.net_arch))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"results{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUTPUT / f"table{suffix}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
