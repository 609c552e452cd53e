"""What the service needs to know about a configured policy, found once when the configuration
is loaded: the protocol's declared tags (variant, reward kind, keywords) and what a throw-away
instance shows when it is driven through the class's own contract hooks
(``_unit_test_contexts`` and ``_unit_test_feedback``, the ones :mod:`scarce.checks` uses):

* whether a decision returns ``Decision.info`` (then the service logs it and hands it back to
  ``update``);
* whether ``decide`` changes the learned state (beyond the random stream), as a budgeted
  policy does when it reserves a cost bound or counts its warm-up. The service keeps a model
  that is a function of the join log only, so such a policy decides on a copy of the served
  model and its learner replays each logged decision (the logged action forced by a one-hot
  ``eligible`` mask) before learning from it;
* its hard budget: a policy that holds a :class:`scarce.core.ledger.Ledger` as ``ledger_``
  once initialised (``KnapsackBandit``, ``Deferral``) has its budget and cost bounds enforced
  by the service's database, the ledger of record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scarce.core.ledger import Ledger
from scarce.core.policy import ACTION_FEATURES, SHARED_CONTEXT, Policy

#: the protocol variants the service can serve (``Policy.action_type``)
SERVED_ACTION_TYPES = ("discrete", "levels", "allocation")
#: decisions driven through a probe instance (the first one initialises it)
_PROBE_ROUNDS = 4


@dataclass(frozen=True)
class PolicyTraits:
    """A configured policy as the service sees it.

    Attributes
    ----------
    action_type:
        ``"discrete"`` (one of ``K`` actions), ``"levels"`` (a level per item) or
        ``"allocation"`` (one of ``K`` actions per case of a cohort, coupled by capacities:
        :mod:`scarce.serve.cohorts`).
    reward_kind:
        ``"scalar"``, ``"vector"`` (rewards of ``n_objectives`` numbers) or ``"any"``.
    n_objectives:
        length of a vector reward (None for scalar policies).
    decide_keywords, update_keywords:
        the decision-time context and the feedback keywords the policy declares.
    deterministic:
        whether a decision is a function of the state (no random draw).
    has_probabilities:
        whether ``action_probabilities`` gives the full distribution (discrete policies).
    has_info:
        whether decisions carry ``Decision.info``.
    stateful_decide:
        whether ``decide`` changes the learned state (beyond the random stream).
    budget, cost_bound:
        ``(m,)`` and ``(K, m)`` of the policy's own hard budget (its ``ledger_``), or None.
    n_levels:
        number of levels (``"levels"`` policies), else None.
    """

    action_type: str
    reward_kind: str
    n_objectives: int | None
    decide_keywords: tuple[str, ...]
    update_keywords: tuple[str, ...]
    deterministic: bool
    has_probabilities: bool
    has_info: bool
    stateful_decide: bool
    budget: np.ndarray | None = None
    cost_bound: np.ndarray | None = None
    n_levels: int | None = None

    @property
    def learns_costs(self) -> bool:
        """Whether realised costs are part of the feedback (``costs`` keyword)."""
        return "costs" in self.update_keywords

    @property
    def n_resources(self) -> int:
        """Resources of the policy's own budget (0 without one)."""
        return 0 if self.budget is None else int(self.budget.shape[0])


def layout_of(features: str) -> str:
    """The policy layout of a service feature mode (``"shared"`` or ``"per_action"``)."""
    return SHARED_CONTEXT if features == "shared" else ACTION_FEATURES


def _learned_state(policy: Policy) -> Any:
    # the saved state without the random stream (the service swaps that out per decision)
    state = dict(policy._get_state())
    state.pop("rng", None)
    return state


def probe_traits(cls: type[Policy], params: dict[str, Any], features: str) -> PolicyTraits:
    """Drive a throw-away ``cls(**params)`` through a few decisions and updates (with the
    class's contract hooks) and report its :class:`PolicyTraits`.

    Raises
    ------
    ValueError
        when the variant or the layout cannot be served, or the probe fails (the message
        says why).
    """
    from scarce.serve.learner import states_equal  # (learner imports the config module)

    action_type = getattr(cls, "action_type", "discrete")
    if action_type not in SERVED_ACTION_TYPES:
        raise ValueError(
            f"{cls.__name__} is a {action_type!r} policy; the service serves {SERVED_ACTION_TYPES}"
        )
    layout = layout_of(features)
    if layout not in cls.layouts:
        wanted = " or ".join(
            repr("shared" if lay == SHARED_CONTEXT else "per_action") for lay in cls.layouts
        )
        raise ValueError(f"{cls.__name__} needs service.features = {wanted}")
    policy = cls(**params)
    rng = np.random.default_rng(0)
    stateful = has_info = False
    has_probabilities = action_type == "discrete"
    try:
        for r in range(_PROBE_ROUNDS):
            # an allocation policy decides cohorts (here of 3 cases, 1 of each resource)
            n = 3 if action_type == "allocation" else 1
            X = cls._unit_test_contexts(rng, n, layout, params)
            kw = {}
            if action_type == "allocation":
                kw["capacities"] = np.array([n] + [1] * (policy.n_actions - 1))
            before = _learned_state(policy) if r else None
            decision = policy.decide(X, **kw)
            if before is not None and not states_equal(before, _learned_state(policy)):
                stateful = True
            has_info = has_info or bool(decision.info)
            if has_probabilities:
                try:
                    policy.action_probabilities(X)
                except NotImplementedError:
                    has_probabilities = False
            policy.update(X, **cls._unit_test_feedback(rng, X, decision, params))
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"driving it with its contract hooks failed: {exc}") from None
    budget = cost_bound = None
    ledger = getattr(policy, "ledger_", None)
    if isinstance(ledger, Ledger):
        budget, cost_bound = ledger.budget.copy(), ledger.cost_bound.copy()
    n_objectives = getattr(policy, "n_objectives", None) if cls.reward_kind == "vector" else None
    n_levels = getattr(policy, "n_levels", None) if action_type == "levels" else None
    return PolicyTraits(
        action_type=action_type,
        reward_kind=cls.reward_kind,
        n_objectives=None if n_objectives is None else int(n_objectives),
        decide_keywords=tuple(policy.decide_keywords),
        update_keywords=tuple(policy.update_keywords),
        deterministic=bool(policy.deterministic),
        has_probabilities=has_probabilities,
        has_info=has_info,
        stateful_decide=stateful,
        budget=budget,
        cost_bound=cost_bound,
        n_levels=None if n_levels is None else int(n_levels),
    )
