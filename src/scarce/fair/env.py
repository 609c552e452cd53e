"""The allocation environment and the simulation loop (spec §A.5).

:class:`FairAllocationEnv` holds a population, resources (budgets, cooldowns, delay kernels)
and the true expected effect ``tau*(x_i, r)`` of giving resource ``r`` to individual ``i``.
:func:`simulate` plays an :class:`Allocator` against it: each round the current cohort's
eligible members are offered, the allocator returns ``(units, resources)``, the allocation is
checked (budgets, cooldowns, cohort, one resource per person per round: a violation raises),
each allocation releases ``K^r(tau) * tau*(x_i, r)`` over the following rounds, and the
allocator observes the per-individual increments ``y_i(t)`` (plus Gaussian noise) of every
individual with effects still being released.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scarce.core.random import SeedLike, spawn
from scarce.core.validation import check_positive_int, check_scalar
from scarce.fair.population import AllocationState, Population, Resources


@dataclass
class AllocationProblem:
    """What an allocator may know: everything but the true effects.

    Attributes
    ----------
    X: ``(N, d)`` features; groups: ``(N,)``; group_names: ``K`` labels;
    resources: budgets, cooldowns, kernels; cohort_length: ``L`` rounds per cohort;
    cohorts: the cohorts' member indices;
    observational: ``(treatment, outcome)`` of the individuals' real rows, each ``(N,)``
    (treatment -1 for none, else a resource; outcome in outcome-SD units), or None: the
    observational data an outcome model may be pretrained on.
    """

    X: np.ndarray
    groups: np.ndarray
    group_names: tuple[str, ...]
    resources: Resources
    cohort_length: int
    cohorts: list[np.ndarray] | None = None
    observational: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    @property
    def n_resources(self) -> int:
        return self.resources.n_resources


class FairAllocationEnv:
    """A population with known true effects.

    Parameters
    ----------
    population: individuals, groups and cohorts.
    resources: budgets, cooldowns and delay kernels.
    effects: ``(N, R)`` true expected effect of each resource on each individual.
    cohort_length: ``L``, rounds each cohort stays.
    noise_sd: standard deviation of the Gaussian noise on each observed increment, >= 0.
    name: label.
    observational: optional ``(treatment, outcome)`` of the real rows behind the individuals
        (see :class:`AllocationProblem`).
    """

    def __init__(
        self,
        population: Population,
        resources: Resources,
        effects: np.ndarray,
        *,
        cohort_length: int = 8,
        noise_sd: float = 1.0,
        name: str = "fair-env",
        observational: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.population = population
        self.resources = resources
        self.effects = np.asarray(effects, dtype=np.float64)
        N, R = population.X.shape[0], resources.n_resources
        if self.effects.shape != (N, R):
            raise ValueError(f"effects must have shape ({N}, {R}); got {self.effects.shape}")
        self.cohort_length = check_positive_int(cohort_length, "cohort_length")
        self.noise_sd = check_scalar(noise_sd, "noise_sd", low=0.0)
        self.name = name
        if observational is not None:
            t, y = (np.asarray(a).reshape(-1) for a in observational)
            if t.shape != (N,) or y.shape != (N,):
                raise ValueError(f"observational treatment and outcome must have shape ({N},)")
            observational = (t.astype(np.int64), y.astype(np.float64))
        self.observational = observational

    @property
    def problem(self) -> AllocationProblem:
        p = self.population
        return AllocationProblem(
            p.X,
            p.groups,
            p.group_names,
            self.resources,
            self.cohort_length,
            p.cohorts,
            self.observational,
        )

    def with_kernels(self, kernels: list, name: str) -> FairAllocationEnv:
        """The same population and effects with other delay kernels."""
        r = self.resources
        res = Resources(r.budgets, r.cooldowns, kernels, r.names)
        return FairAllocationEnv(
            self.population,
            res,
            self.effects,
            cohort_length=self.cohort_length,
            noise_sd=self.noise_sd,
            name=name,
            observational=self.observational,
        )


class Allocator:
    """Base class of allocation policies.

    Subclasses implement :meth:`allocate`; learners also :meth:`observe`. :meth:`reset` is called
    once before a run with the problem and the run's generator.
    """

    name = "allocator"

    def reset(self, problem: AllocationProblem, rng: np.random.Generator) -> None:
        self.problem = problem
        self.rng = rng

    def start_cohort(self, h: int, cohort: np.ndarray, t: int) -> None:
        """Called at the first round ``t`` of cohort ``h`` (members ``cohort``)."""

    def allocate(
        self, t: int, cohort: np.ndarray, eligible: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(units, resources)`` to allocate at round ``t``.

        ``cohort``: ``(n,)`` member indices; ``eligible``: ``(n, R)`` out of cooldown."""
        raise NotImplementedError

    def observe(self, t: int, units: np.ndarray, increments: np.ndarray) -> None:
        """Outcome increments ``y_i(t)`` of ``units`` at round ``t``."""


