"""How good must RLIF's judge be? RLIF, DAgger and HG-DAgger on FactoredLQR with judges of
several qualities (docs/rlif.md (e) "judge quality").

The judge (pi_ref and Q^{pi_ref}, docs/rlif.md (a)) is one SB3 SAC run with the ``judge-factored``
preset's settings, saved at several training budgets (``--judge-budgets``; the first budget
equal to the SAC's ``learning_starts`` is a judge that has made no update: its critic and policy
are untrained). Each snapshot's own quality is its learner-alone normalised score (0 = uniform
random actions, 1 = the Riccati optimum). With each snapshot as the judge, and the weak LQR
expert acting (``--level``), RLIF, DAgger and HG-DAgger train for ``--steps`` env steps with the
``rlif-factored`` preset's hyperparameters; the value test uses ``delta: auto`` at the quantile
``--delta-quantile`` (0.97: the quantile that the preset's delta = 3 has under the ORACLE judge on
the same states). The ORACLE judge (exact optimal Q, the preset's delta = 3) is run too and drawn
as an upper bound, never as a judge anyone has.

Reported: per judge, the judge's own score and each learner's final learner-alone score (IQM
over seeds, with a 95% bootstrap CI when there are several seeds) and its intervention rate in
the last interval. The figure plots final score against the judge's score, one line per learner,
with the oracle as a separate marker. Speed: wall time of each learner relative to DAgger's, in
the same run.

    OMP_NUM_THREADS=1 python benchmarks/rlif_judge_quality.py [--judge-budgets 1000 1500 2000 3000 5000]
        [--steps 3000] [--seeds 1] [--level weak] [--workers 2] [--output-dir runs/benchmarks]

Writes <output-dir>/rlif_judge_quality/results.json and judge_quality.png, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

PRESET_AGENTS = ("rlif", "dagger", "hg-dagger")


def _preset(name: str) -> dict:
    return yaml.safe_load((resources.files("causalrl") / "configs" / f"{name}.yaml").read_text())


def train_judges(budgets: list[int], folder: Path) -> list[dict]:
    """One SAC run (the judge-factored preset's settings) saved at each budget, with its score."""
    import torch as th
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    from causalrl.envs.experts import evaluate_expert
    from causalrl.envs.factored import FactoredLQR
    from causalrl.experiment.run.evaluation import EVAL_SEED

    th.set_num_threads(1)
    preset = _preset("judge-factored")
    agent = {k: v for k, v in preset["agent"].items() if k != "name"}
    world_kwargs = {k: v for k, v in preset["env"].items() if k != "id"}
    model = SAC("MlpPolicy", FactoredLQR(**world_kwargs), seed=preset["seed"], **agent)
    model.set_logger(configure(None, []))
    judges, done = [], 0
    for budget in sorted(budgets):
        model.learn(budget - done, reset_num_timesteps=done == 0)
        done = budget
        path = folder / f"judge_{budget}.zip"
        model.save(path)
        score = evaluate_expert(FactoredLQR(**world_kwargs), lambda o: model.predict(o, deterministic=True)[0], 30,
                                EVAL_SEED)["normalised_score"]
        judges.append({"judge": f"SAC {budget} steps", "budget": budget, "path": str(path), "judge_score": score})
        print(f"judge at {budget:>6} steps: score {score:.3f}", flush=True)
    return judges


def score_judge(path: str) -> dict:
    """A saved judge (e.g. the judge-factored preset's model.zip) and its learner-alone score."""
    from causalrl.envs.experts import evaluate_expert, load_sb3_model
    from causalrl.envs.factored import FactoredLQR
    from causalrl.experiment.run.evaluation import EVAL_SEED

    model = load_sb3_model(path)
    world_kwargs = {k: v for k, v in _preset("judge-factored")["env"].items() if k != "id"}
    score = evaluate_expert(FactoredLQR(**world_kwargs), lambda o: model.predict(o, deterministic=True)[0], 30,
                            EVAL_SEED)["normalised_score"]
    budget = int(model.num_timesteps)
    print(f"judge {path} ({budget} steps): score {score:.3f}", flush=True)
    return {"judge": f"SAC {budget} steps", "budget": budget, "path": str(path), "judge_score": score}


def run_one(task: dict) -> dict:
    """Train one learner with one judge; the final learner-alone score and last intervention rate."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.logger import configure

    from causalrl.core.registry import AGENTS
    from causalrl.experiment.config.plugins import load_plugins
    from causalrl.experiment.run.evaluation import make_evaluator

    th.set_num_threads(1)
    load_plugins()
    env_kwargs = task["env"]

    def make_env():
        return gym.make("causalrl/FactoredLQRIntervention-v0", **env_kwargs)

    env = make_env()
    wrapper = env.unwrapped.wrapped
    kwargs = dict(task["agent_kwargs"])
    if "learning_starts" in kwargs:
        kwargs["learning_starts"] = min(kwargs["learning_starts"], task["steps"] // 5)
    if "round_steps" in kwargs:
        kwargs["round_steps"] = min(kwargs["round_steps"], task["steps"] // 3)
    model = AGENTS.get(task["agent"])("MlpPolicy", env, seed=task["seed"], **kwargs)
    model.set_logger(configure(None, []))
    started = time.perf_counter()
    model.learn(task["steps"] - 1000)
    before = (wrapper.total_steps, wrapper.total_interventions)
    model.learn(1000, reset_num_timesteps=False)
    rate = (wrapper.total_interventions - before[1]) / max(wrapper.total_steps - before[0], 1)
    wall = time.perf_counter() - started
    score = make_evaluator(make_env(), 30)(model)["eval/deterministic_normalised_score"]
    print(f"  {task['judge']:<16} {task['agent']:<10} seed {task['seed']}  score {score:.3f}  "
          f"last-1k intervention rate {rate:.3f}  {wall:.0f}s", flush=True)
    return {**{k: task[k] for k in ("judge", "agent", "seed")}, "score": score, "rate_last": rate, "wall_s": wall,
            "delta": float(wrapper.delta)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge-budgets", type=int, nargs="+", default=[1000, 1500, 2000, 3000, 5000])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--level", default="weak")
    parser.add_argument("--delta-quantile", type=float, default=0.97)
    parser.add_argument("--agents", nargs="+", default=list(PRESET_AGENTS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--extra-judge", nargs="*", default=[], metavar="MODEL_ZIP",
                        help="more judges: saved SAC models (e.g. the judge-factored preset's model.zip), scored here")
    parser.add_argument("--output-dir", default="runs/benchmarks")
    args = parser.parse_args()

    from causalrl.core.stats import iqm, stratified_bootstrap_ci

    out = Path(args.output_dir) / "rlif_judge_quality"
    out.mkdir(parents=True, exist_ok=True)
    judges = train_judges(args.judge_budgets, out) + [score_judge(path) for path in args.extra_judge]
    preset = _preset("rlif-factored")["base"]
    base_env = {k: v for k, v in preset["env"].items() if k != "id"}
    agents = {entry["name"]: {k: v for k, v in entry.items() if k != "name"} for entry in preset["agents"]}
    tasks = []
    for seed in range(100, 100 + args.seeds):  # learner-major order: RLIF over all judges first
        for name in args.agents:
            for judge in judges + [{"judge": "ORACLE (optimal Q)", "path": "oracle", "judge_score": None}]:
                env = {**base_env, "expert_level": args.level, "judge": judge["path"]}
                if judge["path"] != "oracle":
                    env.update(delta="auto", delta_quantile=args.delta_quantile)
                tasks.append({"judge": judge["judge"], "env": env, "agent": name, "agent_kwargs": agents[name],
                              "seed": seed, "steps": args.steps})
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for result in pool.map(run_one, tasks):  # partial results survive an interrupted run
            results.append(result)
            (out / "runs.json").write_text(json.dumps({"judges": judges, "runs": results}, indent=2))
    from causalrl.envs.experts import LQRExpert, evaluate_expert
    from causalrl.envs.factored import FactoredLQR

    oracle_score = evaluate_expert(FactoredLQR(), LQRExpert(FactoredLQR(), level="optimal"), 30, 1_000_000)
    rows = []
    for judge in judges + [{"judge": "ORACLE (optimal Q)", "judge_score": oracle_score["normalised_score"]}]:
        row = {"judge": judge["judge"], "judge_score": judge["judge_score"]}
        for name in args.agents:
            mine = [r for r in results if r["judge"] == judge["judge"] and r["agent"] == name]
            scores = np.array([r["score"] for r in mine])
            _, low, high = stratified_bootstrap_ci(scores, reps=2000, seed=0) \
                if len(scores) > 1 else (None, float("nan"), float("nan"))
            row[name] = {"iqm": float(iqm(scores)), "ci": [float(low), float(high)], "n": len(scores),
                         "rate_last": float(np.mean([r["rate_last"] for r in mine])),
                         "wall_s": float(np.mean([r["wall_s"] for r in mine]))}
        rows.append(row)
    baseline_wall = np.mean([r["wall_s"] for r in results if r["agent"] == "dagger"]) if "dagger" in args.agents else None
    header = f"{'judge':<20} {'judge score':>11} " + " ".join(f"{name + ' score (rate)':>24}" for name in args.agents)
    title = (f"RLIF vs DAgger vs HG-DAgger by judge quality: FactoredLQR, {args.level} acting expert, "
             f"{args.steps} env steps, seeds 100..{99 + args.seeds} (final learner-alone normalised score, "
             "IQM; intervention rate in the last 1k steps)")
    lines = [title, header]
    for row in rows:
        cells = " ".join(f"{row[name]['iqm']:>14.3f} ({row[name]['rate_last']:.2f})      " for name in args.agents)
        lines.append(f"{row['judge']:<20} {row['judge_score']:>11.3f} {cells}")
    if baseline_wall:
        lines.append("wall time per run relative to DAgger (same run): " + ", ".join(
            f"{name} {np.mean([r['wall_s'] for r in results if r['agent'] == name]) / baseline_wall:.2f}x"
            for name in args.agents))
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "judges": judges, "rows": rows,
                                                  "runs": results, "wall_s": time.perf_counter() - started},
                                                 indent=2))
    plot(rows, args, out / "judge_quality.png")
    print(f"wrote {out}/results.json, table.md, judge_quality.png")


def plot(rows: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned = [row for row in rows if not row["judge"].startswith("ORACLE")]
    oracle = [row for row in rows if row["judge"].startswith("ORACLE")]
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    order = np.argsort([row["judge_score"] for row in learned])
    for index, name in enumerate(args.agents):
        x = [learned[i]["judge_score"] for i in order]
        y = [learned[i][name]["iqm"] for i in order]
        axis.plot(x, y, "o-", color=f"C{index}", label=f"{name} (learned SAC judge)")
        for row in oracle:
            axis.plot([row["judge_score"]], [row[name]["iqm"]], marker="*", markersize=13, color=f"C{index}",
                      linestyle="none", label=f"{name}, ORACLE judge (upper bound)")
    low = min(0.0, *(row["judge_score"] for row in rows))
    axis.plot([low, 1], [low, 1], color="grey", linestyle=":", linewidth=1, label="learner = judge")
    from causalrl.envs.experts import LQR_EXPERT_SCORES

    if args.level in LQR_EXPERT_SCORES:
        axis.axhline(LQR_EXPERT_SCORES[args.level], color="black", linestyle="--", linewidth=1,
                     label=f"acting expert ({args.level}) {LQR_EXPERT_SCORES[args.level]:.2f}")
    axis.set(xlabel="judge's own score (learner-alone normalised score)", ylabel="learner's final score (IQM)",
             title=f"FactoredLQR, {args.level} acting expert, {args.steps} steps, {args.seeds} seed(s)")
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
