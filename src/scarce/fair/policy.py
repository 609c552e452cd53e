"""The ``"allocation"`` variant of the policy protocol, shared by every fair allocator.

A batch ``X`` ``(n, d)`` is one round's cohort; ``actions`` ``(n,)`` say what each member gets
(0: nothing, ``r + 1``: resource ``r``). The decisions of a batch are coupled by decision-time
context (declared keywords, given by :meth:`scarce.fair.FairAllocationEnv.context_extras` in
the loop or by the caller):

* ``capacities`` ``(K,)`` or ``(n, K)`` (equal rows): how many cases of the batch may take each
  action (entry 0, nothing, is not limited). Without capacities nothing couples the cases:
  each takes its best eligible action (the per-case rule).
* ``groups`` ``(n,)`` ints: the subgroup of each case (one group when absent).
* ``units`` ``(n,)`` ints: who each case is, across rounds. A batch whose units differ from the
  previous batch's starts a new cohort: the model is refitted on everything observed so far
  and the meta level replans (so within a cohort the scores are fixed, spec §A.5). Without
  units every case is a new individual and every batch its own cohort; the model is then
  refitted as soon as feedback arrives, so ``action_probabilities`` describes the next
  decision. (With units, ``action_probabilities`` at a cohort's first round describes the
  state before that refit.)
* ``cooldowns`` ``(K,)`` or ``(n, K)``: rounds after receiving an action during which it is not
  eligible again (what the meta level's rollouts simulate; the mask itself comes as
  ``eligible``).

With capacities, resources are served in decreasing order of capacity (ties by id); a case gets
at most one resource, only one it is eligible for and only when its score for it beats its score
for nothing (``scores[:, 0]``; -inf for allocators that always spend the capacity). Action 0
must then be eligible for every case.

Feedback (``update(X, actions, rewards, info=decision.info, round_outcome=..., individual=...)``):
``rewards`` ``(n,)`` are what each case showed at its round: its own observed increment
(``individual`` True) or an equal share of the round's aggregate outcome (False);
``round_outcome`` ``(n,)`` is the round's total over everyone still releasing effects. A policy
records the allocations (unit, resource, round from ``info``, group, features) and the
observations in a :class:`~scarce.fair.models.History`: its own rows, and one remainder row
per round (``round_outcome`` minus the individual rewards: what units no longer in the batch
released), so a delay attribution (:mod:`scarce.feedback.attribution`) can use them with the
kernels the policy assumes (``kernels``, as the environment suggests, or misspecified). A
round's cases may come in several updates (delayed feedback; the service learns one case at a
time): the remainder is corrected as their individual rewards arrive.

Probabilities: per case, the probability of the chosen action. Exact for the per-case rule and
for allocators that are deterministic given their scores; otherwise (random tie-breaks,
rounding, sampling under capacities) estimated from repeated draws of the same selection with a
generator derived from the decision (tag ``probability_method = "monte_carlo"``), without
touching the policy's own random stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int
from scarce.fair.models import History
from scarce.fair.population import NEVER
from scarce.fair.selection import quota_round, sort_scores
from scarce.feedback.kernels import DelayKernel, KernelSpec, kernels_from_spec
from scarce.policies.base import masked

#: draws behind a Monte Carlo probability
MC_DRAWS = 256


def capacity_order(caps: np.ndarray) -> np.ndarray:
    """Resources (0-based) in decreasing capacity, ties by id."""
    return np.argsort(-caps, kind="stable")


def top_by_capacity(
    scores: np.ndarray,
    eligible: np.ndarray,
    caps: np.ndarray,
    tiebreak: np.ndarray | None = None,
) -> np.ndarray:
    """``(n,)`` actions: each resource ``r`` (in :func:`capacity_order`) to its ``caps[r]``
    best-scored eligible, not yet served cases whose score beats nothing's (ties: lower
    ``tiebreak``, default the case index).

    ``scores``, ``eligible``: ``(n, K)``; ``caps``: ``(R,)`` capacities of the resources."""
    n, K = scores.shape
    elig = eligible[:, 1:] & (scores[:, 1:] > scores[:, :1])
    ss = sort_scores(scores[:, 1:], np.zeros(n, dtype=np.int64), tiebreak=tiebreak)
    last = np.where(elig, NEVER, 0)[None].astype(np.int64)
    quotas = caps[None, None, :].astype(np.int64)
    take = quota_round(ss, quotas, last, 0, np.zeros(K - 1, np.int64), capacity_order(caps))[0]
    actions = np.zeros(n, dtype=np.int64)
    pos, r = np.nonzero(take)
    actions[pos] = r + 1
    return actions


class CohortPolicy(Policy):
    """Base class of the fair allocators (the ``"allocation"`` variant; module docstring).

    Parameters
    ----------
    n_actions:
        ``K = R + 1``: nothing plus ``R`` resources (>= 2).
    n_features:
        ``d``.
    kernels:
        the delay kernel the policy assumes for each resource: None (instant), one spec for all
        (``"instant"``, ``"type1"``, ``"type2"`` or a list of weights) or a list of ``R`` specs.
        A sweep or config passes the environment's true kernels unless given.
    cohort_length:
        ``L``: rounds a cohort stays (the meta level's planning window; the kernel families
        scale with it).
    seed:
        int, Generator or None: all of the policy's randomness.

    Notes
    -----
    Subclasses implement :meth:`_scores` (``(n, K)``; column 0 is the bar a resource must beat)
    and may override :meth:`_select` (the coupled rule under capacities), :meth:`_free` (the
    per-case rule), :meth:`_start_cohort` and :meth:`_after_learn`.
    """

    action_type = "allocation"
    layouts = ("shared_context",)
    #: allocation policies learn from bandit feedback only (an allocation's effect is released
    #: over later rounds, mixed with others)
    full_information = False
    deterministic = True

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        kernels: KernelSpec | list[KernelSpec] | None = None,
        cohort_length: int = 8,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.kernels = kernels
        self.cohort_length = cohort_length

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.n_actions, "n_actions", minimum=2)
        check_positive_int(self.cohort_length, "cohort_length")
        kernels_from_spec(self.kernels, self.n_actions - 1, self.cohort_length)

    @property
    def n_resources(self) -> int:
        return self.n_actions - 1

    def _kernels(self) -> list[DelayKernel]:
        return kernels_from_spec(self.kernels, self.n_resources, self.cohort_length)

    def _context_keywords(self) -> tuple[str, ...]:
        return ("groups", "capacities", "units", "cooldowns")

    def _extra_keywords(self) -> tuple[str, ...]:
        return ("info", "round_outcome", "individual")

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        self.rounds_ = 0
        self.next_unit_ = 0
        self.cohort_units_ = np.zeros(0, dtype=np.int64)
        self.summed_rounds_ = np.zeros(0, dtype=np.int64)
        self.n_groups_ = 0
        self.fit_round_ = -1
        self.eager_ = False
        self.last_given_ = np.zeros(0, dtype=np.int64)
        self.history_ = History(self.n_features)
        # sum of the individual observations of each round that has no remainder row yet, in
        # the order they were recorded (what a scan of the history would add up)
        self.pending_sums_: dict[int, float] = {}

    def _get_learned_state(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds_,
            "next_unit": self.next_unit_,
            "cohort_units": self.cohort_units_,
            "summed_rounds": self.summed_rounds_,
            "n_groups": self.n_groups_,
            "fit_round": self.fit_round_,
            "eager": self.eager_,
            "last_given": self.last_given_,
            "history": self.history_.get_state(),
            "own": self._get_own_state(),
        }

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.rounds_ = int(state["rounds"])
        self.next_unit_ = int(state["next_unit"])
        self.cohort_units_ = np.asarray(state["cohort_units"], np.int64)
        self.summed_rounds_ = np.asarray(state["summed_rounds"], np.int64)
        self.n_groups_ = int(state["n_groups"])
        self.fit_round_ = int(state["fit_round"])
        self.eager_ = bool(state["eager"])
        self.last_given_ = np.asarray(state["last_given"], np.int64)
        self.history_.set_state(state["history"])
        self.pending_sums_ = self._scan_own_sums()
        self._set_own_state(state["own"])

    def _get_own_state(self) -> dict[str, Any]:
        """Subclass state beyond the history (models, plans)."""
        return {}

    def _set_own_state(self, state: dict[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------ context
    def _context(
        self, n: int, groups: Any, capacities: Any, units: Any, cooldowns: Any
    ) -> dict[str, Any]:
        """Validated decision-time context."""
        if groups is None:
            g = np.zeros(n, dtype=np.int64)
        else:
            g = np.asarray(groups)
            if g.shape != (n,) or g.dtype.kind not in "iu" or (g.size and g.min() < 0):
                raise ValueError(f"groups must be ({n},) non-negative ints; got {g.shape}")
            g = g.astype(np.int64)
        caps = self._per_round(capacities, n, "capacities")
        cool = self._per_round(cooldowns, n, "cooldowns")
        if units is not None:
            u = np.asarray(units)
            if u.shape != (n,) or u.dtype.kind not in "iu" or (u.size and u.min() < 0):
                raise ValueError(f"units must be ({n},) non-negative ints; got {u.shape}")
            u = u.astype(np.int64)
        else:
            u = None
        return {"groups": g, "caps": caps, "units": u, "cooldowns": cool}

    def _per_round(self, value: Any, n: int, name: str) -> np.ndarray | None:
        """``(R,)`` resource entries of a ``(K,)`` or ``(n, K)`` per-round rule."""
        if value is None:
            return None
        K = self.n_actions
        arr = np.asarray(value)
        if arr.shape == (n, K):
            if n and not (arr == arr[:1]).all():
                raise ValueError(f"{name} must have equal rows (one rule per round)")
            arr = arr[0] if n else np.zeros(K)
        if arr.shape != (K,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"{name} must be ({K},) or ({n}, {K}) non-negative numbers; got {arr.shape}"
            )
        return np.floor(arr[1:]).astype(np.int64)

    def _n_groups(self, ctx: dict[str, Any]) -> int:
        """Groups seen so far, this batch's included."""
        return max(self.n_groups_, int(ctx["groups"].max(initial=-1)) + 1, 1)

    def _new_cohort(self, units: np.ndarray | None) -> bool:
        return units is None or not np.array_equal(units, self.cohort_units_)

    # ------------------------------------------------------------------ deciding
    def _decide(
        self,
        X: np.ndarray,
        eligible: np.ndarray | None,
        groups: Any = None,
        capacities: Any = None,
        units: Any = None,
        cooldowns: Any = None,
    ) -> Decision:
        n, K = X.shape[0], self.n_actions
        ctx = self._context(n, groups, capacities, units, cooldowns)
        elig = np.ones((n, K), dtype=bool) if eligible is None else eligible
        self.n_groups_ = max(self.n_groups_, int(ctx["groups"].max(initial=-1)) + 1)
        self.eager_ = ctx["units"] is None
        if self._new_cohort(ctx["units"]):
            self._start_cohort(X, ctx)
            self.cohort_units_ = (
                np.zeros(0, np.int64) if ctx["units"] is None else ctx["units"].copy()
            )
        if ctx["units"] is None:
            ids = np.arange(self.next_unit_, self.next_unit_ + n, dtype=np.int64)
            self.next_unit_ += n
        else:
            ids = ctx["units"]
            self.next_unit_ = max(self.next_unit_, int(ids.max(initial=-1)) + 1)
        info = {
            "unit": ids,
            "round": np.full(n, self.rounds_, dtype=np.int64),
            "group": ctx["groups"],
        }
        scores = masked(self._scores(X, ctx), elig)
        if ctx["caps"] is None:
            actions, probs = self._free(scores, elig, ctx, self.rng_)
            self.rounds_ += 1
            return Decision(actions, probs[np.arange(n), actions], scores, info=info)
        if not elig[:, 0].all():
            raise ValueError(
                "eligible: action 0 (nothing) must be eligible for every case when capacities "
                "are given (a case that gets no resource takes action 0)"
            )
        draw = self._select(scores, elig, ctx)
        actions = draw(self.rng_)
        info.update(self._decision_info(scores, elig, ctx, actions))
        self._after_decide(scores, elig, ctx, actions)
        key = (self.rounds_, self.n_updates_)
        self.rounds_ += 1
        if self.deterministic:
            return Decision(actions, np.ones(n), scores, info=info)

        def probabilities() -> np.ndarray:
            freq = _frequencies(draw, n, K, key, MC_DRAWS, extra=actions)
            return freq[np.arange(n), actions]

        return Decision(actions, None, scores, probability_fn=probabilities, info=info)

    def _action_probabilities(
        self,
        X: np.ndarray,
        eligible: np.ndarray | None,
        groups: Any = None,
        capacities: Any = None,
        units: Any = None,
        cooldowns: Any = None,
    ) -> np.ndarray:
        n, K = X.shape[0], self.n_actions
        ctx = self._context(n, groups, capacities, units, cooldowns)
        elig = np.ones((n, K), dtype=bool) if eligible is None else eligible
        scores = masked(self._scores(X, ctx), elig)
        if ctx["caps"] is None:
            return self._free(scores, elig, ctx, None)[1]
        draw = self._select(scores, elig, ctx)
        if self.deterministic:
            out = np.zeros((n, K))
            out[np.arange(n), draw(np.random.default_rng(0))] = 1.0
            return out
        return _frequencies(draw, n, K, (self.rounds_, self.n_updates_), MC_DRAWS)

    # ------------------------------------------------------------------ hooks
    def _scores(self, X: np.ndarray, ctx: dict[str, Any]) -> np.ndarray:
        """``(n, K)`` scores; column 0 is the bar a resource's score must beat."""
        raise NotImplementedError

    def _start_cohort(self, X: np.ndarray, ctx: dict[str, Any]) -> None:
        """Called at the first round of a cohort (before :meth:`_scores`): refits."""
        self._refit()

    def _refit(self) -> None:
        """Fit the model through the last round whose feedback can have arrived, once."""
        now = self._last_round()
        if now > self.fit_round_:
            self._fit(now)
            self.fit_round_ = now

    def _fit(self, now: int) -> None:
        """Refit learned models on the history through round ``now`` (models override)."""

    def _free(
        self,
        scores: np.ndarray,
        eligible: np.ndarray,
        ctx: dict[str, Any],
        rng: np.random.Generator | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The per-case rule (no capacities): ``(actions, (n, K) probabilities)``; the best
        eligible action, ties to the lowest id. ``rng`` None: probabilities only."""
        actions = np.argmax(scores, axis=1)
        probs = np.zeros(scores.shape)
        probs[np.arange(scores.shape[0]), actions] = 1.0
        return actions, probs

    def _select(
        self, scores: np.ndarray, eligible: np.ndarray, ctx: dict[str, Any]
    ) -> Callable[[np.random.Generator], np.ndarray]:
        """The coupled rule under capacities, as ``draw(rng) -> (n,) actions`` (a pure function
        of ``rng``, so the same draw can be repeated for probabilities)."""
        caps = ctx["caps"]
        return lambda rng: top_by_capacity(scores, eligible, caps)

    def _decision_info(
        self, scores: np.ndarray, eligible: np.ndarray, ctx: dict[str, Any], actions: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Extra per-case ``Decision.info`` entries (what ``update`` needs back)."""
        return {}

    def _after_decide(
        self, scores: np.ndarray, eligible: np.ndarray, ctx: dict[str, Any], actions: np.ndarray
    ) -> None:
        """Bookkeeping once a capacitated round is decided (e.g. rounding carries)."""

    # ------------------------------------------------------------------ learning
    def _learn(
        self,
        X: np.ndarray,
        actions: np.ndarray | None,
        rewards: np.ndarray | None,
        full_rewards: np.ndarray | None,
        info: dict[str, np.ndarray] | None = None,
        round_outcome: Any = None,
        individual: Any = None,
    ) -> None:
        if actions is None or rewards is None:
            raise ValueError(
                "full_rewards: allocation policies learn from bandit feedback only (actions and "
                "rewards); an allocation's effect is released over later rounds"
            )
        n = X.shape[0]
        if info is not None and "unit" in info and "round" in info:
            units = np.asarray(info["unit"], np.int64)
            rounds = np.asarray(info["round"], np.int64)
            groups = np.asarray(info.get("group", np.zeros(n)), np.int64)
        else:  # fed by hand without the decision's info: new individuals of the last round
            units = np.arange(self.next_unit_, self.next_unit_ + n, dtype=np.int64)
            self.next_unit_ += n
            rounds = np.full(n, max(self.rounds_ - 1, 0), dtype=np.int64)
            groups = np.zeros(n, dtype=np.int64)
        own = np.ones(n, dtype=bool)
        if individual is not None:
            own = np.asarray(individual, dtype=bool).reshape(n)
        total = None
        if round_outcome is not None:
            total = np.asarray(round_outcome, dtype=np.float64).reshape(n)
            if not np.all(np.isfinite(total)):
                raise ValueError("round_outcome must be finite")
        given = actions > 0
        self.history_.add_allocations(
            units[given], actions[given] - 1, rounds[given], groups[given], X[given]
        )
        # own rows matter only where a window is open (under the assumed kernels) or something
        # was seen; a member with neither released nothing, so dropping its 0 loses nothing
        top = int(units.max(initial=-1)) + 1
        if top > self.last_given_.shape[0]:
            grown = np.full(max(top, 2 * self.last_given_.shape[0]), np.iinfo(np.int64).min // 2)
            grown[: self.last_given_.shape[0]] = self.last_given_
            self.last_given_ = grown
        np.maximum.at(self.last_given_, units[given], rounds[given])
        D = max(k.support for k in self._kernels())
        keep = own & ((rounds - self.last_given_[units] < D) | (rewards != 0))
        earlier = dict(self.pending_sums_) if total is not None else {}
        self.history_.add_observations(units[keep], rounds[keep], rewards[keep])
        self._add_remainders(rounds, own, rewards, total, earlier)
        self._add_pending(rounds, keep, rewards)
        self._after_learn(X, actions, rewards, units, rounds, groups, info)
        if self.eager_:  # every batch is its own cohort: learn now, so the state is current
            self._refit()

    def _scan_own_sums(self) -> dict[int, float]:
        """``pending_sums_`` rebuilt from the history (after loading a saved state)."""
        obs = self.history_.observations()
        sel = (obs.unit >= 0) & ~np.isin(obs.round, self.summed_rounds_)
        out: dict[int, float] = {}
        for t, v in zip(obs.round[sel], obs.value[sel], strict=True):
            out[int(t)] = out.get(int(t), 0.0) + float(v)
        return out

    def _add_pending(self, rounds: np.ndarray, kept: np.ndarray, rewards: np.ndarray) -> None:
        """Add this update's recorded individual observations (``kept``) to the rounds still
        waiting for their remainder row; forget this update's rounds that have one now."""
        summed = np.isin(rounds, self.summed_rounds_)
        for t in np.unique(rounds[summed]):
            self.pending_sums_.pop(int(t), None)
        waiting = kept & ~summed
        for t, v in zip(rounds[waiting], rewards[waiting], strict=True):
            self.pending_sums_[int(t)] = self.pending_sums_.get(int(t), 0.0) + float(v)

    def _add_remainders(
        self,
        rounds: np.ndarray,
        own: np.ndarray,
        rewards: np.ndarray,
        total: np.ndarray | None,
        earlier: dict[int, float],
    ) -> None:
        """Remainder rows (unit -1): what units without a row of their own released.

        A round's first total (``round_outcome``) gives one row: the total minus the
        individual rewards of its cases seen so far (``earlier``: of previous updates, plus
        this one's). A round's cases may arrive over several updates (delayed feedback, one
        case at a time in the service): an individual reward of a round that already has its
        remainder comes with a correction row of minus that reward (rows of one (unit, round)
        are summed), so the remainder always stands for what no case of the round reported."""
        summed = np.isin(rounds, self.summed_rounds_)
        for t in np.unique(rounds[summed & own]):
            fix = -float(rewards[(rounds == t) & own].sum())
            if fix != 0.0:
                self.history_.add_observations(np.array([-1]), np.array([t]), np.array([fix]))
        if total is None:
            return
        new = np.unique(rounds[~summed])
        for t in new:
            rows = rounds == t
            seen = earlier.get(int(t), 0.0) + rewards[rows & own].sum()
            rest = float(total[rows][0] - seen)
            self.history_.add_observations(np.array([-1]), np.array([t]), np.array([rest]))
        self.summed_rounds_ = np.union1d(self.summed_rounds_, new)

    def _after_learn(
        self,
        X: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        units: np.ndarray,
        rounds: np.ndarray,
        groups: np.ndarray,
        info: dict[str, np.ndarray] | None,
    ) -> None:
        """Subclass bookkeeping after the history is updated."""

    def _last_round(self) -> int:
        """The last round whose feedback can have arrived (the round before this one)."""
        return self.rounds_ - 1

    # ------------------------------------------------------------------ contract hooks
    @classmethod
    def _unit_test_feedback(
        cls, rng: np.random.Generator, X: np.ndarray, decision: Decision, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Rewards, the decision's info, and a round total for the checks."""
        n = X.shape[0]
        rewards = rng.normal(size=n)
        return {
            "actions": decision.actions,
            "rewards": rewards,
            "info": decision.info,
            "round_outcome": np.full(n, rewards.sum() + rng.normal()),
            "individual": np.ones(n, dtype=bool),
        }


def _frequencies(
    draw: Callable[[np.random.Generator], np.ndarray],
    n: int,
    K: int,
    key: tuple[int, int],
    n_draws: int,
    extra: np.ndarray | None = None,
) -> np.ndarray:
    """``(n, K)`` how often each case got each action over ``n_draws`` repetitions of
    ``draw`` with a generator derived from ``key`` (plus the actual draw ``extra``, so the
    chosen action's frequency is never 0)."""
    rng = np.random.default_rng(np.random.SeedSequence(20_241_113, spawn_key=key))
    counts = np.zeros((n, K))
    rows = np.arange(n)
    for _ in range(n_draws):
        counts[rows, draw(rng)] += 1.0
    total = n_draws
    if extra is not None:
        counts[rows, extra] += 1.0
        total += 1
    return counts / total
