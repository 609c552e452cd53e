"""The policy base class: bookkeeping, validation and persistence live here; algorithms
implement a small set of hooks (template-method pattern)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from scarce.core import persist
from scarce.core.decision import Decision
from scarce.core.random import SeedLike, as_generator, generator_from_state, generator_state
from scarce.core.validation import (
    check_actions,
    check_contexts,
    check_eligible,
    check_matrix,
    check_positive_int,
    check_vector,
)

SHARED_CONTEXT = "shared_context"  # X is (n, d): one context, disjoint per-action parameters
ACTION_FEATURES = "action_features"  # X is (n, K, d): per-action features, shared parameters


class Policy:
    """Base class of every decision rule.

    Parameters
    ----------
    n_actions:
        Number of actions ``K``.
    n_features:
        Context dimension ``d``.
    seed:
        int, ``numpy.random.Generator`` or None. All randomness of the policy flows from it.

    Subclasses implement :meth:`_decide` and :meth:`_learn` (and, when they hold learned state,
    :meth:`_init_state`, :meth:`_get_state`, :meth:`_set_state`). Constructor arguments are stored
    unmodified and validated on first use by :meth:`_check_params`.

    Contexts come as ``(n, d)`` (the same context for every action; each action has its own
    parameters) or ``(n, K, d)`` (features per action; one parameter vector shared by all
    actions). The first call fixes which, in ``context_mode_``.
    """

    #: whether ``decide`` is a deterministic function of the state (contract tests use it)
    deterministic: bool = False
    #: reward range the algorithm requires, or None
    reward_bounds: tuple[float, float] | None = None

    def __init__(self, *, n_actions: int, n_features: int, seed: SeedLike = None) -> None:
        self.n_actions = n_actions
        self.n_features = n_features
        self.seed = seed
        self._initialized = False

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as given (a Generator ``seed`` is reported as None)."""
        params = {name: getattr(self, name) for name in self._param_names()}
        if isinstance(params.get("seed"), np.random.Generator):
            params["seed"] = None
        return params

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_params().items() if not isinstance(v, np.ndarray)
        )
        return f"{type(self).__name__}({args})"

    def _check_params(self) -> None:
        """Validate constructor arguments; subclasses extend (and call super)."""
        check_positive_int(self.n_actions, "n_actions")
        check_positive_int(self.n_features, "n_features")

    # ------------------------------------------------------------------ lifecycle
    def _ensure_initialized(self, X: np.ndarray) -> None:
        mode = SHARED_CONTEXT if X.ndim == 2 else ACTION_FEATURES
        if not self._initialized:
            self._check_params()
            self.rng_ = as_generator(self.seed)
            self.context_mode_ = mode
            self.n_updates_ = 0
            self._init_state()
            self._initialized = True
        elif mode != self.context_mode_:
            expected = (
                f"(n, {self.n_features})"
                if self.context_mode_ == SHARED_CONTEXT
                else f"(n, {self.n_actions}, {self.n_features})"
            )
            raise ValueError(
                f"X must have shape {expected} like the earlier calls ({self.context_mode_}); got {X.shape}"
            )

    def _init_state(self) -> None:
        """Create learned state. ``self.context_mode_`` and ``self.rng_`` are set."""

    # ------------------------------------------------------------------ public API
    def decide(self, X: Any, *, eligible: Any = None) -> Decision:
        """Choose an action for each case.

        Parameters
        ----------
        X:
            ``(n, d)`` contexts or ``(n, K, d)`` per-action features (a ``(d,)`` vector is one case).
        eligible:
            optional ``(n, K)`` (or ``(K,)``) boolean mask; only ``True`` actions may be chosen.
        """
        X = check_contexts(X, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        mask = check_eligible(eligible, X.shape[0], self.n_actions)
        return self._decide(X, mask)

    def update(
        self,
        X: Any,
        actions: Any = None,
        rewards: Any = None,
        *,
        full_rewards: Any = None,
        **extra: Any,
    ) -> Policy:
        """Learn from outcomes.

        Parameters
        ----------
        X:
            the contexts the decisions were made on, as in :meth:`decide`.
        actions:
            ``(n,)`` chosen action ids (bandit feedback).
        rewards:
            ``(n,)`` rewards of the chosen actions.
        full_rewards:
            ``(n, K)`` rewards of every action (full-information feedback). When given,
            ``actions`` and ``rewards`` may be omitted.
        extra:
            capability-specific feedback (costs, groups, ...); policies that do not use a
            keyword reject it.
        """
        X = check_contexts(X, self.n_features, self.n_actions)
        n = X.shape[0]
        lo, hi = self.reward_bounds if self.reward_bounds is not None else (None, None)
        if full_rewards is not None:
            full = check_matrix(full_rewards, (n, self.n_actions), "full_rewards", low=lo, high=hi)
            if actions is not None or rewards is not None:
                actions = check_actions(actions, n, self.n_actions)
                rewards = check_vector(rewards, n, "rewards", low=lo, high=hi)
                if not np.allclose(full[np.arange(n), actions], rewards):
                    raise ValueError("rewards must equal full_rewards at the chosen actions")
        else:
            if actions is None or rewards is None:
                raise ValueError("update needs actions and rewards (or full_rewards)")
            actions = check_actions(actions, n, self.n_actions)
            rewards = check_vector(rewards, n, "rewards", low=lo, high=hi)
            full = None
        unknown = set(extra) - set(self._extra_keywords())
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.update got unexpected keyword(s) {sorted(unknown)}; "
                f"accepted: {sorted(self._extra_keywords()) or 'none'}"
            )
        self._ensure_initialized(X)
        self._learn(X, actions, rewards, full, **extra)
        self.n_updates_ += n
        return self

    def action_probabilities(self, X: Any, *, eligible: Any = None) -> np.ndarray:
        """``(n, K)`` probability of each action under the current state (rows sum to 1).

        Does not change the policy's state or its random stream.
        """
        X = check_contexts(X, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        mask = check_eligible(eligible, X.shape[0], self.n_actions)
        return self._action_probabilities(X, mask)

    # ------------------------------------------------------------------ hooks
    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        raise NotImplementedError

    def _learn(
        self,
        X: np.ndarray,
        actions: np.ndarray | None,
        rewards: np.ndarray | None,
        full_rewards: np.ndarray | None,
        **extra: Any,
    ) -> None:
        raise NotImplementedError

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not report action probabilities")

    def _extra_keywords(self) -> tuple[str, ...]:
        return ()

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        if not self._initialized:
            return {"initialized": False}
        return {
            "initialized": True,
            "context_mode": self.context_mode_,
            "n_updates": self.n_updates_,
            "rng": generator_state(self.rng_),
            "learned": self._get_learned_state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        if not state.get("initialized"):
            self._initialized = False
            return
        self._check_params()
        self.context_mode_ = state["context_mode"]
        self.n_updates_ = int(state["n_updates"])
        self.rng_ = generator_from_state(state["rng"])
        self._init_state()
        self._set_learned_state(state["learned"])
        self._initialized = True

    def _get_learned_state(self) -> dict[str, Any]:
        return {}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save parameters, learned state and RNG state to the directory ``path``."""
        return persist.save(self, path)


def load(path: str | os.PathLike[str]) -> Any:
    """Load a policy (or other scarce object) saved with ``.save(path)``."""
    return persist.load(path)
