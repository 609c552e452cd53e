"""Baseline allocators, all :class:`~scarce.fair.policy.CohortPolicy` (spec §A.6).

* :class:`RandomAllocator`: random eligible members for each resource (a floor).
* :class:`LinUCBAllocator`: flat LinUCB over (member, resource) pairs with a linear model per
  resource (:class:`~scarce.fair.models.LinearOutcomeModel`), score ``mean + alpha * sd``. What
  it learns from is the attribution: ``"wait"`` (plain LinUCB under delay: an allocation is
  learned once its kernel window is complete), ``"delay_agnostic"`` (each increment credited to
  the unit's latest allocation at once), ``"kernel_ls"`` (the delay-aware flat LinUCB) or
  ``"completed_mass"``.
* :class:`GroupUCB`: the paper's single-level UCB, whose arms are (group, resource) pairs; a
  resource's capacity goes unit by unit to the group with the largest index
  ``mean + alpha sqrt(c ln t / n)`` (``n`` counts the unit just given), to a random eligible
  member. Means are delay-agnostic credits (:class:`~scarce.feedback.DelayAgnostic`);
  ``discount`` and ``window`` give the discounted and sliding-window variants (DUCB, SWUCB)
  and ``c = 3``, ``alpha = 1`` the combinatorial CUCB.
* :class:`EXP3Allocator`: exponential weights over (group, resource) arms: each unit of
  capacity goes to a group drawn with probability ``w_g / sum w`` (among groups with an
  eligible member), to a random member; ``log w = eta sum_a Y_a / (s p_a)`` over the arm's
  allocations (``Y_a`` the delay-agnostic credit, ``p_a`` the arm's share of the weights of
  the batch's groups when it was drawn, ``s`` the largest absolute credit so far).
* :class:`Oracle` and :class:`FairOracle`: know the true effects (they take the environment,
  so they are simulation references: not registered, not savable). ``FairOracle`` solves each
  round's allocation inside the fairness band (per resource, every group's rate within
  ``[1 - eps_f, 1 + eps_f]`` times the overall rate), exactly for the per-round fractional
  problem, then rounds with a carry over rounds; ``eps_f = 0`` is parity.

Learners refit at the start of each cohort (each batch with new units), as MetaCUB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.fair.models import LinearOutcomeModel
from scarce.fair.policy import CohortPolicy, capacity_order, top_by_capacity
from scarce.fair.population import carry_counts
from scarce.feedback.attribution import AllocationLog, CompletedMass, DelayAgnostic
from scarce.policies.base import uniform_choice, uniform_probabilities

ATTRIBUTION_MODES = ("wait", "delay_agnostic", "kernel_ls", "completed_mass")


class RandomAllocator(CohortPolicy):
    """Each resource to random eligible members (without capacities: a uniformly random
    eligible action per case)."""

    deterministic = False
    probability_method = "monte_carlo"

    def _scores(self, X, ctx):
        out = np.zeros((X.shape[0], self.n_actions))
        out[:, 0] = -np.inf  # always spend the capacity
        return out

    def _free(self, scores, eligible, ctx, rng):
        n, K = scores.shape
        probs = uniform_probabilities(n, K, eligible)
        actions = np.zeros(n, np.int64) if rng is None else uniform_choice(rng, n, K, eligible)
        return actions, probs

    def _select(self, scores, eligible, ctx):
        caps = ctx["caps"]

        def draw(rng: np.random.Generator) -> np.ndarray:
            random = rng.random(scores.shape)
            random[:, 0] = -np.inf
            return top_by_capacity(random, eligible, caps)

        return draw


class LinUCBAllocator(CohortPolicy):
    """Flat LinUCB over (member, resource) pairs (see the module docstring).

    Parameters
    ----------
    attribution:
        ``"wait"``, ``"delay_agnostic"``, ``"kernel_ls"`` or ``"completed_mass"``.
    alpha:
        exploration weight on the width (>= 0; 0 is greedy).
    lam:
        ridge penalty.
    n_actions, n_features, kernels, cohort_length, seed:
        as in :class:`~scarce.fair.policy.CohortPolicy`.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        attribution: str = "wait",
        alpha: float = 1.0,
        lam: float = 1.0,
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
        self.attribution = attribution
        self.alpha = alpha
        self.lam = lam

    def _check_params(self) -> None:
        super()._check_params()
        if self.attribution not in ATTRIBUTION_MODES:
            raise ValueError(
                f"attribution must be one of {ATTRIBUTION_MODES}; got {self.attribution!r}"
            )
        check_scalar(self.alpha, "alpha", low=0.0)
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)

    def _init_state(self) -> None:
        super()._init_state()
        att = CompletedMass(min_mass=1.0) if self.attribution == "wait" else self.attribution
        self.model_ = LinearOutcomeModel(
            self.n_features, self._kernels(), attribution=att, lam=self.lam
        )

    def _get_own_state(self):
        return {"model": self.model_.get_state()}

    def _set_own_state(self, state):
        self.model_.set_state(state["model"])

    def _fit(self, now):
        self.model_.fit(self.history_, now)

    def _scores(self, X, ctx):
        mean, sd = self.model_.predict(X)
        return np.concatenate([np.zeros((X.shape[0], 1)), mean + self.alpha * sd], axis=1)


