"""Decision rules on top of models. Every policy is constructed with keywords ``n_actions``,
``n_features``, its own parameters and ``seed``."""

from scarce.policies.approx import DiagonalLinTS, DiagonalLinUCB, SketchedLinTS, SketchedLinUCB
from scarce.policies.glm import GLMTS, GLMUCB
from scarce.policies.linear import LinTS, LinUCB
from scarce.policies.simple import EpsilonGreedy, Greedy, Random

#: every policy class exported here, by name (the CLI, configs and the contract tests use it)
POLICIES = {
    cls.__name__: cls for cls in (Random, Greedy, EpsilonGreedy, LinUCB, LinTS, GLMUCB, GLMTS)
}

# approximations for large problems (scarce.policies.approx)
for _cls in (SketchedLinUCB, SketchedLinTS, DiagonalLinUCB, DiagonalLinTS):
    POLICIES[_cls.__name__] = _cls

__all__ = [
    "GLMTS",
    "GLMUCB",
    "POLICIES",
    "DiagonalLinTS",
    "DiagonalLinUCB",
    "EpsilonGreedy",
    "Greedy",
    "LinTS",
    "LinUCB",
    "Random",
    "SketchedLinTS",
    "SketchedLinUCB",
]

# a wrapper around the policies above (imported last: it looks them up in POLICIES)
from scarce.drift.detect import ChangeDetecting  # noqa: E402

POLICIES[ChangeDetecting.__name__] = ChangeDetecting
