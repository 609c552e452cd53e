"""Input validation with errors that name the argument, the expected and the received value."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_float_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, could not convert: {exc}") from None
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    # a finite sum implies finite entries: one cheap reduction on the hot path
    if arr.size and not np.isfinite(arr.sum()) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})"
        )


def check_contexts(
    X: Any, n_features: int, n_actions: int | None = None, name: str = "X"
) -> np.ndarray:
    """Validate contexts: ``(n, d)`` shared contexts or ``(n, K, d)`` per-action features.

    A 1-D array of length ``d`` is taken as a single case ``(1, d)``. Returns a float64
    array (a copy only when conversion is needed; the caller's array is never modified).
    """
    arr = _as_float_array(X, name)
    if arr.ndim == 1 and arr.shape[0] == n_features:
        arr = arr[None, :]
    if arr.ndim == 2:
        if arr.shape[1] != n_features:
            raise ValueError(
                f"{name} must have shape (n, {n_features}) or (n, n_actions, {n_features}); "
                f"got {arr.shape}"
            )
    elif arr.ndim == 3:
        if arr.shape[2] != n_features or (n_actions is not None and arr.shape[1] != n_actions):
            k = n_actions if n_actions is not None else "K"
            raise ValueError(
                f"{name} with per-action features must have shape (n, {k}, {n_features}); got {arr.shape}"
            )
    else:
        raise ValueError(
            f"{name} must be 2-D (n, {n_features}) or 3-D (n, n_actions, {n_features}); "
            f"got {arr.ndim}-D with shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one case; got shape {arr.shape}")
    check_finite(arr, name)
    return arr


def check_actions(actions: Any, n: int, n_actions: int, name: str = "actions") -> np.ndarray:
    """Validate ``(n,)`` integer action ids in ``[0, n_actions)``."""
    arr = np.asarray(actions)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integer action ids; got non-integer values")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer action ids; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n and (arr.min() < 0 or arr.max() >= n_actions):
        bad = arr[(arr < 0) | (arr >= n_actions)][0]
        raise ValueError(f"{name} must be in [0, {n_actions}); got {int(bad)}")
    return arr


def check_vector(
    values: Any,
    n: int,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """Validate a finite float vector of shape ``(n,)`` within optional bounds."""
    arr = _as_float_array(values, name)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got {arr.shape}")
    check_finite(arr, name)
    _check_bounds(arr, name, low, high)
    return arr


def check_matrix(
    values: Any,
    shape: tuple[int, ...],
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """Validate a finite float array of exactly ``shape``."""
    arr = _as_float_array(values, name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {arr.shape}")
    check_finite(arr, name)
    _check_bounds(arr, name, low, high)
    return arr


def _check_bounds(arr: np.ndarray, name: str, low: float | None, high: float | None) -> None:
    if low is not None and arr.size and arr.min() < low:
        raise ValueError(f"{name} must be >= {low}; got {arr.min()}")
    if high is not None and arr.size and arr.max() > high:
        raise ValueError(f"{name} must be <= {high}; got {arr.max()}")


def check_eligible(
    eligible: Any, n: int, n_actions: int, name: str = "eligible"
) -> np.ndarray | None:
    """Validate an eligible-action mask: ``(n, K)`` or ``(K,)`` (same for every case) booleans.

    Every case must have at least one eligible action. Returns ``(n, K)`` bool or None.
    """
    if eligible is None:
        return None
    arr = np.asarray(eligible)
    if arr.dtype != np.bool_:
        if arr.dtype.kind in "iuf" and np.all(np.isin(arr, (0, 1))):
            arr = arr.astype(bool)
        else:
            raise ValueError(f"{name} must be a boolean mask; got dtype {arr.dtype}")
    if arr.shape == (n_actions,):
        arr = np.broadcast_to(arr, (n, n_actions))
    if arr.shape != (n, n_actions):
        raise ValueError(
            f"{name} must have shape ({n}, {n_actions}) or ({n_actions},); got {arr.shape}"
        )
    empty = ~arr.any(axis=1)
    if empty.any():
        raise ValueError(f"{name} has no eligible action for case {int(np.argmax(empty))}")
    return arr


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def check_scalar(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Validate a finite real scalar within bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}; got {value!r}")
    if high is not None and (v > high or (v == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {op} {high}; got {value!r}")
    return v
