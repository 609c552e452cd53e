"""The request checks' short paths give what their general paths give (issue 16's speed work
must not change an answer or an error)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servetools import FakeClock, make_config

from scarce.serve import validation
from scarce.serve.validation import EventIds, RequestChecker, RequestError

D = 3
_BOUND = 1e6

_element = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2 * _BOUND, 2 * _BOUND),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.lists(st.floats(-2.0, 2.0), max_size=2),
    st.builds(np.float32, st.floats(-10.0, 10.0, width=32)),
    st.builds(lambda v: np.array([v]), st.floats(-2.0, 2.0)),
)


def _outcome(checker: RequestChecker, value: object) -> object:
    try:
        arr = checker.float_array(value, "context", (D,))
    except RequestError as exc:
        return ("error", str(exc))
    assert arr.dtype == np.float64 and arr.shape == (D,)
    return ("ok", arr.tobytes())


@settings(max_examples=300, deadline=None)
@given(value=st.lists(_element, min_size=D - 1, max_size=D + 1))
def test_short_lists_are_checked_as_in_the_general_path(value):
    """Numbers within the bound, NaN, infinities, huge ints, bools, strings, None, nested
    lists and NumPy scalars or arrays: the float checks of a short list accept what NumPy's
    accept, with the same float64 values, and leave the rest (and its error) to them."""
    checker = RequestChecker(
        make_config(n_features=D, service={"max_abs_feature": _BOUND}), reward_bounds=None
    )
    short = _outcome(checker, value)
    saved = validation._FLOAT_CHECKS
    validation._FLOAT_CHECKS = 0  # every list takes the general path
    try:
        general = _outcome(checker, value)
    finally:
        validation._FLOAT_CHECKS = saved
    assert short == general


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0.0, float("nan"), 1.0], "must be finite"),
        ([0.0, float("inf"), 1.0], "must be finite"),
        ([0.0, 2e6, 1.0], "within +-1e+06"),
        ([0.0, "a", 1.0], "must be numbers"),
        ([0.0, 1.0], "must have shape [3]"),
    ],
)
def test_short_list_errors_name_the_field(value, message):
    checker = RequestChecker(
        make_config(n_features=D, service={"max_abs_feature": _BOUND}), reward_bounds=None
    )
    with pytest.raises(RequestError, match=r"^context: ") as err:
        checker.float_array(value, "context", (D,))
    assert message in str(err.value)


def test_event_ids_are_uuid7_in_time_order():
    """Server-made ids: 32 hex digits of a version-7 UUID (RFC 9562) whose first 48 bits are
    the clock's milliseconds, unique, and sorted by the time they were made."""
    clock = FakeClock(1_700_000_000.0)
    new_id = EventIds(clock)
    made = []
    for _ in range(3):
        batch = [new_id() for _ in range(400)]  # more than one draw of random bits
        for event_id in batch:
            u = uuid.UUID(hex=event_id)
            assert len(event_id) == 32 and event_id == event_id.lower()
            assert u.version == 7 and u.variant == uuid.RFC_4122
            assert int(event_id[:12], 16) == int(clock() * 1000)
        made.append(batch)
        clock.advance(0.25)
    assert len({i for batch in made for i in batch}) == 1200
    for earlier, later in zip(made, made[1:], strict=False):
        assert max(earlier) < min(later)


def test_event_ids_are_unique_across_threads():
    new_id = EventIds()
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: new_id(), range(4000)))
    assert len(set(ids)) == 4000
