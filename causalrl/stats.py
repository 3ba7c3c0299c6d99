"""Small statistics helpers shared by agents, runner and reports (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["least_squares", "ols_covariance_scale"]


def least_squares(regressors: np.ndarray, targets: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Coefficients of ``targets ~ regressors`` without intercept.

    ``regressors`` is (n, p), ``targets`` (n,) or (n, k). With ``ridge = 0`` this is ordinary
    least squares through the pseudo-inverse (well defined when X^T X is singular, as can happen
    with few samples, csl-ucb.md (g) item 2); ``ridge > 0`` solves (X^T X + ridge I) b = X^T y.
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
