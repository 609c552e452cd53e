"""The decision of a catalog policy: no ``(n, K)`` array unless one is read
(:class:`CatalogDecision`, returned by :mod:`scarce.policies.catalog` and
:mod:`scarce.policies.spanner` for ``(n, d)`` contexts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scarce.core.decision import Decision


class CatalogDecision(Decision):
    """A :class:`Decision` that never holds an ``(n, K)`` array unless one is read.

    Its ``scores`` are built on first access from the few actions the policy scored (``-inf``
    elsewhere): a million-action row costs 8 MB per case, which a decision that never reads
    it should not pay. Its :attr:`support` is the sparse form of the choice distribution,
    what a log of the decision should keep.

    Parameters
    ----------
    actions : numpy.ndarray
        ``(n,)`` chosen actions.
    probabilities : numpy.ndarray or None
        ``(n,)`` probabilities of the chosen actions, or None to compute them on first
        access with ``probability_fn``.
    candidate_ids : numpy.ndarray
        ``(n, C)`` int64 ids of the scored actions (``-1`` where a case has fewer).
    candidate_scores : numpy.ndarray
        ``(n, C)`` their scores.
    n_actions : int
        ``K``, the width of the dense ``scores``.
    probability_fn : callable, optional
        computes ``probabilities`` on first access.
    support_fn : callable, optional
        computes :attr:`support` on first access; without it the support is read from the
        chosen actions and their probabilities (right for a deterministic rule only).
    info : dict, optional
        as in :class:`Decision`.
    """

    __slots__ = ("_cand_ids", "_cand_scores", "_dense", "_n_actions", "_support", "_support_fn")

    def __init__(
        self,
        actions: np.ndarray,
        probabilities: np.ndarray | None,
        candidate_ids: np.ndarray,
        candidate_scores: np.ndarray,
        n_actions: int,
        *,
        probability_fn: Callable[[], np.ndarray] | None = None,
        support_fn: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
        info: dict[str, np.ndarray] | None = None,
    ) -> None:
        self._cand_ids, self._cand_scores, self._n_actions = (
            candidate_ids,
            candidate_scores,
            n_actions,
        )
        self._dense: np.ndarray | None = None
        self._support: tuple[np.ndarray, np.ndarray] | None = None
        self._support_fn = support_fn
        super().__init__(
            actions,
            probabilities,
            None,
            probability_fn=probability_fn,
            info=info,  # type: ignore[arg-type]
        )

    @property
    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, probabilities)`` ``(n, s)``: each case's actions with positive probability
        (ascending ids, ``-1`` padding) and their probabilities (0 at the padding), as
        :meth:`CatalogPolicy.action_support` reports them for the state at decision time."""
        if self._support is None:
            if self._support_fn is None:
                self._support = (self.actions[:, None], self.probabilities[:, None])
            else:
                self._support = self._support_fn()
                self._support_fn = None
        return self._support

    @property  # type: ignore[override]
    def scores(self) -> np.ndarray:
        if self._dense is None:
            n = self.actions.shape[0]
            dense = np.full((n, self._n_actions), -np.inf)
            ok = self._cand_ids >= 0
            rows = np.broadcast_to(np.arange(n)[:, None], self._cand_ids.shape)
            dense[rows[ok], self._cand_ids[ok]] = self._cand_scores[ok]
            self._dense = dense
        return self._dense

    @scores.setter
    def scores(self, value: Any) -> None:  # Decision.__init__ assigns None: built lazily
        pass


__all__ = ["CatalogDecision"]
