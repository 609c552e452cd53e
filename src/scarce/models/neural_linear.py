"""Neural-linear regression with the interface of :class:`~scarce.models.ridge.RidgeRegression`
(extra ``neural``).

Riquelme, Tucker and Snoek (2018), "Deep Bayesian bandits showdown": a network learns a
representation ``phi(x)``; a Bayesian linear regression on ``phi`` gives the posterior that
Thompson sampling (or a UCB) uses. ``M`` models (one per action for shared contexts) share one
network body with ``M`` output heads, each row training only its own model's head; each model
has its own ridge posterior on ``phi``. Between retrainings the posteriors are updated online
(rank-1) on the current embedding; after each retraining (:class:`~scarce.models.mlp.OnlineNetwork`:
a fixed number of warm-started minibatch steps on the replay buffer, on a schedule), every
buffered row is re-embedded and the posteriors are refitted from scratch on the new features,
as in the paper. The refit is a forward pass and one ``Z^T Z`` per model: linear in the
buffer, no training on the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.mlp import NetworkConfig, OnlineNetwork
from scarce.models.ridge import RidgeRegression


class NeuralLinearRegression:
    """``M`` neural-linear regressions on a shared network body.

    Parameters
    ----------
    n_models:
        ``M``: output heads and ridge posteriors (``K`` for disjoint per-action models, 1 for
        per-action features).
    n_features:
        input dimension ``d``.
    lam:
        ridge penalty (prior precision) of the linear posteriors on the embedding.
    network:
        a :class:`~scarce.models.mlp.NetworkConfig` or a mapping of its fields.
    append_inputs:
        regress on ``[phi(x), x]`` instead of ``phi(x)``: the posterior keeps the raw
        features' linear model, so where the ReLU embedding is zero (a region every unit of
        the last hidden layer ignores, which then carries no information and no width) or
        not yet trained, the model is still the linear one.
    seed:
        seed or NumPy generator of the network.

    Attributes
    ----------
    net:
        the :class:`~scarce.models.mlp.OnlineNetwork` (its ``mlp``, ``buffer``, ``schedule``).
    ridge:
        the :class:`~scarce.models.ridge.RidgeRegression` on the embeddings (``M`` models in
        ``hidden[-1]`` dimensions, ``+ d`` with ``append_inputs``).
    """

    def __init__(
        self,
        n_models: int,
        n_features: int,
        *,
        lam: float = 1.0,
        network: NetworkConfig | Mapping[str, Any] | None = None,
        append_inputs: bool = False,
        seed: SeedLike = None,
    ) -> None:
        self.n_models = check_positive_int(n_models, "n_models")
        self.n_features = check_positive_int(n_features, "n_features")
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        if not isinstance(append_inputs, (bool, np.bool_)):
            raise ValueError(f"append_inputs must be a bool; got {append_inputs!r}")
        self.append_inputs = bool(append_inputs)
        self.net = OnlineNetwork(n_features, n_models, network, seed=seed)
        self.ridge = RidgeRegression(n_models, self.dim, lam=self.lam)
        self.yy = np.zeros(n_models)  # sum of squared targets per model

    # ------------------------------------------------------------------ posterior
    @property
    def dim(self) -> int:
        """Dimension of the features the posteriors see (``h``, or ``h + d``)."""
        return self.net.mlp.embedding_dim + (self.n_features if self.append_inputs else 0)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Features of the posteriors: ``(n, dim)`` for ``X`` ``(n, d)``, ``(n, K, dim)`` for
        ``(n, K, d)``."""
        flat = X.reshape(-1, X.shape[-1])
        Z = self.net.mlp.embed(flat)[0]
        if self.append_inputs:
            Z = np.concatenate([Z, flat], axis=1)
        return Z.reshape(*X.shape[:-1], Z.shape[1])

    @property
    def theta(self) -> np.ndarray:
        """``(M, h)`` posterior means on the embedding."""
        return self.ridge.theta

    @property
    def A_inv(self) -> np.ndarray:
        """``(M, h, h)`` unit-noise posterior covariances on the embedding."""
        return self.ridge.A_inv

    cov = A_inv

    @property
    def n_obs(self) -> np.ndarray:
        """``(M,)`` observations per model."""
        return self.ridge.n_obs

    @property
    def n_retrains(self) -> int:
        return self.net.n_retrains

    @property
    def residual_ss(self) -> np.ndarray:
        """``(M,)`` ``y^T y - theta^T A theta`` per model: the residual sum of squares of the
        ridge fit plus its penalty, the data term of the inverse-gamma posterior of the noise
        variance (Riquelme et al.'s ``b`` update), >= 0."""
        r = self.ridge
        return np.maximum(self.yy - np.einsum("md,md->m", r.theta, r.b), 0.0)

    def noise_posterior(self, a0: float, b0: float) -> tuple[np.ndarray, np.ndarray]:
        """``(M,)`` shape ``a = a0 + n / 2`` and scale ``b = b0 + r / 2`` of each model's
        inverse-gamma noise posterior (Riquelme et al.; ``r`` is :attr:`residual_ss`)."""
        return a0 + 0.5 * self.n_obs, b0 + 0.5 * self.residual_ss

    def student_view(self, Z: np.ndarray, a0: float, b0: float) -> tuple[np.ndarray, ...]:
        """What :func:`student_scores` needs for the embedded cases ``Z`` (from
        :meth:`transform`), copied (the posteriors move in place on update): shared contexts
        ``Z`` ``(n, dim)``: means and unit-noise variances ``(n, M)``, ``a, b`` ``(M,)``;
        per-action features ``(n, K, dim)`` (one model): ``Z``, ``theta``, ``cov``, ``a, b``."""
        a, b = self.noise_posterior(a0, b0)
        if Z.ndim == 2:
            return (*linear.predict(Z, self.theta, self.A_inv), a, b)
        return Z, self.theta[0].copy(), self.A_inv[0].copy(), a, b

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unit-noise variance ``(n, M)`` (``(n, K)`` for per-action features)."""
        return self.ridge.predict(self.transform(X))

    # ------------------------------------------------------------------ learning
    def partial_fit(
        self, X: np.ndarray, y: np.ndarray, model_ids: np.ndarray | None = None
    ) -> bool:
        """Add rows ``X`` ``(n, d)``, ``y`` ``(n,)`` to models ``model_ids`` ``(n,)`` (all to 0
        if None). Returns whether the network was retrained (and the posteriors refitted)."""
        ids = np.zeros(X.shape[0], dtype=np.int64) if model_ids is None else model_ids
        np.add.at(self.yy, ids, np.asarray(y, dtype=float) ** 2)
        if not self.net.add(X, y, ids):
            self.ridge.partial_fit(self.transform(X), y, ids)
            return False
        self.refit()
        return True

    def refit(self) -> None:
        """Refit every posterior from scratch on the buffer's rows, re-embedded."""
        b = self.net.buffer
        self.ridge = RidgeRegression(self.n_models, self.dim, lam=self.lam)
        self.yy = np.zeros(self.n_models)
        if b.size:
            self.ridge.partial_fit(self.transform(b.X), b.y, b.heads)
            np.add.at(self.yy, b.heads, b.y**2)

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        return {"net": self.net.get_state(), "ridge": self.ridge.get_state(), "yy": self.yy.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.net.set_state(state["net"])
        self.ridge.set_state(state["ridge"])
        self.yy = np.asarray(state["yy"], dtype=float).reshape(self.n_models)


def student_scores(view: tuple[np.ndarray, ...], v: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, K)`` Thompson scores under the normal-inverse-gamma posterior of
    :meth:`NeuralLinearRegression.student_view`: per case and model a noise variance
    ``sigma^2 ~ IG(a, b)``, then ``theta~ ~ N(theta_hat, v^2 sigma^2 A^{-1})`` (each score is
    marginally a Student t with ``2a`` degrees of freedom)."""
    v = float(v)
    if len(view) == 4:
        mean, var, a, b = view
        sigma2 = b / rng.gamma(a, size=mean.shape)
        return mean + v * np.sqrt(sigma2 * var) * rng.standard_normal(mean.shape)
    Z, theta, cov, a, b = view
    n = Z.shape[0]
    dev = linear.sample_parameters(theta, cov, 1.0, n, rng) - theta
    sigma = np.sqrt(b[0] / rng.gamma(a[0], size=(n, 1)))
    return np.einsum("nkd,nd->nk", Z, theta + v * sigma * dev)


def student_argmax_probabilities(
    view: tuple[np.ndarray, ...],
    v: float,
    eligible: np.ndarray | None,
    n_samples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n, K)`` Monte-Carlo probability that each action has the largest of
    :func:`student_scores` (``n_samples`` draws from ``rng``; ``eligible`` ``(n, K)`` bool or
    None)."""
    counts = None
    for _ in range(n_samples):
        s = student_scores(view, v, rng)
        if eligible is not None:
            s = np.where(eligible, s, -np.inf)
        if counts is None:
            counts = np.zeros(s.shape)
        counts[np.arange(s.shape[0]), np.argmax(s, axis=1)] += 1.0
    return counts / n_samples
