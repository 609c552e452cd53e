"""Population dynamics of the fair-allocation problem: individuals in subgroups, arriving
cohorts, several resource types with per-round budgets and cooldowns, and the rule of at most
one resource per person per round (spec §A.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedKFold

from scarce.core.random import SeedLike, as_generator
from scarce.feedback.kernels import DelayKernel

#: "never received" marker in the last-allocation table
NEVER = np.iinfo(np.int64).min // 2


@dataclass
class Resources:
    """Resource types.

    Attributes
    ----------
    budgets: ``(R,)`` ints >= 0, units of each resource per round.
    cooldowns: ``(R,)`` ints >= 0; after receiving ``r`` at round ``t`` a person cannot receive
        ``r`` again in rounds ``t+1 .. t+c_r``.
    kernels: ``R`` :class:`~scarce.feedback.DelayKernel`, how each resource's effect is released.
    names: ``R`` labels.
    """

    budgets: np.ndarray
    cooldowns: np.ndarray
    kernels: list[DelayKernel]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.budgets = np.asarray(self.budgets, dtype=np.int64).reshape(-1)
        R = self.budgets.shape[0]
        if R < 1 or np.any(self.budgets < 0):
            raise ValueError(f"budgets must be a non-empty array of ints >= 0; got {self.budgets}")
        self.cooldowns = np.asarray(self.cooldowns, dtype=np.int64).reshape(-1)
        if self.cooldowns.shape != (R,) or np.any(self.cooldowns < 0):
            raise ValueError(f"cooldowns must be ({R},) ints >= 0; got {self.cooldowns}")
        self.kernels = list(self.kernels)
        if len(self.kernels) != R or not all(isinstance(k, DelayKernel) for k in self.kernels):
            raise ValueError(f"kernels must be {R} DelayKernel objects (one per resource)")
        self.names = tuple(self.names) if self.names else tuple(f"r{r}" for r in range(R))
        if len(self.names) != R:
            raise ValueError(f"names must have {R} entries; got {len(self.names)}")

    @property
    def n_resources(self) -> int:
        return int(self.budgets.shape[0])

    @property
    def order(self) -> np.ndarray:
        """Resources in decreasing budget (the base level serves them in this order)."""
        return np.argsort(-self.budgets, kind="stable")

    @property
    def max_support(self) -> int:
        return max(k.support for k in self.kernels)


@dataclass
class Population:
    """Individuals and their cohorts.

    Attributes
    ----------
    X: ``(N, d)`` features.
    groups: ``(N,)`` ints in ``[0, K)``, subgroup of each individual.
    group_names: ``K`` labels.
    cohorts: list of index arrays into ``0 .. N-1``; cohort ``h`` is active in rounds
        ``h L .. (h+1) L - 1`` (cycled when the horizon needs more cohorts than listed).
    """

    X: np.ndarray
    groups: np.ndarray
    group_names: tuple[str, ...]
    cohorts: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, dtype=np.float64)
        if self.X.ndim != 2:
            raise ValueError(f"X must be (N, d); got shape {self.X.shape}")
        N = self.X.shape[0]
        self.groups = np.asarray(self.groups, dtype=np.int64).reshape(-1)
        if self.groups.shape != (N,):
            raise ValueError(f"groups must have shape ({N},); got {self.groups.shape}")
        self.group_names = tuple(self.group_names)
        K = len(self.group_names)
        if N and (self.groups.min() < 0 or self.groups.max() >= K):
            raise ValueError(f"groups must lie in [0, {K}) (one name per group)")
        if not self.cohorts:
            self.cohorts = [np.arange(N)]
        self.cohorts = [np.sort(np.asarray(c, dtype=np.int64)) for c in self.cohorts]
        for h, c in enumerate(self.cohorts):
            if c.size == 0 or c.min() < 0 or c.max() >= N:
                raise ValueError(f"cohort {h} must be a non-empty array of indices in [0, {N})")

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    def cohort(self, h: int) -> np.ndarray:
        return self.cohorts[h % len(self.cohorts)]


def stratified_cohorts(
    groups: np.ndarray, n_cohorts: int, seed: SeedLike = None
) -> list[np.ndarray]:
    """``n_cohorts`` disjoint cohorts stratified by ``groups`` (scikit-learn's
    ``StratifiedKFold``, shuffled from ``seed``), as in the MetaCUB drafts."""
    rng = as_generator(seed)
    groups = np.asarray(groups)
    counts = np.bincount(groups)
    n_splits = int(min(n_cohorts, counts[counts > 0].min())) if n_cohorts > 1 else 1
    if n_splits < 2:
        return [np.arange(groups.shape[0])]
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=int(rng.integers(2**31)))
    return [test for _, test in skf.split(np.zeros(groups.shape[0]), groups)]


class AllocationState:
    """Who got what when: enforces budgets, cooldowns, cohorts and one resource per person
    per round.

    Parameters
    ----------
    n_individuals: ``N``.
    resources: the :class:`Resources`.
    """

    def __init__(self, n_individuals: int, resources: Resources) -> None:
        self.resources = resources
        self.last = np.full((n_individuals, resources.n_resources), NEVER, dtype=np.int64)

    def eligible(self, units: np.ndarray, t: int) -> np.ndarray:
        """``(n, R)`` bool: ``units`` are out of cooldown for each resource at round ``t``."""
        return (t - self.last[units]) > self.resources.cooldowns[None, :]

    def record(self, cohort: np.ndarray, units: np.ndarray, resources: np.ndarray, t: int) -> None:
        """Check an allocation of round ``t`` and record it.

        Raises
        ------
        ValueError
            naming the broken rule: a unit outside the cohort, a unit served twice, a budget
            exceeded (resource and overshoot), or a cooldown not yet over.
        """
        units = np.asarray(units, dtype=np.int64).reshape(-1)
        resources = np.asarray(resources, dtype=np.int64).reshape(-1)
        if units.shape != resources.shape:
            raise ValueError(
                f"units and resources must have the same shape; got {units.shape} "
                f"and {resources.shape}"
            )
        R = self.resources.n_resources
        if units.size == 0:
            return
        if resources.min() < 0 or resources.max() >= R:
            raise ValueError(f"resources must lie in [0, {R}); got {np.unique(resources)}")
        outside = ~np.isin(units, cohort)
        if outside.any():
            raise ValueError(f"round {t}: unit {units[outside][0]} is not in the current cohort")
        uniq, counts = np.unique(units, return_counts=True)
        if counts.max() > 1:
            raise ValueError(
                f"round {t}: unit {uniq[counts > 1][0]} got more than one resource in one round"
            )
        used = np.bincount(resources, minlength=R)
        over = used - self.resources.budgets
        if np.any(over > 0):
            r = int(np.argmax(over))
            raise ValueError(
                f"round {t}: resource {self.resources.names[r]!r} over budget by {over[r]} "
                f"({used[r]} allocated, budget {self.resources.budgets[r]})"
            )
        cool = (t - self.last[units, resources]) <= self.resources.cooldowns[resources]
        if cool.any():
            j = int(np.argmax(cool))
            raise ValueError(
                f"round {t}: unit {units[j]} is in cooldown for resource "
                f"{self.resources.names[resources[j]]!r} (last received at round "
                f"{self.last[units[j], resources[j]]})"
            )
        self.last[units, resources] = t


def group_sizes(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``(K,)`` members per group."""
    return np.bincount(np.asarray(groups, dtype=np.int64), minlength=n_groups)


