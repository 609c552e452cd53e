"""Polyhedral preference cones, the orders they induce, and Pareto sets.

A cone ``C = {x : W x >= 0}`` (halfspace form, ``W`` of shape ``(n_rows, m)``) orders vectors:
``x <=_C y`` iff ``y - x`` is in ``C`` (weak) and ``x <_C y`` iff ``y - x`` is in the interior
``{x : W x > 0}`` (strict). Cones must be pointed (``rank W = m``) and full-dimensional (a
non-empty interior).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.spatial import ConvexHull

#: tolerance of the dominance tests (a difference within it of a facet counts as on it)
DOMINANCE_TOL = 1e-12


def _as_matrix(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (rows, m); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


class Cone:
    """A pointed, full-dimensional polyhedral cone ``{x : W x >= 0}`` in ``R^m``.

    Build it with :meth:`orthant`, :meth:`from_halfspaces` or :meth:`from_generators`.
    ``W`` rows are normalised to unit length (the cone is unchanged).
    """

    def __init__(self, W: Any) -> None:
        W = _as_matrix(W, "W")
        norms = np.linalg.norm(W, axis=1)
        if np.any(norms == 0):
            raise ValueError(f"W has an all-zero row (row {int(np.argmin(norms))})")
        W = W / norms[:, None]
        m = W.shape[1]
        if np.linalg.matrix_rank(W) < m:
            raise ValueError(
                f"the cone must be pointed: W of shape {W.shape} has rank "
                f"{np.linalg.matrix_rank(W)} < m = {m}"
            )
        # full-dimensional iff some x has W x >= s > 0: maximise s over the box |x| <= 1
        res = linprog(
            c=np.r_[np.zeros(m), -1.0],
            A_ub=np.c_[-W, np.ones(W.shape[0])],
            b_ub=np.zeros(W.shape[0]),
            bounds=[(-1, 1)] * m + [(None, 1)],
            method="highs",
        )
        if not res.success or -res.fun <= 1e-9:
            raise ValueError("the cone must be full-dimensional: {x : W x > 0} is empty")
        self.W = W
        self._orthant = W.shape[0] == m and bool(np.all(np.isclose(W, 0.0) | np.isclose(W, 1.0)))

    @property
    def dim(self) -> int:
        """``m``, the number of objectives."""
        return int(self.W.shape[1])

    @property
    def is_orthant(self) -> bool:
        """Whether the cone is the non-negative orthant (rows: distinct basis vectors), for
        which dominance and gaps have closed forms."""
        return self._orthant

    @classmethod
    def orthant(cls, m: int) -> Cone:
        """The non-negative orthant ``R^m_+`` (the usual Pareto order)."""
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m must be an int >= 1; got {m!r}")
        return cls(np.eye(int(m)))

    @classmethod
    def from_halfspaces(cls, W: Any) -> Cone:
        """``C = {x : W x >= 0}`` for ``W`` of shape ``(n_rows, m)``."""
        return cls(W)

    @classmethod
    def from_generators(cls, R: Any) -> Cone:
        """The conic hull of the rows of ``R`` (``(n_rays, m)``): ``{sum_j l_j R_j : l >= 0}``."""
        R = _as_matrix(R, "R")
        m = R.shape[1]
        norms = np.linalg.norm(R, axis=1)
        if np.any(norms == 0):
            raise ValueError("R has an all-zero ray")
        if np.linalg.matrix_rank(R) < m:
            raise ValueError(
                f"the cone must be full-dimensional: the rays in R span fewer than m = {m} dimensions"
            )
        G = R / norms[:, None]
        if m == 1:
            if np.all(G > 0) or np.all(G < 0):
                return cls(np.sign(G[:1]))
            raise ValueError("the cone must be pointed: R has rays in both directions")
        points = np.vstack([np.zeros(m), G])
        try:
            hull = ConvexHull(points)
        except Exception as exc:  # qhull errors: degenerate input
            raise ValueError(f"could not build the cone from R: {exc}") from None
        rows = []
        for eq in hull.equations:  # eq[:m] . x + eq[m] <= 0 inside; facets through 0 have eq[m] ~ 0
            if abs(eq[m]) < 1e-9:
                rows.append(-eq[:m])
        if not rows:
            raise ValueError("the cone must be pointed: the rays in R span a whole space")
        W = np.unique(np.round(np.array(rows), 12), axis=0)
        cone = cls(W)
        if np.any(cone.W @ G.T < -1e-9):
            raise ValueError("the cone must be pointed: R is not contained in a pointed cone")
        return cone

    @property
    def generators(self) -> np.ndarray:
        """``(n_rays, m)`` unit extreme rays (each lies on ``m - 1`` independent facets)."""
        W, m = self.W, self.dim
        if m == 1:
            return np.sign(W[:1])
        rays = []
        for rows in itertools.combinations(range(W.shape[0]), m - 1):
            sub = W[list(rows)]
            if np.linalg.matrix_rank(sub) < m - 1:
                continue
            r = np.linalg.svd(sub)[2][-1]
            for cand in (r, -r):
                if np.all(W @ cand >= -1e-9):
                    rays.append(cand / np.linalg.norm(cand))
        rays_arr = np.array(rays)
        keep: list[np.ndarray] = []
        for r in rays_arr:
            if not any(np.allclose(r, k, atol=1e-9) for k in keep):
                keep.append(r)
        return np.array(keep)

    def contains(self, x: Any, *, strict: bool = False) -> np.ndarray:
        """Whether each row of ``x`` (``(..., m)``) lies in the cone (``strict``: its interior)."""
        v = np.asarray(x, dtype=np.float64) @ self.W.T
        return (
            np.all(v > DOMINANCE_TOL, axis=-1) if strict else np.all(v >= -DOMINANCE_TOL, axis=-1)
        )

    def __repr__(self) -> str:
        return f"Cone(W={self.W.tolist()})"


def check_means(means: Any, cone: Cone, name: str = "means") -> np.ndarray:
    """``means`` as a finite ``(K, m)`` float array for ``cone`` (``m = cone.dim``)."""
    arr = np.asarray(means, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != cone.dim:
        raise ValueError(f"{name} must have shape (K, {cone.dim}); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def weakly_dominates(a: Any, b: Any, cone: Cone) -> np.ndarray:
    """``b <=_C a``: ``a - b`` in ``C`` (broadcasts over leading axes)."""
    return cone.contains(np.asarray(a, float) - np.asarray(b, float))


def dominates(a: Any, b: Any, cone: Cone) -> np.ndarray:
    """``a`` weakly dominates ``b`` and ``a != b``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return weakly_dominates(a, b, cone) & np.any(a != b, axis=-1)


def strictly_dominates(a: Any, b: Any, cone: Cone) -> np.ndarray:
    """``b <_C a``: ``a - b`` in the interior of ``C``."""
    return cone.contains(np.asarray(a, float) - np.asarray(b, float), strict=True)


def pareto_mask(means: Any, cone: Cone) -> np.ndarray:
    """``(K,)`` bool: arm ``k`` is Pareto optimal (no arm dominates it under ``cone``).

    ``means`` is ``(K, m)``. Differences on the cone's boundary count as domination.
    """
    mu = check_means(means, cone)
    dom = dominates(mu[:, None, :], mu[None, :, :], cone)  # dom[j, k]: j dominates k
    return ~dom.any(axis=0)