def _credits(policy: CohortPolicy) -> tuple[np.ndarray, ...]:
    """``(group, resource, round, Y)`` of every allocation, ``Y`` its delay-agnostic credit
    (cached until the policy decides or learns again)."""
    key = (policy.rounds_, policy.n_updates_)
    cached = getattr(policy, "_credit_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    out = _compute_credits(policy)
    policy._credit_cache = (key, out)
    return out


def _compute_credits(policy: CohortPolicy) -> tuple[np.ndarray, ...]:
    u, r, t, g, X = policy.history_.allocations()
    if u.size == 0:
        return g, r, t, np.zeros(0)
    alloc = AllocationLog(u, r, t, np.zeros((u.size, 0)))
    _, Y, _ = DelayAgnostic().design(
        alloc, policy.history_.observations(), policy._kernels(), policy._last_round()
    )
    return g, r, t, Y


def _available(eligible: np.ndarray, served: np.ndarray, groups: np.ndarray, r: int, K: int):
    free = eligible[:, r + 1] & ~served
    return free, np.bincount(groups[free], minlength=K)


def _pick(rng: np.random.Generator, free: np.ndarray, groups: np.ndarray, g: int) -> int:
    members = np.flatnonzero(free & (groups == g))
    return int(members[rng.integers(members.size)])


class GroupUCB(CohortPolicy):
    """The paper's UCB with (group, resource) arms (see the module docstring).

    Parameters
    ----------
    alpha:
        exploration weight (2 as in the drafts; 1 for CUCB).
    c:
        constant under the log (2; 3 for CUCB).
    discount:
        weight ``discount ** age`` of an allocation ``age`` rounds old (1: none; 0.9: DUCB).
    window:
        only allocations of the last ``window`` rounds count (None: all; 50: SWUCB).
    n_actions, n_features, kernels, cohort_length, seed:
        as in :class:`~scarce.fair.policy.CohortPolicy`.
    """

    deterministic = False
    probability_method = "monte_carlo"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 2.0,
        c: float = 2.0,
        discount: float = 1.0,
        window: int | None = None,
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
        self.alpha = alpha
        self.c = c
        self.discount = discount
        self.window = window

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.alpha, "alpha", low=0.0)
        check_scalar(self.c, "c", low=0.0)
        check_scalar(self.discount, "discount", low=0.0, high=1.0, low_inclusive=False)
        if self.window is not None:
            check_positive_int(self.window, "window")

    def _arm_stats(self, K: int) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, sums)`` each ``(K groups, R)``, weighted by age."""
        g, r, t, Y = _credits(self)
        R = self.n_resources
        age = self._last_round() - t
        w = self.discount**age
        if self.window is not None:
            w = w * (age < self.window)
        K = max(K, int(g.max(initial=-1)) + 1)
        n, s = np.zeros((K, R)), np.zeros((K, R))
        np.add.at(n, (g, r), w)
        np.add.at(s, (g, r), w * Y)
        return n, s

    def _index(self, n: np.ndarray, s: np.ndarray) -> np.ndarray:
        t = max(self.rounds_ + 1, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            idx = s / n + self.alpha * np.sqrt(self.c * np.log(t) / n)
        return np.where(n > 1e-12, idx, np.inf)

    def _scores(self, X, ctx):
        g = ctx["groups"]
        n, s = self._arm_stats(self._n_groups(ctx))
        out = np.full((X.shape[0], self.n_actions), -np.inf)
        out[:, 1:] = self._index(n, s)[g]
        return out

    def _select(self, scores, eligible, ctx):
        groups, caps = ctx["groups"], ctx["caps"]
        counts, sums = self._arm_stats(self._n_groups(ctx))
        K = counts.shape[0]

        def draw(rng: np.random.Generator) -> np.ndarray:
            n = counts.copy()
            actions = np.zeros(groups.shape[0], dtype=np.int64)
            served = np.zeros(groups.shape[0], dtype=bool)
            for r in capacity_order(caps):
                for _ in range(int(caps[r])):
                    free, avail = _available(eligible, served, groups, r, K)
                    if not avail.any():
                        break
                    idx = np.where(avail > 0, self._index(n[:, r], sums[:, r]), -np.inf)
                    best = int(np.argmax(idx))
                    i = _pick(rng, free, groups, best)
                    actions[i], served[i] = r + 1, True
                    n[best, r] += 1.0
            return actions

        return draw


class EXP3Allocator(CohortPolicy):
    """Exponential weights over (group, resource) arms (see the module docstring).

    Parameters
    ----------
    eta:
        learning rate (0.1 as in the drafts).
    n_actions, n_features, kernels, cohort_length, seed:
        as in :class:`~scarce.fair.policy.CohortPolicy`.
    """

    deterministic = False
    probability_method = "monte_carlo"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        eta: float = 0.1,
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
        self.eta = eta

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.eta, "eta", low=0.0, low_inclusive=False)

    def _init_state(self) -> None:
        super()._init_state()
        self.p_arm_ = np.zeros(0)

    def _get_own_state(self):
        return {"p_arm": self.p_arm_}

    def _set_own_state(self, state):
        self.p_arm_ = np.asarray(state["p_arm"], float)

    def _log_weights(self, K: int) -> np.ndarray:
        """``(K groups, R)``: ``eta sum_a Y_a / (s p_a)`` per arm."""
        g, r, _, Y = _credits(self)
        K = max(K, int(g.max(initial=-1)) + 1)
        logw = np.zeros((K, self.n_resources))
        if Y.size:
            scale = max(float(np.abs(Y).max()), 1e-12)
            p = np.maximum(self.p_arm_[: Y.size], 1e-3)
            np.add.at(logw, (g, r), self.eta * Y / (scale * p))
        return np.clip(logw, -50.0, 50.0)

    def _scores(self, X, ctx):
        logw = self._log_weights(self._n_groups(ctx))
        out = np.zeros((X.shape[0], self.n_actions))
        out[:, 1:] = logw[ctx["groups"]]
        return out

    def _free(self, scores, eligible, ctx, rng):
        z = np.where(eligible, scores, -np.inf)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        probs = z / z.sum(axis=1, keepdims=True)
        if rng is None:
            return np.zeros(scores.shape[0], np.int64), probs
        u = rng.random(scores.shape[0])[:, None]
        actions = np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), scores.shape[1] - 1)
        return actions, probs

    def _draw_groups(self, eligible, ctx, rng):
        groups, caps = ctx["groups"], ctx["caps"]
        w_all = np.exp(self._log_weights(self._n_groups(ctx)))
        K = w_all.shape[0]
        actions = np.zeros(groups.shape[0], dtype=np.int64)
        p_case = np.ones(groups.shape[0])
        served = np.zeros(groups.shape[0], dtype=bool)
        for r in capacity_order(caps):
            for _ in range(int(caps[r])):
                free, avail = _available(eligible, served, groups, r, K)
                if not avail.any():
                    break
                w = np.where(avail > 0, w_all[:, r], 0.0)
                p = w / w.sum()
                g = int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), K - 1))
                i = _pick(rng, free, groups, g)
                actions[i], served[i], p_case[i] = r + 1, True, p[g]
        return actions, p_case

    def _select(self, scores, eligible, ctx):
        return lambda rng: self._draw_groups(eligible, ctx, rng)[0]

    def _decision_info(self, scores, eligible, ctx, actions):
        # the probability each allocated case's arm was drawn with (for the importance weight)
        groups, caps = ctx["groups"], ctx["caps"]
        w_all = np.exp(self._log_weights(self._n_groups(ctx)))
        p = np.ones(actions.shape[0])
        for r in range(self.n_resources):
            rows = actions == r + 1
            if rows.any() and caps[r] > 0:
                share = w_all[groups[rows], r] / w_all[np.unique(groups), r].sum()
                p[rows] = np.minimum(1.0, share)
        return {"p_arm": p}

    def _after_learn(self, X, actions, rewards, units, rounds, groups, info):
        p = np.ones(X.shape[0]) if info is None or "p_arm" not in info else info["p_arm"]
        self.p_arm_ = np.concatenate([self.p_arm_, np.asarray(p, float)[actions > 0]])


class Oracle(CohortPolicy):
    """Top eligible members by the true effect (the environment's ``expected_rewards`` of the
    batch it last produced): the clairvoyant, unconstrained by fairness.

    Parameters
    ----------
    env:
        the :class:`~scarce.fair.FairAllocationEnv` being played.
    n_actions, n_features, seed:
        as in :class:`~scarce.fair.policy.CohortPolicy` (default: the environment's).
    """

    def __init__(
        self,
        *,
        env: Any,
        n_actions: int | None = None,
        n_features: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=env.n_actions if n_actions is None else n_actions,
            n_features=env.n_features if n_features is None else n_features,
            seed=seed,
        )
        self.env = env

    def _scores(self, X, ctx):
        return self.env.expected_rewards(X)


class FairOracle(Oracle):
    """The clairvoyant inside the fairness band (see the module docstring).

    Each round, for each resource (decreasing capacity), the fractional per-group quotas that
    maximise the true effect inside the band (:func:`band_quotas`) are rounded with a carry
    over rounds (:func:`~scarce.fair.population.carry_counts`), so the realised rates keep the
    band over a run; each group's quota goes to its members with the largest effects. It
    operates under MetaCUB's constraints: the band, and the whole capacity spent.

    Parameters
    ----------
    env:
        the environment.
    eps_f:
        half-width of the band (0.2, as MetaCUB's); 0 gives parity quotas.
    n_actions, n_features, seed:
        as in :class:`Oracle`.
    """

    def __init__(
        self,
        *,
        env: Any,
        eps_f: float = 0.2,
        n_actions: int | None = None,
        n_features: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(env=env, n_actions=n_actions, n_features=n_features, seed=seed)
        self.eps_f = eps_f

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.eps_f, "eps_f", low=0.0)

    def _init_state(self) -> None:
        super()._init_state()
        self.carry_ = np.zeros((self.n_resources, 0))

    def _plan(self, scores, eligible, ctx):
        """``(actions, quotas (R, K))`` of the round, given the carry."""
        groups, caps = ctx["groups"], ctx["caps"]
        K = max(int(groups.max(initial=0)) + 1, self.carry_.shape[1])
        carry = self.carry_ if self.carry_.shape[1] == K else np.zeros((self.n_resources, K))
        sizes = np.bincount(groups, minlength=K).astype(float)
        actions = np.zeros(groups.shape[0], dtype=np.int64)
        served = np.zeros(groups.shape[0], dtype=bool)
        quotas = np.zeros((self.n_resources, K))
        for r in capacity_order(caps):
            free = eligible[:, r + 1] & ~served
            members = [np.flatnonzero(free & (groups == k)) for k in range(K)]
            ordered = [m[np.argsort(-scores[m, r + 1], kind="stable")] for m in members]
            quotas[r] = band_quotas([scores[m, r + 1] for m in ordered], sizes, caps[r], self.eps_f)
            counts = carry_counts(quotas[r][None], carry[r][None], caps[r : r + 1])[0]
            for k in range(K):
                chosen = ordered[k][: counts[k]]
                actions[chosen], served[chosen] = r + 1, True
        return actions, quotas, carry

    def _select(self, scores, eligible, ctx):
        actions = self._plan(scores, eligible, ctx)[0]
        return lambda rng: actions

    def _after_decide(self, scores, eligible, ctx, actions):
        _, quotas, carry = self._plan(scores, eligible, ctx)
        given = np.zeros(quotas.shape)
        rows = actions > 0
        np.add.at(given, (actions[rows] - 1, ctx["groups"][rows]), 1.0)
        self.carry_ = np.clip(quotas + carry - given, -1.0, 1.0)

    def _get_own_state(self):
        return {"carry": self.carry_}

    def _set_own_state(self, state):
        self.carry_ = np.asarray(state["carry"], float).reshape(self.n_resources, -1)


def band_quotas(
    values: list[np.ndarray], sizes: np.ndarray, capacity: float, eps: float
) -> np.ndarray:
    """``(K,)`` fractional per-group quotas maximising ``sum_k V_k(q_k)`` subject to
    ``sum_k q_k <= capacity`` and ``(1 - eps) rho |I_k| <= q_k <= (1 + eps) rho |I_k|``,
    ``rho = capacity / sum_k |I_k|`` (bounds cut to the ``len(values[k])`` candidates), where
    ``V_k`` interpolates the cumulative sums of group ``k``'s candidate values ``values[k]``
    (sorted decreasingly): the exact optimum of this concave separable problem, by filling the
    steepest unit segments first. Like MetaCUB's plan, it spends the whole capacity (a
    negative value is taken when nothing else fits)."""
    K = len(values)
    avail = np.array([v.shape[0] for v in values], dtype=float)
    rho = capacity / max(sizes.sum(), 1.0)
    lo = np.minimum((1.0 - eps) * rho * sizes, avail)
    hi = np.minimum((1.0 + eps) * rho * sizes, avail)
    q = lo.copy()
    left = capacity - q.sum()
    segments = []
    for k in range(K):
        j = int(np.floor(lo[k]))
        while j < hi[k] - 1e-12:
            start, stop = max(lo[k], j), min(hi[k], j + 1)
            if stop > start + 1e-12:
                segments.append((float(values[k][j]), k, stop - start))
            j += 1
    segments.sort(key=lambda s: -s[0])
    for _, k, length in segments:
        if left <= 1e-12:
            break
        take = min(length, left)
        q[k] += take
        left -= take
    return q
