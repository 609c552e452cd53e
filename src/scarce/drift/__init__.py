"""Drifting problems: piecewise-stationary and smoothly drifting environments, and a
change-detection wrapper (CUSUM on the reward stream) that restarts any policy. Discounted and
sliding-window learning are the ``forgetting`` and ``window`` parameters of LinUCB / LinTS."""

from scarce.drift.detect import ChangeDetecting
from scarce.drift.envs import DriftingLinearEnv, PiecewiseLinearEnv

__all__ = ["ChangeDetecting", "DriftingLinearEnv", "PiecewiseLinearEnv"]
