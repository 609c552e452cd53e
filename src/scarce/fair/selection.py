"""The base level's selection rule, vectorised over many quota tables at once.

Within each (group, resource), the ``n_{k,r}`` eligible members with the largest scores get
the resource; resources are served in decreasing order of budget and nobody gets two resources
in one round (spec §A.3). Scores are fixed within a round, so each resource's order is a sort by
(group, -score, random tie-break) computed once; a candidate's picks are then the first
``n_{k,r}`` eligible positions of each group block, found with one cumulative sum. Running many
candidate quota tables side by side is what makes the meta level's rollouts cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SortedScores:
    """Per-resource orders of a cohort.

    Attributes
    ----------
    perm: ``(R, n)`` positions of the cohort's members sorted by (group, -score, tie-break).
    group_at: ``(R, n)`` group of the member at each sorted position.
    block_start: ``(R, n)`` sorted position where that member's group block starts.
    """

    perm: np.ndarray
    group_at: np.ndarray
    block_start: np.ndarray


def sort_scores(
    scores: np.ndarray,
    groups: np.ndarray,
    rng: np.random.Generator | None = None,
    *,
    tiebreak: np.ndarray | None = None,
) -> SortedScores:
    """Orders for ``scores`` ``(n, R)`` of members with ``groups`` ``(n,)``. Ties go to the
    lower ``tiebreak`` ``(n,)``: random keys from ``rng`` when given, else the member index."""
    n, R = scores.shape
    if tiebreak is None:
        tiebreak = np.arange(n) if rng is None else None
    perm = np.empty((R, n), dtype=np.int64)
    for r in range(R):
        keys = rng.random(n) if tiebreak is None else tiebreak
        perm[r] = np.lexsort((keys, -scores[:, r], groups))
    group_at = groups[perm]
    block_start = np.empty_like(perm)
    idx = np.arange(n)
    for r in range(R):
        new = np.ones(n, dtype=bool)
        new[1:] = group_at[r, 1:] != group_at[r, :-1]
        block_start[r] = np.maximum.accumulate(np.where(new, idx, 0))
    return SortedScores(perm, group_at, block_start)


def quota_round(
    sorted_scores: SortedScores,
    quotas: np.ndarray,
    last: np.ndarray,
    t: int,
    cooldowns: np.ndarray,
    order: np.ndarray,
) -> np.ndarray:
    """One round of the base level for ``C`` quota tables.

    Parameters
    ----------
    sorted_scores: from :func:`sort_scores`.
    quotas: ``(C, K, R)`` ints, members of group k to serve with resource r.
    last: ``(C, n, R)`` round each member last received each resource (updated in place).
    t: the round.
    cooldowns: ``(R,)``.
    order: resources in the order they are served.

    Returns
    -------
    ``(C, n, R)`` bool, who gets what.
    """
    C, n, R = last.shape
    served = np.zeros((C, n), dtype=bool)
    take = np.zeros((C, n, R), dtype=bool)
    zeros = np.zeros((C, 1), dtype=np.int64)
    for r in order:
        p = sorted_scores.perm[r]
        elig = ((t - last[:, :, r]) > cooldowns[r]) & ~served
        e = elig[:, p]
        cs = np.concatenate([zeros, np.cumsum(e, axis=1)], axis=1)
        rank = cs[:, 1:] - cs[:, sorted_scores.block_start[r]]
        pick = e & (rank <= quotas[:, sorted_scores.group_at[r], r])
        got = np.zeros((C, n), dtype=bool)
        got[:, p] = pick
        take[:, :, r] = got
        served |= got
        last[:, :, r][got] = t
    return take
