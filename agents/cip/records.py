"""What CIP reports about its schedule and each discovery round (docs/cip.md b.1): the lines
printed when learn() starts a run in which a part would stay off, one JSON-ready record per
round (``CIP.discovery_log``), the SB3 logger's ``cip/...`` and ``causal/...`` keys, and the
one-line summary printed when a round's result changes.

Spec: docs/cip.md (b.1), Cao et al., ICLR 2025, arXiv:2502.10097.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.type_aliases import TrainFrequencyUnit

from causalrl.agents.cip.discovery import DiscoveryRound, jaccard

__all__ = [
    "dimension_names", "expected_updates", "record_round", "record_training", "round_line", "round_record",
    "schedule_lines",
]


def record_training(record, n_updates: int, weights, stats: dict) -> None:
    """One train() call's means through an SB3 logger's ``record``: losses, alpha, the weights in
    use (``causal/weights/a<j>``), the empowerment term and its share of the actor's gradient."""
    record("train/n_updates", n_updates, exclude="tensorboard")
    for index, weight in enumerate(weights.tolist()):
        record(f"causal/weights/a{index}", weight)
    record("train/ent_coef", _mean(stats["ent_coef"]))
    record("train/critic_loss", _mean(stats["critic"]))
    if stats["actor"]:
        record("train/actor_loss", _mean(stats["actor"]))
    if stats["models"]:
        record("train/inverse_model_loss", _mean([loss[0] for loss in stats["models"]]))
        record("train/forward_model_loss", _mean([loss[1] for loss in stats["models"]]))
    if stats["empowerment"]:
        record("train/empowerment", _mean(stats["empowerment"]))
        record("cip/empowerment_grad_ratio", _mean(stats["ratio"]))


def _mean(values: list[float]) -> float:
    """The mean of a short list of floats (a train() call's; np.mean costs more than the sum)."""
    return sum(values) / len(values)


def expected_updates(agent, end: int) -> int | None:
    """About how many gradient updates an SB3 off-policy ``agent`` will have made at env step
    ``end`` (None when its train frequency counts episodes)."""
    if agent.train_freq.unit != TrainFrequencyUnit.STEP:
        return None
    steps_per_call = agent.train_freq.frequency * agent.n_envs
    per_call = agent.gradient_steps if agent.gradient_steps >= 0 else steps_per_call
    trained = max(0, end - max(agent.num_timesteps, agent.learning_starts))
    return agent._n_updates + trained // steps_per_call * per_call


def schedule_lines(agent, end: int) -> list[str]:
    """What a CIP ``agent``'s schedule implies for a run up to env step ``end``: a line when no
    discovery round falls in it, one when the empowerment term never starts, and the whole
    schedule with ``verbose >= 1``."""
    lines = []
    if agent.discovery is not None and agent.next_discovery_step > end:
        weights = np.round(agent.action_weights.tolist(), 3).tolist()
        lines.append(f"CIP: no discovery round in this run (steps {agent.num_timesteps}..{end}; the next is at step "
                     f"{agent.next_discovery_step}: discovery_start={agent.discovery_start}, discovery_interval="
                     f"{agent.discovery_interval}): action weights stay {weights}, augmentation blocks unchanged")
    updates = expected_updates(agent, end)
    if agent.empowerment and updates is not None and updates <= agent.empowerment_warmup:
        lines.append(f"CIP: the empowerment term does not start in this run: empowerment_warmup="
                     f"{agent.empowerment_warmup} updates, this run reaches about {updates}")
    if agent.verbose >= 1:
        lines.append(f"CIP schedule: discovery at env step {agent.next_discovery_step}, then every multiple of "
                     f"{agent.discovery_interval}, on up to {agent.discovery_samples} transitions; empowerment from "
                     f"update {agent.empowerment_warmup}; actor every {agent.policy_delay} updates")
    return lines


def dimension_names(env, attribute: str, count: int) -> list[str] | None:
    """The env's ``attribute`` (e.g. ``state_names``: one name per observation dimension) when it
    has one of the right length (read from a VecEnv's first env), else None."""
    if env is None:
        return None
    try:
        names = env.get_attr(attribute, indices=[0])[0]
    except Exception:  # noqa: BLE001 - any env without the attribute (AttributeError or a wrapper's own error)
        return None
    if names is None or isinstance(names, str) or len(names) != count:
        return None
    return [str(name) for name in names]


def _indices(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask).tolist()


