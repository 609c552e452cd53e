"""MetaCUB: bi-level contextual bandit for fair allocation under delayed feedback (spec §A.3-A.5).

**Meta level** (once per cohort): budget shares ``s_r`` on the simplex over the ``K`` groups,
one simplex per resource, mapped to allocation rates ``z_r^k = min(1, s_r^k b_r / |I_k|)``.
Candidates (a pool kept across meta rounds, plus local perturbations of the incumbent and a few
fresh draws) are scored by ``B`` stochastic rollouts of the learned outcome model: the base
level is simulated under each candidate for the cohort's ``L`` rounds (budgets, cooldowns, one
resource per person), and each rollout draws an epistemic sample ``f~`` of the model; the
utility is ``sum f~(x_i, r) F^r(t_end - u)`` over the simulated allocations (the effect released
by the end of the cohort; ``count_full_effect=True`` counts all of it). The candidate with the
largest ``mean + beta_meta * sd`` over its rollouts is played; the fairness constraint is hard
(per resource, rate ratios ``FR_r^k = z_r^k / (overall rate)`` within ``[1 - eps_f, 1 + eps_f]``)
or a soft penalty.

**Base level** (every round): within each (group, resource) the ``n_{k,r} = floor(z_r^k
|I_k|)`` eligible members with the largest ``G = mean + beta * sd`` get the resource.

Because the outcome model is refitted only at cohort boundaries, the base level's scores are
fixed during a cohort, so a candidate's simulated allocations are deterministic given the
scores; the rollouts differ in the sampled model (spec §A.4 step 1) and are evaluated on the
same simulated allocations (common random numbers across candidates).
"""

from __future__ import annotations

import math

import numpy as np

from scarce.core.validation import check_positive_int, check_scalar
from scarce.fair.env import AllocationProblem, Allocator
from scarce.fair.models import History, make_outcome_model
from scarce.fair.population import NEVER, rates_to_counts
from scarce.fair.selection import quota_round, sort_scores


