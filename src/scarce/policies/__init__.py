"""Decision rules on top of models. Every policy is constructed with keywords ``n_actions``,
``n_features``, its own parameters and ``seed``.

The registry
------------
:data:`POLICIES` maps names to the policy classes that configs, sweeps, the service and the
contract suite (:mod:`scarce.checks`) can build from ``n_actions``, ``n_features`` and
``seed`` alone. Capabilities add their own with :func:`register_policy` when imported;
:func:`get_policies` imports every module of :data:`CAPABILITY_POLICY_MODULES` first, so
callers that look policies up by name see all of them without this file being edited for
each new policy.
"""

from __future__ import annotations

from typing import TypeVar

from scarce.core.plugins import import_if_present
from scarce.core.policy import Policy
from scarce.policies.approx import DiagonalLinTS, DiagonalLinUCB, SketchedLinTS, SketchedLinUCB
from scarce.policies.glm import GLMTS, GLMUCB
from scarce.policies.linear import LinTS, LinUCB
from scarce.policies.neural import DropoutTS, EnsembleTS, NeuralLinearTS, NeuralLinearUCB, NeuralUCB
from scarce.policies.simple import EpsilonGreedy, Greedy, Random

P = TypeVar("P", bound=type[Policy])

#: registered policy classes by name (see the module docstring; use :func:`get_policies`)
POLICIES: dict[str, type[Policy]] = {}

#: modules whose import registers more policies; skipped when the capability is absent
CAPABILITY_POLICY_MODULES: tuple[str, ...] = (
    "scarce.drift",
    "scarce.structured",
    "scarce.combinatorial",
    "scarce.fair",
    "scarce.pareto",
    "scarce.budget",
    "scarce.policies.catalog",
    "scarce.policies.spanner",
)


def register_policy(cls: P) -> P:
    """Add ``cls`` to :data:`POLICIES` under its class name (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise TypeError(f"register_policy needs a Policy subclass; got {cls!r}")
    POLICIES[cls.__name__] = cls
    return cls


def get_policies() -> dict[str, type[Policy]]:
    """:data:`POLICIES` after importing :data:`CAPABILITY_POLICY_MODULES`."""
    for module in CAPABILITY_POLICY_MODULES:
        import_if_present(module)
    return POLICIES


for _cls in (Random, Greedy, EpsilonGreedy, LinUCB, LinTS, GLMUCB, GLMTS):
    register_policy(_cls)
# approximations for large problems (scarce.policies.approx)
for _cls in (SketchedLinUCB, SketchedLinTS, DiagonalLinUCB, DiagonalLinTS):
    register_policy(_cls)
# neural bandits (scarce.policies.neural; PyTorch is imported on first use, extra `neural`)
for _cls in (NeuralLinearTS, NeuralLinearUCB, NeuralUCB, EnsembleTS, DropoutTS):
    register_policy(_cls)

__all__ = [
    "CAPABILITY_POLICY_MODULES",
    "GLMTS",
    "GLMUCB",
    "POLICIES",
    "DiagonalLinTS",
    "DiagonalLinUCB",
    "DropoutTS",
    "EnsembleTS",
    "EpsilonGreedy",
    "Greedy",
    "LinTS",
    "LinUCB",
    "NeuralLinearTS",
    "NeuralLinearUCB",
    "NeuralUCB",
    "Random",
    "SketchedLinTS",
    "SketchedLinUCB",
    "get_policies",
    "register_policy",
]
