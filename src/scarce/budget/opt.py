"""Benchmarks the learners are measured against: the optimal static policy for known means
and the empirical optimum on a finite data sequence.

* :func:`fractional_knapsack`: the exact LP ``max sum z_i g_i  s.t.  sum z_i c_i <= C,
  0 <= z <= 1`` by greedy ratio order (one resource); at most one fractional ``z_i``.
* :func:`static_opt_deferral`: the optimal static deferral policy (spec A.2) over an
  equally weighted sample of contexts, a fractional knapsack on the gain
  ``mu_H - mu_M`` and the cost ``mu_c``.
* :func:`static_opt_lp`: the same for ``K`` actions and several resources, an LP solved by
  SciPy's HiGHS (``scipy.optimize.linprog``).
* :func:`empirical_opt_deferral`: ``OPT_emp`` on a realised sequence, either the LP
  relaxation (greedy, ``exact=False``) or the exact 0/1 knapsack (``scipy.optimize.milp``,
  ``exact=True``).
* :func:`oracle_z`: ``Z = OPT / B`` from known means (the ``z_method="oracle"`` ablation).
* :func:`best_threshold`: BestReject's threshold chosen in hindsight on a realised sequence
  (spec A.7: the best of a grid of step 0.01), with :func:`apply_budget`, the deferrals a
  rule makes under the hard budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix

from scarce.core.validation import check_scalar


@dataclass(frozen=True)
class KnapsackSolution:
    """Solution of a (fractional or 0/1) knapsack.

    Attributes
    ----------
    z:
        ``(n,)`` chosen fraction of each item in [0, 1] (0/1 for the exact problem).
    value:
        objective ``sum z_i g_i``.
    used:
        capacity used, ``sum z_i c_i``.
    price:
        the dual price ``lambda*`` of the capacity (greedy solutions; NaN for the MILP).
    """

    z: np.ndarray
    value: float
    used: float
    price: float


def _check_items(gain: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(gain, dtype=np.float64).reshape(-1)
    c = np.asarray(cost, dtype=np.float64).reshape(-1)
    if g.shape != c.shape:
        raise ValueError(
            f"gain and cost must have the same shape (n,); got {g.shape} and {c.shape}"
        )
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(c))):
        raise ValueError("gain and cost must be finite")
    if np.any(c < 0):
        raise ValueError("cost must be >= 0")
    return g, c


def fractional_knapsack(gain: np.ndarray, cost: np.ndarray, capacity: float) -> KnapsackSolution:
    """Exact solution of ``max sum z g  s.t.  sum z c <= capacity, z in [0, 1]^n``.

    Parameters
    ----------
    gain:
        ``(n,)`` value of taking each item (may be negative: never taken).
    cost:
        ``(n,)`` non-negative consumption of each item.
    capacity:
        total capacity, >= 0 (``inf`` allowed).

    Items with positive gain are taken in decreasing ``gain / cost`` order (zero-cost ones
    first) until the capacity is used; the last one may be fractional. ``price`` is the ratio
    of the marginal item (0 when every positive-gain item fits).
    """
    g, c = _check_items(gain, cost)
    cap = float(capacity)
    if np.isnan(cap) or cap < 0:
        raise ValueError(f"capacity must be >= 0; got {capacity!r}")
    z = np.zeros_like(g)
    pos = np.flatnonzero(g > 0)
    if pos.size == 0:
        return KnapsackSolution(z, 0.0, 0.0, 0.0)
    with np.errstate(divide="ignore"):
        ratio = np.where(c[pos] > 0, g[pos] / c[pos], np.inf)
    order = pos[np.argsort(-ratio, kind="stable")]
    cum = np.cumsum(c[order])
    full = cum <= cap
    z[order[full]] = 1.0
    price = 0.0
    if not full.all():
        k = int(np.argmin(full))  # first item that does not fit completely
        left = cap - (cum[k - 1] if k > 0 else 0.0)
        item = order[k]
        z[item] = left / c[item]
        price = float(g[item] / c[item])
    return KnapsackSolution(z, float(z @ g), float(z @ c), price)


def static_opt_deferral(
    mu_human: np.ndarray, mu_model: np.ndarray, mu_cost: np.ndarray, budget_rate: float
) -> KnapsackSolution:
    """The optimal static deferral policy on an equally weighted sample of ``n`` contexts.

    Parameters
    ----------
    mu_human, mu_model, mu_cost:
        ``(n,)`` expected human reward, model reward and deferral cost of each context.
    budget_rate:
        ``B / T``, the budget per round (``inf`` for no budget).

    Returns the solution of ``max mean(pi (mu_H - mu_M))  s.t.  mean(pi mu_c) <= B / T``;
    ``value`` is the expected reward **per round**, ``mean(mu_M) + mean(pi gain)``, so
    ``OPT = T * value``; ``z`` is ``pi`` on the sample and ``price`` is ``lambda*``.
    """
    mh = np.asarray(mu_human, dtype=np.float64).reshape(-1)
    mm = np.asarray(mu_model, dtype=np.float64).reshape(-1)
    rate = check_scalar(budget_rate, "budget_rate", low=0.0) if np.isfinite(budget_rate) else np.inf
    if mh.shape != mm.shape:
        raise ValueError(f"mu_human and mu_model must both be (n,); got {mh.shape} and {mm.shape}")
    n = mh.shape[0]
    sol = fractional_knapsack(mh - mm, mu_cost, rate * n)
    value = (mm.sum() + sol.value) / n
    return KnapsackSolution(sol.z, float(value), sol.used / n, sol.price)


def static_opt_lp(
    rewards: np.ndarray, costs: np.ndarray, budget_rate: np.ndarray
) -> tuple[float, np.ndarray]:
    """Optimal static randomised policy for ``K`` actions and ``m`` resources (an LP, HiGHS).

    Parameters
    ----------
    rewards:
        ``(n, K)`` expected reward of each action on each of ``n`` equally weighted contexts.
    costs:
        ``(n, K, m)`` expected consumption (non-negative).
    budget_rate:
        ``(m,)`` budget per round ``B_j / T`` (a scalar is broadcast).

    Returns ``(value per round, pi (n, K))`` for
    ``max mean_i sum_a pi_ia r_ia  s.t.  mean_i sum_a pi_ia c_iaj <= B_j/T,
    sum_a pi_ia = 1, pi >= 0``. Feasible whenever some action has zero cost on every
    context (a no-op); otherwise an infeasible budget raises ValueError.
    """
    R = np.asarray(rewards, dtype=np.float64)
    if R.ndim != 2:
        raise ValueError(f"rewards must be (n, K); got shape {R.shape}")
    n, K = R.shape
    C = np.asarray(costs, dtype=np.float64)
    if C.ndim == 2:
        C = C[:, :, None]
    if C.shape[:2] != (n, K):
        raise ValueError(f"costs must be (n, K, m) = ({n}, {K}, m); got {C.shape}")
    m = C.shape[2]
    rate = np.broadcast_to(np.asarray(budget_rate, dtype=np.float64), (m,))
    if np.any(rate < 0):
        raise ValueError("budget_rate must be >= 0")
    if np.any(C < 0):
        raise ValueError("costs must be >= 0")
    rows = np.repeat(np.arange(n), K)
    A_eq = coo_matrix((np.ones(n * K), (rows, np.arange(n * K))), shape=(n, n * K))
    finite = np.isfinite(rate)
    A_ub = C.reshape(n * K, m).T[finite] / n
    res = linprog(
        -R.reshape(-1) / n,
        A_ub=A_ub if finite.any() else None,
        b_ub=rate[finite] if finite.any() else None,
        A_eq=A_eq,
        b_eq=np.ones(n),
        bounds=(0.0, 1.0),
        method="highs",
    )
    if res.status != 0:
        raise ValueError(f"static LP failed ({res.message}); is there a zero-cost action?")
    return float(-res.fun), res.x.reshape(n, K)


def empirical_opt_deferral(
    r_human: np.ndarray,
    r_model: np.ndarray,
    costs: np.ndarray,
    budget: float,
    *,
    exact: bool = False,
) -> KnapsackSolution:
    """``OPT_emp`` on a realised sequence (spec A.2): the best hindsight deferral set.

    Parameters
    ----------
    r_human, r_model:
        ``(T,)`` realised rewards of deferring and of using the model at each step.
    costs:
        ``(T,)`` realised deferral costs (>= 0).
    budget:
        total budget ``B``.
    exact:
        False: the LP relaxation ``z in [0, 1]^T`` by greedy ratio order (at most one
        fractional ``z_t``; an upper bound on the 0/1 optimum). True: the exact 0/1 knapsack
        by ``scipy.optimize.milp`` (HiGHS branch and bound).

    ``value`` is the total reward ``sum z r_H + (1 - z) r_M``.
    """
    rh = np.asarray(r_human, dtype=np.float64).reshape(-1)
    rm = np.asarray(r_model, dtype=np.float64).reshape(-1)
    if rh.shape != rm.shape:
        raise ValueError(f"r_human and r_model must both be (T,); got {rh.shape} and {rm.shape}")
    g, c = _check_items(rh - rm, costs)
    base = float(rm.sum())
    if not exact:
        sol = fractional_knapsack(g, c, budget)
        return KnapsackSolution(sol.z, base + sol.value, sol.used, sol.price)
    cap = float(budget)
    if np.isnan(cap) or cap < 0:
        raise ValueError(f"budget must be >= 0; got {budget!r}")
    z = np.zeros_like(g)
    # only positive-gain items can be in an optimal set; zero-cost ones always are
    cand = np.flatnonzero(g > 0)
    free = cand[c[cand] == 0]
    z[free] = 1.0
    cand = cand[c[cand] > 0]
    if cand.size and np.isfinite(cap):
        res = milp(
            -g[cand],
            constraints=LinearConstraint(c[cand][None, :], -np.inf, cap),
            integrality=np.ones(cand.size),
            bounds=Bounds(0.0, 1.0),
            options={"mip_rel_gap": 0.0},
        )
        if res.status != 0:
            raise ValueError(f"exact knapsack failed: {res.message}")
        z[cand] = np.round(res.x)
    elif cand.size:
        z[cand] = 1.0
    return KnapsackSolution(z, base + float(z @ g), float(z @ c), float("nan"))


def oracle_z(opt_value: float, budget: float) -> float:
    """``Z = OPT / B`` (A&D's ideal trade-off constant), from a known ``OPT`` and budget ``B``."""
    b = check_scalar(budget, "budget", low=0.0, low_inclusive=False)
    return check_scalar(opt_value, "opt_value", low=0.0) / b


def apply_budget(
    intent: np.ndarray, costs: np.ndarray, budget: float, cost_bound: float
) -> np.ndarray:
    """Deferrals actually made when a rule wants to defer on ``intent`` ``(T,)`` and may defer
    only while ``cost_bound`` fits in what is left of ``budget`` (the rule of
    :class:`~scarce.core.ledger.Ledger`); ``costs`` ``(T,)`` are the realised deferral costs.

    Spending only changes when a deferral is made, so the rule stops for good at the first
    intended deferral whose preceding spending exceeds ``budget - cost_bound``.
    """
    intent = np.asarray(intent, dtype=bool)
    spent_before = np.cumsum(np.where(intent, costs, 0.0)) - np.where(intent, costs, 0.0)
    blocked = intent & (spent_before > budget - cost_bound + 1e-9)
    if not blocked.any():
        return intent.copy()
    stop = int(np.argmax(blocked))
    out = intent.copy()
    out[stop:] = False
    return out


def best_threshold(
    scores: np.ndarray,
    mean_rewards: np.ndarray,
    costs: np.ndarray,
    budget: float,
    cost_bound: float,
    thresholds: np.ndarray | None = None,
) -> tuple[float, float]:
    """BestReject's threshold chosen in hindsight on a realised sequence of ``T`` cases.

    Parameters
    ----------
    scores:
        ``(T,)`` what the rule thresholds (the model's expected reward or confidence).
    mean_rewards:
        ``(T, 2)`` expected rewards of ``[model, human]`` on each case (the objective).
    costs:
        ``(T,)`` realised cost of deferring each case.
    budget, cost_bound:
        ``B`` and the largest cost of one deferral (the rule defers while it fits).
    thresholds:
        the grid; default ``0, 0.01, ...`` over the range of ``scores`` (spec A.7).

    Returns ``(tau, expected reward)`` of the best rule "defer iff ``score < tau``" (the first
    of equal ones).
    """
    s = np.asarray(scores, dtype=np.float64)
    mu = np.asarray(mean_rewards, dtype=np.float64)
    if thresholds is None:
        lo, hi = float(s.min()), float(s.max())
        thresholds = np.round(np.arange(np.floor(lo * 100) / 100, hi + 0.02, 0.01), 10)
    rows = np.arange(s.shape[0])
    best = (float("nan"), -np.inf)
    for tau in thresholds:
        defer = apply_budget(s < tau, costs, budget, cost_bound)
        value = float(mu[rows, defer.astype(np.int64)].sum())
        if value > best[1]:
            best = (float(tau), value)
    return best
