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
from scarce.fair.models import History, make_outcome_model, observational_prior
from scarce.fair.population import (
    NEVER,
    ROUNDINGS,
    check_rates,
    largest_remainder,
    randomized_counts,
)
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


def pretrained_prior(problem: AllocationProblem) -> np.ndarray:
    """:func:`~scarce.fair.models.observational_prior` on the observational rows of everyone
    but the first cohort's members (cross-fitting)."""
    if problem.observational is None:
        raise ValueError(
            "pretrain=True needs an environment with observational data (treatment, outcome); "
            "star_env and jobs_env provide it, synthetic_env does not"
        )
    t, y = problem.observational
    rows = np.ones(problem.X.shape[0], dtype=bool)
    if problem.cohorts:
        rows[problem.cohorts[0]] = False
    return observational_prior(problem.X[rows], t[rows], y[rows], problem.n_resources)


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
    concentration: None (default): global draws are multiplicative tilts of the parity shares
        ``parity (1 + U(-eps_f, eps_f))``; a number: Dirichlet(concentration * parity). The
        drafts' Dirichlet(1) almost never lands inside a 20 % band for 4 or more groups.
    perturbation: ``"multiplicative"`` (default: ``s (1 + U(-eps_local, eps_local))``, which
        keeps most local candidates inside the band) or ``"additive"`` (the drafts'
        ``s + U(-eps_local, eps_local)``, mostly infeasible when shares are ~0.2).
    n_rollouts: ``B`` (16).
    beta_meta: meta-level UCB weight (2.0), or ``"gp-ucb"`` for ``sqrt(2 log(|C| m^2 pi^2 /
        (6 delta)))``, ``delta = 0.1``.
    pool_cap: largest pool kept (200; lowest UCB dropped).
    n_reevaluate: old pool members re-evaluated (and eligible to be played) per meta round: the
        incumbent and the best by their last UCB (15); with the new candidates this bounds the
        rollouts per meta round (about 50 candidates x B) so a meta round stays fast at N = 5000.
        A candidate's mean and sd come from this meta round's ``B`` rollouts only: the model is
        refitted and the cohort changes between meta rounds, so the spec's running sums over
        all past rollouts would mix stale utilities (and inflate old candidates' sd).
    count_full_effect: utility counts whole effects instead of those released by the cohort's end.
    clip_infeasible: scale infeasible rates down instead of raising (for rates given by hand).
    rounding: how rates become per-round counts ``n_{k,r}``: ``"floor"`` (the paper:
        ``floor(z |I_k|)``, units lost to the floor stay unused), ``"largest_remainder"`` (the
        spec's ``fill_leftover``: lost units go to the largest remainders) or ``"randomized"``
        (dependent randomised rounding each round: expected counts equal ``z |I_k|`` exactly,
        totals never exceed the budget; realised allocation rates then match the planned ones
        even for small groups).
    model_kwargs: passed to the outcome model.
    pretrain: start the (linear) outcome model from a prior fitted on the environment's
        observational rows, leaving out the first cohort (cross-fitting, spec §A.5); needs an
        environment with observational data.
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
        concentration: float | None = None,
        perturbation: str = "multiplicative",
        n_rollouts: int = 16,
        beta_meta: float | str = 2.0,
        pool_cap: int = 200,
        n_reevaluate: int = 15,
        count_full_effect: bool = False,
        clip_infeasible: bool = False,
        rounding: str = "floor",
        model_kwargs: dict | None = None,
        rates: np.ndarray | None = None,
        pretrain: bool = False,
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
        self.concentration = (
            None
            if concentration is None
            else check_scalar(concentration, "concentration", low=0.0, low_inclusive=False)
        )
        if perturbation not in ("additive", "multiplicative"):
            raise ValueError(
                f"perturbation must be 'additive' or 'multiplicative'; got {perturbation!r}"
            )
        self.perturbation = perturbation
        self.n_rollouts = check_positive_int(n_rollouts, "n_rollouts", minimum=2)
        if isinstance(beta_meta, str):
            if beta_meta != "gp-ucb":
                raise ValueError(f"beta_meta must be a number >= 0 or 'gp-ucb'; got {beta_meta!r}")
        else:
            check_scalar(beta_meta, "beta_meta", low=0.0)
        self.beta_meta = beta_meta
        self.pool_cap = check_positive_int(pool_cap, "pool_cap")
        self.n_reevaluate = check_positive_int(n_reevaluate, "n_reevaluate", minimum=0)
        self.count_full_effect = bool(count_full_effect)
        self.clip_infeasible = bool(clip_infeasible)
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}; got {rounding!r}")
        self.rounding = rounding
        self.model_kwargs = dict(model_kwargs or {})
        self.pretrain = bool(pretrain)
        if self.pretrain and model != "linear":
            raise ValueError("pretrain=True is implemented for model='linear' only")
        self.name = name or {"parity": "EqualSplit", "fixed": "FixedRates"}.get(meta, "MetaCUB")

    # ------------------------------------------------------------------ lifecycle
    def reset(self, problem: AllocationProblem, rng: np.random.Generator) -> None:
        super().reset(problem, rng)
        kwargs = dict(self.model_kwargs)
        if self.pretrain:
            kwargs["prior_theta"] = pretrained_prior(problem)
        self.model = make_outcome_model(
            self.model_kind,
            problem.X,
            problem.resources.kernels,
            attribution=self.attribution,
            seed=rng,
            **kwargs,
        )
        self.history = History()
        R, K = problem.n_resources, problem.n_groups
        self.pool = np.zeros((0, R, K))
        self.last_ucb = np.zeros(0)
        self.inc_idx: int | None = None
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
        rates = check_rates(
            rates,
            self.sizes,
            P.resources.budgets,
            names=P.resources.names,
            clip_infeasible=self.clip_infeasible,
        )
        self.want = rates * self.sizes[None, :]  # (R, K)

    def _counts(self, want: np.ndarray) -> np.ndarray:
        """``(..., K, R)`` per-round counts from ``want`` ``(..., R, K)``."""
        budgets = self.problem.resources.budgets
        if self.rounding == "randomized":
            counts = randomized_counts(want, self.rng)
        else:
            counts = np.floor(want + 1e-9).astype(np.int64)
            if self.rounding == "largest_remainder":
                flat = want.reshape(-1, *want.shape[-2:])
                cf = counts.reshape(flat.shape)
                counts = np.stack(
                    [
                        largest_remainder(w, c, budgets, self.sizes)
                        for w, c in zip(flat, cf, strict=True)
                    ]
                ).reshape(counts.shape)
        return np.swapaxes(counts, -1, -2)

    def allocate(self, t, cohort, eligible):
        res = self.problem.resources
        last = np.where(eligible, NEVER, t)[None].astype(np.int64)
        quotas = self._counts(self.want)
        take = quota_round(self.sorted, quotas[None], last, t, res.cooldowns, res.order)[0]
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
        """Fresh draws around parity: Dirichlet(concentration * parity) per resource, or with
        ``concentration=None`` multiplicative tilts ``parity (1 + U(-eps_f, eps_f))``."""
        if self.concentration is None:
            s = parity[None] * (1.0 + self.rng.uniform(-self.eps_f, self.eps_f, (n, *parity.shape)))
            return s / s.sum(axis=2, keepdims=True)
        alpha = np.maximum(self.concentration * parity, 1e-3)
        return np.stack([self.rng.dirichlet(a, size=n) for a in alpha], axis=1)

    def _local(self, n: int) -> np.ndarray:
        """Perturbations of the incumbent: additive ``U(-eps_local, eps_local)`` (the drafts) or
        multiplicative ``s (1 + U(-eps_local, eps_local))``; clipped to [0, 1], renormalised."""
        u = self.rng.uniform(-self.eps_local, self.eps_local, (n, *self.incumbent.shape))
        if self.perturbation == "additive":
            s = self.incumbent[None] + u
        else:
            s = self.incumbent[None] * (1.0 + u)
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
        # re-evaluate the incumbent and the best old members by their last UCB, plus the new
        M = self.pool.shape[0]
        old = np.argsort(-self.last_ucb, kind="stable")[: self.n_reevaluate]
        if self.inc_idx is not None and self.inc_idx not in old:
            old = np.concatenate([old, [self.inc_idx]])
        self.pool = np.concatenate([self.pool, new])
        self.last_ucb = np.concatenate([self.last_ucb, np.full(new.shape[0], np.inf)])
        cand = np.concatenate([old, M + np.arange(new.shape[0])]).astype(np.int64)
        cand = cand[self._feasible(self.pool[cand])]  # group sizes change with the cohort
        if cand.size == 0:
            self.pool = np.concatenate([self.pool, parity[None]])
            self.last_ucb = np.concatenate([self.last_ucb, [np.inf]])
            cand = np.array([self.pool.shape[0] - 1])
        shares = self.pool[cand]
        U = self._rollouts(Xc, t, shares)  # (C, B)
        mu = U.mean(axis=1)
        sd = U.std(axis=1, ddof=1)
        objective = mu.copy()
        if self.fairness == "soft":
            par = self._rollouts(Xc, t, parity[None]).mean()
            objective -= self.fairness_penalty * abs(par) * self._penalty(shares)
        if self.beta_meta == "gp-ucb":
            b = math.sqrt(2 * math.log(len(mu) * self.n_meta**2 * math.pi**2 / (6 * 0.1)))
        else:
            b = float(self.beta_meta)
        ucb = objective + b * sd
        self.last_ucb[cand] = ucb
        choice = int(np.argmax(ucb))
        best = int(cand[int(np.argmax(objective))])
        self.incumbent = self.pool[best].copy()
        chosen = shares[choice].copy()
        self.meta_log.append(
            {
                "round": t,
                "evaluated": int(len(mu)),
                "pool": int(self.pool.shape[0]),
                "mu": float(mu[choice]),
                "sd": float(sd[choice]),
            }
        )
        # cap the pool by last UCB, always keeping the incumbent
        rank = np.argsort(-self.last_ucb, kind="stable")
        keep = np.concatenate([[best], rank[rank != best]])[: self.pool_cap]
        self.pool, self.last_ucb = self.pool[keep], self.last_ucb[keep]
        self.inc_idx = 0
        return chosen

    def _rollouts(self, Xc: np.ndarray, t0: int, shares: np.ndarray) -> np.ndarray:
        """``(C, B)`` rollout utilities of candidate ``shares`` ``(C, R, K)``."""
        P = self.problem
        res = P.resources
        C = shares.shape[0]
        rates = shares_to_rates(shares, self.sizes, res.budgets)
        want = rates * self.sizes[None, None, :]  # (C, R, K)
        fixed = None if self.rounding == "randomized" else self._counts(want)
        n, R = self.scores.shape
        last = np.full((C, n, R), NEVER, dtype=np.int64)
        W = np.zeros((C, n, R))
        L = P.cohort_length
        t_end = t0 + L - 1
        for u in range(t0, t0 + L):
            quotas = self._counts(want) if fixed is None else fixed
            take = quota_round(self.sorted, quotas, last, u, res.cooldowns, res.order)
            if self.count_full_effect:
                W += take
            else:
                mass = np.array([k.completed_mass(t_end - u) for k in res.kernels])
                W += take * mass[None, None, :]
        f = self.model.sample(Xc, self.n_rollouts, self.rng)  # (B, n, R)
        return np.einsum("cnr,bnr->cb", W, f, optimize=True)
