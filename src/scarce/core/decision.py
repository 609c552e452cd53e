"""The result of asking a policy what to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class Decision:
    """Decisions for a batch of ``n`` cases.

    Attributes
    ----------
    actions:
        ``(n,)`` int64, the chosen action of each case.
    probabilities:
        ``(n,)`` float64, the probability with which the policy chose that action
        (1.0 for a deterministic rule). This is what logging and off-policy evaluation need.
        Policies whose probabilities cost more than the decision itself (Thompson sampling:
        a quadrature per case) compute them on first access, from the state at decision time.
    scores:
        ``(n, K)`` float64, the index each action was ranked by (UCB value, sampled
        reward, estimated mean, ...). Ineligible actions carry ``-inf``.
    info:
        what the policy knew at decision time and its ``update`` needs back (coba's learner
        ``info``): name -> numeric array with leading axis ``n`` (e.g. the cost bounds the
        scores used). It travels with the decision (the simulation loop and the decision
        service hand it to ``update(..., info=...)``), so no policy keeps hidden state about
        decisions in flight. Empty for most policies.
    """

    __slots__ = ("_probabilities", "_probability_fn", "actions", "info", "scores")

    def __init__(
        self,
        actions: np.ndarray,
        probabilities: np.ndarray | None,
        scores: np.ndarray,
        *,
        probability_fn: Callable[[], np.ndarray] | None = None,
        info: dict[str, np.ndarray] | None = None,
    ) -> None:
        if probabilities is None and probability_fn is None:
            raise ValueError("Decision needs probabilities or probability_fn")
        self.actions = actions
        self.scores = scores
        self.info = {} if info is None else info
        self._probabilities = probabilities
        self._probability_fn = probability_fn

    @property
    def probabilities(self) -> np.ndarray:
        if self._probabilities is None:
            assert self._probability_fn is not None
            self._probabilities = self._probability_fn()
            self._probability_fn = None
        return self._probabilities

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def __repr__(self) -> str:
        return f"Decision(actions={self.actions!r}, probabilities={self.probabilities!r})"

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (for JSON)."""
        return {
            "actions": self.actions.tolist(),
            "probabilities": self.probabilities.tolist(),
            "scores": np.where(np.isfinite(self.scores), self.scores, np.nan).tolist(),
            "info": {k: np.asarray(v).tolist() for k, v in self.info.items()},
        }

    def case_info(self, i: int) -> dict[str, Any]:
        """``info`` of case ``i`` alone, as plain Python (what a service logs with the case)."""
        return {k: np.asarray(v)[i].tolist() for k, v in self.info.items()}
