"""Hard budgets: what is left of each resource and which actions still fit.

One implementation serves the budgeted policies (their own guarantee), the simulation loop
(which enforces an environment's budget on any policy through the eligible mask) and the
decision service (whose database row is the ledger of record; it asks :func:`affordable`
with the remaining budget it read).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: slack so that round-off in running sums cannot block an exact fit
TOLERANCE = 1e-9


def affordable(cost_bound: np.ndarray, remaining: np.ndarray, n: int = 1) -> np.ndarray:
    """``(K,)`` bool: the actions ``n`` cases may all take without exceeding ``remaining``.

    Parameters
    ----------
    cost_bound:
        ``(K, m)`` largest consumption of one case per action and resource (0 for a free action,
        which is therefore always affordable).
    remaining:
        ``(m,)`` budget left per resource.
    n:
        cases that may each take the action (a batch decided before any outcome is known).
    """
    fits = (n * cost_bound <= remaining + TOLERANCE).all(axis=1)
    return fits | ~cost_bound.any(axis=1)


def check_budget_arrays(budget: Any, cost_bound: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies ``(m,)`` and ``(K, m)`` of a budget and its cost bounds."""
    B = np.array(budget, dtype=np.float64, ndmin=1)
    if B.ndim != 1 or not np.all(np.isfinite(B)) or np.any(B < 0):
        raise ValueError(f"budget must be finite floats >= 0 of shape (m,); got {budget!r}")
    cb = np.array(cost_bound, dtype=np.float64)
    if cb.ndim != 2 or cb.shape[1] != B.shape[0]:
        raise ValueError(
            f"cost_bound must have shape (n_actions, {B.shape[0]}); got {np.shape(cost_bound)}"
        )
    if not np.all(np.isfinite(cb)) or np.any(cb < 0):
        raise ValueError("cost_bound must be finite and >= 0")
    return B, cb


class Ledger:
    """Spending of ``m`` resources against their budgets, with reservations.

    A decision whose cost is not yet known *reserves* its action's cost bound; when the cost
    arrives it is *settled*: the reservation is released and the realised cost booked. An
    action is affordable only if its bound fits in what is left after spending and
    reservations, and settled costs above the bound are refused, so the realised total of the
    decisions made through a ledger can never exceed the budget.

    Parameters
    ----------
    budget:
        ``(m,)`` total budget per resource (a float for one resource).
    cost_bound:
        ``(K, m)`` largest consumption of one case per action and resource.
    """

    def __init__(self, budget: Any, cost_bound: Any) -> None:
        self.budget, self.cost_bound = check_budget_arrays(budget, cost_bound)
        self.spent = np.zeros_like(self.budget)
        self.reserved = np.zeros_like(self.budget)
        self._bound_tol = self.cost_bound + 1e-12
        self._free = ~self.cost_bound.any(axis=1)  # actions that consume nothing

    @property
    def n_resources(self) -> int:
        return int(self.budget.shape[0])

    @property
    def remaining(self) -> np.ndarray:
        """``(m,)`` budget left after spending and outstanding reservations."""
        return self.budget - self.spent - self.reserved

    def affordable(self, n: int = 1) -> np.ndarray:
        """``(K,)`` bool: actions that ``n`` more cases could each take (see :func:`affordable`)."""
        if n != 1:
            return affordable(self.cost_bound, self.remaining, n)
        # (logical_and.reduce is .all() without its Python wrapper)
        fits = np.logical_and.reduce(self.cost_bound <= self.remaining + TOLERANCE, axis=1)
        return fits | self._free  # the same as affordable(): 1 * cost_bound is cost_bound

    def reserve(self, actions: np.ndarray) -> None:
        """Reserve the cost bounds of ``actions`` ``(n,)`` (decided, cost not yet known)."""
        if actions.shape[0] == 1:  # the sum of one row is the row
            self.reserved += self.cost_bound[actions[0]]
        else:
            self.reserved += self.cost_bound[actions].sum(axis=0)

    def check_costs(self, actions: np.ndarray, costs: Any, name: str = "costs") -> np.ndarray:
        """``(n, m)`` float64 costs of ``actions``, refused if NaN, negative or above the bound."""
        n, m = actions.shape[0], self.n_resources
        C = np.asarray(costs, dtype=np.float64)
        if C.ndim == 1 and m == 1:
            C = C[:, None]
        if C.shape != (n, m):
            raise ValueError(f"{name} must have shape ({n},) or ({n}, {m}); got {C.shape}")
        tol = self._bound_tol[actions[0]] if n == 1 else self._bound_tol[actions]
        if not np.logical_and.reduce((C >= 0) & (C <= tol), axis=None):  # NaN fails too
            if not np.all(np.isfinite(C)) or np.any(C < 0):
                raise ValueError(f"{name} must be finite and >= 0")
            bound = self.cost_bound[actions]
            i, j = np.argwhere(C > bound + 1e-12)[0]
            raise ValueError(
                f"{name}[{i}, {j}] = {C[i, j]} exceeds the cost bound {bound[i, j]} of action "
                f"{int(actions[i])} (the budget guarantee relies on it)"
            )
        return C

    def check_full_costs(self, costs: Any, n: int) -> np.ndarray:
        """``(n, K, m)`` float64 costs of every action on ``n`` cases (full information on
        costs), refused if NaN, negative or above the bound."""
        K, m = self.cost_bound.shape
        full = np.asarray(costs, dtype=np.float64)
        if full.shape != (n, K, m):
            raise ValueError(
                f"costs of every action must have shape ({n}, {K}, {m}); got {full.shape}"
            )
        if not ((full >= 0) & (full <= self._bound_tol)).all():
            raise ValueError(
                "costs must be finite, >= 0 and at most cost_bound (0 for the free action)"
            )
        return full

    def settle(self, actions: np.ndarray, costs: Any, *, reserved: bool = True) -> np.ndarray:
        """Book the realised ``costs`` ``(n, m)`` (or ``(n,)``) of ``actions``; with ``reserved``
        their reservations are released first. Returns the validated ``(n, m)`` costs."""
        C = self.check_costs(actions, costs)
        if actions.shape[0] == 1:  # the sum of one row is the row
            if reserved:
                self.reserved = np.maximum(self.reserved - self.cost_bound[actions[0]], 0.0)
            self.spent += C[0]
            return C
        if reserved:
            self.reserved = np.maximum(self.reserved - self.cost_bound[actions].sum(axis=0), 0.0)
        self.spent += C.sum(axis=0)
        return C

    def get_state(self) -> dict[str, np.ndarray]:
        return {"spent": self.spent.copy(), "reserved": self.reserved.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.spent = np.array(state["spent"], dtype=np.float64).reshape(self.budget.shape)
        self.reserved = np.array(state["reserved"], dtype=np.float64).reshape(self.budget.shape)
