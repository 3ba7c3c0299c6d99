"""Graph-recovery metrics between a learned and a true edge set (the one module for them).

Adjacencies follow the causalrl convention (``[j, i] != 0`` means j -> i). Definitions follow
docs/csl-ucb.md (d): FNR = FN / #true edges, FPR = FP / #true non-edges, and SHD counts a reversed
edge once (FP + FN - #reversed).

Structures come as what the API hands out: a matrix, a stack of matrices, a mapping of named
matrices (``agent.learned_structure``) or an object with matrix attributes
(``env.unwrapped.causal_structure``: a ``LinearSEM`` or a ``FactoredStructure``). Named structures
are compared name by name on the names the learned one has (:func:`structure_pairs`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["structure_metrics", "structure_pairs", "edge_classes", "EDGE_KINDS", "OPTIMAL_TOLERANCE"]

#: the classes of :func:`edge_classes`, in drawing order
EDGE_KINDS = ("true_positive", "false_positive", "false_negative", "reversed")

#: a bandit play counts as optimal when its expected reward is within this of the best
#: (docs/csl-ucb.md, metrics); worlds and the runner's metrics share it
OPTIMAL_TOLERANCE = 0.01


def _named(structure, what: str) -> dict | None:
    """``structure`` as {name: matrix} when it is a mapping or an object with matrix attributes,
    None when it is array-like."""
    if isinstance(structure, dict):
        return structure
    if isinstance(structure, (np.ndarray, list, tuple)) or np.isscalar(structure):
        return None
    fields = getattr(structure, "__dataclass_fields__", None)
    names = list(fields) if fields else [n for n in vars(structure) if not n.startswith("_")] if hasattr(
        structure, "__dict__") else []
    named = {}
    for name in names:
        value = getattr(structure, name, None)
        if isinstance(value, np.ndarray) and value.ndim == 2:
            named[name] = value
    if not named:
        raise ValueError(f"{what}: expected a matrix, a mapping of named matrices or a causal_structure object, "
                         f"got {type(structure).__name__}")
    return named


def structure_pairs(learned, true) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, learned mask, true mask)`` for every named matrix of ``learned`` that ``true`` has.

    ``learned`` is what ``agent.learned_structure`` returns (a mapping of named boolean matrices),
    ``true`` what ``env.unwrapped.causal_structure`` returns (an object with matrix attributes) or
    a mapping; arrays on both sides give one pair named ``"graph"``. Entries that are None are
    skipped. A learned name the truth lacks, or a shape mismatch, is a ``ValueError``.
    """
    if learned is None:
        raise ValueError("learned: no structure learned yet (learned_structure is None); "
                         "train the agent until its first structure-learning round")
    learned_named, true_named = _named(learned, "learned"), _named(true, "true")
    if learned_named is None and true_named is None:
        pairs = [("graph", np.asarray(learned) != 0, np.asarray(true) != 0)]
    elif learned_named is None or true_named is None:
        side = "learned" if learned_named is None else "true"
        raise ValueError(f"{side}: a plain matrix cannot be matched to named matrices; pass both as mappings "
                         "(or both as arrays)")
    else:
        pairs = []
        for name, mask in learned_named.items():
            if mask is None:
                continue
            if name not in true_named:
                raise ValueError(f"learned: {name!r} is not in the true structure (it has "
                                 f"{', '.join(sorted(true_named))}); compare structures of the same world")
            pairs.append((name, np.asarray(mask) != 0, np.asarray(true_named[name]) != 0))
        if not pairs:
            raise ValueError("learned: empty structure ({}: no discovery round yet); train longer before scoring")
    for name, mask, truth in pairs:
        if mask.shape != truth.shape:
            raise ValueError(f"learned structure {name} has shape {mask.shape}, true has {truth.shape}")
    return pairs


