"""Environments whose reward parameters change over time, with exact expected rewards.

Both are linear-Gaussian problems in the layout of :class:`scarce.envs.LinearGaussianEnv`
(contexts ``N(0, I / d)``, disjoint unit-norm parameters ``theta_a`` per action, reward
``x^T theta_a(t) + N(0, noise_std^2)``), but ``theta_a`` depends on the time ``t``: the index of
the case, counted from 0 over all :meth:`contexts` calls since construction (or
:meth:`reset`).

* :class:`PiecewiseLinearEnv`: ``theta`` is constant between change points and redrawn at each
  (piecewise-stationary, as TF-Agents' ``PiecewiseStochasticEnvironment``);
* :class:`DriftingLinearEnv`: ``theta_a(t)`` rotates smoothly in a plane at constant speed
  (one turn per ``period`` cases; like TF-Agents' ``DriftingLinearEnvironment``).

A time-varying problem can only score the batch it last produced: :meth:`outcomes`,
:meth:`full_outcomes` and :meth:`expected_rewards` refer to the times of the most recent
:meth:`contexts` batch (as :mod:`scarce.sim` calls them); :meth:`expected_rewards_at` scores any
contexts at any times.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_positive_int, check_scalar
from scarce.envs.base import Environment
from scarce.envs.registry import register_env


class _TimeVaryingLinearEnv(Environment):
    """Shared machinery: the clock, contexts, noise, scoring of the last batch."""

    def __init__(self, n_actions: int, n_features: int, noise_std: float, seed: SeedLike) -> None:
        self.n_actions = check_positive_int(n_actions, "n_actions")
        self.n_features = check_positive_int(n_features, "n_features")
        self.noise_std = check_scalar(noise_std, "noise_std", low=0.0)
        super().__init__(seed)
        self.reset()

    def reset(self) -> None:
        """Set the clock back to 0."""
        #: number of cases drawn so far (the time of the next case)
        self.t = 0
        self._last_times = np.zeros(0, dtype=np.int64)

    def theta_at(self, times: np.ndarray) -> np.ndarray:
        """``(n, K, d)`` true parameters at integer ``times`` ``(n,)``."""
        raise NotImplementedError

    def _contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        self._last_times = np.arange(self.t, self.t + n, dtype=np.int64)
        self.t += n
        return rng.standard_normal((n, self.n_features)) / np.sqrt(self.n_features)

    def expected_rewards_at(self, X: Any, times: Any) -> np.ndarray:
        """``(n, K)`` exact expected rewards of contexts ``X`` ``(n, d)`` at ``times`` ``(n,)``."""
        X = check_contexts(X, self.n_features, self.n_actions)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n, {self.n_features}); got {X.shape}")
        times = np.asarray(times)
        if times.shape != (X.shape[0],) or times.dtype.kind not in "iu" or (times < 0).any():
            raise ValueError(
                f"times must be ({X.shape[0]},) non-negative integers; got shape {times.shape}"
            )
        return np.einsum("nd,nkd->nk", X, self.theta_at(times))

    def _last_batch_times(self, X: Any) -> np.ndarray:
        n = np.asarray(X).shape[0] if np.ndim(X) > 1 else 1
        if n != self._last_times.shape[0]:
            raise ValueError(
                f"X must be the last batch of contexts ({self._last_times.shape[0]} cases) for a "
                f"time-varying environment; got {n} cases (use expected_rewards_at for others)"
            )
        return self._last_times

    def expected_rewards(self, X: np.ndarray) -> np.ndarray:
        """``(n, K)`` exact expected rewards of the last batch of contexts, at their times."""
        return self.expected_rewards_at(X, self._last_batch_times(X))

    def _full_outcomes(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = self.expected_rewards(X)
        if self.noise_std == 0.0:
            return mean
        return mean + self.noise_std * rng.standard_normal(mean.shape)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["noise_std"] = self.noise_std
        return out


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class PiecewiseLinearEnv(_TimeVaryingLinearEnv):
    """Piecewise-stationary linear-Gaussian rewards: every action's parameter vector is redrawn
    (independent unit-norm Gaussian directions) at each change point.

    Parameters
    ----------
    n_actions, n_features:
        ``K`` and ``d``.
    change_every:
        length of each stationary segment in cases (>= 1): changes happen at
        ``change_every, 2 * change_every, ...``.
    n_segments:
        number of distinct parameter sets; after the last one the sequence starts over
        (so the problem is defined for any horizon).
    noise_std:
        standard deviation of the Gaussian reward noise (>= 0).
    seed:
        seed of the parameters (drawn at construction) and of the default streams.

    Attributes
    ----------
    thetas:
        ``(n_segments, K, d)`` the parameters of each segment.
    """

    name = "piecewise-linear"

    def __init__(
        self,
        n_actions: int = 5,
        n_features: int = 5,
        change_every: int = 1000,
        n_segments: int = 4,
        noise_std: float = 0.1,
        seed: SeedLike = None,
    ) -> None:
        self.change_every = check_positive_int(change_every, "change_every")
        self.n_segments = check_positive_int(n_segments, "n_segments")
        super().__init__(n_actions, n_features, noise_std, seed)
        self.thetas = _unit(self._rng, (self.n_segments, self.n_actions, self.n_features))

    def segment_at(self, times: np.ndarray) -> np.ndarray:
        """``(n,)`` index of the parameter set in force at ``times``."""
        return (np.asarray(times) // self.change_every) % self.n_segments

    def theta_at(self, times: np.ndarray) -> np.ndarray:
        return self.thetas[self.segment_at(times)]

    def change_points(self, horizon: int) -> np.ndarray:
        """Times ``< horizon`` at which the parameters change."""
        return np.arange(self.change_every, horizon, self.change_every)


class DriftingLinearEnv(_TimeVaryingLinearEnv):
    """Smoothly drifting linear-Gaussian rewards: ``theta_a(t) = cos(phi_a + 2 pi t / period)
    u_a + sin(phi_a + 2 pi t / period) v_a`` with orthonormal ``u_a, v_a`` (unit norm at every
    time; each action turns at the same speed from its own phase ``phi_a``).

    Parameters
    ----------
    n_actions, n_features:
        ``K`` and ``d`` (``d >= 2``).
    period:
        cases per full turn (> 0); the parameters move by ``2 pi / period`` radians per case.
    noise_std, seed:
        as in :class:`PiecewiseLinearEnv`.
    """

    name = "drifting-linear"

    def __init__(
        self,
        n_actions: int = 5,
        n_features: int = 5,
        period: float = 4000.0,
        noise_std: float = 0.1,
        seed: SeedLike = None,
    ) -> None:
        self.period = check_scalar(period, "period", low=0.0, low_inclusive=False)
        if check_positive_int(n_features, "n_features") < 2:
            raise ValueError(f"n_features must be >= 2 for a rotation; got {n_features}")
        super().__init__(n_actions, n_features, noise_std, seed)
        g = self._rng.standard_normal((self.n_actions, self.n_features, 2))
        q, _ = np.linalg.qr(g)  # (K, d, 2) orthonormal columns
        self.u, self.v = q[:, :, 0], q[:, :, 1]
        self.phase = self._rng.uniform(0, 2 * np.pi, self.n_actions)

    def theta_at(self, times: np.ndarray) -> np.ndarray:
        angle = self.phase[None, :] + 2 * np.pi * np.asarray(times, dtype=np.float64)[:, None] / (
            self.period
        )
        return np.cos(angle)[:, :, None] * self.u[None] + np.sin(angle)[:, :, None] * self.v[None]


register_env(
    "piecewise-linear",
    PiecewiseLinearEnv,
    "drifting: linear-Gaussian rewards whose parameters are redrawn every change_every cases",
)
register_env(
    "drifting-linear",
    DriftingLinearEnv,
    "drifting: linear-Gaussian rewards whose parameters turn smoothly (one turn per period)",
)
