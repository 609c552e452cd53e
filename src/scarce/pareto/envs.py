"""Covariate-shift environments with vector rewards on the context cube ``[0, 1]^D``.

The context distribution changes at one or several change points; the mean-reward functions
do not (covariate shift). Each distribution is a product of Beta laws, one per coordinate:
``Beta(1, 1)`` is uniform, ``Beta(1 + nu, 1)`` a power law ``(1 + nu) x^nu`` that piles up
near the corner ``(1, ..., 1)`` as the shift strength ``nu`` grows, ``Beta(1, 1 + nu)`` its
mirror near the origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_actions, check_positive_int, check_scalar
from scarce.pareto.cones import Cone, pareto_mask


def _check_beta_pairs(value: Any, name: str) -> list[tuple[float, float]]:
    try:
        pairs = [(float(a), float(b)) for a, b in value]
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a sequence of (a, b) Beta parameters; got {value!r}"
        ) from None
    if not pairs:
        raise ValueError(f"{name} must hold at least one (a, b) pair")
    for a, b in pairs:
        if not (a > 0 and b > 0 and np.isfinite(a) and np.isfinite(b)):
            raise ValueError(f"{name}: Beta parameters must be finite and > 0; got ({a}, {b})")
    return pairs


class PeaksShiftEnv:
    """``K`` arms, ``m`` objectives, contexts in ``[0, 1]^D`` whose law shifts over time.

    Arm ``k`` sits at position ``iota_k = k / (K - 1)``. Objective ``j`` has a peak location
    ``c_j(x) = offset_j + slope * s(x)`` that moves with the context through
    ``s(x) = mean(x)``; the mean reward is
    ``mu_{k,j}(x) = max(floor, 1 - lipschitz * |iota_k - c_j(x)|^beta)``.
    Arms between the peaks trade one objective against another (the Pareto set); arms
    outside are dominated. The means are Hölder in the sup-norm with exponent ``beta`` and
    constant ``lipschitz * |slope|^beta`` (:attr:`holder_constant`). With ``m = 2``,
    ``offsets = (0.8, 1.0)`` and ``slope = -0.8`` the peaks are ``a(x) = (8 - 8x)/10`` and
    ``b(x) = (10 - 8x)/10`` of the reference instance (with a symmetric second objective).

    Parameters
    ----------
    n_actions:
        ``K >= 2``.
    n_features:
        context dimension ``D``.
    n_objectives:
        ``m``; ``offsets`` must have length ``m``.
    change_points:
        increasing rounds ``t_1 < ... < t_n`` (1-based: rounds ``t <= t_1`` use the first law).
    distributions:
        ``n + 1`` pairs ``(a, b)``: context law ``Beta(a, b)^D`` of each phase; the last is the
        target ``Q``.
    offsets, slope, lipschitz, beta, floor:
        the mean functions above (``floor > 0`` keeps means positive, as the gap needs).
    noise:
        standard deviation ``sigma`` of the Gaussian (so sigma-sub-Gaussian) reward noise.
    seed:
        default random stream when a call passes no ``rng``.
    """

    def __init__(
        self,
        *,
        n_actions: int = 10,
        n_features: int = 1,
        n_objectives: int = 2,
        change_points: Sequence[int] = (1500,),
        distributions: Sequence[tuple[float, float]] = ((1.0, 1.0), (6.0, 1.0)),
        offsets: Sequence[float] | None = None,
        slope: float = -0.8,
        lipschitz: float = 4.0,
        beta: float = 1.0,
        floor: float = 1e-3,
        noise: float = 0.1,
        seed: SeedLike = None,
    ) -> None:
        self.n_actions = check_positive_int(n_actions, "n_actions", minimum=2)
        self.n_features = check_positive_int(n_features, "n_features")
        self.n_objectives = check_positive_int(n_objectives, "n_objectives")
        cps = [check_positive_int(c, "change_points") for c in change_points]
        if any(b <= a for a, b in zip(cps[:-1], cps[1:], strict=True)):
            raise ValueError(f"change_points must be strictly increasing; got {cps}")
        self.change_points = tuple(cps)
        self.distributions = tuple(_check_beta_pairs(distributions, "distributions"))
        if len(self.distributions) != len(cps) + 1:
            raise ValueError(
                f"distributions must have len(change_points) + 1 = {len(cps) + 1} entries; "
                f"got {len(self.distributions)}"
            )
        m = self.n_objectives
        if offsets is None:
            offsets = np.linspace(0.8, 1.0, m) if m > 1 else np.array([0.9])
        off = np.asarray(offsets, dtype=float)
        if off.shape != (m,) or not np.all(np.isfinite(off)):
            raise ValueError(f"offsets must be {m} finite numbers; got {offsets!r}")
        self.offsets = off
        self.slope = check_scalar(slope, "slope")
        self.lipschitz = check_scalar(lipschitz, "lipschitz", low=0.0, low_inclusive=False)
        self.beta = check_scalar(beta, "beta", low=0.0, high=1.0, low_inclusive=False)
        self.floor = check_scalar(floor, "floor", low=0.0, low_inclusive=False)
        self.noise = check_scalar(noise, "noise", low=0.0)
        self.seed = seed
        self._rng = as_generator(seed)
        self._iota = np.arange(self.n_actions) / (self.n_actions - 1)

    @property
    def holder_constant(self) -> float:
        """``C_beta`` with ``|mu(x) - mu(x')| <= C_beta ||x - x'||_inf^beta``."""
        return float(self.lipschitz * abs(self.slope) ** self.beta)

    @property
    def target_start(self) -> int:
        """The first round (1-based) of the target phase: ``t_n + 1``."""
        return self.change_points[-1] + 1 if self.change_points else 1

    def phase(self, t: np.ndarray) -> np.ndarray:
        """``(n,)`` phase index (0 .. n_changes) of each 1-based round ``t``."""
        return np.searchsorted(np.asarray(self.change_points), np.asarray(t), side="left")

    def contexts(
        self, n: int, rng: np.random.Generator | None = None, *, start: int = 1
    ) -> np.ndarray:
        """``(n, D)`` contexts of rounds ``start, ..., start + n - 1`` (1-based)."""
        n = check_positive_int(n, "n")
        start = check_positive_int(start, "start")
        rng = self._rng if rng is None else rng
        ph = self.phase(np.arange(start, start + n))
        ab = np.asarray(self.distributions)[ph]
        return rng.beta(ab[:, :1], ab[:, 1:], size=(n, self.n_features))

    def sample_phase(
        self, n: int, phase: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """``(n, D)`` i.i.d. contexts from the law of ``phase`` (-1: the target)."""
        n = check_positive_int(n, "n")
        a, b = self.distributions[phase]
        rng = self._rng if rng is None else rng
        return rng.beta(a, b, size=(n, self.n_features))

    def mean_rewards(self, X: Any) -> np.ndarray:
        """``(n, K, m)`` true mean reward vectors, strictly positive."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}); got {X.shape}")
        s = X.mean(axis=1)
        peaks = self.offsets[None, :] + self.slope * s[:, None]  # (n, m)
        dist = np.abs(self._iota[None, :, None] - peaks[:, None, :])
        return np.maximum(self.floor, 1.0 - self.lipschitz * dist**self.beta)

    def outcomes(self, X: Any, actions: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(n, m)`` noisy reward vectors of ``actions`` (``(n,)``) at contexts ``X``."""
        mu = self.mean_rewards(X)
        n = mu.shape[0]
        acts = check_actions(actions, n, self.n_actions)
        rng = self._rng if rng is None else rng
        noise = rng.normal(0.0, self.noise, size=(n, self.n_objectives))
        return mu[np.arange(n), acts] + noise

    def pareto_sets(self, X: Any, cone: Cone | None = None) -> np.ndarray:
        """``(n, K)`` bool, the exact oracle Pareto set at each context."""
        mu = self.mean_rewards(X)
        cone = Cone.orthant(self.n_objectives) if cone is None else cone
        return np.array([pareto_mask(row, cone) for row in mu])

    def dissimilarity(
        self, h: float, *, source: int = 0, n_samples: int = 4000, rng: SeedLike = 0
    ) -> float:
        """Monte-Carlo ``rho_h(P, Q) = E_{X~Q}[1 / P(B_inf(X, h))]`` between the law of phase
        ``source`` and the target, with sup-norm balls (exact Beta CDF per coordinate)."""
        from scipy.stats import beta as beta_law

        h = check_scalar(h, "h", low=0.0, low_inclusive=False)
        gen = as_generator(rng)
        Xq = self.sample_phase(n_samples, -1, gen)
        a, b = self.distributions[source]
        prob = np.prod(
            beta_law.cdf(np.minimum(Xq + h, 1.0), a, b)
            - beta_law.cdf(np.maximum(Xq - h, 0.0), a, b),
            axis=1,
        )
        return float(np.mean(1.0 / np.maximum(prob, 1e-300)))

    def describe(self) -> dict[str, Any]:
        return {
            "name": "peaks-shift",
            "n_actions": self.n_actions,
            "n_features": self.n_features,
            "n_objectives": self.n_objectives,
            "change_points": list(self.change_points),
            "distributions": [list(d) for d in self.distributions],
        }
