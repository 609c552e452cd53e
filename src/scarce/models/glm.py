"""Logistic regression (a GLM with the canonical logit link) fitted by Newton/IRLS, with a
Laplace posterior, for one or many independent models."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from scarce.core.validation import check_positive_int, check_scalar
from scarce.models.ridge import RidgeRegression


class LogisticRegression:
    """``M`` independent L2-regularised logistic regressions, refitted online.

    The penalised negative log-likelihood of model ``m`` is
    ``sum_i [log(1 + exp(x_i^T theta)) - y_i x_i^T theta] + lam/2 ||theta||^2``, with
    ``y_i`` in ``[0, 1]``. After each update the touched models are refitted on their full
    history by Newton's method, warm-started at the previous estimate (a few steps suffice).

    Two covariances are kept (both ``(M, d, d)``):

    * ``laplace_cov``: the inverse Hessian at the estimate, ``(lam I + sum mu'(x^T theta) x x^T)^{-1}``,
      the Laplace approximation of the posterior (used by GLM-TS);
    * ``design_cov``: ``(lam I + sum x x^T)^{-1}``, the design-matrix inverse whose norm is the
      confidence width of UCB-GLM (Li, Lu and Zhou, 2017); maintained by rank-1 updates in a
      :class:`~scarce.models.ridge.RidgeRegression`.

    Parameters
    ----------
    n_models, n_features:
        ``M`` and ``d``.
    lam:
        L2 penalty (Gaussian prior precision), > 0; it also makes the estimate exist before
        the data separate, which replaces Li et al.'s random initial exploration phase.
    max_iter, tol:
        Newton iterations per refit and the stopping tolerance on the step's max-norm. Steps
        are damped (halved until the objective decreases enough: Armijo backtracking).
    """

    def __init__(
        self,
        n_models: int,
        n_features: int,
        *,
        lam: float = 1.0,
        max_iter: int = 25,
        tol: float = 1e-8,
    ) -> None:
        self.n_models = check_positive_int(n_models, "n_models")
        self.n_features = check_positive_int(n_features, "n_features")
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = check_scalar(tol, "tol", low=0.0, low_inclusive=False)
        M, d = self.n_models, self.n_features
        self.theta = np.zeros((M, d))
        self.laplace_cov = np.broadcast_to(np.eye(d) / self.lam, (M, d, d)).copy()
        self.design = RidgeRegression(M, d, lam=self.lam)
        self._X = np.zeros((0, d))
        self._y = np.zeros(0)
        self._m = np.zeros(0, dtype=np.int64)
        self._n = 0

    @property
    def design_cov(self) -> np.ndarray:
        return self.design.A_inv

    @property
    def n_obs(self) -> np.ndarray:
        return self.design.n_obs

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` estimated success probabilities ``sigmoid(x^T theta)``."""
        from scarce.models.linear import predict_mean

        return expit(predict_mean(X, self.theta))

    def partial_fit(
        self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray | None = None
    ) -> None:
        """Add observations and refit the touched models. ``X`` ``(n, d)``, ``y`` ``(n,)`` in [0, 1]."""
        n = X.shape[0]
        if model_ids is None:
            model_ids = np.zeros(n, dtype=np.int64)
        self._append(X, y, model_ids)
        self.design.partial_fit(X, np.zeros(n), model_ids)
        for m in np.unique(model_ids):
            self._refit(int(m))

    def _append(self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray) -> None:
        need = self._n + X.shape[0]
        if need > self._X.shape[0]:
            cap = max(need, 2 * self._X.shape[0], 64)
            for name, fill in (("_X", self._X), ("_y", self._y), ("_m", self._m)):
                grown = np.zeros((cap,) + fill.shape[1:], dtype=fill.dtype)
                grown[: self._n] = fill[: self._n]
                setattr(self, name, grown)
        self._X[self._n : need] = X
        self._y[self._n : need] = y
        self._m[self._n : need] = model_ids
        self._n = need

    def history(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The observations ``(X, y)`` of model ``m``."""
        rows = self._m[: self._n] == m
        return self._X[: self._n][rows], self._y[: self._n][rows]

    def _objective(self, X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float:
        z = X @ theta
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * self.lam * theta @ theta)

    def _refit(self, m: int) -> None:
        """Damped Newton from the previous estimate: the step is halved until the penalised
        negative log-likelihood decreases (plain Newton can diverge on separable data)."""
        X, y = self.history(m)
        theta = self.theta[m].copy()
        eye = np.eye(self.n_features)
        f = self._objective(X, y, theta)
        for _ in range(self.max_iter):
            p = expit(X @ theta)
            grad = X.T @ (p - y) + self.lam * theta
            H = (X * (p * (1.0 - p))[:, None]).T @ X + self.lam * eye
            step = np.linalg.solve(H, grad)
            t = 1.0
            for _ in range(30):
                candidate = theta - t * step
                f_new = self._objective(X, y, candidate)
                if f_new <= f + 1e-4 * t * (grad @ -step):
                    break
                t *= 0.5
            theta, f = candidate, f_new
            if np.max(np.abs(t * step)) < self.tol:
                break
        p = expit(X @ theta)
        H = (X * (p * (1.0 - p))[:, None]).T @ X + self.lam * eye
        self.theta[m] = theta
        cov = np.linalg.inv(H)
        self.laplace_cov[m] = 0.5 * (cov + cov.T)

    def get_state(self) -> dict[str, Any]:
        return {
            "theta": self.theta,
            "laplace_cov": self.laplace_cov,
            "design": self.design.get_state(),
            "X": self._X[: self._n].copy(),
            "y": self._y[: self._n].copy(),
            "m": self._m[: self._n].copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.theta = np.array(state["theta"], dtype=float)
        self.laplace_cov = np.array(state["laplace_cov"], dtype=float)
        self.design.set_state(state["design"])
        self._X = np.array(state["X"], dtype=float).reshape(-1, self.n_features)
        self._y = np.array(state["y"], dtype=float)
        self._m = np.array(state["m"], dtype=np.int64)
        self._n = self._X.shape[0]
