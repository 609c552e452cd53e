"""Math shared by every linear-in-parameters model: predictive means, confidence widths,
posterior samples and Thompson-sampling choice probabilities. Implemented once, used by all
policies (LinUCB, LinTS, GLM-UCB, GLM-TS and the capability packages) and by the replicated
simulator (:mod:`scarce.sim.replicated`).

Two layouts:

* disjoint: contexts ``X`` ``(n, d)``, parameters ``theta`` ``(K, d)`` and covariances
  ``cov`` ``(K, d, d)``, one per action;
* shared: per-action features ``X`` ``(n, K, d)``, one parameter vector ``theta`` ``(1, d)``
  and ``cov`` ``(1, d, d)``.

Leading batch axes. :func:`predict_variance`, :func:`predict_mean` and
:func:`gaussian_argmax_probability_of` also take a stack of independent problems (the
replicas of a replicated simulation): ``X`` ``(*B, n, d)`` or ``(*B, n, K, d)`` with
``theta`` ``(*B, K, d)`` and ``cov`` ``(*B, K, d, d)``. Each slice goes through the same
BLAS calls, on the same shapes and memory layout, as it would alone (NumPy's stacked
``matmul`` calls the 2-D routine once per slice), so a batched result is bitwise the one of
separate calls.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import ndtr

_CHUNK_BYTES = 4 << 20
#: working set of one chunk of the quadratic-feature path of :func:`predict_variance`
_QUAD_CHUNK_BYTES = 1 << 20
#: the quadratic-feature path needs at least this many cases (it costs ``d`` elementwise
#: calls per chunk) and at most this many features (its features grow as ``d^2 / 2``)
_QUAD_MIN_ROWS, _QUAD_MAX_FEATURES = 64, 64
#: the factor path of :func:`predict_variance` for at most this many models and at least
#: this many features (with more models, quadratic features take fewer flops; with fewer
#: features, its GEMM is too thin to pay), in chunks of about this many bytes
_FACTOR_MAX_MODELS, _FACTOR_MIN_FEATURES = 16, 12
_FACTOR_CHUNK_BYTES = 256 << 10
_GH_NODES, _GH_WEIGHTS = hermegauss(48)
_GH_WEIGHTS = _GH_WEIGHTS / np.sqrt(2.0 * np.pi)  # expectations under N(0, 1)


def predict_mean(X: np.ndarray, theta: np.ndarray, *, batch_axes: int = 0) -> np.ndarray:
    """``(*B, n, K)`` linear predictions ``x^T theta``.

    ``theta`` is ``(*B, K, d)`` for ``X`` ``(*B, n, d)`` and ``(*B, 1, d)`` for ``X``
    ``(*B, n, K, d)``; ``batch_axes`` says how many leading batch axes ``B`` there are.
    Without them ``theta`` may carry a trailing target axis (``(K, d, T)`` / ``(1, d, T)``,
    giving ``(n, K, T)``). Equal rows of a disjoint ``theta`` give bitwise equal columns
    (:func:`row_dots`, :func:`tie_identical`).
    """
    if batch_axes == 0:
        if X.ndim != 2:
            return X @ theta[0]
        if theta.ndim != 2:  # a trailing target axis
            return X @ theta.T
        if X.shape[0] == 1:  # one case
            return row_dots(theta, X[0])[None, :]
        if X.shape[0] < _QUAD_MIN_ROWS:  # a few cases: n K dot products, each row alike
            return np.vecdot(X[:, None, :], theta)
        return tie_identical(X @ theta.T, first_identical(theta))
    if X.ndim - batch_axes == 2:
        if X.shape[-2] == 1:
            return row_dots(theta, X)[..., None, :]
        if X.shape[-2] < _QUAD_MIN_ROWS:
            return np.vecdot(X[..., :, None, :], theta[..., None, :, :])
        return tie_identical(X @ np.swapaxes(theta, -1, -2), first_identical(theta))
    return (X @ theta[..., 0, :, None][..., None, :, :])[..., 0]


def row_dots(M: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(*B, R)`` dot products of the rows of ``M`` ``(*B, R, d)`` with ``x`` ``(*B, d)``
    (or ``(*B, 1, d)``, or ``(d,)``), each row summed in the same order, so that equal rows
    give bitwise equal results. A matrix-vector product (``M @ x``) does not promise that:
    its BLAS kernel sums rows in blocks and the remainder rows another way (with OpenBLAS,
    rows 8 and 9 of 10 can differ from row 0 by an ulp), which would break "ties go to the
    lowest id" between identical models. Costs the same as the GEMV at these sizes."""
    return np.vecdot(M, x if x.ndim == 1 or x.shape[-2] == 1 else x[..., None, :])


