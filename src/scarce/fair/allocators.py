"""Baseline allocators, all under the same budgets, cohorts and cooldowns (spec §A.6).

Flat allocators score every (member, resource) pair of the current cohort and give each
resource to its ``b_r`` best-scored eligible members (resources in decreasing budget, one
resource per person per round, ties at random):

* :class:`RandomAllocator`: random scores (a floor).
* :class:`LinUCBAllocator`: a linear outcome model per resource (:class:`LinearOutcomeModel`),
  score ``mean + alpha * sd``; what it learns from is the attribution: ``"wait"`` (plain LinUCB
  under delay: learns an allocation only once its kernel window is complete), ``"delay_agnostic"``
  (credits each increment to the most recent allocation at once) or ``"kernel_ls"`` (the
  delay-aware flat LinUCB).
* :class:`IndexAllocator`: index policies whose arms are (individual, resource) pairs, credited
  delay-agnostically (each observed increment goes to the individual's most recent allocation
  as it arrives): UCB (``mean + alpha sqrt(2 ln t / n)``, alpha = 2), combinatorial UCB top-k
  (``sqrt(3 ln t / n)``, alpha = 1), discounted UCB (gamma = 0.9) and sliding-window UCB
  (window = 50 rounds). Unseen arms have an infinite index.
* :class:`EXP3Allocator`: exponential weights per (individual, resource), ``b_r`` members drawn
  without replacement (Gumbel top-k), importance-weighted updates ``w <- w exp(eta r / p)``
  with rewards scaled to [-1, 1] by the largest absolute credit seen.
* :class:`OracleAllocator`: knows the true effects; with ``fair=True`` it serves parity quotas
  per group (the fair oracle).

Learners refit at the start of each cohort (every ``L`` rounds) by default, like MetaCUB.
"""

from __future__ import annotations

import numpy as np

from scarce.core.validation import check_positive_int, check_scalar
from scarce.fair.env import AllocationProblem, Allocator, FairAllocationEnv
from scarce.fair.models import History, LinearOutcomeModel
from scarce.fair.population import NEVER, ROUNDINGS, largest_remainder, randomized_counts
from scarce.fair.selection import quota_round, sort_scores
from scarce.feedback.attribution import CompletedMass


def _last_from_eligible(eligible: np.ndarray, t: int) -> np.ndarray:
    """A last-allocation table that reproduces ``eligible`` at round ``t``."""
    return np.where(eligible, NEVER, t)[None].astype(np.int64)


