"""Outer products ``x x^T`` waiting to be added to a stack of precision matrices.

:meth:`scarce.models.ridge.RidgeRegression.add_one` updates ``A^{-1}`` at once (Sherman-Morrison)
but needs the precision ``A`` only for its periodic refactorisations and for readers of the
state, so its ``A += x x^T`` waits here: a model's rows go into ``A`` together when its buffer
is full or ``A`` is read. The flush adds the same products in the same order as row-by-row
updates, so ``A`` is bitwise what they give, in two NumPy calls instead of two per row.
"""

from __future__ import annotations

import numpy as np

DEFERRED_ROWS = 16
"""Rows a model keeps waiting before they go into its precision."""


class PendingOuterProducts:
    """Rows waiting to be added, as outer products, to the precisions ``A`` ``(M, d, d)`` of
    ``n_models`` models with ``n_features`` features each.

    The buffer is allocated on the first row (``M x DEFERRED_ROWS x d`` floats)."""

    def __init__(self, n_models: int, n_features: int) -> None:
        self.n_models = n_models
        self.n_features = n_features
        self.waiting = 0  # rows waiting, all models
        self._counts = [0] * n_models
        self._rows: np.ndarray | None = None
        self._stack: np.ndarray | None = None

    def add(self, A: np.ndarray, model: int, x: np.ndarray) -> None:
        """``A[model] += x x^T``, deferred (done now if the model's buffer fills)."""
        rows = self._rows
        if rows is None:
            rows = self._rows = np.empty((self.n_models, DEFERRED_ROWS, self.n_features))
        k = self._counts[model]
        rows[model, k] = x
        self._counts[model] = k + 1
        self.waiting += 1
        if k + 1 == DEFERRED_ROWS:
            self.flush(A, model)

    def flush(self, A: np.ndarray, m: int) -> None:
        """Add model ``m``'s waiting rows to ``A[m]``."""
        n = self._counts[m]
        if n == 0:
            return
        assert self._rows is not None
        stack = self._stack
        if stack is None:
            d = self.n_features
            stack = self._stack = np.empty((DEFERRED_ROWS + 1, d, d))
        target = A[m]
        stack[0] = target
        x = self._rows[m, :n]
        # the products x_i x_j of every row (no sum: each is one rounded multiplication, as
        # in np.multiply.outer), einsum's loop being faster here than broadcasting's
        np.einsum("ri,rj->rij", x, x, out=stack[1 : n + 1])
        if self.n_features == 1:
            # a one-feature stack is a 1-D reduction, which NumPy sums pairwise: add in order
            for k in range(1, n + 1):
                target += stack[k]
        else:
            # a reduction over the leading (slowest) axis adds the slices one after the
            # other, left to right: (((A + P_1) + P_2) + ...), as row-by-row updates would
            np.add.reduce(stack[: n + 1], axis=0, out=target)
        self._counts[m] = 0
        self.waiting -= n

    def flush_all(self, A: np.ndarray) -> None:
        """Add every model's waiting rows to ``A``."""
        for m, n in enumerate(self._counts):
            if n:
                self.flush(A, m)

    def clear(self) -> None:
        """Drop every waiting row (``A`` was replaced by one that holds them)."""
        self._counts = [0] * self.n_models
        self.waiting = 0
