"""Progressive (counterfactual) evaluation of a *learning* policy on logged data.

A learning target is not one distribution but a sequence: at logged row ``i`` it is the
policy after learning what it would have learned by the time row ``i`` was decided. Rows are
visited in decision order; before row ``i`` the policy learns every row whose outcome was
known before ``i`` was decided (``learned_at[j] < decided_at[i]``, in learning order), then
gives its distribution ``pi_i``. With a delay of zero this is progressive validation
(Blum, Kalai, Langford 1999; Vowpal Wabbit's progressive loss); with the logged join times it
is what a policy deployed beside the logging one would have known.

The stacked ``pi`` ``(n, K)`` then goes to the ordinary estimators
(:func:`scarce.ope.evaluate`): each ``pi_i`` depends only on rows whose outcomes were known
before row ``i``, so the IPS and DR terms of row ``i`` are unbiased for the value of the policy
*as it was* at row ``i``, and their average estimates the mean value of the sequence; the
interval is the martingale central-limit one the estimators compute. Cross-fitted reward
models of DR may use later rows (a row's prediction still never saw that row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from scarce.ope.data import LoggedData
from scarce.ope.estimators import evaluate


def schedule(
    decided_at: np.ndarray, learned_at: np.ndarray, learn_rank: np.ndarray | None = None
) -> list[tuple[str, int]]:
    """The order of work of a progressive evaluation: ``("learn", j)`` and ``("score", i)``
    steps. Rows are scored in decision order (ties: row order); before scoring row ``i``,
    every row ``j`` with ``learned_at[j] < decided_at[i]`` not yet learned is learned, in
    order of ``learned_at`` (ties: ``learn_rank``, then row order). ``learned_at[j] = inf``:
    never learned.

    Parameters
    ----------
    decided_at:
        ``(n,)`` decision times (or any increasing clock: the logging model's version).
    learned_at:
        ``(n,)`` times the outcomes became known, on the same clock.
    learn_rank:
        optional ``(n,)`` tie-break of the learning order (a join sequence number).
    """
    decided_at = np.asarray(decided_at, dtype=np.float64)
    learned_at = np.asarray(learned_at, dtype=np.float64)
    if decided_at.shape != learned_at.shape or decided_at.ndim != 1:
        raise ValueError(
            f"decided_at and learned_at must be (n,) of one length; got {decided_at.shape} "
            f"and {learned_at.shape}"
        )
    if np.isnan(decided_at).any() or np.isnan(learned_at).any():
        raise ValueError("decided_at and learned_at must not be NaN")
    scored = np.argsort(decided_at, kind="stable")
    if learn_rank is None:
        learned = np.argsort(learned_at, kind="stable")
    else:
        learned = np.lexsort((np.arange(learned_at.size), np.asarray(learn_rank), learned_at))
    steps: list[tuple[str, int]] = []
    j = 0
    for i in scored:
        while j < learned.size and learned_at[learned[j]] < decided_at[i]:
            steps.append(("learn", int(learned[j])))
            j += 1
        steps.append(("score", int(i)))
    return steps


def progressive_distributions(
    n_actions: int,
    decided_at: np.ndarray,
    learned_at: np.ndarray,
    distribution: Callable[[int], np.ndarray],
    learn: Callable[[int], None],
    learn_rank: np.ndarray | None = None,
) -> np.ndarray:
    """``(n, K)`` the target's distribution at each row, learning as :func:`schedule` says.

    Parameters
    ----------
    n_actions:
        ``K``.
    decided_at, learned_at:
        see :func:`schedule`.
    distribution:
        ``distribution(i)`` -> ``(K,)`` the target's probabilities for row ``i`` now.
    learn:
        ``learn(j)`` teaches the target row ``j``'s outcome.
    learn_rank:
        see :func:`schedule`.
    """
    n = int(np.asarray(decided_at).shape[0])
    pi = np.empty((n, n_actions))
    for kind, i in schedule(decided_at, learned_at, learn_rank):
        if kind == "learn":
            learn(i)
        else:
            p = np.asarray(distribution(i), dtype=np.float64)
            if p.shape != (n_actions,):
                raise ValueError(f"distribution({i}) must have shape ({n_actions},); got {p.shape}")
            pi[i] = p
    return pi


def running_estimates(
    data: LoggedData,
    pi: np.ndarray,
    estimators: Sequence[str],
    *,
    n_points: int = 20,
    min_rows: int = 10,
    **kwargs: Any,
) -> pd.DataFrame:
    """The estimates on growing prefixes of the logs (rows in their order): a tidy table
    ``n_events, estimator, value, ci_low, ci_high`` at ``n_points`` prefix lengths from
    ``min_rows`` to ``n`` (each prefix evaluated by :func:`scarce.ope.evaluate` with
    ``kwargs``)."""
    n = data.n
    if n < min_rows:
        sizes = np.array([n])
    else:
        sizes = np.unique(np.linspace(min_rows, n, num=max(2, n_points)).astype(int))
    rows = []
    for size in sizes:
        sub = data if size == n else data.subset(np.arange(size))
        est = evaluate(sub, pi[:size], list(estimators), **kwargs)
        for name, e in est.items():
            rows.append(
                {
                    "n_events": int(size),
                    "estimator": name,
                    "value": e.value,
                    "ci_low": e.ci[0],
                    "ci_high": e.ci[1],
                }
            )
    return pd.DataFrame(rows, columns=["n_events", "estimator", "value", "ci_low", "ci_high"])


__all__ = ["progressive_distributions", "running_estimates", "schedule"]
