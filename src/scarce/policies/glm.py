"""Logistic (GLM) bandits: UCB-GLM (Li, Lu and Zhou 2017) and GLM Thompson sampling with a
Laplace posterior."""

from __future__ import annotations

from scipy.special import expit

from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int
from scarce.models.glm import LogisticRegression
from scarce.policies.linear import ThompsonPolicy, UCBPolicy


class GLMUCB(UCBPolicy):
    """UCB-GLM (Li, Lu, Zhou 2017): pick the largest ``x^T theta_mle + alpha * ||x||_{V^{-1}}``
    with ``V = lam I + sum x x^T`` and ``theta_mle`` the (L2-regularised) logistic MLE.

    Rewards must lie in [0, 1]. Parameters as in :class:`~scarce.policies.LinUCB`, plus
    ``max_iter`` Newton steps per refit.
    """

    reward_bounds = (0.0, 1.0)

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        lam: float = 1.0,
        max_iter: int = 25,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.alpha = alpha
        self.lam = lam
        self.max_iter = max_iter

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.max_iter, "max_iter")

    def _make_model(self, n_models):
        return LogisticRegression(n_models, self.n_features, lam=self.lam, max_iter=self.max_iter)

    def _confidence(self):
        return self.model_.theta, self.model_.design_cov


class GLMTS(ThompsonPolicy):
    """Thompson sampling for logistic rewards with a Laplace posterior
    ``theta~ ~ N(theta_mle, v^2 H^{-1})`` (``H`` the penalised Hessian at the MLE); picks the
    largest ``sigmoid(x^T theta~)``. Rewards in [0, 1].
    """

    reward_bounds = (0.0, 1.0)

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        v: float = 1.0,
        lam: float = 1.0,
        max_iter: int = 25,
        propensity_samples: int = 1000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.v = v
        self.lam = lam
        self.max_iter = max_iter
        self.propensity_samples = propensity_samples

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.max_iter, "max_iter")

    def _make_model(self, n_models):
        return LogisticRegression(n_models, self.n_features, lam=self.lam, max_iter=self.max_iter)

    def _posterior(self):
        return self.model_.theta, self.model_.laplace_cov

    def _link(self, scores):
        return expit(scores)
