"""The meTS paper's baselines on the library's policies: LinTS and LinUCB with each action's
marginal prior (the effects integrated out), GLM-TS and UCB-GLM, and the UCB widths its code
uses. All keep one model per action in both context layouts: ``(n, K, d)`` contexts give each
action its own context (the official meTS code's layout), not a shared parameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT
from scarce.core.random import SeedLike
from scarce.core.validation import check_scalar
from scarce.models import linear
from scarce.policies import GLMTS, GLMUCB, LinTS, LinUCB
from scarce.policies.base import greedy_decision, masked, one_hot


class _DisjointModels:
    """One model per action in both layouts; with ``(n, K, d)`` contexts action ``k`` is
    scored and trained on ``X[:, k]``."""

    n_actions: int
    context_mode_: str
    model_: Any

    def _init_state(self) -> None:
        self.model_ = self._make_model(self.n_actions)  # type: ignore[attr-defined]

    def _training_rows(self, X, actions, rewards, full_rewards):
        if self.context_mode_ == SHARED_CONTEXT:
            return super()._training_rows(X, actions, rewards, full_rewards)  # type: ignore[misc]
        n, K = X.shape[0], self.n_actions
        if full_rewards is not None:
            return X.reshape(n * K, -1), full_rewards.reshape(-1), np.tile(np.arange(K), n)
        return X[np.arange(n), actions], rewards, actions

    @staticmethod
    def _per_action_predict(X, theta, cov):
        mean = np.einsum("nkd,kd->nk", X, theta)
        var = np.einsum("nkd,nkd->nk", (X[:, :, None, :] @ cov[None])[:, :, 0, :], X)
        return mean, np.maximum(var, 0.0)


class _DisjointTS(_DisjointModels):
    """Thompson sampling with per-action contexts: the scores are independent Gaussians, so
    choice probabilities are exact (quadrature)."""

    probability_method = {"shared_context": "quadrature", "action_features": "monte_carlo"}

    v: float

    def _decide(self, X, eligible):
        if self.context_mode_ == SHARED_CONTEXT:
            return super()._decide(X, eligible)  # type: ignore[misc]
        mean, var = self._per_action_predict(X, *self._posterior())  # type: ignore[attr-defined]
        std = float(self.v) * np.sqrt(var)
        rng = self.rng_  # type: ignore[attr-defined]
        sampled = masked(mean + std * rng.standard_normal(mean.shape), eligible)
        actions = np.argmax(sampled, axis=1)

        def probabilities():
            return linear.gaussian_argmax_probability_of(mean, std, actions, eligible)

        link = self._link(sampled)  # type: ignore[attr-defined]
        return Decision(actions, None, link, probability_fn=probabilities)

    def _action_probabilities(self, X, eligible):
        if self.context_mode_ == SHARED_CONTEXT:
            return super()._action_probabilities(X, eligible)  # type: ignore[misc]
        mean, var = self._per_action_predict(X, *self._posterior())  # type: ignore[attr-defined]
        if self.v == 0:
            return one_hot(greedy_decision(mean, eligible).actions, self.n_actions)
        return linear.gaussian_argmax_probabilities(mean, float(self.v) * np.sqrt(var), eligible)


class _DisjointUCB(_DisjointModels):
    alpha: float

    def _ucb(self, X):
        if self.context_mode_ == SHARED_CONTEXT:
            return super()._ucb(X)  # type: ignore[misc]
        mean, var = self._per_action_predict(X, *self._confidence())  # type: ignore[attr-defined]
        return mean + self.alpha * np.sqrt(var)


class _ActionPriorMixin:
    """Replace the ridge model's ``lam I`` prior by a per-action Gaussian prior
    ``N(prior_mean_i, prior_cov_i)`` at initialisation (shared contexts only)."""

    n_actions: int
    n_features: int
    prior_mean: Any
    prior_cov: Any
    noise_std: float
    context_mode_: str
    model_: Any

    def _check_prior(self) -> tuple[np.ndarray, np.ndarray]:
        K, d = self.n_actions, self.n_features
        mean = np.zeros((K, d)) if self.prior_mean is None else np.asarray(self.prior_mean, float)
        if mean.shape == (d,):
            mean = np.broadcast_to(mean, (K, d))
        if mean.shape != (K, d):
            raise ValueError(f"prior_mean must have shape ({d},) or ({K}, {d}); got {mean.shape}")
        cov = np.eye(d) if self.prior_cov is None else np.asarray(self.prior_cov, float)
        if cov.shape == (d, d):
            cov = np.broadcast_to(cov, (K, d, d))
        if cov.shape != (K, d, d):
            raise ValueError(
                f"prior_cov must have shape ({d}, {d}) or ({K}, {d}, {d}); got {cov.shape}"
            )
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError("prior_cov must be positive definite") from None
        check_scalar(self.noise_std, "noise_std", low=0.0, low_inclusive=False)
        return mean, cov

    def _apply_prior(self) -> None:
        mean, cov = self._check_prior()
        s2 = float(self.noise_std) ** 2
        # ridge statistics in units of the noise: A = sigma^2 Sigma_0^{-1} + sum x x^T, so that
        # the posterior covariance is sigma^2 A^{-1} and the mean A^{-1} (A_0 mu_0 + sum y x)
        self.model_.set_prior(mean, s2 * np.linalg.inv(cov))


class PriorLinTS(_DisjointTS, _ActionPriorMixin, LinTS):
    """Linear Thompson sampling with a Gaussian prior per action (the meTS paper's LinTS:
    the marginal prior ``N(C_i mu_Psi, Sigma_0i + C_i Sigma_Psi C_i^T)``).

    Parameters
    ----------
    prior_mean:
        ``(K, d)`` or ``(d,)`` prior means; default 0.
    prior_cov:
        ``(K, d, d)`` or ``(d, d)`` prior covariances; default identity.
    noise_std:
        reward noise ``sigma``; the posterior is exact for Gaussian rewards with this noise.
    n_actions, n_features, propensity_samples, seed:
        as in :class:`~scarce.policies.LinTS`.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        prior_mean: Any = None,
        prior_cov: Any = None,
        noise_std: float = 1.0,
        propensity_samples: int = 1000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            v=noise_std,
            propensity_samples=propensity_samples,
            seed=seed,
        )
        self.prior_mean = prior_mean
        self.prior_cov = prior_cov
        self.noise_std = noise_std

    def _check_params(self) -> None:
        self.v = self.noise_std
        super()._check_params()
        self._check_prior()

    def _init_state(self) -> None:
        super()._init_state()
        self._apply_prior()


