"""A bandit agent in a plain gymnasium loop: predict -> env.step -> observe.

No ``learn()``, no runner: the loop below is what ``agent.learn(T)`` does inside, so it plays
exactly the same rounds (same seed, same actions). CSL-UCB's exploration schedule follows the
horizon the world declares (``env.unwrapped.assumptions.horizon``), not how the loop is cut up.

    python examples/plain_gym_loop_bandit.py            # N = 8, T = 1500 rounds: about 10 s
    python examples/plain_gym_loop_bandit.py --fast     # T = 300 (what the test suite runs)

(Measured on 2 shared CPU cores, start-up included.)
"""

import argparse

import gymnasium as gym
import numpy as np

import causalrl.envs  # noqa: F401  registers the causalrl/ gym ids
from causalrl.agents import CSLUCB, UCB

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true", help="a short run (the test suite's mode)")
parser.add_argument("--out", default=None, help="unused; accepted like the other examples")
args = parser.parse_args()
rounds = 300 if args.fast else 1500

for agent_class in (CSLUCB, UCB):
    # 1. A linear-SEM bandit: 8 nodes, 2^8 = 256 interventions; the world declares its horizon.
    env = gym.make("causalrl/LinearSEMBandit-v0", n_nodes=8, instance_seed=3, horizon=rounds)
    agent = agent_class("BanditPolicy", env, seed=0)

    # 2. The loop. predict() commits the agent to its next action (stochastic agents draw it
    #    here), so call observe() exactly once after each predict().
    observation, info = env.reset(seed=0)
    regret = 0.0
    for _ in range(rounds):
        action, _ = agent.predict(observation)
        observation, reward, terminated, truncated, info = env.step(action)
        agent.observe(action, observation, reward, info)  # the public update
        regret += info["optimal_expected_reward"] - info["expected_reward"]
        if terminated or truncated:
            observation, info = env.reset()

    # 3. What it settled on: the greedy (deterministic) choice and its true expected reward.
    best, _ = agent.predict(observation, deterministic=True)
    mu = env.unwrapped.expected_rewards[int(np.dot(best, 1 << np.arange(8)))]
    print(f"{agent_class.__name__:<7} pseudo-regret after {rounds} rounds: {regret:9.1f}; "
          f"greedy arm mu = {mu:.2f} (best {info['optimal_expected_reward']:.2f})")