#: how planned rates become per-round integer counts (see :func:`carry_counts`,
#: :func:`randomized_counts`, :func:`rates_to_counts`)
ROUNDINGS = ("carry", "randomized", "floor", "largest_remainder")


def check_rates(
    rates: np.ndarray,
    sizes: np.ndarray,
    budgets: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    clip_infeasible: bool = False,
) -> np.ndarray:
    """Validated ``(R, K)`` allocation rates (scaled down per resource with ``clip_infeasible``).

    Raises
    ------
    ValueError
        wrong shape, rates outside [0, 1], or a resource whose rates ask for more than its budget
        (the message names the resource and the overshoot), unless ``clip_infeasible``.
    """
    rates = np.asarray(rates, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    R, K = budgets.shape[0], sizes.shape[0]
    if rates.shape != (R, K):
        raise ValueError(
            f"rates must have shape ({R}, {K}) (resources x groups); got {rates.shape}"
        )
    if np.any(~np.isfinite(rates)) or np.any(rates < 0) or np.any(rates > 1):
        raise ValueError("rates must lie in [0, 1]")
    names = list(names) if names is not None else [f"r{r}" for r in range(R)]
    demand = rates @ sizes
    for r in range(R):
        if demand[r] > budgets[r] + 1e-9:
            if not clip_infeasible:
                raise ValueError(
                    f"allocation rates are infeasible for resource {names[r]!r}: they ask for "
                    f"{demand[r]:.6g} units but the budget is {budgets[r]} (overshoot "
                    f"{demand[r] - budgets[r]:.6g}); pass clip_infeasible=True to scale them down"
                )
            rates = rates.copy()
            rates[r] *= budgets[r] / demand[r]
    return rates


def randomized_counts(want: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dependent randomised rounding of ``want`` ``(..., R, K)`` along the groups: each count is
    ``floor(want)`` or one more, with ``P(one more) = want - floor(want)`` (so expected counts
    equal ``want``), and per resource the total is ``floor`` or ``ceil`` of ``sum_k want`` (so
    it never exceeds an integer budget that ``sum_k want`` respects). Systematic sampling: one
    uniform offset per resource."""
    want = np.asarray(want, dtype=np.float64)
    base = np.floor(want + 1e-9)
    frac = np.clip(want - base, 0.0, 1.0)
    F = np.cumsum(frac, axis=-1)
    u = rng.random((*want.shape[:-1], 1))
    hits = np.floor(F - u + 1e-12)
    prev = np.concatenate(
        [np.full_like(hits[..., :1], np.floor(-u[..., :1] + 1e-12)), hits[..., :-1]], axis=-1
    )
    return (base + (hits - prev)).astype(np.int64)


def carry_counts(want: np.ndarray, carry: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Rounding with carry over rounds: ``(..., R, K)`` counts for ``want + carry`` (``carry``:
    what earlier rounds owe each group, in (-1, 1]): ``floor`` of each, then the units the
    total allows (``min(cap, floor(sum))``) to the largest fractional parts. Carrying
    ``want + carry - given`` to the next round keeps every group's cumulative count within one
    unit of its cumulative ``want``, so realised allocation rates match the planned ones over a
    run, not only in expectation; per round the total never exceeds the capacity ``caps``
    ``(R,)``."""
    d = np.maximum(np.asarray(want, float) + np.asarray(carry, float), 0.0)
    d = np.broadcast_to(d, np.broadcast_shapes(d.shape, np.shape(want)))
    base = np.floor(d + 1e-9)
    cap = np.asarray(caps, float)[..., :, None]
    total = np.minimum(cap, np.floor(d.sum(-1, keepdims=True) + 1e-9))
    frac = d - base
    counts = base.copy()
    extra = np.maximum(total - base.sum(-1, keepdims=True), 0.0)
    counts += _ranked(-frac, np.ones(frac.shape, bool)) < extra  # largest remainders first
    # carries can push the floors past the capacity: take back from the smallest remainders
    while True:
        over = counts.sum(-1, keepdims=True) - total
        if not (over > 0).any():
            return counts.astype(np.int64)
        counts -= _ranked(frac, counts > 0) < np.minimum(over, (counts > 0).sum(-1, keepdims=True))


def _ranked(key: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Rank of each entry along the last axis by ascending ``key`` among ``allowed`` entries
    (the others rank last)."""
    k = np.where(allowed, key, np.inf)
    order = np.argsort(k, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k.shape[-1]), axis=-1)
    return np.where(allowed, rank, k.shape[-1])


def rates_to_counts(
    rates: np.ndarray,
    sizes: np.ndarray,
    budgets: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    clip_infeasible: bool = False,
    fill_leftover: bool = False,
) -> np.ndarray:
    """Per-(group, resource) counts ``n_{k,r} = floor(rate_r^k |I_k|)`` (spec §A.3 step 1).

    Parameters
    ----------
    rates: ``(R, K)`` allocation rates in [0, 1].
    sizes: ``(K,)`` group sizes in the current cohort.
    budgets: ``(R,)`` per-round budgets.
    names: resource labels for error messages.
    clip_infeasible: scale an over-budget resource's rates down proportionally instead of
        raising.
    fill_leftover: give the units lost to the floor to the groups with the largest remainders
        (one each, never beyond a group's size); the paper leaves them unused (default).

    Returns
    -------
    ``(K, R)`` int counts with ``sum_k n_{k,r} <= b_r``.

    Raises
    ------
    ValueError
        rates outside [0, 1], or a resource whose rates ask for more than its budget (the
        message names the resource and the overshoot), unless ``clip_infeasible``.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    rates = check_rates(rates, sizes, budgets, names=names, clip_infeasible=clip_infeasible)
    want = rates * sizes[None, :]
    counts = np.floor(want + 1e-9).astype(np.int64)
    if fill_leftover:
        counts = largest_remainder(want, counts, budgets, sizes)
    return counts.T


def largest_remainder(
    want: np.ndarray, counts: np.ndarray, budgets: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """``(R, K)`` counts topped up, one unit per group with a positive remainder
    ``want - counts``, largest remainder first, until each resource's budget is used."""
    counts = counts.copy()
    for r in range(counts.shape[0]):
        left = int(budgets[r] - counts[r].sum())
        if left <= 0:
            continue
        room = (counts[r] < sizes) & (want[r] - counts[r] > 1e-9)
        order = np.argsort(-(want[r] - counts[r]), kind="stable")
        order = order[room[order]][:left]
        counts[r, order] += 1
    return counts
