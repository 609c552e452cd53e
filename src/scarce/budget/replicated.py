"""Replicated simulation of the budgeted learners (issue 18): ``S`` runs of
:class:`~scarce.budget.knapsack.KnapsackBandit` or :class:`~scarce.budget.deferral.Deferral`
on the synthetic deferral environments as one computation over a leading replica axis, bit
for bit the ``S`` separate :func:`scarce.sim.run` calls (:mod:`scarce.sim.replicated` has
the loop and documents the protocol).

Two plug-ins live here:

* :class:`BudgetedReplicas`, the policies' ``_replicated`` hook. The warm-up (random
  affordable decisions, then ``Z`` from their contexts) goes through each policy's own
  ``decide`` and ``update``, replica by replica: it is short (``ceil(sqrt(T))`` rounds by
  default) and its arithmetic is then the separate run's by construction. Once every replica
  knows ``Z``, the models of all replicas become two stacks
  (:meth:`~scarce.models.ridge.RidgeRegression.stack`: rewards, consumptions) and each round
  is a handful of stacked NumPy calls: the single-case path's bounds, Lagrangian scores, the
  policy's ledger, the dual step and the models' rank-1 steps, each the same BLAS call per
  replica slice as the single-case path makes (one case per round, one resource).
* :class:`DeferralEnvReplicas`, the environments' ``_replicated_env`` hook for
  :class:`~scarce.budget.envs.SyntheticDeferral`: contexts are drawn by each environment,
  round by round, as the separate run draws them; the outcome noise of a block of rounds is
  one draw per replica (uniform or normal variates, the same numbers as round-by-round
  draws); outcomes, costs and the extras are the environment's formulas on stacked arrays.

Scope: batch size 1, one resource, identity links (the ridge models), bandit or full
deferral feedback, environments of one noise kind. Anything else raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.core.ledger import TOLERANCE
from scarce.core.random import SeedLike, spawn
from scarce.models.linear import row_dots
from scarce.models.ridge import RidgeRegression
from scarce.policies.linear import ReplicaDecision


class BudgetedReplicas:
    """``S`` :class:`~scarce.budget.knapsack.KnapsackBandit` (or ``S``
    :class:`~scarce.budget.deferral.Deferral`) policies as one computation (see the module
    docstring); their hyperparameters may differ, their class, ``K``, ``d``, the free action
    and the number of resources may not."""

    #: decide takes the eligible mask of the loop's ledger (budgeted environments)
    takes_eligible = True

    def __init__(self, policies: Sequence[Any], action_features: bool) -> None:
        if action_features:
            raise ValueError("replicated budgeted runs need shared contexts (n, d)")
        policies = list(policies)
        first = policies[0]
        K, d = first.n_actions, first.n_features
        for s, p in enumerate(policies):
            p._ensure_initialized(np.zeros((1, d)))  # validates, like a first decide
            if p.n_resources != 1:
                raise ValueError(
                    f"policies[{s}] has n_resources={p.n_resources}; replicated budgeted runs "
                    "cover one resource"
                )
            if not p.models_.paired_ridge:
                raise ValueError(
                    f"policies[{s}] does not use identity links for every quantity; replicated "
                    "budgeted runs cover the ridge models only"
                )
            if p.backend != "numpy":
                raise ValueError(
                    f"policies[{s}] uses backend={p.backend!r}; replicated budgeted runs "
                    "compute with NumPy (bitwise the backend='numpy' runs): use "
                    "backend='numpy', or run the policies one by one (scarce.sim.run)"
                )
            if int(p.free_action) != int(first.free_action):
                raise ValueError("policies must share the free action")
        self.policies = policies
        self.S, self.K, self.d = len(policies), K, d
        self.free = int(first.free_action)
        self.deferral = hasattr(first, "feedback")
        self.stacked = False
        self._try_stack()

    # ------------------------------------------------------------------ set-up
    def _try_stack(self) -> None:
        """Once every replica knows ``Z``: the models and the small state as stacks."""
        pols = self.policies
        if self.stacked or any(p.Z_ is None for p in pols):
            return
        S = self.S
        self.rstack = RidgeRegression.stack([p.models_.reward_groups[0][2].model for p in pols])
        self.cstack = RidgeRegression.stack([p.models_.cost_groups[0][2].model for p in pols])
        self.costly = pols[0].models_.costly
        self.nc = self.costly.size
        self.rank = pols[0].models_.costly_rank
        self.confs = [p._conf for p in pols]
        self.same_conf = all(c == self.confs[0] for c in self.confs)
        self.lo = np.array([p.models_.reward_range[0] for p in pols])[:, None]
        self.hi = np.array([p.models_.reward_range[1] for p in pols])[:, None]
        self.cb = np.stack([p._cost_bound for p in pols])  # (S, K, 1)
        self.zero_bound = ~self.cb.any(axis=2)  # always affordable (the free action)
        self.budget = np.stack([p.ledger_.budget for p in pols])  # (S, 1)
        self.spent = np.stack([p.ledger_.spent for p in pols])
        self.reserved = np.stack([p.ledger_.reserved for p in pols])
        self.weights = np.stack([p.prices_.weights for p in pols])  # (S, 2)
        self.eta_scale = np.stack([p.prices_._eta_scale for p in pols])  # (S, 1)
        self.eta_rate = np.array([p.prices_._eta_rate for p in pols])[:, None]
        self.idle = np.stack([p.prices_._idle_factors for p in pols])
        self.scale = np.stack([p.prices_.scale for p in pols])
        self.Z = np.array([p.Z_ for p in pols])[:, None]
        self.uses_estimate = np.array([p._dual.dual_uses_estimate for p in pols])[:, None]
        self.full = np.array([self.deferral and p.feedback == "full" for p in pols])
        self.n_decided = np.array([p.n_decided_ for p in pols])
        self.n_updates = np.array([p.n_updates_ for p in pols])
        self.rows = np.arange(S)
        self.stacked = True

    def _radius(self, stack: RidgeRegression, per: int) -> np.ndarray:
        """``(S, per)`` each model's radius from its own count (as the policies keep them)."""
        counts = stack.n_obs.reshape(self.S, per)
        if self.same_conf:
            return self.confs[0].radius(counts, self.d, "identity")
        return np.stack(
            [c.radius(n, self.d, "identity") for c, n in zip(self.confs, counts, strict=True)]
        )

    # ------------------------------------------------------------------ protocol
    def draws(self, n_cases: int) -> None:
        """No pre-drawn numbers: the warm-up draws from each policy's generator in its own
        ``decide``; priced decisions are deterministic."""
        return None

    def decide(
        self, X: np.ndarray, draws: Any = None, eligible: np.ndarray | None = None
    ) -> ReplicaDecision:
        """Decisions on ``X`` ``(S, 1, d)`` among ``eligible`` ``(S, 1, K)`` actions."""
        if X.shape[1] != 1:
            raise ValueError("replicated budgeted runs decide one case per round (batch_size=1)")
        if not self.stacked:
            decisions = [
                p.decide(X[s], eligible=None if eligible is None else eligible[s])
                for s, p in enumerate(self.policies)
            ]
            return ReplicaDecision(
                np.stack([dec.actions for dec in decisions]),
                np.stack([dec.probabilities for dec in decisions]),
                {
                    "cost_lcb": np.stack([dec.info["cost_lcb"] for dec in decisions]),
                    "priced": np.stack([dec.info["priced"] for dec in decisions]),
                },
            )
        S, K, d, free, rows = self.S, self.K, self.d, self.free, self.rows
        x = X[:, 0, :]
        rs, cs = self.rstack, self.cstack
        # the single-case bounds (OutcomeModels._bounds_one), one GEMV per replica slice
        Ax = (rs.A_inv.reshape(S, K, d, d) @ x[:, None, :, None])[..., 0]  # (S, K, d)
        var = row_dots(Ax, x)
        r = row_dots(rs.theta.reshape(S, K, d), x)  # (S, K)
        np.maximum(var, 0.0, out=var)
        width = np.sqrt(var)
        width *= self._radius(rs, K)
        r += width
        np.minimum(r, self.hi, out=r)
        np.maximum(r, self.lo, out=r)
        Ac = Ax[:, self.costly]
        varc = np.maximum(row_dots(Ac, x), 0.0)  # (S, nc)
        mean = X[:, None, :, :] @ cs.theta.reshape(S, self.nc, d, 1)  # (S, nc, 1, 1)
        widthc = np.sqrt(varc)
        widthc *= self._radius(cs, self.nc)
        c = np.zeros((S, K))
        c[:, self.costly] = mean[:, :, 0, 0] - widthc
        np.maximum(c, 0.0, out=c)
        np.minimum(c, self.cb[:, :, 0], out=c)
        prices = self.Z * self.weights[:, :-1] * self.scale  # (S, 1)
        scores = r - c * prices
        # the policy's own ledger (KnapsackBandit._affordable), then the loop's mask
        left = self.budget - self.spent - self.reserved + TOLERANCE  # (S, 1)
        ok = (self.cb[:, :, 0] <= left) | self.zero_bound
        if eligible is not None:
            ok &= eligible[:, 0]
            if not ok.any(axis=1).all():
                s = int(np.flatnonzero(~ok.any(axis=1))[0])
                raise ValueError(f"replica {s}: no eligible action is affordable")
        masked = np.where(ok, scores, -np.inf)
        a = masked.argmax(axis=1)
        a = np.where(ok[:, free] & (masked[:, free] >= masked[rows, a]), free, a)
        costly = a != free
        self.reserved = np.where(costly[:, None], self.reserved + self.cb[rows, a], self.reserved)
        self.n_decided += 1
        info = {"cost_lcb": c[rows, a][:, None, None], "priced": np.ones((S, 1), dtype=bool)}
        return ReplicaDecision(a[:, None], np.ones((S, 1)), info)

    def learn(
        self, X: np.ndarray, decision: ReplicaDecision, rewards: np.ndarray, **extras: Any
    ) -> None:
        """Feedback of one round: ``rewards`` ``(S, 1)``, ``costs`` ``(S, 1, 1)`` and (for
        deferral) ``model_rewards`` ``(S, 1)``, as the loop gives each policy its own."""
        if not self.stacked:
            keys = self.policies[0].update_keywords
            for s, p in enumerate(self.policies):
                info = {name: values[s] for name, values in decision.info.items()}
                given = {k: v[s] for k, v in extras.items() if k in keys}
                p.update(X[s], decision.actions[s], rewards[s], info=info, **given)
            self._try_stack()
            return
        S, K, free, rows = self.S, self.K, self.free, self.rows
        a = decision.actions[:, 0]
        costly = a != free
        C = np.asarray(extras["costs"], dtype=np.float64).reshape(S, 1)
        bound = self.cb[rows, a]
        if not ((C >= 0) & (C <= bound + 1e-12)).all() or (C[~costly] != 0).any():
            raise ValueError("costs must be finite, >= 0 and at most the cost bound")
        # KnapsackBandit._settle: the reservation released, the cost booked
        self.reserved = np.where(
            costly[:, None], np.maximum(self.reserved - bound, 0.0), self.reserved
        )
        self.spent = np.where(costly[:, None], self.spent + C, self.spent)
        # DualPrices.step with the decision's estimate (or the realised cost)
        used = np.where(self.uses_estimate, decision.info["cost_lcb"][:, 0, :], C)
        factors = np.where(
            (used != 0).any(axis=1, keepdims=True),
            np.exp(used * self.eta_scale - self.eta_rate),
            self.idle,
        )
        w = self.weights
        w[:, :-1] *= factors
        w /= np.add.reduce(w, axis=1, keepdims=True)
        # the models: each replica's rows, one rank-1 step for all (one row per model)
        x = X[:, 0, :]
        y = rewards[:, 0]
        if self.deferral:
            mr = np.asarray(extras["model_rewards"], dtype=np.float64).reshape(S)
            if ((mr != y) & self.full & ~costly).any():
                raise ValueError("model_rewards must equal rewards where the model was used")
            model_row = self.full | ~costly  # the model's reward is seen
            human_row = costly
            feats = np.concatenate([x[model_row], x[human_row]])
            ys = np.concatenate([np.where(self.full, mr, y)[model_row], y[human_row]])
            ids = np.concatenate([rows[model_row] * K + free, rows[human_row] * K + a[human_row]])
        else:
            feats, ys, ids = x, y, rows * K + a
        self.rstack.partial_fit(feats, ys, ids)
        if costly.any():
            self.cstack.partial_fit(
                x[costly], C[costly], rows[costly] * self.nc + self.rank[a[costly]]
            )
        self.n_updates += 1

    def finish(self) -> None:
        """Write the learned state back into the policies."""
        if not self.stacked:
            return
        pols = self.policies
        rmodels = [p.models_.reward_groups[0][2].model for p in pols]
        cmodels = [p.models_.cost_groups[0][2].model for p in pols]
        self.rstack.unstack(rmodels)
        self.cstack.unstack(cmodels)
        for s, p in enumerate(pols):
            state = p._get_learned_state()
            state["ledger"] = {"spent": self.spent[s].copy(), "reserved": self.reserved[s].copy()}
            state["dual"] = {"weights": self.weights[s].copy()}
            state["n_decided"] = int(self.n_decided[s])
            p._set_learned_state(state)  # (also drops the models' kept radii and pairing)
            p.n_updates_ = int(self.n_updates[s])


