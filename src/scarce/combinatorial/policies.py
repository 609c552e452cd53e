"""Contextual combinatorial allocation: learn per-(item, level) rewards, allocate by knapsack.

The reward of a case is modelled as additive over items, ``R = sum_i f_l(psi_i)`` with
``f_l(psi) = theta_l^T psi`` (one linear model per level on the item's query-item features).
All levels' parameters form one ridge regression on the stacked vector ``theta = (theta_0,
..., theta_{L-1})``; an item at level ``l`` contributes the row ``e_l (x) psi_i``:

* per-item feedback (``rewards`` of shape ``(n, N)``): one row per item (semi-bandit);
* total feedback (``rewards`` of shape ``(n,)``): one row per case, the sum of its items' rows
  (full-bandit), which is why the parameters are stacked in a single model.

Per case the policy scores every (item, level) and allocates exactly with
:func:`~scarce.combinatorial.solve_mckp` (or :func:`~scarce.combinatorial.greedy_mckp`):

* ``method="ucb"``: ``theta_l^T psi + alpha * sqrt(phi^T A^{-1} phi)`` per (item, level), an
  optimistic score that is additive over items (a per-item bound, as in CombLinUCB);
* ``method="ts"``: one posterior draw ``theta~ ~ N(theta_hat, v^2 A^{-1})`` per case, then
  ``theta~_l^T psi`` (exactly additive);
* ``method="greedy"``: the posterior mean (no exploration).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scarce.combinatorial.envs import check_levels
from scarce.combinatorial.knapsack import check_costs, greedy_mckp, solve_mckp
from scarce.core import persist
from scarce.core.random import SeedLike, as_generator, generator_from_state, generator_state
from scarce.core.validation import check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.ridge import RidgeRegression

METHODS = ("ucb", "ts", "greedy")
SOLVERS = {"dp": solve_mckp, "greedy": greedy_mckp}


@dataclass
class Allocation:
    """Allocations for a batch of ``n`` cases.

    Attributes
    ----------
    levels:
        ``(n, N)`` int64, each item's level.
    spend:
        ``(n,)`` int64, the total cost of each case's allocation.
    scores:
        ``(n, N, L)`` the index each (item, level) was valued by (NaN for fixed baselines).
    """

    levels: np.ndarray
    spend: np.ndarray
    scores: np.ndarray


class _AllocationBase:
    def _check_X(self, X: Any) -> np.ndarray:
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[1] != self.n_items or arr.shape[2] != self.n_features:
            raise ValueError(
                f"X must have shape (n, {self.n_items}, {self.n_features}) (cases, items, "
                f"query-item features); got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError("X contains NaN or inf")
        return arr

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as given."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {k: getattr(self, k) for k in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class AllocationPolicy(_AllocationBase):
    """Budgeted combinatorial allocation with linear per-level reward models (module docstring).

    Parameters
    ----------
    n_items:
        ``N``, items per case.
    n_features:
        ``p``, query-item features per item.
    costs:
        ``(L,)`` integer cost of each level.
    budget:
        per-case cap on the total cost (int >= ``N * min(costs)``).
    method:
        ``"ucb"``, ``"ts"`` or ``"greedy"`` (posterior mean).
    solver:
        ``"dp"`` (exact multiple-choice knapsack) or ``"greedy"`` (ratio heuristic).
    alpha:
        UCB width multiplier (>= 0).
    v:
        Thompson sampling posterior scale (>= 0).
    lam:
        ridge penalty (> 0).
    seed:
        seed of the Thompson draws.
    """

    def __init__(
        self,
        *,
        n_items: int,
        n_features: int,
        costs: Any,
        budget: int,
        method: str = "ucb",
        solver: str = "dp",
        alpha: float = 0.5,
        v: float = 0.1,
        lam: float = 1.0,
        seed: SeedLike = None,
    ) -> None:
        self.n_items = n_items
        self.n_features = n_features
        self.costs = costs
        self.budget = budget
        self.method = method
        self.solver = solver
        self.alpha = alpha
        self.v = v
        self.lam = lam
        self.seed = seed
        self._initialized = False

    def _init(self) -> None:
        if self._initialized:
            return
        check_positive_int(self.n_items, "n_items")
        check_positive_int(self.n_features, "n_features")
        self.costs_ = check_costs(self.costs)
        if isinstance(self.budget, bool) or not isinstance(self.budget, (int, np.integer)):
            raise ValueError(f"budget must be an int; got {self.budget!r}")
        if self.budget < self.n_items * int(self.costs_.min()):
            raise ValueError(
                f"budget must be >= n_items * min(costs) = {self.n_items * int(self.costs_.min())}"
                f" so every item can get a level; got {self.budget}"
            )
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {self.method!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {tuple(SOLVERS)}; got {self.solver!r}")
        check_scalar(self.alpha, "alpha", low=0.0)
        check_scalar(self.v, "v", low=0.0)
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)
        L, p = self.costs_.size, self.n_features
        self.model_ = RidgeRegression(1, L * p, lam=self.lam)
        self.rng_ = as_generator(self.seed)
        self.n_updates_ = 0
        self._initialized = True

    @property
    def n_levels(self) -> int:
        return int(np.asarray(self.costs).size)

    def expected_scores(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and unit-noise variance of each (item, level) reward, ``(n, N, L)``."""
        X = self._check_X(X)
        self._init()
        n, N, p = X.shape
        L = self.costs_.size
        theta = self.model_.theta[0].reshape(L, p)
        A_inv = self.model_.A_inv[0]
        blocks = np.stack([A_inv[lv * p : (lv + 1) * p, lv * p : (lv + 1) * p] for lv in range(L)])
        mean, var = linear.predict(X.reshape(n * N, p), theta, blocks)
        return mean.reshape(n, N, L), var.reshape(n, N, L)

    def _scores(self, X: np.ndarray) -> np.ndarray:
        mean, var = self.expected_scores(X)
        if self.method == "greedy":
            return mean
        if self.method == "ucb":
            return mean + self.alpha * np.sqrt(var)
        n, N, p = X.shape
        L = self.costs_.size
        draws = linear.sample_parameters(
            self.model_.theta[0], self.model_.A_inv[0], self.v, n, self.rng_
        )
        return np.einsum("nip,nlp->nil", X, draws.reshape(n, L, p))

    def decide(self, X: Any) -> Allocation:
        """Allocate levels for each case of ``X`` ``(n, N, p)`` within the cap."""
        X = self._check_X(X)
        self._init()
        scores = self._scores(X)
        solve = SOLVERS[self.solver]
        levels = np.stack([solve(s, self.costs_, int(self.budget)) for s in scores])
        return Allocation(levels, self.costs_[levels].sum(axis=1), scores)

    def update(self, X: Any, levels: Any, rewards: Any) -> AllocationPolicy:
        """Learn from outcomes.

        Parameters
        ----------
        X:
            ``(n, N, p)`` the contexts decided on.
        levels:
            ``(n, N)`` the allocations made.
        rewards:
            ``(n, N)`` per-item rewards (semi-bandit feedback) or ``(n,)`` case totals.
        """
        X = self._check_X(X)
        self._init()
        n, N, p = X.shape
        L = self.costs_.size
        levels = check_levels(levels, n, N, L)
        r = np.asarray(rewards, dtype=np.float64)
        if r.shape not in ((n, N), (n,)):
            raise ValueError(f"rewards must have shape ({n}, {N}) (per item) or ({n},) (totals)")
        if not np.isfinite(r).all():
            raise ValueError("rewards contains NaN or inf")
        rows = np.zeros((n, N, L, p))
        rows[np.arange(n)[:, None], np.arange(N)[None, :], levels] = X
        rows = rows.reshape(n, N, L * p)
        if r.ndim == 2:
            feats, y = rows.reshape(n * N, L * p), r.reshape(-1)
        else:
            feats, y = rows.sum(axis=1), r
        self.model_.partial_fit(feats, y)
        self.n_updates_ += n
        return self

    # ------------------------------------------------------------------ persistence
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (``costs`` as a list; a Generator ``seed`` as None)."""
        params = super().get_params()
        if isinstance(params.get("seed"), np.random.Generator):
            params["seed"] = None
        if isinstance(params.get("costs"), (np.ndarray, tuple)):
            params["costs"] = np.asarray(params["costs"]).tolist()  # JSON-able, as saved
        return params

    def _get_state(self) -> dict[str, Any]:
        if not self._initialized:
            return {"initialized": False}
        return {
            "initialized": True,
            "model": self.model_.get_state(),
            "rng": generator_state(self.rng_),
            "n_updates": int(self.n_updates_),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._initialized = False
        if not state.get("initialized"):
            return
        self._init()
        self.model_.set_state(state["model"])
        self.rng_ = generator_from_state(state["rng"])
        self.n_updates_ = int(state["n_updates"])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save parameters, learned state and RNG state to the directory ``path`` (JSON + npz;
        load with ``scarce.load``)."""
        return persist.save(self, path)


class FixedLevelPolicy(_AllocationBase):
    """Baseline: every item gets the same level (its spend is ``N * costs[level]``).

    Parameters
    ----------
    n_items, n_features, costs:
        as in :class:`AllocationPolicy`.
    level:
        the level id in ``[0, L)``.
    """

    def __init__(self, *, n_items: int, n_features: int, costs: Any, level: int) -> None:
        self.n_items = check_positive_int(n_items, "n_items")
        self.n_features = check_positive_int(n_features, "n_features")
        self.costs = check_costs(costs)
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
            raise ValueError(f"level must be an int; got {level!r}")
        if not 0 <= level < self.costs.size:
            raise ValueError(f"level must be in [0, {self.costs.size}); got {level}")
        self.level = int(level)

    def decide(self, X: Any) -> Allocation:
        X = self._check_X(X)
        n = X.shape[0]
        levels = np.full((n, self.n_items), self.level, dtype=np.int64)
        scores = np.full((n, self.n_items, self.costs.size), np.nan)
        return Allocation(levels, self.costs[levels].sum(axis=1), scores)

    def update(self, X: Any, levels: Any, rewards: Any) -> FixedLevelPolicy:
        return self
