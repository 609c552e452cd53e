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
def rls_start(Ai, th, x, y, u, d):
    """The start of a Sherman-Morrison / recursive-least-squares step of a model with
    ``A^{-1}`` ``Ai`` and estimate ``th`` on row ``x`` with target ``y``: ``u = A^{-1} x``
    (into ``u``), and returns ``(1 / (1 + x . u), y - x . th)``."""
    products(Ai, x, u, d)
    return 1.0 / (1.0 + row_dot(x, u, d)), y - row_dot(x, th, d)


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
    th = theta[m]
    scale, resid = rls_start(Ai, th, x, y, u, d)
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


@_jit
def priced_choice(
    A_inv,
    theta_r,
    theta_c,
    beta_r,
    beta_c,
    rank,
    bound,
    lo,
    hi,
    X,
    Z,
    weights,
    scale,
    ok,
    free,
    reserved,
    scores,
    c,
    u,
):  # noqa: E501
    """One priced decision of the budgeted learners for the context ``X`` ``(1, d)``.

    The models: rewards ``(A_inv, theta_r)`` ``(K, d, d)``, ``(K, d)``, and the
    multi-target consumption models ``theta_c`` ``(nc, d, m)`` of the costly actions,
    whose designs are the reward models' (paired: ``A_k^{-1}`` serves both); ``beta_r``
    ``(K,)``, ``beta_c`` ``(nc,)`` their radii; ``rank`` ``(K,)`` an action's consumption
    model (-1: the free action ``free``). The prices ``p_q = (Z w_q) scale_q`` of the dual
    ``weights`` ``(m + 1,)`` (:meth:`~scarce.budget.dual.DualPrices.prices`).

    Action ``k``'s score is its optimistic reward ``clip(x . theta_k + sqrt(max(x^T A_k^{-1}
    x, 0)) beta_r[k], lo, hi)`` minus ``sum_q c_kq p_q``, with the pessimistic consumptions
    ``c_kq = clip(x . theta_c[j, :, q] - sqrt(...) beta_c[j], 0, bound[k, q])`` (``j =
    rank[k]``; the free action's row of ``c`` stays as given, 0). Scores go to ``scores``
    ``(1, K)``, consumptions to ``c`` ``(1, K, m)``. The choice is the best action among
    ``ok`` ``(K,)`` (ties: the lowest id; the free action wins any tie with it); a costly
    choice reserves its ``bound`` row in ``reserved`` ``(m,)``. Returns the choice. A NaN
    passes the clips, as ``np.minimum`` / ``np.maximum`` pass it. ``u`` ``(d,)`` is
    scratch."""
    x = X[0]
    K, d = theta_r.shape
    m = weights.shape[0] - 1
    a = -1
    for k in range(K):
        products(A_inv[k], x, u, d)
        var = row_dot(u, x, d)
        sd = math.sqrt(var if var > 0.0 else 0.0)
        r = row_dot(theta_r[k], x, d) + sd * beta_r[k]
        if r > hi:
            r = hi
        if r < lo:
            r = lo
        j = rank[k]
        priced = 0.0
        if j >= 0:
            w = sd * beta_c[j]
            th = theta_c[j]
            for q in range(m):
                mean = 0.0
                for i in range(d):
                    mean += x[i] * th[i, q]
                low = mean - w
                if low < 0.0:
                    low = 0.0
                if low > bound[k, q]:
                    low = bound[k, q]
                c[0, k, q] = low
                priced += low * ((Z * weights[q]) * scale[q])
        s = r - priced
        scores[0, k] = s
        if ok[k] and (a < 0 or better(s, scores[0, a])):
            a = k
    if ok[free] and scores[0, free] >= scores[0, a]:
        a = free
    if a != free:
        for q in range(m):
            reserved[q] += bound[a, q]
    return a


@_jit
def paired_add_one(
    A_inv,
    A,
    b,
    theta,
    n_obs,
    since,
    k,
    A_inv_c,
    A_c,
    b_c,
    theta_c,
    n_obs_c,
    since_c,
    j,
    x,
    y,
    y_c,
    u,
):  # noqa: E501
    """:func:`ridge_add_one` of row ``x`` into single-target model ``k`` (target ``y``) and
    into multi-target model ``j`` of a second set (targets ``y_c`` ``(m,)``: ``theta_c[j]``
    and ``b_c[j]`` ``(d, m)``), whose design is bitwise the first's: one Sherman-Morrison
    step of ``A_k^{-1}``, copied into ``A_inv_c[j]``; ``A += x x^T`` into both; the counts of
    both incremented. The caller has checked that no refactorisation is due. ``u`` ``(d,)``
    is scratch."""
    d = x.shape[0]
    m = y_c.shape[0]
    since[k] += 1
    since_c[j] += 1
    n_obs[k] += 1.0
    n_obs_c[j] += 1.0
    Ai = A_inv[k]
    th = theta[k]
    scale, resid = rls_start(Ai, th, x, y, u, d)
    thc = theta_c[j]
    bc = b_c[j]
    bk = b[k]
    for i in range(d):
        g = u[i] * scale
        th[i] += g * resid
        bk[i] += x[i] * y
    for q in range(m):
        rq = 0.0
        for i in range(d):
            rq += x[i] * thc[i, q]
        rq = y_c[q] - rq
        for i in range(d):
            thc[i, q] += (u[i] * scale) * rq
            bc[i, q] += x[i] * y_c[q]
    Aic = A_inv_c[j]
    Ak = A[k]
    Acj = A_c[j]
    for i in range(d):
        g = u[i] * scale
        xi = x[i]
        for jj in range(d):
            v = Ai[i, jj] - g * u[jj]
            Ai[i, jj] = v
            Aic[i, jj] = v
            p = xi * x[jj]
            Ak[i, jj] += p
            Acj[i, jj] += p


@_jit
def hedge_step(weights, consumption, eta_scale, eta_rate, idle):
    """One multiplicative-weights step of :class:`~scarce.budget.dual.DualPrices` with one
    row ``consumption`` ``(m,)``: ``w_q *= exp(c_q eta_scale_q - eta_rate)`` (``idle``
    ``(m,)``, the factors of a zero row, when every ``c_q`` is 0), the slack ``w_m``
    unchanged, then all ``m + 1`` divided by their sum (added in order)."""
    m = consumption.shape[0]
    moved = False
    for q in range(m):
        if consumption[q] != 0.0:  # (NaN too)
            moved = True
    for q in range(m):
        if moved:
            weights[q] *= math.exp(consumption[q] * eta_scale[q] - eta_rate)
        else:
            weights[q] *= idle[q]
    total = 0.0
    for q in range(m + 1):
        total += weights[q]
    for q in range(m + 1):
        weights[q] /= total


@_jit
def settle_one(reserved, spent, bound, costs):
    """One costly decision's costs booked in a :class:`~scarce.core.ledger.Ledger`'s arrays,
    in place (``Ledger.settle`` of one case): ``reserved = max(reserved - bound, 0)`` (its
    reservation released), ``spent += costs`` (all ``(m,)``)."""
    for q in range(costs.shape[0]):
        r = reserved[q] - bound[q]
        reserved[q] = r if r > 0.0 else 0.0
        spent[q] += costs[q]
