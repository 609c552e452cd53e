"""Delay kernels: how an outcome is released over the rounds after the decision.

A :class:`DelayKernel` is a probability vector ``K(0), ..., K(D-1)`` over lags. Used two ways:

* **piecewise release** (the fair-allocation setting): an allocation made at round ``u`` with
  effect ``f`` contributes ``K(t - u) * f`` to the outcome observed at round ``t``;
* **whole-outcome delay**: the outcome arrives in one piece at a lag drawn from ``K``.

The discretised Beta kernel of the MetaCUB paper is
``K(tau) = F((tau + 1) / D) - F(tau / D)``, ``F`` the Beta(alpha, beta) CDF; ``D`` (the support)
is a parameter (the spec's default is the cohort length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar


class DelayKernel:
    """A distribution over integer lags ``0 .. D-1``.

    Parameters
    ----------
    weights:
        ``(D,)`` non-negative weights summing to 1 (within 1e-9; they are renormalised).
    name:
        a label for plots and tables.
    """

    def __init__(self, weights: Sequence[float] | np.ndarray, name: str = "kernel") -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or w.shape[0] < 1:
            raise ValueError(f"weights must be a non-empty 1-D array; got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("weights must be finite and non-negative")
        total = w.sum()
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"weights must sum to 1; they sum to {total!r}")
        self.weights = w / total
        self.name = str(name)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def instant(cls) -> DelayKernel:
        """The point mass at lag 0 (instant feedback)."""
        return cls([1.0], name="instant")

    @classmethod
    def fixed(cls, lag: int) -> DelayKernel:
        """The point mass at ``lag`` >= 0."""
        lag = check_positive_int(lag, "lag", minimum=0)
        w = np.zeros(lag + 1)
        w[lag] = 1.0
        return cls(w, name=f"fixed({lag})")

    @classmethod
    def geometric(cls, p: float, max_lag: int) -> DelayKernel:
        """Geometric lags ``P(tau) ∝ p (1 - p)^tau`` truncated to ``0 .. max_lag`` and renormalised.

        ``p`` in (0, 1]; ``max_lag`` >= 0.
        """
        p = check_scalar(p, "p", low=0.0, high=1.0, low_inclusive=False)
        max_lag = check_positive_int(max_lag, "max_lag", minimum=0)
        w = p * (1.0 - p) ** np.arange(max_lag + 1)
        return cls(w / w.sum(), name=f"geometric({p:g})")

    @classmethod
    def beta(cls, alpha: float, beta: float, support: int) -> DelayKernel:
        """Discretised Beta(``alpha``, ``beta``) over ``support`` = D lags:
        ``K(tau) = F((tau+1)/D) - F(tau/D)``."""
        alpha = check_scalar(alpha, "alpha", low=0.0, low_inclusive=False)
        beta = check_scalar(beta, "beta", low=0.0, low_inclusive=False)
        D = check_positive_int(support, "support")
        cdf = stats.beta.cdf(np.arange(D + 1) / D, alpha, beta)
        w = np.diff(cdf)
        w = np.maximum(w, 0.0)
        return cls(w / w.sum(), name=f"beta({alpha:g},{beta:g},D={D})")

    # ------------------------------------------------------------------ properties
    @property
    def support(self) -> int:
        """``D``, the number of lags with (possibly zero) weight."""
        return int(self.weights.shape[0])

    @property
    def mean_lag(self) -> float:
        return float(np.arange(self.support) @ self.weights)

    def completed_mass(self, elapsed: Any) -> np.ndarray:
        """``F(elapsed) = sum_{tau <= elapsed} K(tau)``, the share of an outcome released by
        ``elapsed`` rounds after the decision (0 for negative ``elapsed``, 1 past the support).

        ``elapsed``: int array of any shape."""
        e = np.asarray(elapsed, dtype=np.int64)
        cdf = np.concatenate([[0.0], np.cumsum(self.weights)])
        cdf[-1] = 1.0
        return cdf[np.clip(e + 1, 0, self.support)]

    def at(self, lag: Any) -> np.ndarray:
        """``K(lag)`` for an int array (0 outside ``0 .. D-1``)."""
        lag = np.asarray(lag, dtype=np.int64)
        inside = (lag >= 0) & (lag < self.support)
        out = np.zeros(lag.shape)
        out[inside] = self.weights[lag[inside]]
        return out

    def sample(self, n: int, rng: SeedLike = None) -> np.ndarray:
        """``(n,)`` lags drawn from the kernel."""
        rng = as_generator(rng)
        return rng.choice(self.support, size=n, p=self.weights)

    def __repr__(self) -> str:
        return f"DelayKernel({self.name}, support={self.support})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DelayKernel):
            return NotImplemented
        return self.support == other.support and np.allclose(self.weights, other.weights)

    __hash__ = None  # type: ignore[assignment]


#: kernel families of the experiments (spec §A.2, [I] parameters)
KERNEL_FAMILIES = ("instant", "type1", "type2")


def kernel_family(name: str, cohort_length: int = 8) -> DelayKernel:
    """A named kernel: ``"instant"`` (lag 0), ``"type1"`` (Beta(2, 5), D = L: concentrated,
    early-to-mid) or ``"type2"`` (Beta(1.5, 1.5), D = 3L: diffuse, extended support), with ``L``
    = ``cohort_length``."""
    L = check_positive_int(cohort_length, "cohort_length")
    if name == "instant":
        return DelayKernel.instant()
    if name == "type1":
        k = DelayKernel.beta(2.0, 5.0, L)
        k.name = "type1"
        return k
    if name == "type2":
        k = DelayKernel.beta(1.5, 1.5, 3 * L)
        k.name = "type2"
        return k
    raise ValueError(f"kernel family must be one of {KERNEL_FAMILIES}; got {name!r}")


#: how a kernel is named in parameters and configs: a family name of :data:`KERNEL_FAMILIES`
#: or the list of weights
KernelSpec = str | Sequence[float]


def kernel_from_spec(spec: KernelSpec | DelayKernel, cohort_length: int = 8) -> DelayKernel:
    """The kernel a spec names: a :class:`DelayKernel` (returned as is), a family name
    (:func:`kernel_family` with ``cohort_length``) or a list of weights."""
    if isinstance(spec, DelayKernel):
        return spec
    if isinstance(spec, str):
        return kernel_family(spec, cohort_length)
    try:
        weights = np.asarray(spec, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"a kernel spec must be a family name {KERNEL_FAMILIES} or a list of weights; "
            f"got {spec!r}"
        ) from None
    return DelayKernel(weights)


def kernel_to_spec(kernel: DelayKernel, cohort_length: int = 8) -> KernelSpec:
    """The family name when ``kernel`` is that family's kernel for ``cohort_length``, else its
    weights as a list (JSON-friendly, for parameters and configs)."""
    if kernel.name in KERNEL_FAMILIES and kernel == kernel_family(kernel.name, cohort_length):
        return kernel.name
    return kernel.weights.tolist()


def kernels_from_spec(
    spec: KernelSpec | DelayKernel | Sequence[KernelSpec | DelayKernel] | None,
    n: int,
    cohort_length: int = 8,
) -> list[DelayKernel]:
    """``n`` kernels (one per resource) from None (instant), one spec for all, or a list of
    ``n`` specs.

    Raises
    ------
    ValueError
        a list whose length is not ``n``, or a spec that names no kernel.
    """
    if spec is None:
        return [DelayKernel.instant()] * n
    if isinstance(spec, (str, DelayKernel)):
        return [kernel_from_spec(spec, cohort_length)] * n
    items = list(spec)
    if items and all(isinstance(v, (int, float, np.floating, np.integer)) for v in items):
        return [kernel_from_spec(items, cohort_length)] * n  # one weight list for all
    if len(items) != n:
        raise ValueError(
            f"kernels must be one spec or a list of {n} (one per resource); got {len(items)}"
        )
    return [kernel_from_spec(v, cohort_length) for v in items]
