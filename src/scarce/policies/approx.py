"""LinUCB and linear Thompson sampling on approximate posteriors, for many actions with
per-action features and for high dimension (see :mod:`scarce.models.approx`).

* ``SketchedLinUCB`` / ``SketchedLinTS``: Frequent Directions sketch of the precision
  (sketched LinUCB/TS of Kuzborskij, Cella and Cesa-Bianchi 2019); widths never narrower
  than exact, exact while the data span at most ``sketch_size`` directions.
* ``DiagonalLinUCB`` / ``DiagonalLinTS``: diagonal precision; cheapest, exact only for
  orthogonal features.

They are approximations, documented as such: use :class:`~scarce.policies.LinUCB` and
:class:`~scarce.policies.LinTS` where ``O(K d^2)`` per decision is affordable. Decision rules,
tie-breaking, eligibility and choice probabilities follow the exact policies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.approx import DiagonalRidge, SketchedRidge
from scarce.policies.base import ModelPolicy, greedy_decision, masked, one_hot


class _ApproxUCB(ModelPolicy):
    deterministic = True

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.alpha, "alpha", low=0.0)

    def _ucb(self, X: np.ndarray) -> np.ndarray:
        mean, var = self.model_.posterior().predict(X)
        return mean + self.alpha * np.sqrt(var)

    def _decide(self, X, eligible):
        return greedy_decision(self._ucb(X), eligible)

    def _action_probabilities(self, X, eligible):
        return one_hot(greedy_decision(self._ucb(X), eligible).actions, self.n_actions)


class _ApproxTS(ModelPolicy):
    #: quadrature over independent per-action scores; Monte Carlo when they are correlated
    probability_method = {"shared_context": "quadrature", "action_features": "monte_carlo"}

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.v, "v", low=0.0)
        check_positive_int(self.propensity_samples, "propensity_samples")

    def _decide(self, X, eligible):
        post = self.model_.posterior()  # immutable snapshot: safe to use lazily
        sampled = masked(post.sample_scores(X, float(self.v), self.rng_), eligible)
        actions = np.argmax(sampled, axis=1)
        if self.context_mode_ == SHARED_CONTEXT:

            def probabilities():
                mean, var = post.predict(X)
                return linear.gaussian_argmax_probability_of(
                    mean, self.v * np.sqrt(var), actions, eligible
                )

        else:
            n_updates = self.n_updates_

            def probabilities():
                mc = self._mc_probabilities(post, X, eligible, n_updates)
                return mc[np.arange(X.shape[0]), actions]

        return Decision(actions, None, sampled, probability_fn=probabilities)

    def _mc_probabilities(self, post, X, eligible, n_updates):
        # a separate deterministic stream, as in scarce.policies.linear.ThompsonPolicy
        rng = np.random.default_rng([int(n_updates), X.shape[0], 7919])
        n, K = X.shape[0], self.n_actions
        counts = np.zeros((n, K))
        rows = np.arange(n)
        for _ in range(int(self.propensity_samples)):
            s = masked(post.sample_scores(X, float(self.v), rng), eligible)
            counts[rows, np.argmax(s, axis=1)] += 1.0
        return counts / int(self.propensity_samples)

    def _action_probabilities(self, X, eligible):
        post = self.model_.posterior()
        if self.context_mode_ == SHARED_CONTEXT:
            mean, var = post.predict(X)
            if self.v == 0:
                return one_hot(greedy_decision(mean, eligible).actions, self.n_actions)
            return linear.gaussian_argmax_probabilities(mean, self.v * np.sqrt(var), eligible)
        return self._mc_probabilities(post, X, eligible, self.n_updates_)


class _Sketched:
    def _check_params(self) -> None:
        super()._check_params()  # type: ignore[misc]
        check_positive_int(self.sketch_size, "sketch_size")

    def _make_model(self, n_models: int) -> Any:
        return SketchedRidge(n_models, self.n_features, lam=self.lam, sketch_size=self.sketch_size)


class _Diagonal:
    def _make_model(self, n_models: int) -> Any:
        return DiagonalRidge(n_models, self.n_features, lam=self.lam)


class SketchedLinUCB(_Sketched, _ApproxUCB):
    """LinUCB on a Frequent Directions sketch of the precision: pick the largest
    ``x^T theta_hat + alpha * sqrt(x^T (lam I + B^T B)^{-1} x)``.

    Widths are never narrower than exact LinUCB's with the same data (``B^T B <= X^T X``);
    ``theta_hat`` is the ridge estimate under the sketched precision. Per decision
    ``O(K d sketch_size)`` instead of ``O(K d^2)``.

    Parameters
    ----------
    alpha:
        width multiplier, >= 0.
    lam:
        ridge penalty, > 0.
    sketch_size:
        rows kept by the sketch (between ``sketch_size`` and ``2 sketch_size``), >= 1.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        lam: float = 1.0,
        sketch_size: int = 32,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.alpha = alpha
        self.lam = lam
        self.sketch_size = sketch_size


class SketchedLinTS(_Sketched, _ApproxTS):
    """Linear Thompson sampling on a Frequent Directions sketch: draw
    ``theta~ ~ N(theta_hat, v^2 (lam I + B^T B)^{-1})`` and pick the largest ``x^T theta~``.

    Parameters
    ----------
    v:
        posterior scale, >= 0.
    lam:
        ridge penalty, > 0.
    sketch_size:
        rows kept by the sketch, >= 1.
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
        sketch_size: int = 32,
        propensity_samples: int = 1000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.v = v
        self.lam = lam
        self.sketch_size = sketch_size
        self.propensity_samples = propensity_samples


class DiagonalLinUCB(_Diagonal, _ApproxUCB):
    """LinUCB with a diagonal precision ``lam + sum_i x_i^2`` per feature: widths
    ``sqrt(sum_j x_j^2 / a_j)`` and means ``b_j / a_j``; ``O(K d)`` per decision. Exact only
    for orthogonal features.

    Parameters
    ----------
    alpha:
        width multiplier, >= 0.
    lam:
        ridge penalty, > 0.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        lam: float = 1.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.alpha = alpha
        self.lam = lam


class DiagonalLinTS(_Diagonal, _ApproxTS):
    """Linear Thompson sampling with a diagonal posterior (see :class:`DiagonalLinUCB`).

    Parameters
    ----------
    v:
        posterior scale, >= 0.
    lam:
        ridge penalty, > 0.
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
        propensity_samples: int = 1000,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.v = v
        self.lam = lam
        self.propensity_samples = propensity_samples
