"""MetaCUB: bi-level contextual bandit for fair allocation under delayed feedback (spec §A.3-A.5).

**Meta level** (at the start of each cohort): budget shares ``s_r`` on the simplex over the
``K`` groups, one simplex per resource, mapped to allocation rates ``z_r^k = min(1, s_r^k b_r /
|I_k|)``. Candidates (a pool kept across meta rounds, plus local perturbations of the
incumbent and a few fresh draws) are scored by ``B`` stochastic rollouts of the learned outcome
model: the base level is simulated under each candidate for the cohort's ``L`` rounds
(capacities, cooldowns, one resource per person), and each rollout draws an epistemic sample
``f~`` of the model; the utility is ``sum f~(x_i, r) F^r(t_end - u)`` over the simulated
allocations (the effect released by the end of the cohort under the assumed kernels;
``count_full_effect=True`` counts all of it). The candidate with the largest
``mean + beta_meta * sd`` over its rollouts is played; the fairness constraint is hard (per
resource, rate ratios ``FR_r^k = z_r^k / (overall rate)`` within ``[1 - eps_f, 1 + eps_f]``) or
a soft penalty.

**Base level** (every round): within each (group, resource) the ``n_{k,r}`` eligible members
with the largest ``G = mean + beta * sd`` get the resource, ``n_{k,r}`` being
``z_r^k |I_k|`` rounded with a carry over rounds (each group's cumulative count stays within
one unit of its planned cumulative count, so the realised rates keep the band over a run;
totals never exceed the capacity). ``rounding="randomized"`` rounds at random each round
(exact in expectation only), ``"floor"`` is the paper's floor, which breaks the band for small
groups.

The outcome model is refitted only at cohort starts, so the base level's scores are fixed
during a cohort and a candidate's simulated allocations are deterministic given the rounding;
the rollouts differ in the sampled model (spec §A.4 step 1) and every candidate is evaluated on
the same samples (common random numbers across candidates).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scarce.core.random import SeedLike
from scarce.core.validation import check_scalar
from scarce.fair.models import make_outcome_model
from scarce.fair.policy import CohortPolicy, capacity_order
from scarce.fair.population import (
    NEVER,
    ROUNDINGS,
    carry_counts,
    check_rates,
    largest_remainder,
    randomized_counts,
)
from scarce.fair.search import meta_search, rate_ratios, shares_to_rates
from scarce.fair.selection import quota_round, sort_scores

#: a round far in the future: a member marked with it is never eligible in a rollout
_BARRED = np.iinfo(np.int64).max // 4


class MetaCUB(CohortPolicy):
    """Bi-level fair allocator (see the module docstring).

    Parameters
    ----------
    model:
        outcome model: ``"linear"`` (ridge per resource, the default) or a neural model with
        uncertainty ``"neural_linear"``, ``"mc_dropout"`` or ``"gaussian_head"``.
    model_kwargs:
        passed to the outcome model (``lam``, ``prior_theta`` (a pretrained prior, e.g.
        :meth:`scarce.fair.FairAllocationEnv.observational_prior`), ``hidden``, ``epochs``...).
    attribution:
        delay attribution for fitting (``"kernel_ls"`` default, ``"completed_mass"``,
        ``"delay_agnostic"``).
    beta:
        base-level exploration weight (1.0).
    fairness:
        ``"hard"`` (band) or ``"soft"`` (penalty ``fairness_penalty * |mean utility of
        parity| * sum_r max_k |FR_r^k - 1|``).
    eps_f:
        half-width of the fairness band (0.2).
    fairness_penalty:
        weight of the soft penalty (1.0).
    search:
        settings of the candidate search (:class:`~scarce.fair.search.MetaSearch` fields), e.g.
        ``{"n_rollouts": 8}``.
    rounding:
        how rates become per-round counts: ``"carry"`` (default: rounding with a carry over
        rounds, :func:`~scarce.fair.population.carry_counts`), ``"randomized"`` (dependent
        randomised rounding each round, exact in expectation), ``"floor"`` (the paper) or
        ``"largest_remainder"``.
    n_actions, n_features, kernels, cohort_length, seed:
        as in :class:`~scarce.fair.policy.CohortPolicy`.
    """

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        """Given its plan, the base level is deterministic unless rounding is randomised."""
        return self.rounding != "randomized"

    #: Monte Carlo under randomised rounding; exact (deterministic) otherwise
    probability_method = "monte_carlo"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        model: str = "linear",
        model_kwargs: dict[str, Any] | None = None,
        attribution: str = "kernel_ls",
        beta: float = 1.0,
        fairness: str = "hard",
        eps_f: float = 0.2,
        fairness_penalty: float = 1.0,
        search: dict[str, Any] | None = None,
        rounding: str = "carry",
        kernels: Any = None,
        cohort_length: int = 8,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            kernels=kernels,
            cohort_length=cohort_length,
            seed=seed,
        )
        self.model = model
        self.model_kwargs = model_kwargs
        self.attribution = attribution
        self.beta = beta
        self.fairness = fairness
        self.eps_f = eps_f
        self.fairness_penalty = fairness_penalty
        self.search = search
        self.rounding = rounding

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.beta, "beta", low=0.0)
        if self.fairness not in ("hard", "soft"):
            raise ValueError(f"fairness must be 'hard' or 'soft'; got {self.fairness!r}")
        check_scalar(self.eps_f, "eps_f", low=0.0, low_inclusive=False)
        check_scalar(self.fairness_penalty, "fairness_penalty", low=0.0)
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}; got {self.rounding!r}")
        meta_search(self.search)
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a dict or None; got {self.model_kwargs!r}")

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        super()._init_state()
        self.search_ = meta_search(self.search)
        self.model_ = make_outcome_model(
            self.model,
            self.n_features,
            self._kernels(),
            attribution=self.attribution,
            seed=self.rng_,
            **(self.model_kwargs or {}),
        )
        self._reset_pool(0)
        self.carry_ = np.zeros((self.n_resources, 0))
        self.n_meta_ = 0
        self.meta_log_: list[dict[str, Any]] = []
        self.shares_ = np.zeros(0)
        self.want_: np.ndarray | None = None
        self.sizes_ = np.zeros(0)
        self.cohort_X_ = np.zeros((0, self.n_features))

    def _reset_pool(self, K: int) -> None:
        R = self.n_resources
        self.pool_ = np.zeros((0, R, K))
        self.last_ucb_ = np.zeros(0)
        self.inc_idx_ = -1
        self.incumbent_ = np.zeros((0, R, K))

    def _get_own_state(self) -> dict[str, Any]:
        return {
            "model": self.model_.get_state(),
            "pool": self.pool_,
            "last_ucb": self.last_ucb_,
            "inc_idx": self.inc_idx_,
            "carry": self.carry_,
            "incumbent": self.incumbent_,
            "n_meta": self.n_meta_,
            "meta_log": self.meta_log_,
            "shares": self.shares_,
            "want": np.zeros(0) if self.want_ is None else self.want_,
            "has_want": self.want_ is not None,
            "sizes": self.sizes_,
            "cohort_X": self.cohort_X_,
        }

    def _set_own_state(self, state: dict[str, Any]) -> None:
        self.model_.set_state(state["model"])
        self.pool_ = np.asarray(state["pool"], float)
        self.last_ucb_ = np.asarray(state["last_ucb"], float)
        self.inc_idx_ = int(state["inc_idx"])
        self.carry_ = np.asarray(state["carry"], float).reshape(self.n_resources, -1)
        self.incumbent_ = np.asarray(state["incumbent"], float)
        self.n_meta_ = int(state["n_meta"])
        self.meta_log_ = list(state["meta_log"])
        self.shares_ = np.asarray(state["shares"], float)
        self.want_ = np.asarray(state["want"], float) if state["has_want"] else None
        self.sizes_ = np.asarray(state["sizes"], float)
        self.cohort_X_ = np.asarray(state["cohort_X"], float).reshape(-1, self.n_features)

    # ------------------------------------------------------------------ base level
    def _fit(self, now):
        self.model_.fit(self.history_, now)

    def _start_cohort(self, X, ctx):
        self._refit()
        self.cohort_X_ = X.copy()
        self.want_ = None
        if ctx["caps"] is not None:
            self._plan_cohort(X, ctx)

    def _scores(self, X, ctx):
        # the quotas are filled whatever the sign of G (spec §A.3): nothing never wins
        mean, sd = self.model_.predict(X)
        G = mean + self.beta * sd
        return np.concatenate([np.full((X.shape[0], 1), -np.inf), G], axis=1)

    def _counts(
        self, want: np.ndarray, rng: np.random.Generator, caps: np.ndarray, carry: np.ndarray
    ) -> np.ndarray:
        """``(..., K, R)`` per-round counts from ``want`` ``(..., R, K)`` (``carry``: the carry
        of ``rounding="carry"``, broadcastable to ``want``)."""
        if self.rounding == "carry":
            counts = carry_counts(want, carry, caps)
        elif self.rounding == "randomized":
            counts = randomized_counts(want, rng)
        else:
            counts = np.floor(want + 1e-9).astype(np.int64)
            if self.rounding == "largest_remainder":
                flat = want.reshape(-1, *want.shape[-2:])
                cf = counts.reshape(flat.shape)
                counts = np.stack(
                    [
                        largest_remainder(w, c, caps, self.sizes_)
                        for w, c in zip(flat, cf, strict=True)
                    ]
                ).reshape(counts.shape)
        return np.swapaxes(counts, -1, -2)

    def _carry(self, K: int) -> np.ndarray:
        if self.carry_.shape != (self.n_resources, K):
            self.carry_ = np.zeros((self.n_resources, K))
        return self.carry_

    def _select(self, scores, eligible, ctx):
        caps, groups = ctx["caps"], ctx["groups"]
        K = self._n_groups(ctx)
        if self.want_ is not None and self.want_.shape == (self.n_resources, K):
            want = self.want_.copy()
        else:  # no plan for this cohort (it started without capacities): parity
            sizes = np.bincount(groups, minlength=K).astype(float)
            want = np.minimum(caps[:, None] * sizes[None, :] / max(sizes.sum(), 1.0), sizes)
        G = scores[:, 1:]
        ss = sort_scores(G, groups)
        last = np.where(eligible[:, 1:] & (G > scores[:, :1]), NEVER, _BARRED)[None]
        order = capacity_order(caps)
        zeros = np.zeros(self.n_resources, dtype=np.int64)
        carry = self.carry_.copy() if self.carry_.shape == want.shape else np.zeros(want.shape)

        def draw(rng: np.random.Generator) -> np.ndarray:
            quotas = self._counts(want, rng, caps, carry)
            take = quota_round(ss, quotas[None], last.copy(), 0, zeros, order)[0]
            actions = np.zeros(G.shape[0], dtype=np.int64)
            pos, r = np.nonzero(take)
            actions[pos] = r + 1
            return actions

        return draw

    def _after_decide(self, scores, eligible, ctx, actions):
        if self.rounding != "carry" or self.want_ is None:
            return
        K = self.want_.shape[1]
        given = np.zeros((self.n_resources, K))
        rows = actions > 0
        np.add.at(given, (actions[rows] - 1, ctx["groups"][rows]), 1.0)
        self.carry_ = np.clip(self.want_ + self._carry(K) - given, -1.0, 1.0)

    # ------------------------------------------------------------------ meta level
    def _plan_cohort(self, X: np.ndarray, ctx: dict[str, Any]) -> None:
        K, R = self._n_groups(ctx), self.n_resources
        caps = ctx["caps"]
        self.sizes_ = np.bincount(ctx["groups"], minlength=K).astype(float)
        parity = np.broadcast_to(self.sizes_ / self.sizes_.sum(), (R, K)).copy()
        shares, rates = self._plan(X, ctx, parity)
        self.shares_ = shares
        if rates is None:
            rates = shares_to_rates(shares[None], self.sizes_, caps)[0]
        rates = self._check_rates(rates, caps)
        self.want_ = rates * self.sizes_[None, :]

    def _check_rates(self, rates: np.ndarray, caps: np.ndarray) -> np.ndarray:
        return check_rates(rates, self.sizes_, caps)

    def _plan(
        self, X: np.ndarray, ctx: dict[str, Any], parity: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(shares (R, K), rates (R, K) or None)`` for this cohort: the meta round."""
        return self._meta_round(X, ctx, parity), None

    def _rate_dev(self, shares: np.ndarray, caps: np.ndarray) -> np.ndarray:
        fr = rate_ratios(shares_to_rates(shares, self.sizes_, caps), self.sizes_)
        return np.nan_to_num(np.abs(fr - 1.0), nan=0.0)

    def _feasible(self, shares: np.ndarray, caps: np.ndarray) -> np.ndarray:
        """``(C,)`` bool: inside the fairness band (budgets hold by construction)."""
        if self.fairness == "soft":
            return np.ones(shares.shape[0], dtype=bool)
        return (self._rate_dev(shares, caps) <= self.eps_f + 1e-12).all(axis=(1, 2))

    def _global(self, n: int, parity: np.ndarray) -> np.ndarray:
        conc = self.search_.concentration
        if conc is None:
            tilt = self.rng_.uniform(-self.eps_f, self.eps_f, (n, *parity.shape))
            s = parity[None] * (1.0 + tilt)
            return s / s.sum(axis=2, keepdims=True)
        alpha = np.maximum(conc * parity, 1e-3)
        return np.stack([self.rng_.dirichlet(a, size=n) for a in alpha], axis=1)

    def _local(self, n: int) -> np.ndarray:
        inc = self.incumbent_[0]
        eps = self.search_.eps_local
        u = self.rng_.uniform(-eps, eps, (n, *inc.shape))
        s = inc[None] + u if self.search_.perturbation == "additive" else inc[None] * (1.0 + u)
        s = np.clip(s, 0.0, 1.0)
        tot = s.sum(axis=2, keepdims=True)
        return np.where(tot > 0, s / np.where(tot > 0, tot, 1.0), 1.0 / s.shape[2])

    def _draw(self, make, n: int, caps: np.ndarray) -> np.ndarray:
        """Up to ``n`` feasible candidates from ``make(m)`` (at most ``10 n`` tries)."""
        shape = self.pool_.shape[1:]
        if n == 0:
            return np.zeros((0, *shape))
        tries = make(10 * n)
        got = tries[self._feasible(tries, caps)][:n]
        return got.reshape(-1, *shape)

    def _meta_round(self, X: np.ndarray, ctx: dict[str, Any], parity: np.ndarray) -> np.ndarray:
        S, caps = self.search_, ctx["caps"]
        if self.pool_.shape[2] != parity.shape[1]:
            self._reset_pool(parity.shape[1])
        self.n_meta_ += 1
        if self.inc_idx_ < 0:
            self.incumbent_ = parity[None].copy()
            glob = self._draw(lambda m: self._global(m, parity), S.n_init, caps)
            new = np.concatenate([parity[None], glob])
        else:
            new = np.concatenate(
                [
                    self._draw(self._local, S.n_candidates, caps),
                    self._draw(lambda m: self._global(m, parity), S.n_global, caps),
                ]
            )
        M = self.pool_.shape[0]
        old = np.argsort(-self.last_ucb_, kind="stable")[: S.n_reevaluate]
        if self.inc_idx_ >= 0 and self.inc_idx_ not in old:
            old = np.concatenate([old, [self.inc_idx_]])
        self.pool_ = np.concatenate([self.pool_, new])
        self.last_ucb_ = np.concatenate([self.last_ucb_, np.full(new.shape[0], np.inf)])
        cand = np.concatenate([old, M + np.arange(new.shape[0])]).astype(np.int64)
        cand = cand[self._feasible(self.pool_[cand], caps)]  # group sizes change with the cohort
        if cand.size == 0:
            self.pool_ = np.concatenate([self.pool_, parity[None]])
            self.last_ucb_ = np.concatenate([self.last_ucb_, [np.inf]])
            cand = np.array([self.pool_.shape[0] - 1])
        shares = self.pool_[cand]
        U = self._rollouts(X, ctx, shares)  # (C, B)
        mu, sd = U.mean(axis=1), U.std(axis=1, ddof=1)
        objective = mu.copy()
        if self.fairness == "soft":
            par = self._rollouts(X, ctx, parity[None]).mean()
            penalty = self._rate_dev(shares, caps).max(axis=2).sum(axis=1)
            objective -= self.fairness_penalty * abs(par) * penalty
        if S.beta_meta == "gp-ucb":
            b = math.sqrt(2 * math.log(len(mu) * self.n_meta_**2 * math.pi**2 / (6 * 0.1)))
        else:
            b = float(S.beta_meta)
        ucb = objective + b * sd
        self.last_ucb_[cand] = ucb
        choice = int(np.argmax(ucb))
        best = int(cand[int(np.argmax(objective))])
        self.incumbent_ = self.pool_[best][None].copy()
        self.meta_log_.append(
            {
                "round": self.rounds_,
                "evaluated": int(len(mu)),
                "pool": int(self.pool_.shape[0]),
                "mu": float(mu[choice]),
                "sd": float(sd[choice]),
            }
        )
        rank = np.argsort(-self.last_ucb_, kind="stable")
        keep = np.concatenate([[best], rank[rank != best]])[: S.pool_cap]
        self.pool_, self.last_ucb_ = self.pool_[keep], self.last_ucb_[keep]
        self.inc_idx_ = 0
        return shares[choice].copy()

    def _rollouts(self, X: np.ndarray, ctx: dict[str, Any], shares: np.ndarray) -> np.ndarray:
        """``(C, B)`` rollout utilities of candidate ``shares`` ``(C, R, K)`` over the cohort's
        ``L`` rounds."""
        caps, groups = ctx["caps"], ctx["groups"]
        cool = ctx["cooldowns"]
        cool = np.zeros(self.n_resources, np.int64) if cool is None else cool
        C = shares.shape[0]
        want = shares_to_rates(shares, self.sizes_, caps) * self.sizes_[None, None, :]
        fixed = None
        if self.rounding in ("floor", "largest_remainder"):
            fixed = self._counts(want, self.rng_, caps, 0.0)
        carry = np.zeros_like(want)
        mean, sd = self.model_.predict(X)
        G = mean + self.beta * sd
        ss = sort_scores(G, groups)
        last = np.full((C, *G.shape), NEVER, dtype=np.int64)
        W = np.zeros((C, *G.shape))
        L = self.cohort_length
        kernels = self._kernels()
        order = capacity_order(caps)
        for u in range(L):
            quotas = self._counts(want, self.rng_, caps, carry) if fixed is None else fixed
            if self.rounding == "carry":
                carry = want + carry - np.swapaxes(quotas, -1, -2)
            take = quota_round(ss, quotas, last, u, cool, order)
            if self.search_.count_full_effect:
                W += take
            else:
                mass = np.array([k.completed_mass(L - 1 - u) for k in kernels])
                W += take * mass[None, None, :]
        f = self.model_.sample(X, self.search_.n_rollouts, self.rng_)  # (B, n, R)
        return np.einsum("cnr,bnr->cb", W, f, optimize=True)


