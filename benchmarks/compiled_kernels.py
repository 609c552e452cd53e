"""Numba kernels of one online round of scarce's LinUCB, LinTS and KnapsackBandit / Deferral,
for :mod:`bench_compiled` (a probe of whether a compiled extension would pay; nothing in the
library uses this module; :mod:`compiled_runners` wraps them). Importing it needs numba.

Each kernel makes the library's arithmetic in loops instead of NumPy calls (the same formulas;
see the functions' docstrings for where the order of a sum differs), on state that a runner
keeps in a few packed arrays (each array argument costs numba's dispatcher about 60 ns).

A disjoint ridge model set of ``K`` actions in ``d`` features is one array ``S``
``(K, 2 d + 2, d)``: ``S[k, :d]`` is ``A_k^{-1}``, ``S[k, d:2d]`` the precision ``A_k``,
``S[k, 2d]`` the estimate ``theta_k`` and ``S[k, 2d + 1]`` the vector ``b_k``; ``counts``
``(2, K)`` float64 holds each model's observation count and rank-1 steps since its last
refactorisation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---------------------------------------------------------------------- shared pieces


@njit(cache=False, fastmath={"reassoc", "contract"})
def _products(S, x, Z, k):
    """``Z[k] = A_k^{-1} x``, one dot product per row; the sums may be reassociated (and
    fused multiply-adds used) so that they vectorise, so they round differently from
    NumPy's GEMV (which also sums in its own order)."""
    d = x.shape[0]
    z = Z[k]
    for i in range(d):
        row = S[k, i]
        s = 0.0
        for j in range(d):
            s += row[j] * x[j]
        z[i] = s


@njit(cache=False)
def _dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=False)
def _cho_solve(L, B):
    """Solve ``L L^T X = B`` in place (``B`` ``(d, c)``), ``L`` lower triangular."""
    d, c = B.shape
    for col in range(c):
        for i in range(d):
            s = B[i, col]
            for k in range(i):
                s -= L[i, k] * B[k, col]
            B[i, col] = s / L[i, i]
        for i in range(d - 1, -1, -1):
            s = B[i, col]
            for k in range(i + 1, d):
                s -= L[k, i] * B[k, col]
            B[i, col] = s / L[i, i]


@njit(cache=False)
def refactor(A_inv, A, theta, b):
    """``A^{-1}`` and ``theta = A^{-1} b`` (``b``, ``theta`` ``(d, c)``) from a Cholesky
    factorisation of the precision ``A`` (``solve_posterior``; LAPACK's ``potrf``, then the
    substitutions in loops)."""
    L = np.linalg.cholesky(np.ascontiguousarray(A))
    E = np.eye(A.shape[0])
    _cho_solve(L, E)
    A_inv[:, :] = E
    B = b.copy()
    _cho_solve(L, B)
    theta[:, :] = B


@njit(cache=False)
def ridge_step(S, counts, x, a, y, u, resync):
    """One Sherman-Morrison / recursive-least-squares step of model ``a`` with row ``x``
    ``(d,)`` and target ``y`` (``RowStep.add``: ``gain = u / (1 + x.u)``, ``theta += gain
    (y - x.theta)``, ``b += y x``, ``A^{-1} -= gain u^T``; plus ``A += x x^T``), ``u`` being
    ``A_a^{-1} x``; the model's ``resync``-th row since its last refactorisation goes into
    ``A`` and ``b`` and the model is refactorised (``RidgeRegression._add``)."""
    d = x.shape[0]
    since = counts[1, a] + 1.0
    counts[0, a] += 1.0
    if since >= resync:
        for i in range(d):
            S[a, 2 * d + 1, i] += x[i] * y
            for j in range(d):
                S[a, d + i, j] += x[i] * x[j]
        theta = S[a, 2 * d : 2 * d + 1].T
        refactor(S[a, :d], S[a, d : 2 * d], theta, S[a, 2 * d + 1 :].T)
        counts[1, a] = 0.0
        return
    counts[1, a] = since
    scale = 1.0 / (1.0 + _dot(x, u))
    theta = S[a, 2 * d]
    resid = y - _dot(x, theta)
    b = S[a, 2 * d + 1]
    for i in range(d):
        g = u[i] * scale
        theta[i] += g * resid
        b[i] += x[i] * y
    for i in range(d):
        g = u[i] * scale
        xi = x[i]
        inv = S[a, i]
        prec = S[a, d + i]
        for j in range(d):
            inv[j] -= g * u[j]
            prec[j] += xi * x[j]


# ---------------------------------------------------------------------- LinUCB / LinTS


@njit(cache=False)
def all_products(S, X, Z):
    """``Z[k] = A_k^{-1} x`` for every action (the products alone, for a timing floor)."""
    x = X[0]
    for k in range(S.shape[0]):
        _products(S, x, Z, k)


