"""Estimators for the budgeted learners: a bank of ``M`` independent models of one link
(identity: ridge, optionally with ``T`` targets sharing each model's design; logistic: L2
logistic regression; neural: one :class:`~scarce.models.neural.NeuralLinear` per model),
each giving optimistic (upper) or pessimistic (lower) confidence bounds
``mu(x^T theta_hat +- beta_k ||x||_{V_k^{-1}})`` (spec A.3, exact for a monotone link), with
one width per design and one radius ``beta_k`` per model (from its own observation count).
The models themselves are the shared ones of :mod:`scarce.models`; this module only adds the
bound and the GLM radius.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, logit

from scarce.models.glm import LogisticRegression
from scarce.models.linear import predict_mean, predict_variance
from scarce.models.ridge import RidgeRegression

LINKS = ("identity", "logistic")


def glm_radius(t: int, dim: int, *, sigma: float, kappa: float, delta: float) -> float:
    """Li, Lu and Zhou (2017) confidence radius
    ``beta_t = sigma / kappa * sqrt(dim / 2 * log(1 + 2 t / dim) + log(1 / delta))``."""
    return (
        sigma
        / kappa
        * math.sqrt(0.5 * dim * math.log1p(2.0 * max(t, 1) / dim) + math.log(1.0 / delta))
    )


class LinearBank:
    """``M`` independent GLMs on the raw features ``(n, d)``.

    Parameters
    ----------
    n_models, n_features:
        ``M`` and ``d``.
    link:
        ``"identity"`` (ridge, ``lam`` the ridge) or ``"logistic"`` (Newton/IRLS warm-started,
        ``lam`` the L2 penalty; the width uses the design matrix ``lam I + sum x x^T``).
    lam:
        ridge / L2 penalty.
    n_targets:
        identity link only: ``T`` targets per model observed on the same rows, sharing one
        design (a multi-target :class:`~scarce.models.RidgeRegression`); ``y`` is then
        ``(n, T)`` and the bounds ``(n, M, T)``. None: one target per model.
    """

    def __init__(
        self, n_models: int, n_features: int, link: str, lam: float, n_targets: int | None = None
    ) -> None:
        self.link = link
        self.dim = n_features
        self.n_targets = n_targets
        if link == "identity":
            self.model: Any = RidgeRegression(n_models, n_features, lam=lam, n_targets=n_targets)
        elif n_targets is not None:
            raise ValueError("n_targets needs the identity link (a logistic model has one target)")
        else:
            self.model = LogisticRegression(n_models, n_features, lam=lam)

    @property
    def n_obs(self) -> np.ndarray:
        """``(M,)`` observations of each model."""
        return self.model.n_obs

    def bounds(self, X: np.ndarray, beta: np.ndarray, upper: bool) -> np.ndarray:
        """``(n, M)`` (``(n, M, T)`` with targets) ``mu(x^T theta +- beta ||x||_{V^-1})``
        (+ if ``upper``), ``beta`` ``(M,)`` the radius of each model."""
        if self.link == "identity":
            mean, var = self.model.predict(X)  # variance already clipped at 0
        else:
            mean = predict_mean(X, self.model.theta)
            var = np.maximum(predict_variance(X, self.model.design_cov), 0.0)
        width = np.sqrt(var)
        width *= beta
        if self.n_targets is not None:
            width = width[..., None]
        z = mean + width if upper else mean - width
        return z if self.link == "identity" else expit(z)

    def partial_fit(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
        n = X.shape[0]
        if n == 1 and self.link == "identity":
            self.model.add_one(int(ids[0]), X[0], y[0])  # partial_fit's arithmetic, one row
        elif n == 2 and self.link == "identity" and ids[0] != ids[1]:
            # two models one row each (deferral with full feedback): partial_fit's batched
            # rank-1 step is bitwise the two separate steps (models.ridge.rank_one_update)
            self.model.add_one(int(ids[0]), X[0], y[0])
            self.model.add_one(int(ids[1]), X[1], y[1])
        elif n:
            self.model.partial_fit(X, y, ids)

    def get_state(self) -> dict[str, Any]:
        return self.model.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.model.set_state(state)


class NeuralBank:
    """``M`` independent neural-linear models (spec A.6): model ``k`` has its own MLP trained
    only on its own observations, its own embedding and its own linear/logistic head.

    Parameters
    ----------
    n_models, n_features, link, lam:
        as in :class:`LinearBank` (``lam`` is the ridge of the linear head).
    seeds:
        ``(n_models,)`` ints, the seed of each network.
    net_params:
        keywords of :class:`~scarce.models.neural.NeuralLinear` (``hidden``,
        ``retrain_every``, ``min_train``, ``epochs``, ``batch_size``, ``lr``, ``weight_decay``).
    output:
        the networks' output head: ``"sigmoid"`` (cross-entropy; targets in [0, 1], the
        paper's head for Bernoulli outcomes) or ``"identity"`` (squared loss). The linear
        model on the embedding uses ``link`` either way.
    """

    def __init__(
        self,
        n_models: int,
        n_features: int,
        link: str,
        lam: float,
        seeds: Sequence[int],
        net_params: dict[str, Any],
        output: str = "sigmoid",
    ) -> None:
        from scarce.models.neural import MLPEmbedding, NeuralLinear

        self.link = link
        self.models = []
        net_link = "logistic" if output == "sigmoid" else "identity"
        train = {k: net_params[k] for k in ("hidden", "epochs", "batch_size", "lr", "weight_decay")}
        for s in seeds:
            model = NeuralLinear(n_features, link=link, lam=lam, seed=int(s), **net_params)
            if net_link != link:
                # the network's own head and loss; same seed, so the same initial weights
                model.net = MLPEmbedding(n_features, link=net_link, seed=int(s), **train)
            self.models.append(model)
        self.dim = self.models[0].net.embedding_dim

    @property
    def n_obs(self) -> np.ndarray:
        """``(M,)`` observations of each model."""
        return np.array([m.n_obs for m in self.models], dtype=np.float64)

    def bounds(self, X: np.ndarray, beta: np.ndarray, upper: bool) -> np.ndarray:
        out = np.empty((X.shape[0], len(self.models)))
        for k, model in enumerate(self.models):
            mean, var = model.predict(X)
            width = beta[k] * np.sqrt(np.maximum(var, 0.0))
            if self.link == "identity":
                out[:, k] = mean + width if upper else mean - width
            else:
                z = logit(np.clip(mean, 1e-12, 1 - 1e-12))
                out[:, k] = expit(z + width if upper else z - width)
        return out

    def partial_fit(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
        for k in np.unique(ids):
            rows = ids == k
            self.models[int(k)].partial_fit(X[rows], y[rows])

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for k, m in enumerate(self.models):
            state[f"m{k}"] = {
                "net": m.net.get_state(),
                "linear": m.linear.get_state(),
                "X": m._X,
                "y": m._y,
                "since_train": m._since_train,
                "n_retrains": m.n_retrains,
            }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        for k, m in enumerate(self.models):
            s = state[f"m{k}"]
            m.net.set_state(s["net"])
            m.linear = m._linear_cls(1, m.net.embedding_dim, lam=m.lam)
            m.linear.set_state(s["linear"])
            m._X = np.array(s["X"], dtype=float).reshape(-1, m.n_features)
            m._y = np.array(s["y"], dtype=float).reshape(-1)
            m._since_train = int(s["since_train"])
            m.n_retrains = int(s["n_retrains"])
