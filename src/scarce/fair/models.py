"""What an allocation policy remembers (:class:`History`) and the learned outcome models
``f(x, r)`` with uncertainty, fitted from delayed increments through a
:class:`~scarce.feedback.DelayAttribution`.

* :class:`LinearOutcomeModel`: ``f(x, r) = [1, x]^T theta_r``, one block of coefficients per
  resource (the spec's resource-specific effect), fitted by weighted ridge on the attribution's
  design (:func:`scarce.feedback.fit_ridge`, a :class:`scarce.models.RidgeRegression`); width
  ``sigma * sqrt(phi^T A^{-1} phi)`` (:mod:`scarce.models.linear`) with ``sigma`` the residual
  standard deviation of the fit.
* :class:`NeuralOutcomeModel`: an MLP on ``[x, onehot(r)]`` (the shared
  :class:`scarce.models.mlp.MLP`) trained on completed-mass targets, with a pluggable uncertainty:
  ``"neural_linear"`` (a ridge head on the last hidden layer, fitted by the chosen attribution),
  ``"mc_dropout"`` (spread of dropout passes) or ``"gaussian_head"`` (the predicted noise sd:
  aleatoric, it does not shrink with data).

Both expose ``fit(history, now)``, ``predict(X) -> (mean, sd)`` each ``(n, R)``,
``sample(X, n_samples, rng) -> (n_samples, n, R)`` (epistemic draws for the meta level's
rollouts) and ``get_state()`` / ``set_state(state)`` (arrays, for JSON + ``.npz`` saves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.core.random import as_generator, generator_from_state, generator_state
from scarce.core.validation import check_positive_int, check_scalar
from scarce.feedback.attribution import (
    AllocationLog,
    CompletedMass,
    DelayAttribution,
    KernelConvolvedLS,
    ObservationLog,
    fit_ridge,
    make_attribution,
)
from scarce.feedback.kernels import DelayKernel
from scarce.models import linear
from scarce.models.ridge import RidgeRegression


class History:
    """Allocations (who got what, when, their group and features) and observed increments
    (``unit = -1``: a remainder row, see :class:`scarce.feedback.ObservationLog`); append-only.

    Parameters
    ----------
    n_features: ``d``, the length of the stored feature rows.
    """

    _A = ("unit", "resource", "round", "group")
    _O = ("unit", "round", "value")

    def __init__(self, n_features: int) -> None:
        self.d = int(n_features)
        self._a: list[tuple[np.ndarray, ...]] = []
        self._o: list[tuple[np.ndarray, ...]] = []

    def add_allocations(
        self,
        units: np.ndarray,
        resources: np.ndarray,
        rounds: np.ndarray,
        groups: np.ndarray,
        X: np.ndarray,
    ) -> None:
        """Record ``n`` allocations (each argument ``(n,)``, ``X`` ``(n, d)``)."""
        if len(units):
            self._a.append(
                (
                    np.asarray(units, np.int64),
                    np.asarray(resources, np.int64),
                    np.asarray(rounds, np.int64),
                    np.asarray(groups, np.int64),
                    np.asarray(X, np.float64).reshape(len(units), self.d),
                )
            )

    def add_observations(self, units: np.ndarray, rounds: np.ndarray, values: np.ndarray) -> None:
        """Record observed increments (each ``(n,)``; unit -1 for a remainder row)."""
        if len(units):
            self._o.append(
                (
                    np.asarray(units, np.int64),
                    np.asarray(rounds, np.int64),
                    np.asarray(values, np.float64),
                )
            )

    def _join(self, parts: list, k: int, tail: tuple[int, ...]) -> list:
        if not parts:
            empty = [np.zeros(0, np.int64) for _ in range(k)]
            if tail:
                empty.append(np.zeros((0, *tail)))
            return empty
        if len(parts) > 1:
            parts[:] = [tuple(np.concatenate(c) for c in zip(*parts, strict=True))]
        return list(parts[0])

    def allocations(self) -> tuple[np.ndarray, ...]:
        """``(unit, resource, round, group, X)`` of every allocation, in order."""
        return tuple(self._join(self._a, 4, (self.d,)))

    def observations(self) -> ObservationLog:
        u, t, v = self._join(self._o, 3, ())
        return ObservationLog(u, t, v.astype(np.float64))

    def __len__(self) -> int:
        return int(sum(len(a[0]) for a in self._a))

    def get_state(self) -> dict[str, Any]:
        a, o = self.allocations(), self._join(self._o, 3, ())
        state = {f"a_{k}": v for k, v in zip((*self._A, "X"), a, strict=True)}
        state.update({f"o_{k}": v for k, v in zip(self._O, o, strict=True)})
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self._a, self._o = [], []
        X = np.asarray(state["a_X"], np.float64).reshape(-1, self.d)
        self.add_allocations(*(state[f"a_{k}"] for k in self._A), X)
        self.add_observations(*(state[f"o_{k}"] for k in self._O))


def block_features(X: np.ndarray, resources: np.ndarray, n_resources: int) -> np.ndarray:
    """``(n, R (d + 1))``: ``[1, x]`` in the block of each row's resource, zeros elsewhere."""
    n, d = X.shape
    out = np.zeros((n, n_resources * (d + 1)))
    cols = resources[:, None] * (d + 1) + np.arange(d + 1)[None, :]
    out[np.arange(n)[:, None], cols] = np.concatenate([np.ones((n, 1)), X], axis=1)
    return out


