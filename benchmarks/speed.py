"""Wall time per env step of RLIF, CIP and batched SAC against Stable-Baselines3's SAC, each pair
measured in the same run (docs/batched.md).

Every comparison trains its agents in alternating chunks in one process on one torch thread
(the protocol of benchmarks/cip_speed.py), so a noisy, shared machine slows them alike. Each
agent first runs ``--warmup`` steps untimed (at least ``learning_starts``, so every timed step
trains); its time per step is then its total wall time over the timed steps (env stepping,
acting, storing and training). The table also gives the median over alternation rounds of the
ratio within a round (both agents of a pair ran back to back there, under the same load).

1. ``rlif``: RLIF (its 10 LayerNorm critics held as one batched ensemble, utd_ratio 1) against
   SB3 SAC with the same ``--net-arch``, both on ``causalrl/FactoredLQRIntervention-v0`` (the
   same wrapped world: SAC learns from its task reward), eager and with ``compile_critics=True``
   (compiled during the warm-up; the JSON keeps each agent's warm-up seconds). Target: at most
   1.5x. Also RLIF with SAC's critics (2, no LayerNorm): RLIF's own per-step work (labelling,
   storing, judge logging) on its SAC backbone (fused Adam, a leaner sampler, docs/rlif.md (b)
   "Ensemble"), without its ensemble.
2. ``cip``: CIP with policy_delay=1 against SB3 SAC (the same actor schedule; target: at most
   1.1x), and CIP (actor every 2nd update) against ``DelayedSAC`` (the same schedule on CIP's own
   SAC backbone), with ``--net-arch``, on ``--cip-env`` (default Pendulum-v1, ``--cip-steps``
   3000 in chunks of 250 as docs/cip.md's speed table; on causalrl/FactoredLQR-v0 with 20
   distractor states and 4 irrelevant actions); discovery every third of the timed steps on as
   many transitions, empowerment from update 0. Where the difference comes from: SAC on CIP's
   backbone (``DelayedSAC`` with policy_delay=1: batched twin critics, fused Adam, docs/cip.md
   b.0) and CIP on SB3's ``SACPolicy``, both against SB3 SAC; CIP with its empowerment term, then
   its discovery rounds, switched off, against ``DelayedSAC``.
3. ``seeds``: ``BatchedSAC`` with K seeds in one process against one SB3 SAC run on
   Pendulum-v1. K sequential SB3 runs take K times one run's time per step, so the gain in seeds
   per second is K t_sb3 / t_batched. K = 5 and 10 at (64, 64) (target for K = 10: at least 3x),
   and K = 10 at (256, 256) (``--large-steps``, no target).

    python benchmarks/speed.py [--parts rlif cip seeds] [--steps 1200] [--chunk 100]
        [--warmup 150] [--net-arch 64 64] [--large-steps 150] [--cip-env Pendulum-v1]
        [--cip-steps 3000] [--cip-chunk 250]

Writes runs/benchmarks/speed.json (the load average before and after each part included) and
prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

import causalrl.envs  # noqa: F401  (registers the worlds)
from causalrl.agents.batched_sac import BatchedSAC

OUTPUT = Path("runs/benchmarks/speed.json")
CIP_ENV_KWARGS = {"causalrl/FactoredLQR-v0": {"n_distractor_states": 20, "n_irrelevant_actions": 4}}


def fresh(net_arch: list[int], seed: int | None = None, **policy) -> dict:
    """Keyword arguments for one agent, in a dict of its own: SB3 writes into the policy_kwargs it
    is given (``use_sde``), which BatchedSAC then refuses, so agents never share one."""
    seeded = {} if seed is None else {"seed": seed}
    return {**seeded, "learning_starts": 100, "policy_kwargs": {"net_arch": list(net_arch), **policy}}


def race(agents: dict[str, Callable[[], object]], baseline: dict[str, str], steps: int, chunk: int,
         warmup: int) -> dict:
    """Build the agents, run ``warmup`` untimed steps each, then ``steps`` timed steps each in
    alternating chunks. Returns ms per step and the ratios to each agent's baseline."""
    built = {name: make() for name, make in agents.items()}
    warmup_seconds = {}
    for name, agent in built.items():
        if hasattr(agent, "set_logger"):
            agent.set_logger(configure(None, []))
        started = time.perf_counter()
        agent.learn(warmup)  # a compiled agent compiles here, at its first update
        warmup_seconds[name] = time.perf_counter() - started
    seconds, done, rounds = dict.fromkeys(built, 0.0), dict.fromkeys(built, 0), []
    while min(done.values()) < steps:
        rounds.append({})
        for name, agent in built.items():
            count = min(chunk, steps - done[name])
            started = time.perf_counter()
            agent.learn(count, reset_num_timesteps=False)
            rounds[-1][name] = (time.perf_counter() - started) / count
            seconds[name] += time.perf_counter() - started
            done[name] += count
    per_step = {name: seconds[name] / done[name] for name in built}
    return {
        "ms_per_step": {name: 1000 * value for name, value in per_step.items()},
        "ratio": {name: per_step[name] / per_step[baseline[name]] for name in built},
        "ratio_round_median": {name: float(np.median([r[name] / r[baseline[name]] for r in rounds]))
                               for name in built},
        "baseline": baseline, "rounds": len(rounds), "warmup_seconds": warmup_seconds,
    }


