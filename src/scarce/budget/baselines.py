"""Deferral baselines (spec A.7) and the loop that runs a learner on a stream.

Every rule here obeys the same budget rule as the learners: defer only while at least
``cost_bound`` budget is left, so none of them can overspend. The non-learning baselines are
evaluated on a whole :class:`~scarce.budget.envs.DeferralStream` at once (vectorised), which
makes BestReject's threshold sweep cheap.

* ``ModelOnly``: never defer.
* ``HumanOnly``: always defer (while the budget lasts).
* ``ArbitraryHuman``: defer on arbitrary cases: ``mode="random"`` (default) defers each case
  with probability ``min(1, B / sum_t E c_t)``; ``mode="first"`` defers on the first cases.
* ``BestReject``: knows the true expected model reward ``mu_M(x)`` (on real data: the model's
  confidence, ``stream.model_score``), defers iff it is below ``tau``; ``tau`` is swept over
  a grid (step 0.01) and the best (by expected reward on the stream, a generous in-sample
  choice) kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scarce.budget.deferral import HUMAN, MODEL
from scarce.budget.envs import DeferralStream
from scarce.core.policy import Policy
from scarce.core.random import SeedLike, as_generator


@dataclass(frozen=True)
class DeferralOutcome:
    """What a rule did on a stream: ``defer`` ``(T,)`` bool and the totals."""

    defer: np.ndarray
    reward: float
    expected_reward: float
    spent: float

    @classmethod
    def of(cls, stream: DeferralStream, defer: np.ndarray) -> DeferralOutcome:
        a = defer.astype(np.int64)
        rows = np.arange(stream.horizon)
        return cls(
            defer=defer,
            reward=float(stream.rewards[rows, a].sum()),
            expected_reward=float(stream.mean_rewards[rows, a].sum()),
            spent=float(stream.costs[defer].sum()),
        )


def apply_budget(
    intent: np.ndarray, costs: np.ndarray, budget: float, cost_bound: float
) -> np.ndarray:
    """Deferrals actually made when a rule wants to defer on ``intent`` ``(T,)`` and defers
    only while at least ``cost_bound`` of ``budget`` is left.

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


def model_only(stream: DeferralStream) -> DeferralOutcome:
    return DeferralOutcome.of(stream, np.zeros(stream.horizon, dtype=bool))


def human_only(stream: DeferralStream, budget: float, cost_bound: float) -> DeferralOutcome:
    intent = np.ones(stream.horizon, dtype=bool)
    return DeferralOutcome.of(stream, apply_budget(intent, stream.costs, budget, cost_bound))


def arbitrary_human(
    stream: DeferralStream, budget: float, cost_bound: float, rng: SeedLike, mode: str = "random"
) -> DeferralOutcome:
    """ArbitraryHuman; ``mode="random"`` uses the expected total cost ``sum_t E c_t`` (known to
    the baseline) to set its deferral probability."""
    if mode == "first":
        intent = np.ones(stream.horizon, dtype=bool)
    elif mode == "random":
        total = float(stream.mean_costs.sum())
        p = 1.0 if total <= 0 else min(1.0, budget / total)
        intent = as_generator(rng).random(stream.horizon) < p
    else:
        raise ValueError(f"mode must be 'random' or 'first'; got {mode!r}")
    return DeferralOutcome.of(stream, apply_budget(intent, stream.costs, budget, cost_bound))


def best_reject(
    stream: DeferralStream, budget: float, cost_bound: float, taus: np.ndarray | None = None
) -> tuple[DeferralOutcome, float]:
    """BestReject: the best threshold ``tau`` on the true model mean; returns the outcome and
    ``tau``. Default grid: ``0, 0.01, ..., 1`` over the model mean's range."""
    mu_m = stream.mean_rewards[:, MODEL] if stream.model_score is None else stream.model_score
    if taus is None:
        lo, hi = float(mu_m.min()), float(mu_m.max())
        taus = np.round(np.arange(np.floor(lo * 100) / 100, hi + 0.02, 0.01), 10)
    best: tuple[DeferralOutcome, float] | None = None
    for tau in taus:
        out = DeferralOutcome.of(stream, apply_budget(mu_m < tau, stream.costs, budget, cost_bound))
        if best is None or out.expected_reward > best[0].expected_reward:
            best = (out, float(tau))
    assert best is not None
    return best


def run_learner(policy: Policy, stream: DeferralStream, batch_size: int = 1) -> DeferralOutcome:
    """Run a deferral learner on ``stream``: decide on ``batch_size`` cases, pay and observe,
    update with ``costs`` and ``model_rewards`` (used under full feedback), repeat."""
    T = stream.horizon
    defer = np.zeros(T, dtype=bool)
    for start in range(0, T, batch_size):
        sl = slice(start, min(start + batch_size, T))
        X = stream.X[sl]
        acts = policy.decide(X).actions
        rows = np.arange(X.shape[0])
        r = stream.rewards[sl][rows, acts]
        c = np.where(acts == HUMAN, stream.costs[sl], 0.0)
        policy.update(X, acts, r, costs=c, model_rewards=stream.rewards[sl][:, MODEL])
        defer[sl] = acts == HUMAN
    return DeferralOutcome.of(stream, defer)
