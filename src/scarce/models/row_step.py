"""The rank-one (Sherman-Morrison / recursive-least-squares) steps of
:class:`scarce.models.ridge.RidgeRegression`.

:func:`rank_one_update` adds or removes one row of one model, or one row of each of many
models at once (bitwise the separate steps). :class:`RowStep` is the step of
:meth:`~scarce.models.ridge.RidgeRegression.add_one`: one row into one single-target model,
with the arithmetic of :func:`rank_one_update` (``sign = +1``) in the same order, value for
value, minus the ``A += x x^T`` step (deferred, see :mod:`scarce.models.pending`), in fewer
and cheaper NumPy calls: the temporaries are written into scratch arrays, scalars enter the
ufuncs as 0-d arrays (cheaper operands than Python floats) and the outer product is one BLAS
product.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rank_one_update(
    A: np.ndarray | None,
    A_inv: np.ndarray,
    b: np.ndarray | None,
    theta: np.ndarray,
    x: np.ndarray,
    y: Any,
    *,
    sign: float = 1.0,
    index: np.ndarray | None = None,
) -> None:
    """Add (``sign = +1``) or remove (``sign = -1``) one observation ``(x, y)``, in place.

    Sherman-Morrison on ``A^{-1}`` and the recursive-least-squares step on ``theta``
    (``theta += A_new^{-1} x (y - x^T theta)``, exact in exact arithmetic), plus the
    running ``A += x x^T`` and ``b += y x`` that later refactorisations start from (skipped
    where ``A`` / ``b`` is None: a caller that accumulates them later).

    One model: ``A``, ``A_inv`` ``(d, d)``, ``b``, ``theta`` ``(d,)`` (``(d, T)`` with ``T``
    targets), ``x`` ``(d,)``, ``y`` a scalar (``(T,)``). Many models at once: ``x`` ``(B, d)``
    and ``y`` ``(B,)`` (``(B, T)``) give one row to each of ``B`` distinct models, either the
    leading axis of the model arrays (``(B, d, d)``, ...) or, with ``index`` ``(B,)``, the
    models ``index`` of ``(M, d, d)``, ... arrays. The batched form makes the same BLAS calls
    on each model's slice as the one-model form, so it is bitwise ``B`` separate calls.
    """
    if x.ndim == 1:
        u = A_inv.dot(x)
        gain = u * (sign / (1.0 + sign * x.dot(u)))
        step_targets(b, theta, x, y, gain, sign)
        A_inv -= np.multiply.outer(gain, u)
        if A is not None:
            A += np.multiply.outer(x if sign == 1.0 else sign * x, x)
        return
    if index is not None:
        arrays = (A, A_inv, b, theta)
        parts = [None if arr is None else arr.take(index, axis=0) for arr in arrays]
        rank_one_update(*parts, x, y, sign=sign)
        for arr, part in zip(arrays, parts, strict=True):
            if arr is not None:
                arr[index] = part
        return
    xr = x[:, None, :]
    u = (A_inv @ x[:, :, None])[..., 0]  # A_inv x, one GEMV per model
    xu = (xr @ u[:, :, None])[:, 0, 0]
    gain = u * (sign / (1.0 + sign * xu))[:, None]
    if theta.ndim == 2:
        resid = y - (xr @ theta[:, :, None])[:, 0, 0]
        theta += gain * resid[:, None]
        if b is not None:
            b += (sign * y)[:, None] * x
    else:
        resid = y - (xr @ theta)[:, 0, :]
        theta += gain[:, :, None] * resid[:, None, :]
        if b is not None:
            b += x[:, :, None] * (sign * y)[:, None, :]
    # one rounded multiplication per entry either way; einsum's loop is faster than broadcasting
    outer = np.einsum("ri,rj->rij", gain, u)
    A_inv -= outer
    if A is not None:
        A += np.einsum("ri,rj->rij", x if sign == 1.0 else sign * x, x, out=outer)


def step_targets(
    b: np.ndarray | None, theta: np.ndarray, x: np.ndarray, y: Any, gain: np.ndarray, sign: float
) -> None:
    """The target part of one model's rank-1 step (:func:`rank_one_update`, one row):
    ``theta += gain (y - x . theta)`` and ``b += (sign y) x``, ``y`` a scalar or ``(T,)``."""
    resid = y - x.dot(theta)
    if theta.ndim == 1:
        theta += gain * resid
        if b is not None:
            b += (sign * y) * x
    else:
        theta += np.multiply.outer(gain, resid)
        if b is not None:  # (1.0 * y is y: skip the copy)
            b += np.multiply.outer(x, y if sign == 1.0 else sign * y)


class RowStep:
    """Scratch of one-row updates of models with ``n_features`` features (not state)."""

    def __init__(self, n_features: int) -> None:
        d = n_features
        self.work = np.empty((d, d))  # the outer product gain u^T
        self._gain = np.empty(d)
        self._step = np.empty(d)
        self._gain_col = self._gain[:, None]
        self._scale = np.empty(())
        self._resid = np.empty(())
        self._y = np.empty(())

    def add(
        self,
        A_inv: np.ndarray,
        b: np.ndarray,
        theta: np.ndarray,
        x: np.ndarray,
        y: Any,
        u: np.ndarray | None = None,
    ) -> None:
        """Row ``x`` ``(d,)`` with target ``y`` (a float) into one model's ``A_inv``
        ``(d, d)``, ``b`` and ``theta`` ``(d,)``, in place. ``u`` is ``A_inv x`` when the
        caller has it (bitwise what ``A_inv.dot(x)`` gives)."""
        if u is None:
            u = A_inv.dot(x)
        scale, resid, target = self._scale, self._resid, self._y
        scale[()] = 1.0 / (1.0 + float(x.dot(u)))
        gain = np.multiply(u, scale, out=self._gain)
        resid[()] = y - float(x.dot(theta))
        step = np.multiply(gain, resid, out=self._step)
        theta += step
        target[()] = y
        np.multiply(x, target, out=step)
        b += step
        # gain_i u_j as a (d, 1) @ (1, d) product: with one term each entry is the one rounded
        # multiplication np.multiply.outer makes (a zero's sign aside), at a third of its cost
        work = self.work
        np.dot(self._gain_col, u[None, :], out=work)
        A_inv -= work
