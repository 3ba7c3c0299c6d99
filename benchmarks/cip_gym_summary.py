"""CIP against SAC on gymnasium envs no CIP test was tuned on: paired differences and the ablation (docs/cip.md (d)).

Reads the run directories of one or more ``sweep-cip-gym`` sweep folders (``causalrl sweep
sweep-cip-gym``; any subset of its agents and seeds, e.g. seeds split over two sweeps), and of
``sweep-cip-gym-delay1`` (CIP with ``policy_delay=1``, labelled ``cip-delay1``) where given, and
per env compares final scores seed by seed:

- the paired differences CIP - SAC, CIP - SAC with CIP's actor schedule (``sac-delayed``) and
  cip-delay1 - SAC (both at SB3's schedule): mean over the seeds both ran, with a 95% percentile
  bootstrap CI (2000 resamples of the seeds). A variant is "significantly below" a baseline
  when the whole CI lies below 0. sac-delayed - SAC is what the actor delay alone costs;
- the ablation: IQM [95% stratified-bootstrap CI] of ``sac-delayed`` (no causal part), ``ace``
  (causal weights only), ``cip-no-empowerment`` (+ counterfactual augmentation) and ``cip``
  (+ empowerment), and of SB3's ``sac`` and ``cip-delay1``.

The score is the final ``eval/deterministic_normalised_score`` where the world has one
(FactoredLQR), else ``eval/deterministic_return_mean``.

    python benchmarks/cip_gym_summary.py [runs/sweeps/cip-gym runs/sweeps/cip-gym-delay1 ...] [--output-dir runs/benchmarks]

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

ABLATION = ("sac", "sac-delayed", "ace", "cip-no-empowerment", "cip", "cip-delay1")
#: (agent, baseline) pairs of the paired differences; the last one is what the actor delay alone costs
PAIRS = (("cip", "sac"), ("cip", "sac-delayed"), ("cip-delay1", "sac"), ("sac-delayed", "sac"))


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
        agent = config["agent"]["name"]
        if agent == "cip" and config["agent"].get("policy_delay") == 1:
            agent = "cip-delay1"  # sweep-cip-gym-delay1: CIP at SB3 SAC's actor schedule
        scores[label][agent][int(config["seed"])] = float(score)
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
        paired = {f"{mine} - {base}": paired_difference(agents.get(mine, {}), agents.get(base, {}), rng)
                  for mine, base in PAIRS}
        results[env] = {"ablation": ablation, "paired_differences": paired}

    lines = [f"CIP on gymnasium envs ({', '.join(args.sweep_dirs)}): final deterministic return (FactoredLQR: normalised score)", "",
             "Paired difference, mean over seeds [95% bootstrap CI]; below = CI entirely below 0", "",
             "| env | " + " | ".join(f"{mine} - {base} (n) | below?" for mine, base in PAIRS) + " |",
             "|---|" + "---|---|" * len(PAIRS)]
    for env, result in results.items():
        cells = []
        for pair in result["paired_differences"].values():
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
    """One panel per pair: the paired difference per env with its CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(results)
    names = [f"{mine} - {base}" for mine, base in PAIRS]
    figure, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 0.6 * len(envs) + 1.6), sharey=True)
    for axis, name in zip(np.atleast_1d(axes), names):
        for row, env in enumerate(envs):
            pair = results[env]["paired_differences"][name]
            if pair["n"]:
                low, high = pair["ci"]
                axis.errorbar(pair["mean"], row, xerr=[[pair["mean"] - low], [high - pair["mean"]]], fmt="o",
                              color="C3" if pair["significantly_below"] else "C0", capsize=3)
        axis.axvline(0, color="grey", linestyle=":")
        axis.set(title=f"{name} (mean over seeds, 95% CI)", xlabel="paired difference of final score",
                 yticks=range(len(envs)), yticklabels=envs)
        axis.set_xscale("symlog", linthresh=1.0)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
