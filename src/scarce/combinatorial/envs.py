"""A synthetic query-aware allocation problem with known truth.

Each case is a query ``q`` and ``N`` items (think image patches or retrieved passages) with
features ``z_i``; both ``N(0, I)`` in ``d`` dimensions. The learner sees, per item, the
query-item features ``psi_i = [q * z_i, 1]`` (element-wise product and an intercept; ``p = d +
1`` values), so ``contexts`` are ``(n, N, p)``: the environment has ``n_actions = N`` (items)
and ``n_features = p`` in the ``"levels"`` variant of the protocol
(:mod:`scarce.combinatorial.policies`).

Item ``i``'s relevance is ``rel_i = sigmoid(scale * w^T (q * z_i) + bias)`` with a hidden unit
vector ``w`` (drawn at construction): it depends on the query *and* the item. Giving item ``i``
level ``l`` (budget ``costs[l]``, e.g. tokens) yields ``rel_i * g(costs[l])`` with diminishing
returns ``g(c) = 1 - exp(-c / tau)``, plus Gaussian noise; the case reward is the sum over
items (additive across items, as the policies assume). The exact best allocation under a cap
is the multiple-choice knapsack of the expected item rewards (:meth:`oracle_levels`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
from scipy.special import expit

from scarce.combinatorial.knapsack import check_costs, solve_mckp
from scarce.combinatorial.policies import check_levels
from scarce.core.outcome import Outcome
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.envs.base import Environment
from scarce.envs.registry import register_env


class QueryAwareAllocationEnv(Environment):
    """Query-aware budget allocation (module docstring).

    Outcomes: the case total as the reward and the per-item rewards as
    ``extras["item_rewards"]`` ``(n, N)``. The truth: :meth:`expected_rewards` ``(n, N, L)``
    per item and level. Regret is measured against the exact best allocation under ``cap``
    (:meth:`case_metrics`: ``regret``, ``expected_reward``, ``oracle_expected_reward``,
    ``spend``, ``over_cap``); the scalar per-action regret of the loop does not apply
    (``has_oracle`` is False).

    Parameters
    ----------
    n_items:
        ``N`` items per case.
    query_dim:
        ``d``, dimension of query and item features (the learner sees ``d + 1``).
    costs:
        ``(L,)`` integer cost of each level, e.g. token counts ``(64, 128, 256, 400)``.
    cap:
        the per-case cap on the total cost (suggested to the policies as their ``budget``).
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
    has_oracle = False
    action_type = "levels"

    def __init__(
        self,
        n_items: int = 8,
        query_dim: int = 5,
        costs: Any = (64, 128, 256, 400),
        cap: int = 1024,
        tau: float = 150.0,
        scale: float = 2.0,
        bias: float = -1.0,
        noise_std: float = 0.05,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed)
        self.n_items = check_positive_int(n_items, "n_items")
        self.query_dim = check_positive_int(query_dim, "query_dim")
        self.costs = check_costs(costs)
        self.cap = check_positive_int(cap, "cap", minimum=self.n_items * int(self.costs.min()))
        self.tau = check_scalar(tau, "tau", low=0.0, low_inclusive=False)
        self.scale = check_scalar(scale, "scale")
        self.bias = check_scalar(bias, "bias")
        self.noise_std = check_scalar(noise_std, "noise_std", low=0.0)
        self.n_actions = self.n_items
        self.n_features = self.query_dim + 1
        w = self._rng.standard_normal(self.query_dim)
        #: the hidden relevance direction (unit norm)
        self.w = w / np.linalg.norm(w)

    @property
    def n_levels(self) -> int:
        return int(self.costs.size)

    @property
    def context_dim(self) -> int:
        """``p = d + 1``, features per item the learner sees (``n_features``)."""
        return self.n_features

    def policy_params(self, horizon: int, names: Collection[str] | None = None) -> dict[str, Any]:
        """The level costs and the per-case cap (as ``budget``) for the allocation policies."""
        return {"costs": self.costs.tolist(), "budget": int(self.cap)}

    def gain(self) -> np.ndarray:
        """``(L,)`` diminishing-returns factor ``g(costs[l])``."""
        return 1.0 - np.exp(-self.costs / self.tau)

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, N, d + 1)`` query-item features ``[q * z_i, 1]``."""
        q = rng.standard_normal((n, 1, self.query_dim))
        z = rng.standard_normal((n, self.n_items, self.query_dim))
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

    def expected_rewards(self, X: Any) -> np.ndarray:
        """``(n, N, L)`` exact expected reward of each item at each level."""
        return self.relevance(X)[:, :, None] * self.gain()[None, None, :]

    def outcomes(self, X: Any, actions: Any, rng: np.random.Generator | None = None) -> Outcome:
        """The case totals ``(n,)`` of the allocation ``actions`` ``(n, N)`` (level ids), with
        the per-item rewards as ``extras["item_rewards"]`` ``(n, N)``."""
        mu = self.expected_rewards(X)
        levels = check_levels(actions, mu.shape[0], self.n_items, self.n_levels, name="actions")
        noise = self._gen(rng).standard_normal(levels.shape)  # whatever the levels (CRN)
        items = np.take_along_axis(mu, levels[:, :, None], axis=2)[:, :, 0]
        items = items + self.noise_std * noise
        return Outcome(items.sum(axis=1), {"item_rewards": items})

    def full_information(self, X, actions, rng=None):  # type: ignore[override]
        """The outcome of ``actions`` and every item's reward at every level ``(n, N, L)``."""
        mu = self.expected_rewards(X)
        full = mu + self.noise_std * self._gen(rng).standard_normal(mu.shape)
        levels = check_levels(actions, mu.shape[0], self.n_items, self.n_levels, name="actions")
        items = np.take_along_axis(full, levels[:, :, None], axis=2)[:, :, 0]
        return Outcome(items.sum(axis=1), {"item_rewards": items}), full

    def expected_reward(self, X: Any, levels: Any) -> np.ndarray:
        """``(n,)`` exact expected case reward of the allocation ``levels`` ``(n, N)``."""
        mu = self.expected_rewards(X)
        levels = check_levels(levels, mu.shape[0], self.n_items, self.n_levels)
        return np.take_along_axis(mu, levels[:, :, None], axis=2)[:, :, 0].sum(axis=1)

    def oracle_levels(self, X: Any, budget: int | None = None) -> np.ndarray:
        """``(n, N)`` the best allocation of each case under ``budget`` (default: the cap;
        exact MCKP)."""
        mu = self.expected_rewards(X)
        cap = self.cap if budget is None else budget
        return np.stack([solve_mckp(m, self.costs, cap) for m in mu])

    def case_metrics(self, X: Any, decision: Any, outcome: Outcome) -> dict[str, np.ndarray]:
        """Per case: ``expected_reward`` of the allocation, ``oracle_expected_reward`` (the
        best allocation under the cap), ``regret`` (their difference), ``spend`` and
        ``over_cap`` (1.0 where the spend exceeds the cap)."""
        levels = decision.actions
        got = self.expected_reward(X, levels)
        best = self.expected_reward(X, self.oracle_levels(X))
        spend = self.costs[levels].sum(axis=1).astype(np.float64)
        return {
            "expected_reward": got,
            "oracle_expected_reward": best,
            "regret": best - got,
            "spend": spend,
            "over_cap": (spend > self.cap).astype(np.float64),
        }


register_env(
    "query-aware",
    QueryAwareAllocationEnv,
    "combinatorial ('levels' variant): 8 items per case, levels costing 64/128/256/400, a "
    "per-case cap of 1024; query-aware relevance with diminishing returns",
)