@njit(cache=False)
def ucb_decide(S, X, Z, alpha, out):
    """LinUCB's choice for one context ``X`` ``(1, d)``: the largest ``x.theta_k + alpha
    sqrt(max(x^T A_k^{-1} x, 0))``, ties to the lowest id; ``Z`` ``(K, d)`` receives the
    products ``A_k^{-1} x`` for the update and ``out`` ``(3, K)`` the scores (row 2)."""
    x = X[0]
    d = x.shape[0]
    best = -np.inf
    a = 0
    for k in range(S.shape[0]):
        _products(S, x, Z, k)
        var = _dot(Z[k], x)
        mean = _dot(x, S[k, 2 * d])
        s = mean + math.sqrt(var if var > 0.0 else 0.0) * alpha
        out[2, k] = s
        if s > best or k == 0:
            best = s
            a = k
    return a


@njit(cache=False)
def ts_decide(S, X, Z, v, z, out):
    """LinTS's choice for one context: the largest ``x.theta_k + (v sqrt(x^T A_k^{-1} x))
    z_k`` with the standard normals ``z`` ``(K,)`` drawn by the caller (as the library draws
    them: ``rng.standard_normal((1, K))``); ``out`` ``(3, K)`` receives the means, the
    standard deviations and the sampled scores (what the library's decision keeps)."""
    x = X[0]
    d = x.shape[0]
    best = -np.inf
    a = 0
    for k in range(S.shape[0]):
        _products(S, x, Z, k)
        var = _dot(Z[k], x)
        mean = _dot(x, S[k, 2 * d])
        std = math.sqrt(var if var > 0.0 else 0.0) * v
        s = mean + std * z[k]
        out[0, k] = mean
        out[1, k] = std
        out[2, k] = s
        if s > best or k == 0:
            best = s
            a = k
    return a


@njit(cache=False)
def ridge_update(S, counts, X, a, y, Z, kept, resync):
    """The update of action ``a`` with reward ``y`` on ``X`` ``(1, d)``; ``kept``: ``Z[a]``
    is ``A_a^{-1} x`` from the decision on this ``X``."""
    x = X[0]
    if not kept:
        _products(S, x, Z, a)
    ridge_step(S, counts, x, a, y, Z[a], resync)


# ---------------------------------------------------------------------- KnapsackBandit


@njit(cache=False)
def knapsack_decide(RS, CT, X, led, dual, beta, bound, rank, Z, c_all, c_used, par, free, out):
    """One priced decision of ``KnapsackBandit`` (and ``Deferral``) with identity links and
    paired designs (``SingleCasePath._decide_priced_one`` / ``OutcomeModels.priced_one``):
    the best affordable action of ``UCB_r - LCB_c . prices``, ties to the free action.

    ``RS`` the reward models (packed, above); ``CT`` ``(nc, 2, d, m)`` the consumption
    models' estimates and vectors (their ``A^{-1}`` are the reward models' of the same
    actions: paired designs); ``led`` ``(3, m)`` budget, spent, reserved; ``dual``
    ``(4, m + 1)`` the weights, then scale, eta * scale and the idle factors in the first
    ``m`` columns; ``beta`` ``(2, K)`` the radius of each action's reward and consumption
    model; ``bound`` ``(K, m)``; ``rank`` ``(K,)`` int64 an action's consumption model (-1
    for the free action); ``par`` ``(lo, hi, Z, eta * rate, tolerance, resync)``. Writes the
    chosen action's pessimistic consumption into ``c_used`` ``(m,)``, the scores into
    ``out`` ``(K,)``, and reserves the chosen action's bound.
    """
    x = X[0]
    d = x.shape[0]
    m = bound.shape[1]
    lo, hi, Zp, tol = par[0], par[1], par[2], par[4]
    best = -np.inf
    a = 0
    s_free = 0.0
    for k in range(RS.shape[0]):
        _products(RS, x, Z, k)
        var = _dot(Z[k], x)
        w = math.sqrt(var if var > 0.0 else 0.0)
        r = _dot(x, RS[k, 2 * d]) + w * beta[0, k]
        r = max(min(r, hi), lo)
        j = rank[k]
        cost = 0.0
        ok = True
        for q in range(m):
            low = 0.0
            if j >= 0:
                mean = 0.0
                for i in range(d):
                    mean += x[i] * CT[j, 0, i, q]
                low = min(max(mean - w * beta[1, k], 0.0), bound[k, q])
                # affordable: each resource's bound fits what is left
                if not bound[k, q] <= (led[0, q] - led[1, q] - led[2, q]) + tol:
                    ok = False
            c_all[k, q] = low
            cost += low * ((Zp * dual[0, q]) * dual[1, q])
        s = r - cost
        out[k] = s
        if k == free:
            s_free = s
        elif not ok:
            s = -np.inf
        if k == 0 or s > best:
            best = s
            a = k
    if s_free >= best:
        a = free
    if a != free:
        for q in range(m):
            led[2, q] += bound[a, q]
    for q in range(m):
        c_used[q] = c_all[a, q]
    return a


