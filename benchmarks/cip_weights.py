"""CIP's action weights across discovery rounds and seeds, read from finished run directories.

For every run directory under the given folders (a folder holding ``discovery.jsonl``, written by
``causalrl run`` for a CIP or ACE agent, docs/cip.md b.1), grouped by env:

- per run: the share of discovery rounds whose weights have max/min >= ``--ratio`` (1.5), the
  final round's weights (named by the env's MuJoCo actuators where it has them) and the final
  deterministic return (``eval/mean_reward`` of summary.json);
- per env: the mean over seed pairs of the Spearman rank correlation of the final weights (how
  consistent the weights are across seeds), and the share of all rounds with max/min >= ratio.

    python benchmarks/cip_weights.py runs/cip-weights/before [more folders ...] [--ratio 1.5] [--json out.json]

    python benchmarks/cip_weights.py --buffers FOLDER --basis quadratic [--window 1000]

recomputes every round from saved replay buffers instead (see ``buffer_rounds``). The numbers of
docs/cip.md (d), "Action weights on Hopper-v5 and HalfCheetah-v5", were made by this script from
``causalrl run cip-gym agents=cip env.id=<env> seed=<0..4> total_steps=10000 ...`` (the full
command is on that page).
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import re
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import spearmanr


def actuator_names(env_id: str, count: int) -> list[str]:
    """The env's MuJoCo actuator names (or, for an unnamed actuator, its joint's: ``thigh_joint``
    ...), or a0..a{count-1} where the env has no MuJoCo model."""
    try:
        import gymnasium as gym

        env = gym.make(env_id)
        try:
            model = env.unwrapped.model
            names = [model.actuator(i).name or model.joint(model.actuator_trnid[i, 0]).name for i in range(model.nu)]
        finally:
            env.close()
        if len(names) == count and all(names):
            return names
    except Exception:  # noqa: BLE001 - any env without a MuJoCo model (or not installed) keeps index names
        pass
    return [f"a{i}" for i in range(count)]


def read_run(run_dir: Path, ratio: float) -> dict | None:
    """One run's rounds: env, seed, per-round weights and ratios, final weights, final return."""
    rounds = [json.loads(line) for line in (run_dir / "discovery.jsonl").read_text().splitlines() if line.strip()]
    if not rounds:
        return None
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"status": "incomplete"}
    final_return = summary.get("final", {}).get("eval/mean_reward")
    ratios = np.array([r["action_weight_ratio"] for r in rounds])
    return {
        "run": str(run_dir), "env": config["env"]["id"], "seed": int(config["seed"]),
        "status": summary.get("status", "incomplete"), "rounds": len(rounds),
        "steps": [r["step"] for r in rounds], "ratios": ratios.tolist(),
        "share_ratio_at_least": float((ratios >= ratio).mean()),
        "final_weights": rounds[-1]["action_weights"], "final_step": rounds[-1]["step"],
        "final_action_parents": rounds[-1]["reward_action_parents"], "final_return": final_return,
    }


def mean_pairwise_spearman(weights: list[list[float]]) -> float:
    """Mean over all pairs of runs of the Spearman rank correlation of their weight vectors (NaN
    for a pair where one vector is constant: no ranking to compare)."""
    values = [spearmanr(a, b)[0] for a, b in itertools.combinations(weights, 2)]
    return float(np.mean(values)) if values else float("nan")


def summarise(runs: list[dict], ratio: float) -> dict:
    """Per env: the runs (by seed), the share of all rounds with max/min >= ratio, the mean
    pairwise Spearman of the final weights and the mean final return."""
    table = {}
    for env in sorted({run["env"] for run in runs}):
        group = sorted((run for run in runs if run["env"] == env), key=lambda run: run["seed"])
        all_ratios = np.concatenate([run["ratios"] for run in group])
        finals = [run["final_weights"] for run in group]
        returns = [run["final_return"] for run in group if run["final_return"] is not None]
        table[env] = {
            "names": actuator_names(env, len(finals[0])), "runs": group,
            "share_rounds_ratio_at_least": float((all_ratios >= ratio).mean()),
            "runs_with_most_rounds_at_least": int(sum(run["share_ratio_at_least"] > 0.5 for run in group)),
            "mean_pairwise_spearman": mean_pairwise_spearman(finals),
            "mean_final_weights": np.mean(finals, axis=0).tolist(),
            "mean_final_return": float(np.mean(returns)) if returns else None,
        }
    return table


