"""Compiled (Numba) kernels of one online round of disjoint ridge models: the scores of one
shared context under LinUCB and linear Thompson sampling, and the Sherman-Morrison step of
one row. They are what ``backend="numba"`` of :class:`~scarce.policies.LinUCB`,
:class:`~scarce.policies.LinTS` and :class:`~scarce.models.ridge.RidgeRegression` runs for
one case at a time (numba is the ``fast`` extra: ``pip install 'scarce[fast]'``).

The formulas are those of the NumPy path (:func:`scarce.models.linear.one_case_widths` and
:class:`scarce.models.row_step.RowStep`), operation for operation, except for the sums: a
product ``A^{-1} x`` is formed as ``sum_j A^{-1}[j, :] x_j`` (by rows of ``A^{-1}``, which is
symmetric up to rounding, so that the loop runs vectorised without reordering a sum), and
every sum is added from its first term to its last, where NumPy's BLAS sums in orders of its
own. So the results agree with the NumPy path to rounding (about 1e-16 relative per
product), not bit for bit, and a decision between two actions whose scores are equal up to
rounding may go the other way. What holds exactly:

* the same inputs give the same bits, whatever the machine's vector width: the kernels are
  compiled without ``fastmath`` (no reassociation, no fused multiply-adds), and each sum's
  order is fixed by the code;
* bitwise equal models (untried actions) get bitwise equal scores, so ties go to the lowest
  action id, as ``numpy.argmax`` breaks them (a NaN score wins, the first one);
* the update recomputes ``A^{-1} x`` with the decision's own function, so it uses exactly
  the products the decision saw;
* ``A``, ``b`` and the counts are bitwise those of the NumPy path (each entry is the same
  single product added in the same order), so after every refactorisation (which the NumPy
  code makes from ``A`` and ``b``) the two backends hold bitwise the same model again.

The kernels are in :mod:`scarce.models.numba_kernels`; this module imports them on first use
(:func:`kernels`), so importing scarce does not need numba.
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace
from typing import Any

BACKENDS = ("numpy", "numba")


def check_backend(backend: Any) -> str:
    """Validate a ``backend`` argument: ``"numpy"`` or ``"numba"`` (numba must import)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if backend == "numba":
        kernels()
    return str(backend)


@cache
def kernels() -> SimpleNamespace:
    """The compiled kernels (numba imported, and the kernels compiled or loaded from numba's
    cache, on the first call)."""
    try:
        from scarce.models import numba_kernels as k
    except ModuleNotFoundError as exc:
        if exc.name not in ("numba", "llvmlite"):
            raise
        raise ModuleNotFoundError(
            "backend='numba' needs numba: pip install 'scarce[fast]' (or pip install numba)"
        ) from exc
    return SimpleNamespace(
        ucb_one=k.ucb_one,
        thompson_one=k.thompson_one,
        ridge_add_one=k.ridge_add_one,
        priced_choice=k.priced_choice,
        paired_add_one=k.paired_add_one,
        hedge_step=k.hedge_step,
        settle_one=k.settle_one,
    )