@dataclass
class AllocationTrace:
    """Record of one run.

    Attributes
    ----------
    outcome: ``(T,)`` observed aggregate outcome ``y(t)`` (noisy).
    expected_outcome: ``(T,)`` its noise-free part released at ``t``.
    effect: ``(T,)`` full expected effect of the allocations made at ``t`` (however late it is
        released): the quantity compared with the oracle.
    unit, resource, round: ``(A,)`` every allocation.
    exposure: ``(K,)`` person-rounds each group spent in the active cohort.
    group_names, resource_names, policy, env.
    """

    outcome: np.ndarray
    expected_outcome: np.ndarray
    effect: np.ndarray
    unit: np.ndarray
    resource: np.ndarray
    round: np.ndarray
    group: np.ndarray
    exposure: np.ndarray
    group_names: tuple[str, ...]
    resource_names: tuple[str, ...]
    policy: str = "policy"
    env: str = "env"
    extra: dict = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        return int(self.outcome.shape[0])

    def counts(self) -> np.ndarray:
        """``(K, R)`` allocations per group and resource."""
        K, R = len(self.group_names), len(self.resource_names)
        c = np.zeros((K, R), dtype=np.int64)
        np.add.at(c, (self.group, self.resource), 1)
        return c

    def fairness_ratios(self) -> np.ndarray:
        """``(K,)`` ``FR_k = (A_k / E_k) / (A / E)``: allocation rate of group k (allocations per
        person-round in the cohort) over the overall rate; 1 is parity (NaN for an absent group)."""
        return _ratios(self.counts().sum(axis=1), self.exposure)

    def fairness_ratios_by_resource(self) -> np.ndarray:
        """``(K, R)`` the same per resource."""
        c = self.counts()
        return np.stack([_ratios(c[:, r], self.exposure) for r in range(c.shape[1])], axis=1)

    def disparity(self) -> float:
        """``max_k |FR_k - 1|``."""
        return float(np.nanmax(np.abs(self.fairness_ratios() - 1.0)))

    def metrics(self) -> dict[str, float]:
        """Totals: ``cumulative_outcome`` (sum of ``effect``), ``observed_outcome`` (sum of
        ``outcome``), ``fairness_ratio_min/max``, ``disparity``, per-group and per-(group,
        resource) ratios ``fairness_ratio:<group>`` / ``fairness_ratio:<group>:<resource>``,
        and ``outcome_spread`` (max - min over groups of effect received per person-round)."""
        fr = self.fairness_ratios()
        out = {
            "cumulative_outcome": float(self.effect.sum()),
            "observed_outcome": float(self.outcome.sum()),
            "fairness_ratio_min": float(np.nanmin(fr)),
            "fairness_ratio_max": float(np.nanmax(fr)),
            "disparity": self.disparity(),
        }
        for k, g in enumerate(self.group_names):
            out[f"fairness_ratio:{g}"] = float(fr[k])
        frr = self.fairness_ratios_by_resource()
        for k, g in enumerate(self.group_names):
            for r, name in enumerate(self.resource_names):
                out[f"fairness_ratio:{g}:{name}"] = float(frr[k, r])
        if "effect_by_group" in self.extra:
            per = self.extra["effect_by_group"] / np.maximum(self.exposure, 1)
            out["outcome_spread"] = float(per.max() - per.min())
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per round: ``round, outcome, expected_outcome, effect`` and cumulative sums."""
        T = self.horizon
        return pd.DataFrame(
            {
                "round": np.arange(T),
                "outcome": self.outcome,
                "expected_outcome": self.expected_outcome,
                "effect": self.effect,
                "cumulative_outcome": np.cumsum(self.effect),
                "cumulative_observed": np.cumsum(self.outcome),
            }
        )


def _ratios(alloc: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    total = alloc.sum() / max(exposure.sum(), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(exposure > 0, alloc / np.maximum(exposure, 1), np.nan)
        return rate / total if total > 0 else np.full(rate.shape, np.nan)


def simulate(
    allocator: Allocator, env: FairAllocationEnv, horizon: int, seed: SeedLike = None
) -> AllocationTrace:
    """Run ``allocator`` on ``env`` for ``horizon`` rounds.

    Parameters
    ----------
    allocator: the policy (reset at the start).
    env: the environment.
    horizon: rounds ``T`` >= 1.
    seed: seeds two independent streams: the allocator's (tie-breaking, exploration, model
        training) and the outcome noise; two allocators run with the same seed see the same
        noise draws (common random numbers).

    Raises
    ------
    ValueError
        if the allocator breaks a budget, a cooldown, the cohort or the one-resource rule.
    """
    T = check_positive_int(horizon, "horizon")
    alloc_rng, noise_rng = spawn(seed, 2)
    pop, res = env.population, env.resources
    N, R, K = pop.X.shape[0], res.n_resources, pop.n_groups
    L = env.cohort_length
    D = res.max_support
    kernel_table = np.zeros((R, D))
    for r, k in enumerate(res.kernels):
        kernel_table[r, : k.support] = k.weights
    support = np.array([k.support for k in res.kernels])
    allocator.reset(env.problem, alloc_rng)
    state = AllocationState(N, res)
    pending = np.zeros((D, N))  # ring buffer of increments due at round t + j
    active_until = np.full(N, -1, dtype=np.int64)
    outcome, expected, effect = np.zeros(T), np.zeros(T), np.zeros(T)
    units_log, res_log, round_log = [], [], []
    exposure = np.zeros(K, dtype=np.int64)
    effect_by_group = np.zeros(K)
    for t in range(T):
        h = t // L
        cohort = pop.cohort(h)
        if t % L == 0:
            allocator.start_cohort(h, cohort, t)
        exposure += np.bincount(pop.groups[cohort], minlength=K)
        units, rs = allocator.allocate(t, cohort, state.eligible(cohort, t))
        units = np.asarray(units, dtype=np.int64).reshape(-1)
        rs = np.asarray(rs, dtype=np.int64).reshape(-1)
        state.record(cohort, units, rs, t)
        if units.size:
            eff = env.effects[units, rs]
            effect[t] = eff.sum()
            np.add.at(effect_by_group, pop.groups[units], eff)
            slots = (t + np.arange(D)) % D
            np.add.at(pending, (slots[None, :], units[:, None]), kernel_table[rs] * eff[:, None])
            active_until[units] = np.maximum(active_until[units], t + support[rs] - 1)
            units_log.append(units)
            res_log.append(rs)
            round_log.append(np.full(units.size, t))
        slot = t % D
        active = np.flatnonzero(active_until >= t)
        mean = pending[slot, active]
        y = mean + env.noise_sd * noise_rng.standard_normal(active.size)
        pending[slot, :] = 0.0
        outcome[t], expected[t] = y.sum(), mean.sum()
        allocator.observe(t, active, y)
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
    unit = cat(units_log)
    return AllocationTrace(
        outcome=outcome,
        expected_outcome=expected,
        effect=effect,
        unit=unit,
        resource=cat(res_log),
        round=cat(round_log),
        group=pop.groups[unit],
        exposure=exposure,
        group_names=pop.group_names,
        resource_names=res.names,
        policy=getattr(allocator, "name", type(allocator).__name__),
        env=env.name,
        extra={"effect_by_group": effect_by_group},
    )
