"""Per-case allocation under a cap: the multiple-choice knapsack problem (MCKP).

Each of ``N`` items gets exactly one of ``L`` levels; level ``l`` costs ``costs[l]`` (a
non-negative integer, e.g. a token count) and item ``i`` at level ``l`` is worth
``scores[i, l]``. The allocation maximises ``sum_i scores[i, l_i]`` subject to
``sum_i costs[l_i] <= budget``.

:func:`solve_mckp` is exact: dynamic programming over the budget in units of
``g = gcd(costs, budget)``, ``O(N * L * budget / g)`` time, vectorised over the budget axis.
:func:`greedy_mckp` is the classic baseline: start every item at its cheapest level and
repeatedly take the upgrade with the largest gain per unit of extra cost that still fits.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import numpy as np


def check_costs(costs: Any, name: str = "costs") -> np.ndarray:
    """``(L,)`` non-negative integer level costs (at least one level)."""
    arr = np.asarray(costs)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of level costs; got shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integers (e.g. token counts); got {arr.tolist()}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0; got {arr.tolist()}")
    return arr


def _check(scores: Any, costs: Any, budget: Any) -> tuple[np.ndarray, np.ndarray, int]:
    costs = check_costs(costs)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != costs.size or s.shape[0] == 0:
        raise ValueError(f"scores must have shape (n_items, {costs.size}); got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f"budget must be an int >= 0; got {budget!r}")
    budget = int(budget)
    need = s.shape[0] * int(costs.min())
    if need > budget:
        raise ValueError(
            f"budget {budget} cannot give {s.shape[0]} items even the cheapest level (needs {need})"
        )
    return s, costs, budget


def solve_mckp(scores: Any, costs: Any, budget: int) -> np.ndarray:
    """Exact best allocation.

    Parameters
    ----------
    scores:
        ``(N, L)`` value of each item at each level.
    costs:
        ``(L,)`` non-negative integer cost of each level.
    budget:
        the cap on the total cost (int); must allow every item its cheapest level.

    Returns
    -------
    ``(N,)`` int64 levels. Ties go to the allocation found first (lower levels of earlier
    items).
    """
    s, costs, budget = _check(scores, costs, budget)
    N, L = s.shape
    g = reduce(math.gcd, [int(c) for c in costs] + [budget]) or 1
    units = costs // g
    B = budget // g
    # best[b]: best value of the items so far using at most b units (-inf: infeasible)
    best = np.zeros(B + 1)
    choice = np.empty((N, B + 1), dtype=np.int64)
    for i in range(N):
        new = np.full(B + 1, -np.inf)
        pick = np.zeros(B + 1, dtype=np.int64)
        for lvl in range(L):
            c = int(units[lvl])
            if c > B:
                continue
            cand = np.full(B + 1, -np.inf)
            cand[c:] = best[: B + 1 - c] + s[i, lvl]
            better = cand > new
            new = np.where(better, cand, new)
            pick = np.where(better, lvl, pick)
        best, choice[i] = new, pick
    levels = np.empty(N, dtype=np.int64)
    b = B
    for i in range(N - 1, -1, -1):
        lvl = int(choice[i, b])
        levels[i] = lvl
        b -= int(units[lvl])
    return levels


def greedy_mckp(scores: Any, costs: Any, budget: int) -> np.ndarray:
    """Greedy allocation: cheapest level everywhere, then the best-ratio upgrades that fit.

    An upgrade moves one item from its current level to any costlier level; its ratio is the
    score gain over the extra cost (upgrades with non-positive gain are never taken). Same
    arguments and return value as :func:`solve_mckp`; not optimal in general.
    """
    s, costs, budget = _check(scores, costs, budget)
    N, L = s.shape
    cheapest = int(np.argmin(costs))
    # among the cheapest levels, start at the best-scoring one
    ties = np.flatnonzero(costs == costs[cheapest])
    levels = ties[np.argmax(s[:, ties], axis=1)].astype(np.int64)
    spent = int(costs[levels].sum())
    while True:
        extra = costs[None, :] - costs[levels][:, None]  # (N, L)
        gain = s - s[np.arange(N), levels][:, None]
        ok = (extra > 0) & (gain > 0) & (spent + extra <= budget)
        if not ok.any():
            return levels
        ratio = np.where(ok, gain / np.where(extra > 0, extra, 1), -np.inf)
        i, lvl = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        spent += int(extra[i, lvl])
        levels[i] = lvl


def allocation_value(scores: Any, levels: Any) -> float:
    """``sum_i scores[i, levels[i]]``."""
    s = np.asarray(scores, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.int64)
    return float(s[np.arange(s.shape[0]), lv].sum())