def select_top(
    scores: np.ndarray,
    eligible: np.ndarray,
    problem: AllocationProblem,
    t: int,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
    quotas: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cohort positions and resources chosen by the base rule for one round.

    ``scores``/``eligible`` ``(n, R)``; with ``groups`` ``(n,)`` and ``quotas`` ``(K, R)`` each
    group gets its quota, else one pool gets the budgets."""
    n, R = scores.shape
    res = problem.resources
    if groups is None:
        groups = np.zeros(n, dtype=np.int64)
        quotas = res.budgets[None, :]
    ss = sort_scores(scores, groups, rng)
    take = quota_round(
        ss, quotas[None], _last_from_eligible(eligible, t), t, res.cooldowns, res.order
    )[0]
    pos, r = np.nonzero(take)
    return pos, r


class _Learner(Allocator):
    """Keeps a history and refits a model at cohort starts (and every ``refit_every`` rounds)."""

    refit_every: int | None = None

    def reset(self, problem: AllocationProblem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        self.history = History()

    def _record(self, cohort: np.ndarray, pos: np.ndarray, r: np.ndarray, t: int):
        units = cohort[pos]
        self.history.add_allocations(units, r, t)
        return units, r

    def observe(self, t: int, units: np.ndarray, increments: np.ndarray) -> None:
        self.history.add_observations(units, t, increments)


class RandomAllocator(Allocator):
    """Random eligible members for each resource."""

    name = "Random"

    def allocate(self, t, cohort, eligible):
        pos, r = select_top(self.rng.random(eligible.shape), eligible, self.problem, t, self.rng)
        return cohort[pos], r


class OracleAllocator(Allocator):
    """Top eligible members by the true effect (``fair``: parity quotas per group)."""

    def __init__(
        self, env: FairAllocationEnv, fair: bool = False, rounding: str = "randomized"
    ) -> None:
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}; got {rounding!r}")
        self.env = env
        self.fair = fair
        self.rounding = rounding
        self.name = "FairOracle" if fair else "Oracle"

    def allocate(self, t, cohort, eligible):
        scores = self.env.effects[cohort]
        if not self.fair:
            pos, r = select_top(scores, eligible, self.problem, t, self.rng)
        else:
            g = self.problem.groups[cohort]
            pos, r = select_top(
                scores,
                eligible,
                self.problem,
                t,
                self.rng,
                g,
                parity_quotas(self.problem, g, rounding=self.rounding, rng=self.rng),
            )
        return cohort[pos], r


def parity_quotas(
    problem: AllocationProblem,
    cohort_groups: np.ndarray,
    rounding: str = "floor",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``(K, R)`` counts for every group served at the same rate ``b_r / n``, rounded as in
    :class:`~scarce.fair.MetaCUB` (``"floor"``, ``"largest_remainder"``, ``"randomized"``)."""
    sizes = np.bincount(cohort_groups, minlength=problem.n_groups)
    n = sizes.sum()
    budgets = problem.resources.budgets
    rates = np.minimum(budgets[:, None] / n, 1.0)
    want = np.broadcast_to(rates, (problem.n_resources, problem.n_groups)) * sizes[None, :]
    if rounding == "randomized":
        if rng is None:
            raise ValueError("rounding='randomized' needs rng")
        return randomized_counts(want, rng).T
    counts = np.floor(want + 1e-9).astype(np.int64)
    if rounding == "largest_remainder":
        counts = largest_remainder(want, counts, budgets, sizes)
    return counts.T


class LinUCBAllocator(_Learner):
    """Flat LinUCB over (member, resource) pairs with a linear model per resource.

    Parameters
    ----------
    attribution: ``"wait"`` (learn only completed windows), ``"delay_agnostic"`` or
        ``"kernel_ls"`` (delay-aware).
    alpha: exploration weight on the width.
    lam: ridge penalty.
    refit_every: rounds between refits (None: at each cohort start).
    name: label (default from the attribution).
    """

    def __init__(
        self,
        attribution: str = "wait",
        alpha: float = 1.0,
        lam: float = 1.0,
        refit_every: int | None = None,
        name: str | None = None,
    ) -> None:
        if attribution not in ("wait", "delay_agnostic", "kernel_ls", "completed_mass"):
            raise ValueError(
                "attribution must be 'wait', 'delay_agnostic', 'kernel_ls' or 'completed_mass'; "
                f"got {attribution!r}"
            )
        self.attribution = attribution
        self.alpha = check_scalar(alpha, "alpha", low=0.0)
        self.lam = lam
        self.refit_every = (
            None if refit_every is None else check_positive_int(refit_every, "refit_every")
        )
        default = {
            "wait": "LinUCB",
            "delay_agnostic": "LinUCB-delay-agnostic",
            "kernel_ls": "LinUCB-delay-aware",
            "completed_mass": "LinUCB-completed-mass",
        }
        self.name = name or default[attribution]

    def reset(self, problem, rng):
        super().reset(problem, rng)
        att = CompletedMass(min_mass=1.0) if self.attribution == "wait" else self.attribution
        self.model = LinearOutcomeModel(
            problem.X, problem.resources.kernels, attribution=att, lam=self.lam
        )

    def start_cohort(self, h, cohort, t):
        if t > 0 and self.refit_every is None:
            self.model.fit(self.history, t - 1)

    def allocate(self, t, cohort, eligible):
        if self.refit_every is not None and t > 0 and t % self.refit_every == 0:
            self.model.fit(self.history, t - 1)
        mean, sd = self.model.predict(self.problem.X[cohort])
        pos, r = select_top(mean + self.alpha * sd, eligible, self.problem, t, self.rng)
        return self._record(cohort, pos, r, t)


class IndexAllocator(Allocator):
    """UCB-family index policies over (individual, resource) arms (see the module docstring).

    Parameters
    ----------
    kind: ``"ucb"``, ``"cucb"``, ``"ducb"`` or ``"swucb"``.
    alpha: exploration weight (default 2 for ucb/ducb/swucb, 1 for cucb).
    gamma: discount of ``"ducb"``; window: rounds of ``"swucb"``.
    """

    _NAMES = {"ucb": "UCB", "cucb": "CUCB", "ducb": "DUCB", "swucb": "SWUCB"}

    def __init__(
        self, kind: str = "ucb", alpha: float | None = None, gamma: float = 0.9, window: int = 50
    ) -> None:
        if kind not in self._NAMES:
            raise ValueError(f"kind must be one of {sorted(self._NAMES)}; got {kind!r}")
        self.kind = kind
        default = 1.0 if kind == "cucb" else 2.0
        self.alpha = check_scalar(default if alpha is None else alpha, "alpha", low=0.0)
        self.gamma = check_scalar(gamma, "gamma", low=0.0, high=1.0, low_inclusive=False)
        self.window = check_positive_int(window, "window")
        self.name = self._NAMES[kind]

    def reset(self, problem, rng):
        super().reset(problem, rng)
        N, R = problem.X.shape[0], problem.n_resources
        self.n = np.zeros((N, R))
        self.s = np.zeros((N, R))
        self.last_res = np.full(N, -1, dtype=np.int64)
        if self.kind == "swucb":
            self._wn = np.zeros((self.window, N, R))
            self._ws = np.zeros((self.window, N, R))

    def allocate(self, t, cohort, eligible):
        if self.kind == "ducb":
            self.n *= self.gamma
            self.s *= self.gamma
        elif self.kind == "swucb":
            slot = t % self.window
            self.n -= self._wn[slot]
            self.s -= self._ws[slot]
            self._wn[slot] = 0.0
            self._ws[slot] = 0.0
        n, s = self.n[cohort], self.s[cohort]
        c = 3.0 if self.kind == "cucb" else 2.0
        horizon = min(t + 1, self.window) if self.kind == "swucb" else t + 1
        with np.errstate(divide="ignore", invalid="ignore"):
            index = np.where(
                n > 1e-12,
                s / np.maximum(n, 1e-12)
                + self.alpha * np.sqrt(c * np.log(max(horizon, 2)) / np.maximum(n, 1e-12)),
                np.inf,
            )
        pos, r = select_top(index, eligible, self.problem, t, self.rng)
        units = cohort[pos]
        self.n[units, r] += 1.0
        if self.kind == "swucb":
            self._wn[t % self.window, units, r] += 1.0
        self.last_res[units] = r
        return units, r

    def observe(self, t, units, increments):
        r = self.last_res[units]
        ok = r >= 0
        self.s[units[ok], r[ok]] += increments[ok]
        if self.kind == "swucb":
            self._ws[t % self.window, units[ok], r[ok]] += increments[ok]


class EXP3Allocator(Allocator):
    """Exponential weights over (individual, resource) arms; ``eta`` the learning rate."""

    def __init__(self, eta: float = 0.1, name: str = "EXP3") -> None:
        self.eta = check_scalar(eta, "eta", low=0.0, low_inclusive=False)
        self.name = name

    def reset(self, problem, rng):
        super().reset(problem, rng)
        N, R = problem.X.shape[0], problem.n_resources
        self.logw = np.zeros((N, R))
        self.prob = np.ones((N, R))
        self.last_res = np.full(N, -1, dtype=np.int64)
        self.scale = 1e-12

    def allocate(self, t, cohort, eligible):
        logw = np.where(eligible, self.logw[cohort], -np.inf)
        gumbel = -np.log(-np.log(self.rng.random(logw.shape)))
        pos, r = select_top(logw + gumbel, eligible, self.problem, t, self.rng)
        units = cohort[pos]
        # inclusion probability of a b-out-of-n draw, approximated by min(1, b w / sum w)
        lw = np.where(eligible, self.logw[cohort] - self.logw[cohort].max(initial=0.0), -np.inf)
        w = np.exp(lw)
        total = w.sum(axis=0)
        p = np.minimum(1.0, self.problem.resources.budgets[None, :] * w / np.maximum(total, 1e-300))
        self.prob[units, r] = np.maximum(p[pos, r], 1e-3)
        self.last_res[units] = r
        return units, r

    def observe(self, t, units, increments):
        r = self.last_res[units]
        ok = r >= 0
        if not ok.any():
            return
        u, r, y = units[ok], r[ok], increments[ok]
        self.scale = max(self.scale, float(np.abs(y).max()))
        self.logw[u, r] += self.eta * (y / self.scale) / self.prob[u, r]
        np.clip(self.logw, -50.0, 50.0, out=self.logw)
