"""The wheel bandit (Riquelme, Tucker and Snoek 2018, "Deep Bayesian bandits showdown").

A problem that needs a non-linear model and exploration: contexts are uniform on the unit disc
and there are five actions. Action 4 always pays about ``mu_safe`` (1.2). Actions 0-3 pay
about ``mu_small`` (1.0), except that outside the radius ``delta`` the action of the
context's quadrant pays ``mu_large`` (50): action 0 for ``x1 > 0, x2 > 0``, 1 for
``x1 > 0, x2 <= 0``, 2 for ``x1 <= 0, x2 > 0``, 3 for ``x1 <= 0, x2 <= 0``. The larger
``delta``, the rarer the large rewards (a share ``1 - delta^2`` of the contexts) and the
longer a policy that settles on the safe action takes to find them. Every reward carries
Gaussian noise of standard deviation ``noise_std`` (0.01 in the paper).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_scalar
from scarce.envs.base import Environment


class WheelEnv(Environment):
    """The wheel bandit with exact expected rewards.

    Parameters
    ----------
    delta:
        exploration parameter, the radius in [0, 1) outside which the quadrant actions pay
        ``mu_large``.
    mu_small, mu_safe, mu_large:
        mean rewards of a quadrant action inside the radius (or outside it in another
        quadrant), of the safe action 4, and of the quadrant's action outside the radius.
    noise_std:
        standard deviation of the Gaussian noise on every reward, >= 0.
    bias:
        append a constant 1.0 feature to the two coordinates (``n_features = 3``), as
        :class:`~scarce.envs.SupervisedEnv` does, so that linear baselines have an intercept.
    seed:
        seed or generator for contexts and noise when a call is given no ``rng``.
    """

    n_actions = 5
    name = "wheel"

    def __init__(
        self,
        delta: float = 0.5,
        mu_small: float = 1.0,
        mu_safe: float = 1.2,
        mu_large: float = 50.0,
        noise_std: float = 0.01,
        bias: bool = True,
        seed: SeedLike = None,
    ) -> None:
        self.delta = check_scalar(delta, "delta", low=0.0, high=1.0, high_inclusive=False)
        self.mu_small = check_scalar(mu_small, "mu_small")
        self.mu_safe = check_scalar(mu_safe, "mu_safe")
        self.mu_large = check_scalar(mu_large, "mu_large")
        self.noise_std = check_scalar(noise_std, "noise_std", low=0.0)
        if not isinstance(bias, (bool, np.bool_)):
            raise ValueError(f"bias must be a bool; got {bias!r}")  # noqa: TRY004
        self.bias = bool(bias)
        self.n_features = 3 if self.bias else 2
        super().__init__(seed)

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # uniform on the disc: radius sqrt(U), uniform angle (exact, no rejection loop)
        r = np.sqrt(rng.random(n))
        angle = rng.uniform(0.0, 2.0 * np.pi, n)
        X = np.column_stack([r * np.cos(angle), r * np.sin(angle)])
        return np.hstack([X, np.ones((n, 1))]) if self.bias else X

    def quadrant_action(self, X: Any) -> np.ndarray:
        """``(n,)`` the quadrant action (0-3) of each context."""
        X = self._check(X)
        return 2 * (X[:, 0] <= 0) + (X[:, 1] <= 0)

    def _check(self, X: Any) -> np.ndarray:
        arr = check_contexts(X, self.n_features)
        if arr.ndim != 2:
            raise ValueError(f"X must have shape (n, {self.n_features}); got {arr.shape}")
        return arr

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, 5)`` exact mean rewards of contexts ``X`` ``(n, n_features)``."""
        X = self._check(X)
        n = X.shape[0]
        out = np.full((n, self.n_actions), self.mu_small)
        out[:, 4] = self.mu_safe
        outside = np.hypot(X[:, 0], X[:, 1]) >= self.delta
        out[np.flatnonzero(outside), self.quadrant_action(X)[outside]] = self.mu_large
        return out

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = self.expected_rewards(X)
        return mean + self.noise_std * rng.standard_normal(mean.shape)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["delta"] = self.delta
        return out
