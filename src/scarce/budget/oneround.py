"""The feedback of one decision, in the form the simulation loop gives it, in few steps
(issue 18).

``update(x, actions, rewards, costs=..., info=decision.info)`` on one ``(1, d)`` case after a
decision of :meth:`~scarce.budget.knapsack.KnapsackBandit.decide` is what the loop, the
benchmarks and the decision service make every round. The general path (``_learn``) checks
the costs with the ledger's arrays, books them, takes the dual step and builds the rows of
the models' step; for one case most of its cost is these checks and conversions on ``m``
numbers. :class:`OneRoundFeedback` does the same with the costs as Python floats: the
checks (finite, ``0 <= c <= cost_bound``, the free action's costs 0, the deferral model's
reward) are made before anything changes, and anything it does not take (another shape or
dtype, full-information costs, an ``info`` of another form, a check that fails) goes to the
general path, which keeps every error message. The arithmetic is the general path's (the
same NumPy operations on the same operands, so the same state bit for bit;
``tests/budget/test_single_case.py`` compares the two paths over long runs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.models.compiled import kernels

_FLOAT = np.dtype(np.float64)
_BOOL = np.dtype(bool)


class _Cache:
    """What one round's feedback needs of a policy's fixed parameters, as Python values."""

    __slots__ = (
        "bound",
        "deferral",
        "free",
        "ids",
        "ledger",
        "lo_hi",
        "m",
        "rows",
        "settle",
        "tol",
    )

    def __init__(self, policy: Any) -> None:
        led = policy.ledger_
        self.ledger = led  # the cache belongs to this state (rebuilt with a new one)
        self.m = policy.n_resources
        self.free = policy._free
        self.bound = [row for row in led.cost_bound]  # (m,) row views, as settle uses them
        self.tol = led._bound_tol.tolist()  # check_costs' bounds, row per action
        lo, hi = policy._conf.reward_range
        self.lo_hi = (float(lo), float(hi))
        # one-row id arrays per action, as _reward_rows / learn_rewards receive them
        self.ids = [np.array([a], dtype=np.int64) for a in range(policy.n_actions)]
        self.rows = np.zeros((1, self.m))
        # Deferral: model_rewards accepted (and, with feedback="full", learned)
        self.deferral = "model_rewards" in policy._extra_keywords()
        # backend="numba": the ledger's booking of one case compiled (the same operations)
        self.settle = kernels().settle_one if policy.models_.compiled else None


class OneRoundFeedback:
    """Mixed into :class:`~scarce.budget.knapsack.KnapsackBandit` (through
    :class:`~scarce.budget.single.SingleCasePath`): :meth:`_learn_one_fast`."""

    def _one_round_cache(self) -> _Cache:
        cache = self.__dict__.get("_one_cache")
        if cache is None or cache.ledger is not self.ledger_:  # type: ignore[attr-defined]
            cache = _Cache(self)
            self.__dict__["_one_cache"] = cache
        return cache

    def _model_reward(self, extra: dict[str, Any], cache: _Cache) -> float | None:
        """The deferral model's reward given as ``model_rewards`` (a ``(1,)`` float64 array or
        a float) when it is in ``reward_range``; None for anything else."""
        mr = extra.get("model_rewards")
        if type(mr) is np.ndarray:
            if mr.shape != (1,) or mr.dtype != _FLOAT:
                return None
            v = float(mr[0])
        elif type(mr) is float:
            v = mr
        else:
            return None
        lo, hi = cache.lo_hi
        return v if lo <= v <= hi else None  # NaN fails

    def _learn_one_fast(
        self, X: np.ndarray, action: int, reward: float, info: Any, extra: dict[str, Any]
    ) -> bool:
        """``_learn`` of one decided case ``X`` ``(1, d)`` with ``costs`` ``(1, m)`` (``(1,)``
        for one resource) float64 and the decision's own ``info``, with the ridge models of
        the usual configuration (identity links); False (nothing changed) for any other form
        of feedback or models, which the general path then takes."""
        if (
            not self._dual.dual_uses_estimate  # type: ignore[attr-defined]
            or type(info) is not dict
            or not self.models_.paired_ridge  # type: ignore[attr-defined]
        ):
            return False  # (other models: the general path's rows and order of steps)
        priced = info.get("priced")
        used = info.get("cost_lcb")
        cache = self._one_round_cache()
        m = cache.m
        if (
            len(info) != 2
            or type(priced) is not np.ndarray
            or type(used) is not np.ndarray
            or priced.shape != (1,)
            or priced.dtype != _BOOL
            or used.shape != (1, m)
            or used.dtype != _FLOAT
        ):
            return False
        deferral = cache.deferral
        full = deferral and self.feedback == "full"  # type: ignore[attr-defined]
        for key in extra:
            if key != "costs" and not (key == "model_rewards" and deferral):
                return False
        mr = 0.0
        if full:
            got = self._model_reward(extra, cache)
            if got is None:
                return False
            mr = got
        costs = extra.get("costs")
        free = action == cache.free
        if costs is None:
            if not free:
                return False
            C = cache.rows
        elif (
            type(costs) is not np.ndarray
            or costs.dtype != _FLOAT
            or not (costs.shape == (1, m) or (m == 1 and costs.shape == (1,)))
        ):
            return False
        else:
            C = costs if costs.ndim == 2 else costs[:, None]
            values = C[0].tolist()
            if free:
                if any(v != 0.0 for v in values):  # NaN too
                    return False
            else:
                tol = cache.tol[action]
                for v, t in zip(values, tol, strict=True):
                    if not 0.0 <= v <= t:  # NaN fails
                        return False
        if full and free and mr != reward:
            return False
        # checked: book the costs (KnapsackBandit._settle), step the prices, learn
        models = self.models_  # type: ignore[attr-defined]
        x = X[0]
        if not free:
            led = cache.ledger
            if cache.settle is not None:
                cache.settle(led.reserved, led.spent, cache.bound[action], C[0])
            else:
                led.reserved = np.maximum(led.reserved - cache.bound[action], 0.0)
                led.spent += C[0]
            self._ledger_changed()  # type: ignore[attr-defined]
        if priced[0]:
            if m == 1:
                self.prices_.step_one(float(used[0, 0]))  # type: ignore[attr-defined]
            else:
                self.prices_.step(used[0])  # type: ignore[attr-defined]
        if free:
            y = mr if full else reward
            models.learn_rewards(X, np.array([y]), cache.ids[action])
            return True
        if not models.learn_one_paired(x, reward, C[0], action):
            models.learn_rewards(X, np.array([reward]), cache.ids[action])
            models.learn_costs(X, C, cache.ids[action])
        if full:  # the model's reward, seen on every case (after the deferred row, as _learn)
            models.learn_rewards(X, np.array([mr]), cache.ids[cache.free])
        return True
