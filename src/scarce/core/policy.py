"""The policy base class: bookkeeping, validation and persistence live here; algorithms
implement a small set of hooks (template-method pattern)."""

from __future__ import annotations

import inspect
import math
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

    Notes
    -----
    Subclasses implement :meth:`_decide` and :meth:`_learn` (and, when they hold learned state,
    :meth:`_init_state`, :meth:`_get_state`, :meth:`_set_state`). Constructor arguments are stored
    unmodified and validated on first use by :meth:`_check_params`. One case at a time in the
    layout already fixed (a float64 ``(1, d)`` / ``(1, K, d)`` array, one action, one reward)
    skips the general validation for a cheaper, equivalent one (:meth:`_single_case`) and
    reaches :meth:`_learn_one`, which a subclass may override with a faster path of exactly
    :meth:`_learn`'s effect.

    Contexts come as ``(n, d)`` (the same context for every action; each action has its own
    parameters) or ``(n, K, d)`` (features per action; one parameter vector shared by all
    actions). The first call fixes which, in ``context_mode_``.
    """

    # ---- declared tags: what the policy is, for the loop, the service and the contract suite
    #: whether ``decide`` is a deterministic function of the state (contract tests use it)
    deterministic: bool = False
    #: reward range the algorithm requires, or None
    reward_bounds: tuple[float, float] | None = None
    #: context layouts the policy supports (:data:`SHARED_CONTEXT`, :data:`ACTION_FEATURES`)
    layouts: tuple[str, ...] = (SHARED_CONTEXT, ACTION_FEATURES)
    #: ``"scalar"``: rewards ``(n,)``; ``"vector"``: ``(n, n_objectives)`` (the policy has an
    #: ``n_objectives`` parameter); ``"any"``: either (policies that ignore rewards)
    reward_kind: str = "scalar"
    #: how ``Decision.probabilities`` are obtained: ``"exact"`` (closed form or deterministic),
    #: ``"quadrature"`` (numerical integration, ~1e-5) or ``"monte_carlo"`` (sampled, ~1e-2);
    #: a dict gives one per layout
    probability_method: str | dict[str, str] = "exact"
    #: the declared variant of the protocol (OBP's ``policy_type``):
    #: ``"discrete"`` chooses one of ``n_actions`` actions per case, independently of the
    #: other cases of the batch; ``"allocation"`` (:class:`scarce.fair.CohortPolicy`): the
    #: batch is one round's cohort, action 0 gives a case nothing and action ``r + 1``
    #: resource ``r``, and the cases of a batch are coupled by decision-time context
    #: (``capacities``: how many cases may take each action this round; ``groups``;
    #: ``units``: who each case is across rounds); ``"levels"`` (:mod:`scarce.combinatorial`)
    #: gives each of ``n_actions`` items of a case one of several levels under a per-case
    #: cap: contexts ``(n, n_actions, d)``, actions ``(n, n_actions)`` level ids, rewards the
    #: case totals ``(n,)`` (per-item rewards as the ``item_rewards`` keyword)
    action_type: str = "discrete"
    #: whether ``update(X, full_rewards=...)`` (every action's reward) is learned from
    full_information: bool = True

    #: shape of one case in the layout fixed by the first call, ``(1, d)`` or ``(1, K, d)``
    #: (None before it): ``decide`` and ``update`` check such a case with a few attribute
    #: tests instead of the general validation (see :meth:`_single_case`)
    _one_case_shape: tuple[int, ...] | None = None

    def __init__(self, *, n_actions: int, n_features: int, seed: SeedLike = None) -> None:
        self.n_actions = n_actions
        self.n_features = n_features
        self.seed = seed
        self._initialized = False
        self._one_case_shape = None

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's keyword names (what :meth:`get_params` reports)."""
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, as given (a Generator ``seed`` is reported as None)."""
        params = {name: getattr(self, name) for name in self.param_names()}
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
            self._one_case_shape = self._single_case_shape()
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

    def _single_case_shape(self) -> tuple[int, ...]:
        return (
            (1, self.n_features)
            if self.context_mode_ == SHARED_CONTEXT
            else (1, self.n_actions, self.n_features)
        )

    def _single_case(self, X: Any) -> np.ndarray | None:
        """``X`` itself when it is one finite float64 case in this policy's layout (what
        :func:`~scarce.core.validation.check_contexts` would return unchanged), else None
        (the caller then validates in full, with the full error messages)."""
        if type(X) is np.ndarray and X.shape == self._one_case_shape and X.dtype == _FLOAT:
            x = X.ravel()  # a view unless the case is strided
            # a NaN or inf anywhere makes the sum of squares NaN or inf (no cancellation);
            # a finite case whose sum of squares overflows takes the general path
            if math.isfinite(x.dot(x)):
                return X
        return None

    # ------------------------------------------------------------------ public API
    def decide(self, X: Any, *, eligible: Any = None, **context: Any) -> Decision:
        """Choose an action for each case.

        Parameters
        ----------
        X:
            ``(n, d)`` contexts or ``(n, K, d)`` per-action features (a ``(d,)`` vector is one case).
        eligible:
            optional ``(n, K)`` (or ``(K,)``) boolean mask; only ``True`` actions may be chosen.
        context:
            decision-time side information the policy declares in :attr:`decide_keywords`
            (e.g. ``groups``); others raise ``TypeError``.
        """
        if eligible is None and not context:
            one = self._single_case(X)
            if one is not None:  # the validated fast path for one case
                return self._decide(one, None)
        X = check_contexts(X, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        mask = self._check_eligible(eligible, X.shape[0])
        if context:
            self._check_keywords(context, self._context_keywords(), "decide")
            return self._decide(X, mask, **context)
        return self._decide(X, mask)

    @property
    def decide_keywords(self) -> tuple[str, ...]:
        """Keywords of :meth:`decide` beyond ``eligible`` that this policy uses."""
        return tuple(self._context_keywords())

    @property
    def update_keywords(self) -> tuple[str, ...]:
        """Keywords of :meth:`update` beyond ``actions``, ``rewards``, ``full_rewards`` and
        ``info`` that this policy learns from (``costs``, ...)."""
        return tuple(k for k in self._extra_keywords() if k != "info")

    def _check_keywords(self, given: dict[str, Any], accepted: Any, method: str) -> None:
        unknown = set(given) - set(accepted)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.{method} got unexpected keyword(s) {sorted(unknown)}; "
                f"accepted: {sorted(accepted) or 'none'}"
            )

    def update(
        self,
        X: Any,
        actions: Any = None,
        rewards: Any = None,
        *,
        full_rewards: Any = None,
        info: Any = None,
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
        info:
            ``Decision.info`` of these decisions (what the policy knew when it made them);
            given to the policy when it lists ``"info"`` among its update keywords, ignored
            otherwise (it is the policy's own bookkeeping).
        extra:
            capability-specific feedback (costs, ...) the policy declares in
            :attr:`update_keywords`; others raise ``TypeError``.
        """
        if full_rewards is None and self.reward_kind == "scalar" and self.action_type == "discrete":
            one = self._single_case(X)
            if one is not None:
                action = _one_action(actions, self.n_actions)
                reward = _one_reward(rewards, self.reward_bounds)
                if action is not None and reward is not None:  # the validated fast path
                    if not extra and (info is None or "info" not in self._extra_keywords()):
                        self._learn_one(one, action, reward)
                        self.n_updates_ += 1
                        return self
                    if self._learn_one_with(one, action, reward, info, extra):
                        self.n_updates_ += 1
                        return self
        X = check_contexts(X, self.n_features, self.n_actions)
        n = X.shape[0]
        if self.reward_kind == "scalar":
            actions, rewards, full = self._check_scalar_feedback(X, actions, rewards, full_rewards)
        else:
            actions, rewards, full = self._check_any_feedback(X, actions, rewards, full_rewards)
        accepted = self._extra_keywords()
        if extra:
            self._check_keywords(extra, accepted, "update")
        if info is not None and "info" in accepted:
            extra["info"] = _check_info(info, n)
        self._ensure_initialized(X)
        self._learn(X, actions, rewards, full, **extra)
        self.n_updates_ += n
        return self

    def _check_scalar_feedback(
        self, X: np.ndarray, actions: Any, rewards: Any, full_rewards: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        n = X.shape[0]
        lo, hi = self.reward_bounds if self.reward_bounds is not None else (None, None)
        if full_rewards is not None:
            full = check_matrix(full_rewards, (n, self.n_actions), "full_rewards", low=lo, high=hi)
            if actions is not None or rewards is not None:
                actions = self._check_actions(actions, n)
                rewards = check_vector(rewards, n, "rewards", low=lo, high=hi)
                if not np.allclose(full[np.arange(n), actions], rewards):
                    raise ValueError("rewards must equal full_rewards at the chosen actions")
            return actions, rewards, full
        if actions is None or rewards is None:
            raise ValueError("update needs actions and rewards (or full_rewards)")
        actions = self._check_actions(actions, n)
        rewards = check_vector(rewards, n, "rewards", low=lo, high=hi)
        return actions, rewards, None

    def _check_any_feedback(
        self, X: np.ndarray, actions: Any, rewards: Any, full_rewards: Any
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Feedback of a ``"vector"`` policy (rewards ``(n, m)``, full ``(n, K, m)``) or of an
        ``"any"`` one (scalar or vector, told by the number of axes)."""
        n, K = X.shape[0], self.n_actions
        given = rewards if full_rewards is None else full_rewards
        if self.reward_kind == "any":
            if np.ndim(given) == (1 if full_rewards is None else 2):
                return self._check_scalar_feedback(X, actions, rewards, full_rewards)
            m = np.shape(given)[-1] if np.ndim(given) else 0
        else:
            m = self.n_objectives  # type: ignore[attr-defined]
        if full_rewards is not None:
            full = check_matrix(full_rewards, (n, K, m), "full_rewards")
            if actions is not None or rewards is not None:
                actions = self._check_actions(actions, n)
                rewards = check_matrix(rewards, (n, m), "rewards")
                if not np.allclose(full[np.arange(n), actions], rewards):
                    raise ValueError("rewards must equal full_rewards at the chosen actions")
            return actions, rewards, full
        if actions is None or rewards is None:
            raise ValueError("update needs actions and rewards (or full_rewards)")
        return self._check_actions(actions, n), check_matrix(rewards, (n, m), "rewards"), None

    def action_probabilities(self, X: Any, *, eligible: Any = None, **context: Any) -> np.ndarray:
        """``(n, K)`` probability of each action under the current state (rows sum to 1).

        Does not change the policy's state or its random stream.
        """
        if eligible is None and not context:
            one = self._single_case(X)
            if one is not None:  # the validated fast path for one case, as in decide
                return self._action_probabilities(one, None)
        X = check_contexts(X, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        mask = self._check_eligible(eligible, X.shape[0])
        if context:
            self._check_keywords(context, self._context_keywords(), "action_probabilities")
            return self._action_probabilities(X, mask, **context)
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

    def _learn_one(self, X: np.ndarray, action: int, reward: float) -> None:
        """Bandit feedback on one validated case (``X`` ``(1, d)`` or ``(1, K, d)``): what
        :meth:`_learn` does with ``actions = [action]`` and ``rewards = [reward]``; override
        only with exactly that effect."""
        self._learn(
            X, np.array([action], dtype=np.int64), np.array([reward], dtype=np.float64), None
        )

    def _learn_one_with(
        self, X: np.ndarray, action: int, reward: float, info: Any, extra: dict[str, Any]
    ) -> bool:
        """One validated case (as :meth:`_learn_one`) with ``info`` and the capability's
        keywords ``extra`` as given to :meth:`update`: a subclass may learn from them exactly
        as :meth:`_learn` would after the general validation and return True, or return False,
        without changing any state, for the general path (which validates them and raises
        on bad ones). The default always returns False."""
        return False

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not report action probabilities")

    def _check_actions(self, actions: Any, n: int) -> np.ndarray:
        """Validated actions of ``n`` decisions (a declared variant with structured actions
        overrides this: e.g. ``(n, N)`` levels)."""
        return check_actions(actions, n, self.n_actions)

    def _check_eligible(self, eligible: Any, n: int) -> np.ndarray | None:
        """Validated eligibility mask of ``n`` cases, or None (variants override)."""
        return check_eligible(eligible, n, self.n_actions)

    def _extra_keywords(self) -> tuple[str, ...]:
        """Keywords ``update`` accepts beyond the reward arguments (``"info"``: receive
        ``Decision.info`` back in ``_learn``)."""
        return ()

    def _context_keywords(self) -> tuple[str, ...]:
        """Keywords ``decide`` and ``action_probabilities`` accept beyond ``eligible``."""
        return ()

    # ------------------------------------------------------------------ contract hooks
    # River's habit: each class says how the contract suite (scarce.checks) builds and feeds it.
    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        """Constructor keywords beyond ``n_actions``, ``n_features`` and ``seed`` to check the
        class with (one dict per configuration; small, so the checks stay fast)."""
        return [{}]

    @classmethod
    def _unit_test_contexts(
        cls, rng: np.random.Generator, n: int, layout: str, params: dict[str, Any]
    ) -> np.ndarray:
        """``n`` contexts of ``layout`` for the checks (``params``: the full constructor
        keywords); standard normal by default."""
        K, d = params["n_actions"], params["n_features"]
        return rng.normal(size=(n, d)) if layout == SHARED_CONTEXT else rng.normal(size=(n, K, d))

    @classmethod
    def _unit_test_feedback(
        cls, rng: np.random.Generator, X: np.ndarray, decision: Decision, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Keywords of ``update`` for the decisions made on ``X`` (the checks call
        ``policy.update(X, **feedback)``); rewards uniform on [0, 1) by default."""
        n = X.shape[0]
        m = params.get("n_objectives") if cls.reward_kind == "vector" else None
        rewards = rng.random(n) if m is None else rng.random((n, m))
        return {"actions": decision.actions, "rewards": rewards, "info": decision.info}

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
            self._one_case_shape = None
            return
        self._check_params()
        self.context_mode_ = state["context_mode"]
        self.n_updates_ = int(state["n_updates"])
        self.rng_ = generator_from_state(state["rng"])
        self._init_state()
        # _init_state may draw (e.g. seeds for sub-models) and the learned state replaces what
        # it made: the saved stream is restored so a loaded policy draws as the original does
        self.rng_ = generator_from_state(state["rng"])
        self._set_learned_state(state["learned"])
        self._initialized = True
        self._one_case_shape = self._single_case_shape()

    def _get_learned_state(self) -> dict[str, Any]:
        return {}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save parameters, learned state and RNG state to the directory ``path``."""
        return persist.save(self, path)


_FLOAT = np.dtype(np.float64)


def _one_action(actions: Any, n_actions: int) -> int | None:
    """One valid action id given as an int, a one-element list/tuple or a ``(1,)`` integer
    array, as a Python int; None for anything else (the general validation decides)."""
    if type(actions) is list or type(actions) is tuple:
        if len(actions) != 1:
            return None
        actions = actions[0]
    elif type(actions) is np.ndarray:
        if actions.shape != (1,) or actions.dtype.kind not in "iu":
            return None
        actions = actions[0]
    if type(actions) is int or isinstance(actions, np.integer):
        a = int(actions)
        return a if 0 <= a < n_actions else None
    return None


def _one_reward(rewards: Any, bounds: tuple[float, float] | None) -> float | None:
    """One finite reward within ``bounds`` given as a number, a one-element list/tuple or a
    ``(1,)`` float array, as a Python float; None for anything else."""
    if type(rewards) is list or type(rewards) is tuple:
        if len(rewards) != 1:
            return None
        rewards = rewards[0]
    elif type(rewards) is np.ndarray:
        if rewards.shape != (1,) or rewards.dtype.kind != "f":
            return None
        rewards = rewards[0]
    if type(rewards) is float or isinstance(rewards, np.floating | np.integer):
        r = float(rewards)
    elif type(rewards) is int and abs(rewards) < 2**53:
        r = float(rewards)
    else:
        return None
    if not math.isfinite(r):
        return None
    if bounds is not None and not bounds[0] <= r <= bounds[1]:
        return None
    return r


def _check_info(info: Any, n: int) -> dict[str, np.ndarray]:
    """``Decision.info`` handed back to ``update``: name -> array with leading axis ``n``."""
    if not isinstance(info, dict):
        raise ValueError(
            f"info must be a dict of per-case arrays (Decision.info); got {type(info).__name__}"
        )
    out = {}
    for key, value in info.items():
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"info[{key!r}] must have leading axis n = {n}; got shape {arr.shape}")
        out[key] = arr
    return out


def load(path: str | os.PathLike[str]) -> Any:
    """Load a policy (or other scarce object) saved with ``.save(path)``."""
    return persist.load(path)
