"""The scale-independent gap and the preference metric between Pareto sets.

``gap(p | S)`` is the smallest ``||eps||_inf`` over ``eps >= 0`` such that ``exp(eps) * p``
(componentwise) is not strictly dominated under the cone by any point of ``S``: the log-scale
inflation a point needs to escape strict domination. It is 0 exactly when ``p`` is not strictly
dominated, invariant when every vector is scaled by the same ``c > 0``, and equals
``log(max S / p)_+`` for one objective. It needs strictly positive coordinates.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from scarce.pareto.cones import DOMINANCE_TOL as _STRICT_TOL
from scarce.pareto.cones import Cone, check_means, pareto_mask


def check_positive(arr: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless every entry of ``arr`` is > 0."""
    if np.any(arr <= 0):
        bad = np.argwhere(arr <= 0)[0]
        raise ValueError(
            f"{name} must be strictly positive (the gap is a log-ratio); got {arr[tuple(bad)]} "
            f"at index {tuple(int(i) for i in bad)}"
        )


def _orthant_gap(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    # escaping arm j needs some coordinate to reach it; uniform inflation attains the bound
    ratios = reference[None, :, :] / points[:, None, :]  # (P, R, m)
    return np.log(np.maximum(1.0, ratios.min(axis=2).max(axis=1)))


def _feasible_bound(p: np.ndarray, reference: np.ndarray, W: np.ndarray) -> float:
    """An inflation ``t`` such that some ``v`` with ``p <= v <= t p`` is strictly dominated by no
    reference point: move ``p`` along a direction ``u >= 0`` inside the cone's interior
    (``W u > 0``) until every reference point is blocked by some row. ``inf`` when the
    cone's interior misses the positive orthant (the gap can then be infinite)."""
    m = p.shape[0]
    res = linprog(
        c=np.r_[np.zeros(m), -1.0],
        A_ub=np.c_[-W, np.ones(W.shape[0])],
        b_ub=np.zeros(W.shape[0]),
        bounds=[(0, 1)] * m + [(None, 1)],
        method="highs",
    )
    if not res.success or -res.fun <= 1e-12:
        return np.inf
    u = res.x[:m]
    wu, wp = W @ u, W @ p
    need = (reference @ W.T - wp[None, :]) / wu[None, :]  # (R, rows): s blocking q by row l
    s = max(0.0, float(np.max(np.min(need, axis=1))))
    v = p + s * u
    return float(np.max(v / p))


def _milp_gap(p: np.ndarray, reference: np.ndarray, W: np.ndarray) -> float:
    """Exact gap by a mixed-integer programme over ``v`` (the inflated point), ``t`` and one
    binary per (reference point, cone row) choosing a row that blocks strict domination."""
    if not np.any(np.all((reference - p) @ W.T > _STRICT_TOL, axis=1)):
        return 0.0  # not strictly dominated: no inflation needed
    scale = p.max()
    p, reference = p / scale, reference / scale
    m, R, L = p.shape[0], reference.shape[0], W.shape[0]
    t_hi = _feasible_bound(p, reference, W)
    if not np.isfinite(t_hi):
        return np.inf
    t_hi = t_hi * (1 + 1e-6) + 1e-9
    n = m + 1 + R * L
    c = np.zeros(n)
    c[m] = 1.0
    rows, lo, hi = [], [], []

    def add(row: np.ndarray, low: float, high: float) -> None:
        rows.append(row)
        lo.append(low)
        hi.append(high)

    for i in range(m):  # v_i - t p_i <= 0
        r = np.zeros(n)
        r[i], r[m] = 1.0, -p[i]
        add(r, -np.inf, 0.0)
    # z[j, l] = 1 picks cone row l to block q_j: W_l (q_j - v) <= big (1 - z[j, l]),
    # i.e. -W_l v + big z[j, l] <= big - W_l q_j; at least one z per q_j
    vmin, vmax = p, t_hi * p
    for j, q in enumerate(reference):
        r = np.zeros(n)
        r[m + 1 + j * L : m + 1 + (j + 1) * L] = 1.0
        add(r, 1.0, np.inf)
        for row in range(L):
            wl = W[row]
            min_wv = np.sum(np.minimum(wl * vmin, wl * vmax))
            big = max(wl @ q - min_wv, 0.0) + 1.0
            r = np.zeros(n)
            r[:m] = -wl
            r[m + 1 + j * L + row] = big
            add(r, -np.inf, big - wl @ q)
    lb = np.r_[vmin, 1.0, np.zeros(R * L)]
    ub = np.r_[vmax, t_hi, np.ones(R * L)]
    integrality = np.r_[np.zeros(m + 1), np.ones(R * L)]
    res = milp(
        c,
        constraints=LinearConstraint(np.array(rows), lo, hi),
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"mip_rel_gap": 1e-12},
    )
    if not res.success:
        raise RuntimeError(f"gap MILP failed: {res.message}")
    return float(np.log(max(res.x[m], 1.0)))


