"""Estimators for the budgeted learners: a bank of ``M`` independent models of one link
(identity: ridge, optionally with ``T`` targets sharing each model's design; logistic: L2
logistic regression; neural: one :class:`~scarce.models.mlp.OnlineNetwork` with a linear head per model),
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
from scipy.special import expit

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
    backend:
        identity link: the ridge models' ``backend`` (``"numpy"`` or ``"numba"``, see
        :class:`~scarce.models.RidgeRegression`).
    """

    def __init__(
        self,
        n_models: int,
        n_features: int,
        link: str,
        lam: float,
        n_targets: int | None = None,
        backend: str = "numpy",
    ) -> None:
        self.link = link
        self.dim = n_features
        self.n_targets = n_targets
        if link == "identity":
            self.model: Any = RidgeRegression(
                n_models, n_features, lam=lam, n_targets=n_targets, backend=backend
            )
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
            # rank-1 step is bitwise the two separate steps (models.row_step.rank_one_update)
            self.model.add_one(int(ids[0]), X[0], y[0])
            self.model.add_one(int(ids[1]), X[1], y[1])
        elif n:
            self.model.partial_fit(X, y, ids)

    def get_state(self) -> dict[str, Any]:
        return self.model.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.model.set_state(state)


class NeuralBank:
    """``M`` independent neural-linear models (spec A.6): model ``k`` has its own network
    (a shared :class:`~scarce.models.mlp.OnlineNetwork`: replay buffer, retrain schedule,
    warm-started minibatch steps) trained only on its own observations, its own embedding and
    its own linear/logistic head, refitted on the re-embedded buffer after each retraining and
    updated online in between.

    Parameters
    ----------
    n_models, n_features, link, lam:
        as in :class:`LinearBank` (``lam`` is the ridge of the linear head).
    seeds:
        ``(n_models,)`` ints, the seed of each network.
    net_params:
        :meth:`~scarce.budget.specs.NetworkSpec.net_params`: ``hidden``, ``lr``,
        ``weight_decay``, ``batch_size``; the first training after ``min_train`` observations
        of the model, then one every ``retrain_every``; a retraining is ``epochs`` minibatch
        steps of ``batch_size`` rows drawn from the model's buffer (a bounded cost: never a
        pass over the whole history).
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
        from scarce.models.mlp import NetworkConfig, OnlineNetwork

        self.link = link
        self.lam = lam
        config = NetworkConfig(
            hidden=tuple(net_params["hidden"]),
            lr=float(net_params["lr"]),
            weight_decay=float(net_params["weight_decay"]),
            batch_size=int(net_params["batch_size"]),
            train_steps=int(net_params["epochs"]),
            first_train=int(net_params["min_train"]),
            retrain_every=int(net_params["retrain_every"]),
            retrain_growth=0.0,
        )
        loss = "logistic" if output == "sigmoid" else "squared"
        self.nets = [OnlineNetwork(n_features, 1, config, loss=loss, seed=int(s)) for s in seeds]
        self.dim = config.hidden[-1]
        self._linear_cls = RidgeRegression if link == "identity" else LogisticRegression
        self.linears = [self._linear_cls(1, self.dim, lam=lam) for _ in seeds]

    @property
    def n_obs(self) -> np.ndarray:
        """``(M,)`` observations of each model."""
        return np.array([net.n_seen for net in self.nets], dtype=np.float64)

    def _embed(self, k: int, X: np.ndarray) -> np.ndarray:
        return self.nets[k].mlp.embed(X)[0]

    def bounds(self, X: np.ndarray, beta: np.ndarray, upper: bool) -> np.ndarray:
        out = np.empty((X.shape[0], len(self.nets)))
        for k, lin in enumerate(self.linears):
            Z = self._embed(k, X)
            if self.link == "identity":
                mean, var = lin.predict(Z)
                z = mean[:, 0]
            else:
                z = predict_mean(Z, lin.theta)[:, 0]
                var = predict_variance(Z, lin.design_cov)
            width = beta[k] * np.sqrt(np.maximum(var[:, 0], 0.0))
            z = z + width if upper else z - width
            out[:, k] = z if self.link == "identity" else expit(z)
        return out

    def partial_fit(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
        for k in np.unique(ids):
            k = int(k)
            rows = ids == k
            if self.nets[k].add(X[rows], y[rows]):
                # retrained: every stored row re-embedded, the head refitted from scratch
                b = self.nets[k].buffer
                self.linears[k] = self._linear_cls(1, self.dim, lam=self.lam)
                self.linears[k].partial_fit(self._embed(k, b.X), b.y)
            else:
                self.linears[k].partial_fit(self._embed(k, X[rows]), y[rows])

    def get_state(self) -> dict[str, Any]:
        return {
            f"m{k}": {"net": net.get_state(), "linear": lin.get_state()}
            for k, (net, lin) in enumerate(zip(self.nets, self.linears, strict=True))
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for k, net in enumerate(self.nets):
            net.set_state(state[f"m{k}"]["net"])
            self.linears[k] = self._linear_cls(1, self.dim, lam=self.lam)
            self.linears[k].set_state(state[f"m{k}"]["linear"])
