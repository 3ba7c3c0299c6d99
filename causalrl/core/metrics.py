"""Graph-recovery metrics between a learned and a true edge set (the one module for them).

Adjacencies follow the causalrl convention (``[j, i] != 0`` means j -> i). Definitions follow
docs/csl-ucb.md (d): FNR = FN / #true edges, FPR = FP / #true non-edges, and SHD counts a reversed
edge once (FP + FN - #reversed).
"""

from __future__ import annotations

import numpy as np

__all__ = ["structure_metrics", "OPTIMAL_TOLERANCE"]

#: a bandit play counts as optimal when its expected reward is within this of the best
#: (docs/csl-ucb.md, metrics); worlds and the runner's metrics share it
OPTIMAL_TOLERANCE = 0.01


def structure_metrics(learned, true) -> dict[str, float]:
    """SHD, FNR, FPR, precision, recall and F1 of ``learned`` against ``true``.

    Takes one graph (N, N), a stack of graphs (K, N, N) scored as one edge set (e.g. both
    mechanisms of a bandit), or a rectangular mask such as state -> reward (then no edge can be
    reversed). Self-loops of square graphs are ignored. Ratios with an empty denominator are 0,
    except that recovering an empty graph exactly scores precision = recall = F1 = 1.
    """
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
