"""Delay models for simulation: when (and in what pieces) an outcome reaches the learner.

A delay model turns a batch of decisions into a release matrix ``W`` ``(n, D)``: the share of
decision ``j``'s outcome that arrives ``tau`` rounds after the decision is ``W[j, tau]``; rows
sum to 1. Whole-outcome delays have one non-zero per row; kernel release spreads the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scarce.core.validation import check_positive_int, check_scalar
from scarce.feedback.kernels import DelayKernel


class DelayModel:
    """Base class: subclasses implement :meth:`release`."""

    #: the largest lag + 1 the model can produce
    support: int = 1

    def release(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(n, support)`` release shares for the decisions' ``actions`` ``(n,)``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        # stable (no addresses): sweeps key their resumable runs on it
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class FixedDelay(DelayModel):
    """Every outcome arrives whole, ``lag`` rounds after its decision (``lag`` >= 0)."""

    def __init__(self, lag: int) -> None:
        self.lag = check_positive_int(lag, "lag", minimum=0)
        self.support = self.lag + 1

    def release(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        W = np.zeros((len(actions), self.support))
        W[:, self.lag] = 1.0
        return W


class GeometricDelay(DelayModel):
    """Every outcome arrives whole after a geometric lag ``P(tau) ∝ p (1-p)^tau``, truncated
    at ``max_lag``."""

    def __init__(self, p: float, max_lag: int = 50) -> None:
        self.p = check_scalar(p, "p", low=0.0, high=1.0, low_inclusive=False)
        self.max_lag = check_positive_int(max_lag, "max_lag", minimum=0)
        self.kernel = DelayKernel.geometric(self.p, self.max_lag)
        self.support = self.kernel.support

    def release(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(actions)
        W = np.zeros((n, self.support))
        W[np.arange(n), self.kernel.sample(n, rng)] = 1.0
        return W


class KernelDelay(DelayModel):
    """Delay kernels per action (or one for all).

    Parameters
    ----------
    kernels:
        one :class:`DelayKernel`, or a sequence with one per action.
    mode:
        ``"pieces"``: the outcome is released in pieces ``K(tau) * y`` (deterministic);
        ``"sample"``: it arrives whole at a lag drawn from ``K``.
    """

    def __init__(self, kernels: DelayKernel | Sequence[DelayKernel], mode: str = "pieces") -> None:
        if mode not in ("pieces", "sample"):
            raise ValueError(f"mode must be 'pieces' or 'sample'; got {mode!r}")
        ks = [kernels] if isinstance(kernels, DelayKernel) else list(kernels)
        if not ks or not all(isinstance(k, DelayKernel) for k in ks):
            raise TypeError("kernels must be a DelayKernel or a non-empty sequence of them")
        self.kernels = ks
        self.mode = mode
        self.support = max(k.support for k in ks)
        self._W = np.zeros((len(ks), self.support))
        for a, k in enumerate(ks):
            self._W[a, : k.support] = k.weights

    def release(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        actions = np.asarray(actions, dtype=np.int64)
        if len(self.kernels) == 1:
            rows = np.zeros(len(actions), dtype=np.int64)
        else:
            if actions.size and actions.max() >= len(self.kernels):
                raise ValueError(
                    f"KernelDelay has {len(self.kernels)} kernels but got action {actions.max()}"
                )
            rows = actions
        W = self._W[rows]
        if self.mode == "pieces":
            return W.copy()
        lags = (W.cumsum(axis=1) > rng.random(len(actions))[:, None]).argmax(axis=1)
        out = np.zeros_like(W)
        out[np.arange(len(actions)), lags] = 1.0
        return out
