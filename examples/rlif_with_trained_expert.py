"""RLIF with an expert trained by a preset (docs/rlif.md).

    python examples/rlif_with_trained_expert.py            # InvertedPendulum-v5: 10k-step expert, 3k RLIF steps
    python examples/rlif_with_trained_expert.py --fast     # Pendulum-v1, 300 + 300 steps (what the test suite runs)

The full mode takes about 4 minutes on 2 shared CPU cores (longer when they are busy), most of
it training the expert; it prints a line after each stage. The fast mode takes about 25 s.

1. The `expert` preset trains an SB3 SAC expert and saves <run>/model.zip (the same as
   `causalrl run expert env.id=...` on the command line).
2. That model judges (its critic's Q and its policy's action decide when to take over) and, with
   action noise, acts: a weaker acting expert than the judge, as in the paper.
3. RLIF learns only from the takeovers (never the task reward), then plays alone.
Files go to --out (default runs/examples/rlif).
"""

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3 import SAC

from causalrl.agents import RLIF
from causalrl.envs.experts import PolicyExpert
from causalrl.envs.intervention import InterventionWrapper
from causalrl.experiment.config import load_experiment
from causalrl.experiment.run.runner import run

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true", help="a short run (the test suite's mode)")
parser.add_argument("--out", default="runs/examples/rlif")
args = parser.parse_args()
env_id = "Pendulum-v1" if args.fast else "InvertedPendulum-v5"
expert_steps, rlif_steps = (300, 300) if args.fast else (10_000, 3_000)

# 1. Train the expert through the preset (one run directory under --out/expert/).
(config,) = load_experiment("expert", [f"env.id={env_id}", f"total_steps={expert_steps}", f"output_dir={args.out}",
                                       "eval_interval=0", f"agent.learning_starts={100 if args.fast else 1000}"])
expert_run = run(config)
model_path = Path(expert_run.run_dir) / "model.zip"
print(f"expert trained: {model_path}")

# 2. The expert: acts with noise 0.3 (in [-1, 1]-scaled action units), judges with its critic.
#    delta="auto" calibrates the takeover threshold in the judge's Q units on its own states (the
#    spread of its own sampled actions' Q gaps), then checks that the judge flags the acting expert
#    more often than itself. A 300-step judge (--fast) cannot pass that check: force it there.
judge = SAC.load(model_path, device="cpu")
expert = PolicyExpert(judge, noise=0.3, reference=judge)
env = InterventionWrapper(gym.make(env_id), expert, strategy="value", delta="auto", takeover_steps=4, force=args.fast)
stats = env.calibrate(seed=0)
print(f"delta chosen: {env.delta:.3f}, {stats['how']}; the judge flags its own policy in {stats['own_flag_rate']:.0%} "
      f"of the steps, the acting expert in {stats['expert_flag_rate']:.0%}, doing nothing in "
      f"{stats['null_flag_rate']:.0%} (judge check: {stats['judge_check'].split(':')[0]})")

# 3. RLIF: its only reward is -1 on the step before each takeover.
agent = RLIF("MlpPolicy", env, seed=0, learning_starts=100, ent_coef="auto_0.05",
             policy_kwargs={"net_arch": [32, 32] if args.fast else [64, 64]})
agent.learn(rlif_steps)
rate = env.total_interventions / env.total_steps
print(f"RLIF trained {rlif_steps} steps; the expert controlled {rate:.0%} of them")

# Evaluate the learner alone: a plain env, no expert.
plain = gym.make(env_id)
returns = []
for episode in range(3):
    observation, _ = plain.reset(seed=1000 + episode)
    done, total = False, 0.0
    while not done:
        observation, reward, terminated, truncated, _ = plain.step(agent.predict(observation, deterministic=True)[0])
        total, done = total + float(reward), terminated or truncated
    returns.append(total)
print(f"learner alone: mean return {np.mean(returns):.1f} over 3 episodes")
agent.save(Path(args.out) / "rlif_model.zip")
