"""Covariate-shift environments with vector rewards on the context cube ``[0, 1]^D``.

The context distribution changes at one or several change points; the mean-reward functions
do not (covariate shift). Each distribution is a product of Beta laws, one per coordinate:
``Beta(1, 1)`` is uniform, ``Beta(1 + nu, 1)`` a power law ``(1 + nu) x^nu`` that piles up
near the corner ``(1, ..., 1)`` as the shift strength ``nu`` grows, ``Beta(1, 1 + nu)`` its
mirror near the origin.

Registered (``scarce list``): ``peaks-shift`` (one change point) and ``peaks-shift-multi``
(two), usable from TOML configs and sweeps like any environment.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from scarce.core.outcome import Outcome
from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar
from scarce.envs.base import Environment
from scarce.envs.registry import register_env
from scarce.pareto.cones import Cone, pareto_mask
from scarce.pareto.policy import as_cone
from scarce.pareto.regret import decision_support, played_regret, preference_regret, round_gaps

#: smallest mean reward (the log-gap needs strictly positive means)
FLOOR = 1e-3


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


class PeaksShiftEnv(Environment):
    """``K`` arms, ``m`` objectives, contexts in ``[0, 1]^D`` whose law shifts over time.

    Arm ``k`` sits at position ``iota_k = k / (K - 1)``. Objective ``j`` has a peak location
    ``c_j(x) = offset_j + slope * s(x)`` that moves with the context through
    ``s(x) = mean(x)``; the mean reward is
    ``mu_{k,j}(x) = max(FLOOR, 1 - lipschitz * |iota_k - c_j(x)|^beta)`` (``FLOOR = 1e-3``).
    Arms between the peaks trade one objective against another (the Pareto set); arms
    outside are dominated. The means are Hölder in the sup-norm with exponent ``beta`` and
    constant ``lipschitz * |slope|^beta`` (:attr:`holder_constant`). With ``m = 2``,
    ``offsets = (0.8, 1.0)`` and ``slope = -0.8`` the peaks are ``a(x) = (8 - 8x)/10`` and
    ``b(x) = (10 - 8x)/10`` of the reference instance (with a symmetric second objective).

    Time: case ``t`` (1-based) is the ``t``-th context drawn since construction or
    :meth:`reset`; its law is that of its phase. Like every time-varying environment,
    :meth:`case_metrics` refers to the most recent :meth:`contexts` batch (as
    :func:`scarce.sim.run` calls it); the means do not depend on time, so
    :meth:`expected_rewards` scores any contexts.

    Parameters
    ----------
    n_actions:
        ``K >= 2``.
    n_features:
        context dimension ``D``.
    n_objectives:
        ``m``; ``offsets`` must have length ``m``.
    change_points:
        increasing rounds ``t_1 < ... < t_n`` (rounds ``t <= t_1`` use the first law).
    distributions:
        ``n + 1`` pairs ``(a, b)``: context law ``Beta(a, b)^D`` of each phase; the last is the
        target ``Q``. The default, source ``Beta(1, 6)`` and target ``Beta(6, 1)``, is the
        author library's instance with ``nu = 5``.
    offsets, slope, lipschitz, beta:
        the mean functions above.
    noise:
        standard deviation ``sigma`` of the Gaussian (so sigma-sub-Gaussian) reward noise.
    cone:
        the preference cone of the regrets (:class:`~scarce.pareto.Cone`, a halfspace matrix
        or None for the orthant); suggested to policies by :meth:`policy_params`.
    seed:
        default random stream when a call passes no ``rng``.
    """

    name = "peaks-shift"

    def __init__(
        self,
        *,
        n_actions: int = 10,
        n_features: int = 1,
        n_objectives: int = 2,
        change_points: Sequence[int] = (1500,),
        distributions: Sequence[tuple[float, float]] = ((1.0, 6.0), (6.0, 1.0)),
        offsets: Sequence[float] | None = None,
        slope: float = -0.8,
        lipschitz: float = 4.0,
        beta: float = 1.0,
        noise: float = 0.1,
        cone: Any = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed)
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
        self.noise = check_scalar(noise, "noise", low=0.0)
        self.cone = cone
        self.cone_ = as_cone(cone, m)
        self._iota = np.arange(self.n_actions) / (self.n_actions - 1)
        self.reset()

    def reset(self) -> None:
        """Set the clock back to round 0 (the next context is round 1's)."""
        #: number of contexts drawn so far
        self.t = 0
        self._last_rounds = np.zeros(0, dtype=np.int64)

    @property
    def holder_constant(self) -> float:
        """``C_beta`` with ``|mu(x) - mu(x')| <= C_beta ||x - x'||_inf^beta``."""
        return float(self.lipschitz * abs(self.slope) ** self.beta)

    @property
    def target_start(self) -> int:
        """The first round (1-based) of the target phase: ``t_n + 1``."""
        return self.change_points[-1] + 1 if self.change_points else 1

    def phase(self, t: Any) -> np.ndarray:
        """Phase index (0 .. n_changes) of each 1-based round ``t``."""
        return np.searchsorted(np.asarray(self.change_points), np.asarray(t), side="left")

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        rounds = np.arange(self.t + 1, self.t + n + 1)
        self.t += n
        self._last_rounds = rounds
        ab = np.asarray(self.distributions)[self.phase(rounds)]
        return rng.beta(ab[:, :1], ab[:, 1:], size=(n, self.n_features))

    def sample_phase(
        self, n: int, phase: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """``(n, D)`` i.i.d. contexts from the law of ``phase`` (-1: the target); the clock
        does not move."""
        n = check_positive_int(n, "n")
        a, b = self.distributions[phase]
        return self._gen(rng).beta(a, b, size=(n, self.n_features))

    def expected_rewards(self, X: Any) -> np.ndarray:
        """``(n, K, m)`` true mean reward vectors (at least ``FLOOR``) at contexts ``X``."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n, {self.n_features}); got {X.shape}")
        s = X.mean(axis=1)
        peaks = self.offsets[None, :] + self.slope * s[:, None]  # (n, m)
        dist = np.abs(self._iota[None, :, None] - peaks[:, None, :])
        return np.maximum(FLOOR, 1.0 - self.lipschitz * dist**self.beta)

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(n, K, m)`` noisy reward vectors of every arm."""
        mu = self.expected_rewards(X)
        return mu + rng.normal(0.0, self.noise, size=mu.shape)

    def pareto_sets(self, X: Any, cone: Cone | None = None) -> np.ndarray:
        """``(n, K)`` bool, the exact oracle Pareto set at each context (under the
        environment's cone unless ``cone`` is given)."""
        mu = self.expected_rewards(X)
        cone = self.cone_ if cone is None else cone
        return np.array([pareto_mask(row, cone) for row in mu])

    def case_metrics(self, X: Any, decision: Any, outcome: Outcome) -> dict[str, np.ndarray]:
        """Per-case regrets of the batch last drawn (:mod:`scarce.pareto.regret`), from the
        set each action was drawn from (:func:`~scarce.pareto.regret.decision_support`):

        * ``preference_regret``: ``d(S_t, P*(x_t))``, the largest gap of an arm of the
          support ``S_t``;
        * ``target_preference_regret``: the same on the target phase's rounds, 0 before
          (summed, the paper's regret over the target rounds);
        * ``preference_regret_filtered``: the literal eq. (2), the support first filtered to
          its non-dominated arms under the true means;
        * ``log_hausdorff_regret``: the Hausdorff distance with the log-sup base metric (it
          also counts Pareto arms the support misses);
        * ``played_pareto_regret``: the gap of the played arm.
        """
        mu = self.expected_rewards(X)
        if mu.shape[0] != self._last_rounds.shape[0]:
            raise ValueError(
                f"X must be the last batch of contexts ({self._last_rounds.shape[0]} cases); "
                f"got {mu.shape[0]}"
            )
        support = decision_support(decision)
        cone = self.cone_
        g = round_gaps(mu, cone)
        pref = preference_regret(mu, support, cone, round_gap=g)
        target = self.phase(self._last_rounds) == len(self.change_points)
        return {
            "preference_regret": pref,
            "target_preference_regret": np.where(target, pref, 0.0),
            "preference_regret_filtered": preference_regret(
                mu, support, cone, filtered=True, round_gap=g
            ),
            "log_hausdorff_regret": preference_regret(mu, support, cone, kind="log_hausdorff"),
            "played_pareto_regret": played_regret(mu, decision.actions, cone, round_gap=g),
        }

    def policy_params(self, horizon: int, names: Collection[str] | None = None) -> dict[str, Any]:
        """``n_objectives``, the ``cone`` (nested lists; None for the orthant), the instance's
        Hölder constants ``c_beta`` and ``beta``, the noise scale ``sigma`` and the
        ``horizon``: what the tree policies take (the others take what they accept)."""
        out: dict[str, Any] = {
            "n_objectives": self.n_objectives,
            "cone": None if self.cone is None else self.cone_.W.tolist(),
            "c_beta": self.holder_constant,
            "beta": self.beta,
            "horizon": int(horizon),
        }
        if self.noise > 0:
            out["sigma"] = self.noise
        return out

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
        out = super().describe()
        out.update(
            {
                "n_objectives": self.n_objectives,
                "change_points": list(self.change_points),
                "distributions": [list(d) for d in self.distributions],
            }
        )
        return out


#: the two-change-point schedule: a power law near the origin, uniform, then the target
MULTI_SHIFT = {"change_points": (1000, 2000), "distributions": ((1.0, 5.0), (1.0, 1.0), (6.0, 1.0))}

register_env(
    "peaks-shift",
    PeaksShiftEnv,
    "vector rewards under covariate shift (scarce.pareto): K=10 arms, 2 objectives, contexts "
    "Beta(1,6) then Beta(6,1) from round 1501",
)
register_env(
    "peaks-shift-multi",
    PeaksShiftEnv,
    "peaks-shift with two change points: Beta(1,5), uniform from round 1001, Beta(6,1) from 2001",
    fixed=MULTI_SHIFT,
)
