"""The result of asking a policy what to do."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Decision:
    """Decisions for a batch of ``n`` cases.

    Attributes
    ----------
    actions:
        ``(n,)`` int64, the chosen action of each case.
    probabilities:
        ``(n,)`` float64, the probability with which the policy chose that action
        (1.0 for a deterministic rule). This is what logging and off-policy evaluation need.
    scores:
        ``(n, K)`` float64, the index each action was ranked by (UCB value, sampled
        reward, estimated mean, ...). Ineligible actions carry ``-inf``.
    """

    actions: np.ndarray
    probabilities: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def to_dict(self) -> dict[str, list]:
        """Plain-Python form (for JSON)."""
        return {
            "actions": self.actions.tolist(),
            "probabilities": self.probabilities.tolist(),
            "scores": np.where(np.isfinite(self.scores), self.scores, np.nan).tolist(),
        }
