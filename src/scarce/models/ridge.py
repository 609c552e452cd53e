"""Online ridge regression with a Gaussian posterior, for one or many independent models, each
with one or several targets sharing its design."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear

# Above this many new rows for one model in one call, refactorise instead of rank-1 updates.
_REFACTOR_ROWS = 8


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
        M, d = self.n_models, self.n_features
        eye = np.eye(d)
        self.A = np.broadcast_to(self.lam * eye, (M, d, d)).copy()
        self.A_inv = np.broadcast_to(eye / self.lam, (M, d, d)).copy()
        self.b = np.zeros((M, d, *self._target_shape))
        self.theta = np.zeros((M, d, *self._target_shape))
        self.n_obs = np.zeros(M)  # effective (weighted) observation count per model
        self._since_resync = np.zeros(M, dtype=np.int64)
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
        """
        n = X.shape[0]
        if self.n_targets is not None and y.shape != (n, self.n_targets):
            raise ValueError(f"y must have shape ({n}, {self.n_targets}); got {y.shape}")
        if model_ids is None:
            model_ids = np.zeros(n, dtype=np.int64)
        if self.forgetting < 1.0:
            self._fit_forgetting(X, y, model_ids)
        elif n == 1:
            self._add(int(model_ids[0]), X, y, 1.0)
        else:
            for m in np.unique(model_ids):
                rows = model_ids == m
                self._add(int(m), X[rows], y[rows], 1.0)
        if self.window is not None:
            self._push_window(X, y, model_ids)

    def _add(self, m: int, X: np.ndarray, y: np.ndarray, sign: float) -> None:
        """Add (sign=+1) or remove (sign=-1) rows from model ``m``."""
        n = X.shape[0]
        self.n_obs[m] += sign * n
        self._since_resync[m] += n
        if n > _REFACTOR_ROWS or self._since_resync[m] >= self.resync_every:
            self.A[m] += sign * (X.T @ X)
            self.b[m] += sign * (X.T @ y)
            self._refactor(m)
            return
        Ai, theta, A, b = self.A_inv[m], self.theta[m], self.A[m], self.b[m]
        # with T targets, yi and the residual are T-vectors and their steps (d, T) outer
        # products; one target keeps the (cheaper) scalar products
        outer = self.n_targets is not None
        for x, yi in zip(X, y, strict=True):
            # Sherman-Morrison on A^{-1}, and the recursive-least-squares step on theta
            # (theta += A_new^{-1} x (y - x^T theta) for an added row), exact in exact arithmetic
            u = Ai.dot(x)
            gain = u * (sign / (1.0 + sign * x.dot(u)))
            resid = yi - x.dot(theta)
            theta += np.multiply.outer(gain, resid) if outer else gain * resid
            Ai -= np.multiply.outer(gain, u)
            A += np.multiply.outer(sign * x, x)
            b += np.multiply.outer(x, sign * yi) if outer else (sign * yi) * x

    def _refactor(self, m: int) -> None:
        c = cho_factor(self.A[m], lower=True, check_finite=False)
        self.A_inv[m] = cho_solve(c, np.eye(self.n_features), check_finite=False)
        self.theta[m] = cho_solve(c, self.b[m], check_finite=False)
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
