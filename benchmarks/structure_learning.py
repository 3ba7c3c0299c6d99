"""Structure-learning sample complexity: CSL's asymmetric learner vs DAGMA (docs/csl-ucb.md (e), (g) 9).

For each paper instance (N = 10, nu = 1, sigma = 1, docs/csl-ucb.md (e)) we draw observational samples
with ``LinearSEM.sample`` and learn the observational graph B from the first n of them, for every
n in ``--samples``, with both learners:

- CSL (``agents.csl_ucb.learn_mechanism_structure``): start from the complete graph and remove
  only the edges it must to get a DAG (docs/csl-ucb.md (b), Algorithm A); known nu, k = 5, w = 1.
- DAGMA (``agents.explore_commit.dagma_structure``): l2 loss, lambda1 = 0.03, threshold 0.3,
  smallest edges removed until acyclic (the GOLEM-MAB/DAGMA baseline's learner).

``--regime bandit`` instead gives each learner the data its bandit algorithm collects: CSL-UCB
explores with uniformly random interventions, so CSL gets, for node i, the first n rounds with
a_i = 0 of a random-intervention stream ("samples per column"); DAGMA (GOLEM-MAB) still gets n
purely observational samples, its observational block. In rounds both cost about the same: n
per column of each mechanism takes CSL-UCB about 2n random rounds, and GOLEM-MAB n observational
plus n interventional rounds. The regime matters: with purely observational Gaussian data the
OLS residual of a node is independent of every regressor, so CSL's mutual-information score
carries no orientation signal and only its -log|b| term acts; mixed interventions make the data
non-Gaussian and the score informative.

It reports FNR and SHD (``causalrl.core.metrics.structure_metrics``) as mean +- 95% CI over instances,
the mean fit time, and "samples to reach FNR <= threshold" for each method. The paper's "67% fewer
samples to learn the causal structure" claim is most likely this comparison; its exact protocol
is unpublished, so the definition below is a working assumption (docs/csl-ucb.md (g) item 9):

    samples to reach FNR <= t = the smallest n in the grid at which the mean FNR over instances is
    <= t and stays <= t at every larger n of the grid ("not reached" otherwise).

Run: ``python benchmarks/structure_learning.py`` (needs ``pip install -e '.[structure]'``).
Writes ``structure_learning.json`` and ``structure_learning.png`` under ``--out`` (with
``_bandit`` before the suffix for ``--regime bandit``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from causalrl.core.metrics import structure_metrics
from causalrl.envs.bandits import make_instance

METHODS = ("csl", "dagma")
LABELS = {"csl": "CSL (asymmetric)", "dagma": "DAGMA"}
REGIMES = ("observational", "bandit")
DEFAULT_SAMPLES = (20, 30, 40, 50, 60, 80, 100, 150, 200)
DEFINITION = (
    "samples to reach FNR <= {t:g}: the smallest sample count n in the grid at which the mean FNR "
    "over instances is <= {t:g} and stays <= {t:g} at every larger n in the grid (working "
    "definition; the paper's protocol for its '67% fewer samples' claim is unpublished)"
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--instances", type=int, default=20, help="number of paper instances")
    parser.add_argument("--first-instance", type=int, default=0, help="instance_seed of the first instance")
    parser.add_argument("--samples", type=int, nargs="+", default=list(DEFAULT_SAMPLES),
                        help="observational samples per column to learn from")
    parser.add_argument("--regime", choices=REGIMES, default="observational",
                        help="data the learners get: observational for both, or each bandit's own (see above)")
    parser.add_argument("--nodes", type=int, default=10, help="N, number of nodes")
    parser.add_argument("--noise-mean", type=float, default=1.0, help="nu (known to CSL)")
    parser.add_argument("--noise-std", type=float, default=1.0, help="sigma")
    parser.add_argument("--seed", type=int, default=2025, help="seed of the data streams")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--k", type=int, default=5, help="CSL: k of the KSG mutual-information estimator")
    parser.add_argument("--penalty-weight", type=float, default=1.0, help="CSL: weight w of -log|b|")
    parser.add_argument("--lambda1", type=float, default=0.03, help="DAGMA: L1 penalty")
    parser.add_argument("--w-threshold", type=float, default=0.3, help="DAGMA: weight threshold")
    parser.add_argument("--fnr-threshold", type=float, default=0.05, help="target FNR for the sample count")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (one instance per task)")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/structure_learning"))
    args = parser.parse_args(argv)
    if args.instances < 1 or args.nodes < 2 or args.workers < 1:
        parser.error("--instances and --workers must be >= 1 and --nodes >= 2")
    if min(args.samples) < 2:
        parser.error("--samples: every count must be >= 2")
    args.samples = sorted(set(args.samples))
    return args


def _learner(method: str, args: argparse.Namespace):
    """The method as a function (observational (n, N), column_samples: N arrays (n, N)) ->
    boolean (N, N) adjacency of the observational graph."""
    if method == "csl":
        from causalrl.agents.csl_ucb import learn_mechanism_structure

        def learn(observational, column_samples):
            return np.asarray(learn_mechanism_structure(
                column_samples, args.noise_mean, k=args.k, penalty_weight=args.penalty_weight)) != 0
        return learn
    from causalrl.agents.explore_commit import dagma_structure

    def learn(observational, column_samples):
        return dagma_structure(observational, args.lambda1, args.w_threshold, seed=args.seed) != 0
    return learn


def _random_exploration_columns(sem, n_samples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """For each node i, the first ``n_samples`` rounds with a_i = 0 of a stream of uniformly
    random interventions (CSL-UCB's forced exploration, docs/csl-ucb.md (b) step 2)."""
    n_nodes = sem.n_nodes
    actions = np.zeros((0, n_nodes))
    while actions.shape[0] == 0 or (actions == 0).sum(axis=0).min() < n_samples:
        actions = np.concatenate([actions, rng.integers(0, 2, size=(2 * n_samples + 64, n_nodes)).astype(float)])
    values = sem.sample(actions, rng)
    return [values[actions[:, node] == 0][:n_samples] for node in range(n_nodes)]


def run_instance(instance_seed: int, args: argparse.Namespace) -> list[dict]:
    """Every (method, n) result on one instance. The samples for n are the first n of one
    stream, so larger n adds data to the same draws."""
    sem = make_instance(args.nodes, instance_seed, noise_mean=args.noise_mean, noise_std=args.noise_std)
    rng = np.random.default_rng([args.seed, instance_seed])
    stream = sem.sample(np.zeros((max(args.samples), args.nodes)), rng)
    if args.regime == "bandit":
        columns = _random_exploration_columns(sem, max(args.samples), rng)
    learners = {method: _learner(method, args) for method in args.methods}
    rows = []
    for n_samples in args.samples:
        for method, learn in learners.items():
            observational = stream[:n_samples]
            if args.regime == "bandit":
                column_samples = [column[:n_samples] for column in columns]
            else:  # observational data: every node's column uses the same samples
                column_samples = [observational] * args.nodes
            start = time.perf_counter()
            learned = learn(observational, column_samples)
            seconds = time.perf_counter() - start
            metrics = structure_metrics(learned, sem.observational_weights)
            rows.append({"instance_seed": instance_seed, "samples": n_samples, "method": method,
                         "fnr": metrics["fnr"], "shd": metrics["shd"], "fpr": metrics["fpr"],
                         "seconds": seconds})
    return rows


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its Student-t 95% confidence interval (0 for one value)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float(values.mean()), 0.0
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean()), float(half)


