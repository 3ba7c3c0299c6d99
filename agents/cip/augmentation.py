"""CIP's counterfactual data augmentation (docs/cip.md b.2): which blocks may be exchanged between
two real transitions, and the minibatch with those exchanges made.

Spec: docs/cip.md (b.2), Cao et al., ICLR 2025, arXiv:2502.10097.
"""

from __future__ import annotations

import numpy as np
import torch as th

from causalrl.core.structure import closed_blocks

__all__ = ["counterfactual_batch", "swappable_blocks"]


def swappable_blocks(state_edges: np.ndarray, action_edges: np.ndarray, blocked_states: np.ndarray,
                     blocked_actions: np.ndarray, constant_states: np.ndarray) -> tuple[list, str]:
    """b.2: the closed, reward-free blocks of the learned graph that hold at least one state
    dimension that varies, and the augmentation status line.

    ``blocked_states`` / ``blocked_actions``: parents of the reward or the termination flag
    (never swapped). ``constant_states``: dimensions (near-)constant in the discovery window;
    they are left out of every block (swapping a constant changes nothing, and a block of
    constants would report augmentation that does nothing). No state parent at all means
    "reward-irrelevant" would be "everything": no block then."""
    if not blocked_states.any():
        return [], "off: discovery found no state parent of the reward"
    blocks = []
    for states, actions in closed_blocks(state_edges, action_edges, blocked_states, blocked_actions):
        states = states[~constant_states[states]]
        if states.size:
            blocks.append((states, actions))
    return blocks, "on" if blocks else "off: no closed reward-free block"


def counterfactual_batch(batch, blocks: list, ratio: float, swap_probability: float) -> tuple[object, int]:
    """Replace the first ``ratio`` share of the rows by counterfactuals: row i takes, from a
    different row j of the batch, the states (in s and s') and actions of a random non-empty
    subset of ``blocks``; its reward and done stay its own (b.2). Returns (batch, rows
    replaced); the batch is returned unchanged when there is nothing to swap."""
    size = batch.observations.shape[0]
    n_rows = int(round(ratio * size))
    if not blocks or n_rows == 0 or size < 2:
        return batch, 0
    device = batch.observations.device
    n_states, n_actions = batch.observations.shape[1], batch.actions.shape[1]
    state_blocks = th.zeros(len(blocks), n_states, device=device)
    action_blocks = th.zeros(len(blocks), n_actions, device=device)
    for index, (states, actions) in enumerate(blocks):
        state_blocks[index, th.as_tensor(states, dtype=th.long)] = 1.0
        action_blocks[index, th.as_tensor(actions, dtype=th.long)] = 1.0
    partners = (th.arange(n_rows, device=device) + th.randint(1, size, (n_rows,), device=device)) % size
    chosen = th.rand(n_rows, len(blocks), device=device) < swap_probability
    chosen[th.arange(n_rows, device=device), th.randint(0, len(blocks), (n_rows,), device=device)] = True
    swap_states = (chosen.float() @ state_blocks) > 0
    swap_actions = (chosen.float() @ action_blocks) > 0
    observations, next_observations = batch.observations.clone(), batch.next_observations.clone()
    actions = batch.actions.clone()
    observations[:n_rows] = th.where(swap_states, batch.observations[partners], batch.observations[:n_rows])
    next_observations[:n_rows] = th.where(swap_states, batch.next_observations[partners], batch.next_observations[:n_rows])
    actions[:n_rows] = th.where(swap_actions, batch.actions[partners], batch.actions[:n_rows])
    return batch._replace(observations=observations, next_observations=next_observations, actions=actions), n_rows
