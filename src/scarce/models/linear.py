"""Math shared by every linear-in-parameters model: predictive means, confidence widths,
posterior samples and Thompson-sampling choice probabilities. Implemented once, used by all
policies (LinUCB, LinTS, GLM-UCB, GLM-TS and the capability packages).

Two layouts:

* disjoint: contexts ``X`` ``(n, d)``, parameters ``theta`` ``(K, d)`` and covariances
  ``cov`` ``(K, d, d)``, one per action;
* shared: per-action features ``X`` ``(n, K, d)``, one parameter vector ``theta`` ``(1, d)``
  and ``cov`` ``(1, d, d)``.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import ndtr

_CHUNK_BYTES = 4 << 20
_GH_NODES, _GH_WEIGHTS = hermegauss(48)
_GH_WEIGHTS = _GH_WEIGHTS / np.sqrt(2.0 * np.pi)  # expectations under N(0, 1)


def predict_mean(X: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``(n, K)`` linear predictions ``x^T theta``."""
    if X.ndim == 2:
        return X @ theta.T
    return X @ theta[0]


def predict_variance(X: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``(n, K)`` quadratic forms ``x^T cov x`` (squared confidence widths, unscaled)."""
    if X.ndim == 2:
        K, d, _ = cov.shape
        if X.shape[0] == 1:
            x = X[0]
            return ((cov @ x) @ x)[None, :]
        # one GEMM against all K covariances side by side, in cache-sized chunks
        stacked = cov.transpose(1, 0, 2).reshape(d, K * d)
        out = np.empty((X.shape[0], K))
        ones = np.ones(d)
        step = max(1, _CHUNK_BYTES // (8 * K * d))
        for start in range(0, X.shape[0], step):
            Xc = X[start : start + step]
            Z = (Xc @ stacked).reshape(Xc.shape[0], K, d)
            Z *= Xc[:, None, :]
            # the reduction over d as a GEMV: about twice as fast as Z.sum(axis=2) here
            out[start : start + step] = (Z.reshape(-1, d) @ ones).reshape(-1, K)
        return out
    Z = X @ cov[0]  # (n, K, d)
    return np.einsum("nkd,nkd->nk", Z, X)


def predict(X: np.ndarray, theta: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (non-negative) variance of ``x^T theta`` for ``theta ~ N(theta, cov)``."""
    return predict_mean(X, theta), np.maximum(predict_variance(X, cov), 0.0)


def sample_scores(
    X: np.ndarray,
    theta: np.ndarray,
    cov: np.ndarray,
    scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n, K)`` draws of ``x^T theta~`` with ``theta~ ~ N(theta, scale^2 cov)``, one draw per case.

    Disjoint actions have independent posteriors, so drawing each score from its exact
    univariate marginal has the same joint law as drawing ``theta~`` per action (and costs
    ``K`` normals per case instead of ``K d``). With shared parameters the scores are
    correlated and a full ``theta~`` is drawn per case.
    """
    if X.ndim == 2:
        mean, var = predict(X, theta, cov)
        return mean + scale * np.sqrt(var) * rng.standard_normal(mean.shape)
    draws = sample_parameters(theta[0], cov[0], scale, X.shape[0], rng)
    return np.einsum("nkd,nd->nk", X, draws)


def sample_parameters(
    theta: np.ndarray, cov: np.ndarray, scale: float, n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n_draws, p)`` draws of ``N(theta, scale^2 cov)`` for ``theta`` ``(p,)`` and ``cov``
    ``(p, p)`` (symmetrised; a covariance that is only semi-definite in floating point is
    factored through its eigendecomposition instead of failing)."""
    L = _cholesky(cov)
    return theta + scale * rng.standard_normal((n_draws, theta.shape[0])) @ L.T


def _cholesky(cov: np.ndarray) -> np.ndarray:
    sym = 0.5 * (cov + cov.T)
    try:
        return np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(sym)
        return V * np.sqrt(np.clip(w, 0.0, None))


def gaussian_argmax_probabilities(
    mean: np.ndarray, std: np.ndarray, eligible: np.ndarray | None = None
) -> np.ndarray:
    """``(n, K)`` probability that each independent Gaussian ``N(mean, std^2)`` is the largest.

    Exact up to 48-node Gauss-Hermite quadrature of
    ``P(k wins) = E_z[ prod_{j != k} Phi((mean_k + std_k z - mean_j) / std_j) ]``.
    Ineligible actions get probability 0; rows are renormalised to absorb quadrature error.
    """
    n, K = mean.shape
    std = np.maximum(std, 1e-12)
    if eligible is None:
        eligible = np.ones((n, K), dtype=bool)
    # values of every action at every quadrature node: (n, K, q)
    vals = mean[:, :, None] + std[:, :, None] * _GH_NODES[None, None, :]
    # log Phi((v_k - mean_j)/std_j) for all j: (n, K(k), K(j), q)
    z = (vals[:, :, None, :] - mean[:, None, :, None]) / std[:, None, :, None]
    logcdf = np.log(np.maximum(ndtr(z), 1e-300))
    logcdf = np.where(eligible[:, None, :, None], logcdf, 0.0)
    idx = np.arange(K)
    logcdf[:, idx, idx, :] = 0.0
    probs = np.exp(logcdf.sum(axis=2)) @ _GH_WEIGHTS
    probs = np.where(eligible, probs, 0.0)
    total = probs.sum(axis=1, keepdims=True)
    return probs / np.where(total > 0, total, 1.0)


def gaussian_argmax_probability_of(
    mean: np.ndarray, std: np.ndarray, actions: np.ndarray, eligible: np.ndarray | None = None
) -> np.ndarray:
    """``(n,)`` probability that ``actions[i]`` is the largest of independent Gaussians (one
    quadrature per case; cheaper than :func:`gaussian_argmax_probabilities` for all ``K``)."""
    n, K = mean.shape
    rows = np.arange(n)
    std = np.maximum(std, 1e-12)
    vals = mean[rows, actions][:, None] + std[rows, actions][:, None] * _GH_NODES[None, :]  # (n, q)
    z = (vals[:, None, :] - mean[:, :, None]) / std[:, :, None]  # (n, K, q)
    logcdf = np.log(np.maximum(ndtr(z), 1e-300))
    keep = np.ones((n, K), dtype=bool) if eligible is None else eligible.copy()
    keep[rows, actions] = False
    logcdf = np.where(keep[:, :, None], logcdf, 0.0)
    return np.clip(np.exp(logcdf.sum(axis=1)) @ _GH_WEIGHTS, 0.0, 1.0)


def monte_carlo_argmax_probabilities(
    X: np.ndarray,
    theta: np.ndarray,
    cov: np.ndarray,
    scale: float,
    rng: np.random.Generator,
    n_samples: int,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """``(n, K)`` Monte-Carlo estimate of Thompson sampling's choice probabilities (any layout)."""
    n, K = X.shape[0], (X.shape[1] if X.ndim == 3 else theta.shape[0])
    counts = np.zeros((n, K))
    rows = np.arange(n)
    for _ in range(n_samples):
        s = sample_scores(X, theta, cov, scale, rng)
        if eligible is not None:
            s = np.where(eligible, s, -np.inf)
        counts[rows, np.argmax(s, axis=1)] += 1.0
    return counts / n_samples