def predict_variance(X: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``(*B, n, K)`` quadratic forms ``x^T cov x`` (squared confidence widths, unscaled).

    ``X`` ``(*B, n, d)`` with ``cov`` ``(*B, K, d, d)`` (disjoint) or ``X`` ``(*B, n, K, d)``
    with ``cov`` ``(*B, 1, d, d)`` (shared); ``B`` are optional leading batch axes.

    Disjoint models take one of five paths, chosen by the shapes alone: one case is ``K``
    matrix-vector products; fewer than 64 cases are one ``(n, d) @ (d, d)`` GEMM per model
    and ``n K`` dot products; a large batch (at least 64 cases) on few models (``K <= 16``,
    ``d >= 12``) is one GEMM per chunk of cases against factors ``F_k`` of the covariances
    side by side, ``x^T S x = ||F_k^T x||^2`` (squared in place and summed per model; see
    :func:`_width_factors`); other large batches with ``d <= 64`` take one GEMM per chunk
    on quadratic features, ``x^T S x = sum_{i <= j} c_ij x_i x_j`` with ``c_ii = S_ii`` and
    ``c_ij = S_ij + S_ji``, which costs ``K d (d + 1) / 2`` multiply-adds per case instead of
    ``K d^2`` and reads each case's ``d (d + 1) / 2`` features once for all ``K`` actions;
    other large batches are one GEMM against all ``K`` covariances side by side. The paths agree
    to rounding (about ``d`` ulps of ``|x|^T |S| |x|``). On every path equal covariances
    give bitwise equal columns (:func:`row_dots`, :func:`tie_identical`), so that exact
    ties stay exact; when at least a quarter of the models of a large batch equal an earlier
    one (untried actions, say), only the distinct ones are computed and copied. With leading
    batch axes a large batch is computed slice by slice.
    """
    if X.ndim == 2 and X.shape[0] == 1 and cov.ndim == 3:  # one case (the online path)
        x = X[0]
        return row_dots(cov @ x, x)[None, :]
    batch = cov.ndim - 3
    if X.ndim - batch == 3:  # shared model on per-action features: (.., K, d) @ (d, d)
        return np.einsum("...kd,...kd->...k", X @ cov, X)
    n, d = X.shape[-2:]
    if n == 1:
        x = X[..., 0, :, None]  # (*B, d, 1)
        Z = cov @ x[..., None, :, :]  # (*B, K, d, 1): cov[k] x, one GEMV per action
        return row_dots(Z[..., 0], X)[..., None, :]
    if n < _QUAD_MIN_ROWS:
        # a few cases: one (n, d) @ (d, d) GEMM per model (the same call for every model),
        # then n K dot products: equal models give equal columns by construction
        Z = X[..., None, :, :] @ cov  # (*B, K, n, d)
        return np.vecdot(np.swapaxes(Z, -2, -3), X[..., :, None, :])  # (*B, n, K)
    if batch:  # each slice as it would be alone (which models are equal differs by slice)
        lead = np.broadcast_shapes(X.shape[:-2], cov.shape[:-3])
        Xs = np.broadcast_to(X, (*lead, n, d)).reshape(-1, n, d)
        covs = np.broadcast_to(cov, (*lead, *cov.shape[-3:])).reshape(-1, *cov.shape[-3:])
        out = np.stack([predict_variance(Xs[i], covs[i]) for i in range(len(Xs))])
        return out.reshape(*lead, n, cov.shape[-3])
    first = first_identical(cov, 2)
    if first is not None:
        distinct = np.flatnonzero(first == np.arange(first.size))
        if distinct.size <= 0.75 * first.size:
            # many equal models (untried actions, say): the distinct ones' forms, each
            # copied to the models equal to it (fewer products, ties exact by construction)
            return np.take(
                _large_batch_variance(X, cov[distinct]), np.searchsorted(distinct, first), axis=-1
            )
    return tie_identical(_large_batch_variance(X, cov), first)


def _large_batch_variance(X: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """:func:`predict_variance`'s paths for at least 64 cases on disjoint models."""
    d = X.shape[-1]
    if cov.shape[-3] <= _FACTOR_MAX_MODELS and d >= _FACTOR_MIN_FEATURES:
        factors = _width_factors(cov)
        if factors is not None:
            return _variance_factor(X, *factors)
    if d <= _QUAD_MAX_FEATURES:
        return _variance_quadratic(X, cov)
    return _variance_stacked(X, cov)


@lru_cache(maxsize=64)
def _hash_weights(p: int) -> np.ndarray:
    """Fixed weights of :func:`first_identical`'s hash of ``p`` numbers (the same in every
    process)."""
    w = np.random.default_rng(p).uniform(1.0, 2.0, p)
    w.flags.writeable = False
    return w


def first_identical(models: np.ndarray, model_ndim: int = 1) -> np.ndarray | None:
    """For ``K`` models ``(*B, K, ...)``, each the last ``model_ndim`` axes (1 for ``theta``
    ``(K, d)``, 2 for ``cov`` ``(K, d, d)``), the index ``(*B, K)`` of the first model equal
    to each (its own index when none before it is), or None when all are distinct. Equal
    means equal in value in every entry (``-0.0 == 0.0``; a model holding NaN equals none).
    Costs one hash per model (a dot product with fixed weights, summed the same way for
    every model) and an exact comparison of the models whose hashes agree."""
    split = models.ndim - model_ndim
    lead, K = models.shape[: split - 1], models.shape[split - 1]
    if K < 2:
        return None
    p = math.prod(models.shape[split:])
    flat = models.reshape(-1, K, p)
    h = row_dots(flat, _hash_weights(p))  # (S, K)
    hs = np.sort(h, axis=-1)
    if not (hs[:, 1:] == hs[:, :-1]).any():  # all distinct (NaN equals nothing): the usual case
        return None
    order = np.argsort(h, axis=-1, kind="stable")  # equal hashes keep their id order
    hs = np.take_along_axis(h, order, axis=-1)
    same = hs[:, 1:] == hs[:, :-1]
    # each sorted position's run of equal hashes starts at its leader (the lowest id)
    pos = np.arange(K)
    starts = np.where(np.concatenate([np.zeros((len(h), 1), bool), same], axis=1), 0, pos)
    leader = np.take_along_axis(order, np.maximum.accumulate(starts, axis=1), axis=-1)
    s, j = np.nonzero(same)
    member, lead_of = order[s, j + 1], leader[s, j + 1]
    equal = (flat[s, member] == flat[s, lead_of]).all(axis=-1)  # rules out hash collisions
    if not equal.any():
        return None
    first = np.broadcast_to(pos, h.shape).copy()
    first[s[equal], member[equal]] = lead_of[equal]
    return first.reshape(*lead, K)


def tie_identical(values: np.ndarray, first: np.ndarray | None) -> np.ndarray:
    """``values`` ``(*B, n, K)`` computed from ``K`` models, with each model's column
    replaced by the one of the first model equal to it (``first`` ``(*B, K)``, from
    :func:`first_identical`; None: all distinct): identical models get bitwise identical
    values whichever BLAS kernel computed the columns (a GEMM need not round every column
    alike). ``values`` is changed in place (the paths here pass fresh arrays) and
    returned."""
    if first is None:
        return values
    ids = np.arange(first.shape[-1])
    slices = [()] if first.ndim == 1 else map(tuple, np.argwhere((first != ids).any(axis=-1)))
    for idx in slices:  # (in place: cheaper than a gather into a new array of this size)
        dup = np.flatnonzero(first[idx] != ids)
        part = values[idx]  # a view of one batch slice, (n, K)
        part[:, dup] = part[:, first[idx][dup]]
    return values


def _width_factors(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Factors of ``K`` covariances ``(*B, K, d, d)`` side by side, ``F`` ``(*B, d, K d)``,
    and signs ``(*B, K d)`` or None, with ``x^T S_k x = sum_j sign_kj (x^T F_k)_j^2``.

    ``F_k`` is the lower Cholesky factor of the symmetric part of ``S_k`` (which has the
    same quadratic form); a matrix that is not positive definite in floating point gets
    ``V sqrt(|w|)`` from its eigendecomposition and the signs of ``w``, so the quadratic
    form stays exact for any matrix. Each matrix is factored alone (the same LAPACK call
    for every batch slice). None when ``cov`` is not finite (the other paths propagate it).
    """
    if not np.isfinite(cov).all():
        return None
    *lead, K, d, _ = cov.shape
    sym = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    signs = None
    try:
        L = np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        flat = sym.reshape(-1, d, d)
        L = np.empty_like(flat)
        sign = np.ones(flat.shape[:2])
        for m, S in enumerate(flat):
            try:
                L[m] = np.linalg.cholesky(S)
            except np.linalg.LinAlgError:
                w, V = np.linalg.eigh(S)
                L[m] = V * np.sqrt(np.abs(w))
                sign[m] = np.where(w < 0, -1.0, 1.0)
        L = L.reshape(sym.shape)
        if (sign < 0).any():
            signs = sign.reshape(*lead, K * d)
    factors = np.ascontiguousarray(np.swapaxes(L, -3, -2)).reshape(*lead, d, K * d)
    return factors, signs


def _variance_factor(X: np.ndarray, factors: np.ndarray, signs: np.ndarray | None) -> np.ndarray:
    """``x^T S_k x`` as ``||F_k^T x||^2``: per cache-sized chunk of cases, one GEMM against
    the factors side by side, squared in place, then the sum over each model's ``d``
    columns as one GEMV."""
    n, d = X.shape[-2:]
    lead, Kd = X.shape[:-2], factors.shape[-1]
    K = Kd // d
    step = min(n, max(16, _FACTOR_CHUNK_BYTES // (8 * Kd)))
    z_buf = np.empty((*lead, step, Kd))
    out = np.empty((*lead, n * K))
    ones = np.ones(d)
    for start in range(0, n, step):
        c = min(step, n - start)
        z = z_buf[..., :c, :]
        np.matmul(X[..., start : start + c, :], factors, out=z)
        np.multiply(z, z, out=z)
        if signs is not None:
            z *= signs[..., None, :]
        np.matmul(z.reshape(*lead, c * K, d), ones, out=out[..., start * K : (start + c) * K])
    return out.reshape(*lead, n, K)


@lru_cache(maxsize=64)
def _quadratic_index(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle pairs ``(i, j)`` of ``d`` features, row by row: ``iu``, ``ju``, the
    positions of the diagonal pairs and the offset of each row ``i`` (``d + 1`` values)."""
    iu, ju = np.triu_indices(d)
    offsets = np.concatenate([[0], np.cumsum(np.arange(d, 0, -1))])
    return iu, ju, np.flatnonzero(iu == ju), offsets


def _variance_quadratic(X: np.ndarray, cov: np.ndarray) -> np.ndarray:
    n, d = X.shape[-2:]
    lead, K = X.shape[:-2], cov.shape[-3]
    iu, ju, diag, offsets = _quadratic_index(d)
    P = iu.size
    coef = cov[..., iu, ju] + cov[..., ju, iu]  # (*B, K, P)
    coef[..., diag] = cov[..., iu[diag], iu[diag]]
    coef_t = np.ascontiguousarray(np.swapaxes(coef, -1, -2))  # (*B, P, K)
    step = max(1, _QUAD_CHUNK_BYTES // (8 * P))
    xt = np.empty((*lead, d, step))
    qt = np.empty((*lead, P, step))  # features of a chunk, one row per pair (long rows)
    out = np.empty((*lead, n, K))
    for start in range(0, n, step):
        c = min(step, n - start)
        xc, qc = xt[..., :c], qt[..., :c]
        xc[...] = np.swapaxes(X[..., start : start + c, :], -1, -2)
        for i in range(d):
            np.multiply(
                xc[..., i : i + 1, :], xc[..., i:, :], out=qc[..., offsets[i] : offsets[i + 1], :]
            )
        # (c, P) as a transposed operand: one GEMM per chunk (and per batch slice)
        np.matmul(np.swapaxes(qc, -1, -2), coef_t, out=out[..., start : start + c, :])
    return out


def _variance_stacked(X: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """One GEMM against all ``K`` covariances side by side, in cache-sized chunks."""
    n, d = X.shape[-2:]
    lead, K = X.shape[:-2], cov.shape[-3]
    stacked = np.swapaxes(cov, -3, -2).reshape(*lead, d, K * d)
    out = np.empty((*lead, n, K))
    ones = np.ones(d)
    step = max(1, _CHUNK_BYTES // (8 * K * d))
    for start in range(0, n, step):
        Xc = X[..., start : start + step, :]
        c = Xc.shape[-2]
        Z = (Xc @ stacked).reshape(*lead, c, K, d)
        Z *= Xc[..., None, :]
        # the reduction over d as a GEMV: about twice as fast as Z.sum(axis=-1) here
        out[..., start : start + c, :] = (Z.reshape(*lead, c * K, d) @ ones).reshape(*lead, c, K)
    return out


def predict(X: np.ndarray, theta: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (non-negative) variance of ``x^T theta`` for ``theta ~ N(theta, cov)``."""
    var = predict_variance(X, cov)  # a fresh array: clipped in place
    return predict_mean(X, theta), np.maximum(var, 0.0, out=var)


_ZERO = np.zeros(())  # a 0-d operand: cheaper for a ufunc than the Python float 0.0
_ZERO.flags.writeable = False


def one_case_widths(
    X: np.ndarray, theta: np.ndarray, cov: np.ndarray, products: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(1, K)`` means ``x^T theta`` and ``(K,)`` standard deviations
    ``sqrt(max(x^T cov x, 0))`` of one shared context ``X`` ``(1, d)`` against disjoint
    models (``theta`` ``(K, d)``, ``cov`` ``(K, d, d)``): what :func:`predict` and a square
    root give for one case, bit for bit (the same BLAS calls on the same operands), in
    fewer and cheaper calls (the online path of the UCB and Thompson policies). Both are
    fresh arrays the caller may overwrite. ``products``: ``cov @ x`` ``(K, d)`` when the
    caller has it (e.g. :meth:`~scarce.models.RidgeRegression.one_case_products`)."""
    x = X[0]
    # predict_variance's one-case path: one GEMV per action, then one dot per row
    std = row_dots(cov @ x if products is None else products, x)
    np.maximum(std, _ZERO, out=std)
    np.sqrt(std, out=std)
    return row_dots(theta, x)[None, :], std


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
    L = cholesky_factor(cov)
    return theta + scale * rng.standard_normal((n_draws, theta.shape[0])) @ L.T


def cholesky_factor(cov: np.ndarray) -> np.ndarray:
    """Lower factor ``L`` with ``L L^T = cov`` for a ``(p, p)`` covariance: Cholesky of the
    symmetrised matrix, or ``V sqrt(max(w, 0))`` from its eigendecomposition when it is only
    semi-definite in floating point."""
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
    """``(*B, n)`` probability that ``actions[..., i]`` is the largest of independent
    Gaussians (one quadrature per case; cheaper than :func:`gaussian_argmax_probabilities`
    for all ``K``). ``mean``, ``std`` (and ``eligible``) are ``(*B, n, K)``, ``actions``
    ``(*B, n)``; ``B`` are optional leading batch axes."""
    std = np.maximum(std, 1e-12)
    idx = np.asarray(actions)[..., None]
    vals = (
        np.take_along_axis(mean, idx, axis=-1) + np.take_along_axis(std, idx, axis=-1) * _GH_NODES
    )  # (*B, n, q)
    z = (vals[..., None, :] - mean[..., None]) / std[..., None]  # (*B, n, K, q)
    logcdf = np.log(np.maximum(ndtr(z), 1e-300))
    keep = np.ones(mean.shape, dtype=bool) if eligible is None else np.array(eligible, dtype=bool)
    np.put_along_axis(keep, idx, False, axis=-1)
    logcdf = np.where(keep[..., None], logcdf, 0.0)
    # the quadrature sum as a (stacked) GEMV: the same BLAS call for every batch slice
    return np.clip(np.exp(logcdf.sum(axis=-2)) @ _GH_WEIGHTS, 0.0, 1.0)


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
