"""RLIF vs DAgger vs HG-DAgger on Pendulum-v1 with a trained SB3 expert (issue 5, acceptance 4;
rlif.md). Smoke-run with ``--expert-steps 2000 --steps 600 --seeds 1``.

1. Trains a SAC expert through the runner with the ``expert-pendulum`` preset (run directory
   under ``--output-dir``/rlif-pendulum-expert/, model.zip kept), unless ``--expert`` gives a
   saved SAC model (e.g. the model.zip of ``causalrl run expert-pendulum``).
2. Wraps Pendulum-v1 in ``InterventionWrapper`` with ``PolicyExpert(sac, noise=...)``: the noisy
   policy acts, the noise-free critic judges (value-based takeover, additive delta, beta, k).
   Noise levels are the sub-optimality knob; their measured returns are printed.
3. Trains each learner for ``--steps`` env steps per seed and evaluates it alone (deterministic,
   no expert) every ``--eval-interval`` steps. Score: (return - random) / (expert without noise -
   random), from Monte-Carlo returns of uniform random actions and of the noise-free expert.

    python benchmarks/rlif_pendulum.py [--expert-steps 15000] [--noise 0.6] [--steps 20000]
        [--seeds 3] [--agents rlif dagger hg-dagger] [--delta 1.0] [--eval-interval 2000]

Writes <output-dir>/rlif_pendulum/results.json and prints a table (final IQM score with 95%
bootstrap CI, intervention rate first -> last interval). Runs are sequential.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from causalrl.evaluation import EVAL_SEED
from causalrl.registry import AGENTS, load_plugins
from causalrl.stats import stratified_bootstrap_ci

AGENT_KWARGS = {
    "rlif": {"learning_starts": 1000, "utd_ratio": 1, "n_critics": 10, "policy_kwargs": {"net_arch": [256, 256]}},
    "dagger": {"round_steps": 1000, "gradient_steps": 1000, "beta_rampdown_rounds": 10},
    "hg-dagger": {"round_steps": 1000, "gradient_steps": 1000},
}


def mean_return(policy, episodes: int, seed: int) -> float:
    from envs.experts import evaluate_expert

    env = gym.make("Pendulum-v1")
    return evaluate_expert(env, policy, n_episodes=episodes, seed=seed)["return_mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expert", help="path of a saved SAC model (skips training)")
    parser.add_argument("--expert-steps", type=int, default=15_000)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.6], help="expert action-noise levels")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
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
    from envs.experts import PolicyExpert
    from envs.intervention import InterventionWrapper

    out = Path(args.output_dir) / "rlif_pendulum"
    out.mkdir(parents=True, exist_ok=True)
    if args.expert:
        expert_path = Path(args.expert)
    else:
        from causalrl.config import load_experiment
        from causalrl.runner import run

        config = load_experiment("expert-pendulum", [f"total_steps={args.expert_steps}", "progress_bar=false",
                                                     "experiment=rlif-pendulum-expert", f"output_dir={args.output_dir}"])[0]
        expert_path = run(config).run_dir / "model.zip"
        print(f"expert trained: {expert_path}", flush=True)
    expert_model = SAC.load(expert_path, device="cpu")
    random_stream = np.random.default_rng(0)
    random_return = mean_return(lambda o: random_stream.uniform(-2, 2, 1).astype(np.float32), 20, 0)
    expert_return = mean_return(PolicyExpert(expert_model, noise=0.0), 20, 0)
    scale = expert_return - random_return

    def score(value: float) -> float:
        return (value - random_return) / scale

    results = {"args": vars(args), "random_return": random_return, "expert_return": expert_return, "levels": {}}
    print(f"random {random_return:.1f}, noise-free expert {expert_return:.1f}", flush=True)
    for noise in args.noise:
        noisy = score(mean_return(PolicyExpert(expert_model, noise=noise, seed=0), 20, 0))
        print(f"expert noise {noise}: score {noisy:.3f}", flush=True)
        level = {"expert_score": noisy, "agents": {}}
        for name in args.agents:
            curves = []
            for seed in range(args.seeds):
                expert = PolicyExpert(expert_model, noise=noise, seed=seed)
                env = InterventionWrapper(gym.make("Pendulum-v1"), expert, strategy="value", delta=args.delta,
                                          beta=args.beta, takeover_steps=args.takeover_steps)
                kwargs = dict(AGENT_KWARGS.get(name, {}))
                if "learning_starts" in kwargs:
                    kwargs["learning_starts"] = min(kwargs["learning_starts"], args.steps // 5)
                if "round_steps" in kwargs:
                    kwargs["round_steps"] = min(kwargs["round_steps"], args.eval_interval)
                model = AGENTS.get(name)("MlpPolicy", env, seed=seed, **kwargs)
                model.set_logger(configure(None, []))
                curve = {"steps": [], "score": [], "intervention_rate": []}
                done, started = 0, time.perf_counter()
                while done < args.steps:
                    chunk = min(args.eval_interval, args.steps - done)
                    before = (env.total_steps, env.total_interventions)
                    model.learn(chunk, reset_num_timesteps=done == 0)
                    done += chunk
                    rate = (env.total_interventions - before[1]) / max(env.total_steps - before[0], 1)
                    value = score(mean_return(lambda o, m=model: m.predict(o, deterministic=True)[0],
                                              args.eval_episodes, EVAL_SEED))
                    for key, item in (("steps", done), ("score", value), ("intervention_rate", rate)):
                        curve[key].append(item)
                    print(f"  {name:<10} noise {noise} seed {seed} step {done:>6} score {value:7.3f} "
                          f"intervention rate {rate:.3f}", flush=True)
                curve["wall_time_s"] = round(time.perf_counter() - started, 1)
                curves.append(curve)
            finals = np.array([c["score"][-1] for c in curves])
            point, low, high = stratified_bootstrap_ci(finals[:, None])
            level["agents"][name] = {"curves": curves, "final_iqm": point, "ci95": [low, high],
                                     "first_rate": float(np.mean([c["intervention_rate"][0] for c in curves])),
                                     "last_rate": float(np.mean([c["intervention_rate"][-1] for c in curves]))}
        results["levels"][str(noise)] = level
        (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print("| expert noise | expert score | learner | final IQM score [95% CI] | intervention rate first -> last |")
    print("|---|---|---|---|---|")
    for noise, level in results["levels"].items():
        for name, entry in level["agents"].items():
            print(f"| {noise} | {level['expert_score']:.3f} | {name} | {entry['final_iqm']:.3f} "
                  f"[{entry['ci95'][0]:.3f}, {entry['ci95'][1]:.3f}] | {entry['first_rate']:.3f} -> {entry['last_rate']:.3f} |")
    print(f"wrote {out}/results.json")


if __name__ == "__main__":
    main()
