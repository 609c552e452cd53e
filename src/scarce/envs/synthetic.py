"""Synthetic environments with known truth: linear-Gaussian and logistic (Bernoulli) rewards.

Both share one design so that regret is exact and comparable across them:

* **Contexts** are drawn ``N(0, I / d)`` (each coordinate has variance ``1 / d``), so that
  ``E ||x||^2 = 1`` whatever the dimension ``d``. With ``action_features=True`` each case has
  one such vector per action, giving contexts of shape ``(n, K, d)``.
* **True parameters** are drawn once, at construction, from the environment's own generator
  (its ``seed``): ``N(0, I)`` then normalised to unit norm (and multiplied by ``scale`` for the
  logistic environment). In the disjoint mode (``action_features=False``) every action has its
  own parameter vector, ``theta`` of shape ``(K, d)``; with per-action features one vector is
  shared by all actions, ``theta`` of shape ``(d,)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_positive_int, check_scalar
from scarce.envs.base import Environment


def _check_bool(value: Any, name: str) -> bool:
    # ValueError (not TypeError) like every argument check in scarce.core.validation
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool; got {value!r}")  # noqa: TRY004
    return bool(value)


class _LinearParameterEnv(Environment):
    """Shared machinery: Gaussian contexts, unit-norm true parameters, the linear predictor."""

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        action_features: bool,
        param_norm: float,
        seed: SeedLike,
    ) -> None:
        self.n_actions = check_positive_int(n_actions, "n_actions")
        self.n_features = check_positive_int(n_features, "n_features")
        self.action_features = _check_bool(action_features, "action_features")
        super().__init__(seed)
        shape = (self.n_features,) if self.action_features else (self.n_actions, self.n_features)
        theta = self._rng.standard_normal(shape)
        theta /= np.linalg.norm(theta, axis=-1, keepdims=True)
        #: the true parameters: ``(K, d)`` in the disjoint mode, ``(d,)`` with per-action features
        self.theta: np.ndarray = param_norm * theta

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = (
            (n, self.n_actions, self.n_features) if self.action_features else (n, self.n_features)
        )
        return rng.standard_normal(shape) / np.sqrt(self.n_features)

    def _check_X(self, X: Any) -> np.ndarray:
        arr = check_contexts(X, self.n_features, self.n_actions)
        expected_ndim = 3 if self.action_features else 2
        if arr.ndim != expected_ndim:
            k, d = self.n_actions, self.n_features
            want = f"(n, {k}, {d}) per-action features" if self.action_features else f"(n, {d})"
            raise ValueError(
                f"X must have shape {want} for {self.name} with action_features="
                f"{self.action_features}; got {arr.shape}"
            )
        return arr

    def _linear_predictor(self, X: Any) -> np.ndarray:
        """``(n, K)`` values of ``x^T theta`` for each case and action."""
        arr = self._check_X(X)
        if self.action_features:
            return arr @ self.theta
        return arr @ self.theta.T

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["action_features"] = self.action_features
        return out


class LinearGaussianEnv(_LinearParameterEnv):
    """Linear rewards with Gaussian noise.

    The reward of action ``a`` on case ``x`` is ``x^T theta_a + eps`` (disjoint mode) or
    ``x_a^T theta + eps`` (per-action features), with ``eps ~ N(0, noise_std^2)`` drawn
    independently for every (case, action).

    Contexts are ``N(0, I / d)`` so that ``E ||x||^2 = 1``; the true parameters are
    ``N(0, I)`` draws normalised to unit norm, so an expected reward ``x^T theta`` is
    distributed ``N(0, 1 / d)``.

    Parameters
    ----------
    n_actions:
        Number of actions ``K`` (>= 1).
    n_features:
        Context dimension ``d`` (>= 1).
    noise_std:
        Standard deviation of the Gaussian reward noise (>= 0; 0 gives noiseless rewards).
    action_features:
        If False (default), contexts are ``(n, d)`` and each action has its own parameter
        vector (``theta`` is ``(K, d)``). If True, contexts are ``(n, K, d)`` (one feature vector
        per action) and one parameter vector ``theta`` ``(d,)`` is shared.
    seed:
        Seed or generator for the true parameters (drawn at construction) and for the contexts
        and noise when a call is given no ``rng``.

    Attributes
    ----------
    theta:
        The true parameters, ``(K, d)`` or ``(d,)``; unit norm per vector.
    name:
        ``"linear-gaussian"``, or ``"linear-gaussian-features"`` with per-action features.
    """

    name = "linear-gaussian"

    def __init__(
        self,
        n_actions: int = 10,
        n_features: int = 20,
        noise_std: float = 0.1,
        action_features: bool = False,
        seed: SeedLike = None,
    ) -> None:
        self.noise_std = check_scalar(noise_std, "noise_std", low=0.0)
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            action_features=action_features,
            param_norm=1.0,
            seed=seed,
        )
        if self.action_features:
            self.name = "linear-gaussian-features"

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """Exact expected rewards.

        Parameters
        ----------
        X:
            Contexts, ``(n, d)`` (disjoint mode) or ``(n, K, d)`` (per-action features).

        Returns
        -------
        ``(n, K)`` array: ``X @ theta.T`` (disjoint) or ``X @ theta`` (per-action features).
        """
        return self._linear_predictor(X)

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = self._linear_predictor(X)
        if self.noise_std == 0.0:
            return mean
        return mean + self.noise_std * rng.standard_normal(mean.shape)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["noise_std"] = self.noise_std
        return out


class LogisticEnv(_LinearParameterEnv):
    """Bernoulli rewards whose mean is the logistic function of a linear predictor.

    The reward of action ``a`` on case ``x`` is 1.0 with probability ``sigmoid(x^T theta_a)``
    (disjoint mode) or ``sigmoid(x_a^T theta)`` (per-action features), else 0.0.

    Contexts are ``N(0, I / d)`` (so ``E ||x||^2 = 1``) and the true parameters have norm
    ``scale``, so each logit ``x^T theta`` is distributed ``N(0, scale^2 / d)``. The default
    ``scale=3`` separates the best action well at moderate ``d``: with ``K=10, d=20`` the best
    action's mean is about 0.72 on average against 0.5 for an average action (about 0.84 at
    ``d=5``). Increase ``scale`` for larger ``d`` to keep the same separation.

    Parameters
    ----------
    n_actions:
        Number of actions ``K`` (>= 1).
    n_features:
        Context dimension ``d`` (>= 1).
    action_features:
        If False (default), contexts are ``(n, d)`` and ``theta`` is ``(K, d)``; if True,
        contexts are ``(n, K, d)`` and ``theta`` ``(d,)`` is shared by all actions.
    scale:
        Norm of each true parameter vector (> 0).
    seed:
        Seed or generator for the true parameters (drawn at construction) and for the contexts
        and Bernoulli draws when a call is given no ``rng``.

    Attributes
    ----------
    theta:
        The true parameters, ``(K, d)`` or ``(d,)``, each of norm ``scale``.
    name:
        ``"logistic"``, or ``"logistic-features"`` with per-action features.
    """

    name = "logistic"

    def __init__(
        self,
        n_actions: int = 10,
        n_features: int = 20,
        action_features: bool = False,
        scale: float = 3.0,
        seed: SeedLike = None,
    ) -> None:
        self.scale = check_scalar(scale, "scale", low=0.0, low_inclusive=False)
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            action_features=action_features,
            param_norm=self.scale,
            seed=seed,
        )
        if self.action_features:
            self.name = "logistic-features"

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """Exact success probabilities.

        Parameters
        ----------
        X:
            Contexts, ``(n, d)`` (disjoint mode) or ``(n, K, d)`` (per-action features).

        Returns
        -------
        ``(n, K)`` array of ``sigmoid(x^T theta)`` in (0, 1).
        """
        return expit(self._linear_predictor(X))

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.expected_rewards(X)
        return (rng.random(p.shape) < p).astype(np.float64)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["scale"] = self.scale
        return out
