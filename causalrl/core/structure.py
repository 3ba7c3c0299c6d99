"""Ground truth of factored MDPs: which state and action dimensions cause the reward and the
next state (docs/cip.md (a)). Worlds expose it as ``env.unwrapped.causal_structure``; wrappers that
add observation dimensions compose it with :meth:`FactoredStructure.with_distractors`.

Every matrix follows the causalrl convention ``[j, i] = True`` means j -> i:

    state_to_reward   (S, 1)   state dim j is a parent of the reward
    action_to_reward  (A, 1)   action dim j is a parent of the reward
    state_to_state    (S, S)   state dim j at t is a parent of state dim i at t+1
    action_to_state   (A, S)   action dim j at t is a parent of state dim i at t+1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FactoredStructure", "closed_blocks"]


def _mask(value, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    array = array.astype(bool).copy()
    array.setflags(write=False)
    return array


def closed_blocks(state_to_state, action_to_state, reward_states, reward_actions) -> list[tuple[np.ndarray, np.ndarray]]:
    """The closed, reward-free blocks of a factored MDP (docs/cip.md (b.2)).

    Nodes are the state and action dimensions; an edge joins j and i whenever j at t is a parent
    of state i at t+1 (``state_to_state`` (S, S), ``action_to_state`` (A, S), causalrl
    convention ``[j, i]``). A block is a connected component of that graph (edges taken in both
    directions) that holds no reward parent (``reward_states`` (S,), ``reward_actions`` (A,),
    boolean; a state counts when it is a parent through s_t or s_{t+1}). Nothing outside a
    block drives it, nothing in it drives anything outside or the reward, and it contains every
    action that drives its states: swapping a block's (s, a, s') between two real transitions
    yields another possible transition with the same reward. Returns one ``(state_indices,
    action_indices)`` pair per block that holds at least one state dimension, in index order.
    """
    state_to_state = np.asarray(state_to_state, dtype=bool)
    action_to_state = np.asarray(action_to_state, dtype=bool)
    n_states, n_actions = state_to_state.shape[0], action_to_state.shape[0]
    parent = list(range(n_states + n_actions))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for j, i in zip(*np.nonzero(state_to_state)):
        parent[find(int(j))] = find(int(i))
    for j, i in zip(*np.nonzero(action_to_state)):
        parent[find(n_states + int(j))] = find(int(i))
    roots = np.array([find(node) for node in range(n_states + n_actions)])
    relevant = np.concatenate([np.asarray(reward_states, dtype=bool).reshape(-1),
                               np.asarray(reward_actions, dtype=bool).reshape(-1)])
    touched = set(roots[relevant].tolist())
    blocks = []
    for root in dict.fromkeys(roots[:n_states].tolist()):
        if root in touched:
            continue
        members = np.flatnonzero(roots == root)
        blocks.append((members[members < n_states], members[members >= n_states] - n_states))
    return blocks


@dataclass(frozen=True, eq=False)
class FactoredStructure:
    """Boolean adjacency of a factored MDP (read-only arrays; see the module docstring)."""

    state_to_reward: np.ndarray
    action_to_reward: np.ndarray
    state_to_state: np.ndarray
    action_to_state: np.ndarray

    def __post_init__(self):
        n_states = np.shape(self.state_to_reward)[0]
        n_actions = np.shape(self.action_to_reward)[0]
        for name, shape in [
            ("state_to_reward", (n_states, 1)),
            ("action_to_reward", (n_actions, 1)),
            ("state_to_state", (n_states, n_states)),
            ("action_to_state", (n_actions, n_states)),
        ]:
            object.__setattr__(self, name, _mask(getattr(self, name), shape, name))

    @property
    def n_states(self) -> int:
        return self.state_to_reward.shape[0]

    @property
    def n_actions(self) -> int:
        return self.action_to_reward.shape[0]

    @property
    def reward_relevant_states(self) -> np.ndarray:
        """Indices of the state dimensions that are parents of the reward."""
        return np.flatnonzero(self.state_to_reward[:, 0])

    def closed_blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The reward-free closed blocks of this structure (:func:`closed_blocks`)."""
        return closed_blocks(self.state_to_state, self.action_to_state, self.state_to_reward[:, 0],
                             self.action_to_reward[:, 0])

    @classmethod
    def dense(cls, n_states: int, n_actions: int) -> FactoredStructure:
        """Every dimension may affect the reward and every next state: the honest default for a
        world whose structure is not known in detail (e.g. MuJoCo locomotion, where the reward
        integrates the whole dynamics over one frame)."""
        return cls(np.ones((n_states, 1)), np.ones((n_actions, 1)),
                   np.ones((n_states, n_states)), np.ones((n_actions, n_states)))

    def with_distractors(self, n_distractors: int, self_dependent: bool) -> FactoredStructure:
        """This structure with ``n_distractors`` appended state dimensions that affect nothing
        but (when ``self_dependent``, e.g. a random walk) their own next value."""
        n, s = int(n_distractors), self.n_states
        state_to_state = np.zeros((s + n, s + n), dtype=bool)
        state_to_state[:s, :s] = self.state_to_state
        if self_dependent:
            state_to_state[s:, s:] = np.eye(n, dtype=bool)
        return FactoredStructure(
            state_to_reward=np.vstack([self.state_to_reward, np.zeros((n, 1), dtype=bool)]),
            action_to_reward=self.action_to_reward,
            state_to_state=state_to_state,
            action_to_state=np.hstack([self.action_to_state, np.zeros((self.n_actions, n), dtype=bool)]),
        )
