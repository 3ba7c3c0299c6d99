"""A causal bandit from your own weight matrices: CSL-UCB against UCB, with graph pictures.

    python examples/custom_causal_bandit.py            # T = 1000 rounds: about 20 s
    python examples/custom_causal_bandit.py --fast     # T = 150 (what the test suite runs)

(Measured on 2 shared CPU cores, start-up included.) Writes run directories under runs/examples/
of the current folder (each CSL-UCB run has graph.png: the learned graph over the true one) and,
in --out (default: the current folder), learned_vs_true.png and learned_vs_true.dot.
"""

import argparse

import gymnasium as gym
import numpy as np

import causalrl
import causalrl.envs  # noqa: F401  registers the causalrl/ gym ids
from causalrl.agents import CSLUCB
from causalrl.core.metrics import structure_metrics
from causalrl.experiment.figures.graphs import draw_structure, to_dot, to_networkx

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true", help="a short run (the test suite's mode)")
parser.add_argument("--out", default=".", help="an existing folder for learned_vs_true.png/.dot")
args = parser.parse_args()
rounds = 150 if args.fast else 1000

# 1. Your world: [j, i] is the weight of the edge j -> i; node 4 (the last) is the reward.
#    Observational weights act on nodes that are not intervened on, interventional ones on
#    nodes that are (soft interventions change a node's incoming weights).
observational = np.array([
    [0.0, 1.0, 0.8, 0.0, 0.0],
    [0.0, 0.0, 0.0, 1.2, 0.0],
    [0.0, 0.0, 0.0, 0.9, 0.5],
    [0.0, 0.0, 0.0, 0.0, 1.5],
    [0.0, 0.0, 0.0, 0.0, 0.0],
])
interventional = np.array([
    [0.0, 0.4, 0.8, 0.0, 0.0],
    [0.0, 0.0, 0.0, 2.0, 0.0],
    [0.0, 0.0, 0.0, 0.9, 1.6],
    [0.0, 0.0, 0.0, 0.0, 1.5],
    [0.0, 0.0, 0.0, 0.0, 0.0],
])
world = {"id": "causalrl/LinearSEMBandit-v0", "horizon": rounds,
         "observational_weights": observational.tolist(), "interventional_weights": interventional.tolist()}

# 2. Through the runner: one run directory per agent, same seed, same budget.
results = causalrl.run({"experiment": "examples", "total_steps": rounds, "log_interval": 50, "env": world,
                        "agents": [{"name": "csl-ucb"}, {"name": "ucb"}]})
for result in results:
    print(f"{result.agent:<8} regret {result['regret/cumulative']:8.1f}  "
          f"optimal-action rate {result['regret/window_optimal_action_rate']:.2f}  run dir {result.run_dir}")
print("CSL-UCB graph picture:", results[0].run_dir / "graph.png")

# 3. Or by hand, SB3-style, and compare what it learned with the truth.
env = gym.make("causalrl/LinearSEMBandit-v0", horizon=rounds, observational_weights=observational,
               interventional_weights=interventional)
agent = CSLUCB("BanditPolicy", env, seed=0).learn(rounds)
learned, truth = agent.learned_structure, env.unwrapped.causal_structure
print("structure metrics:", {k: round(v, 3) for k, v in structure_metrics(learned, truth).items()})
for source, target, data in to_networkx(learned, truth).edges(data=True):
    if data["kind"] != "true_positive":  # the errors, by name
        print(f"  {data['mechanism']}: {source} -> {target} is {data['kind'].replace('_', ' ')}")
draw_structure(learned, truth, f"{args.out}/learned_vs_true.png", title=f"CSL-UCB after {rounds} rounds")
with open(f"{args.out}/learned_vs_true.dot", "w") as handle:
    handle.write(to_dot(learned, truth))  # render with: dot -Tpng learned_vs_true.dot -o graph.png
