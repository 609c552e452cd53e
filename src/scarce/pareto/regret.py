"""Per-round regrets and diagnostics for vector rewards, vectorised over rounds.

All functions take the true mean vectors ``means`` of shape ``(n, K, m)`` (one row per round,
strictly positive) and boolean arm sets of shape ``(n, K)``.

Which set the preference regret compares
----------------------------------------
The spec's eq. (2) sums ``d(P_pi(X_t), P*(X_t))`` with ``P_pi`` the arms of the policy's
support that no other arm of the support dominates, under the true means. Read literally,
any policy with full support (uniform random play included) has ``P_pi = P*`` and zero
regret. :func:`preference_regret` therefore applies ``d`` to the support itself by default
(``filtered=False``): with ``kind="set_gap"`` the round's regret is the largest gap of an arm
the policy may play. ``filtered=True`` gives the literal reading, for comparison.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from scarce.pareto.cones import Cone, dominates
from scarce.pareto.gaps import check_positive, gaps


def _check_inputs(means: np.ndarray, sets: dict[str, np.ndarray]) -> np.ndarray:
    means = np.asarray(means, dtype=float)
    if means.ndim != 3:
        raise ValueError(f"means must have shape (n, K, m); got {means.shape}")
    check_positive(means, "means")
    n, K, _ = means.shape
    for name, s in sets.items():
        if s.shape != (n, K) or s.dtype != bool:
            raise ValueError(
                f"{name} must be a bool array of shape ({n}, {K}); got {s.dtype} {s.shape}"
            )
        if not s.any(axis=1).all():
            raise ValueError(f"{name} must hold at least one arm per round")
    return means


def round_gaps(means: np.ndarray, cone: Cone) -> np.ndarray:
    """``(n, K)`` gap of every arm relative to all arms, per round (the orthant's closed form
    vectorised over rounds; the exact MILP per round for any other cone)."""
    means = _check_inputs(means, {})
    if cone.is_orthant:
        ratios = means[:, None, :, :] / means[:, :, None, :]  # [t, k, j, :] = mu_j / mu_k
        return np.log(np.maximum(1.0, ratios.min(axis=3).max(axis=2)))
    return np.array([gaps(row, cone) for row in means])


def pareto_sets(means: np.ndarray, cone: Cone) -> np.ndarray:
    """``(n, K)`` bool: the Pareto set of each round (boundary differences dominate)."""
    means = _check_inputs(means, {})
    dom = dominates(means[:, :, None, :], means[:, None, :, :], cone)  # [t, j, k]
    return ~dom.any(axis=1)


def _filter(means: np.ndarray, support: np.ndarray, cone: Cone) -> np.ndarray:
    dom = dominates(means[:, :, None, :], means[:, None, :, :], cone) & support[:, :, None]
    return support & ~dom.any(axis=1)


def preference_regret(
    means: np.ndarray,
    support: np.ndarray,
    cone: Cone,
    *,
    kind: Literal["set_gap", "log_hausdorff"] = "set_gap",
    filtered: bool = False,
    round_gap: np.ndarray | None = None,
) -> np.ndarray:
    """``(n,)`` per-round preference regret ``d(S_t, P*(X_t))``.

    Parameters
    ----------
    means:
        ``(n, K, m)`` true means.
    support:
        ``(n, K)`` bool, the arms the policy may play in each round.
    cone:
        the preference cone.
    kind:
        ``"set_gap"``: ``max_{k in S} gap(k | P*)`` (the other half of the set gap is 0, no
        arm strictly dominating a Pareto-optimal one); ``"log_hausdorff"``: the Hausdorff
        distance with base metric ``||log p - log q||_inf``.
    filtered:
        replace ``S_t`` by its non-dominated arms under the true means (the literal eq. (2)).
    round_gap:
        ``(n, K)`` precomputed :func:`round_gaps` (saves recomputing them).
    """
    means = _check_inputs(means, {"support": support})
    if filtered:
        support = _filter(means, support, cone)
    if kind == "set_gap":
        g = round_gaps(means, cone) if round_gap is None else round_gap
        return np.where(support, g, 0.0).max(axis=1)
    if kind == "log_hausdorff":
        star = pareto_sets(means, cone)
        logm = np.log(means)
        d = np.abs(logm[:, :, None, :] - logm[:, None, :, :]).max(axis=3)  # [t, p, q]
        to_star = np.where(star[:, None, :], d, np.inf).min(axis=2)  # [t, p]: p to P*
        from_star = np.where(support[:, :, None], d, np.inf).min(axis=1)  # [t, q]: q to S
        return np.maximum(
            np.where(support, to_star, 0.0).max(axis=1), np.where(star, from_star, 0.0).max(axis=1)
        )
    raise ValueError(f"kind must be 'set_gap' or 'log_hausdorff'; got {kind!r}")


def played_regret(
    means: np.ndarray, actions: np.ndarray, cone: Cone, round_gap: np.ndarray | None = None
) -> np.ndarray:
    """``(n,)`` gap of the played arm (the classical Pareto regret of each round)."""
    g = round_gaps(means, cone) if round_gap is None else round_gap
    actions = np.asarray(actions)
    if actions.shape != (g.shape[0],):
        raise ValueError(f"actions must have shape ({g.shape[0]},); got {actions.shape}")
    return g[np.arange(g.shape[0]), actions]


def front_f1(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(n,)`` F1 score of each estimated Pareto set against the true one (0 if disjoint)."""
    if estimate.shape != truth.shape or estimate.dtype != bool or truth.dtype != bool:
        raise ValueError(
            f"estimate and truth must be bool arrays of one shape; got {estimate.shape}, {truth.shape}"
        )
    tp = (estimate & truth).sum(axis=1)
    prec = tp / np.maximum(estimate.sum(axis=1), 1)
    rec = tp / np.maximum(truth.sum(axis=1), 1)
    with np.errstate(invalid="ignore"):
        return np.where(tp > 0, 2 * prec * rec / (prec + rec), 0.0)


def decision_support(decision: Any) -> np.ndarray:
    """``(n, K)`` bool: the set each action of ``decision`` was drawn from.

    ``decision.info["support"]`` where the policy reports it (every vector policy of
    :mod:`scarce.pareto` does). Otherwise: the chosen action alone where it was chosen with
    probability 1, else every action with a finite score (what a uniform policy such as
    :class:`~scarce.policies.Random` may play: its ineligible actions score ``-inf``); for a
    randomised policy whose scores are finite on actions it never plays, this overstates
    its support, so such a policy should report ``info["support"]``.
    """
    given = decision.info.get("support")
    if given is not None:
        return np.asarray(given, dtype=bool)
    scores = np.asarray(decision.scores)
    support = np.isfinite(scores)
    sure = np.asarray(decision.probabilities) >= 1.0 - 1e-12
    if sure.any():
        rows = np.flatnonzero(sure)
        support[rows] = False
        support[rows, np.asarray(decision.actions)[rows]] = True
    return support
