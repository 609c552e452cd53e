"""A budgeted learner's saved state compared entry by entry (shared by the budget tests)."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_same_state(a: Any, b: Any, path: str = "state") -> None:
    """Assert that two states (nested dicts of arrays, lists and scalars) are equal, bit for
    bit; a failure names the entry's ``path``."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (np.ndarray, list, tuple)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)
    else:
        assert a == b, path
