"""Small policies that use the parts of the protocol the registered ones on this branch may not
(a hard budget with decision-time state, vector rewards, decision-time keywords and feedback
keywords), so the service's handling of each is tested whatever the registry holds.

They are registered only while a test uses them (fixture ``protocol_policies``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.ledger import Ledger
from scarce.core.policy import SHARED_CONTEXT, Policy


class TinyKnapsack(Policy):
    """A budgeted learner shaped like ``KnapsackBandit``: action 0 is free, the others cost at
    most ``cost_bound``; a hard budget in a core :class:`Ledger` (``ledger_``); ``warmup``
    random decisions counted *in decide* (decision-time state); then the best mean reward
    minus ``price`` x mean cost, the price moved by the costs learned (``info["price"]`` is
    the price a decision used).
    """

    deterministic = False
    layouts = (SHARED_CONTEXT,)

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        budget: float,
        horizon: int,
        cost_bound: float = 1.0,
        warmup: int = 3,
        seed: Any = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.budget = budget
        self.horizon = horizon
        self.cost_bound = cost_bound
        self.warmup = warmup

    def _init_state(self) -> None:
        K = self.n_actions
        bound = np.full((K, 1), float(self.cost_bound))
        bound[0] = 0.0
        self.ledger_ = Ledger(self.budget, bound)
        self.n_decided_ = 0
        self.price_ = 0.0
        self.sums_ = np.zeros(K)
        self.counts_ = np.zeros(K)
        self.cost_sums_ = np.zeros(K)

    def _allowed(self, eligible: np.ndarray | None, n: int) -> np.ndarray:
        ok = np.broadcast_to(self.ledger_.affordable(), (n, self.n_actions)).copy()
        return ok if eligible is None else ok & eligible

    def _scores(self) -> np.ndarray:
        means = self.sums_ / np.maximum(self.counts_, 1)
        costs = self.cost_sums_ / np.maximum(self.counts_, 1)
        return means - self.price_ * costs + 1.0 / np.sqrt(1.0 + self.counts_)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        ok = self._allowed(eligible, X.shape[0])
        if self.n_decided_ < self.warmup:
            return ok / ok.sum(axis=1, keepdims=True)
        s = np.where(ok, self._scores()[None, :], -np.inf)
        out = np.zeros_like(s)
        out[np.arange(s.shape[0]), s.argmax(axis=1)] = 1.0
        return out

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        n = X.shape[0]
        actions = np.zeros(n, dtype=np.int64)
        probs = np.ones(n)
        for i in range(n):
            p = self._action_probabilities(
                X[i : i + 1], None if eligible is None else eligible[i : i + 1]
            )[0]
            a = int(self.rng_.choice(self.n_actions, p=p))
            actions[i], probs[i] = a, p[a]
            self.ledger_.reserve(actions[i : i + 1])
            self.n_decided_ += 1
        info = {"price": np.full(n, self.price_)}
        return Decision(actions, probs, np.zeros((n, self.n_actions)), info=info)

    def _extra_keywords(self) -> tuple[str, ...]:
        return ("costs", "info")

    def _learn(self, X, actions, rewards, full_rewards, costs=None, info=None):  # type: ignore[override]
        if costs is None:
            costs = np.zeros((actions.shape[0], 1))
        C = self.ledger_.settle(actions, costs)
        np.add.at(self.sums_, actions, rewards)
        np.add.at(self.counts_, actions, 1.0)
        np.add.at(self.cost_sums_, actions, C[:, 0])
        used = np.full(actions.shape[0], self.price_) if info is None else info["price"]
        rate = float(self.budget) / float(self.horizon)
        self.price_ = float(max(0.0, used[-1] + 0.5 * (C[:, 0].mean() - rate)))

    def _get_learned_state(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger_.get_state(),
            "n_decided": self.n_decided_,
            "price": self.price_,
            "sums": self.sums_,
            "counts": self.counts_,
            "cost_sums": self.cost_sums_,
        }

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.ledger_.set_state(state["ledger"])
        self.n_decided_ = int(state["n_decided"])
        self.price_ = float(state["price"])
        self.sums_ = np.asarray(state["sums"], dtype=float)
        self.counts_ = np.asarray(state["counts"], dtype=float)
        self.cost_sums_ = np.asarray(state["cost_sums"], dtype=float)

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"budget": 50.0, "horizon": 100}]

    @classmethod
    def _unit_test_feedback(cls, rng, X, decision, params) -> dict[str, Any]:  # type: ignore[override]
        n = X.shape[0]
        costs = rng.random((n, 1)) * params.get("cost_bound", 1.0)
        costs[decision.actions == 0] = 0.0
        return {
            "actions": decision.actions,
            "rewards": rng.random(n),
            "costs": costs,
            "info": decision.info,
        }


class TinyVector(Policy):
    """A vector-reward policy (``reward_kind = "vector"``): per-action mean reward vectors,
    the best ``weights``-weighted mean plus a bonus; ``info["support"]`` is the number of
    observations of each action a decision used."""

    deterministic = True
    layouts = (SHARED_CONTEXT,)
    reward_kind = "vector"

    def __init__(
        self, *, n_actions: int, n_features: int, n_objectives: int = 2, seed: Any = None
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.n_objectives = n_objectives

    def _init_state(self) -> None:
        self.sums_ = np.zeros((self.n_actions, self.n_objectives))
        self.counts_ = np.zeros(self.n_actions)

    def _score(self) -> np.ndarray:
        means = self.sums_.sum(axis=1) / np.maximum(self.counts_, 1)
        return means + 1.0 / np.sqrt(1.0 + self.counts_)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        s = np.broadcast_to(self._score(), (X.shape[0], self.n_actions))
        if eligible is not None:
            s = np.where(eligible, s, -np.inf)
        out = np.zeros(s.shape)
        out[np.arange(s.shape[0]), s.argmax(axis=1)] = 1.0
        return out

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        p = self._action_probabilities(X, eligible)
        n = X.shape[0]
        info = {"support": np.broadcast_to(self.counts_, (n, self.n_actions)).copy()}
        return Decision(p.argmax(axis=1), np.ones(n), np.zeros_like(p), info=info)

    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        np.add.at(self.sums_, actions, rewards)
        np.add.at(self.counts_, actions, 1.0)

    def _get_learned_state(self) -> dict[str, Any]:
        return {"sums": self.sums_, "counts": self.counts_}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.sums_ = np.asarray(state["sums"], dtype=float)
        self.counts_ = np.asarray(state["counts"], dtype=float)

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{"n_objectives": 2}]


class TinyGrouped(Policy):
    """Decision-time context and feedback keywords: per-(group, action) means; ``groups``
    (one int per case) at decision time, ``model_rewards`` (action 0's reward on every
    case, as the deferral policies learn it) with the feedback."""

    deterministic = True
    layouts = (SHARED_CONTEXT,)

    def __init__(
        self, *, n_actions: int, n_features: int, n_groups: int = 3, seed: Any = None
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.n_groups = n_groups

    def _context_keywords(self) -> tuple[str, ...]:
        return ("groups",)

    def _extra_keywords(self) -> tuple[str, ...]:
        return ("model_rewards", "info")

    def _init_state(self) -> None:
        self.sums_ = np.zeros((self.n_groups, self.n_actions))
        self.counts_ = np.zeros((self.n_groups, self.n_actions))

    def _groups(self, groups: Any, n: int) -> np.ndarray:
        g = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
        if g.shape != (n,) or (g < 0).any() or (g >= self.n_groups).any():
            raise ValueError(f"groups must be ({n},) ints in [0, {self.n_groups})")
        return g

    def _action_probabilities(self, X, eligible, groups=None):  # type: ignore[override]
        g = self._groups(groups, X.shape[0])
        s = self.sums_[g] / np.maximum(self.counts_[g], 1) + 1.0 / np.sqrt(1.0 + self.counts_[g])
        if eligible is not None:
            s = np.where(eligible, s, -np.inf)
        out = np.zeros(s.shape)
        out[np.arange(s.shape[0]), s.argmax(axis=1)] = 1.0
        return out

    def _decide(self, X, eligible, groups=None):  # type: ignore[override]
        p = self._action_probabilities(X, eligible, groups)
        g = self._groups(groups, X.shape[0])
        return Decision(p.argmax(axis=1), np.ones(X.shape[0]), np.zeros_like(p), info={"group": g})

    def _learn(self, X, actions, rewards, full_rewards, model_rewards=None, info=None):  # type: ignore[override]
        g = (
            np.zeros(actions.shape[0], dtype=np.int64)
            if info is None
            else np.asarray(info["group"])
        )
        np.add.at(self.sums_, (g, actions), rewards)
        np.add.at(self.counts_, (g, actions), 1.0)
        if model_rewards is not None:
            other = actions != 0
            np.add.at(self.sums_, (g[other], 0), np.asarray(model_rewards)[other])
            np.add.at(self.counts_, (g[other], 0), 1.0)

    def _get_learned_state(self) -> dict[str, Any]:
        return {"sums": self.sums_, "counts": self.counts_}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.sums_ = np.asarray(state["sums"], dtype=float)
        self.counts_ = np.asarray(state["counts"], dtype=float)

    @classmethod
    def _unit_test_feedback(cls, rng, X, decision, params) -> dict[str, Any]:  # type: ignore[override]
        n = X.shape[0]
        return {
            "actions": decision.actions,
            "rewards": rng.random(n),
            "model_rewards": rng.random(n),
            "info": decision.info,
        }


TEST_POLICIES = (TinyKnapsack, TinyVector, TinyGrouped)
