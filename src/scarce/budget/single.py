"""The single-case path of the budgeted learners (issue 18).

One case at a time (``decide`` on one ``(1, d)`` context, then ``update`` with its outcome) is
how the simulation loop, the benchmarks and the decision service drive a budgeted learner.
The general code handles batches, eligibility masks, the warm-up and every form of feedback;
for one priced case and the feedback of one decision it spends most of its time on checks
and bookkeeping that do not apply. :class:`SingleCasePath` is mixed into
:class:`~scarce.budget.knapsack.KnapsackBandit` and takes those cases with the same
arithmetic (the same NumPy calls on the same shapes, so bit-identical decisions and state;
``tests/budget/test_trajectory.py`` pins seeded runs) and fewer Python steps. Anything else
goes through the general path, which keeps every check and error message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.budget.oneround import OneRoundFeedback
from scarce.core.decision import Decision
from scarce.core.ledger import TOLERANCE
from scarce.models.compiled import kernels

_PRICED = np.ones(1, dtype=bool)
_PRICED.flags.writeable = False
_ONE = np.ones(1)  # a deterministic choice's probability (copied: cheaper than np.ones)
_ONE.flags.writeable = False

SPARE_MAX = 1000
"""The most ledger changes one affordability test vouches for (``_ledger_changed``)."""


class SingleCasePath(OneRoundFeedback):
    """Methods of :class:`~scarce.budget.knapsack.KnapsackBandit` for one case (see the
    module's docstring); they use the policy's state and nothing of their own."""

    def _decide_priced_one(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        """``_decide`` for one case ``X`` ``(1, d)`` once ``Z`` is known: the best affordable
        (and eligible: ``eligible`` ``(1, K)`` or None) action of the Lagrangian scores, ties
        to the free action."""
        models = self.models_  # type: ignore[attr-defined]
        free = self._free  # type: ignore[attr-defined]
        if eligible is None and models.compiled:
            operands = models.priced_operands()
            if operands is not None:
                return self._decide_compiled(X, operands)
        if models.paired_ridge and self.n_resources == 1:  # type: ignore[attr-defined]
            price = self.prices_.price_one(self.Z_)  # type: ignore[attr-defined]
            scores, c = models.priced_one_scalar(X, price)
        elif models.paired_ridge:
            scores, c = models.priced_one(X, self.prices_.prices(self.Z_))  # type: ignore[attr-defined]
        else:
            prices = self.prices_.prices(self.Z_)  # type: ignore[attr-defined]
            r, c = models.bounds(X, True)
            scores = r - c @ prices
        ok = self._affordable()  # type: ignore[attr-defined]
        if eligible is not None:
            ok = ok & eligible[0]
            if not ok.any():
                raise ValueError(
                    f"case 0: no eligible action is affordable (remaining budget "
                    f"{self.ledger_.remaining}); make the free action {free} eligible"  # type: ignore[attr-defined]
                )
        s = scores[0] if ok is self._ok_all else np.where(ok, scores[0], -np.inf)  # type: ignore[attr-defined]
        a = int(s.argmax())
        if ok[free] and s[free] >= s[a]:
            a = free  # ties go to the free action
        if eligible is not None:
            scores = np.where(eligible, scores, -np.inf)
        return self._decided_one(a, scores, c)

    def _decide_compiled(self, X: np.ndarray, operands: tuple[Any, ...]) -> Decision:
        """``backend="numba"``: the priced decision of one case ``X`` ``(1, d)`` (no mask)
        and its reservation in one compiled call, with :meth:`_decide_priced_one`'s rules
        (the arithmetic to rounding)."""
        K, m = self.n_actions, self.n_resources  # type: ignore[attr-defined]
        kept = self.__dict__.get("_compiled_kept")
        if kept is None:  # the consumption buffer (the free action's row stays 0), scratch
            kept = (np.zeros((1, K, m)), np.empty(self.n_features))  # type: ignore[attr-defined]
            self.__dict__["_compiled_kept"] = kept
        c, u = kept
        prices, scores = self.prices_, np.empty((1, K))  # type: ignore[attr-defined]
        a = kernels().priced_choice(
            *operands,
            X,
            self.Z_,  # type: ignore[attr-defined]
            prices.weights,
            prices.scale,
            self._affordable(),  # type: ignore[attr-defined]
            self._free,  # type: ignore[attr-defined]
            self.ledger_.reserved,  # type: ignore[attr-defined]
            scores,
            c,
            u,
        )
        return self._decided_one(a, scores, c, reserved=True)

    def _decided_one(
        self, a: int, scores: np.ndarray, c: np.ndarray, reserved: bool = False
    ) -> Decision:
        """The decision of action ``a`` for one priced case (``scores`` ``(1, K)`` as
        shown, ``c`` ``(1, K, m)`` the consumption bounds they used): its reservation
        booked (unless ``reserved``: the compiled choice booked it), its ``info``."""
        if a != self._free:  # type: ignore[attr-defined]
            if not reserved:  # the free action's bound is 0: Ledger.reserve of one action
                self.ledger_.reserved += self._one_round_cache().bound[a]  # type: ignore[attr-defined]
            self._ledger_changed()
        self.n_decided_ += 1  # type: ignore[attr-defined]
        info = {"cost_lcb": c[:, a].copy(), "priced": _PRICED.copy()}
        actions = np.array([a], dtype=np.int64)
        return Decision(actions=actions, probabilities=_ONE.copy(), scores=scores, info=info)

    def _ledger_changed(self) -> None:
        """One case's reservation or settlement (of at most ``cost_bound`` per resource, and
        costs within the ledger's tolerance of it) has changed the ledger: the affordable
        actions ``_ok`` are recomputed on next use, unless every action was affordable and
        still certainly is. Checking the ledger every round costs more than the rest of a
        decision's bookkeeping, so when every action fits, the test of
        :meth:`~scarce.budget.knapsack.KnapsackBandit._affordable` is made on the new
        state and ``_spare`` counts the further changes of this kind that cannot make an
        action unaffordable (each lowers a resource's remaining budget by at most its
        largest bound: the margin, less a wide allowance for rounding, divided by it)."""
        spare = self.__dict__.get("_spare")  # (ledger, count); tied to this ledger
        if self._ok is self._ok_all:  # type: ignore[attr-defined]
            if spare is not None and spare[0] is self.ledger_ and spare[1] > 0:  # type: ignore[attr-defined]
                self._spare = (spare[0], spare[1] - 1)
                return
            n = self._spare_changes()
            if n >= 0:  # every action still fits now
                self._spare = (self.ledger_, n)  # type: ignore[attr-defined]
                return
        self._ok = None
        self._spare = None

    def _spare_changes(self) -> int:
        """-1 when some action does not fit the ledger now (the test of ``_affordable``, on
        Python floats); else how many more one-case changes certainly leave every action
        affordable (at most :data:`SPARE_MAX`)."""
        led = self.ledger_  # type: ignore[attr-defined]
        n = SPARE_MAX
        for c, b, s, r in zip(
            self._cb_max,  # type: ignore[attr-defined]
            led.budget.tolist(),
            led.spent.tolist(),
            led.reserved.tolist(),
            strict=True,
        ):
            margin = b - s - r + TOLERANCE - c
            if not margin >= 0.0:  # the test fails (NaN too)
                return -1
            # one change lowers b - s - r by at most c (+ the costs' 1e-12 tolerance); the
            # rounding of SPARE_MAX changes and of the test is far below 1e-6 of the sizes
            step = c + 1e-12
            margin -= 1e-6 * (abs(b) + abs(s) + abs(r) + SPARE_MAX * step + 1.0)
            n = min(n, int(margin / step)) if margin > 0.0 else 0
        return n

    def _learn_one_with(
        self, X: np.ndarray, action: int, reward: float, info: Any, extra: dict[str, Any]
    ) -> bool:
        """The feedback of one decision in the forms :meth:`decide` and the loop give it
        (``info`` the decision's own, per-case arrays with one row; the keywords this policy
        accepts) goes to ``_learn`` without the general checks of ``update`` (``_learn``
        checks the costs and the other keywords itself); anything else returns False."""
        if self._learn_one_fast(X, action, reward, info, extra):
            return True
        accepted = self._extra_keywords()  # type: ignore[attr-defined]
        for key in extra:
            if key not in accepted:
                return False
        if info is not None:
            if type(info) is not dict:
                return False
            for value in info.values():
                if type(value) is not np.ndarray or value.ndim == 0 or value.shape[0] != 1:
                    return False
        learn = dict(extra)
        learn["info"] = info
        actions = np.array([action], dtype=np.int64)
        rewards = np.array([reward], dtype=np.float64)
        self._learn(X, actions, rewards, None, **learn)  # type: ignore[attr-defined]
        return True

    def _learn_one_costly(
        self, feats: np.ndarray, y: np.ndarray, ids: np.ndarray, C: np.ndarray, actions: np.ndarray
    ) -> bool:
        """One decision ``actions`` ``(1,)`` of a costly action ``ids[-1]`` (its reward row
        last; rows before it teach the free action, as in deferral with full feedback): its
        reward and consumption models learn in one shared step when their designs are
        paired; False (nothing learned) otherwise."""
        if actions.shape[0] != 1 or actions[0] == self._free:  # type: ignore[attr-defined]
            return False
        n, a = ids.shape[0], int(ids[-1])
        if n > 2 or (n == 2 and ids[0] != self._free):  # type: ignore[attr-defined]
            return False
        models = self.models_  # type: ignore[attr-defined]
        if not models.learn_one_paired(feats[-1], float(y[-1]), C[0], a):
            return False
        if n == 2:
            models.learn_rewards(feats[:1], y[:1], ids[:1])
        return True
