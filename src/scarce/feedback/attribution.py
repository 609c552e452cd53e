"""Attribution of delayed, aggregated, overlapping outcomes to past allocations.

Setting (spec §A.2): an allocation ``a = (i, r, u)`` (unit ``i`` gets resource ``r`` at round
``u``) with effect ``f_a`` releases ``K^r(t - u) * f_a`` into the outcome of unit ``i`` at round
``t``; the learner observes per-unit increments ``y_i(t)`` (sums over overlapping allocations,
plus noise) or only the aggregate ``y(t) = sum_i y_i(t)``. With a model ``f_a = phi_a^T theta``
each estimator turns the logs into a weighted regression ``(Z, y, w)``: minimise
``sum_j w_j (y_j - Z_j^T theta)^2`` (plus a ridge term, :func:`fit_ridge`).

* :class:`KernelConvolvedLS` (default): one row per observed (unit, round) (or per round for
  aggregates) whose window has kernel mass, ``Z = sum_a K^{r_a}(t - u_a) phi_a``: regression
  through the known convolution, unbiased for a known kernel; a row summing the increments of
  ``m`` units has weight ``1 / m`` (each unit's increment carries its own noise, so this is
  the generalised least squares weighting).
* :class:`CompletedMass`: one row per allocation with completed mass ``m = F^r(now - u) >=
  min_mass``; its attributed cumulative outcome ``Y`` (increments split between overlapping
  allocations in proportion to their predicted contributions) gives target ``Y / m``, weight ``m``.
* :class:`DelayAgnostic`: each increment goes wholly to the unit's most recent allocation; one
  row per allocation, target = what it was credited so far, weight 1 (what delay-agnostic
  bandits effectively learn from; biased by truncation and overlap).

Observations that are missing for a (unit, round) inside some allocation's window are taken as
increments of 0 (the world reports every unit with pending effects each round), except where the
log holds a *remainder* row for that round: an observation with unit ``-1`` is the sum of every
increment at its round that no per-unit row reports (units no longer individually observed, e.g.
members of an earlier cohort). A log of remainder rows only is the aggregate mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from scarce.core.validation import check_scalar
from scarce.feedback.kernels import DelayKernel
from scarce.models.ridge import RidgeRegression


@dataclass
class AllocationLog:
    """Allocations made so far.

    Attributes
    ----------
    unit: ``(n,)`` int, who got the resource.
    resource: ``(n,)`` int in ``[0, R)``.
    round: ``(n,)`` int, when.
    features: ``(n, p)`` float, the model's features ``phi_a`` of each allocation.
    """

    unit: np.ndarray
    resource: np.ndarray
    round: np.ndarray
    features: np.ndarray

    def __post_init__(self) -> None:
        self.unit = np.asarray(self.unit, dtype=np.int64).reshape(-1)
        n = self.unit.shape[0]
        self.resource = np.asarray(self.resource, dtype=np.int64).reshape(-1)
        self.round = np.asarray(self.round, dtype=np.int64).reshape(-1)
        self.features = np.asarray(self.features, dtype=np.float64)
        if self.features.ndim != 2:
            raise ValueError(f"features must be (n, p); got shape {self.features.shape}")
        for name in ("resource", "round", "features"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(
                    f"AllocationLog.{name} must have {n} rows (one per allocation); "
                    f"got shape {getattr(self, name).shape}"
                )

    def __len__(self) -> int:
        return int(self.unit.shape[0])


@dataclass
class ObservationLog:
    """Observed outcome increments.

    Attributes
    ----------
    unit: ``(n,)`` int, or None when only aggregates ``y(t)`` are observed (one row per round).
        A unit of ``-1`` marks a remainder row: the sum of the round's increments of every
        unit without a row of its own at that round.
    round: ``(n,)`` int.
    value: ``(n,)`` float.
    """

    unit: np.ndarray | None
    round: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        self.round = np.asarray(self.round, dtype=np.int64).reshape(-1)
        self.value = np.asarray(self.value, dtype=np.float64).reshape(-1)
        if self.value.shape != self.round.shape:
            raise ValueError(
                f"ObservationLog.value must have shape {self.round.shape}; got {self.value.shape}"
            )
        if self.unit is not None:
            self.unit = np.asarray(self.unit, dtype=np.int64).reshape(-1)
            if self.unit.shape != self.round.shape:
                raise ValueError(
                    f"ObservationLog.unit must have shape {self.round.shape}; got {self.unit.shape}"
                )
            if self.unit.size and self.unit.min() < -1:
                raise ValueError("ObservationLog.unit must be >= 0 (or -1 for a remainder row)")

    @property
    def aggregate(self) -> bool:
        return self.unit is None


_BIG = np.int64(2**32)


def _codes(unit: np.ndarray, rnd: np.ndarray) -> np.ndarray:
    return (unit.astype(np.int64) + 1) * _BIG + rnd.astype(np.int64)


def _kernel_table(kernels: Sequence[DelayKernel]) -> np.ndarray:
    D = max(k.support for k in kernels)
    table = np.zeros((len(kernels), D))
    for r, k in enumerate(kernels):
        table[r, : k.support] = k.weights
    return table


def _window_matrix(
    alloc: AllocationLog,
    kernels: Sequence[DelayKernel],
    now: int,
    obs: ObservationLog | None,
    since: int | None = None,
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """Sparse ``S`` (keys x allocations) with ``S[key, a] = K^{r_a}(t - u_a)`` over the keys
    ``(unit, t)`` with ``t <= now`` (``(-1, t)`` for aggregate observations, and for the units
    a remainder row of ``obs`` covers at ``t``); returns ``S``, the keys' units and rounds, and
    how many distinct units each key sums. ``obs=None`` keys every window by its unit."""
    if len(alloc) and (alloc.resource.min() < 0 or alloc.resource.max() >= len(kernels)):
        raise ValueError(
            f"AllocationLog.resource must lie in [0, {len(kernels)}) (one kernel per resource)"
        )
    table = _kernel_table(kernels)
    D = table.shape[1]
    lags = np.arange(D)
    a_idx = np.repeat(np.arange(len(alloc)), D)
    lag = np.tile(lags, len(alloc))
    t = alloc.round[a_idx] + lag
    weight = table[alloc.resource[a_idx], lag]
    keep = (weight > 0) & (t <= now)
    if since is not None:
        keep &= t > since
    a_idx, t, weight = a_idx[keep], t[keep], weight[keep]
    own = alloc.unit[a_idx]
    if obs is not None and obs.aggregate:
        unit = np.full(t.shape, -1, dtype=np.int64)
    else:
        unit = own
        if obs is not None and obs.unit.size and obs.unit.min() < 0:
            unit = _remainder_units(unit, t, obs)
    uniq, key_idx = np.unique(_codes(unit, t), return_inverse=True)
    key_idx = key_idx.reshape(-1)
    S = sparse.csr_matrix((weight, (key_idx, a_idx)), shape=(uniq.shape[0], len(alloc)))
    pairs = np.unique(key_idx.astype(np.int64) * _BIG + own)
    n_units = np.bincount(pairs // _BIG, minlength=uniq.shape[0])
    return S, uniq // _BIG - 1, uniq % _BIG, n_units


def _remainder_units(unit: np.ndarray, t: np.ndarray, obs: ObservationLog) -> np.ndarray:
    """``unit`` with -1 where ``(unit, t)`` has no row of its own but round ``t`` has a
    remainder row."""
    own = obs.unit >= 0
    own_codes = np.unique(_codes(obs.unit[own], obs.round[own]))
    rest_rounds = np.unique(obs.round[~own])
    covered = np.isin(t, rest_rounds) & ~np.isin(_codes(unit, t), own_codes)
    return np.where(covered, -1, unit)


def _lookup(obs: ObservationLog, key_unit: np.ndarray, key_round: np.ndarray) -> np.ndarray:
    """Observed value at each key (duplicates summed), 0 where none was reported."""
    ou = np.full(obs.round.shape, -1, dtype=np.int64) if obs.unit is None else obs.unit
    codes, inv = np.unique(_codes(ou, obs.round), return_inverse=True)
    sums = np.bincount(inv.reshape(-1), weights=obs.value, minlength=codes.shape[0])
    want = _codes(key_unit, key_round)
    out = np.zeros(want.shape[0])
    if codes.size:
        pos = np.minimum(np.searchsorted(codes, want), codes.size - 1)
        hit = codes[pos] == want
        out[hit] = sums[pos[hit]]
    return out


class DelayAttribution:
    """Interface: :meth:`design` turns the logs into a weighted regression problem."""

    name = "attribution"

    def design(
        self,
        alloc: AllocationLog,
        obs: ObservationLog,
        kernels: Sequence[DelayKernel],
        now: int,
        predicted: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Z, y, w)``: design ``(m, p)``, targets ``(m,)`` and weights ``(m,)``.

        Parameters
        ----------
        alloc, obs: the logs (observations with ``round > now`` are ignored).
        kernels: one :class:`DelayKernel` per resource.
        now: the last round observed.
        predicted: ``(n_alloc,)`` current predictions ``f_a`` (used by :class:`CompletedMass`
            to split overlapping increments; ignored by the others).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class KernelConvolvedLS(DelayAttribution):
    """Kernel-convolved least squares (the default; exact for a known kernel).

    Rows only depend on allocations made up to their round, so they can be accumulated online:
    ``design(..., since=s)`` returns just the rows of rounds ``s < t <= now`` (pass every
    allocation made after ``s - D + 1``)."""

    name = "kernel_ls"

    def design(self, alloc, obs, kernels, now, predicted=None, since=None):  # noqa: D102
        obs = _until(obs, now)
        S, ku, kt, m = _window_matrix(alloc, kernels, now, obs, since)
        Z = np.asarray(S @ alloc.features)
        y = _lookup(obs, ku, kt)
        return Z, y, 1.0 / np.maximum(m, 1)


class CompletedMass(DelayAttribution):
    """Completed-mass reweighting: target ``Y / m``, weight ``m``; allocations with completed
    mass below ``min_mass`` (default 0.05) are skipped."""

    name = "completed_mass"

    def __init__(self, min_mass: float = 0.05) -> None:
        self.min_mass = check_scalar(min_mass, "min_mass", low=0.0, high=1.0)

    def design(self, alloc, obs, kernels, now, predicted=None):  # noqa: D102
        obs = _until(obs, now)
        S, ku, kt, _ = _window_matrix(alloc, kernels, now, obs)
        y_key = _lookup(obs, ku, kt)
        if predicted is None:
            f = np.ones(len(alloc))
        else:
            # shares need positive contributions; a floor keeps them defined for f <= 0
            f = np.maximum(np.abs(np.asarray(predicted, dtype=np.float64)), 1e-6)
        C = S.multiply(f[None, :]).tocsr()
        tot = np.asarray(C.sum(axis=1)).reshape(-1)
        tot[tot == 0] = 1.0
        Y = np.asarray(C.multiply((y_key / tot)[:, None]).sum(axis=0)).reshape(-1)
        m = _completed(alloc, kernels, now)
        keep = m >= max(self.min_mass, 1e-12)
        return alloc.features[keep], Y[keep] / m[keep], m[keep]


class DelayAgnostic(DelayAttribution):
    """Each increment is credited wholly to the unit's most recent allocation; an aggregate
    (or remainder) increment is split equally between the allocations of the most recent
    allocation round. Target = the credit so far, weight 1."""

    name = "delay_agnostic"

    def design(self, alloc, obs, kernels, now, predicted=None):  # noqa: D102
        obs = _until(obs, now)
        n = len(alloc)
        Y = np.zeros(n)
        if n == 0:
            return alloc.features, Y, np.ones(0)
        own = np.zeros(obs.round.shape, dtype=bool) if obs.aggregate else obs.unit >= 0
        rest = ~own
        if rest.any():
            rounds = np.unique(alloc.round)
            pos = np.searchsorted(rounds, obs.round[rest], side="right") - 1
            ok = pos >= 0
            per_round = np.zeros(rounds.shape[0])
            np.add.at(per_round, pos[ok], obs.value[rest][ok])
            counts = np.bincount(np.searchsorted(rounds, alloc.round), minlength=rounds.shape[0])
            share = per_round / np.maximum(counts, 1)
            Y += share[np.searchsorted(rounds, alloc.round)]
        if own.any():
            # most recent allocation of the same unit at or before the observation round
            ou, orr, ov = obs.unit[own], obs.round[own], obs.value[own]
            order = np.lexsort((np.arange(n), alloc.round, alloc.unit))
            su, sr = alloc.unit[order], alloc.round[order]
            code_a = _codes(su, sr)
            pos = np.searchsorted(code_a, _codes(ou, orr), side="right") - 1
            ok = (pos >= 0) & (su[np.maximum(pos, 0)] == ou)
            np.add.at(Y, order[pos[ok]], ov[ok])
        return alloc.features, Y, np.ones(n)


def _until(obs: ObservationLog, now: int) -> ObservationLog:
    keep = obs.round <= now
    if keep.all():
        return obs
    return ObservationLog(
        None if obs.unit is None else obs.unit[keep], obs.round[keep], obs.value[keep]
    )


def _completed(alloc: AllocationLog, kernels: Sequence[DelayKernel], now: int) -> np.ndarray:
    m = np.zeros(len(alloc))
    for r, k in enumerate(kernels):
        rows = alloc.resource == r
        m[rows] = k.completed_mass(now - alloc.round[rows])
    return m


#: attribution estimators by name
ATTRIBUTIONS: dict[str, type[DelayAttribution]] = {
    "kernel_ls": KernelConvolvedLS,
    "completed_mass": CompletedMass,
    "delay_agnostic": DelayAgnostic,
}


def make_attribution(spec: str | DelayAttribution) -> DelayAttribution:
    """An estimator from its name in :data:`ATTRIBUTIONS` (or the instance itself)."""
    if isinstance(spec, DelayAttribution):
        return spec
    if spec not in ATTRIBUTIONS:
        raise ValueError(f"attribution must be one of {sorted(ATTRIBUTIONS)}; got {spec!r}")
    return ATTRIBUTIONS[spec]()


def fit_ridge(
    Z: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, lam: float = 1.0
) -> RidgeRegression:
    """Weighted ridge fit of ``(Z, y, w)`` (``A = lam I + Z^T W Z``) as a one-model
    :class:`~scarce.models.RidgeRegression`: ``.theta[0]`` the estimate, ``.A_inv[0]`` the
    unit-noise posterior covariance."""
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    model = RidgeRegression(1, Z.shape[1], lam=lam)
    if Z.shape[0]:
        s = np.ones(y.shape[0]) if w is None else np.sqrt(np.asarray(w, dtype=np.float64))
        model.partial_fit(Z * s[:, None], y * s)
    return model


def convolve_outcomes(
    alloc: AllocationLog,
    effects: np.ndarray,
    kernels: Sequence[DelayKernel],
    now: int,
    *,
    aggregate: bool = False,
    since: int | None = None,
) -> ObservationLog:
    """The noiseless observations the model implies: ``y_i(t) = sum_a K^{r_a}(t - u_a) f_a`` for
    every (unit, round) ``t <= now`` inside some window (or ``y(t)`` summed over units).

    ``effects``: ``(n_alloc,)`` the effects ``f_a``; ``since``: only rounds ``t > since``."""
    effects = np.asarray(effects, dtype=np.float64).reshape(-1)
    if effects.shape[0] != len(alloc):
        raise ValueError(f"effects must have shape ({len(alloc)},); got {effects.shape}")
    marker = ObservationLog(None, np.zeros(0), np.zeros(0)) if aggregate else None
    S, ku, kt, _ = _window_matrix(alloc, kernels, now, marker, since)
    return ObservationLog(None if aggregate else ku, kt, S @ effects)
