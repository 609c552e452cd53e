"""The Sherman-Morrison step of :meth:`scarce.models.ridge.RidgeRegression.add_one`: one row
into one single-target model, with its scratch arrays.

It makes the arithmetic of :func:`scarce.models.ridge.rank_one_update` (``sign = +1``) in the
same order, value for value, minus the ``A += x x^T`` step (deferred, see
:mod:`scarce.models.pending`), in fewer and cheaper NumPy calls: the temporaries are written
into scratch arrays, scalars enter the ufuncs as 0-d arrays (cheaper operands than Python
floats) and the outer product is one BLAS product.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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
