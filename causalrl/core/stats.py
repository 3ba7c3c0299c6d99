"""Small statistics helpers shared by agents, runner and reports (numpy only)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["least_squares", "ols_covariance_scale", "iqm", "stratified_bootstrap_ci", "adaptive_lasso",
           "stability_selection", "regression_t_statistics", "performance_profile", "probability_of_improvement"]


def least_squares(regressors: np.ndarray, targets: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Coefficients of ``targets ~ regressors`` without intercept.

    ``regressors`` is (n, p), ``targets`` (n,) or (n, k). With ``ridge = 0`` this is ordinary
    least squares through the pseudo-inverse (well defined when X^T X is singular, as can happen
    with few samples, docs/csl-ucb.md (g) item 2); ``ridge > 0`` solves (X^T X + ridge I) b = X^T y.
    """
    regressors = np.asarray(regressors, dtype=float)
    if regressors.shape[1] == 0:
        return np.zeros((0,) + np.shape(targets)[1:])
    gram = regressors.T @ regressors
    moment = regressors.T @ np.asarray(targets, dtype=float)
    if ridge > 0:
        return np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), moment)
    return np.linalg.pinv(gram, hermitian=True) @ moment


def ols_covariance_scale(regressors: np.ndarray) -> np.ndarray:
    """(X^T X)^+ : the coefficient covariance of OLS divided by the noise variance."""
    regressors = np.asarray(regressors, dtype=float)
    return np.linalg.pinv(regressors.T @ regressors, hermitian=True)


