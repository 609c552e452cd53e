"""The library's policy contract (:mod:`scarce.checks`) applied to the structured baselines,
which are not in the registry (``MixedEffectTS`` and ``HierarchicalTS`` are, and are checked
by ``tests/test_contract.py``)."""

import pytest

from scarce.checks import policy_checks
from scarce.structured.baselines import DisjointGLMTS, DisjointGLMUCB, PriorLinTS, PriorLinUCB

CASES = [
    pytest.param(check, id=f"{cls.__name__}-{name}")
    for cls in (PriorLinTS, PriorLinUCB, DisjointGLMTS, DisjointGLMUCB)
    for name, check in policy_checks(cls)
]


@pytest.mark.parametrize("check", CASES)
def test_contract(check):
    check()
