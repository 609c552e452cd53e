"""Contextual combinatorial allocation: learn per-(item, level) rewards, allocate by knapsack.

These policies are the ``"levels"`` variant of the one protocol
(:attr:`scarce.core.policy.Policy.action_type`): a case has ``N = n_actions`` items, each with
its own features (contexts ``(n, N, p)``, the per-action-feature layout), and the decision
gives every item one of ``L`` levels (``actions`` ``(n, N)`` level ids) whose costs may not
exceed a per-case cap. Rewards are the case totals ``(n,)``; per-item rewards come as the
``item_rewards`` keyword ``(n, N)`` (semi-bandit feedback), and full information as
``full_rewards`` ``(n, N, L)`` (every item at every level).

The reward of a case is modelled as additive over items, ``R = sum_i f_l(psi_i)`` with
``f_l(psi) = theta_l^T psi`` (one linear model per level on the item's query-item features).
All levels' parameters form one ridge regression on the stacked vector ``theta = (theta_0,
..., theta_{L-1})``; an item at level ``l`` contributes the row ``e_l (x) psi_i``:

* per-item feedback: one row per item (semi-bandit);
* total feedback: one row per case, the sum of its items' rows (full-bandit), which is why the
  parameters are stacked in a single model.

Per case the policy scores every (item, level) and allocates exactly with
:func:`~scarce.combinatorial.solve_mckp` (or :func:`~scarce.combinatorial.greedy_mckp`):

* ``method="ucb"``: ``theta_l^T psi + alpha * sqrt(phi^T A^{-1} phi)`` per (item, level), an
  optimistic score that is additive over items (a per-item bound, as in CombLinUCB);
* ``method="ts"``: one posterior draw ``theta~ ~ N(theta_hat, v^2 A^{-1})`` per case, then
  ``theta~_l^T psi`` (exactly additive);
* ``method="greedy"``: the posterior mean (no exploration).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.combinatorial.knapsack import check_costs, greedy_mckp, solve_mckp
from scarce.core.decision import Decision
from scarce.core.policy import ACTION_FEATURES, Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_matrix, check_scalar
from scarce.models import linear
from scarce.models.ridge import RidgeRegression

METHODS = ("ucb", "ts", "greedy")
FEEDBACKS = ("item", "total")
SOLVERS = {"dp": solve_mckp, "greedy": greedy_mckp}


def check_levels(
    levels: Any, n: int, n_items: int, n_levels: int, name: str = "levels"
) -> np.ndarray:
    """Validate an ``(n, N)`` integer allocation with levels in ``[0, L)``."""
    arr = np.asarray(levels)
    if arr.shape != (n, n_items):
        raise ValueError(
            f"{name} must have shape ({n}, {n_items}) (level per item); got {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer level ids; got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_levels):
        raise ValueError(f"{name} must be in [0, {n_levels}); got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


class LevelPolicy(Policy):
    """Base of the ``"levels"`` variant (module docstring): validation of allocations, level
    eligibility and the ``item_rewards`` keyword.

    ``eligible``, when given, is ``(n, N, L)`` (or ``(N, L)``): which levels each item may get
    (every item needs at least one).
    """

    action_type = "levels"
    layouts = (ACTION_FEATURES,)
    deterministic = True

    costs: Any

    @property
    def n_levels(self) -> int:
        """``L``, number of levels."""
        return int(np.asarray(self.costs).size)

    def _check_params(self) -> None:
        super()._check_params()
        self.costs_ = check_costs(self.costs)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        if isinstance(params.get("costs"), (np.ndarray, tuple)):
            params["costs"] = np.asarray(params["costs"]).tolist()  # JSON-able, as saved
        return params

    def _init_state(self) -> None:
        if self.context_mode_ != ACTION_FEATURES:
            raise ValueError(
                f"X must have shape (n, {self.n_actions}, {self.n_features}) (cases, items, "
                "item features)"
            )

    def _check_actions(self, actions: Any, n: int) -> np.ndarray:
        return check_levels(actions, n, self.n_actions, self.n_levels, name="actions")

    def _check_eligible(self, eligible: Any, n: int) -> np.ndarray | None:
        if eligible is None:
            return None
        N, L = self.n_actions, self.n_levels
        arr = np.asarray(eligible)
        if arr.dtype != np.bool_:
            raise ValueError(f"eligible must be a boolean mask; got dtype {arr.dtype}")
        if arr.shape == (N, L):
            arr = np.broadcast_to(arr, (n, N, L))
        if arr.shape != (n, N, L):
            raise ValueError(
                f"eligible must have shape ({n}, {N}, {L}) or ({N}, {L}) (levels allowed per "
                f"item); got {arr.shape}"
            )
        empty = ~arr.any(axis=2)
        if empty.any():
            i, j = np.argwhere(empty)[0]
            raise ValueError(f"eligible leaves item {j} of case {i} no level")
        return arr

    def _check_scalar_feedback(self, X, actions, rewards, full_rewards):  # type: ignore[override]
        n = X.shape[0]
        if full_rewards is not None:
            full = check_matrix(full_rewards, (n, self.n_actions, self.n_levels), "full_rewards")
            return None, None, full
        return super()._check_scalar_feedback(X, actions, rewards, None)

    def _check_item_rewards(self, item_rewards: Any, n: int) -> np.ndarray:
        return check_matrix(item_rewards, (n, self.n_actions), "item_rewards")

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"costs": [1, 2, 3], "budget": 8}]

    @classmethod
    def _unit_test_feedback(cls, rng, X, decision, params) -> dict[str, Any]:
        items = rng.random(decision.actions.shape)
        return {"actions": decision.actions, "rewards": items.sum(axis=1), "item_rewards": items}


class AllocationPolicy(LevelPolicy):
    """Budgeted combinatorial allocation with linear per-level reward models (module docstring).

    Parameters
    ----------
    n_actions:
        ``N``, items per case (each gets a level).
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
    feedback:
        ``"item"``: learn from ``item_rewards`` when given (semi-bandit); ``"total"``: only
        from the case totals (full-bandit), even when item rewards are available.
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
        n_actions: int,
        n_features: int,
        costs: Any = (1, 2),
        budget: int = 4,
        method: str = "ucb",
        solver: str = "dp",
        feedback: str = "item",
        alpha: float = 0.5,
        v: float = 0.1,
        lam: float = 1.0,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.costs = costs
        self.budget = budget
        self.method = method
        self.solver = solver
        self.feedback = feedback
        self.alpha = alpha
        self.v = v
        self.lam = lam

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.method != "ts"

    def _check_params(self) -> None:
        super()._check_params()
        N = self.n_actions
        if isinstance(self.budget, bool) or not isinstance(self.budget, (int, np.integer)):
            raise ValueError(f"budget must be an int (the per-case cap); got {self.budget!r}")
        if self.budget < N * int(self.costs_.min()):
            raise ValueError(
                f"budget must be >= n_actions * min(costs) = {N * int(self.costs_.min())} so "
                f"every item can get a level; got {self.budget}"
            )
        for name, value, valid in (
            ("method", self.method, METHODS),
            ("solver", self.solver, tuple(SOLVERS)),
            ("feedback", self.feedback, FEEDBACKS),
        ):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}; got {value!r}")
        check_scalar(self.alpha, "alpha", low=0.0)
        check_scalar(self.v, "v", low=0.0)
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)

    def _init_state(self) -> None:
        super()._init_state()
        self.model_ = RidgeRegression(1, self.n_levels * self.n_features, lam=self.lam)

    def _extra_keywords(self) -> tuple[str, ...]:
        return ("item_rewards",)

    def expected_scores(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and unit-noise variance of each (item, level) reward, ``(n, N, L)``."""
        X = np.asarray(X, dtype=np.float64)
        n, N, p = X.shape
        L = self.n_levels
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
        draws = linear.sample_parameters(
            self.model_.theta[0], self.model_.A_inv[0], self.v, n, self.rng_
        )
        return np.einsum("nip,nlp->nil", X, draws.reshape(n, self.n_levels, p))

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        scores = self._scores(X)
        if eligible is not None:
            scores = np.where(eligible, scores, -np.inf)
        solve = SOLVERS[self.solver]
        levels = np.stack([solve(s, self.costs_, int(self.budget)) for s in scores])
        spend = self.costs_[levels].sum(axis=1)
        # TS allocations are random: their probability has no closed form (NaN, said so)
        probs = np.ones(X.shape[0]) if self.method != "ts" else np.full(X.shape[0], np.nan)
        return Decision(levels, probs, scores, info={"spend": spend})

    def _learn(self, X, actions, rewards, full_rewards, item_rewards=None, **_):  # type: ignore[override]
        n, N, p = X.shape
        L = self.n_levels
        if full_rewards is not None:  # every item at every level
            rows = np.zeros((n, N, L, L * p))
            for lv in range(L):
                rows[:, :, lv, lv * p : (lv + 1) * p] = X
            self.model_.partial_fit(rows.reshape(-1, L * p), full_rewards.reshape(-1))
            return
        rows = np.zeros((n, N, L, p))
        rows[np.arange(n)[:, None], np.arange(N)[None, :], actions] = X
        rows = rows.reshape(n, N, L * p)
        if item_rewards is not None and self.feedback == "item":
            y = self._check_item_rewards(item_rewards, n)
            self.model_.partial_fit(rows.reshape(n * N, L * p), y.reshape(-1))
        else:
            self.model_.partial_fit(rows.sum(axis=1), rewards)

    def _get_learned_state(self) -> dict[str, Any]:
        return {"model": self.model_.get_state()}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.model_.set_state(state["model"])


class FixedLevelPolicy(LevelPolicy):
    """Baseline: every item gets the same level (its spend is ``N * costs[level]``, whatever
    the cap).

    Parameters
    ----------
    n_actions, n_features, costs:
        as in :class:`AllocationPolicy`.
    level:
        the level id in ``[0, L)``.
    budget:
        the per-case cap; only reported (the baseline ignores it, so levels above the cap
        serve as references for what more spend buys).
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        costs: Any = (1, 2),
        level: int = 0,
        budget: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.costs = costs
        self.level = level
        self.budget = budget

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.level, bool) or not isinstance(self.level, (int, np.integer)):
            raise ValueError(f"level must be an int; got {self.level!r}")
        if not 0 <= self.level < self.costs_.size:
            raise ValueError(f"level must be in [0, {self.costs_.size}); got {self.level}")

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        n, N = X.shape[0], self.n_actions
        if eligible is not None and not eligible[:, :, self.level].all():
            raise ValueError(f"eligible forbids level {self.level}, the only one this policy plays")
        levels = np.full((n, N), self.level, dtype=np.int64)
        scores = np.zeros((n, N, self.costs_.size))
        scores[:, :, self.level] = 1.0
        spend = self.costs_[levels].sum(axis=1)
        return Decision(levels, np.ones(n), scores, info={"spend": spend})

    def _learn(self, X, actions, rewards, full_rewards, **_):  # type: ignore[override]
        pass

    def _extra_keywords(self) -> tuple[str, ...]:
        return ("item_rewards",)

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"costs": [1, 2, 3], "level": 1}]