def rlif_part(args) -> dict:
    from causalrl.agents.rlif import RLIF

    def world():
        return gym.make("causalrl/FactoredLQRIntervention-v0", expert_level="weak")

    common = partial(fresh, args.net_arch, args.seed)  # a new dict per agent
    agents = {"sac": lambda: SAC("MlpPolicy", world(), **common()),
              "rlif": lambda: RLIF("MlpPolicy", world(), utd_ratio=1, **common()),
              "rlif (compiled critics)": lambda: RLIF("MlpPolicy", world(), utd_ratio=1, compile_critics=True,
                                                      **common()),
              # SAC's critics exactly (2, no LayerNorm): RLIF's own per-step cost without its ensemble
              "rlif (2 critics, no LayerNorm)": lambda: RLIF("MlpPolicy", world(), utd_ratio=1, n_critics=2,
                                                             **common(critic_layer_norm=False))}
    result = race(agents, dict.fromkeys(agents, "sac"), args.steps, args.chunk, args.warmup)
    result["targets"] = {"rlif": ("<=", 1.5, "ratio"), "rlif (compiled critics)": ("<=", 1.5, "ratio")}
    return result


def cip_part(args) -> dict:
    from stable_baselines3.sac.policies import SACPolicy

    from causalrl.agents import CIP, DelayedSAC

    def world():
        return gym.make(args.cip_env, **CIP_ENV_KWARGS.get(args.cip_env, {}))

    interval = max(args.cip_steps // 3, 10)  # discovery every third of the run, on as many transitions
    discovery = {"discovery_interval": interval, "discovery_samples": interval}

    common = partial(fresh, args.net_arch, args.seed)  # a new dict per agent
    agents = {
        "sac": lambda: SAC("MlpPolicy", world(), **common()),
        "cip-delay1": lambda: CIP("MlpPolicy", world(), empowerment_warmup=0, policy_delay=1, **common(), **discovery),
        # where the gain over SB3 comes from: CIP's SAC backbone (batched twin critics, fused
        # Adam) without CIP's parts, and CIP on SB3's own policy
        "sac-delay1 (CIP's backbone)": lambda: DelayedSAC("MlpPolicy", world(), policy_delay=1, **common()),
        "cip-delay1 (SB3's SACPolicy)": lambda: CIP(SACPolicy, world(), empowerment_warmup=0, policy_delay=1,
                                                    **common(), **discovery),
        "sac-delayed": lambda: DelayedSAC("MlpPolicy", world(), **common()),
        "cip": lambda: CIP("MlpPolicy", world(), empowerment_warmup=0, **common(), **discovery),
        # where CIP's extra time goes: each of its two costly parts switched off in turn
        "cip (empowerment off)": lambda: CIP("MlpPolicy", world(), empowerment=False, **common(), **discovery),
        "cip (discovery off)": lambda: CIP("MlpPolicy", world(), empowerment_warmup=0, discovery=None, **common()),
    }
    baseline = dict.fromkeys(agents, "sac")  # the delay-2 agents against SAC with their schedule
    baseline.update(dict.fromkeys(["sac-delayed", "cip", "cip (empowerment off)", "cip (discovery off)"], "sac-delayed"))
    result = race(agents, baseline, args.cip_steps, args.cip_chunk, args.warmup)
    result["env"] = args.cip_env
    result["targets"] = {"cip-delay1": ("<=", 1.1, "ratio")}
    return result


def seeds_part(args, net_arch: list[int], counts: list[int], steps: int, chunk: int) -> dict:
    agents = {"sb3-sac (1 seed)": lambda: SAC("MlpPolicy", "Pendulum-v1", **fresh(net_arch, args.seed))}
    for count in counts:
        seeds = list(range(args.seed, args.seed + count))
        agents[f"batched K={count}"] = lambda seeds=seeds: BatchedSAC("Pendulum-v1", seeds, device="cpu",
                                                                                     **fresh(net_arch))
    baseline = dict.fromkeys(agents, "sb3-sac (1 seed)")
    result = race(agents, baseline, steps, chunk, args.warmup)
    # seeds per second relative to sequential SB3 runs: K t_sb3 / t_batched
    result["seeds_per_second_gain"] = {
        name: int(name.split("=")[1]) / result["ratio"][name] for name in agents if name.startswith("batched")}
    result["seeds_per_second_gain_round_median"] = {
        name: int(name.split("=")[1]) / result["ratio_round_median"][name] for name in agents
        if name.startswith("batched")}
    result["net_arch"] = net_arch
    if net_arch == [64, 64] and 10 in counts:
        result["targets"] = {"batched K=10": (">=", 3.0, "seeds_per_second_gain")}
    return result


def table(results: dict) -> str:
    header = "| part | agent | ms / step | baseline | ratio (total) | ratio (round median) | seeds/s gain | target |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for part, result in results["parts"].items():
        for name, ms in result["ms_per_step"].items():
            gain = result.get("seeds_per_second_gain", {}).get(name)
            verdict = ""
            if name in result.get("targets", {}):
                operator, bound, metric = result["targets"][name]
                value = result[metric][name]
                met = (value <= bound) == (operator == "<=")
                verdict = f"{metric} {operator} {bound}: {'met' if met else 'NOT met'}"
            lines.append(f"| {part} | {name} | {ms:.2f} | {result['baseline'][name]} | {result['ratio'][name]:.2f} "
                         f"| {result['ratio_round_median'][name]:.2f} | {'' if gain is None else f'{gain:.2f}'} "
                         f"| {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["rlif", "cip", "seeds"], choices=["rlif", "cip", "seeds"])
    parser.add_argument("--steps", type=int, default=1200, help="timed env steps per agent")
    parser.add_argument("--chunk", type=int, default=100, help="steps per alternation")
    parser.add_argument("--warmup", type=int, default=150, help="untimed steps per agent first (>= learning_starts)")
    parser.add_argument("--net-arch", type=int, nargs="+", default=[64, 64], help="rlif and cip widths")
    parser.add_argument("--large-steps", type=int, default=150, help="timed steps of the (256, 256) seeds part")
    parser.add_argument("--cip-env", default="Pendulum-v1", help="env of the cip part (docs/cip.md's speed table)")
    parser.add_argument("--cip-steps", type=int, default=3000, help="timed steps per agent of the cip part")
    parser.add_argument("--cip-chunk", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch_threads": 1,
               "arguments": vars(args), "parts": {}, "load_average": {}}
    runs = {"rlif": [("rlif", lambda: rlif_part(args))], "cip": [("cip", lambda: cip_part(args))],
            "seeds": [("seeds (64, 64)", lambda: seeds_part(args, [64, 64], [5, 10], args.steps, args.chunk)),
                      ("seeds (256, 256)", lambda: seeds_part(args, [256, 256], [10], args.large_steps,
                                                              max(args.large_steps // 3, 1)))]}
    for part in args.parts:
        for name, run in runs[part]:
            before = os.getloadavg()
            results["parts"][name] = run()
            results["load_average"][name] = {"before": before, "after": os.getloadavg()}
    text = table(results)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    loads = ", ".join(f"{name} {v['before'][0]:.1f} -> {v['after'][0]:.1f}"
                      for name, v in results["load_average"].items())
    print(text + f"\n\n1-min load average ({os.cpu_count()} CPUs): {loads}")


if __name__ == "__main__":
    main()