# --- aggregate statistics of runs (rliable-style; Agarwal et al. 2021, "Deep RL at the edge of
# the statistical precipice"), in numpy so reports need no extra dependency ---------------------
def iqm(scores, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of ``scores``.

    Sorts along ``axis`` (None: all values pooled, as rliable's ``aggregate_iqm``) and drops
    ``floor(0.25 n)`` values at each end, exactly like ``scipy.stats.trim_mean(scores, 0.25)``.
    With n < 4 nothing is dropped and the IQM is the mean.
    """
    values = np.asarray(scores, dtype=float)
    if axis is None:
        values, axis = values.ravel(), 0
    values = np.sort(np.moveaxis(values, axis, 0), axis=0)
    count = values.shape[0]
    if count == 0:
        raise ValueError("iqm: no scores")
    cut = int(0.25 * count)
    result = values[cut:count - cut].mean(axis=0)
    return float(result) if np.ndim(result) == 0 else result


def stratified_bootstrap_ci(
    scores,
    statistic: Callable = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple:
    """Point estimate and percentile confidence interval of ``statistic`` by stratified bootstrap.

    ``scores`` is either a (runs x tasks) matrix, as rliable's ``score_dict`` values, or a
    sequence with one array per task whose first axis is runs (tasks may have different run
    counts; extra axes, e.g. curve steps, are carried along). Each bootstrap replicate resamples
    runs with replacement *within each task* (the strata), pools the tasks' runs and applies
    ``statistic(pooled, axis=0)``. Returns ``(point, low, high)``, each a float or, with extra
    axes, an array of their shape; the interval is the (1-confidence)/2 and (1+confidence)/2
    percentiles of the replicates.
    """
    if isinstance(scores, np.ndarray) and scores.ndim == 2:
        tasks: Sequence[np.ndarray] = [scores[:, j] for j in range(scores.shape[1])]
    elif isinstance(scores, np.ndarray) and scores.ndim == 1:
        tasks = [scores]
    else:
        tasks = [np.asarray(task, dtype=float) for task in scores]
    tasks = [np.asarray(task, dtype=float) for task in tasks]
    if not tasks or any(task.ndim == 0 or task.shape[0] == 0 for task in tasks):
        raise ValueError("stratified_bootstrap_ci: every task needs at least one run")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    pooled = np.concatenate(tasks, axis=0)
    point = statistic(pooled, axis=0)
    rng = np.random.default_rng(seed)
    # (reps, runs_j, ...) per task: runs drawn with replacement inside the task only
    replicates = np.concatenate(
        [task[rng.integers(0, task.shape[0], size=(reps, task.shape[0]))] for task in tasks], axis=1
    )
    estimates = statistic(replicates, axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail], axis=0)
    if np.ndim(point) == 0:
        return float(point), float(low), float(high)
    return np.asarray(point), np.asarray(low), np.asarray(high)


def adaptive_lasso(regressors: np.ndarray, targets: np.ndarray, gamma: float = 1.0,
                   patience: int | None = 10) -> np.ndarray:
    """Relaxed adaptive-lasso coefficients of ``targets ~ regressors`` (with intercept), by BIC.

    Zou (2006): penalty weights 1/|b_ols|^gamma from an OLS fit (:func:`least_squares`, a tiny
    ridge guards collinear columns); the exact lasso path on the standardised, reweighted
    columns (LARS with the lasso modification, Efron et al. 2004, "Least angle regression"),
    from the penalty that zeroes everything down to 0. Each distinct support on the path is
    refitted by OLS and scored by BIC ``n log(RSS/n) + df log(n)`` (as LassoLarsIC in
    causal-learn's DirectLiNGAM, but on the refit, so shrinkage does not bias the choice); the
    best support's OLS coefficients are returned, on the original columns. Exact zeros mean
    "not selected"; constant columns get 0; RSS is floored at 1e-12 of the target variance, so
    noise-free targets work. The path stops early once a support reaches n/2 columns (BIC is
    unreliable beyond) or, with ``patience``, after that many distinct supports in a row that
    do not improve the best BIC (the BIC curve along the path has one valley in practice; None
    walks the whole path).
    """
    x = np.asarray(regressors, dtype=float)
    y = np.asarray(targets, dtype=float).reshape(-1)
    n, p = x.shape
    coefficients = np.zeros(p)
    scale = x.std(axis=0)
    usable = scale > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    if n < 2 or not usable.any() or y.std() == 0:
        return coefficients
    xs = (x[:, usable] - x[:, usable].mean(0)) / scale[usable]
    yc = y - y.mean()
    plain_gram, plain_moment = xs.T @ xs / n, xs.T @ yc / n
    y_power = float(yc @ yc / n)
    penalty_weights = np.abs(least_squares(xs, yc, ridge=1e-8 * n)) ** gamma
    gram = plain_gram * np.outer(penalty_weights, penalty_weights)
    moment = plain_moment * penalty_weights
    diagonal = np.maximum(np.diag(gram), 1e-300)
    lambda_max = float(np.abs(moment).max())
    if lambda_max == 0:
        return coefficients

    def refit(support: np.ndarray) -> tuple[float, np.ndarray]:
        beta_s = np.linalg.lstsq(plain_gram[np.ix_(support, support)], plain_moment[support], rcond=None)[0]
        rss = max(y_power - plain_moment[support] @ beta_s, 1e-12 * y_power)
        return n * np.log(rss) + support.size * np.log(n), beta_s

    best_bic, best_support, best_beta = n * np.log(y_power), np.zeros(0, dtype=int), np.zeros(0)
    seen: set[tuple[int, ...]] = set()
    since_best = 0
    for support in _lasso_path_supports(gram, moment):
        if (patience is not None and since_best >= patience) or len(best_support) >= n // 2 or support.size >= n // 2:
            break
        if tuple(support) in seen:
            continue
        seen.add(tuple(support))
        bic, beta_s = refit(support)
        since_best += 1
        if bic < best_bic:
            best_bic, best_support, best_beta, since_best = bic, support, beta_s, 0
    fitted = np.zeros(moment.size)
    fitted[best_support] = best_beta
    coefficients[usable] = fitted / scale[usable]
    return coefficients


def _lasso_path_supports(gram: np.ndarray, moment: np.ndarray):
    """The supports, in order, of the exact path of argmin_b b'Gb/2 - m'b + penalty |b|_1 as the
    penalty falls from max|m| to 0: LARS with the lasso modification (Efron et al. 2004), on the
    Gram matrix G and moments m. Along a segment the active coefficients move along
    G_AA^-1 s_A (s: the signs of their correlations m - Gb, all of size equal to the penalty);
    a segment ends when an inactive correlation reaches the penalty (the variable joins) or an
    active coefficient reaches 0 (it leaves). Columns with G_jj ~ 0 never join. Yields sorted
    index arrays (the empty support is not yielded)."""
    diagonal = np.diag(gram)
    candidate = diagonal > 1e-12 * max(float(diagonal.max(initial=0.0)), 1e-300)
    correlation = np.where(candidate, moment, 0.0)
    beta = np.zeros(moment.size)
    level = float(np.abs(correlation).max(initial=0.0))  # the penalty
    if level <= 0:
        return
    floor = 1e-12 * level
    active = [int(np.argmax(np.abs(correlation)))]
    just_left = -1
    for _ in range(8 * moment.size + 8):
        support = np.array(sorted(active))
        yield support
        signs = np.sign(correlation[support])
        block = gram[np.ix_(support, support)]
        direction = np.linalg.lstsq(block, signs, rcond=None)[0]
        slope = gram[:, support] @ direction  # how each correlation falls per unit of penalty
        with np.errstate(divide="ignore", invalid="ignore"):
            joins = np.minimum(np.where(1 - slope > 1e-12, (level - correlation) / (1 - slope), np.inf),
                               np.where(1 + slope > 1e-12, (level + correlation) / (1 + slope), np.inf))
            leaves = np.where(direction != 0, -beta[support] / direction, np.inf)
        outside = candidate.copy()
        outside[support] = False
        if just_left >= 0:
            outside[just_left] = False
        joins = np.where(outside & (joins > floor), joins, np.inf)
        leaves = np.where(leaves > floor, leaves, np.inf)
        step = min(float(joins.min(initial=np.inf)), float(leaves.min(initial=np.inf)), level)
        beta[support] += step * direction
        correlation -= step * slope
        level -= step
        if level <= floor:
            return
        if leaves.size and float(leaves.min()) <= step:
            leaving = int(support[int(np.argmin(leaves))])
            beta[leaving] = 0.0
            active.remove(leaving)
            just_left = leaving
            if not active:
                return
        else:
            active.append(int(np.argmin(joins)))
            just_left = -1


def stability_selection(
    regressors: np.ndarray,
    targets: np.ndarray,
    select: Callable[[np.ndarray, np.ndarray], np.ndarray],
    resamples: int = 20,
    fraction: float = 0.5,
    threshold: float = 0.6,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Variables selected in most subsamples (Meinshausen & Buehlmann 2010, "Stability selection").

    ``select(x, y)`` returns a boolean (or non-zero) array, one entry per candidate (the columns
    of ``x``, or groups of them, e.g. a variable and its square); it is run on
    ``resamples`` random subsamples of ``fraction`` of the rows, drawn without replacement. A
    column is kept when its selection frequency reaches ``threshold`` (> 0.5: "most"). With
    ``resamples = 1`` the one fit uses every row (plain selection). Returns ``(kept, frequency)``.
    """
    x = np.asarray(regressors, dtype=float)
    y = np.asarray(targets, dtype=float)
    n = x.shape[0]
    if int(resamples) < 1:
        raise ValueError(f"resamples: must be >= 1, got {resamples!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: must lie in (0, 1], got {fraction!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold: must lie in (0, 1], got {threshold!r}")
    if int(resamples) == 1:
        frequency = (np.asarray(select(x, y)) != 0).astype(float)
        return frequency >= threshold, frequency
    rng = np.random.default_rng(seed)
    size = max(2, int(round(fraction * n)))
    counts = 0.0
    for _ in range(int(resamples)):
        rows = rng.choice(n, size=min(size, n), replace=False)
        counts = counts + (np.asarray(select(x[rows], y[rows])) != 0)
    frequency = np.asarray(counts, dtype=float) / int(resamples)
    return frequency >= threshold, frequency


def regression_t_statistics(regressors: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """|t| statistics of every coefficient of the OLS fits ``targets[:, k] ~ 1 + regressors``.

    ``regressors`` is (n, p), ``targets`` (n,) or (n, k); returns (p, k) (or (p,)). Constant
    columns get 0. The residual variance is floored at 1e-12 of each target's variance, so a
    noise-free target gives very large (finite) statistics for its true regressors and
    ~0 for columns whose coefficient is exactly zero.
    """
    x = np.asarray(regressors, dtype=float)
    y = np.asarray(targets, dtype=float)
    single = y.ndim == 1
    y = y.reshape(len(y), -1)
    n, p = x.shape
    scale = x.std(axis=0)
    usable = scale > 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    statistics = np.zeros((p, y.shape[1]))
    if n <= int(usable.sum()) + 1 or not usable.any():
        return statistics[:, 0] if single else statistics
    xs = (x[:, usable] - x[:, usable].mean(0)) / scale[usable]
    yc = y - y.mean(0)
    covariance = ols_covariance_scale(xs)
    beta = covariance @ (xs.T @ yc)
    residual = yc - xs @ beta
    dof = n - int(usable.sum()) - 1
    noise = np.maximum((residual ** 2).sum(0) / dof, 1e-12 * np.maximum(yc.var(0), 1e-300))
    statistics[usable] = np.abs(beta) / np.sqrt(np.outer(np.maximum(np.diag(covariance), 1e-300), noise))
    return statistics[:, 0] if single else statistics


def performance_profile(tasks, thresholds, higher_is_better: bool = True) -> np.ndarray:
    """Run-score distribution (rliable's performance profile, ``score_distributions``): for each
    threshold tau, the share of runs scoring above tau, averaged over tasks (each task weighs the
    same, whatever its run count; with equal counts this is rliable's share over all runs).

    ``tasks`` is one array of final scores per task (or a (runs x tasks) matrix, as rliable).
    ``higher_is_better=False`` (e.g. regret) gives the share of runs scoring *at or below* tau.
    Returns an array shaped like ``thresholds``.
    """
    if isinstance(tasks, np.ndarray) and tasks.ndim == 2:
        tasks = [tasks[:, j] for j in range(tasks.shape[1])]
    tasks = [np.asarray(task, dtype=float).reshape(-1) for task in tasks]
    if not tasks or any(task.size == 0 for task in tasks):
        raise ValueError("performance_profile: every task needs at least one run")
    taus = np.asarray(thresholds, dtype=float)
    shares = [(task[:, None] > taus.reshape(-1)[None]) if higher_is_better else (task[:, None] <= taus.reshape(-1)[None])
              for task in tasks]
    return np.mean([share.mean(axis=0) for share in shares], axis=0).reshape(taus.shape)


def probability_of_improvement(x_tasks, y_tasks, higher_is_better: bool = True) -> float:
    """P(X > Y) averaged over tasks (rliable's ``probability_of_improvement``): per task, the
    Mann-Whitney U statistic of X's runs against Y's divided by the number of pairs, that is the
    share of (x, y) run pairs with x better than y, ties counting one half.

    ``x_tasks`` and ``y_tasks`` are one array of final scores per task (the same tasks, in the same
    order; run counts may differ) or (runs x tasks) matrices. ``higher_is_better=False`` (e.g.
    regret) counts x < y as better.
    """
    def split(scores):
        if isinstance(scores, np.ndarray) and scores.ndim == 2:
            return [scores[:, j] for j in range(scores.shape[1])]
        return [np.asarray(task, dtype=float).reshape(-1) for task in scores]

    xs, ys = split(x_tasks), split(y_tasks)
    if len(xs) != len(ys) or not xs or any(t.size == 0 for t in xs + ys):
        raise ValueError(f"probability_of_improvement: x and y need runs on the same tasks, got {len(xs)} and {len(ys)}")
    sign = 1.0 if higher_is_better else -1.0
    probabilities = []
    for x, y in zip(xs, ys):
        difference = sign * (x[:, None] - y[None, :])
        probabilities.append(float(np.mean(difference > 0) + 0.5 * np.mean(difference == 0)))
    return float(np.mean(probabilities))