class PriorLinUCB(_DisjointUCB, _ActionPriorMixin, LinUCB):
    """LinUCB with a Gaussian prior per action: the largest
    ``x^T theta_hat + alpha * sqrt(x^T Sigma_hat x)``, ``Sigma_hat`` the posterior covariance
    for noise ``noise_std`` (parameters as in :class:`PriorLinTS`, plus ``alpha``)."""

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        prior_mean: Any = None,
        prior_cov: Any = None,
        noise_std: float = 1.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, alpha=alpha, seed=seed)
        self.prior_mean = prior_mean
        self.prior_cov = prior_cov
        self.noise_std = noise_std

    def _check_params(self) -> None:
        super()._check_params()
        self._check_prior()

    def _init_state(self) -> None:
        super()._init_state()
        self._apply_prior()

    def _confidence(self):
        return self.model_.theta, self.model_.A_inv * float(self.noise_std) ** 2


class DisjointGLMTS(_DisjointTS, GLMTS):
    """:class:`~scarce.policies.GLMTS` keeping one model per action with per-action contexts
    (parameters as there)."""


class DisjointGLMUCB(_DisjointUCB, GLMUCB):
    """:class:`~scarce.policies.GLMUCB` keeping one model per action with per-action contexts
    (parameters as there)."""


def linucb_width(
    horizon: int, n_features: int, max_context_norm: float, prior_precision: float, noise_std: float
) -> float:
    """The LinUCB width of the meTS code (Abbasi-Yadkori et al. 2011 with ``delta = 1/n``):
    ``sqrt(lam) sqrt(d) + sigma sqrt(d log((1 + n L^2 / lam) / delta))``, ``lam`` the largest
    average prior precision, ``L`` the largest context norm."""
    n, d = float(horizon), float(n_features)
    lam = float(prior_precision)
    return float(
        np.sqrt(lam) * np.sqrt(d)
        + noise_std * np.sqrt(d * np.log((1.0 + n * max_context_norm**2 / lam) * n))
    )


def ucb_glm_width(horizon: int, n_features: int, sigma: float = 0.5, kappa: float = 0.25) -> float:
    """The UCB-GLM width of the meTS code (Li, Lu and Zhou 2017, ``delta = 1/n``):
    ``sigma / kappa * sqrt(d / 2 log(1 + 2 n / d) + log(n))``."""
    n, d = float(horizon), float(n_features)
    return float(sigma / kappa * np.sqrt(d / 2.0 * np.log(1.0 + 2.0 * n / d) + np.log(n)))
