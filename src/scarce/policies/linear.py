"""LinUCB and linear Thompson sampling on online ridge regression."""

from __future__ import annotations

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.ridge import RidgeRegression
from scarce.policies.base import ModelPolicy, greedy_decision, masked, one_hot


class UCBPolicy(ModelPolicy):
    """Upper-confidence-bound rule on a linear-in-parameters model: pick the largest
    ``x^T theta + alpha * sqrt(x^T S x)``, where :meth:`_confidence` gives ``(theta, S)``."""

    deterministic = True

    def _confidence(self) -> tuple[np.ndarray, np.ndarray]:
        """Estimate ``(M, d)`` and the matrix ``(M, d, d)`` whose norm is the confidence width."""
        raise NotImplementedError

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.alpha, "alpha", low=0.0)

    def _ucb(self, X):
        mean, var = linear.predict(X, *self._confidence())
        return mean + self.alpha * np.sqrt(var)

    def _decide(self, X, eligible):
        return greedy_decision(self._ucb(X), eligible)

    def _action_probabilities(self, X, eligible):
        return one_hot(greedy_decision(self._ucb(X), eligible).actions, self.n_actions)


class LinUCB(UCBPolicy):
    """LinUCB (Li, Chu, Langford, Schapire 2010): pick the largest
    ``x^T theta_hat + alpha * sqrt(x^T A^{-1} x)``; disjoint per-action models on shared contexts,
    one shared model on per-action features (the "hybrid-free" variants of the paper).

    Parameters
    ----------
    alpha:
        width multiplier of the confidence bound, >= 0.
    lam:
        ridge penalty, > 0.
    forgetting:
        exponential forgetting factor in (0, 1] for drifting problems (1 = none).
    window:
        sliding window length in observations for drifting problems (None = all).
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        lam: float = 1.0,
        forgetting: float = 1.0,
        window: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.alpha = alpha
        self.lam = lam
        self.forgetting = forgetting
        self.window = window

    def _make_model(self, n_models):
        return RidgeRegression(
            n_models, self.n_features, lam=self.lam, forgetting=self.forgetting, window=self.window
        )

    def _confidence(self):
        return self.model_.theta, self.model_.A_inv


class ThompsonPolicy(ModelPolicy):
    """Thompson sampling on a Gaussian (or Laplace-approximated) posterior.

    Choice probabilities: exact (48-node Gauss-Hermite) for disjoint models on shared
    contexts, where the actions' scores are independent; Monte-Carlo with
    ``propensity_samples`` draws from a separate, deterministic stream for per-action
    features, where they are correlated.
    """

    #: quadrature over independent per-action scores; Monte Carlo when they are correlated
    probability_method = {"shared_context": "quadrature", "action_features": "monte_carlo"}

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``(M, d)`` and covariance ``(M, d, d)`` (before the ``v^2`` scale)."""
        raise NotImplementedError

    def _link(self, scores: np.ndarray) -> np.ndarray:
        return scores

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.v, "v", low=0.0)
        check_positive_int(self.propensity_samples, "propensity_samples")

    def _decide(self, X, eligible):
        theta, cov = self._posterior()
        sampled = masked(linear.sample_scores(X, theta, cov, float(self.v), self.rng_), eligible)
        actions = np.argmax(sampled, axis=1)
        # the posterior is copied only when the model updates in place (ridge rank-1 updates)
        theta, cov = theta.copy(), cov.copy()
        if self.context_mode_ == SHARED_CONTEXT:

            def probabilities():
                mean, var = linear.predict(X, theta, cov)
                return linear.gaussian_argmax_probability_of(
                    mean, self.v * np.sqrt(var), actions, eligible
                )

        else:
            n_updates = self.n_updates_

            def probabilities():
                mc = self._mc_probabilities(X, theta, cov, eligible, n_updates)
                return mc[np.arange(X.shape[0]), actions]

        return Decision(actions, None, self._link(sampled), probability_fn=probabilities)

    def _mc_probabilities(self, X, theta, cov, eligible, n_updates=None):
        # separate deterministic stream so asking for probabilities never moves self.rng_
        n_updates = self.n_updates_ if n_updates is None else n_updates
        rng = np.random.default_rng([int(n_updates), X.shape[0], 7919])
        return linear.monte_carlo_argmax_probabilities(
            X, theta, cov, float(self.v), rng, int(self.propensity_samples), eligible
        )

    def _action_probabilities(self, X, eligible):
        theta, cov = self._posterior()
        if self.context_mode_ == SHARED_CONTEXT:
            mean, var = linear.predict(X, theta, cov)
            if self.v == 0:
                return one_hot(greedy_decision(mean, eligible).actions, self.n_actions)
            return linear.gaussian_argmax_probabilities(mean, self.v * np.sqrt(var), eligible)
        return self._mc_probabilities(X, theta, cov, eligible)


class LinTS(ThompsonPolicy):
    """Linear Thompson sampling (Agrawal and Goyal 2013): draw ``theta~ ~ N(theta_hat, v^2 A^{-1})``
    and pick the largest ``x^T theta~``.

    Parameters
    ----------
    v:
        posterior scale (the paper's ``v``; the noise standard deviation for an exact
        Bayesian posterior), >= 0.
    lam:
        ridge penalty (prior precision), > 0.
    forgetting, window:
        as in :class:`LinUCB`.
    propensity_samples:
        Monte-Carlo draws for choice probabilities with per-action features.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        v: float = 1.0,
        lam: float = 1.0,
        forgetting: float = 1.0,
        window: int | None = None,
        propensity_samples: int = 1000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.v = v
        self.lam = lam
        self.forgetting = forgetting
        self.window = window
        self.propensity_samples = propensity_samples

    def _make_model(self, n_models):
        return RidgeRegression(
            n_models, self.n_features, lam=self.lam, forgetting=self.forgetting, window=self.window
        )

    def _posterior(self):
        return self.model_.theta, self.model_.A_inv