class LinearOutcomeModel:
    """Linear effects per resource, fitted through a delay attribution.

    Parameters
    ----------
    n_features: ``d``.
    kernels: the delay kernel assumed for each resource.
    attribution: ``"kernel_ls"`` (default), ``"completed_mass"``, ``"delay_agnostic"`` or an
        instance (``CompletedMass(min_mass=1.0)`` learns only completed windows).
    lam: ridge penalty.
    sigma0: noise scale used before there is enough data to estimate it.
    prior_theta: ``(R (d + 1),)`` prior mean of the coefficients (e.g. from
        :meth:`scarce.fair.FairAllocationEnv.observational_prior`); the ridge then shrinks
        towards it instead of 0.
    """

    def __init__(
        self,
        n_features: int,
        kernels: Sequence[DelayKernel],
        *,
        attribution: str | DelayAttribution = "kernel_ls",
        lam: float = 1.0,
        sigma0: float = 1.0,
        prior_theta: np.ndarray | None = None,
    ) -> None:
        self.d = check_positive_int(n_features, "n_features")
        self.kernels = list(kernels)
        self.attribution = make_attribution(attribution)
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.sigma0 = check_scalar(sigma0, "sigma0", low=0.0, low_inclusive=False)
        self.R = len(self.kernels)
        p = self.R * (self.d + 1)
        self.prior = np.zeros(p) if prior_theta is None else np.asarray(prior_theta, float)
        if self.prior.shape != (p,):
            raise ValueError(f"prior_theta must have shape ({p},); got {self.prior.shape}")
        self.theta = self.prior.copy()
        self.A_inv = np.eye(p) / self.lam
        self.sigma = self.sigma0
        self.n_rows = 0
        self._ridge = RidgeRegression(1, p, lam=self.lam)
        self._last_now = -1
        self._yy = 0.0

    @property
    def _online(self) -> bool:
        att = self.attribution
        return isinstance(att, KernelConvolvedLS) or (
            isinstance(att, CompletedMass) and att.min_mass >= 1.0
        )

    def fit(self, history: History, now: int) -> LinearOutcomeModel:
        """Update the fit with everything observed up to round ``now``.

        Kernel-convolved LS and completed-window fits are accumulated online (only rows new
        since the last call are added; identical to a refit from scratch for kernel LS); other
        attributions refit from scratch."""
        u, r, t, _, X = history.allocations()
        if u.size == 0:
            return self
        if self._online:
            self._fit_online(history, u, r, t, X, now)
            return self
        alloc = AllocationLog(u, r, t, block_features(X, r, self.R))
        Z, y, w = self.attribution.design(
            alloc, history.observations(), self.kernels, now, predicted=alloc.features @ self.theta
        )
        y = y - Z @ self.prior
        model = fit_ridge(Z, y, w, lam=self.lam)
        self._set_fit(model, float((w * y**2).sum()), Z.shape[0])
        return self

    def _fit_online(self, history, u, r, t, X, now) -> None:
        since = self._last_now
        if now <= since:
            return
        wait = not isinstance(self.attribution, KernelConvolvedLS)
        D = max(k.support for k in self.kernels)
        reach = 2 * D if wait else D
        sel = t > since - reach
        alloc = AllocationLog(u[sel], r[sel], t[sel], block_features(X[sel], r[sel], self.R))
        obs = history.observations()
        osel = obs.round > since - reach
        obs = ObservationLog(obs.unit[osel], obs.round[osel], obs.value[osel])
        if wait:
            Z, y, w = self.attribution.design(
                alloc, obs, self.kernels, now, predicted=alloc.features @ self.theta
            )
            m_now, m_before = np.zeros(len(alloc)), np.zeros(len(alloc))
            for j, k in enumerate(self.kernels):
                rows = alloc.resource == j
                m_now[rows] = k.completed_mass(now - alloc.round[rows])
                m_before[rows] = k.completed_mass(since - alloc.round[rows])
            new = (m_before < 1.0)[m_now >= 1.0]
            Z, y, w = Z[new], y[new], w[new]
        else:
            Z, y, w = self.attribution.design(alloc, obs, self.kernels, now, since=since)
        y = y - Z @ self.prior
        if Z.shape[0]:
            s = np.sqrt(w)
            self._ridge.partial_fit(Z * s[:, None], y * s)
            self._yy += float((w * y**2).sum())
            self.n_rows += Z.shape[0]
        self._last_now = now
        self._set_fit(self._ridge, self._yy, self.n_rows)

    def _set_fit(self, model: RidgeRegression, yy: float, n_rows: int) -> None:
        delta = model.theta[0]
        self.theta, self.A_inv = self.prior + delta, model.A_inv[0].copy()
        self.n_rows = int(n_rows)
        p = delta.shape[0]
        if self.n_rows > 2 * p:
            # residual sum of squares from the sufficient statistics: yy - 2 t'b + t'(A - lam I)t
            A_data = model.A[0] - self.lam * np.eye(p)
            rss = yy - 2 * delta @ model.b[0] + delta @ A_data @ delta
            self.sigma = float(max(np.sqrt(max(rss, 0.0) / max(model.n_obs[0], 1.0)), 1e-3))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, sd)``, each ``(n, R)``; ``sd = sigma * sqrt(phi^T A^{-1} phi)``."""
        q = self.d + 1
        Xt = np.concatenate([np.ones((X.shape[0], 1)), X], axis=1)
        theta = self.theta.reshape(self.R, q)
        cov = np.stack(
            [self.A_inv[r * q : (r + 1) * q, r * q : (r + 1) * q] for r in range(self.R)]
        )
        mean, var = linear.predict(Xt, theta, cov)
        return mean, self.sigma * np.sqrt(np.maximum(var, 0.0))

    def sample(self, X: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """``(n_samples, n, R)`` predictions under posterior draws
        ``theta ~ N(theta_hat, sigma^2 A^{-1})``."""
        Xt = np.concatenate([np.ones((X.shape[0], 1)), X], axis=1)
        draws = linear.sample_parameters(self.theta, self.A_inv, self.sigma, n_samples, rng)
        return np.einsum("nq,brq->bnr", Xt, draws.reshape(n_samples, self.R, self.d + 1))

    def get_state(self) -> dict[str, Any]:
        return {
            "theta": self.theta,
            "A_inv": self.A_inv,
            "sigma": self.sigma,
            "n_rows": self.n_rows,
            "last_now": self._last_now,
            "yy": self._yy,
            "ridge": self._ridge.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.theta = np.asarray(state["theta"], float)
        self.A_inv = np.asarray(state["A_inv"], float)
        self.sigma = float(state["sigma"])
        self.n_rows = int(state["n_rows"])
        self._last_now = int(state["last_now"])
        self._yy = float(state["yy"])
        self._ridge.set_state(state["ridge"])


def observational_prior(
    X: np.ndarray, treatment: np.ndarray, y: np.ndarray, n_resources: int, lam: float = 1.0
) -> np.ndarray:
    """Prior coefficients for :class:`LinearOutcomeModel` from observational rows.

    Ridge of ``y`` on ``[x, onehot(t), onehot(t) x]`` (``t = -1``: untreated); the effect of
    resource ``r`` is then ``[1, x]^T (coef of onehot_r, coefs of onehot_r x)``, returned as
    ``(R (d + 1),)`` in the model's block layout. Observational contrasts carry whatever
    confounding the data have."""
    from sklearn.linear_model import Ridge

    X = np.asarray(X, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.int64)
    n, d = X.shape
    R = check_positive_int(n_resources, "n_resources")
    T = np.zeros((n, R))
    on = t >= 0
    T[np.flatnonzero(on), t[on]] = 1.0
    inter = (T[:, :, None] * X[:, None, :]).reshape(n, R * d)
    coef = Ridge(alpha=lam).fit(np.concatenate([X, T, inter], axis=1), y).coef_
    main, inter_c = coef[d : d + R], coef[d + R :].reshape(R, d)
    return np.concatenate([main[:, None], inter_c], axis=1).reshape(-1)


UNCERTAINTIES = ("neural_linear", "mc_dropout", "gaussian_head")


class NeuralOutcomeModel:
    """MLP outcome model on ``[x, onehot(r)]`` with a pluggable uncertainty.

    Parameters
    ----------
    n_features: ``d``.
    kernels: one kernel per resource.
    uncertainty: ``"neural_linear"`` (default), ``"mc_dropout"`` or ``"gaussian_head"``.
    attribution: estimator for the neural-linear head (default kernel-convolved LS); the network
        itself is trained on completed-mass targets (``min_mass`` 0.05).
    hidden, epochs, lr, dropout: network settings (``dropout`` is used by ``"mc_dropout"``).
    lam: ridge penalty of the head; mc_samples: dropout passes for the width.
    max_rows: train the network on at most this many most recent attributed allocations.
    seed: seed or generator for the network.
    """

    def __init__(
        self,
        n_features: int,
        kernels: Sequence[DelayKernel],
        *,
        uncertainty: str = "neural_linear",
        attribution: str | DelayAttribution = "kernel_ls",
        hidden: Sequence[int] = (32, 16),
        epochs: int = 20,
        lr: float = 1e-2,
        dropout: float = 0.2,
        lam: float = 1.0,
        mc_samples: int = 20,
        max_rows: int = 4096,
        sigma0: float = 1.0,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        from scarce.models.mlp import MLP

        if uncertainty not in UNCERTAINTIES:
            raise ValueError(f"uncertainty must be one of {UNCERTAINTIES}; got {uncertainty!r}")
        self.d = check_positive_int(n_features, "n_features")
        self.kernels = list(kernels)
        self.uncertainty = uncertainty
        self.attribution = make_attribution(attribution)
        self.lam = check_scalar(lam, "lam", low=0.0, low_inclusive=False)
        self.mc_samples = check_positive_int(mc_samples, "mc_samples", minimum=2)
        self.max_rows = check_positive_int(max_rows, "max_rows")
        self.sigma = self.sigma0 = check_scalar(sigma0, "sigma0", low=0.0, low_inclusive=False)
        self.R = len(self.kernels)
        self.epochs = check_positive_int(epochs, "epochs")
        rng = as_generator(seed)
        # the shared network (scarce.models.mlp); a fit is `epochs` passes' worth of
        # minibatch steps, warm-started
        self.net = MLP(
            self.d + self.R,
            1,
            hidden=hidden,
            loss="gaussian" if uncertainty == "gaussian_head" else "squared",
            dropout=dropout if uncertainty == "mc_dropout" else 0.0,
            lr=lr,
            batch_size=128,
            seed=rng,
        )
        self._rng = np.random.default_rng(int(rng.integers(2**62)))  # dropout masks
        h = self.net.embedding_dim
        self.theta = np.zeros(h)
        self.A_inv = np.eye(h) / self.lam
        self.trained = False

    def _inputs(self, X: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.concatenate([X, np.eye(self.R)[r]], axis=1)

    def fit(self, history: History, now: int) -> NeuralOutcomeModel:
        u, r, t, _, X = history.allocations()
        if u.size == 0:
            return self
        obs = history.observations()
        inputs = self._inputs(X, r)
        alloc = AllocationLog(u, r, t, inputs)
        pred = self.net.predict(inputs)[0, :, 0] if self.trained else None
        Zc, yc, _ = CompletedMass(0.05).design(alloc, obs, self.kernels, now, predicted=pred)
        if Zc.shape[0] >= 8:
            n = min(Zc.shape[0], self.max_rows)
            steps = self.epochs * -(-n // self.net.batch_size)
            self.net.fit(Zc[-n:], yc[-n:], n_steps=steps)
            self.trained = True
        if self.uncertainty == "neural_linear":
            emb = AllocationLog(u, r, t, self.net.embed(inputs)[0])
            Z, y, w = self.attribution.design(emb, obs, self.kernels, now)
            model = fit_ridge(Z, y, w, lam=self.lam)
            self.theta, self.A_inv = model.theta[0].copy(), model.A_inv[0].copy()
            if Z.shape[0] > 2 * Z.shape[1]:
                resid = y - Z @ self.theta
                self.sigma = float(max(np.sqrt((w * resid**2).sum() / w.sum()), 1e-3))
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = X.shape[0]
        mean, sd = np.zeros((n, self.R)), np.zeros((n, self.R))
        for r in range(self.R):
            inp = self._inputs(X, np.full(n, r))
            if self.uncertainty == "neural_linear":
                phi = self.net.embed(inp)[0]
                mean[:, r] = phi @ self.theta
                var = linear.predict_variance(phi, self.A_inv[None])[:, 0]
                sd[:, r] = self.sigma * np.sqrt(np.maximum(var, 0.0))
            elif self.uncertainty == "mc_dropout":
                mean[:, r] = self.net.predict(inp)[0, :, 0]
                draws = self._dropout_samples(inp, self.mc_samples, self._rng)
                sd[:, r] = draws.std(axis=0, ddof=1)
            else:
                mean[:, r] = self.net.predict(inp)[0, :, 0]
                sd[:, r] = np.sqrt(self.net.predict_variance(inp)[0, :, 0])
        return mean, sd

    def sample(self, X: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """``(n_samples, n, R)`` epistemic draws: head posterior draws (neural-linear), dropout
        masks (MC dropout) or mean + sd * N(0, 1) (Gaussian head)."""
        n = X.shape[0]
        out = np.zeros((n_samples, n, self.R))
        if self.uncertainty == "neural_linear":
            draws = linear.sample_parameters(self.theta, self.A_inv, self.sigma, n_samples, rng)
            for r in range(self.R):
                phi = self.net.embed(self._inputs(X, np.full(n, r)))[0]
                out[:, :, r] = draws @ phi.T
        elif self.uncertainty == "mc_dropout":
            for r in range(self.R):
                inp = self._inputs(X, np.full(n, r))
                out[:, :, r] = self._dropout_samples(inp, n_samples, rng)
        else:
            mean, sd = self.predict(X)
            out[:] = mean + sd * rng.standard_normal((n_samples, n, self.R))
        return out

    def _dropout_samples(
        self, inputs: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``(n_samples, n)`` network outputs at ``inputs`` ``(n, d + R)``, one dropout mask
        per sample and row (Monte Carlo dropout)."""
        n = inputs.shape[0]
        return np.stack(
            [
                self.net.predict(inputs, self.net.dropout_masks(n, rng))[0, :, 0]
                for _ in range(n_samples)
            ]
        )

    def get_state(self) -> dict[str, Any]:
        return {
            "net": self.net.get_state(),
            "rng": generator_state(self._rng),
            "theta": self.theta,
            "A_inv": self.A_inv,
            "sigma": self.sigma,
            "trained": self.trained,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.net.set_state(state["net"])
        self._rng = generator_from_state(state["rng"])
        self.theta = np.asarray(state["theta"], float)
        self.A_inv = np.asarray(state["A_inv"], float)
        self.sigma = float(state["sigma"])
        self.trained = bool(state["trained"])


def make_outcome_model(
    kind: str,
    n_features: int,
    kernels: Sequence[DelayKernel],
    *,
    attribution: str | DelayAttribution = "kernel_ls",
    seed: int | np.random.Generator | None = None,
    **kwargs: Any,
) -> LinearOutcomeModel | NeuralOutcomeModel:
    """``kind``: ``"linear"`` or one of :data:`UNCERTAINTIES` (a neural model)."""
    if kind == "linear":
        return LinearOutcomeModel(n_features, kernels, attribution=attribution, **kwargs)
    if kind in UNCERTAINTIES:
        return NeuralOutcomeModel(
            n_features, kernels, uncertainty=kind, attribution=attribution, seed=seed, **kwargs
        )
    raise ValueError(f"model must be 'linear' or one of {UNCERTAINTIES}; got {kind!r}")