class DeferralEnvReplicas:
    """``S`` :class:`~scarce.budget.envs.SyntheticDeferral` environments as one computation
    (see the module docstring), with run seeds ``seeds`` as ``scarce.sim.run`` spawns them.

    :meth:`block` draws the contexts and the outcome noise of the next ``C`` rounds;
    :meth:`outcomes` gives the rewards, costs and extras of one round of decisions."""

    def __init__(self, envs: Sequence[Any], seeds: Sequence[SeedLike]) -> None:
        first = envs[0]
        for s, e in enumerate(envs):
            if e.noise != first.noise or e.n_features != first.n_features:
                raise ValueError(
                    f"envs must share the noise kind and n_features; envs[{s}] has "
                    f"{e.noise!r} and {e.n_features}"
                )
        self.envs = list(envs)
        self.bernoulli = first.noise == "bernoulli"
        self.theta_T = np.stack([e.theta for e in envs]).swapaxes(1, 2)  # (S, d, 2)
        self.theta_c = np.stack([e.theta_cost for e in envs])[:, :, None]  # (S, d, 1)
        self.cost_max = np.array([e.cost_max for e in envs])[:, None]
        self.noise_sd = np.array([e.noise_sd for e in envs])[:, None]
        self.streams = [spawn(seed, 2) for seed in seeds]

    def block(self, C: int) -> tuple[np.ndarray, np.ndarray]:
        """Contexts ``(S, C, 1, d)`` (each environment draws them round by round) and the
        outcome variates ``(S, C, 3)``: both arms' reward noise, then the cost noise."""
        X = np.stack(
            [
                e.contexts_one_by_one(C, ctx)[:, None, :]
                for e, (ctx, _) in zip(self.envs, self.streams, strict=True)
            ]
        )
        # _draw's two calls per round ((1, 2) then (1,)) take consecutive variates
        if self.bernoulli:
            U = np.stack([out.random((C, 3)) for _, out in self.streams])
        else:
            U = np.stack([out.standard_normal((C, 3)) for _, out in self.streams])
        return X, U

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(S, 1, 2)`` ``x^T theta`` of both arms of ``X`` ``(S, 1, d)``."""
        return X @ self.theta_T

    def _level(self, X: np.ndarray) -> np.ndarray:
        z = (X @ self.theta_c)[:, :, 0]  # (S, 1)
        return np.clip(z, 0.0, 1.0) if self.bernoulli else np.clip(z, 0.0, self.cost_max)

    def outcomes(
        self, X: np.ndarray, actions: np.ndarray, U: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards ``(S, 1)`` of ``actions`` ``(S, 1)`` on ``X`` ``(S, 1, d)`` with the
        round's variates ``U`` ``(S, 3)``, and the extras as ``SyntheticDeferral`` reports
        them (each ``(S, 1, ...)``)."""
        from scarce.budget.envs import HUMAN, MODEL, _clipped_normal_mean

        mu = self.expected_rewards(X)  # (S, 1, 2)
        level = self._level(X)
        if self.bernoulli:
            r = (U[:, None, :2] < mu).astype(float)
            c = (U[:, None, 2] < level) * self.cost_max
            mean_costs = self.cost_max * level
        else:
            r = mu + self.noise_sd[:, :, None] * U[:, None, :2]
            c = np.clip(level + self.noise_sd * U[:, None, 2], 0.0, self.cost_max)
            mean_costs = np.stack(
                [
                    _clipped_normal_mean(level[s], e.noise_sd, e.cost_max)
                    for s, e in enumerate(self.envs)
                ]
            )
        rewards = np.take_along_axis(r, actions[:, :, None], axis=2)[..., 0]
        extras = {
            "costs": np.where(actions == HUMAN, c, 0.0)[:, :, None],
            "model_rewards": r[:, :, MODEL],
            "human_rewards": r[:, :, HUMAN],
            "deferral_costs": c,
            "mean_rewards": mu,
            "mean_costs": mean_costs,
        }
        return rewards, extras
