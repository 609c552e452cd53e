"""What an environment (or the world) reports back after a decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Outcome:
    """Outcomes of a batch of ``n`` decisions.

    Attributes
    ----------
    rewards:
        ``(n,)`` float64 rewards of the chosen actions, or ``(n, m)`` for environments with
        vector rewards (``m`` objectives).
    extras:
        named per-case feedback beside the reward, each an array with leading axis ``n``:
        ``costs`` ``(n, n_resources)`` (consumption of each resource), ``model_rewards`` ``(n,)``
        (deferral: the model's reward, seen on every case), ... The simulation loop passes to a
        policy's ``update`` the keywords it accepts (``policy.update_keywords``) and records all
        of them in the trace.
    """

    rewards: np.ndarray
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rewards = np.asarray(self.rewards, dtype=np.float64)
        if rewards.ndim not in (1, 2):
            raise ValueError(f"rewards must have shape (n,) or (n, m); got {rewards.shape}")
        n = rewards.shape[0]
        extras = {}
        for name, value in self.extras.items():
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[0] != n:
                raise ValueError(
                    f"extras[{name!r}] must have leading axis n = {n} (one entry per case); "
                    f"got shape {arr.shape}"
                )
            extras[name] = arr
        object.__setattr__(self, "rewards", rewards)
        object.__setattr__(self, "extras", extras)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def costs(self) -> np.ndarray | None:
        """``(n, n_resources)`` consumptions, or None when the environment has no costs."""
        return self.extras.get("costs")