def shares_to_rates(shares: np.ndarray, sizes: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """``(C, R, K)`` rates ``min(1, s b / |I_k|)`` (0 for empty groups) from shares ``(C, R, K)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = shares * budgets[None, :, None] / sizes[None, None, :]
    return np.where(sizes[None, None, :] > 0, np.minimum(z, 1.0), 0.0)


def rate_ratios(rates: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(C, R, K)`` ``FR_r^k = z_r^k / (sum_k z_r^k |I_k| / sum_k |I_k|)`` (NaN for empty groups
    or a resource with no allocations)."""
    overall = (rates * sizes).sum(axis=-1, keepdims=True) / sizes.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        fr = rates / overall
    return np.where(sizes > 0, fr, np.nan)


class MetaCUB(Allocator):
    """Bi-level fair allocator.

    Parameters
    ----------
    model: outcome model: ``"linear"`` (ridge per resource) or a neural model with uncertainty
        ``"neural_linear"``, ``"mc_dropout"`` or ``"gaussian_head"``.
    attribution: delay attribution for fitting (``"kernel_ls"`` default, ``"completed_mass"``,
        ``"delay_agnostic"``).
    beta: base-level exploration weight (1.0).
    meta: ``"rollout"`` (MetaCUB), ``"parity"`` (no meta level: parity shares; the equal-split
        baseline) or ``"fixed"`` (the allocation ``rates`` given by hand, every cohort).
    fairness: ``"hard"`` (band) or ``"soft"`` (penalty ``fairness_penalty * |mean utility of
        parity| * sum_r max_k |FR_r^k - 1|``).
    eps_f: half-width of the fairness band (0.2).
    fairness_penalty: weight of the soft penalty (1.0).
    n_init, n_candidates, eps_local, n_global: pool start size (3), local perturbations per
        meta round (30), their half-width (0.1), fresh global draws per meta round (5).
    concentration: global draws are Dirichlet(concentration * parity shares) (50): Dirichlet(1)
        almost never lands inside a 20 % band for 4 or more groups.
    n_rollouts: ``B`` (16).
    beta_meta: meta-level UCB weight (2.0), or ``"gp-ucb"`` for ``sqrt(2 log(|C| m^2 pi^2 /
        (6 delta)))``, ``delta = 0.1``.
    pool_cap: largest pool kept (200; lowest UCB dropped).
    count_full_effect: utility counts whole effects instead of those released by the cohort's end.
    clip_infeasible: scale infeasible rates down instead of raising (for rates given by hand).
    fill_leftover: give units lost to the floor ``n_{k,r} = floor(z |I_k|)`` out by largest
        remainder (default False, as in the paper).
    stats: ``"current"`` (default): a candidate's mean and sd come from this meta round's
        rollouts only (every pool member is re-evaluated each meta round under the refitted
        model); ``"cumulative"``: rollout statistics add up over meta rounds (the spec's
        pseudo-code; stale early rollouts inflate the sd of old candidates).
    model_kwargs: passed to the outcome model.
    rates: ``(R, K)`` allocation rates for ``meta="fixed"``; rates asking for more than a
        budget raise a ValueError naming the resource and the overshoot (or are scaled down
        with ``clip_infeasible``).
    name: label.
    """

    def __init__(
        self,
        *,
        model: str = "neural_linear",
        attribution: str = "kernel_ls",
        beta: float = 1.0,
        meta: str = "rollout",
        fairness: str = "hard",
        eps_f: float = 0.2,
        fairness_penalty: float = 1.0,
        n_init: int = 3,
        n_candidates: int = 30,
        eps_local: float = 0.1,
        n_global: int = 5,
        concentration: float = 50.0,
        n_rollouts: int = 16,
        beta_meta: float | str = 2.0,
        pool_cap: int = 200,
        count_full_effect: bool = False,
        clip_infeasible: bool = False,
        fill_leftover: bool = False,
        stats: str = "current",
        model_kwargs: dict | None = None,
        rates: np.ndarray | None = None,
        name: str | None = None,
    ) -> None:
        self.model_kind = model
        self.attribution = attribution
        self.beta = check_scalar(beta, "beta", low=0.0)
        if meta not in ("rollout", "parity", "fixed"):
            raise ValueError(f"meta must be 'rollout', 'parity' or 'fixed'; got {meta!r}")
        if (meta == "fixed") != (rates is not None):
            raise ValueError(
                "rates (R x K allocation rates) must be given exactly when meta='fixed'"
            )
        self.rates = None if rates is None else np.asarray(rates, dtype=np.float64)
        self.meta = meta
        if fairness not in ("hard", "soft"):
            raise ValueError(f"fairness must be 'hard' or 'soft'; got {fairness!r}")
        self.fairness = fairness
        self.eps_f = check_scalar(eps_f, "eps_f", low=0.0, low_inclusive=False)
        self.fairness_penalty = check_scalar(fairness_penalty, "fairness_penalty", low=0.0)
        self.n_init = check_positive_int(n_init, "n_init", minimum=0)
        self.n_candidates = check_positive_int(n_candidates, "n_candidates", minimum=0)
        self.eps_local = check_scalar(eps_local, "eps_local", low=0.0)
        self.n_global = check_positive_int(n_global, "n_global", minimum=0)
        self.concentration = check_scalar(
            concentration, "concentration", low=0.0, low_inclusive=False
        )
        self.n_rollouts = check_positive_int(n_rollouts, "n_rollouts", minimum=2)
        if isinstance(beta_meta, str):
            if beta_meta != "gp-ucb":
                raise ValueError(f"beta_meta must be a number >= 0 or 'gp-ucb'; got {beta_meta!r}")
        else:
            check_scalar(beta_meta, "beta_meta", low=0.0)
        self.beta_meta = beta_meta
        self.pool_cap = check_positive_int(pool_cap, "pool_cap")
        self.count_full_effect = bool(count_full_effect)
        self.clip_infeasible = bool(clip_infeasible)
        self.fill_leftover = bool(fill_leftover)
        if stats not in ("current", "cumulative"):
            raise ValueError(f"stats must be 'current' or 'cumulative'; got {stats!r}")
        self.stats_mode = stats
        self.model_kwargs = dict(model_kwargs or {})
        self.name = name or {"parity": "EqualSplit", "fixed": "FixedRates"}.get(meta, "MetaCUB")

    # ------------------------------------------------------------------ lifecycle
    def reset(self, problem: AllocationProblem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        self.model = make_outcome_model(
            self.model_kind,
            problem.X,
            problem.resources.kernels,
            attribution=self.attribution,
            seed=rng,
            **self.model_kwargs,
        )
        self.history = History()
        R, K = problem.n_resources, problem.n_groups
        self.pool = np.zeros((0, R, K))
        self.stats = np.zeros((0, 3))  # sum, sum of squares, count of rollout utilities
        self.incumbent: np.ndarray | None = None
        self.n_meta = 0
        self.meta_log: list[dict] = []

    def start_cohort(self, h: int, cohort: np.ndarray, t: int) -> None:
        P = self.problem
        if t > 0:
            self.model.fit(self.history, t - 1)
        self.cohort_groups = P.groups[cohort]
        self.sizes = np.bincount(self.cohort_groups, minlength=P.n_groups).astype(float)
        Xc = P.X[cohort]
        mean, sd = self.model.predict(Xc)
        self.scores = mean + self.beta * sd
        self.sorted = sort_scores(self.scores, self.cohort_groups, self.rng)
        parity = np.broadcast_to(self.sizes / self.sizes.sum(), (P.n_resources, P.n_groups))
        if self.meta == "fixed":
            shares = None
            rates = self.rates
        else:
            shares = parity.copy() if self.meta == "parity" else self._meta_round(Xc, t, parity)
            rates = shares_to_rates(shares[None], self.sizes, P.resources.budgets)[0]
        self.shares = shares
        self.quotas = rates_to_counts(
            rates,
            self.sizes,
            P.resources.budgets,
            names=P.resources.names,
            clip_infeasible=self.clip_infeasible,
            fill_leftover=self.fill_leftover,
        )

    def allocate(self, t, cohort, eligible):
        res = self.problem.resources
        last = np.where(eligible, NEVER, t)[None].astype(np.int64)
        take = quota_round(self.sorted, self.quotas[None], last, t, res.cooldowns, res.order)[0]
        pos, r = np.nonzero(take)
        units = cohort[pos]
        self.history.add_allocations(units, r, t)
        return units, r

    def observe(self, t, units, increments):
        self.history.add_observations(units, t, increments)

    # ------------------------------------------------------------------ meta level
    def _feasible(self, shares: np.ndarray) -> np.ndarray:
        """``(C,)`` bool: inside the fairness band (budgets hold by construction)."""
        if self.fairness == "soft":
            return np.ones(shares.shape[0], dtype=bool)
        fr = rate_ratios(
            shares_to_rates(shares, self.sizes, self.problem.resources.budgets), self.sizes
        )
        dev = np.nan_to_num(np.abs(fr - 1.0), nan=0.0)
        return (dev <= self.eps_f + 1e-12).all(axis=(1, 2))

    def _penalty(self, shares: np.ndarray) -> np.ndarray:
        fr = rate_ratios(
            shares_to_rates(shares, self.sizes, self.problem.resources.budgets), self.sizes
        )
        return np.nan_to_num(np.abs(fr - 1.0), nan=0.0).max(axis=2).sum(axis=1)

    def _global(self, n: int, parity: np.ndarray) -> np.ndarray:
        alpha = np.maximum(self.concentration * parity, 1e-3)
        draws = np.stack([self.rng.dirichlet(a, size=n) for a in alpha], axis=1)
        return draws

    def _local(self, n: int) -> np.ndarray:
        s = self.incumbent[None] + self.rng.uniform(
            -self.eps_local, self.eps_local, (n, *self.incumbent.shape)
        )
        s = np.clip(s, 0.0, 1.0)
        tot = s.sum(axis=2, keepdims=True)
        return np.where(tot > 0, s / np.where(tot > 0, tot, 1.0), 1.0 / s.shape[2])

    def _draw(self, make, n: int) -> np.ndarray:
        """Up to ``n`` feasible candidates from ``make(m)`` (at most 10 n tries)."""
        if n == 0:
            return np.zeros((0, *self.pool.shape[1:]))
        got = [c for c in (make(10 * n)) if self._feasible(c[None])[0]]
        return np.array(got[:n]).reshape(-1, *self.pool.shape[1:])

    def _meta_round(self, Xc: np.ndarray, t: int, parity: np.ndarray) -> np.ndarray:
        self.n_meta += 1
        if self.incumbent is None:
            self.incumbent = parity.copy()
            new = np.concatenate(
                [parity[None], self._draw(lambda m: self._global(m, parity), self.n_init)]
            )
        else:
            new = np.concatenate(
                [
                    self._draw(self._local, self.n_candidates),
                    self._draw(lambda m: self._global(m, parity), self.n_global),
                ]
            )
        self.pool = np.concatenate([self.pool, new])
        self.stats = np.concatenate([self.stats, np.zeros((new.shape[0], 3))])
        keep = self._feasible(self.pool)  # group sizes changed with the cohort
        if not keep.any():
            self.pool, self.stats = parity[None].copy(), np.zeros((1, 3))
        else:
            self.pool, self.stats = self.pool[keep], self.stats[keep]
        U = self._rollouts(Xc, t, self.pool)  # (C, B)
        if self.stats_mode == "current":
            self.stats[:] = 0.0
        self.stats[:, 0] += U.sum(axis=1)
        self.stats[:, 1] += (U**2).sum(axis=1)
        self.stats[:, 2] += U.shape[1]
        s, ss, c = self.stats.T
        mu = s / c
        sd = np.sqrt(np.maximum((ss - c * mu**2) / np.maximum(c - 1, 1), 0.0))
        objective = mu.copy()
        if self.fairness == "soft":
            par = self._rollouts(Xc, t, parity[None]).mean()
            objective -= self.fairness_penalty * abs(par) * self._penalty(self.pool)
        if self.beta_meta == "gp-ucb":
            b = math.sqrt(2 * math.log(len(mu) * self.n_meta**2 * math.pi**2 / (6 * 0.1)))
        else:
            b = float(self.beta_meta)
        ucb = objective + b * sd
        choice = int(np.argmax(ucb))
        self.incumbent = self.pool[int(np.argmax(objective))].copy()
        chosen = self.pool[choice].copy()
        self.meta_log.append(
            {"round": t, "pool": len(mu), "mu": float(mu[choice]), "sd": float(sd[choice])}
        )
        if len(mu) > self.pool_cap:
            top = np.argsort(-ucb, kind="stable")[: self.pool_cap]
            self.pool, self.stats = self.pool[top], self.stats[top]
        return chosen

    def _rollouts(self, Xc: np.ndarray, t0: int, shares: np.ndarray) -> np.ndarray:
        """``(C, B)`` rollout utilities of candidate ``shares`` ``(C, R, K)``."""
        P = self.problem
        res = P.resources
        C = shares.shape[0]
        rates = shares_to_rates(shares, self.sizes, res.budgets)
        quotas = np.stack(
            [
                rates_to_counts(z, self.sizes, res.budgets, fill_leftover=self.fill_leftover)
                for z in rates
            ]
        )
        n, R = self.scores.shape
        last = np.full((C, n, R), NEVER, dtype=np.int64)
        W = np.zeros((C, n, R))
        L = P.cohort_length
        t_end = t0 + L - 1
        for u in range(t0, t0 + L):
            take = quota_round(self.sorted, quotas, last, u, res.cooldowns, res.order)
            if self.count_full_effect:
                W += take
            else:
                mass = np.array([k.completed_mass(t_end - u) for k in res.kernels])
                W += take * mass[None, None, :]
        f = self.model.sample(Xc, self.n_rollouts, self.rng)  # (B, n, R)
        return np.einsum("cnr,bnr->cb", W, f, optimize=True)
