"""Building blocks shared by the policies: masked argmax, and the glue between a policy's
context layout and the model(s) it learns with."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT, Policy
from scarce.core.validation import check_scalar


def masked(scores: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
    """Scores with ineligible actions set to ``-inf``."""
    return scores if eligible is None else np.where(eligible, scores, -np.inf)


def greedy_decision(scores: np.ndarray, eligible: np.ndarray | None) -> Decision:
    """Deterministic argmax of the scores over eligible actions (ties: lowest action id)."""
    s = scores if eligible is None else np.where(eligible, scores, -np.inf)
    actions = s.argmax(axis=1)
    ones = np.empty(actions.shape[0])
    ones.fill(1.0)
    return Decision(actions, ones, s)


def one_hot(actions: np.ndarray, n_actions: int) -> np.ndarray:
    out = np.zeros((actions.shape[0], n_actions))
    if actions.shape[0] == 1:  # (one case, the served path: no index array to build)
        out[0, actions[0]] = 1.0
    else:
        out[np.arange(actions.shape[0]), actions] = 1.0
    return out


def uniform_probabilities(n: int, n_actions: int, eligible: np.ndarray | None) -> np.ndarray:
    if eligible is None:
        return np.full((n, n_actions), 1.0 / n_actions)
    e = eligible.astype(float)
    return e / e.sum(axis=1, keepdims=True)


def uniform_choice(
    rng: np.random.Generator, n: int, n_actions: int, eligible: np.ndarray | None
) -> np.ndarray:
    """One uniformly random eligible action per case."""
    if eligible is None:
        return rng.integers(n_actions, size=n)
    # inverse-CDF draw over the eligible set, vectorised over cases
    cum = np.cumsum(eligible, axis=1)
    k = np.floor(rng.random(n) * cum[:, -1]).astype(np.int64)
    return np.argmax(cum > k[:, None], axis=1)


@cache
def _plain_rows(cls: type) -> bool:
    """Whether ``cls`` learns as :class:`ModelPolicy` does (rows from ``_training_rows``
    into ``model_.partial_fit``)."""
    return cls._learn is ModelPolicy._learn and cls._training_rows is ModelPolicy._training_rows


class ModelPolicy(Policy):
    """A policy on top of a linear-in-parameters model (ridge or GLM).

    Shared contexts ``(n, d)`` get one model per action (disjoint parameters); per-action
    features ``(n, K, d)`` get a single shared model. Subclasses say which model by
    :meth:`_make_model` and how to rank actions by :meth:`_decide`.
    """

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)

    def _make_model(self, n_models: int) -> Any:
        raise NotImplementedError

    def _init_state(self) -> None:
        n_models = self.n_actions if self.context_mode_ == SHARED_CONTEXT else 1
        self.model_ = self._make_model(n_models)

    def _training_rows(
        self,
        X: np.ndarray,
        actions: np.ndarray | None,
        rewards: np.ndarray | None,
        full_rewards: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``(features (m, d), targets (m,), model ids (m,))`` the feedback teaches."""
        n, K = X.shape[0], self.n_actions
        shared = self.context_mode_ == SHARED_CONTEXT
        if full_rewards is not None:
            if shared:
                feats = np.repeat(X, K, axis=0)
                ids = np.tile(np.arange(K), n)
            else:
                feats = X.reshape(n * K, -1)
                ids = np.zeros(n * K, dtype=np.int64)
            return feats, full_rewards.reshape(-1), ids
        assert actions is not None and rewards is not None
        if shared:
            return X, rewards, actions
        return X[np.arange(n), actions], rewards, np.zeros(n, dtype=np.int64)

    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        feats, targets, ids = self._training_rows(X, actions, rewards, full_rewards)
        self.model_.partial_fit(feats, targets, ids)

    def _learn_one(self, X, action, reward):
        # one bandit case is one row for one model (see _training_rows): a model that learns
        # a row at a time (RidgeRegression.add_one) takes it directly, unless a subclass
        # changes how feedback becomes rows
        add_one = getattr(self.model_, "add_one", None) if _plain_rows(type(self)) else None
        if add_one is None:
            super()._learn_one(X, action, reward)
        elif self.context_mode_ == SHARED_CONTEXT:
            add_one(action, X[0], reward)
        else:
            add_one(0, X[0, action], reward)

    def _get_learned_state(self) -> dict[str, Any]:
        return {"model": self.model_.get_state()}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.model_.set_state(state["model"])
