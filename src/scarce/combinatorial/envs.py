"""A synthetic query-aware allocation problem with known truth.

Each case is a query ``q`` and ``N`` items (think image patches or retrieved passages) with
features ``z_i``; both ``N(0, I)`` in ``d`` dimensions. The learner sees, per item, the
query-item features ``psi_i = [q * z_i, 1]`` (element-wise product and an intercept; ``p = d +
1`` values), so ``contexts`` are ``(n, N, p)``.

Item ``i``'s relevance is ``rel_i = sigmoid(scale * w^T (q * z_i) + bias)`` with a hidden unit
vector ``w`` (drawn at construction): it depends on the query *and* the item. Giving item ``i``
level ``l`` (budget ``costs[l]``, e.g. tokens) yields ``rel_i * g(costs[l])`` with diminishing
returns ``g(c) = 1 - exp(-c / tau)``, plus Gaussian noise; the case reward is the sum over
items (additive across items, as the policies assume). The exact best allocation under a cap
is the multiple-choice knapsack of the expected item rewards (:meth:`oracle_levels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from scarce.combinatorial.knapsack import check_costs, solve_mckp
from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar


class QueryAwareAllocationEnv:
    """Query-aware budget allocation (module docstring).

    Parameters
    ----------
    n_items:
        ``N`` items per case.
    n_features:
        ``d``, dimension of query and item features (the learner sees ``d + 1``).
    costs:
        ``(L,)`` integer cost of each level, e.g. token counts ``(64, 128, 256, 400)``.
    tau:
        diminishing-returns scale of ``g(c) = 1 - exp(-c / tau)`` (> 0).
    scale, bias:
        relevance logit ``scale * w^T (q * z) + bias``.
    noise_std:
        standard deviation of the Gaussian noise of each item's reward (>= 0).
    seed:
        seed of ``w`` (drawn at construction) and of the streams when a call gets no ``rng``.
    """

    name = "query-aware"

    def __init__(
        self,
        n_items: int = 8,
        n_features: int = 5,
        costs: Any = (64, 128, 256, 400),
        tau: float = 150.0,
        scale: float = 2.0,
        bias: float = -1.0,
        noise_std: float = 0.05,
        seed: SeedLike = None,
    ) -> None:
        self.n_items = check_positive_int(n_items, "n_items")
        self.n_features = check_positive_int(n_features, "n_features")
        self.costs = check_costs(costs)
        self.tau = check_scalar(tau, "tau", low=0.0, low_inclusive=False)
        self.scale = check_scalar(scale, "scale")
        self.bias = check_scalar(bias, "bias")
        self.noise_std = check_scalar(noise_std, "noise_std", low=0.0)
        self.seed = seed
        self._rng = as_generator(seed)
        w = self._rng.standard_normal(self.n_features)
        #: the hidden relevance direction (unit norm)
        self.w = w / np.linalg.norm(w)

    @property
    def n_levels(self) -> int:
        return int(self.costs.size)

    @property
    def context_dim(self) -> int:
        """``p = d + 1``, features per item the learner sees."""
        return self.n_features + 1

    def gain(self) -> np.ndarray:
        """``(L,)`` diminishing-returns factor ``g(costs[l])``."""
        return 1.0 - np.exp(-self.costs / self.tau)

    def contexts(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, N, d + 1)`` query-item features ``[q * z_i, 1]``."""
        n = check_positive_int(n, "n")
        rng = self._rng if rng is None else rng
        q = rng.standard_normal((n, 1, self.n_features))
        z = rng.standard_normal((n, self.n_items, self.n_features))
        return np.concatenate([q * z, np.ones((n, self.n_items, 1))], axis=2)

    def _check_X(self, X: Any) -> np.ndarray:
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[1:] != (self.n_items, self.context_dim):
            raise ValueError(
                f"X must have shape (n, {self.n_items}, {self.context_dim}); got {arr.shape}"
            )
        return arr

    def relevance(self, X: Any) -> np.ndarray:
        """``(n, N)`` relevance of each item to its case's query."""
        X = self._check_X(X)
        return expit(self.scale * (X[..., :-1] @ self.w) + self.bias)

    def expected_item_rewards(self, X: Any) -> np.ndarray:
        """``(n, N, L)`` exact expected reward of each item at each level."""
        return self.relevance(X)[:, :, None] * self.gain()[None, None, :]

    def outcomes(self, X: Any, levels: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, N)`` realised per-item rewards of the allocation ``levels`` ``(n, N)``."""
        mu = self.expected_item_rewards(X)
        levels = check_levels(levels, mu.shape[0], self.n_items, self.n_levels)
        rng = self._rng if rng is None else rng
        noise = rng.standard_normal(levels.shape)  # drawn whatever the levels (common numbers)
        chosen = np.take_along_axis(mu, levels[:, :, None], axis=2)[:, :, 0]
        return chosen + self.noise_std * noise

    def expected_reward(self, X: Any, levels: Any) -> np.ndarray:
        """``(n,)`` exact expected case reward of the allocation ``levels``."""
        mu = self.expected_item_rewards(X)
        levels = check_levels(levels, mu.shape[0], self.n_items, self.n_levels)
        return np.take_along_axis(mu, levels[:, :, None], axis=2)[:, :, 0].sum(axis=1)

    def oracle_levels(self, X: Any, budget: int) -> np.ndarray:
        """``(n, N)`` the best allocation of each case under ``budget`` (exact MCKP)."""
        mu = self.expected_item_rewards(X)
        return np.stack([solve_mckp(m, self.costs, budget) for m in mu])


def check_levels(levels: Any, n: int, n_items: int, n_levels: int) -> np.ndarray:
    """Validate an ``(n, N)`` integer allocation with levels in ``[0, L)``."""
    arr = np.asarray(levels)
    if arr.shape != (n, n_items):
        raise ValueError(f"levels must have shape ({n}, {n_items}); got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"levels must be integer level ids; got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_levels):
        raise ValueError(f"levels must be in [0, {n_levels}); got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)
