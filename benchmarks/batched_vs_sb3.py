"""Is BatchedSAC the same algorithm as SB3's SAC? Final returns of K seeds trained in one process
(``vectorize_seeds: true``) against K seeds of SB3's SAC, one process each, same config.

    causalrl sweep benchmarks/sweeps/sac-batched-10k.yaml --workers 1
    causalrl sweep benchmarks/sweeps/sac-sb3-10k.yaml --workers 2
    python benchmarks/batched_vs_sb3.py runs/sweeps/sac-batched-10k runs/sweeps/sac-sb3-10k

Each run's saved model plays ``--episodes`` evaluation episodes alone, deterministically (the
runner's evaluation seeds, as ``causalrl evaluate``); per env and side the table shows the IQM of
the per-seed mean returns with its 95% stratified-bootstrap CI, and whether the two CIs overlap.
The seeds' numbers differ between the sides (BatchedSAC draws its own random streams; see
docs/batched.md), so the claim is about distributions, not seed by seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from causalrl.api import evaluate
from causalrl.core.stats import stratified_bootstrap_ci


def _final_returns(sweep_dir: Path, episodes: int) -> dict[str, list[float]]:
    """env id -> the mean evaluation return of every complete run in ``sweep_dir``."""
    returns: dict[str, list[float]] = {}
    for run_dir in sorted(path.parent for path in sweep_dir.glob("*/summary.json")):
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        evaluation = evaluate(run_dir, episodes=episodes, deterministic=True)
        returns.setdefault(config["env"]["id"], []).append(float(evaluation.mean))
    if not returns:
        raise SystemExit(f"{sweep_dir}: no complete runs (run its sweep first)")
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("batched", type=Path, help="the sweep directory of the vectorize_seeds sweep")
    parser.add_argument("sb3", type=Path, help="the sweep directory of the one-process-per-seed sweep")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per run (default 10)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/batched_vs_sb3.json"))
    args = parser.parse_args()
    sides = {"BatchedSAC": _final_returns(args.batched, args.episodes), "SB3 SAC": _final_returns(args.sb3, args.episodes)}
    rows = []
    print("| env | side | seeds | IQM of final return [95% CI] |")
    print("|---|---|---|---|")
    for env in sorted(set(sides["BatchedSAC"]) & set(sides["SB3 SAC"])):
        intervals = []
        for side, returns in sides.items():
            point, low, high = stratified_bootstrap_ci(np.asarray(returns[env])[:, None])
            intervals.append((float(low), float(high)))
            rows.append({"env": env, "side": side, "returns": returns[env], "iqm": float(point), "ci": [low, high]})
            print(f"| {env} | {side} | {len(returns[env])} | {point:.1f} [{low:.1f}, {high:.1f}] |")
        overlap = max(intervals[0][0], intervals[1][0]) <= min(intervals[0][1], intervals[1][1])
        print(f"| {env} | CIs overlap | | {'yes' if overlap else 'NO'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