def buffer_rounds(path: Path, window: int, interval: int, seed: int, basis: str = "interactions") -> list[dict]:
    """The discovery rounds of a run recomputed on its replay buffer (an SB3 ``replay_buffer.pkl``
    of the run's last checkpoint, one env): at steps interval, 2 interval, ... up to the
    transitions stored, each on the ``window`` transitions before it (all of them when fewer),
    rows most recent first and seeded as the agent seeds round k ([seed, k - 1]), with the
    default discovery settings (those of preset cip-gym) and ``discovery_basis=basis``. With the
    run's ``discovery_samples`` and basis this reproduces the run's own rounds; another window or
    basis shows what that estimator gives on the same data."""
    from causalrl.agents.cip.discovery import DiscoverySettings, discover

    with open(path, "rb") as handle:  # a checkpoint this project's runner wrote
        buffer = pickle.load(handle)
    stored = buffer.buffer_size if buffer.full else buffer.pos
    rounds = []
    for index, step in enumerate(range(interval, stored + 1, interval)):
        rows = np.arange(step - 1, max(0, step - window) - 1, -1)
        data = (buffer.observations[rows, 0].astype(float), buffer.actions[rows, 0].astype(float),
                buffer.rewards[rows, 0].astype(float), buffer.next_observations[rows, 0].astype(float),
                (buffer.dones[rows, 0] * (1 - buffer.timeouts[rows, 0])).astype(float))
        found = discover(data, DiscoverySettings(basis=basis), [seed, index])
        weights = np.asarray(found.action_weights, dtype=float)
        rounds.append({"step": step, "action_weights": weights.tolist(),
                       "action_weight_ratio": float(weights.max() / weights.min()),
                       "reward_action_parents": np.flatnonzero(found.reward_action_mask).tolist()})
    return rounds


def read_buffer(path: Path, window: int, interval: int, ratio: float, basis: str) -> dict:
    """:func:`read_run`'s record for a run recomputed from its buffer; ``path``'s name holds the
    run directory's (``<env>__<agent>__s<seed>__<time>``)."""
    match = re.search(r"([^_].*?)__([a-z-]+)__s(\d+)__", path.name)
    if match is None:
        raise SystemExit(f"{path}: the file name must hold the run directory's name, <env>__<agent>__s<seed>__<time>")
    env, seed = match.group(1).split("__")[-1], int(match.group(3))
    rounds = buffer_rounds(path, window, interval, seed, basis)
    ratios = np.array([r["action_weight_ratio"] for r in rounds])
    return {"run": str(path), "env": env, "seed": seed, "status": f"recomputed, window {window}, basis {basis}",
            "rounds": len(rounds), "steps": [r["step"] for r in rounds], "ratios": ratios.tolist(),
            "share_ratio_at_least": float((ratios >= ratio).mean()), "final_weights": rounds[-1]["action_weights"],
            "final_step": rounds[-1]["step"], "final_action_parents": rounds[-1]["reward_action_parents"],
            "final_return": None}


def print_table(table: dict, ratio: float) -> None:
    for env, row in table.items():
        print(f"\n## {env}: {len(row['runs'])} runs; rounds with max/min >= {ratio}: "
              f"{row['share_rounds_ratio_at_least']:.0%} of all, most rounds in {row['runs_with_most_rounds_at_least']}"
              f"/{len(row['runs'])} runs; mean pairwise Spearman of final weights {row['mean_pairwise_spearman']:.2f}")
        print("| seed | rounds >= ratio | final weights (" + ", ".join(row["names"]) + ") | final max/min "
              "| action parents | final return |")
        print("|---|---|---|---|---|---|")
        for run in row["runs"]:
            weights = ", ".join(f"{w:.2f}" for w in run["final_weights"])
            final_return = "-" if run["final_return"] is None else f"{run['final_return']:.1f}"
            parents = " ".join(row["names"][j] for j in run["final_action_parents"]) or "none"
            print(f"| {run['seed']} | {sum(r >= ratio for r in run['ratios'])}/{run['rounds']} | {weights} "
                  f"| {run['ratios'][-1]:.2f} | {parents} | {final_return} |")
        mean = ", ".join(f"{w:.2f}" for w in row["mean_final_weights"])
        print(f"| mean | | {mean} | | | "
              f"{'-' if row['mean_final_return'] is None else format(row['mean_final_return'], '.1f')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders searched for run directories")
    parser.add_argument("--ratio", type=float, default=1.5, help="max/min weight ratio that counts as non-uniform")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    parser.add_argument("--include-incomplete", action="store_true", help="also runs that have not finished")
    parser.add_argument("--buffers", action="store_true",
                        help="the folders hold replay_buffer.pkl copies (named <env>__<agent>__s<seed>__...pkl): "
                        "recompute the rounds from them with --window")
    parser.add_argument("--window", type=int, default=1000, help="with --buffers: transitions per round")
    parser.add_argument("--interval", type=int, default=1000, help="with --buffers: env steps between rounds")
    parser.add_argument("--basis", default="interactions", choices=("interactions", "quadratic", "linear"),
                        help="with --buffers: discovery_basis (docs/cip.md b.1)")
    args = parser.parse_args()
    if args.buffers:
        runs = [read_buffer(path, args.window, args.interval, args.ratio, args.basis) for folder in args.folders
                for path in sorted(folder.glob("*.pkl"))]
    else:
        runs = [read_run(path.parent, args.ratio) for folder in args.folders
                for path in sorted(folder.rglob("discovery.jsonl"))]
    runs = [run for run in runs if run is not None and (args.include_incomplete or run["status"] != "incomplete")]
    if not runs:
        raise SystemExit(f"no run directory with discovery rounds under {', '.join(map(str, args.folders))}")
    table = summarise(runs, args.ratio)
    print_table(table, args.ratio)
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