def gap_to_set(points: Any, reference: Any, cone: Cone, *, method: str = "auto") -> np.ndarray:
    """``(P,)`` gaps of each row of ``points`` (``(P, m)``) relative to ``reference`` (``(R, m)``).

    ``method``: ``"auto"`` (closed form for the orthant, MILP otherwise), ``"closed_form"``
    (orthant only) or ``"milp"`` (any polyhedral cone; exact, via ``scipy.optimize.milp``, up
    to the solver's tolerance of about 1e-7 in the inflation factor, so a point within that of
    the cone's boundary can read a gap of 0).
    """
    P = check_means(points, cone, "points")
    S = check_means(reference, cone, "reference")
    check_positive(P, "points")
    check_positive(S, "reference")
    if method not in ("auto", "closed_form", "milp"):
        raise ValueError(f"method must be 'auto', 'closed_form' or 'milp'; got {method!r}")
    orthant = cone.is_orthant
    if method == "closed_form" and not orthant:
        raise ValueError("method='closed_form' is exact only for the orthant cone")
    if method == "closed_form" or (method == "auto" and orthant):
        return _orthant_gap(P, S)
    # a point escapes strict domination by S iff it escapes it by S's Pareto set (whatever
    # dominates q strictly dominates every point q strictly dominates), so the MILP needs
    # binaries only for the non-dominated reference points
    S = S[pareto_mask(S, cone)]
    return np.array([_milp_gap(p, S, cone.W) for p in P])


def gaps(means: Any, cone: Cone, *, method: str = "auto") -> np.ndarray:
    """``(K,)`` gap of every arm relative to all arms; ``means`` is ``(K, m)``, strictly positive."""
    return gap_to_set(means, means, cone, method=method)


class PreferenceMetric:
    """Distance between two finite Pareto sets (``(P, m)`` and ``(Q, m)`` arrays).

    ``kind="set_gap"`` (default): ``max(max_p gap(p | Q), max_q gap(q | P))``, symmetric and
    scale-free but not a metric on arbitrary finite sets. ``kind="log_hausdorff"``: Hausdorff
    distance with the base metric ``||log p - log q||_inf`` (a true metric).
    ``kind="paretobandits"``: the author library's version, for comparison only: points in
    both sets contribute 0, and each point of the symmetric difference contributes its
    approximate gap to the other set, ``max_q max_j |log10(q_j / p_j)|`` (base 10, a max over
    the set, symmetric in sign); it ignores the cone.
    """

    def __init__(
        self,
        kind: Literal["set_gap", "log_hausdorff", "paretobandits"] = "set_gap",
        cone: Cone | None = None,
    ) -> None:
        if kind not in ("set_gap", "log_hausdorff", "paretobandits"):
            raise ValueError(
                f"kind must be 'set_gap', 'log_hausdorff' or 'paretobandits'; got {kind!r}"
            )
        self.kind = kind
        self.cone = cone

    def __call__(self, first: Any, second: Any) -> float:
        a = np.asarray(first, dtype=np.float64)
        b = np.asarray(second, dtype=np.float64)
        cone = self.cone if self.cone is not None else Cone.orthant(a.shape[-1])
        a = check_means(a, cone, "first")
        b = check_means(b, cone, "second")
        check_positive(a, "first")
        check_positive(b, "second")
        if self.kind == "set_gap":
            return float(max(gap_to_set(a, b, cone).max(), gap_to_set(b, a, cone).max()))
        if self.kind == "paretobandits":
            d10 = np.abs(np.log10(a)[:, None, :] - np.log10(b)[None, :, :]).max(axis=2)
            only_a = ~(d10 == 0).any(axis=1)  # rows of a that are not rows of b
            only_b = ~(d10 == 0).any(axis=0)
            return float(
                max(
                    d10.max(axis=1)[only_a].max(initial=0.0),
                    d10.max(axis=0)[only_b].max(initial=0.0),
                )
            )
        d = np.abs(np.log(a)[:, None, :] - np.log(b)[None, :, :]).max(axis=2)
        return float(max(d.min(axis=1).max(), d.min(axis=0).max()))
