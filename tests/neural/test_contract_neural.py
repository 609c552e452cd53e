"""The policy contract (:mod:`scarce.checks`) on the neural policies, built with their
``_unit_test_params()`` (tiny networks that train within the checks' short scripts).

Until the contract suite reads ``_unit_test_params`` itself, the parameters are applied by
replacing the class's keyword defaults for the duration of each check (so ``cls(n_actions=...,
n_features=..., seed=...)``, ``get_params`` and save/load all see them)."""

import pytest

pytest.importorskip("torch")

from scarce import checks  # noqa: E402
from scarce.policies.neural import (  # noqa: E402
    DropoutTS,
    EnsembleTS,
    NeuralLinearTS,
    NeuralLinearUCB,
    NeuralUCB,
)

CLASSES = (NeuralLinearTS, NeuralLinearUCB, NeuralUCB, EnsembleTS, DropoutTS)
CASES = [
    pytest.param(cls, i, name, id=f"{cls.__name__}-{i}-{name}")
    for cls in CLASSES
    for i, _ in enumerate(cls._unit_test_params())
    for name, _ in checks.policy_checks(cls)
]


@pytest.mark.parametrize(("cls", "index", "name"), CASES)
def test_contract_with_unit_test_params(cls, index, name, monkeypatch):
    params = cls._unit_test_params()[index]
    defaults = dict(cls.__init__.__kwdefaults__)
    defaults.update(params)
    monkeypatch.setattr(cls.__init__, "__kwdefaults__", defaults)
    check = dict(checks.policy_checks(cls))[name]
    check()
