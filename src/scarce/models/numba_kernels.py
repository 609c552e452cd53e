"""The Numba kernels of :mod:`scarce.models.compiled` (which says what they compute exactly
and how that compares with the NumPy path). Importing this module needs numba: use
:func:`scarce.models.compiled.kernels`, which says how to install it when it is missing.
The kernels are compiled without ``fastmath`` and cached by numba next to this file."""

from __future__ import annotations

import math

from numba import njit

_jit = njit(cache=True, nogil=True)


@_jit
def row_dot(a, x, d):
    """``sum_j a[j] x[j]``, added from ``j = 0`` up."""
    s = 0.0
    for j in range(d):
        s += a[j] * x[j]
    return s


@_jit
def products(M, x, u, d):
    """``u = M^T x`` (``M`` ``(d, d)``; for a symmetric ``A^{-1}`` its product with
    ``x``): ``u_i = sum_j M[j, i] x[j]``, added from ``j = 0`` up. Reading ``M`` by
    rows, every ``u_i`` is one lane of the same vector loop, so the sums need no
    reordering to run vectorised."""
    for i in range(d):
        u[i] = 0.0
    for j in range(d):
        xj = x[j]
        row = M[j]
        for i in range(d):
            u[i] += row[i] * xj


@_jit
def mean_var(A_inv, theta, x, k, u, d):
    """``(x . theta_k, x^T A_k^{-1} x)``, the second as ``x . (A_k^{-1} x)``."""
    products(A_inv[k], x, u, d)
    return row_dot(theta[k], x, d), row_dot(u, x, d)


@_jit
def better(s, best):
    """Whether score ``s`` takes the place of ``best`` (``numpy.argmax``'s rule when
    scanned in order: the first NaN, else the first largest)."""
    if best != best:
        return False
    return s != s or s > best


@_jit
def ucb_one(A_inv, theta, X, alpha, scores, u):
    """LinUCB's scores ``x . theta_k + sqrt(max(x^T A_k^{-1} x, 0)) alpha`` of the one
    context ``X`` ``(1, d)`` into ``scores`` ``(1, K)``; returns their argmax. ``u``
    ``(d,)`` is scratch."""
    x = X[0]
    K, d = theta.shape
    a = 0
    for k in range(K):
        mean, var = mean_var(A_inv, theta, x, k, u, d)
        s = mean + math.sqrt(var if var > 0.0 else 0.0) * alpha
        scores[0, k] = s
        if k == 0 or better(s, scores[0, a]):
            a = k
    return a


@_jit
def thompson_one(A_inv, theta, X, v, Z, out, u):
    """Linear Thompson sampling's scores of the one context ``X`` ``(1, d)``: with the
    standard normals ``Z`` ``(1, K)``, ``x . theta_k + (sqrt(max(x^T A_k^{-1} x, 0)) v)
    z_k``, written over ``Z``; ``out`` ``(2, K)`` receives the means and the standard
    deviations; returns the argmax. ``u`` ``(d,)`` is scratch."""
    x = X[0]
    K, d = theta.shape
    a = 0
    for k in range(K):
        mean, var = mean_var(A_inv, theta, x, k, u, d)
        std = math.sqrt(var if var > 0.0 else 0.0) * v
        s = mean + std * Z[0, k]
        out[0, k] = mean
        out[1, k] = std
        Z[0, k] = s
        if k == 0 or better(s, Z[0, a]):
            a = k
    return a


@_jit
def ridge_add_one(A_inv, A, b, theta, n_obs, since, limit, m, x, y, u):
    """Row ``x`` ``(d,)`` with target ``y`` into single-target model ``m``: the
    Sherman-Morrison step of :class:`~scarce.models.row_step.RowStep` (``u = A^{-1} x``,
    ``gain = u / (1 + x . u)``, ``theta += gain (y - x . theta)``, ``b += x y``,
    ``A^{-1} -= gain u^T``), ``A += x x^T`` and the counts ``n_obs[m] += 1``,
    ``since[m] += 1``. Returns False, changing nothing, when the row would be the
    model's ``limit``-th since its last refactorisation (the caller refactorises).
    ``u`` ``(d,)`` is scratch."""
    if since[m] + 1 >= limit:
        return False
    d = x.shape[0]
    since[m] += 1
    n_obs[m] += 1.0
    Ai = A_inv[m]
    products(Ai, x, u, d)
    scale = 1.0 / (1.0 + row_dot(x, u, d))
    th = theta[m]
    resid = y - row_dot(x, th, d)
    bm = b[m]
    for i in range(d):
        th[i] += (u[i] * scale) * resid
        bm[i] += x[i] * y
    Am = A[m]
    for i in range(d):
        g = u[i] * scale
        xi = x[i]
        for j in range(d):
            Ai[i, j] -= g * u[j]
            Am[i, j] += xi * x[j]
    return True