@njit(cache=False)
def hedge_step(dual, c_used, eta_rate):
    """``DualPrices.step`` of one row ``c_used`` ``(m,)``: ``w[:m] *= exp(c eta scale -
    eta rate)`` (the kept idle factors when nothing was consumed), then ``w /= sum(w)``."""
    m = c_used.shape[0]
    nonzero = False
    for q in range(m):
        if c_used[q] != 0.0:
            nonzero = True
    w = dual[0]
    for q in range(m):
        w[q] *= math.exp(c_used[q] * dual[2, q] - eta_rate) if nonzero else dual[3, q]
    total = 0.0
    for q in range(m + 1):
        total += w[q]
    for q in range(m + 1):
        w[q] /= total


@njit(cache=False)
def knapsack_update(
    RS,
    counts,
    CT,
    CS,
    X,
    a,
    y,
    C,
    c_used,
    mr,
    full,
    led,
    dual,
    beta,
    bound,
    rank,
    Z,
    par,
    table,
    free,
):
    """The feedback of one priced decision (``OneRoundFeedback._learn_one_fast``): book the
    costs ``C`` ``(m,)`` (release the reservation), one Hedge step with the decision's
    ``c_used``, then the paired step of a costly action's reward and consumption models
    (``RidgeRegression.add_one_paired``) or the free action's reward model alone, and, with
    ``full`` (Deferral), the free action's reward model on the model's reward ``mr``; each
    model's radius follows its count (``table``). ``CS`` ``(nc, 2, d, d)`` the consumption
    models' ``A^{-1}`` and ``A`` (copies of the reward models', as the library keeps them).
    A model due for its refactorisation is refactorised (``RidgeRegression._add``)."""
    x = X[0]
    d = x.shape[0]
    m = bound.shape[1]
    resync = par[5]
    j = rank[a]
    if a != free:
        for q in range(m):
            led[2, q] = max(led[2, q] - bound[a, q], 0.0)
            led[1, q] += C[q]
    hedge_step(dual, c_used, par[3])
    if j < 0:  # the free action: its reward model alone
        _products(RS, x, Z, a)
        ridge_step(RS, counts, x, a, mr if full else y, Z[a], resync)
        beta[0, a] = table[int(counts[0, a])]
        return
    _products(RS, x, Z, a)
    u = Z[a]
    if counts[1, a] + 1.0 >= resync:
        # the refactorisation of both models (add_one_paired falls back to two add_one)
        ridge_step(RS, counts, x, a, y, u, resync)
        for i in range(d):
            for q in range(m):
                CT[j, 1, i, q] += x[i] * C[q]
        CS[j, 1] = RS[a, d : 2 * d]
        refactor(CS[j, 0], CS[j, 1], CT[j, 0], CT[j, 1])
        _learned(beta, counts, table, a, free, full, RS, x, Z, mr, resync)
        return
    scale = 1.0 / (1.0 + _dot(x, u))
    theta = RS[a, 2 * d]
    resid = y - _dot(x, theta)
    b = RS[a, 2 * d + 1]
    for q in range(m):
        mean = 0.0
        for i in range(d):
            mean += x[i] * CT[j, 0, i, q]
        resid_q = C[q] - mean
        for i in range(d):
            CT[j, 0, i, q] += (u[i] * scale) * resid_q
            CT[j, 1, i, q] += x[i] * C[q]
    for i in range(d):
        theta[i] += (u[i] * scale) * resid
        b[i] += x[i] * y
    for i in range(d):
        g = u[i] * scale
        xi = x[i]
        inv = RS[a, i]
        prec = RS[a, d + i]
        cinv = CS[j, 0, i]
        cprec = CS[j, 1, i]
        for jj in range(d):
            inv[jj] -= g * u[jj]
            prec[jj] += xi * x[jj]
            cinv[jj] = inv[jj]
            cprec[jj] = prec[jj]
    counts[0, a] += 1.0
    counts[1, a] += 1.0
    _learned(beta, counts, table, a, free, full, RS, x, Z, mr, resync)


@njit(cache=False)
def _learned(beta, counts, table, a, free, full, RS, x, Z, mr, resync):
    """After a costly action's paired step: both models' radius from their count, then
    (``full``) the free action's reward model learns the model's reward ``mr``."""
    value = table[int(counts[0, a])]
    beta[0, a] = value
    beta[1, a] = value
    if full:
        _products(RS, x, Z, free)
        ridge_step(RS, counts, x, free, mr, Z[free], resync)
        beta[0, free] = table[int(counts[0, free])]
