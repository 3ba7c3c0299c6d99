"""Long CIP benchmark: CIP vs ACE vs SAC vs SAC with CIP's actor schedule (sac-delayed) on TwinReacher and
HalfCheetahDistractors, 100k env steps x 5 seeds by default. Sized for a bigger machine; on a
laptop run a smoke version (``--steps 500 --seeds 1``).

Every (env, agent, seed) is one ordinary run of ``causalrl.experiment.run.runner.run`` (run directories under
``--output-dir``/cip-long/), so progress.csv holds the shared metrics: the episode-return curve,
``structure/f1`` of the learned reward masks against the env's ground truth after each
discovery round, and ``causal/weights/*``. Runs are sequential (one training process at a time).
The summary reports, per env and agent, the mean and range over seeds of the final
``reward/episode_return_mean`` and the F1 after the first and second discovery rounds.

    python benchmarks/cip_long.py [--steps 100000] [--seeds 5] [--agents cip ace sac]
                                  [--envs causalrl/TwinReacher-v0 causalrl/HalfCheetahDistractors-v0]
                                  [--discovery-interval 10000] [--output-dir runs/benchmarks]

Writes <output-dir>/cip_long/results.json and table.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from causalrl.experiment.config import AgentConfig, EnvConfig, RunConfig
from causalrl.experiment.run.runner import run

DEFAULT_ENVS = ["causalrl/TwinReacher-v0", "causalrl/HalfCheetahDistractors-v0"]
CAUSAL_AGENTS = ("cip", "ace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..n-1")
    parser.add_argument("--agents", nargs="+", default=["cip", "ace", "sac", "sac-delayed"])
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    parser.add_argument("--discovery-interval", type=int, default=10_000,
                        help="K = N_c; capped at half the run so a short run still discovers")
    parser.add_argument("--learning-starts", type=int, default=10_000, help="capped at a fifth of the run")
    parser.add_argument("--output-dir", default="runs/benchmarks")
    args = parser.parse_args()

    interval = max(10, min(args.discovery_interval, args.steps // 2))
    learning_starts = min(args.learning_starts, args.steps // 5)
    records = []
    for env_id in args.envs:
        for agent in args.agents:
            kwargs = {"learning_starts": learning_starts}
            if agent in CAUSAL_AGENTS:
                kwargs.update(discovery_interval=interval, discovery_samples=interval)
            for seed in range(args.seeds):
                config = RunConfig(
                    env=EnvConfig(env_id, {}), agent=AgentConfig(agent, None, kwargs), experiment="cip-long",
                    seed=seed, total_steps=args.steps, log_interval=max(args.steps // 100, 50),
                    output_dir=str(Path(args.output_dir)), progress_bar=False, save_model=False,
                )
                started = time.perf_counter()
                result = run(config)
                progress = pd.read_csv(result.run_dir / "progress.csv")
                f1 = []
                if "structure/f1" in progress and "causal/discovery_rounds" in progress:
                    rounds = progress[["causal/discovery_rounds", "structure/f1"]].dropna()
                    f1 = rounds.groupby("causal/discovery_rounds")["structure/f1"].first().tolist()
                returns = progress.get("reward/episode_return_mean", pd.Series(dtype=float)).dropna()
                records.append({
                    "env": env_id, "agent": agent, "seed": seed, "run_dir": str(result.run_dir),
                    "final_return": float(returns.iloc[-1]) if len(returns) else None,
                    "f1_by_round": f1, "wall_s": round(time.perf_counter() - started, 1),
                })
                print(json.dumps(records[-1]), flush=True)

    lines = [f"CIP long benchmark: {args.steps} steps x {args.seeds} seeds", "",
             "| env | agent | final return (mean [min, max]) | F1 round 1 | F1 round 2 | wall s / run |",
             "|---|---|---|---|---|---|"]
    for env_id in args.envs:
        for agent in args.agents:
            rows = [r for r in records if r["env"] == env_id and r["agent"] == agent]
            finals = [r["final_return"] for r in rows if r["final_return"] is not None]
            ret = f"{np.mean(finals):.1f} [{min(finals):.1f}, {max(finals):.1f}]" if finals else "n/a"
            f1 = [np.mean([r["f1_by_round"][k] for r in rows if len(r["f1_by_round"]) > k] or [np.nan]) for k in (0, 1)]
            wall = np.mean([r["wall_s"] for r in rows])
            lines.append(f"| {env_id} | {agent} | {ret} | {f1[0]:.3f} | {f1[1]:.3f} | {wall:.0f} |")
    table = "\n".join(lines)
    folder = Path(args.output_dir) / "cip_long"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"args": vars(args), "runs": records}, indent=2) + "\n")
    (folder / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
