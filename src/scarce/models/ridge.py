"""Online ridge regression with a Gaussian posterior, for one or many independent models, each
with one or several targets sharing its design."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import compiled, linear
from scarce.models.pending import PendingOuterProducts
from scarce.models.row_step import RowStep, rank_one_update, step_targets

#: above this many new rows for one model in one call, refactorise instead of rank-1 updates
REFACTOR_ROWS = 8


def solve_posterior(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(A^{-1}, A^{-1} b)`` of one model from a Cholesky factorisation of its precision
    ``A`` ``(d, d)`` (``b`` ``(d,)`` or ``(d, T)``)."""
    c = cho_factor(A, lower=True, check_finite=False)
    return (
        cho_solve(c, np.eye(A.shape[0]), check_finite=False),
        cho_solve(c, b, check_finite=False),
    )


class RidgeRegression:
    """``M`` independent Bayesian ridge regressions in ``d`` features, updated online.

    Model ``m`` has precision ``A_m = lam * I + sum_i w_i x_i x_i^T`` and vector
    ``b_m = sum_i w_i y_i x_i``; its posterior mean is ``theta_m = A_m^{-1} b_m`` and, for
    unit noise, its covariance is ``A_m^{-1}`` (scale it by the noise variance for a proper
    posterior; policies carry that scale as their exploration parameter).

    With ``n_targets = T`` every model regresses ``T`` targets observed on the same rows
    (``y_i`` is a ``T``-vector): they share ``A_m`` and ``A_m^{-1}`` (one rank-1 update and
    one confidence width per row for all ``T``), and ``b_m``, ``theta_m`` gain a trailing
    target axis. Each target's posterior is exactly that of a single-target model fed the
    same rows (independent noise per target).

    Parameters
    ----------
    n_models:
        ``M``, number of independent models (``K`` for disjoint per-action models, 1 for shared).
    n_features:
        ``d``.
    lam:
        ridge penalty / prior precision, > 0.
    forgetting:
        exponential forgetting factor ``gamma`` in (0, 1]. With ``gamma < 1`` each new
        observation discounts the data of *every* model by ``gamma`` (time-based, as in
        discounted LinUCB); the prior ``lam * I`` is not discounted, so widths stay bounded.
        Costs a refactorisation of every model per update.
    window:
        keep only the most recent ``window`` observations (over all models; sliding-window
        LinUCB). Older ones are removed by rank-1 downdates. None keeps everything.
    resync_every:
        refactorise a model after this many rank-1 updates.
    n_targets:
        None (default): one target per model, ``theta`` and ``b`` are ``(M, d)`` and ``y``
        ``(n,)``. An int ``T``: ``theta`` and ``b`` are ``(M, d, T)`` and ``y`` ``(n, T)``.
    backend:
        ``"numpy"`` (default) or ``"numba"``: :meth:`add_one` of a single-target model
        without forgetting or window, and :meth:`one_case_ucb` / :meth:`one_case_thompson`,
        run the compiled kernels of :mod:`scarce.models.compiled` (needs numba: the ``fast``
        extra). They agree with the NumPy arithmetic to rounding, not bit for bit (see that
        module); everything else, state and refactorisations included, is the same code.

    Notes
    -----
    Updates use Sherman-Morrison rank-1 updates of ``A^{-1}`` for a few rows, and a Cholesky
    refactorisation of ``A`` for large batches, for forgetting, and every ``resync_every``
    rank-1 updates (to stop round-off from accumulating).
    """

    def __init__(
        self,
        n_models: int,
        n_features: int,
        *,
        lam: float = 1.0,
        forgetting: float = 1.0,
        window: int | None = None,
        resync_every: int = 2000,
        n_targets: int | None = None,
        backend: str = "numpy",
    ) -> None:
        self.n_models = check_positive_int(n_models, "n_models")
        self.n_features = check_positive_int(n_features, "n_features")
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.forgetting = check_scalar(
            forgetting, "forgetting", low=0.0, high=1.0, low_inclusive=False
        )
        self.window = None if window is None else check_positive_int(window, "window")
        self.resync_every = check_positive_int(resync_every, "resync_every")
        self.n_targets = None if n_targets is None else check_positive_int(n_targets, "n_targets")
        if self.window is not None and self.forgetting < 1.0:
            raise ValueError("use either forgetting < 1 or a window, not both")
        self.backend = compiled.check_backend(backend)
        M, d = self.n_models, self.n_features
        # the kernels of the numba backend, when its one-row steps apply, and their scratch
        self._kernels = compiled.kernels() if self.backend == "numba" else None
        self._compiled_rows = (
            self._kernels is not None
            and self.forgetting == 1.0
            and self.window is None
            and self.n_targets is None
        )
        self._scratch = np.empty(n_features)
        eye = np.eye(d)
        #: bumped by every change of the models (caches of derived values key on it)
        self.version = 0
        # (version, A_inv, bytes of x, A_inv @ x) of the last one_case_products
        self._products: tuple[int, np.ndarray, bytes, np.ndarray] | None = None
        self._pending = PendingOuterProducts(M, d)  # add_one's A += x x^T, deferred
        self.A = np.broadcast_to(self.lam * eye, (M, d, d)).copy()
        self.A_inv = np.broadcast_to(eye / self.lam, (M, d, d)).copy()
        self.b = np.zeros((M, d, *self._target_shape))
        self.theta = np.zeros((M, d, *self._target_shape))
        self.n_obs = np.zeros(M)  # effective (weighted) observation count per model
        self._since_resync = np.zeros(M, dtype=np.int64)
        self._row_step = RowStep(d)  # add_one's kernel and scratch (not state)
        if self.window is not None:
            self._buf_X = np.zeros((self.window, d))
            self._buf_y = np.zeros((self.window, *self._target_shape))
            self._buf_m = np.zeros(self.window, dtype=np.int64)
            self._buf_len = 0
            self._buf_pos = 0

    @property
    def _target_shape(self) -> tuple[int, ...]:
        """``()`` for single-target models, ``(T,)`` with ``n_targets = T``."""
        return () if self.n_targets is None else (self.n_targets,)

    # ----------------------------------------------------------------- posterior
    @property
    def cov(self) -> np.ndarray:
        """``(M, d, d)`` posterior covariance for unit noise, ``A^{-1}`` (shared by the targets)."""
        return self.A_inv

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unit-noise variance of ``x^T theta`` (see ``models.linear``).

        ``X`` is ``(n, d)`` (disjoint models) or ``(n, K, d)`` (per-action features, ``M = 1``).
        Single-target: mean and variance ``(n, K)`` each, ``K = M`` for ``(n, d)`` contexts.
        With ``n_targets = T``: mean ``(n, K, T)`` and the variance ``(n, K)``, computed once
        for all targets (they share the design).
        """
        if self.n_targets is None:
            return linear.predict(X, self.theta, self.A_inv)
        var = np.maximum(linear.predict_variance(X, self.A_inv), 0.0)
        if X.ndim == 2:
            # one (n, d) @ (d, T) product per model, as an (n, M, T) view
            mean = np.matmul(X, self.theta).transpose(1, 0, 2)
        else:
            mean = linear.predict_mean(X, self.theta)  # (n, K, d) @ (d, T)
        return mean, var

    def set_prior(self, mean: np.ndarray, precision: np.ndarray) -> None:
        """Replace the prior ``N(0, (lam I)^{-1})`` by ``N(mean_m, precision_m^{-1})`` per model
        (in the same unit-noise scale as ``A``: for noise variance ``s^2`` and a prior
        covariance ``S``, pass ``precision = s^2 S^{-1}``).

        Parameters
        ----------
        mean:
            ``(d,)`` (every model) or ``(M, d)``; with ``n_targets = T``, ``(d, T)`` or
            ``(M, d, T)``.
        precision:
            ``(d, d)`` or ``(M, d, d)``, symmetric positive definite.

        Notes
        -----
        Only before any observation, and not with ``forgetting < 1`` (which discounts towards
        the ``lam I`` prior). Posterior means then shrink towards ``mean``:
        ``theta = A^{-1} (precision mean + sum y x)``.
        """
        M, d = self.n_models, self.n_features
        if np.any(self.n_obs != 0):
            raise ValueError("set_prior must be called before any observation")
        if self.forgetting < 1.0:
            raise ValueError("set_prior is not supported with forgetting < 1")
        mean = np.asarray(mean, dtype=float)
        precision = np.asarray(precision, dtype=float)
        tshape = self._target_shape
        if mean.shape == (d, *tshape):
            mean = np.broadcast_to(mean, (M, d, *tshape))
        if mean.shape != (M, d, *tshape) or not np.all(np.isfinite(mean)):
            raise ValueError(
                f"mean must be finite with shape {(d, *tshape)} or {(M, d, *tshape)}; "
                f"got {mean.shape}"
            )
        if precision.shape == (d, d):
            precision = np.broadcast_to(precision, (M, d, d))
        if precision.shape != (M, d, d) or not np.all(np.isfinite(precision)):
            raise ValueError(
                f"precision must be finite with shape ({d}, {d}) or ({M}, {d}, {d}); "
                f"got {precision.shape}"
            )
        if not np.allclose(precision, np.swapaxes(precision, 1, 2)):
            raise ValueError("precision must be symmetric")
        try:
            np.linalg.cholesky(precision)
        except np.linalg.LinAlgError:
            raise ValueError("precision must be positive definite") from None
        self.A = precision.copy()
        if self.n_targets is None:
            self.b = np.einsum("mde,me->md", precision, mean)
        else:
            self.b = np.einsum("mde,met->mdt", precision, mean)
        for m in range(M):
            self._refactor(m)

    # ----------------------------------------------------------------- learning
    def partial_fit(
        self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray | None = None
    ) -> None:
        """Add observations ``(X[i], y[i])`` to model ``model_ids[i]`` (all to model 0 if None).

        ``X`` is ``(n, d)``, ``y`` ``(n,)`` (``(n, T)`` with ``n_targets = T``: every target
        observed on every row), ``model_ids`` ``(n,)`` ints in ``[0, M)``.
        Inputs are assumed validated by the caller (a multi-target ``y``'s shape is checked).

        Each model takes its rows in order: by rank-1 steps (:func:`rank_one_update`, one
        step for all models that get a row at once), or, for more than :data:`REFACTOR_ROWS`
        rows or when ``resync_every`` is reached, one refactorisation.
        """
        n = X.shape[0]
        if self.n_targets is not None and y.shape != (n, self.n_targets):
            raise ValueError(f"y must have shape ({n}, {self.n_targets}); got {y.shape}")
        self.version += 1
        if model_ids is None:
            model_ids = np.zeros(n, dtype=np.int64)
        if self.forgetting < 1.0:
            self._fit_forgetting(X, y, model_ids)
        elif n == 1:
            self._add(int(model_ids[0]), X, y, 1.0)
        else:
            self._fit_rows(X, y, np.asarray(model_ids, dtype=np.int64))
        if self.window is not None:
            self._push_window(X, y, model_ids)

    def add_one(self, model: int, x: np.ndarray, y: Any) -> None:
        """``partial_fit(x[None], [y], [model])`` for one row ``x`` ``(d,)``: the same
        arithmetic, without a batch's bookkeeping. ``y`` is a float (``(T,)`` floats with
        ``n_targets = T``). When the last :meth:`one_case_products` was of this ``x``
        (bitwise) and the models have not changed since, its row ``model`` is taken for
        ``A^{-1} x`` instead of being computed again."""
        if self._compiled_rows and type(self.resync_every) is int:
            self._before_compiled_step()
            if not self._kernels.ridge_add_one(  # type: ignore[union-attr]
                self.A_inv,
                self._A,
                self.b,
                self.theta,
                self.n_obs,
                self._since_resync,
                self.resync_every,
                model,
                x,
                float(y),
                self._scratch,
            ):  # the model's resync_every-th row: refactorise (as below)
                self._add(model, x[None, :], np.array([y], dtype=float), 1.0)
            return
        known = self._products
        if known is not None:  # A_inv x from one_case_products, if still that of this x
            self._products = None
            if known[0] != self.version or known[1] is not self.A_inv or x.tobytes() != known[2]:
                known = None
        self.version += 1
        if self.forgetting < 1.0 or self.window is not None:
            y1 = np.array([y], dtype=float)
            self.partial_fit(x[None, :], y1, np.array([model]))
            return
        if self.n_targets is not None and np.shape(y) != (self.n_targets,):
            raise ValueError(f"y must have shape ({self.n_targets},); got {np.shape(y)}")
        since = int(self._since_resync[model]) + 1
        limit = self.resync_every
        if since >= (limit if type(limit) is int else self._resync_limit(model)):
            self._add(model, x[None, :], np.array([y], dtype=float), 1.0)
            return
        self._since_resync[model] = since
        self.n_obs[model] += 1.0
        if self.n_targets is None:
            u = None if known is None else known[3][model]
            self._row_step.add(self.A_inv[model], self.b[model], self.theta[model], x, y, u)
            self._pending.add(self._A, model, x)
        else:
            rank_one_update(
                self.A[model], self.A_inv[model], self.b[model], self.theta[model], x, y
            )

    def one_case_products(self, x: np.ndarray) -> np.ndarray:
        """``(M, d)`` products ``A_m^{-1} x`` of one row ``x`` ``(d,)`` with every model (one
        GEMV per model: each row is bitwise ``A_inv[m].dot(x)``), the start of its confidence
        widths (``x^T A_m^{-1} x``). Kept until the models change, so that an
        :meth:`add_one` of the same ``x`` reuses its row instead of computing it again: the
        caller must not write into them (not enforced: a read-only flag costs a quarter of
        a microsecond)."""
        Z = self.A_inv @ x
        self._products = (self.version, self.A_inv, x.tobytes(), Z)
        return Z

    def _before_compiled_step(self) -> None:
        """What a compiled step that writes ``A`` directly needs first: the change counted,
        the kept products dropped, the rows the NumPy step left waiting added to ``A`` (so
        that ``A`` still takes its rows in order)."""
        self._products = None
        self.version += 1
        if self._pending.waiting:
            self._pending.flush_all(self._A)

    def one_case_ucb(self, X: np.ndarray, alpha: float, scores: np.ndarray) -> int:
        """Compiled (``backend="numba"``): the upper confidence bounds ``x . theta_m +
        sqrt(max(x^T A_m^{-1} x, 0)) alpha`` of one context ``X`` ``(1, d)`` under every
        single-target model, into ``scores`` ``(1, M)``; returns their argmax (ties: the
        lowest id)."""
        return self._kernels.ucb_one(  # type: ignore[union-attr]
            self.A_inv, self.theta, X, alpha, scores, self._scratch
        )

    def one_case_thompson(self, X: np.ndarray, v: float, Z: np.ndarray, out: np.ndarray) -> int:
        """Compiled (``backend="numba"``): Thompson scores of one context ``X`` ``(1, d)``
        under every single-target model, ``x . theta_m + (sqrt(max(x^T A_m^{-1} x, 0)) v)
        z_m`` with the standard normals ``Z`` ``(1, M)``, written over ``Z``; ``out``
        ``(2, M)`` receives the means and the standard deviations. Returns the argmax of the
        scores (ties: the lowest id)."""
        return self._kernels.thompson_one(  # type: ignore[union-attr]
            self.A_inv, self.theta, X, v, Z, out, self._scratch
        )

    # ------------------------------------------------------- the deferred A += x x^T
    @property
    def A(self) -> np.ndarray:
        """``(M, d, d)`` precisions ``lam I + sum_i x_i x_i^T`` (with every row learned so far)."""
        if self._pending.waiting:
            self._pending.flush_all(self._A)
        return self._A

    @A.setter
    def A(self, value: np.ndarray) -> None:
        # a new A already holds every row: rows still waiting are dropped
        self._A = value
        self._pending.clear()
        self.version += 1

    def add_one_paired(
        self,
        model: int,
        x: np.ndarray,
        y: Any,
        other: RidgeRegression,
        other_model: int,
        other_y: Any,
    ) -> None:
        """``add_one(model, x, y)`` here and ``other.add_one(other_model, x, other_y)``, for
        two models whose designs are bitwise equal (the same rows so far, in the same order:
        ``A``, ``A^{-1}``, counts and resync state; the caller vouches for it). The
        Sherman-Morrison step of the shared design is made once and copied, so the result is
        bitwise that of the two calls (the same operations on the same numbers). With
        ``backend="numba"`` on both (single-target here, multi-target ``other``) the step is
        the compiled :func:`~scarce.models.numba_kernels.paired_add_one`: the same formulas
        to rounding, and the two designs still bitwise equal to each other."""
        since = int(self._since_resync[model]) + 1
        limit, other_limit = self.resync_every, other.resync_every
        if (
            self.forgetting < 1.0
            or self.window is not None
            or other.forgetting < 1.0
            or other.window is not None
            or since >= (limit if type(limit) is int else self._resync_limit(model))
            or since
            >= (other_limit if type(other_limit) is int else other._resync_limit(other_model))
            or (self.n_targets is not None and np.shape(y) != (self.n_targets,))
            or (other.n_targets is not None and np.shape(other_y) != (other.n_targets,))
        ):
            self.add_one(model, x, y)
            other.add_one(other_model, x, other_y)
            return
        if (
            self._kernels is not None
            and other._kernels is not None
            and self.n_targets is None
            and other.n_targets is not None
        ):  # compiled (backend="numba"): the same step, to rounding
            self._before_compiled_step()
            other._before_compiled_step()
            self._kernels.paired_add_one(
                self.A_inv,
                self._A,
                self.b,
                self.theta,
                self.n_obs,
                self._since_resync,
                model,
                other.A_inv,
                other._A,
                other.b,
                other.theta,
                other.n_obs,
                other._since_resync,
                other_model,
                x,
                float(y),
                np.asarray(other_y, dtype=np.float64),
                self._scratch,
            )
            return
        self._since_resync[model] = since
        other._since_resync[other_model] = since
        self.version += 1
        other.version += 1
        self.n_obs[model] += 1.0
        other.n_obs[other_model] += 1.0
        A_inv = self.A_inv[model]
        u = A_inv.dot(x)
        gain = u * (1.0 / (1.0 + 1.0 * x.dot(u)))  # rank_one_update's expression, sign = 1
        step_targets(self.b[model], self.theta[model], x, y, gain, 1.0)
        step_targets(other.b[other_model], other.theta[other_model], x, other_y, gain, 1.0)
        A_inv -= np.multiply.outer(gain, u)
        other.A_inv[other_model] = A_inv
        # the same x x^T into both precisions, deferred (as add_one defers it; the flush
        # adds the products in order, so bitwise A += x x^T row by row, for any targets)
        self._pending.add(self._A, model, x)
        other._pending.add(other._A, other_model, x)

    def _resync_limit(self, m: int) -> int:
        r = self.resync_every  # an int, or one per model for a stack (see stack)
        return r if np.ndim(r) == 0 else int(r[m])

    def _add(self, m: int, X: np.ndarray, y: np.ndarray, sign: float) -> None:
        """Add (sign=+1) or remove (sign=-1) rows from model ``m``."""
        n = X.shape[0]
        self.n_obs[m] += sign * n
        self._since_resync[m] += n
        if n > REFACTOR_ROWS or self._since_resync[m] >= self._resync_limit(m):
            self._refactor_rows(m, X, y, sign)
            return
        A, Ai, b, theta = self.A[m], self.A_inv[m], self.b[m], self.theta[m]
        for x, yi in zip(X, y, strict=True):
            rank_one_update(A, Ai, b, theta, x, yi, sign=sign)

    def _fit_rows(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
        """Rows of several models (sign +1), as ``_add`` per model would take them; the
        ``r``-th rank-1 row of every model goes in one batched step."""
        counts = np.bincount(ids, minlength=self.n_models)
        self.n_obs += counts
        self._since_resync += counts
        refactor = (counts > REFACTOR_ROWS) | (
            (counts > 0) & (self._since_resync >= self.resync_every)
        )
        steps = np.flatnonzero(~refactor[ids])  # rows taken by rank-1 steps, in order
        if steps.size and counts.max() == 1:  # one row per model (replicas): one step
            rank_one_update(
                self.A, self.A_inv, self.b, self.theta, X[steps], y[steps], index=ids[steps]
            )
        elif steps.size:
            sid = ids[steps]
            order = np.argsort(sid, kind="stable")
            sorted_ids = sid[order]
            occurrence = np.empty(steps.size, dtype=np.int64)
            occurrence[order] = np.arange(steps.size) - np.searchsorted(sorted_ids, sorted_ids)
            for r in range(int(occurrence.max()) + 1):
                rows = steps[occurrence == r]
                rank_one_update(
                    self.A, self.A_inv, self.b, self.theta, X[rows], y[rows], index=ids[rows]
                )
        for m in np.flatnonzero(refactor):
            rows = ids == m
            self._refactor_rows(int(m), X[rows], y[rows])

    def _refactor_rows(self, m: int, X: np.ndarray, y: np.ndarray, sign: float = 1.0) -> None:
        if sign == 1.0:
            self.A[m] += X.T @ X
            self.b[m] += X.T @ y
        else:
            self.A[m] += sign * (X.T @ X)
            self.b[m] += sign * (X.T @ y)
        self._refactor(m)

    def _refactor(self, m: int) -> None:
        self.A_inv[m], self.theta[m] = solve_posterior(self.A[m], self.b[m])
        self.version += 1
        self._since_resync[m] = 0

    def _fit_forgetting(self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray) -> None:
        n, d = X.shape
        g = self.forgetting
        eye = np.eye(d)
        weights = g ** np.arange(n - 1, -1, -1, dtype=float)
        # discount the data part of every model, keep the prior lam * I
        self.A = (g**n) * (self.A - self.lam * eye) + self.lam * eye
        self.b *= g**n
        self.n_obs *= g**n
        for m in np.unique(model_ids):
            rows = model_ids == m
            Xw = X[rows] * weights[rows, None]
            self.A[m] += Xw.T @ X[rows]
            self.b[m] += Xw.T @ y[rows]
            self.n_obs[m] += weights[rows].sum()
        self.A_inv = np.linalg.inv(self.A)
        self.A_inv = 0.5 * (self.A_inv + np.swapaxes(self.A_inv, 1, 2))
        M, d = self.n_models, self.n_features
        # solve with every model's targets as columns: (M, d, 1) for one target, (M, d, T)
        self.theta = np.linalg.solve(self.A, self.b.reshape(M, d, -1)).reshape(self.b.shape)

    def _push_window(self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray) -> None:
        W = self.window
        assert W is not None
        for x, yi, m in zip(X, y, model_ids, strict=True):
            if self._buf_len == W:  # evict the oldest observation
                old = self._buf_pos
                self._remove(
                    int(self._buf_m[old]), self._buf_X[old : old + 1], self._buf_y[old : old + 1]
                )
            else:
                self._buf_len += 1
            self._buf_X[self._buf_pos] = x
            self._buf_y[self._buf_pos] = yi
            self._buf_m[self._buf_pos] = m
            self._buf_pos = (self._buf_pos + 1) % W

    def _remove(self, m: int, X: np.ndarray, y: np.ndarray) -> None:
        self._add(m, X, y, -1.0)

    # ----------------------------------------------------------------- stacking
    @classmethod
    def stack(cls, models: Sequence[RidgeRegression]) -> RidgeRegression:
        """One model set holding copies of ``R`` model sets side by side: ``R * M`` models,
        model ``r * M + m`` being model ``m`` of ``models[r]`` (its ``resync_every`` too).
        Learning on the stack is bitwise learning on each set (:func:`rank_one_update`'s
        batched form); :meth:`unstack` copies the result back. Sets must agree on
        ``n_models``, ``n_features`` and ``n_targets`` and use neither forgetting nor a window.
        """
        first = models[0]
        for r, m in enumerate(models):
            same = (m.n_models, m.n_features, m.n_targets) == (
                first.n_models,
                first.n_features,
                first.n_targets,
            )
            if not same or m.forgetting < 1.0 or m.window is not None:
                raise ValueError(
                    f"models[{r}] cannot be stacked with models[0]: stacks need the same "
                    "n_models, n_features and n_targets, forgetting=1 and window=None"
                )
        out = cls(
            len(models) * first.n_models,
            first.n_features,
            lam=first.lam,
            n_targets=first.n_targets,
        )
        for name in ("A", "A_inv", "b", "theta", "n_obs", "_since_resync"):
            setattr(out, name, np.concatenate([getattr(m, name) for m in models]))
        out.resync_every = np.repeat([m.resync_every for m in models], first.n_models)
        return out

    def unstack(self, models: Sequence[RidgeRegression]) -> None:
        """Copy the learned state of a :meth:`stack` back into the sets it was built from."""
        M = models[0].n_models
        for r, m in enumerate(models):
            part = slice(r * M, (r + 1) * M)
            for name in ("A", "A_inv", "b", "theta", "n_obs", "_since_resync"):
                setattr(m, name, getattr(self, name)[part].copy())

    # ----------------------------------------------------------------- persistence
    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "A": self.A,
            "A_inv": self.A_inv,
            "b": self.b,
            "theta": self.theta,
            "n_obs": self.n_obs,
            "since_resync": self._since_resync,
        }
        if self.window is not None:
            state.update(
                buf_X=self._buf_X,
                buf_y=self._buf_y,
                buf_m=self._buf_m,
                buf_len=self._buf_len,
                buf_pos=self._buf_pos,
            )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        M, d = self.n_models, self.n_features
        shapes = {"A": (M, d, d), "A_inv": (M, d, d), "b": (M, d, *self._target_shape)}
        shapes["theta"] = shapes["b"]
        for key, shape in shapes.items():
            if np.shape(state[key]) != shape:
                raise ValueError(
                    f"state[{key!r}] must have shape {shape} for this model "
                    f"(n_models={M}, n_features={d}, n_targets={self.n_targets}); "
                    f"got {np.shape(state[key])}"
                )
        self.A = np.array(state["A"], dtype=float)
        self.A_inv = np.array(state["A_inv"], dtype=float)
        self.b = np.array(state["b"], dtype=float)
        self.theta = np.array(state["theta"], dtype=float)
        self.n_obs = np.array(state["n_obs"], dtype=float)
        self._since_resync = np.array(state["since_resync"], dtype=np.int64)
        if self.window is not None:
            self._buf_X = np.array(state["buf_X"], dtype=float)
            self._buf_y = np.array(state["buf_y"], dtype=float)
            self._buf_m = np.array(state["buf_m"], dtype=np.int64)
            self._buf_len = int(state["buf_len"])
            self._buf_pos = int(state["buf_pos"])
