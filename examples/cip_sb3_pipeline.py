"""CIP in a plain Stable-Baselines3 pipeline: vectorised envs, evaluation and checkpoint callbacks.

    python examples/cip_sb3_pipeline.py            # 6000 steps on a factored LQR world: about 1 minute
    python examples/cip_sb3_pipeline.py --fast     # 240 steps (what the test suite runs): about 20 s

(Durations measured on 2 shared CPU cores, start-up included.) CIP is an SB3 algorithm (a SAC
subclass), so SB3's tools work unchanged: make_vec_env, EvalCallback (keeps best_model.zip),
CheckpointCallback (periodic zips), evaluate_policy, save / load. Files go to --out (default
runs/examples/cip_sb3).
"""

import argparse
from pathlib import Path

from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import causalrl.envs  # noqa: F401  registers the causalrl/ gym ids
from causalrl.agents import CIP
from causalrl.core.metrics import structure_metrics
from causalrl.experiment.figures.graphs import draw_structure

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true", help="a short run (the test suite's mode)")
parser.add_argument("--out", default="runs/examples/cip_sb3")
args = parser.parse_args()
out = Path(args.out)
steps = 240 if args.fast else 6000
world = dict(n_relevant_states=3, n_distractor_states=6, n_relevant_actions=2, n_irrelevant_actions=2)

# Two training envs stepped together (DummyVecEnv), one separate env for evaluation. make_vec_env
# builds them with render_mode="rgb_array", which every causalrl world accepts (frames of state,
# action and reward bars, drawn only when asked: docs/worlds.md, Rendering).
train_envs = make_vec_env("causalrl/FactoredLQR-v0", n_envs=2, seed=0, env_kwargs=world)
eval_env = make_vec_env("causalrl/FactoredLQR-v0", n_envs=1, seed=100, env_kwargs=world)

agent = CIP(
    "MlpPolicy", train_envs, seed=0,
    learning_starts=100,
    discovery_interval=steps // 3,          # reward-parent discovery every third of the run
    discovery_samples=steps // 3,
    policy_kwargs={"net_arch": [32, 32] if args.fast else [128, 128]},
    # the fast mode trims discovery's cost: a linear basis and 2 stability resamples (defaults: quadratic, 10)
    **({"discovery_basis": "linear", "stability_resamples": 2} if args.fast else {}),
    batch_size=64,
    tensorboard_log=str(out / "tb"),
)
callbacks = [
    # SB3 counts callback calls, not env steps: with 2 envs each call is 2 steps
    EvalCallback(eval_env, eval_freq=max(steps // 4 // 2, 1), n_eval_episodes=2,
                 best_model_save_path=str(out / "best"), log_path=str(out / "eval"), verbose=0),
    CheckpointCallback(save_freq=max(steps // 2 // 2, 1), save_path=str(out / "checkpoints"), name_prefix="cip"),
]
agent.learn(steps, callback=callbacks)

mean_return, std_return = evaluate_policy(agent, eval_env, n_eval_episodes=3)
print(f"CIP after {steps} steps: return {mean_return:.1f} +- {std_return:.1f}")
print("checkpoints:", sorted(p.name for p in (out / "checkpoints").glob("*.zip")))
print("best model:", out / "best" / "best_model.zip")

# What CIP believes causes the reward, against the truth ({} before the first discovery round).
truth = train_envs.get_attr("causal_structure", indices=[0])[0]
if agent.learned_structure:
    print("reward parents:", {k: round(v, 3) for k, v in structure_metrics(agent.learned_structure, truth).items()})
draw_structure(agent.learned_structure, truth, out / "reward_parents.png", title=f"CIP reward parents after {steps} steps")
agent.save(out / "cip_final.zip")
reloaded = CIP.load(out / "cip_final.zip", env=train_envs)  # loads with its causal state
print("reloaded; discovery rounds so far:", reloaded.discovery_rounds)
