"""Inputs of the obp parity test that every platform computes bit for bit: targets and
reward-model predictions that are dyadic rationals (exactly representable, rows summing to
exactly 1), built from integer arithmetic on the row, action and position indices."""

from __future__ import annotations

import numpy as np

POSITIONS = 3


def _grid(n: int, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.arange(n)[:, None, None],
        np.arange(K)[None, :, None],
        np.arange(POSITIONS)[None, None, :],
    )


def dyadic_target(n: int, K: int) -> np.ndarray:
    """``(n, K, 3)`` probabilities ``W / 2^m``: integer weights 1..17 varying with row, action
    and position, the remainder up to ``2^m`` put on action ``i % K`` of row ``i``."""
    i, a, p = _grid(n, K)
    W = 1 + (i * 7 + a * 13 + p * 5) % 17
    total = 1 << int(np.ceil(np.log2(W.sum(axis=1).max() + 1)))
    W = W.astype(np.int64)
    W[np.arange(n), np.arange(n) % K, :] += total - W.sum(axis=1)
    return W / float(total)


def dyadic_rewards(n: int, K: int) -> np.ndarray:
    """``(n, K, 3)`` reward-model predictions in ``{0, 1/1024, ..., 8/1024}``."""
    i, a, p = _grid(n, K)
    return ((i * 3 + a * 5 + p * 11) % 9) / 1024.0


def greedy(pi: np.ndarray) -> np.ndarray:
    """The deterministic policy putting all mass on each row's and position's largest entry."""
    out = np.zeros_like(pi)
    top = pi.argmax(axis=1)  # (n, 3)
    n, P = top.shape
    out[np.arange(n)[:, None], top, np.arange(P)[None, :]] = 1.0
    return out