def summarise(rows: list[dict], args: argparse.Namespace) -> dict:
    summary = {}
    for method in args.methods:
        per_n = []
        for n_samples in args.samples:
            chosen = [row for row in rows if row["method"] == method and row["samples"] == n_samples]
            entry = {"samples": n_samples}
            for key in ("fnr", "shd", "fpr", "seconds"):
                entry[key], entry[key + "_ci95"] = mean_ci([row[key] for row in chosen])
            per_n.append(entry)
        summary[method] = {"by_samples": per_n,
                           "samples_to_fnr_threshold": samples_to_threshold(per_n, args.fnr_threshold)}
    return summary


def samples_to_threshold(per_n: list[dict], threshold: float) -> int | None:
    """The working definition in the module docstring."""
    reached = None
    for entry in reversed(per_n):
        if entry["fnr"] > threshold:
            break
        reached = entry["samples"]
    return reached


def format_table(summary: dict, args: argparse.Namespace) -> str:
    header = ["samples"]
    for method in args.methods:
        header += [f"{method} FNR", f"{method} SHD", f"{method} s/fit"]
    lines = [header]
    for index, n_samples in enumerate(args.samples):
        line = [str(n_samples)]
        for method in args.methods:
            entry = summary[method]["by_samples"][index]
            line += [f"{entry['fnr']:.3f} ± {entry['fnr_ci95']:.3f}",
                     f"{entry['shd']:.2f} ± {entry['shd_ci95']:.2f}", f"{entry['seconds']:.2f}"]
        lines.append(line)
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = [f"regime: {args.regime} (samples = observational samples per column; mean ± 95% CI over "
            f"{args.instances} instances)"]
    text += ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines]
    text.insert(2, "  ".join("-" * width for width in widths))
    text.append("")
    text.append(DEFINITION.format(t=args.fnr_threshold))
    reached = {}
    for method in args.methods:
        reached[method] = summary[method]["samples_to_fnr_threshold"]
        text.append(f"  {LABELS[method]}: {reached[method] if reached[method] is not None else 'not reached in the grid'}")
    if reached.get("csl") and reached.get("dagma"):
        text.append(f"  CSL needs {1 - reached['csl'] / reached['dagma']:.0%} fewer samples than DAGMA")
    return "\n".join(text)


