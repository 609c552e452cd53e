"""Budgets of the service, on the one ledger implementation (:mod:`scarce.core.ledger`).

Two kinds of resource, both rows of the ``budgets`` table (the database is the ledger of
record, so replicas never overspend together):

* **fixed costs** (``[budgets.RESOURCE]`` tables): action ``a`` costs ``costs[a]``, charged
  at decision time; per-group quotas cap the same resource per group;
* **the policy's own hard budget** (a policy holding a :class:`~scarce.core.ledger.Ledger`
  as ``ledger_``: ``KnapsackBandit``, ``Deferral``): resources ``ledger:0 .. ledger:m-1``. A
  decision *reserves* its action's cost bound (in the transaction that logs it); the reward
  *settles* it: the realised cost (refused above the bound, required when the bound is
  positive) is kept and the rest refunded -- with ``aggregation = "earliest"`` when the
  reward is accepted, with ``"sum"`` when the event is joined (its costs are final then). An
  event that never gets a reward keeps its whole reservation.

Which actions fit is :func:`scarce.core.ledger.affordable` for both kinds, with what is left
as read from the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.core.ledger import TOLERANCE, Ledger, affordable

#: budget rows of a policy's own ledger are named ``ledger:<resource index>``
LEDGER_PREFIX = "ledger:"

Charges = list[tuple[str, str, float]]


class BudgetRules:
    """The affordability and charges of one configuration.

    Parameters
    ----------
    n_actions:
        ``K``.
    fixed:
        ``(resource, total, costs (K,), quotas {group: cap})`` of the ``[budgets]`` tables.
    ledger_budget, ledger_bound:
        ``(m,)`` and ``(K, m)`` of the policy's own hard budget, or None.
    """

    def __init__(
        self,
        n_actions: int,
        fixed: Sequence[tuple[str, float, Sequence[float], dict[str, float]]] = (),
        ledger_budget: np.ndarray | None = None,
        ledger_bound: np.ndarray | None = None,
    ) -> None:
        self.n_actions = n_actions
        self.resources: list[str] = [r for r, *_ in fixed]
        self.totals = [float(t) for _, t, _, _ in fixed]
        bounds = [np.asarray(c, dtype=np.float64) for _, _, c, _ in fixed]
        self.quotas = {r: dict(q) for r, _, _, q in fixed}
        self.ledger: Ledger | None = None
        if ledger_budget is not None and ledger_bound is not None:
            self.ledger = Ledger(ledger_budget, ledger_bound)
            for j in range(self.ledger.n_resources):
                self.resources.append(f"{LEDGER_PREFIX}{j}")
                self.totals.append(float(self.ledger.budget[j]))
                bounds.append(self.ledger.cost_bound[:, j])
        # (K, m) cost bound of every resource: fixed costs are their own bound
        self.cost_bound = (
            np.stack(bounds, axis=1) if bounds else np.zeros((n_actions, 0), dtype=np.float64)
        )
        self._quota_cols = {r: self.resources.index(r) for r in self.quotas if self.quotas[r]}
        self._json_cache: dict[tuple[Any, ...], str] = {}
        # (resource, the largest cost bound of any action): while every resource has at least
        # that much left, affordable() allows every action, so the request path can skip it
        self._largest = [
            (r, float(self.cost_bound[:, j].max(initial=0.0))) for j, r in enumerate(self.resources)
        ]
        #: what :meth:`allowed` returns when every action is affordable (read-only, shared)
        self.all_actions = np.ones(n_actions, dtype=bool)
        self.all_actions.setflags(write=False)

    @property
    def active(self) -> bool:
        """Whether any resource is enforced."""
        return bool(self.resources)

    def rows(self) -> list[tuple[str, str, float]]:
        """The initial ``(resource, group or "", amount)`` rows."""
        out = [(r, "", t) for r, t in zip(self.resources, self.totals, strict=True)]
        for r, quotas in self.quotas.items():
            out.extend((r, g, q) for g, q in quotas.items())
        return out

    def plenty(self, group: str | None, remaining: dict[tuple[str, str], float]) -> bool:
        """Whether every resource (and every quota of ``group``) has at least the largest
        cost bound of any action left in ``remaining``: then every action is affordable, and
        any larger amount left gives the same answer. False where ``remaining`` lacks a row."""
        try:
            return all(remaining[(r, "")] + TOLERANCE >= big for r, big in self._largest) and (
                group is None
                or all(
                    remaining[(r, group)] + TOLERANCE >= self._largest[j][1]
                    for r, j in self._quota_cols.items()
                    if group in self.quotas[r]
                )
            )
        except KeyError:
            return False

    def allowed(self, group: str | None, remaining: dict[tuple[str, str], float]) -> np.ndarray:
        """``(K,)`` bool: the actions one case of ``group`` can afford, given the
        ``{(resource, group or ""): remaining}`` read from the store (do not modify the
        result)."""
        if self.plenty(group, remaining):
            return self.all_actions
        left = np.array([remaining[(r, "")] for r in self.resources])
        ok = affordable(self.cost_bound, left)
        if group is not None:
            for r, j in self._quota_cols.items():
                if group in self.quotas[r]:
                    ok &= affordable(
                        self.cost_bound[:, j : j + 1], np.array([remaining[(r, group)]])
                    )
        return ok

    def charges(self, action: int, group: str | None) -> Charges:
        """What a decision of ``action`` reserves or pays: ``(resource, group or "", amount)``
        (a policy ledger's zero reservations included: they say the decision is settled by its
        reward)."""
        out: Charges = []
        for j, r in enumerate(self.resources):
            c = float(self.cost_bound[action, j])
            ledger = r.startswith(LEDGER_PREFIX)
            if c > 0 or ledger:
                out.append((r, "", c))
                if c > 0 and group is not None and group in self.quotas.get(r, {}):
                    out.append((r, group, c))
        return out

    def charges_json(self, charges: Charges) -> str | None:
        """The JSON of ``charges`` (cached: one entry per action and quota group in practice)."""
        if not charges:
            return None
        key = tuple(charges)
        text = self._json_cache.get(key)
        if text is None:
            text = json.dumps(charges)
            if len(self._json_cache) < 4096:
                self._json_cache[key] = text
        return text


def spent(charges: Charges) -> Charges:
    """The charges that change a budget row (a zero reservation changes none)."""
    return [c for c in charges if c[2] > 0]


def _reserved(charges_json: str | None) -> dict[int, float]:
    """The policy-ledger reservations of a logged decision: resource index -> amount."""
    if not charges_json:
        return {}
    return {
        int(r[len(LEDGER_PREFIX) :]): float(a)
        for r, g, a in json.loads(charges_json)
        if r.startswith(LEDGER_PREFIX) and g == ""
    }


def check_settlement(
    charges_json: str | None, cost: Sequence[float] | None, settled: Sequence[float] | None
) -> None:
    """Refuse a reward's ``cost`` that a decision's ledger reservation cannot settle: above
    its cost bound (the reservation), with ``settled`` (the costs accepted so far under
    ``aggregation = "sum"``) added; or missing while the bound is positive.

    Raises
    ------
    ValueError
        naming the resource and the bound.
    """
    reserved = _reserved(charges_json)
    if not reserved:
        return
    m = max(reserved) + 1
    if cost is None:
        if any(a > 0 for a in reserved.values()):
            raise ValueError(
                f"required: the decision reserved {[reserved[j] for j in range(m)]} of the "
                "policy's budget; report the realised cost"
            )
        return
    if len(cost) != m:
        raise ValueError(f"must have {m} number(s), one per resource of the policy's budget")
    for j in range(m):
        total = float(cost[j]) + (float(settled[j]) if settled is not None else 0.0)
        if total > reserved[j] + 1e-12:
            raise ValueError(
                f"{total:g} exceeds the cost bound {reserved[j]:g} of this decision's action "
                f"(resource {j}); the budget guarantee relies on it"
            )


def refunds(charges_json: str | None, cost: Sequence[float] | None) -> Charges:
    """What a settled decision gives back: its reservation minus its realised ``cost`` per
    ledger resource (nothing without a cost: the reservation is kept)."""
    reserved = _reserved(charges_json)
    if not reserved or cost is None:
        return []
    return [
        (f"{LEDGER_PREFIX}{j}", "", amount - float(cost[j]))
        for j, amount in reserved.items()
        if amount - float(cost[j]) > 0
    ]