class EqualSplit(MetaCUB):
    """MetaCUB's base level at parity shares, without the meta level: every group's rate of
    each resource is the overall rate (the ablation of the meta level). Parameters as in
    :class:`MetaCUB`."""

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        model: str = "linear",
        model_kwargs: dict[str, Any] | None = None,
        attribution: str = "kernel_ls",
        beta: float = 1.0,
        rounding: str = "carry",
        kernels: Any = None,
        cohort_length: int = 8,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            model=model,
            model_kwargs=model_kwargs,
            attribution=attribution,
            beta=beta,
            rounding=rounding,
            kernels=kernels,
            cohort_length=cohort_length,
            seed=seed,
        )

    def _plan(self, X, ctx, parity):
        return parity.copy(), None


class FixedRates(MetaCUB):
    """MetaCUB's base level at allocation rates given by hand (every cohort).

    Parameters
    ----------
    rates:
        ``(R, K)`` rates in [0, 1] (resources x groups); rates asking for more than a capacity
        raise a ValueError naming the resource and the overshoot, unless ``clip_infeasible``
        (then they are scaled down).
    clip_infeasible:
        scale infeasible rates down instead of raising.
    n_actions, n_features, model, beta, rounding, kernels, cohort_length, seed:
        as in :class:`MetaCUB`.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        rates: Any,
        clip_infeasible: bool = False,
        model: str = "linear",
        beta: float = 1.0,
        rounding: str = "carry",
        kernels: Any = None,
        cohort_length: int = 8,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            model=model,
            beta=beta,
            rounding=rounding,
            kernels=kernels,
            cohort_length=cohort_length,
            seed=seed,
        )
        self.rates = rates
        self.clip_infeasible = clip_infeasible

    def _plan(self, X, ctx, parity):
        return np.zeros(0), np.asarray(self.rates, dtype=np.float64)

    def _check_rates(self, rates, caps):
        return check_rates(rates, self.sizes_, caps, clip_infeasible=bool(self.clip_infeasible))
