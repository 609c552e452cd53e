"""Contextual bandits with knapsacks (Agrawal and Devanur, 2016, "LinCBwK"), generalised to
GLM rewards and costs, with a hard budget guarantee.

Each round the learner scores every action by its optimistic reward minus the priced
pessimistic consumption, ``UCB_r(a) - Z * <theta_t, LCB_c(a)>``, and plays the best
*affordable* action. The dual weights ``theta_t`` (one per resource plus a slack coordinate)
are updated by multiplicative weights on the gains ``c(a_t) - B/T``, so the price of a
resource rises while it is spent faster than its budget allows. ``Z`` trades reward against
consumption (``fixed``, ``oracle`` = ``OPT/B`` from the truth, or ``warmup_estimate``: a
uniformly random warm-up of ``T0 = ceil(d sqrt(T))`` rounds and the empirical LP on it).

Budget guarantee
----------------
An action is affordable only if, for every resource, its consumption bound ``cost_bound``
fits in what is left after the spending reported so far **and** the bounds reserved for
decisions not yet reported (several decisions in one batch, or a delayed update). Realised
consumptions above ``cost_bound`` are rejected in :meth:`update`, so the total realised
consumption of the decisions this policy makes can never exceed the budget. The free action
(A&D's no-op; the model in the deferral problem) consumes nothing and is always affordable;
once nothing else is, the policy plays it (A&D's stopping rule; the episode continues).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.budget.estimators import LINKS, LinearBank, glm_radius
from scarce.budget.opt import static_opt_deferral, static_opt_lp
from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar

Z_METHODS = ("fixed", "warmup_estimate", "oracle")


class KnapsackBandit(Policy):
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
        maximal consumption of one round: a float, ``(m,)`` or ``(K, m)`` (the free action's
        row is forced to 0). Budget checks and clipping of cost estimates use it.
    reward_link, cost_link:
        ``"identity"`` or ``"logistic"``; ``reward_link`` may be a list of ``K`` links (one
        per action), ``cost_link`` one of ``m`` (one per resource).
    lam:
        ridge of the identity-link models (spec default 1.0).
    lam_logistic:
        L2 penalty of the logistic-link models (spec default 1e-3).
    beta_scale, delta, sigma, kappa:
        confidence radius ``beta_scale * sigma / kappa * sqrt(dim/2 log(1 + 2t/dim) +
        log(1/delta))`` (Li et al., 2017). ``kappa=None`` uses 1 for the identity link and
        0.25 for the logistic one (as the meTS code does).
    reward_range:
        ``(low, high)``: optimistic rewards are clipped to it.
    z_method:
        ``"warmup_estimate"`` (default), ``"fixed"`` (needs ``Z``) or ``"oracle"`` (needs
        ``Z = OPT / B`` computed from the truth, e.g. by :func:`scarce.budget.opt.oracle_z`;
        an ablation).
    Z:
        the trade-off constant for ``fixed`` / ``oracle``.
    warmup_rounds:
        ``T0`` for ``warmup_estimate``; None gives ``ceil(d sqrt(T))``.
    c_z, z_gamma:
        ``Z = c_z (OPT_hat + 2 gamma) / B`` where ``OPT_hat`` is the optimistic empirical LP
        on the warm-up contexts scaled to ``T`` with budget ``B + 2 gamma``; ``z_gamma=None``
        gives ``gamma = sqrt(d) T^(3/4)`` (spec A.4; constants unverified).
    eta:
        multiplicative-weights step; None gives ``sqrt(log(m + 1) / T)``.
    dual_uses_estimate:
        the dual gain uses the pessimistic cost estimate of the chosen action (A&D, default)
        or, if False, the realised consumption.
    seed:
        seed or generator (warm-up draws).

    Budgets of several resources are normalised to the smallest per-round rate
    ``rho = min_j B_j / T``: consumption of resource ``j`` is scaled by ``rho / rho_j`` in
    the scores and the dual gains, so one ``Z`` prices all resources.
    """

    deterministic = False

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
        lam: float = 1.0,
        lam_logistic: float = 1e-3,
        beta_scale: float = 1.0,
        delta: float = 0.05,
        sigma: float = 0.5,
        kappa: float | None = None,
        reward_range: tuple[float, float] = (0.0, 1.0),
        z_method: str = "warmup_estimate",
        Z: float | None = None,
        warmup_rounds: int | None = None,
        c_z: float = 1.0,
        z_gamma: float | None = None,
        eta: float | None = None,
        dual_uses_estimate: bool = True,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.budget = budget
        self.horizon = horizon
        self.n_resources = n_resources
        self.free_action = free_action
        self.cost_bound = cost_bound
        self.reward_link = reward_link
        self.cost_link = cost_link
        self.lam = lam
        self.lam_logistic = lam_logistic
        self.beta_scale = beta_scale
        self.delta = delta
        self.sigma = sigma
        self.kappa = kappa
        self.reward_range = reward_range
        self.z_method = z_method
        self.Z = Z
        self.warmup_rounds = warmup_rounds
        self.c_z = c_z
        self.z_gamma = z_gamma
        self.eta = eta
        self.dual_uses_estimate = dual_uses_estimate

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        if "reward_range" in params:  # a JSON round trip gives a list
            params["reward_range"] = tuple(float(v) for v in params["reward_range"])
        return params

    def _links(self, value: str | Sequence[str], n: int, name: str) -> list[str]:
        links = [value] * n if isinstance(value, str) else list(value)
        if len(links) != n or any(v not in LINKS for v in links):
            raise ValueError(
                f"{name} must be one of {LINKS} or a list of {n} of them; got {value!r}"
            )
        return links

    def _check_params(self) -> None:
        super()._check_params()
        K = self.n_actions
        m = check_positive_int(self.n_resources, "n_resources")
        T = check_positive_int(self.horizon, "horizon")
        if K < 2:
            raise ValueError(f"n_actions must be >= 2 (a free action and a costly one); got {K}")
        if isinstance(self.free_action, bool) or not isinstance(
            self.free_action, (int, np.integer)
        ):
            raise ValueError(f"free_action must be an int in [0, {K}); got {self.free_action!r}")
        if not 0 <= self.free_action < K:
            raise ValueError(f"free_action must be an int in [0, {K}); got {self.free_action!r}")
        B = (
            np.broadcast_to(np.asarray(self.budget, dtype=np.float64), (m,))
            if np.ndim(self.budget) <= 1
            else None
        )
        if B is None or B.shape != (m,) or not np.all(np.isfinite(B)) or np.any(B <= 0):
            raise ValueError(
                f"budget must be a positive finite float or ({m},) of them; got {self.budget!r}"
            )
        cb = np.asarray(self.cost_bound, dtype=np.float64)
        try:
            cb = np.broadcast_to(cb, (K, m)).copy()
        except ValueError:
            raise ValueError(
                f"cost_bound must be a float, ({m},) or ({K}, {m}); got shape {cb.shape}"
            ) from None
        if not np.all(np.isfinite(cb)) or np.any(cb < 0):
            raise ValueError("cost_bound must be finite and >= 0")
        cb[self.free_action] = 0.0
        rlinks = self._links(self.reward_link, K, "reward_link")
        clinks = self._links(self.cost_link, m, "cost_link")
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)
        check_scalar(self.lam_logistic, "lam_logistic", low=0.0, low_inclusive=False)
        check_scalar(self.beta_scale, "beta_scale", low=0.0)
        check_scalar(
            self.delta, "delta", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
        )
        check_scalar(self.sigma, "sigma", low=0.0)
        if self.kappa is not None:
            check_scalar(self.kappa, "kappa", low=0.0, low_inclusive=False)
        lo, hi = self.reward_range
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(
                f"reward_range must be (low, high) with low < high; got {self.reward_range!r}"
            )
        if "logistic" in rlinks and (lo < 0 or hi > 1):
            raise ValueError(
                f"a logistic reward link needs reward_range inside [0, 1]; got {self.reward_range!r}"
            )
        for j, link in enumerate(clinks):
            if link == "logistic" and np.any(cb[:, j] > 1):
                raise ValueError(
                    f"cost_link[{j}] = 'logistic' needs cost_bound <= 1 for resource {j} "
                    "(the targets of a logistic model lie in [0, 1])"
                )
        if self.z_method not in Z_METHODS:
            raise ValueError(f"z_method must be one of {Z_METHODS}; got {self.z_method!r}")
        if self.z_method in ("fixed", "oracle"):
            if self.Z is None:
                raise ValueError(f"z_method={self.z_method!r} needs Z (a float >= 0)")
            check_scalar(self.Z, "Z", low=0.0)
        if self.warmup_rounds is not None:
            check_positive_int(self.warmup_rounds, "warmup_rounds", minimum=0)
        check_scalar(self.c_z, "c_z", low=0.0, low_inclusive=False)
        if self.z_gamma is not None:
            check_scalar(self.z_gamma, "z_gamma", low=0.0)
        if self.eta is not None:
            check_scalar(self.eta, "eta", low=0.0, low_inclusive=False)
        self._budget = B.copy()
        self._cost_bound = cb
        self._T = T

    # ------------------------------------------------------------------ state
    # Linear banks can hold several targets per design (False for banks that cannot, e.g.
    # one network per target). With it, the resources of a costly action share one ridge
    # design (costs are observed jointly) and, while the reward rows of every costly action
    # are its cost rows, so does its reward: the "joint" layout (see ``_build_models``).
    # False gives one single-target model per (action, target), the reference layout.
    _multi_target_models = True

    def _make_bank(
        self, n_models: int, link: str, seeds: np.ndarray, n_targets: int | None = None
    ) -> Any:
        lam = self.lam if link == "identity" else self.lam_logistic
        return LinearBank(n_models, self.n_features, link, lam, n_targets=n_targets)

    def _build_models(self, joint: bool) -> None:
        """Create fresh reward and cost models.

        ``_reward_groups``: ``(link, actions, bank)``, bounds ``(n, |actions|)``.
        ``_cost_groups``: ``(link, resources, bank, multi)``; ``multi``: one identity ridge per
        costly action with the resources as targets, else ``n_costly * |resources|``
        single-target models, action-major.

        With ``joint``, the identity-reward actions and the identity-link resources share one
        multi-target ridge ``_joint_bank``: model ``i`` is action ``_joint_acts[i]``, target 0
        its reward, targets ``1..`` its consumption of the resources ``_joint_res``. A costly
        action's rows are the rounds it was played (reward and costs seen together); the free
        action's rows are its reward rows, on which it consumed exactly 0 (its cost targets
        are 0, and its consumption bound is 0 anyway). These actions and resources then have
        no model in the groups.
        """
        K, m = self.n_actions, self.n_resources
        rlinks = self._links(self.reward_link, K, "reward_link")
        clinks = self._links(self.cost_link, m, "cost_link")
        seeds = self._seeds
        nc = self._costly.size
        self._joint = joint
        self._reward_groups = []
        for link in LINKS:
            acts = np.array([a for a in range(K) if rlinks[a] == link], dtype=np.int64)
            if acts.size and not (joint and link == "identity"):
                self._reward_groups.append(
                    (link, acts, self._make_bank(acts.size, link, seeds[acts]))
                )
        # action -> index within its reward group (-1: not in it), for routing rows
        self._reward_local = []
        for _, acts, _ in self._reward_groups:
            local = np.full(K, -1, dtype=np.int64)
            local[acts] = np.arange(acts.size)
            self._reward_local.append(local)
        self._cost_groups = []
        for link in LINKS:
            res = np.array([j for j in range(m) if clinks[j] == link], dtype=np.int64)
            if not res.size or (joint and link == "identity"):
                continue
            multi = link == "identity" and self._multi_target_models
            if multi:
                bank = self._make_bank(nc, link, seeds[K + np.arange(nc)], n_targets=res.size)
            else:
                bank = self._make_bank(nc * res.size, link, seeds[K + np.arange(nc * res.size)])
            self._cost_groups.append((link, res, bank, multi))
        self._joint_bank = None
        if joint:
            acts = np.array([a for a in range(K) if rlinks[a] == "identity"], dtype=np.int64)
            res = np.array([j for j in range(m) if clinks[j] == "identity"], dtype=np.int64)
            self._joint_acts, self._joint_res = acts, res
            self._joint_pos = np.full(K, -1, dtype=np.int64)
            self._joint_pos[acts] = np.arange(acts.size)
            self._joint_costly = self._joint_pos[self._costly]  # every costly action is in
            self._joint_free_pos = self._joint_pos[[self.free_action]]
            self._joint_has_free = bool(self._joint_free_pos[0] >= 0)
            self._joint_all = acts.size == K and res.size == m
            self._joint_bank = self._make_bank(acts.size, "identity", seeds[acts], 1 + res.size)

    def _can_share_reward(self) -> bool:
        """Whether the joint layout applies: banks with several targets, identity reward links
        on every costly action, and at least one identity-link resource (logistic models
        cannot share a design: their curvature weights differ per target)."""
        if not self._multi_target_models:
            return False
        rlinks = self._links(self.reward_link, self.n_actions, "reward_link")
        clinks = self._links(self.cost_link, self.n_resources, "cost_link")
        return "identity" in clinks and all(rlinks[a] == "identity" for a in self._costly)

    def _init_state(self) -> None:
        if self.context_mode_ != SHARED_CONTEXT:
            raise ValueError(
                f"{type(self).__name__} needs shared contexts X of shape (n, {self.n_features}); "
                "per-action features are not supported"
            )
        K, m = self.n_actions, self.n_resources
        self._costly = np.array([a for a in range(K) if a != self.free_action], dtype=np.int64)
        self._costly_rank = np.full(K, -1, dtype=np.int64)
        self._costly_rank[self._costly] = np.arange(self._costly.size)
        self._is_costly = np.ones(K, dtype=bool)
        self._is_costly[self.free_action] = False
        self._seeds = np.random.SeedSequence(int(self.rng_.integers(2**32))).generate_state(
            K + m * K
        )
        self._build_models(joint=self._can_share_reward())
        self._cost_bound_tol = self._cost_bound + 1e-12
        self.rates_ = self._budget / self._T
        self._rate_min = float(self.rates_.min())
        self._scale = self._rate_min / self.rates_  # consumption normalisation per resource
        self.spent_ = np.zeros(m)
        self.reserved_ = np.zeros(m)
        self.dual_ = np.full(m + 1, 1.0 / (m + 1))
        self.n_decided_ = 0
        if self.z_method == "warmup_estimate":
            T0 = self.warmup_rounds
            if T0 is None:
                T0 = math.ceil(self.n_features * math.sqrt(self._T))
            self.warmup_rounds_ = min(int(T0), self._T)
            self.Z_: float | None = None
        else:
            self.warmup_rounds_ = 0
            self.Z_ = float(self.Z)  # type: ignore[arg-type]
        self._warm_X = np.zeros((self.warmup_rounds_, self.n_features))
        self._n_warm = 0
        self._beta_cache: dict[tuple[int, str, int], float] = {}
        # (shape, bytes) of the last decided contexts and their cost LCBs, for the dual step
        self._last: tuple[tuple[int, ...], bytes, np.ndarray] | None = None
        self.eta_ = self.eta if self.eta is not None else math.sqrt(math.log(m + 1) / self._T)
        # eta * gain = est * (eta * scale) - eta * rate_min, folded once
        self._eta_scale = self.eta_ * self._scale
        self._eta_rate = self.eta_ * self._rate_min

    def _beta(self, link: str, dim: int) -> float:
        t = self.n_updates_ if self.n_updates_ > 1 else 1
        key = (t, link, dim)
        cached = self._beta_cache.get(key)
        if cached is None:
            kappa = self.kappa if self.kappa is not None else (1.0 if link == "identity" else 0.25)
            cached = self.beta_scale * glm_radius(
                t, dim, sigma=self.sigma, kappa=kappa, delta=self.delta
            )
            if len(self._beta_cache) > 16:
                self._beta_cache.clear()
            self._beta_cache[key] = cached
        return cached

    # ------------------------------------------------------------------ estimates
    def _bounds(self, X: np.ndarray, costs: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Optimistic rewards ``(n, K)`` clipped to ``reward_range`` and (if ``costs``, or
        when they come with the rewards anyway) pessimistic consumptions ``(n, K, m)`` in
        ``[0, cost_bound]``, 0 for the free action. Each design's width is computed once
        and shared by the targets that use it."""
        n, K, m = X.shape[0], self.n_actions, self.n_resources
        lo, hi = self.reward_range
        groups = self._reward_groups
        c = None
        if len(groups) == 1 and groups[0][1].size == K:  # one bank for every action
            link, _, bank = groups[0]
            r = bank.bounds(X, self._beta(link, bank.dim), upper=True)
        elif self._joint and self._joint_all:  # one ridge for everything
            mean, width = self._joint_bank.mean_width(X, self._beta("identity", self.n_features))
            r = mean[:, :, 0] + width
            # the free action's cost targets are exactly 0, so its bound clips to 0 below
            c = mean[:, :, 1:] - width[:, :, None]
        else:
            r = np.empty((n, K))
            for link, acts, bank in groups:
                r[:, acts] = bank.bounds(X, self._beta(link, bank.dim), upper=True)
        if c is None and (costs or self._joint):
            costly = self._costly
            c = np.zeros((n, K, m))
            if self._joint:
                mean, width = self._joint_bank.mean_width(
                    X, self._beta("identity", self.n_features)
                )
                r[:, self._joint_acts] = mean[:, :, 0] + width
                jc = self._joint_costly
                c[:, costly[:, None], self._joint_res[None, :]] = (
                    mean[:, jc, 1:] - width[:, jc, None]
                )
            for link, res, bank, multi in self._cost_groups:
                beta = self._beta(link, bank.dim)
                if multi:  # identity ridge, one design per costly action
                    low = bank.bounds(X, beta, upper=False)  # (n, nc, |res|)
                else:
                    low = bank.bounds(X, beta, upper=False).reshape(n, costly.size, res.size)
                if res.size == m:
                    c[:, costly, :] = low
                else:
                    c[:, costly[:, None], res[None, :]] = low
        if c is not None:
            np.maximum(c, 0.0, out=c)
            np.minimum(c, self._cost_bound, out=c)
        np.minimum(r, hi, out=r)
        np.maximum(r, lo, out=r)
        return r, c

    def reward_ucb(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` optimistic rewards, clipped to ``reward_range``."""
        return self._bounds(X, costs=False)[0]

    def cost_lcb(self, X: np.ndarray) -> np.ndarray:
        """``(n, K, m)`` pessimistic (low) consumptions in [0, cost_bound]; 0 for the free action."""
        c = self._bounds(X, costs=True)[1]
        assert c is not None
        return c

    def _estimates(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores and (after the warm-up) the cost LCBs they used."""
        if self.Z_ is None:
            return self._bounds(X, costs=False)[0], None
        r, c = self._bounds(X, costs=True)
        assert c is not None
        price = self.Z_ * self.dual_[:-1] * self._scale
        return r - c @ price, c

    def scores(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` Lagrangian scores ``UCB_r - Z <theta, LCB_c>`` (normalised units)."""
        return self._estimates(X)[0]

    @property
    def remaining_(self) -> np.ndarray:
        """``(m,)`` budget left after reported spending and outstanding reservations."""
        return self._budget - self.spent_ - self.reserved_

    def _affordable(self) -> np.ndarray:
        # tiny tolerance so that round-off in the running sums cannot block an exact fit
        ok = (self._cost_bound <= (self._budget - self.spent_ - self.reserved_ + 1e-9)).all(axis=1)
        ok[self.free_action] = True  # even if updates for undecided actions overspent
        return ok

    # ------------------------------------------------------------------ decisions
    def _maybe_estimate_z(self) -> None:
        if self.Z_ is None and self.n_decided_ >= self.warmup_rounds_:
            self.Z_ = self._estimate_z()

    def _estimate_z(self) -> float:
        """``c_z (OPT_hat + 2 gamma) / B`` from the warm-up contexts (spec A.4)."""
        T, d = self._T, self.n_features
        Xw = self._warm_X[: self._n_warm]
        if Xw.shape[0] == 0:
            return 0.0
        gamma = self.z_gamma if self.z_gamma is not None else math.sqrt(d) * T**0.75
        B = self.rates_.min() * T
        rate = (B + 2.0 * gamma) / T
        r, c = self._bounds(Xw, costs=True)
        assert c is not None
        c = c * self._scale
        if self.n_actions == 2 and self.n_resources == 1:
            a = int(self._costly[0])
            value = static_opt_deferral(r[:, a], r[:, self.free_action], c[:, a, 0], rate).value
        else:
            value, _ = static_opt_lp(r, c, rate)
        return float(self.c_z * (T * value + 2.0 * gamma) / B)

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        n = X.shape[0]
        self._maybe_estimate_z()
        scores, est = self._estimates(X)
        actions = np.empty(n, dtype=np.int64)
        probs = np.ones(n)
        for i in range(n):
            ok = self._affordable()  # the free action is always affordable
            if eligible is not None:
                ok &= eligible[i]
            if eligible is not None and not ok.any():
                raise ValueError(
                    f"case {i}: no eligible action is affordable (remaining budget {self.remaining_}); "
                    f"make the free action {self.free_action} eligible"
                )
            if self.Z_ is None:  # warm-up: uniformly random affordable action
                choices = np.flatnonzero(ok)
                a = int(choices[self.rng_.integers(choices.size)])
                probs[i] = 1.0 / choices.size
                if self._n_warm < self.warmup_rounds_:
                    self._warm_X[self._n_warm] = X[i]
                    self._n_warm += 1
            else:
                s = np.where(ok, scores[i], -np.inf)
                a = int(s.argmax())
                if ok[self.free_action] and s[self.free_action] >= s[a]:
                    a = self.free_action  # ties go to the free action
            actions[i] = a
            if a != self.free_action:  # the free action's bound is 0
                self.reserved_ += self._cost_bound[a]
            self.n_decided_ += 1
            if self.Z_ is None and self.n_decided_ >= self.warmup_rounds_:
                self._maybe_estimate_z()
                scores, est = self._estimates(X)
        # the dual step of the matching update uses these estimates (same state)
        self._last = (X.shape, X.tobytes(), est) if est is not None else None
        shown = scores if eligible is None else np.where(eligible, scores, -np.inf)
        return Decision(actions=actions, probabilities=probs, scores=shown)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        """Probabilities under the current state, for each case on its own (reservations made
        within a batch by :meth:`decide` are not simulated)."""
        n, K = X.shape[0], self.n_actions
        ok = np.broadcast_to(self._affordable(), (n, K)).copy()
        if eligible is not None:
            ok &= eligible
        if self.Z_ is None and self.n_decided_ < self.warmup_rounds_:
            return ok / ok.sum(axis=1, keepdims=True)
        if self.Z_ is None:
            # the warm-up is over but Z is estimated on the next decide; estimate it without
            # keeping it so that this call leaves the state unchanged
            z = self._estimate_z()
            self.Z_ = z
            s = self.scores(X)
            self.Z_ = None
        else:
            s = self.scores(X)
        s = np.where(ok, s, -np.inf)
        best = np.argmax(s, axis=1)
        rows = np.arange(n)
        free_wins = ok[:, self.free_action] & (s[:, self.free_action] >= s[rows, best])
        best = np.where(free_wins, self.free_action, best)
        out = np.zeros((n, K))
        out[rows, best] = 1.0
        return out

    # ------------------------------------------------------------------ learning
    def _extra_keywords(self) -> tuple[str, ...]:
        return ("costs",)

    def _check_costs(self, costs: Any, actions: np.ndarray) -> np.ndarray:
        n, m = actions.shape[0], self.n_resources
        if costs is None:
            if (actions != self.free_action).any():
                raise ValueError(
                    "update needs costs=(n,) or (n, n_resources) when a costly action was played"
                )
            return np.zeros((n, m))
        C = np.asarray(costs, dtype=np.float64)
        if C.ndim == 1 and m == 1:
            C = C[:, None]
        if C.shape != (n, m):
            raise ValueError(f"costs must have shape ({n},) or ({n}, {m}); got {C.shape}")
        # one pass for the three checks (NaN fails ``C >= 0``); diagnose only on failure
        bound_tol = self._cost_bound_tol[actions[0]] if n == 1 else self._cost_bound_tol[actions]
        if not ((C >= 0) & (C <= bound_tol)).all():
            bound = self._cost_bound[actions]
            if not np.all(np.isfinite(C)) or np.any(C < 0):
                raise ValueError("costs must be finite and >= 0")
            if np.any(C[actions == self.free_action] != 0):
                raise ValueError(f"costs of the free action {self.free_action} must be 0")
            i, j = np.argwhere(C > bound + 1e-12)[0]
            raise ValueError(
                f"costs[{i}, {j}] = {C[i, j]} exceeds cost_bound {bound[i, j]} "
                "(the budget guarantee relies on it)"
            )
        return C

    def _reward_rows(
        self,
        X: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray | None,
        full_rewards: np.ndarray | None,
        extra: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``(features, targets, action ids)`` that teach the reward models."""
        n, K = X.shape[0], self.n_actions
        if full_rewards is not None:
            return np.repeat(X, K, axis=0), full_rewards.reshape(-1), np.tile(np.arange(K), n)
        assert rewards is not None
        return X, rewards, actions

    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        if actions is None:
            raise ValueError(
                f"{type(self).__name__}.update needs actions (and costs) to track the budget"
            )
        C = self._check_costs(extra.get("costs"), actions)
        n, free = actions.shape[0], self.free_action
        one = n == 1  # the online case: scalar bookkeeping instead of masks
        a0 = int(actions[0]) if one else -1
        # release the reservations of these decisions and book what they really consumed
        if one:
            if a0 != free:  # the free action reserved nothing (its bound is 0)
                self.reserved_ = np.maximum(self.reserved_ - self._cost_bound[a0], 0.0)
            self.spent_ += C[0]
        else:
            self.reserved_ = np.maximum(self.reserved_ - self._cost_bound[actions].sum(axis=0), 0.0)
            self.spent_ += C.sum(axis=0)
        # dual step (after the warm-up), with the cost estimate of the decision-time state
        if self.Z_ is not None:
            if self.dual_uses_estimate:
                last = self._last
                if last is not None and last[0] == X.shape and last[1] == X.tobytes():
                    c_all = last[2]
                else:
                    c_all = self.cost_lcb(X)
                est = c_all[0, a0] if one else c_all[np.arange(n), actions]
            else:
                est = C[0] if one else C
            # gains c * scale - B/T per resource, 0 for the slack coordinate (factor 1);
            # est is (m,) for one case, (n, m) otherwise
            factors = np.exp(est * self._eta_scale - self._eta_rate)
            for g in (factors,) if one else factors:
                w = self.dual_.copy()
                w[:-1] *= g
                self.dual_ = w / w.sum()
        self._last = None
        if full_rewards is not None and self._joint:
            # every action's reward is now seen on rows where its costs are not
            self._unshare()
        feats, y, ids = self._reward_rows(X, actions, rewards, full_rewards, extra)
        for (_, acts, bank), local in zip(self._reward_groups, self._reward_local, strict=True):
            if acts.size == self.n_actions:
                bank.partial_fit(feats, y, ids)
                continue
            if ids.shape[0] == 1:
                if local[ids[0]] >= 0:
                    bank.partial_fit(feats, y, local[ids])
                continue
            mids = local[ids]
            keep = mids >= 0
            if keep.all():
                bank.partial_fit(feats, y, mids)
            elif keep.any():
                bank.partial_fit(feats[keep], y[keep], mids[keep])
        if self._joint and self._joint_has_free:
            # the free action's reward rows (costs 0); the costly actions' rows come below
            if ids.shape[0] == 1:
                fx = feats if ids[0] == free else None
                fy = y
            else:
                rows = np.flatnonzero(ids == free)
                fx, fy = (feats[rows], y[rows]) if rows.size else (None, None)
            if fx is not None:
                targets = np.zeros((fx.shape[0], 1 + self._joint_res.size))
                targets[:, 0] = fy
                k = fx.shape[0]
                pos = self._joint_free_pos if k == 1 else np.repeat(self._joint_free_pos, k)
                self._joint_bank.partial_fit(fx, targets, pos)
        if one:
            if a0 == free:
                return
            Xc, Cc, Ac, r_c = X, C, actions, rewards
        else:
            costly = actions != free
            if not costly.any():
                return
            Xc, Cc, Ac = X[costly], C[costly], actions[costly]
            r_c = None if rewards is None else rewards[costly]
        if self._joint:  # reward and consumption of the played action, one row
            assert r_c is not None
            res = self._joint_res
            targets = np.empty((Xc.shape[0], 1 + res.size))
            targets[:, 0] = r_c
            targets[:, 1:] = Cc if res.size == self.n_resources else Cc[:, res]
            self._joint_bank.partial_fit(Xc, targets, self._joint_pos[Ac])
        if self._cost_groups:
            rank = self._costly_rank[Ac]
        for _, res, bank, multi in self._cost_groups:
            q = res.size
            targets = Cc if q == self.n_resources else Cc[:, res]
            if multi:
                bank.partial_fit(Xc, targets, rank)
            else:
                feats_c = np.repeat(Xc, q, axis=0)
                mids = (rank[:, None] * q + np.arange(q)[None, :]).reshape(-1)
                bank.partial_fit(feats_c, targets.reshape(-1), mids)

    def _unshare(self) -> None:
        """Leave the joint layout, keeping every estimate: the identity reward models start
        from target 0 of the joint ridge, the identity cost models from the costly actions'
        models with targets ``1..`` (same design: same rows so far); other models are kept."""
        assert self._joint_bank is not None
        joint = self._joint_bank.get_state()
        jc = self._joint_costly
        old_rewards = {link: bank for link, _, bank in self._reward_groups}
        old_costs = {link: bank for link, _, bank, _ in self._cost_groups}
        self._build_models(joint=False)
        for i, (link, acts, bank) in enumerate(self._reward_groups):
            if link == "identity":  # the same actions as the joint ridge, in the same order
                bank.set_state(
                    {**joint, "b": joint["b"][:, :, 0], "theta": joint["theta"][:, :, 0]}
                )
            else:
                self._reward_groups[i] = (link, acts, old_rewards[link])
        for i, (link, res, bank, multi) in enumerate(self._cost_groups):
            if link == "identity":  # multi: one ridge per costly action
                state = {key: np.asarray(v)[jc] for key, v in joint.items()}
                state["b"] = state["b"][:, :, 1:]
                state["theta"] = state["theta"][:, :, 1:]
                bank.set_state(state)
            else:
                self._cost_groups[i] = (link, res, old_costs[link], multi)

    # ------------------------------------------------------------------ persistence
    def _get_learned_state(self) -> dict[str, Any]:
        return {
            "joint": None if self._joint_bank is None else self._joint_bank.get_state(),
            "reward": {link: bank.get_state() for link, _, bank in self._reward_groups},
            "cost": {link: bank.get_state() for link, _, bank, _ in self._cost_groups},
            "spent": self.spent_,
            "reserved": self.reserved_,
            "dual": self.dual_,
            "n_decided": self.n_decided_,
            "Z": self.Z_,
            "warm_X": self._warm_X[: self._n_warm],
        }

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        joint = state["joint"] is not None
        if joint != self._joint:
            if joint and not self._can_share_reward():
                raise ValueError(
                    "the saved state has a joint reward/cost model these parameters cannot"
                )
            self._build_models(joint=joint)
        if self._joint_bank is not None:
            self._joint_bank.set_state(state["joint"])
        for link, _, bank in self._reward_groups:
            bank.set_state(state["reward"][link])
        for link, _, bank, _ in self._cost_groups:
            bank.set_state(state["cost"][link])
        self.spent_ = np.array(state["spent"], dtype=float)
        self.reserved_ = np.array(state["reserved"], dtype=float)
        self.dual_ = np.array(state["dual"], dtype=float)
        self.n_decided_ = int(state["n_decided"])
        self.Z_ = None if state["Z"] is None else float(state["Z"])
        warm = np.array(state["warm_X"], dtype=float).reshape(-1, self.n_features)
        self._n_warm = warm.shape[0]
        self._warm_X[: self._n_warm] = warm