def round_record(found: DiscoveryRound, round_index: int, step: int, previous: tuple | None,
                 state_names: list[str] | None = None, action_names: list[str] | None = None) -> dict:
    """One round as plain data (lists, numbers, strings): what a runner writes per round.

    ``previous``: the last round's (state parents, action parents) masks, or None; the Jaccard
    index of each parent set against it measures how stable discovery is across rounds."""
    blocks = []
    for states, actions in found.swap_blocks:
        block = {"states": [int(i) for i in states], "actions": [int(j) for j in actions]}
        if state_names is not None:
            block["state_names"] = [state_names[i] for i in states]
        if action_names is not None:
            block["action_names"] = [action_names[j] for j in actions]
        blocks.append(block)
    weights = np.asarray(found.action_weights, dtype=float)
    return {
        "round": int(round_index), "step": int(step), "transitions": int(found.rows),
        "reward_state_parents": _indices(found.reward_state_mask),
        "reward_action_parents": _indices(found.reward_action_mask),
        "direct_action_parents": _indices(found.direct_action_mask),
        "action_weights": [float(w) for w in weights],
        "action_weight_ratio": float(weights.max() / weights.min()),
        "constant_states": _indices(found.constant_states),
        "augmentation": found.augmentation_status,
        "swapped_blocks": blocks,
        "jaccard_state_parents": jaccard(found.reward_state_mask, None if previous is None else previous[0]),
        "jaccard_action_parents": jaccard(found.reward_action_mask, None if previous is None else previous[1]),
        "transition_edges": int(found.transition_state_mask.sum() + found.transition_action_mask.sum()),
    }


def record_round(record, found: DiscoveryRound, entry: dict, seconds: float, augmentation: bool) -> None:
    """The round through an SB3 logger's ``record``: masks, selection frequencies, weights, the
    swapped dimensions (``cip/swapped_state/s<i>``, ``cip/swapped_action/a<j>``), the Jaccard
    index of the parent sets against the previous round, and the augmentation state."""
    record("causal/discovery_rounds", entry["round"])
    record("causal/discovery_seconds", seconds)
    record("causal/reward_state_parents", int(found.reward_state_mask.sum()))
    record("causal/reward_action_parents", int(found.reward_action_mask.sum()))
    record("cip/discovery_round", entry["round"])
    swapped_states = np.zeros(found.reward_state_mask.size, dtype=int)
    swapped_actions = np.zeros(found.reward_action_mask.size, dtype=int)
    if augmentation:
        for states, actions in found.swap_blocks:
            swapped_states[states], swapped_actions[actions] = 1, 1
    for index, (parent, share) in enumerate(zip(found.reward_state_mask, found.state_frequency)):
        record(f"cip/state_parent/s{index}", int(parent))
        record(f"cip/state_parent_frequency/s{index}", float(share))
        record(f"cip/swapped_state/s{index}", int(swapped_states[index]))
    for index, (parent, share, weight) in enumerate(zip(found.reward_action_mask, found.action_frequency,
                                                        entry["action_weights"])):
        record(f"cip/action_parent/a{index}", int(parent))
        record(f"cip/action_parent_frequency/a{index}", float(share))
        record(f"cip/action_weight/a{index}", float(weight))
        record(f"cip/swapped_action/a{index}", int(swapped_actions[index]))
    record("cip/action_weight_ratio", entry["action_weight_ratio"])
    for key in ("jaccard_state_parents", "jaccard_action_parents"):
        if entry[key] is not None:
            record(f"cip/{key}", entry[key])
    record("cip/transition_edges", entry["transition_edges"])
    record("cip/constant_states", len(entry["constant_states"]))
    record("cip/augmentation_active", int(augmentation and bool(found.swap_blocks)))
    record("cip/swappable_states", int(sum(len(states) for states, _ in found.swap_blocks)))
    record("cip/swappable_actions", int(sum(len(actions) for _, actions in found.swap_blocks)))


def round_line(entry: dict, augmentation: bool) -> str:
    """The round in one line, e.g. ``augmentation on, swapping {s3 s4 | a1}; constant, never
    swapped: s8 (qfrc_constraint)`` (names where the env gives them)."""
    def named(indices, names, prefix):
        return " ".join(f"{prefix}{i}" + (f" ({names[k]})" if names else "") for k, i in enumerate(indices))

    if not augmentation:
        text = "augmentation disabled (augmentation=False)"
    elif entry["augmentation"] == "on":
        blocks = ["{" + named(b["states"], b.get("state_names"), "s")
                  + (" | " + named(b["actions"], b.get("action_names"), "a") if b["actions"] else "") + "}"
                  for b in entry["swapped_blocks"]]
        text = "augmentation on, swapping " + " ".join(blocks)
    else:
        text = f"augmentation {entry['augmentation']}"
    if entry["constant_states"]:
        text += "; constant, never a parent or swapped: " + " ".join(f"s{i}" for i in entry["constant_states"])
    parents = " ".join(f"s{i}" for i in entry["reward_state_parents"]) or "none"
    actions = " ".join(f"a{j}" for j in entry["reward_action_parents"]) or "none"
    return f"{text}; reward parents: {parents} | {actions}"
