"""CIP against SAC on gymnasium envs no CIP test was tuned on: paired differences and the ablation (docs/cip.md (d)).

Reads the run directories of one or more ``sweep-cip-gym`` sweep folders (``causalrl sweep
sweep-cip-gym``; any subset of its agents and seeds, e.g. seeds split over two sweeps) and, per
env, compares final scores seed by seed:

- the paired difference CIP - SAC and CIP - SAC with CIP's actor schedule (``sac-delayed``):
  mean over the seeds both ran, with a 95% percentile bootstrap CI (2000 resamples of the
  seeds). CIP is "significantly below" a baseline when the whole CI lies below 0;
- the ablation: IQM [95% stratified-bootstrap CI] of ``sac-delayed`` (no causal part), ``ace``
  (causal weights only), ``cip-no-empowerment`` (+ counterfactual augmentation) and ``cip``
  (+ empowerment), and of SB3's ``sac``.

The score is the final ``eval/deterministic_normalised_score`` where the world has one
(FactoredLQR), else ``eval/deterministic_return_mean``.

    python benchmarks/cip_gym_summary.py [runs/sweeps/cip-gym ...] [--output-dir runs/benchmarks]

Writes <output-dir>/cip_gym/results.json, table.md and paired_differences.png, and prints the
tables. It only reads finished runs; it trains nothing.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from causalrl.core.stats import iqm, stratified_bootstrap_ci

ABLATION = ("sac", "sac-delayed", "ace", "cip-no-empowerment", "cip")
BASELINES = ("sac", "sac-delayed")


def final_scores(sweep_dirs: list[Path]) -> dict[str, dict[str, dict[int, float]]]:
    """env label -> agent -> seed -> final score, from every finished run in ``sweep_dirs``."""
    scores: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for summary_path in sorted(path for folder in sweep_dirs for path in folder.glob("*/summary.json")):
        config = yaml.safe_load((summary_path.parent / "config.yaml").read_text())
        final = json.loads(summary_path.read_text()).get("final", {})
        score = final.get("eval/deterministic_normalised_score", final.get("eval/deterministic_return_mean"))
        if score is None:
            continue
        env = config["env"]
        label = env["id"] + (f" (instance {env['instance_seed']})" if "instance_seed" in env else "")
        scores[label][config["agent"]["name"]][int(config["seed"])] = float(score)
    return scores


def paired_difference(mine: dict[int, float], theirs: dict[int, float], rng: np.random.Generator) -> dict:
    seeds = sorted(set(mine) & set(theirs))
    if not seeds:
        return {"n": 0}
    differences = np.array([mine[seed] - theirs[seed] for seed in seeds])
    means = differences[rng.integers(0, len(seeds), size=(2000, len(seeds)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"n": len(seeds), "mean": float(differences.mean()), "ci": [float(low), float(high)],
            "significantly_below": bool(high < 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dirs", nargs="*", default=["runs/sweeps/cip-gym"])
    parser.add_argument("--output-dir", default="runs/benchmarks")
    args = parser.parse_args()
    sweep_dirs = [Path(folder) for folder in args.sweep_dirs]
    for folder in sweep_dirs:
        if not folder.is_dir():
            raise SystemExit(f"sweep_dirs: {folder} is not a directory; run `causalrl sweep sweep-cip-gym` first")
    scores = final_scores(sweep_dirs)
    if not scores:
        raise SystemExit(f"sweep_dirs: no finished run with an evaluation score in {', '.join(args.sweep_dirs)}")
    rng = np.random.default_rng(0)
    results = {}
    for env, agents in sorted(scores.items()):
        ablation = {}
        for name in ABLATION:
            values = np.array(list(agents.get(name, {}).values()))
            if len(values):
                _, low, high = stratified_bootstrap_ci(values, reps=2000, seed=0) if len(values) > 1 \
                    else (None, float("nan"), float("nan"))
                ablation[name] = {"n": len(values), "iqm": float(iqm(values)), "ci": [float(low), float(high)]}
        paired = {base: paired_difference(agents.get("cip", {}), agents.get(base, {}), rng) for base in BASELINES}
        results[env] = {"ablation": ablation, "cip_minus": paired}

    lines = [f"CIP on gymnasium envs ({', '.join(args.sweep_dirs)}): final deterministic return (FactoredLQR: normalised score)", "",
             "Paired difference CIP - baseline, mean over seeds [95% bootstrap CI]; below = CI entirely below 0", "",
             "| env | CIP - SAC (n) | below? | CIP - SAC-delayed (n) | below? |", "|---|---|---|---|---|"]
    for env, result in results.items():
        cells = []
        for base in BASELINES:
            pair = result["cip_minus"][base]
            cells += ["-", "-"] if not pair["n"] else [
                f"{pair['mean']:+.3g} [{pair['ci'][0]:+.3g}, {pair['ci'][1]:+.3g}] ({pair['n']})",
                "**yes**" if pair["significantly_below"] else "no"]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    lines += ["", "Ablation, IQM [95% stratified-bootstrap CI] (seeds)", "",
              "| env | " + " | ".join(ABLATION) + " |", "|---|" + "---|" * len(ABLATION)]
    for env, result in results.items():
        cells = [(f"{cell['iqm']:.3g} [{cell['ci'][0]:.3g}, {cell['ci'][1]:.3g}] ({cell['n']})"
                  if (cell := result["ablation"].get(name)) else "-") for name in ABLATION]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.output_dir) / "cip_gym"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"sweep_dirs": args.sweep_dirs, "envs": results,
                                                  "scores": {e: {a: v for a, v in s.items()} for e, s in scores.items()}},
                                                 indent=2) + "\n")
    plot(results, out / "paired_differences.png")
    print(f"wrote {out}/results.json, table.md, paired_differences.png")


def plot(results: dict, path: Path) -> None:
    """One panel per baseline: the paired difference CIP - baseline per env with its CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(results)
    figure, axes = plt.subplots(1, len(BASELINES), figsize=(5.5 * len(BASELINES), 0.6 * len(envs) + 1.6), sharey=True)
    for axis, base in zip(np.atleast_1d(axes), BASELINES):
        for row, env in enumerate(envs):
            pair = results[env]["cip_minus"][base]
            if pair["n"]:
                low, high = pair["ci"]
                axis.errorbar(pair["mean"], row, xerr=[[pair["mean"] - low], [high - pair["mean"]]], fmt="o",
                              color="C3" if pair["significantly_below"] else "C0", capsize=3)
        axis.axvline(0, color="grey", linestyle=":")
        axis.set(title=f"CIP - {base} (mean over seeds, 95% CI)", xlabel="paired difference of final score",
                 yticks=range(len(envs)), yticklabels=envs)
        axis.set_xscale("symlog", linthresh=1.0)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
