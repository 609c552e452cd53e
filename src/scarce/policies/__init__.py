"""Decision rules on top of models. Every policy is constructed with keywords ``n_actions``,
``n_features``, its own parameters and ``seed``."""

from scarce.policies.glm import GLMTS, GLMUCB
from scarce.policies.linear import LinTS, LinUCB
from scarce.policies.simple import EpsilonGreedy, Greedy, Random

#: every policy class exported here, by name (the CLI, configs and the contract tests use it)
POLICIES = {
    cls.__name__: cls for cls in (Random, Greedy, EpsilonGreedy, LinUCB, LinTS, GLMUCB, GLMTS)
}

__all__ = ["GLMTS", "GLMUCB", "POLICIES", "EpsilonGreedy", "Greedy", "LinTS", "LinUCB", "Random"]

# a wrapper around the policies above (imported last: it looks them up in POLICIES)
from scarce.drift.detect import ChangeDetecting  # noqa: E402

POLICIES[ChangeDetecting.__name__] = ChangeDetecting