def plot(summary: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, key, label in [(axes[0], "fnr", "false-negative rate (FNR)"),
                             (axes[1], "shd", "structural Hamming distance (SHD)")]:
        for method in args.methods:
            per_n = summary[method]["by_samples"]
            x = np.array([entry["samples"] for entry in per_n])
            mean = np.array([entry[key] for entry in per_n])
            half = np.array([entry[key + "_ci95"] for entry in per_n])
            line, = axis.plot(x, mean, marker="o", label=LABELS[method])
            upper = np.minimum(mean + half, 1.0) if key == "fnr" else mean + half  # FNR <= 1, SHD >= 0
            axis.fill_between(x, np.maximum(mean - half, 0.0), upper, color=line.get_color(), alpha=0.2)
        if key == "fnr":
            axis.axhline(args.fnr_threshold, color="grey", linestyle="--", linewidth=1,
                         label=f"FNR = {args.fnr_threshold:g}")
        axis.set_xlabel("observational samples per column")
        axis.set_ylabel(label)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"Observational graph recovery ({args.regime} data), N = {args.nodes}, "
                    f"{args.instances} paper instances (mean ± 95% CI)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None) -> dict:
    args = parse_args(argv)
    for method in args.methods:  # fail before any work if a learner is missing
        _learner(method, args)
    instance_seeds = [args.first_instance + index for index in range(args.instances)]
    rows: list[dict] = []
    bar = tqdm(total=len(instance_seeds), unit="instance", desc="structure learning")
    if args.workers == 1:
        for instance_seed in instance_seeds:
            rows += run_instance(instance_seed, args)
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=min(args.workers, os.cpu_count() or 1)) as pool:
            for result in pool.map(run_instance, instance_seeds, [args] * len(instance_seeds)):
                rows += result
                bar.update(1)
    bar.close()
    summary = summarise(rows, args)
    table = format_table(summary, args)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    config = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    result = {"config": config, "definition": DEFINITION.format(t=args.fnr_threshold),
              "summary": summary, "results": rows}
    stem = "structure_learning" if args.regime == "observational" else f"structure_learning_{args.regime}"
    json_path = args.out / f"{stem}.json"
    temporary = json_path.with_name(json_path.name + ".tmp")
    temporary.write_text(json.dumps(result, indent=2))
    temporary.replace(json_path)
    plot(summary, args, args.out / f"{stem}.png")
    print(f"wrote {json_path} and {args.out / f'{stem}.png'}")
    return result


if __name__ == "__main__":
    main()
