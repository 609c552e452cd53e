"""What serves decisions now: the active policy with its budget rules and request checks
(swapped whole by a promotion), the answer of a decision, and the service's errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from scarce.serve.budgets import BudgetRules
from scarce.serve.config import ServiceConfig
from scarce.serve.served import ServedPolicy, support_dict
from scarce.serve.validation import RequestChecker


class BudgetExhaustedError(RuntimeError):
    """No eligible action is affordable under the remaining budgets and quotas. ``field``:
    ``"budget"``, or ``"requests[i]"`` for case ``i`` of a batch."""

    def __init__(self, message: str, field: str = "budget") -> None:
        super().__init__(message)
        self.field = field


class EventConflictError(RuntimeError):
    """An event id was reused for a different request (or by another key)."""

    def __init__(self, message: str, field: str = "event_id") -> None:
        super().__init__(message)
        self.field = field


class DecisionResult(NamedTuple):
    """What ``POST /v1/decisions`` returns: the action (a list of levels for ``"levels"``
    policies), its probability (None where the policy cannot say), the full distribution
    (None for structured actions), the model and policy versions that decided, and, for
    policies that report one (catalog policies), the sparse ``support`` (ids, probabilities)
    of the distribution in place of the full one."""

    event_id: str
    action: int | list[int]
    probability: float | None
    probabilities: list[float] | None
    model_version: int
    policy_version: int = 1
    support: tuple[list[int], list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "event_id": self.event_id,
            "action": self.action,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "model_version": self.model_version,
            "policy_version": self.policy_version,
        }
        if self.support is not None:
            out["support"] = support_dict(self.support)
        return out


@dataclass(frozen=True)
class Active:
    """What serves decisions now (swapped whole by a promotion): the policy, its budget
    rules and its request checks."""

    served: ServedPolicy
    rules: BudgetRules
    checker: RequestChecker


def budget_rules(config: ServiceConfig) -> BudgetRules:
    """The budget rules of a configuration (its ``[budgets]`` and its policy's own ledger)."""
    return BudgetRules(
        config.n_actions,
        [(b.resource, b.total, b.costs, b.quotas) for b in config.budgets],
        config.traits.budget,
        config.traits.cost_bound,
    )


def make_active(config: ServiceConfig, served: ServedPolicy) -> Active:
    return Active(served, budget_rules(config), RequestChecker(config, served.policy.reward_bounds))
