"""k-nearest-neighbour mutual information: the Kraskov-Stögbauer-Grassberger (KSG) estimator 2.

Reference: A. Kraskov, H. Stögbauer, P. Grassberger, "Estimating mutual information",
Phys. Rev. E 69, 066138 (2004), eq. (9):

    I(X; Y) = psi(k) - 1/k - < psi(n_x(i)) + psi(n_y(i)) > + psi(M)

with the max-norm in the joint space. For each sample i, the k nearest joint-space neighbours
(the nearest one included) give eps_x(i) and eps_y(i), the largest marginal distances among them;
n_x(i) (n_y(i)) counts the *other* samples within eps_x(i) (eps_y(i)) in that marginal. M is the
sample size. This is the resolution of docs/csl-ucb.md (g) item 11 (the reference code skips the
nearest neighbour; we do not).

CSL-UCB scores at most n_max = 100 samples, and many candidate regressors share one target, so
the work is dense (M, M) distance matrices batched over regressors
(:func:`ksg_mutual_information_many`): the k nearest neighbours come from k vectorised argmin
passes, and the marginal counts from binary search in the sorted samples. The digamma function
is only ever taken of counts (positive integers), so :func:`digamma_of_counts` computes it
exactly enough (within one ulp of scipy's) without loading ``scipy.special``, which costs a
default run more start-up time than all of CSL-UCB's estimates.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "digamma_of_counts",
    "max_norm_distances",
    "ksg_mutual_information",
    "ksg_mutual_information_many",
]

#: relative slack when counting samples at exactly the marginal radius (the neighbour that
#: defines eps sits on the boundary and must be counted despite rounding)
_BOUNDARY_SLACK = 1e-9

_EULER_GAMMA = 0.57721566490153286061
#: psi(m) = -gamma + H_(m-1) for m = 1..9 (index 0: the pole, -inf), each sum correctly rounded
_SMALL_DIGAMMA = np.array([-math.inf] + [-_EULER_GAMMA + math.fsum(1.0 / i for i in range(1, m)) for m in range(1, 10)])


def digamma_of_counts(counts) -> np.ndarray:
    """psi(n) for non-negative integer ``n`` (array-like; psi(0) = -inf, the pole, as in scipy).

    Below 10 from the harmonic numbers; from 10 on the asymptotic series
    ``log n - 1/(2n) - sum_k B_2k / (2k n^2k)`` to the n^-14 term, whose remainder is below
    1e-17 there. Within one ulp of ``scipy.special.digamma`` for every n up to 2e6 (a test checks)."""
    counts = np.asarray(counts)
    if np.any(counts < 0):
        raise ValueError(f"counts: digamma_of_counts takes counts >= 0, got {counts.min()}")
    small = counts < _SMALL_DIGAMMA.size
    x = np.where(small, 10.0, counts).astype(float)  # the series only where it converges
    w = 1.0 / (x * x)
    series = w * (1 / 12 - w * (1 / 120 - w * (1 / 252 - w * (1 / 240 - w * (1 / 132 - w * (691 / 32760 - w / 12))))))
    return np.where(small, _SMALL_DIGAMMA[np.where(small, counts, 0)], np.log(x) - 0.5 / x - series)


def max_norm_distances(samples) -> np.ndarray:
    """Pairwise max-norm distances of samples.

    ``samples`` of shape (M,) gives (M, M); shape (M, d) gives (M, M) with the max over the d
    coordinates (one d-dimensional variable).
    """
    samples = np.asarray(samples, dtype=float)
    if samples.ndim == 1:
        return np.abs(samples[:, None] - samples[None, :])
    return np.abs(samples[:, None, :] - samples[None, :, :]).max(axis=-1)


def _check_k(k: int, n_samples: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n_samples:
        raise ValueError(f"k: need an integer 1 <= k < number of samples ({n_samples}), got {k!r}")


def _nearest_marginal_radii(x_distances: np.ndarray, y_distances: np.ndarray, k: int):
    """eps_x, eps_y of each sample: the largest marginal distances among its k nearest
    joint-space (max-norm) neighbours. ``x_distances`` (p, M, M), ``y_distances`` (M, M);
    returns two (p, M) arrays."""
    n_vars, n_samples = x_distances.shape[0], x_distances.shape[-1]
    joint = np.maximum(x_distances, y_distances).reshape(n_vars * n_samples, n_samples)
    x_flat = x_distances.reshape(n_vars * n_samples, n_samples)
    rows = np.arange(n_vars * n_samples)
    own = rows % n_samples
    joint[rows, own] = np.inf  # a sample is not its own neighbour
    eps_x = np.zeros(n_vars * n_samples)
    eps_y = np.zeros(n_vars * n_samples)
    for _ in range(k):  # k argmin passes beat a partition for small k
        nearest = joint.argmin(axis=-1)
        np.maximum(eps_x, x_flat[rows, nearest], out=eps_x)
        np.maximum(eps_y, y_distances[own, nearest], out=eps_y)
        joint[rows, nearest] = np.inf
    return eps_x.reshape(n_vars, n_samples), eps_y.reshape(n_vars, n_samples)


def _count_within(sorted_values: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each centre (one of the samples), the number of *other* samples within its radius."""
    slack = _BOUNDARY_SLACK * radii + 4 * np.spacing(np.abs(centres) + radii)
    upper = np.searchsorted(sorted_values, centres + radii + slack, side="right")
    lower = np.searchsorted(sorted_values, centres - radii - slack, side="left")
    return upper - lower - 1


