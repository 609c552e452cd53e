"""Approximate ridge posteriors for large problems: many actions with per-action features
and high dimension, where the exact ``d x d`` covariance makes every decision cost
``O(K d^2)``.

Both models keep the exact data vector ``b = sum_i y_i x_i`` and approximate only the
precision ``A = lam * I + sum_i x_i x_i^T``; the mean is then ``theta = A_approx^{-1} b``
(the ridge estimate under the approximate precision, so it is biased where the
approximation is), and the covariance (unit noise) is ``A_approx^{-1}``.

* :class:`SketchedRidge` (Frequent Directions; Liberty 2013, used for linear bandits by
  Kuzborskij, Cella and Cesa-Bianchi 2019): ``A_approx = lam * I + B^T B`` with a sketch ``B``
  of at most ``2 * sketch_size`` rows. The sketch satisfies ``0 <= X^T X - B^T B <= delta * I``
  (Loewner order) with ``delta`` the total shrinkage (:attr:`SketchedRidge.shrinkage`), so
  ``A_approx <= A``: widths are never narrower than the exact ones (UCB stays optimistic) and
  everything is exact while the data span at most ``sketch_size`` directions. Per update
  ``O(sketch_size * d)`` amortised; widths for ``K`` actions ``O(K d sketch_size)``.
* :class:`DiagonalRidge`: ``A_approx = diag(A)``. Per update ``O(d)``; widths ``O(K d)``.
  Exact when the features are orthogonal (e.g. one-hot); otherwise neither an upper nor a
  lower bound on the exact widths, and the mean ignores correlations between features.

Each model produces immutable posterior snapshots (:class:`LowRankPosterior`,
:class:`DiagonalPosterior`) with ``predict`` (means and variances) and ``sample_scores``
(Thompson draws) in both context layouts (see :mod:`scarce.models.linear`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scarce.core.validation import check_positive_int, check_scalar

_CHUNK_BYTES = 4 << 20


def _chunks(X: np.ndarray) -> list[slice]:
    """Row slices of ``X`` of about ``_CHUNK_BYTES`` each (at least one row)."""
    step = max(1, _CHUNK_BYTES // max(1, X[:1].nbytes))
    return [slice(i, i + step) for i in range(0, X.shape[0], step)]


@dataclass(frozen=True)
class LowRankPosterior:
    """``N(theta_m, A_m^{-1})`` with ``A_m^{-1} = (I - V_m diag(w_m) V_m^T) / lam``.

    Attributes
    ----------
    theta:
        ``(M, d)`` means.
    V:
        ``(M, d, r)`` orthonormal columns (zero-padded).
    w:
        ``(M, r)`` weights in ``[0, 1)`` (0 for padding).
    lam:
        prior precision.
    """

    theta: np.ndarray
    V: np.ndarray
    w: np.ndarray
    lam: float

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means and unit-noise variances ``(n, K)`` of ``x^T theta`` for ``X`` ``(n, d)``
        (model ``k`` for action ``k``) or ``(n, K, d)`` (model 0)."""
        if X.ndim == 2:
            mean = X @ self.theta.T
            proj = np.einsum("nd,mdr->nmr", X, self.V)  # (n, M, r)
            sq = np.einsum("nd,nd->n", X, X)[:, None]
            var = sq - np.einsum("nmr,mr->nm", proj * proj, self.w)
        else:
            mean = X @ self.theta[0]
            var = np.empty(mean.shape)
            V, w = self.V[0], self.w[0]
            for rows in _chunks(X):  # keeps the (rows, K, r) projection cache-sized
                proj = X[rows] @ V
                var[rows] = np.einsum("nkd,nkd->nk", X[rows], X[rows]) - np.einsum(
                    "nkr,nkr,r->nk", proj, proj, w
                )
        return mean, np.maximum(var, 0.0) / self.lam

    def sample_scores(self, X: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
        """``(n, K)`` Thompson draws of ``x^T theta~``, ``theta~ ~ N(theta, scale^2 A^{-1})``:
        per-score marginals for disjoint models (independent), one ``theta~`` per case for a
        shared model, drawn as ``theta + scale * A^{-1/2} z`` in ``O(d r)``."""
        if X.ndim == 2:
            mean, var = self.predict(X)
            return mean + scale * np.sqrt(var) * rng.standard_normal(mean.shape)
        V, w = self.V[0], self.w[0]
        z = rng.standard_normal((X.shape[0], self.theta.shape[1]))
        # A^{-1/2} = (I - V diag(c) V^T) / sqrt(lam) with c = 1 - sqrt(1 - w)
        c = 1.0 - np.sqrt(1.0 - w)
        root = (z - ((z @ V) * c) @ V.T) / np.sqrt(self.lam)
        draws = self.theta[0] + scale * root
        return np.einsum("nkd,nd->nk", X, draws)

    def covariance(self) -> np.ndarray:
        """``(M, d, d)`` dense ``A^{-1}`` (for tests and small ``d`` only)."""
        d = self.theta.shape[1]
        return (np.eye(d) - np.einsum("mdr,mr,mer->mde", self.V, self.w, self.V)) / self.lam


@dataclass(frozen=True)
class DiagonalPosterior:
    """``N(theta_m, diag(inv_diag_m))``: ``theta`` and ``inv_diag`` are ``(M, d)``."""

    theta: np.ndarray
    inv_diag: np.ndarray

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means and unit-noise variances ``(n, K)`` (layouts as in :class:`LowRankPosterior`)."""
        # three-operand einsum: one pass over X, no (n, K, d) temporary
        if X.ndim == 2:
            return X @ self.theta.T, np.einsum("nd,nd,md->nm", X, X, self.inv_diag)
        return X @ self.theta[0], np.einsum("nkd,nkd,d->nk", X, X, self.inv_diag[0])

    def sample_scores(self, X: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
        """``(n, K)`` Thompson draws (layouts as in :meth:`LowRankPosterior.sample_scores`)."""
        if X.ndim == 2:
            mean, var = self.predict(X)
            return mean + scale * np.sqrt(var) * rng.standard_normal(mean.shape)
        z = rng.standard_normal((X.shape[0], self.theta.shape[1]))
        draws = self.theta[0] + scale * np.sqrt(self.inv_diag[0]) * z
        return np.einsum("nkd,nd->nk", X, draws)

    def covariance(self) -> np.ndarray:
        """``(M, d, d)`` dense covariance (diagonal)."""
        return np.einsum("md,de->mde", self.inv_diag, np.eye(self.theta.shape[1]))


class SketchedRidge:
    """``M`` ridge regressions whose precision is approximated by a Frequent Directions sketch.

    Parameters
    ----------
    n_models:
        ``M`` (``K`` for disjoint per-action models, 1 for a shared model).
    n_features:
        ``d``.
    lam:
        ridge penalty / prior precision, > 0.
    sketch_size:
        ``l``: the sketch keeps at most ``2 l`` rows and shrinks to ``l`` when full; exact
        while the data span at most ``l`` directions. Memory ``O(M l d)``.

    Attributes
    ----------
    B:
        ``(M, 2 l, d)`` sketches (rows past ``rows[m]`` are zero).
    rows:
        ``(M,)`` filled rows.
    b:
        ``(M, d)`` exact ``sum_i y_i x_i``.
    n_obs:
        ``(M,)`` observation counts.
    shrinkage:
        ``(M,)`` total shrinkage ``delta``: ``X^T X - B^T B`` lies between 0 and
        ``delta * I``.
    """

    def __init__(
        self, n_models: int, n_features: int, *, lam: float = 1.0, sketch_size: int = 32
    ) -> None:
        self.n_models = check_positive_int(n_models, "n_models")
        self.n_features = check_positive_int(n_features, "n_features")
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.sketch_size = check_positive_int(sketch_size, "sketch_size")
        M, d, ell = self.n_models, self.n_features, self.sketch_size
        self.B = np.zeros((M, 2 * ell, d))
        self.rows = np.zeros(M, dtype=np.int64)
        self.b = np.zeros((M, d))
        self.n_obs = np.zeros(M)
        self.shrinkage = np.zeros(M)
        self._posterior: LowRankPosterior | None = None
        self._dirty = np.ones(M, dtype=bool)

    def partial_fit(
        self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray | None = None
    ) -> None:
        """Add rows ``X`` ``(n, d)`` with targets ``y`` ``(n,)`` to models ``model_ids`` ``(n,)``
        (all to model 0 if None). Inputs are assumed validated by the caller."""
        if model_ids is None:
            model_ids = np.zeros(X.shape[0], dtype=np.int64)
        for m in np.unique(model_ids):
            sel = model_ids == m
            self._add(int(m), X[sel], y[sel])

    def _add(self, m: int, X: np.ndarray, y: np.ndarray) -> None:
        self.b[m] += X.T @ y
        self.n_obs[m] += X.shape[0]
        cap = self.B.shape[1]
        start = 0
        while start < X.shape[0]:
            take = min(cap - int(self.rows[m]), X.shape[0] - start)
            r = int(self.rows[m])
            self.B[m, r : r + take] = X[start : start + take]
            self.rows[m] += take
            start += take
            if self.rows[m] == cap:
                self._shrink(m)
        self._dirty[m] = True

    def _shrink(self, m: int) -> None:
        ell = self.sketch_size
        _, s, Vt = np.linalg.svd(self.B[m], full_matrices=False)
        delta = s[ell] ** 2 if s.shape[0] > ell else 0.0
        kept = np.sqrt(np.maximum(s[:ell] ** 2 - delta, 0.0))
        self.B[m] = 0.0
        self.B[m, : kept.shape[0]] = kept[:, None] * Vt[: kept.shape[0]]
        self.rows[m] = ell
        self.shrinkage[m] += delta

    def posterior(self) -> LowRankPosterior:
        """The current posterior (a new immutable snapshot after each update)."""
        if self._posterior is not None and not self._dirty.any():
            return self._posterior
        M, d, r = self.n_models, self.n_features, self.B.shape[1]
        if self._posterior is None:
            V, w, theta = np.zeros((M, d, r)), np.zeros((M, r)), np.zeros((M, d))
        else:
            old = self._posterior
            V, w, theta = old.V.copy(), old.w.copy(), old.theta.copy()
        for m in np.flatnonzero(self._dirty):
            Bm = self.B[m, : self.rows[m]]
            V[m], w[m] = 0.0, 0.0
            if Bm.shape[0]:
                # eigen-decomposition of the small Gram matrix B B^T gives B's right
                # singular vectors without a d x d matrix
                s2, U = np.linalg.eigh(Bm @ Bm.T)
                keep = s2 > 1e-12 * max(float(s2[-1]), 1e-300)
                s2, U = s2[keep], U[:, keep]
                k = s2.shape[0]
                V[m, :, :k] = (Bm.T @ U) / np.sqrt(s2)
                w[m, :k] = s2 / (s2 + self.lam)
            bm = self.b[m]
            theta[m] = (bm - V[m] @ (w[m] * (V[m].T @ bm))) / self.lam
        self._dirty[:] = False
        self._posterior = LowRankPosterior(theta=theta, V=V, w=w, lam=float(self.lam))
        return self._posterior

    @property
    def theta(self) -> np.ndarray:
        """``(M, d)`` posterior means."""
        return self.posterior().theta

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means and unit-noise variances, ``(n, K)`` each."""
        return self.posterior().predict(X)

    def get_state(self) -> dict[str, Any]:
        return {
            "B": self.B,
            "rows": self.rows,
            "b": self.b,
            "n_obs": self.n_obs,
            "shrinkage": self.shrinkage,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.B = np.array(state["B"], dtype=float)
        self.rows = np.array(state["rows"], dtype=np.int64)
        self.b = np.array(state["b"], dtype=float)
        self.n_obs = np.array(state["n_obs"], dtype=float)
        self.shrinkage = np.array(state["shrinkage"], dtype=float)
        self._posterior = None
        self._dirty = np.ones(self.n_models, dtype=bool)


class DiagonalRidge:
    """``M`` ridge regressions with a diagonal precision ``lam + sum_i x_i^2`` (per feature).

    Parameters
    ----------
    n_models, n_features, lam:
        as in :class:`SketchedRidge`.

    Attributes
    ----------
    a:
        ``(M, d)`` diagonal precisions.
    b:
        ``(M, d)`` exact ``sum_i y_i x_i``.
    n_obs:
        ``(M,)`` observation counts.
    """

    def __init__(self, n_models: int, n_features: int, *, lam: float = 1.0) -> None:
        self.n_models = check_positive_int(n_models, "n_models")
        self.n_features = check_positive_int(n_features, "n_features")
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.a = np.full((self.n_models, self.n_features), float(self.lam))
        self.b = np.zeros((self.n_models, self.n_features))
        self.n_obs = np.zeros(self.n_models)

    def partial_fit(
        self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray | None = None
    ) -> None:
        """Add rows (as :meth:`SketchedRidge.partial_fit`)."""
        if model_ids is None:
            model_ids = np.zeros(X.shape[0], dtype=np.int64)
        np.add.at(self.a, model_ids, X * X)
        np.add.at(self.b, model_ids, X * y[:, None])
        np.add.at(self.n_obs, model_ids, 1.0)

    def posterior(self) -> DiagonalPosterior:
        """The current posterior (a new snapshot)."""
        return DiagonalPosterior(theta=self.b / self.a, inv_diag=1.0 / self.a)

    @property
    def theta(self) -> np.ndarray:
        """``(M, d)`` posterior means."""
        return self.b / self.a

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Means and unit-noise variances, ``(n, K)`` each."""
        return self.posterior().predict(X)

    def get_state(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n_obs": self.n_obs}

    def set_state(self, state: dict[str, Any]) -> None:
        self.a = np.array(state["a"], dtype=float)
        self.b = np.array(state["b"], dtype=float)
        self.n_obs = np.array(state["n_obs"], dtype=float)
