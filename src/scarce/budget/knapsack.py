"""Contextual bandits with knapsacks (Agrawal and Devanur, 2016, "LinCBwK"), generalised to
GLM rewards and costs, with a hard budget guarantee.

Each round the learner scores every action by its optimistic reward minus the priced
pessimistic consumption, ``UCB_r(a) - Z * <theta_t, LCB_c(a)>``, and plays the best
*affordable* action. The parts have their own modules: the reward and consumption models
and their bounds (:mod:`scarce.budget.models`), the dual prices ``theta_t`` and ``Z``
(:mod:`scarce.budget.dual`), the parameter groups (:mod:`scarce.budget.specs`) and the
budget itself, a :class:`scarce.core.ledger.Ledger` (the one the simulation loop and the
decision service use).

Budget guarantee
----------------
An action is affordable only if, for every resource, its consumption bound ``cost_bound``
fits in what is left after the spending reported so far **and** the bounds reserved for
decisions not yet reported (several decisions in one batch, or a delayed update). Realised
consumptions above ``cost_bound`` are rejected in :meth:`update`, so the total realised
consumption of the decisions this policy makes can never exceed the budget. The free action
(A&D's no-op; the model in the deferral problem) consumes nothing and is always affordable;
once nothing else is, the policy plays it (A&D's stopping rule; the episode continues).

``Decision.info`` carries, per case, ``cost_lcb`` ``(n, m)`` (the pessimistic consumption of
the chosen action the scores used) and ``priced`` ``(n,)`` (made with prices: after the
warm-up); ``update(..., info=decision.info)`` takes the dual step with them (without it, an
update by hand, they are recomputed from the current state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.budget.dual import (
    DualPrices,
    default_eta,
    estimate_z,
    theory_gamma,
    warmup_probabilities,
)
from scarce.budget.estimators import LINKS, LinearBank
from scarce.budget.models import OutcomeModels
from scarce.budget.replicated import BudgetedReplicas
from scarce.budget.single import SingleCasePath
from scarce.budget.specs import ConfidenceSpec, DualSpec, as_spec, plain_param, spec_dict
from scarce.core.decision import Decision
from scarce.core.ledger import TOLERANCE, Ledger
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int
from scarce.models.compiled import check_backend
from scarce.policies import register_policy


@register_policy
class KnapsackBandit(SingleCasePath, Policy):
    """LinCBwK with GLM links, multiplicative-weights dual prices and a hard budget.

    Parameters
    ----------
    n_actions:
        ``K``, number of actions, including the free one.
    n_features:
        context dimension ``d``; contexts are ``(n, d)`` with disjoint per-action parameters.
    budget:
        total budget ``B`` per resource, a float or ``(n_resources,)`` floats, > 0.
    horizon:
        ``T``, the known number of rounds.
    n_resources:
        ``m``, number of resources.
    free_action:
        the action that consumes nothing (A&D's no-op, or the model in deferral); its reward
        is learned like any other.
    cost_bound:
        largest consumption of one round: a float, ``(m,)`` or ``(K, m)`` (the free action's
        row is forced to 0). Budget checks and clipping of cost estimates use it.
    reward_link, cost_link:
        ``"identity"`` or ``"logistic"``; ``reward_link`` may be a list of ``K`` links (one
        per action), ``cost_link`` one of ``m`` (one per resource).
    confidence:
        :class:`~scarce.budget.specs.ConfidenceSpec` (or a dict of its fields): radius,
        regularisation and the reward range.
    dual:
        :class:`~scarce.budget.specs.DualSpec` (or a dict of its fields): ``Z`` and the dual
        step.
    backend:
        ``"numpy"`` (default) or ``"numba"``: with identity links, one priced case at a time
        (``decide`` on one ``(1, d)`` context without ``eligible``, the update of one
        decision) scores and learns with compiled kernels
        (:mod:`scarce.models.compiled`; needs numba, the ``fast`` extra). They agree with
        the NumPy backend to rounding, not bit for bit; the ledger, the prices, the checks
        and every other path are the same code.
    seed:
        seed or generator (warm-up draws).

    Notes
    -----
    ``update(X, actions, rewards, costs=..., info=...)``: ``costs`` ``(n, m)`` (``(n,)`` for
    one resource) is what the chosen actions consumed (0 for the free action), or
    ``(n, K, m)`` every action's consumption (full information on costs: every costly
    action's model learns from every row). ``update(X, full_rewards=..., costs=(n, K, m))``
    without ``actions`` learns from cases this policy did not decide (an offline log): the
    models learn, nothing is booked against the budget.
    """

    deterministic = False
    layouts = (SHARED_CONTEXT,)
    # one model per design for several targets (False: one model per target, e.g. networks)
    _multi_target_models = True

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        budget: float | Sequence[float],
        horizon: int,
        n_resources: int = 1,
        free_action: int = 0,
        cost_bound: float | Sequence[float] | np.ndarray = 1.0,
        reward_link: str | Sequence[str] = "identity",
        cost_link: str | Sequence[str] = "identity",
        confidence: ConfidenceSpec | dict[str, Any] | None = None,
        dual: DualSpec | dict[str, Any] | None = None,
        backend: str = "numpy",
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.backend = backend
        self.budget = budget
        self.horizon = horizon
        self.n_resources = n_resources
        self.free_action = free_action
        self.cost_bound = cost_bound
        self.reward_link = reward_link
        self.cost_link = cost_link
        self.confidence = confidence
        self.dual = dual

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments in plain JSON form (arrays as lists, the parameter groups as
        complete dicts), so ``cls(**get_params())`` and a saved copy compare equal."""
        params = {k: plain_param(v) for k, v in super().get_params().items()}
        for name, cls in (("confidence", ConfidenceSpec), ("dual", DualSpec)):
            try:
                params[name] = spec_dict(as_spec(cls, params[name], name))
            except (TypeError, ValueError):
                pass  # reported as given; _check_params will say what is wrong
        return params

    @property
    def confidence_(self) -> ConfidenceSpec:
        """The confidence parameters in effect."""
        return as_spec(ConfidenceSpec, self.confidence, "confidence")

    @property
    def dual_(self) -> DualSpec:
        """The dual parameters in effect."""
        return as_spec(DualSpec, self.dual, "dual")

    def _links(self, value: str | Sequence[str], n: int, name: str) -> list[str]:
        links = [value] * n if isinstance(value, str) else list(value)
        if len(links) != n or any(v not in LINKS for v in links):
            raise ValueError(
                f"{name} must be one of {LINKS} or a list of {n} of them; got {value!r}"
            )
        return links

    def _reward_links(self) -> list[str]:
        return self._links(self.reward_link, self.n_actions, "reward_link")

    def _check_params(self) -> None:
        super()._check_params()
        K = self.n_actions
        m = check_positive_int(self.n_resources, "n_resources")
        T = check_positive_int(self.horizon, "horizon")
        if K < 2:
            raise ValueError(f"n_actions must be >= 2 (a free action and a costly one); got {K}")
        free = self.free_action
        if isinstance(free, bool) or not isinstance(free, (int, np.integer)) or not 0 <= free < K:
            raise ValueError(f"free_action must be an int in [0, {K}); got {free!r}")
        try:
            B = np.broadcast_to(np.asarray(self.budget, dtype=np.float64), (m,)).copy()
        except (TypeError, ValueError):
            B = None
        if B is None or not np.all(np.isfinite(B)) or np.any(B <= 0):
            raise ValueError(
                f"budget must be a positive finite float or ({m},) of them; got {self.budget!r}"
            )
        try:
            cb = np.broadcast_to(np.asarray(self.cost_bound, dtype=np.float64), (K, m)).copy()
        except (TypeError, ValueError):
            raise ValueError(
                f"cost_bound must be a float, ({m},) or ({K}, {m}); got {self.cost_bound!r}"
            ) from None
        if not np.all(np.isfinite(cb)) or np.any(cb < 0):
            raise ValueError("cost_bound must be finite and >= 0")
        cb[free] = 0.0
        rlinks = self._reward_links()
        clinks = self._links(self.cost_link, m, "cost_link")
        conf = self.confidence_
        conf.check("confidence")
        lo, hi = conf.reward_range
        if "logistic" in rlinks and (lo < 0 or hi > 1):
            raise ValueError(
                f"a logistic reward link needs confidence.reward_range inside [0, 1]; got {(lo, hi)!r}"
            )
        for j, link in enumerate(clinks):
            if link == "logistic" and np.any(cb[:, j] > 1):
                raise ValueError(
                    f"cost_link[{j}] = 'logistic' needs cost_bound <= 1 for resource {j} "
                    "(the targets of a logistic model lie in [0, 1])"
                )
        dual = self.dual_
        dual.check("dual")
        check_backend(self.backend)
        self._budget, self._cost_bound, self._T = B, cb, T
        self._rlinks, self._clinks = rlinks, clinks
        self._conf, self._dual = conf, dual

    # ------------------------------------------------------------------ state
    def _make_bank(
        self, n_models: int, link: str, seeds: np.ndarray, n_targets: int | None = None
    ) -> Any:
        lam = self._conf.lam if link == "identity" else self._conf.lam_logistic
        return LinearBank(
            n_models, self.n_features, link, lam, n_targets=n_targets, backend=self.backend
        )

    def _init_state(self) -> None:
        if self.context_mode_ != SHARED_CONTEXT:
            raise ValueError(
                f"{type(self).__name__} needs shared contexts X of shape (n, {self.n_features}); "
                "per-action features are not supported"
            )
        K, m, T = self.n_actions, self.n_resources, self._T
        seeds = np.random.SeedSequence(int(self.rng_.integers(2**32))).generate_state(K + m * K)
        self.models_ = OutcomeModels(
            n_actions=K,
            n_resources=m,
            free_action=int(self.free_action),
            reward_links=self._rlinks,
            cost_links=self._clinks,
            cost_bound=self._cost_bound,
            confidence=self._conf,
            make_bank=self._make_bank,
            seeds=seeds,
            multi_target=self._multi_target_models,
        )
        self.ledger_ = Ledger(self._budget, self._cost_bound)
        self._ok_all = np.ones(K, dtype=bool)
        self._free = int(self.free_action)
        self._cb_max = self._cost_bound.max(axis=0).tolist()
        self._ok: np.ndarray | None = None  # cached affordability (None: recompute)
        rates = self._budget / T
        self._rate_min = float(rates.min())
        self._scale = self._rate_min / rates  # consumption in the common unit
        # the largest consumption of one round in the common unit (1 if nothing costs)
        c_max = float((self._cost_bound * self._scale).max()) or 1.0
        units = self._rate_min * T / c_max
        # the paced warm-up's probability of a costly action: the budget's rate at most
        self._explore = min((K - 1) / K, self._rate_min / c_max)
        eta = self._dual.eta if self._dual.eta is not None else default_eta(m, T, units)
        self.prices_ = DualPrices(m, eta, self._scale, self._rate_min, backend=self.backend)
        self.n_decided_ = 0
        if self._dual.z_method == "warmup_estimate":
            T0 = self._dual.warmup_rounds
            if T0 is None:
                T0 = math.ceil(math.sqrt(T))
            self.warmup_rounds_ = min(int(T0), T)
        else:
            self.warmup_rounds_ = 0
        self._warm_X = np.zeros((self.warmup_rounds_, self.n_features))
        self._zero_cost = np.zeros((1, m))
        self._n_warm = 0
        self.Z_: float | None = None
        if self._dual.z_method != "warmup_estimate":
            self.Z_ = float(self._dual.Z)  # type: ignore[arg-type]
        elif self.warmup_rounds_ == 0:
            self.Z_ = self._estimate_z()

    # ------------------------------------------------------------------ estimates
    def _bounds(self, X: np.ndarray, costs: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        return self.models_.bounds(X, costs)

    def reward_ucb(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` optimistic rewards, clipped to ``confidence.reward_range``."""
        return self._bounds(X, costs=False)[0]

    def cost_lcb(self, X: np.ndarray) -> np.ndarray:
        """``(n, K, m)`` pessimistic (low) consumptions in [0, cost_bound]; 0 for the free action."""
        c = self._bounds(X, costs=True)[1]
        assert c is not None
        return c

    def _estimates(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores and (once ``Z`` is known) the consumption bounds they used."""
        if self.Z_ is None:
            return self._bounds(X, costs=False)[0], None
        r, c = self._bounds(X, costs=True)
        assert c is not None
        return r - c @ self.prices_.prices(self.Z_), c

    def scores(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` Lagrangian scores ``UCB_r - Z <theta, LCB_c>`` (``UCB_r`` before ``Z``)."""
        return self._estimates(X)[0]

    @property
    def spent_(self) -> np.ndarray:
        """``(m,)`` consumption reported so far."""
        return self.ledger_.spent

    @property
    def remaining_(self) -> np.ndarray:
        """``(m,)`` budget left after reported spending and outstanding reservations."""
        return self.ledger_.remaining

    def _estimate_z(self) -> float:
        """``Z`` from the warm-up contexts (:func:`scarce.budget.dual.estimate_z`)."""
        Xw = self._warm_X[: self._n_warm]
        d, T = self.n_features, self._T
        gamma = self._dual.z_gamma if self._dual.z_gamma is not None else theory_gamma(d, T)
        r, c = self._bounds(Xw, costs=True)
        assert c is not None
        free = int(self.free_action)
        return estimate_z(
            r,
            c * self._scale,
            free_action=free,
            fallback=self.models_.reward_lcb(Xw, free) if Xw.shape[0] else None,
            budget=self._rate_min * T,
            horizon=T,
            gamma=gamma,
            c_z=self._dual.c_z,
        )

    # ------------------------------------------------------------------ decisions
    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        n, m, K = X.shape[0], self.n_resources, self.n_actions
        if n == 1 and self.Z_ is not None:
            return self._decide_priced_one(X, eligible)
        free = int(self.free_action)
        scores, est = self._estimates(X)
        actions = np.empty(n, dtype=np.int64)
        probs = np.ones(n)
        priced = np.zeros(n, dtype=bool)
        cost_lcb = np.zeros((n, m))
        ledger = self.ledger_
        for i in range(n):
            ok = self._affordable()  # the free action is always affordable
            if eligible is not None:
                ok = ok & eligible[i]
                if not ok.any():
                    raise ValueError(
                        f"case {i}: no eligible action is affordable (remaining budget "
                        f"{ledger.remaining}); make the free action {free} eligible"
                    )
            if est is None:  # warm-up: a random affordable action
                p = self._warmup_probabilities(ok[None, :])[0]
                a = min(int(np.searchsorted(np.cumsum(p), self.rng_.random() * p.sum())), K - 1)
                while p[a] == 0:  # round-off at the top of the cumulative sum
                    a -= 1
                probs[i] = p[a]
                self._warm_X[self._n_warm] = X[i]
                self._n_warm += 1
            else:
                s = scores[i] if ok is self._ok_all else np.where(ok, scores[i], -np.inf)
                a = int(s.argmax())
                if ok[free] and s[free] >= s[a]:
                    a = free  # ties go to the free action
            actions[i] = a
            if a != free:  # the free action's bound is 0
                ledger.reserve(actions[i : i + 1])
                self._ok = self._spare = None
            self.n_decided_ += 1
            if est is None and self.n_decided_ >= self.warmup_rounds_:
                # the warm-up is complete: price from here on (this decision's consumption
                # enters the first dual step)
                self.Z_ = self._estimate_z()
                scores, est = self._estimates(X)
            if est is not None:
                priced[i] = True
                cost_lcb[i] = est[i, a]
        shown = scores if eligible is None else np.where(eligible, scores, -np.inf)
        info = {"cost_lcb": cost_lcb, "priced": priced}
        return Decision(actions=actions, probabilities=probs, scores=shown, info=info)

    def _affordable(self) -> np.ndarray:
        """``(K,)`` the ledger's affordable actions, kept until the ledger changes (do not
        modify the result); the same object as ``_ok_all`` when every action is."""
        if self._ok is None:
            led = self.ledger_
            # every action fits iff each resource's largest bound does: the ledger's test
            # (remaining = budget - spent - reserved, then + TOLERANCE) in Python floats
            left = zip(
                self._cb_max,
                led.budget.tolist(),
                led.spent.tolist(),
                led.reserved.tolist(),
                strict=True,
            )
            if all(c <= b - s - r + TOLERANCE for c, b, s, r in left):
                self._ok = self._ok_all
            else:
                ok = led.affordable()
                self._ok = self._ok_all if np.logical_and.reduce(ok) else ok
        return self._ok

    def _warmup_probabilities(self, ok: np.ndarray) -> np.ndarray:
        """``(n, K)`` the warm-up's distribution over the allowed actions ``ok`` ``(n, K)``
        (:func:`scarce.budget.dual.warmup_probabilities`)."""
        paced = self._explore if self._dual.paced_warmup else None
        return warmup_probabilities(ok, int(self.free_action), paced)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        """Probabilities under the current state, for each case on its own (reservations made
        within a batch by :meth:`decide` are not simulated)."""
        n, K = X.shape[0], self.n_actions
        ok = np.broadcast_to(self._affordable(), (n, K)).copy()
        if eligible is not None:
            ok &= eligible
        if self.Z_ is None:  # warm-up
            return self._warmup_probabilities(ok)
        s = np.where(ok, self.scores(X), -np.inf)
        best = np.argmax(s, axis=1)
        rows = np.arange(n)
        free = int(self.free_action)
        free_wins = ok[:, free] & (s[:, free] >= s[rows, best])
        best = np.where(free_wins, free, best)
        out = np.zeros((n, K))
        out[rows, best] = 1.0
        return out

    # ------------------------------------------------------------------ learning
    def _extra_keywords(self) -> tuple[str, ...]:
        return ("costs", "info")

    def _settle(self, costs: Any, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Book the decisions' costs in the ledger (releasing their reservations); returns the
        chosen actions' costs ``(n, m)`` and, when every action's were given, those
        ``(n, K, m)``. Costs above ``cost_bound`` are refused (the budget guarantee relies
        on it)."""
        n, m = actions.shape[0], self.n_resources
        full = None
        if n == 1 and actions[0] == self._free and np.ndim(costs) < 3:
            # the free action: nothing reserved, nothing to book; its cost must be 0
            C = costs if type(costs) is np.ndarray else np.asarray(costs, dtype=np.float64)
            if costs is not None and (
                C.size != m or np.logical_or.reduce(C, axis=None)
            ):  # NaN: True
                return self.ledger_.check_costs(actions, costs), None  # raises
            return self._zero_cost, None
        self._ok = self._spare = None
        if costs is None:
            if (actions != self.free_action).any():
                raise ValueError(
                    "update needs costs=(n,) or (n, n_resources) when a costly action was played"
                )
            costs = np.zeros((n, m))
        elif np.ndim(costs) == 3:
            full = self.ledger_.check_full_costs(costs, n)
            costs = full[np.arange(n), actions]
        return self.ledger_.settle(actions, costs), full

    def _reward_rows(
        self,
        X: np.ndarray,
        actions: np.ndarray | None,
        rewards: np.ndarray | None,
        full_rewards: np.ndarray | None,
        extra: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``(features, targets, action ids)`` that teach the reward models."""
        n, K = X.shape[0], self.n_actions
        if full_rewards is not None:
            return np.repeat(X, K, axis=0), full_rewards.reshape(-1), np.tile(np.arange(K), n)
        assert rewards is not None and actions is not None
        return X, rewards, actions

    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        costs, info = extra.pop("costs", None), extra.pop("info", None)
        if actions is None:  # cases this policy did not decide: learn, book nothing
            self._learn_offline(X, full_rewards, costs, extra)
            return
        # release the reservations of these decisions and book what they really consumed
        C, full_costs = self._settle(costs, actions)
        self._dual_step(X, actions, C, info)
        feats, y, ids = self._reward_rows(X, actions, rewards, full_rewards, extra)
        if full_costs is None and self._learn_one_costly(feats, y, ids, C, actions):
            return
        self.models_.learn_rewards(feats, y, ids)
        if full_costs is not None:
            self._learn_full_costs(X, full_costs)
            return
        if actions.shape[0] == 1:
            if actions[0] != self.free_action:
                self.models_.learn_costs(X, C, actions)
            return
        costly = actions != self.free_action
        if costly.all():
            self.models_.learn_costs(X, C, actions)
        elif costly.any():
            self.models_.learn_costs(X[costly], C[costly], actions[costly])

    def _dual_step(
        self, X: np.ndarray, actions: np.ndarray, C: np.ndarray, info: dict[str, Any] | None
    ) -> None:
        """One multiplicative-weights step per priced decision, with the consumption estimate
        it was priced with (``info``; recomputed when not given back) or its realised cost."""
        if actions.shape[0] == 1 and info is not None and self._dual.dual_uses_estimate:
            if "priced" in info and "cost_lcb" in info:  # one decision, its own estimate
                if np.asarray(info["priced"][0], dtype=bool):
                    self.prices_.step(np.asarray(info["cost_lcb"][0], dtype=np.float64))
                return
        if info is not None and "priced" in info:
            priced = np.asarray(info["priced"], dtype=bool)
        elif self.Z_ is not None:
            priced = np.ones(actions.shape[0], dtype=bool)
        else:
            return
        if not priced.any():
            return
        if not self._dual.dual_uses_estimate:
            used = C
        elif info is not None and "cost_lcb" in info:
            used = np.asarray(info["cost_lcb"], dtype=np.float64)
        else:
            used = self.cost_lcb(X)[np.arange(actions.shape[0]), actions]
        self.prices_.step(used[0] if used.shape[0] == 1 else used[priced])

    def _learn_full_costs(self, X: np.ndarray, full_costs: np.ndarray) -> None:
        costly = self.models_.costly
        n = X.shape[0]
        feats = np.tile(X, (costly.size, 1))
        acts = np.repeat(costly, n)
        C = full_costs[:, costly].transpose(1, 0, 2).reshape(-1, self.n_resources)
        self.models_.learn_costs(feats, C, acts)

    def _learn_offline(
        self, X: np.ndarray, full_rewards: np.ndarray, costs: Any, extra: dict[str, Any]
    ) -> None:
        feats, y, ids = self._reward_rows(X, None, None, full_rewards, extra)
        self.models_.learn_rewards(feats, y, ids)
        if costs is None:
            return
        if np.ndim(costs) != 3:
            raise ValueError(
                "update without actions (cases this policy did not decide) needs costs of every "
                f"action, shape (n, {self.n_actions}, {self.n_resources}), or none"
            )
        self._learn_full_costs(X, self.ledger_.check_full_costs(costs, X.shape[0]))

    # ------------------------------------------------------------------ contract hooks
    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        # (all with two resources: the checks feed every configuration the first's feedback)
        # a budget one batch cannot exhaust, a short warm-up; a small budget, logistic costs
        return [
            {"budget": 500.0, "horizon": 1000, "n_resources": 2, "dual": {"warmup_rounds": 5}},
            {
                "budget": [2.0, 3.0],
                "horizon": 50,
                "n_resources": 2,
                "cost_link": ["identity", "logistic"],
                "dual": {"z_method": "fixed", "Z": 1.0},
            },
        ]

    @classmethod
    def _unit_test_feedback(
        cls, rng: np.random.Generator, X: np.ndarray, decision: Decision, params: dict[str, Any]
    ) -> dict[str, Any]:
        n, K = X.shape[0], params["n_actions"]
        m = params.get("n_resources", 1)
        # every action's consumption (so that the full-information check has costs too)
        costs = rng.random((n, K, m))
        costs[:, params.get("free_action", 0)] = 0.0
        return {
            "actions": decision.actions,
            "rewards": rng.random(n),
            "costs": costs,
            "info": decision.info,
        }

    @classmethod
    def _replicated(cls, policies: Any, action_features: bool) -> Any:
        """Replicated-simulation hook (:mod:`scarce.budget.replicated`)."""
        return BudgetedReplicas(policies, action_features)

    # ------------------------------------------------------------------ persistence
    def _get_learned_state(self) -> dict[str, Any]:
        return {
            "models": self.models_.get_state(),
            "ledger": self.ledger_.get_state(),
            "dual": self.prices_.get_state(),
            "n_decided": self.n_decided_,
            "Z": self.Z_,
            "warm_X": self._warm_X[: self._n_warm],
        }

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.models_.set_state(state["models"])
        self.ledger_.set_state(state["ledger"])
        self._ok = self._spare = None
        self.prices_.set_state(state["dual"])
        self.n_decided_ = int(state["n_decided"])
        self.Z_ = None if state["Z"] is None else float(state["Z"])
        warm = np.array(state["warm_X"], dtype=float).reshape(-1, self.n_features)
        self._n_warm = warm.shape[0]
        self._warm_X[: self._n_warm] = warm
