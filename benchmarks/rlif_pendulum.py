"""RLIF vs DAgger vs HG-DAgger on Pendulum-v1 with trained SB3 experts (
docs/rlif.md). Smoke-run with ``--expert-steps 2000 --acting-steps 600 2000 --steps 600 --seeds 1``.

1. The reference expert (pi_ref, the judge): SAC trained through the runner with the
   ``expert-pendulum`` preset for ``--expert-steps`` (run directory under
   ``--output-dir``/rlif-pendulum-expert/), unless ``--expert`` gives a saved SAC model.
2. The acting experts (pi_exp), one per level: the same preset stopped after each
   ``--acting-steps`` N (an early checkpoint of the same recipe, with the systematic errors of an
   unfinished policy, docs/rlif.md (g) 9); N equal to ``--expert-steps`` is the reference itself.
   ``--noise`` adds Gaussian action noise to every acting expert (default none).
   ``--demonstrations N`` gives every learner N steps of the noise-free reference's rollouts
   first (the paper's protocol, docs/rlif.md (b) "Data"): RLIF keeps them in its buffer with reward 0
   and starts learning at once; DAgger and HG-DAgger add them to their aggregate and take
   ``--pretrain-steps`` BC steps on them before the first round.
3. ``InterventionWrapper(Pendulum-v1, PolicyExpert(acting, reference=pi_ref))``: the acting
   expert takes over, the reference's critic judges (value-based takeover, additive delta, beta,
   k, hand-back step). Each learner trains ``--steps`` env steps per seed and is evaluated alone
   (deterministic, no expert, ``--eval-episodes`` episodes: causalrl.experiment.run.evaluation.make_evaluator)
   every ``--eval-interval`` steps. Score: (return - random) / (reference - random), from
   Monte-Carlo returns of uniform random actions and of the noise-free reference.

    python benchmarks/rlif_pendulum.py [--expert-steps 15000] [--acting-steps 3000 15000]
        [--steps 10000] [--seeds 3] [--workers 2] [--agents rlif dagger hg-dagger] [--delta 1.0]
        [--demonstrations 1000] [--pretrain-steps 2000]

Measured with the defaults (about 40 min on two CPU cores): the reference scores 1 (return -140, random -1246), the 3000-step acting expert
0.258. Final learner-alone score, IQM [95% CI]: with the 3000-step expert RLIF 0.817 [0.675,
0.921], DAgger 0.248 [0.143, 0.319], HG-DAgger 0.273 [0.183, 0.321] (RLIF's intervention rate
0.56 -> 0.42); with the reference acting RLIF 0.992 [0.985, 0.996], DAgger and HG-DAgger 0.995:
imitating a near-optimal expert reaches it. With ``--demonstrations 0`` (seed 0 only) RLIF
reached 0.358 in 10k steps, its intervention rate flat at 0.58; our reading is that swinging up
needs exploration that a weak expert's takeovers do not provide, while demonstrations show it.

Writes <output-dir>/rlif_pendulum/results.json and table.md, and prints the table (per level:
the acting expert's score, each learner's final IQM score with a 95% bootstrap CI, intervention
rate first -> last interval). Jobs (level x learner x seed) run in ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from causalrl.core.registry import AGENTS
from causalrl.core.stats import stratified_bootstrap_ci
from causalrl.experiment.config.plugins import load_plugins
from causalrl.experiment.run.evaluation import make_evaluator

AGENT_KWARGS = {
    # initial temperature 0.05 as in the rlif-factored preset (the spec's 1.0 keeps the policy near
    # uniform for most of a 10k-step budget next to rewards of -1)
    "rlif": {"learning_starts": 1000, "utd_ratio": 1, "n_critics": 10, "ent_coef": "auto_0.05",
             "policy_kwargs": {"net_arch": [256, 256]}},
    "dagger": {"round_steps": 1000, "gradient_steps": 1000, "beta_rampdown_rounds": 5},
    "hg-dagger": {"round_steps": 1000, "gradient_steps": 1000},
}


def mean_return(policy, episodes: int, seed: int) -> float:
    from causalrl.envs.experts import evaluate_expert

    env = gym.make("Pendulum-v1")
    return evaluate_expert(env, policy, n_episodes=episodes, seed=seed)["return_mean"]


def train_expert(steps: int, output_dir: str, name: str) -> Path:
    """SAC through the runner with the expert-pendulum preset, stopped after ``steps``."""
    from causalrl.experiment.config import load_experiment
    from causalrl.experiment.run.runner import run

    config = load_experiment("expert-pendulum", [f"total_steps={steps}", "progress_bar=false", f"experiment={name}",
                                                 f"output_dir={output_dir}"])[0]
    return run(config).run_dir / "model.zip"


def run_job(job: dict) -> dict:
    """One learner x level x seed: train in chunks, evaluate alone after each chunk."""
    th.set_num_threads(1)
    load_plugins()
    from causalrl.envs.experts import PolicyExpert
    from causalrl.envs.intervention import InterventionWrapper

    args = job["args"]
    reference = SAC.load(job["reference"], device="cpu")
    acting = reference if job["acting"] == job["reference"] else SAC.load(job["acting"], device="cpu")
    expert = PolicyExpert(acting, noise=args["noise"], seed=job["seed"], reference=reference)
    env = InterventionWrapper(gym.make("Pendulum-v1"), expert, strategy="value", delta=args["delta"],
                              beta=args["beta"], takeover_steps=args["takeover_steps"])
    kwargs = dict(AGENT_KWARGS.get(job["agent"], {}))
    if "learning_starts" in kwargs:
        kwargs["learning_starts"] = min(kwargs["learning_starts"], args["steps"] // 5)
    if "round_steps" in kwargs:
        kwargs["round_steps"] = min(kwargs["round_steps"], args["eval_interval"])
    if args["demonstrations"]:
        from causalrl.envs.experts import collect_demonstrations

        kwargs["demonstrations"] = collect_demonstrations(gym.make("Pendulum-v1"), PolicyExpert(reference),
                                                          args["demonstrations"], seed=10_000 + job["seed"])
        kwargs.update({"learning_starts": 0} if job["agent"] == "rlif" else {"pretrain_steps": args["pretrain_steps"]})
    model = AGENTS.get(job["agent"])("MlpPolicy", env, seed=job["seed"], **kwargs)
    model.set_logger(configure(None, []))
    evaluate = make_evaluator(gym.make("Pendulum-v1"), args["eval_episodes"])
    curve = {"steps": [], "return": [], "intervention_rate": []}
    done, started = 0, time.perf_counter()
    while done < args["steps"]:
        chunk = min(args["eval_interval"], args["steps"] - done)
        before = (env.total_steps, env.total_interventions)
        model.learn(chunk, reset_num_timesteps=done == 0)
        done += chunk
        rate = (env.total_interventions - before[1]) / max(env.total_steps - before[0], 1)
        value = evaluate(model)["eval/deterministic_return_mean"]
        for key, item in (("steps", done), ("return", value), ("intervention_rate", rate)):
            curve[key].append(item)
        print(f"  {job['agent']:<10} level {job['level']} seed {job['seed']} step {done:>6} return {value:8.1f} "
              f"intervention rate {rate:.3f}", flush=True)
    curve["wall_time_s"] = round(time.perf_counter() - started, 1)
    return {**{k: job[k] for k in ("agent", "level", "seed")}, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expert", help="path of a saved SAC reference model (skips its training)")
    parser.add_argument("--expert-steps", type=int, default=15_000)
    parser.add_argument("--acting-steps", type=int, nargs="+", default=[3000, 15_000],
                        help="training steps of each level's acting expert (= --expert-steps: the reference)")
    parser.add_argument("--noise", type=float, default=0.0, help="action noise of every acting expert")
    parser.add_argument("--demonstrations", type=int, default=1000,
                        help="env steps of reference-expert demonstrations given to every learner first")
    parser.add_argument("--pretrain-steps", type=int, default=2000, help="BC steps on the demonstrations")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--agents", nargs="+", default=["rlif", "dagger", "hg-dagger"])
    parser.add_argument("--delta", type=float, default=1.0, help="additive takeover threshold on the critic's Q")
    parser.add_argument("--beta", type=float, default=0.95)
    parser.add_argument("--takeover-steps", type=int, default=4)
    parser.add_argument("--eval-interval", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--output-dir", default="runs/benchmarks")
    args = parser.parse_args()
    th.set_num_threads(1)
    load_plugins()
    from causalrl.envs.experts import PolicyExpert

    out = Path(args.output_dir) / "rlif_pendulum"
    out.mkdir(parents=True, exist_ok=True)
    reference_path = Path(args.expert) if args.expert else train_expert(args.expert_steps, args.output_dir,
                                                                        "rlif-pendulum-expert")
    reference = SAC.load(reference_path, device="cpu")
    acting_paths = {steps: reference_path if steps == args.expert_steps
                    else train_expert(steps, args.output_dir, f"rlif-pendulum-acting-{steps}")
                    for steps in args.acting_steps}
    random_stream = np.random.default_rng(0)
    random_return = mean_return(lambda o: random_stream.uniform(-2, 2, 1).astype(np.float32), 20, 0)
    reference_return = mean_return(PolicyExpert(reference), 20, 0)

    def score(value: float) -> float:
        return (value - random_return) / (reference_return - random_return)

    print(f"random {random_return:.1f}, reference expert {reference_return:.1f}", flush=True)
    results = {"args": vars(args), "random_return": random_return, "reference_return": reference_return,
               "levels": {}}
    for steps, path in acting_paths.items():
        acting = SAC.load(path, device="cpu")
        expert_score = score(mean_return(PolicyExpert(acting, noise=args.noise, seed=0), 20, 0))
        results["levels"][str(steps)] = {"acting_model": str(path), "expert_score": expert_score, "agents": {}}
        print(f"level {steps} (acting expert trained {steps} steps): score {expert_score:.3f}", flush=True)
    jobs = [{"args": vars(args), "reference": str(reference_path), "acting": str(path), "level": str(steps),
             "agent": agent, "seed": seed}
            for steps, path in acting_paths.items() for agent in args.agents for seed in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        finished = list(pool.map(run_job, jobs))
    for level_key, level in results["levels"].items():
        for agent in args.agents:
            curves = [item["curve"] for item in finished if item["level"] == level_key and item["agent"] == agent]
            for curve in curves:
                curve["score"] = [score(value) for value in curve["return"]]
            finals = np.array([curve["score"][-1] for curve in curves])
            point, low, high = stratified_bootstrap_ci(finals[:, None])
            level["agents"][agent] = {"curves": curves, "final_iqm": point, "ci95": [low, high],
                                      "first_rate": float(np.mean([c["intervention_rate"][0] for c in curves])),
                                      "last_rate": float(np.mean([c["intervention_rate"][-1] for c in curves]))}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    lines = ["| acting expert (training steps) | expert score | learner | final IQM score [95% CI] | "
             "intervention rate first -> last |", "|---|---|---|---|---|"]
    for level_key, level in results["levels"].items():
        for agent, entry in level["agents"].items():
            lines.append(f"| {level_key} | {level['expert_score']:.3f} | {agent} | {entry['final_iqm']:.3f} "
                         f"[{entry['ci95'][0]:.3f}, {entry['ci95'][1]:.3f}] | {entry['first_rate']:.3f} -> "
                         f"{entry['last_rate']:.3f} |")
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    print(table)
    print(f"wrote {out}/results.json, table.md")


if __name__ == "__main__":
    main()
