"""The library's policy contract (tests/test_contract.py) applied to the structured policies,
which are not in ``scarce.policies.POLICIES``."""

import importlib.util
from pathlib import Path

import pytest

from scarce.structured import HierarchicalTS, MixedEffectTS
from scarce.structured.baselines import DisjointGLMTS, DisjointGLMUCB, PriorLinTS, PriorLinUCB

_spec = importlib.util.spec_from_file_location(
    "scarce_contract", Path(__file__).resolve().parents[1] / "test_contract.py"
)
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)

BOTH = ["shared_context", "action_features"]
CASES = [
    (cls, BOTH)
    for cls in (
        MixedEffectTS,
        HierarchicalTS,
        PriorLinTS,
        PriorLinUCB,
        DisjointGLMTS,
        DisjointGLMUCB,
    )
]
WITH_LAYOUT = [(cls, layout) for cls, layouts in CASES for layout in layouts]
ids = [f"{c.__name__}-{lay}" for c, lay in WITH_LAYOUT]
classes = pytest.mark.parametrize("cls", [c for c, _ in CASES], ids=[c.__name__ for c, _ in CASES])
with_layout = pytest.mark.parametrize(("cls", "layout"), WITH_LAYOUT, ids=ids)


@with_layout
def test_same_seed_same_run(cls, layout):
    contract.test_same_seed_same_run(cls, layout)


@with_layout
def test_save_load_gives_same_next_decisions(cls, layout, tmp_path):
    contract.test_save_load_gives_same_next_decisions(cls, layout, tmp_path)


@classes
def test_save_load_before_first_use(cls, tmp_path):
    contract.test_save_load_before_first_use(cls, tmp_path)


@with_layout
def test_inputs_not_mutated(cls, layout):
    contract.test_inputs_not_mutated(cls, layout)


@with_layout
def test_bad_inputs_rejected_with_argument_named(cls, layout):
    contract.test_bad_inputs_rejected_with_argument_named(cls, layout)


@classes
def test_bad_constructor_arguments_rejected_on_first_use(cls):
    contract.test_bad_constructor_arguments_rejected_on_first_use(cls)


@with_layout
def test_probabilities_consistent_and_eligibility_respected(cls, layout):
    contract.test_probabilities_consistent_and_eligibility_respected(cls, layout)


@classes
def test_choice_frequencies_match_reported_probabilities(cls):
    contract.test_choice_frequencies_match_reported_probabilities(cls)


@classes
def test_get_params_round_trip(cls):
    contract.test_get_params_round_trip(cls)