def _ksg_formula(count_x: np.ndarray, count_y: np.ndarray, k: int, n_samples: int) -> np.ndarray:
    # KSG eq. (9): psi(k) - 1/k - <psi(n_x) + psi(n_y)> + psi(M)
    psi = digamma_of_counts
    return psi(k) - 1.0 / k - (psi(count_x) + psi(count_y)).mean(axis=-1) + psi(n_samples)


def ksg_mutual_information_many(x_columns, y, k: int = 5, x_distances: np.ndarray | None = None) -> np.ndarray:
    """KSG estimates (nats) of I(X_j; Y) for every column j of ``x_columns`` (M, p) against one
    scalar ``y`` (M,), in one batched pass. Returns shape (p,).

    ``x_distances`` (p, M, M), if given, must be ``|x_j[s] - x_j[r]|`` for every column: callers
    that score many targets against the same regressors compute it once.
    """
    x_columns = np.asarray(x_columns, dtype=float)
    y = np.asarray(y, dtype=float)
    if x_columns.ndim != 2 or y.ndim != 1 or x_columns.shape[0] != y.shape[0]:
        raise ValueError(f"x_columns, y: need shapes (M, p) and (M,), got {x_columns.shape} and {y.shape}")
    n_samples, n_vars = x_columns.shape
    _check_k(k, n_samples)
    if n_vars == 0:
        return np.zeros(0)
    if x_distances is None:
        x_distances = np.abs(x_columns.T[:, :, None] - x_columns.T[:, None, :])
    eps_x, eps_y = _nearest_marginal_radii(x_distances, max_norm_distances(y), k)
    count_y = _count_within(np.sort(y), np.broadcast_to(y, eps_y.shape), eps_y)
    count_x = np.empty_like(count_y)
    for j in range(n_vars):
        column = x_columns[:, j]
        count_x[j] = _count_within(np.sort(column), column, eps_x[j])
    return _ksg_formula(count_x, count_y, k, n_samples)


def ksg_mutual_information(x, y, k: int = 5) -> float:
    """KSG estimate (nats) of I(X; Y) from paired samples.

    ``x`` and ``y`` have M rows each: shape (M,) for a scalar variable or (M, d) for a vector
    one (max-norm over its coordinates). Needs 1 <= k < M.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x, y: need the same number of samples, got {x.shape[0]} and {y.shape[0]}")
    if x.ndim == 1 and y.ndim == 1:
        return float(ksg_mutual_information_many(x[:, None], y, k)[0])
    _check_k(k, x.shape[0])
    x_distances, y_distances = max_norm_distances(x), max_norm_distances(y)
    eps_x, eps_y = _nearest_marginal_radii(x_distances[None], y_distances, k)
    count_x = (x_distances <= eps_x[0][:, None]).sum(axis=-1) - 1
    count_y = (y_distances <= eps_y[0][:, None]).sum(axis=-1) - 1
    return float(_ksg_formula(count_x, count_y, k, x.shape[0]))
