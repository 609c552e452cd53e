"""The contract every policy honours (:mod:`scarce.checks`), applied automatically to every
registered policy (:func:`scarce.policies.get_policies`, capabilities included) and both
context layouts (River's `check_estimator` habit)."""

import pytest

from scarce import checks
from scarce.policies import get_policies

POLICIES = get_policies()
layout_cases = [
    pytest.param(cls, check, layout, id=f"{name}-{check.__name__[6:]}-{layout}")
    for name, cls in POLICIES.items()
    for check in checks.LAYOUT_CHECKS
    if checks.applies(check, cls)
    for layout in checks.layouts(cls)
]
class_cases = [
    pytest.param(cls, check, id=f"{name}-{check.__name__[6:]}")
    for name, cls in POLICIES.items()
    for check in checks.CLASS_CHECKS
    if checks.applies(check, cls)
]


def test_registry_holds_the_capabilities_policies():
    for name in ("LinUCB", "ChangeDetecting", "MixedEffectTS", "HierarchicalTS"):
        assert name in POLICIES


@pytest.mark.parametrize(("cls", "check", "layout"), layout_cases)
def test_layout_contract(cls, check, layout):
    check(cls, layout)


@pytest.mark.parametrize(("cls", "check"), class_cases)
def test_class_contract(cls, check):
    check(cls)


def test_every_registered_policy_declares_known_tags():
    for name, cls in POLICIES.items():
        assert set(cls.layouts) <= set(checks.LAYOUTS) and cls.layouts, name
        assert cls.reward_kind in ("scalar", "vector", "any"), name
        methods = cls.probability_method
        for method in methods.values() if isinstance(methods, dict) else [methods]:
            assert method in checks.PROBABILITY_TOLERANCE, name
        params = cls._unit_test_params()
        assert params and all(isinstance(p, dict) for p in params), name


def test_a_broken_policy_fails_its_check():
    class Broken(POLICIES["Greedy"]):
        def get_params(self, deep=True):
            params = super().get_params()
            params.pop("seed")
            return params

    with pytest.raises(AssertionError):
        checks.check_get_params_round_trip(Broken)