def edge_classes(learned, true) -> dict[str, np.ndarray]:
    """Boolean masks, shaped like the matrices, of the :data:`EDGE_KINDS` of one learned graph
    against the true one (``[j, i]`` = j -> i):

    - ``true_positive``: j -> i learned and true;
    - ``reversed``: j -> i learned where the truth has only i -> j (square graphs);
    - ``false_positive``: j -> i learned, not true and not a reversal (an extra edge);
    - ``false_negative``: j -> i true, not learned and not learned reversed (a missing edge).

    Self-loops of square graphs are ignored. Counts agree with :func:`structure_metrics`:
    SHD = #false_positive + #false_negative + #reversed.
    """
    learned_mask, true_mask = np.asarray(learned) != 0, np.asarray(true) != 0
    if learned_mask.shape != true_mask.shape or learned_mask.ndim != 2:
        raise ValueError(f"edge_classes: expected two matrices of one shape, got {learned_mask.shape} and {true_mask.shape}")
    candidates = np.ones_like(true_mask)
    reversed_edges = reversed_true = np.zeros_like(true_mask)
    if true_mask.shape[0] == true_mask.shape[1]:
        candidates &= ~np.eye(true_mask.shape[0], dtype=bool)
        reversed_edges = learned_mask & ~true_mask & true_mask.T & ~learned_mask.T & candidates
        reversed_true = reversed_edges.T  # the true edge that was learned the other way round
    return {
        "true_positive": learned_mask & true_mask & candidates,
        "false_positive": learned_mask & ~true_mask & candidates & ~reversed_edges,
        "false_negative": ~learned_mask & true_mask & candidates & ~reversed_true,
        "reversed": reversed_edges,
    }


def structure_metrics(learned, true) -> dict[str, float]:
    """SHD, FNR, FPR, precision, recall and F1 of ``learned`` against ``true``.

    Takes one graph (N, N), a stack of graphs (K, N, N) scored as one edge set (e.g. both
    mechanisms of a bandit), or a rectangular mask such as state -> reward (then no edge can be
    reversed). Self-loops of square graphs are ignored. Ratios with an empty denominator are 0,
    except that recovering an empty graph exactly scores precision = recall = F1 = 1.

    It also takes what the API hands out, ``structure_metrics(agent.learned_structure,
    env.unwrapped.causal_structure)``: the named matrices are matched by name
    (:func:`structure_pairs`) and scored as one edge set (stacked when they share a shape, else
    flattened into one rectangular mask, where no edge counts as reversed).
    """
    if learned is None or isinstance(learned, dict) or _named(true, "true") is not None:
        pairs = structure_pairs(learned, true)
        if len({mask.shape for _, mask, _ in pairs}) == 1:
            learned, true = np.stack([m for _, m, _ in pairs]), np.stack([t for _, _, t in pairs])
        else:
            learned = np.concatenate([m.ravel() for _, m, _ in pairs])[None]
            true = np.concatenate([t.ravel() for _, _, t in pairs])[None]
    learned_mask = np.asarray(learned) != 0
    true_mask = np.asarray(true) != 0
    if learned_mask.shape != true_mask.shape:
        raise ValueError(f"learned structure has shape {learned_mask.shape}, true has {true_mask.shape}")
    if true_mask.ndim < 2:
        raise ValueError(f"structure: expected a matrix or a stack of matrices, got shape {true_mask.shape}")
    square = true_mask.shape[-1] == true_mask.shape[-2]
    candidates = np.ones_like(true_mask)
    if square:
        candidates &= ~np.eye(true_mask.shape[-1], dtype=bool)
    true_positive = int(np.sum(learned_mask & true_mask & candidates))
    false_positive = int(np.sum(learned_mask & ~true_mask & candidates))
    false_negative = int(np.sum(~learned_mask & true_mask & candidates))
    n_true = int(np.sum(true_mask & candidates))
    n_non_edges = int(np.sum(~true_mask & candidates))
    reversed_edges = 0
    if square:  # learned j -> i where the truth has only i -> j: one error, not an FP plus an FN
        transposed_true, transposed_learned = np.swapaxes(true_mask, -1, -2), np.swapaxes(learned_mask, -1, -2)
        reversed_edges = int(np.sum(learned_mask & ~true_mask & transposed_true & ~transposed_learned))
    if n_true == 0 and true_positive + false_positive == 0:
        precision = recall = f1 = 1.0
    else:
        precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 0.0
        recall = true_positive / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "shd": float(false_positive + false_negative - reversed_edges),
        "fnr": false_negative / n_true if n_true else 0.0,
        "fpr": false_positive / n_non_edges if n_non_edges else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
