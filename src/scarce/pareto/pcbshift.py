"""PCBShift (Shukla & Kumar 2025) and its relatives on a dyadic tree over ``[0, 1]^D``:
the adaptive policy, a static grid and Pareto UCB without elimination.

The rules (spec ``vector-preference-shift.md`` §B.6, with the corrections of issue 15)
--------------------------------------------------------------------------------------
* **Warm-up**: round robin for ``n_warm`` rounds; the samples go into the tree, nothing splits.
* **Confidence box** of arm ``k`` in a bin ``A`` of level ``h``: its mean ``mu_A`` (regressogram
  of the samples in ``A``'s cell) plus or minus ``w_A = rad(n_A) + c_beta 2^(-h beta)``, the
  sampling radius plus the bias of the bin. The box holds ``mu_k(x)`` for every ``x`` in ``A``
  (the Hölder condition bounds the variation over the bin by the bias term).
* **Estimates in a leaf**: "children are endowed with mean reward estimates and set of active
  arms from their parents", and the paper's quantities are those of the bin (its
  regressogram, eqs. 3-4). Per arm, the estimate is that of the deepest bin on the path from
  the root to the leaf that has one (a finite width ``w_A``): the leaf's own regressogram as
  soon as the leaf holds a sample of the arm, the nearest ancestor's until then. (Choosing
  the estimate of smallest width instead kept a coarser ancestor's bin average, biased for
  the leaf, until the leaf had about ``(rad_1 / bias)^2`` samples: near the edges of the
  Pareto regions the leaf then played the coarser bin's front; issue 15.) The arm's
  confidence box is the intersection of the path's boxes (each holds ``mu_k(x)`` for ``x``
  in the leaf), so elimination uses every ancestor's confidence set. A split thus costs no
  re-exploration: a child starts where its parent was. (The static grid uses each bin's own
  samples only.)
* **Exploration**: an active arm with no estimate at all is played; so is an active arm
  without a sample in the leaf's ancestor at level ``explore_depth`` (the leaf itself when it
  is shallower). Every bin of that level thus samples every active arm once, which finds
  arms that are good only where they were never tried (source-phase data elsewhere may
  make them look dominated); deeper bins only inherit.
* **Elimination** (in ``update``): arm ``k`` leaves the leaf's active set when another active
  arm's lower box corner strictly dominates ``k``'s upper corner under the cone, i.e. ``k`` is
  dominated everywhere in the leaf. Every arm with an estimate takes part (an arm that left
  the empirical front after one sample too). Permanent; children inherit it.
* **Play set** (the support): the Pareto front (under the cone) of the active arms'
  estimates, plus the arms to explore; play is uniform on it.
* **Split**: "a bin is partitioned when the uncertainty due to sampling is lower than bin
  width", the width measured in rewards through the Hölder condition: a leaf of level
  ``h < max_depth`` splits into its ``2^D`` children when every arm of its play set has a
  sample in it and the largest sampling radius among them is at most the bias
  ``c_beta 2^(-h beta)`` (with ``c_beta = beta = 1``, literally "radius <= width").

``decide`` and ``action_probabilities`` only read the tree; elimination and splits happen
in ``update``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_positive_int, check_scalar
from scarce.pareto.cones import DOMINANCE_TOL
from scarce.pareto.policy import VectorPolicy, restrict, support_decision
from scarce.pareto.tree import DyadicTree
from scarce.policies import register_policy


class _TreePolicy(VectorPolicy):
    """Shared machinery: parameters, the per-leaf rules, decisions, learning, persistence."""

    _eliminate = True
    _ucb_front = False
    _adaptive = True
    #: defaults of the parameters only some subclasses take
    max_depth: int | None = None
    explore_depth: int | None = None
    #: estimate from the leaf's own samples only (the static grid), not the root path
    _own_only = False

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        n_objectives: int = 2,
        cone: Any = None,
        delta: float = 0.05,
        beta: float = 1.0,
        c_beta: float = 1.0,
        sigma: float | str | None = None,
        warmup: str | int = "paper",
        horizon: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            n_objectives=n_objectives,
            cone=cone,
            seed=seed,
        )
        self.delta = delta
        self.beta = beta
        self.c_beta = c_beta
        self.sigma = sigma
        self.warmup = warmup
        self.horizon = horizon

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(
            self.delta, "delta", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
        )
        check_scalar(self.beta, "beta", low=0.0, high=1.0, low_inclusive=False)
        check_scalar(self.c_beta, "c_beta", low=0.0)
        if isinstance(self.sigma, str):
            if self.sigma != "empirical":
                raise ValueError(
                    f"sigma must be a float > 0, 'empirical' or None; got {self.sigma!r}"
                )
        elif self.sigma is not None:
            check_scalar(self.sigma, "sigma", low=0.0, low_inclusive=False)
        if self.horizon is not None:
            check_positive_int(self.horizon, "horizon")
        if self.max_depth is not None:
            check_positive_int(self.max_depth, "max_depth", minimum=0)
            if self.max_depth > 40:
                raise ValueError(f"max_depth must be <= 40; got {self.max_depth}")
        if self.explore_depth is not None:
            check_positive_int(self.explore_depth, "explore_depth", minimum=0)
        if isinstance(self.warmup, str):
            if self.warmup not in ("paper", "short"):
                raise ValueError(
                    f"warmup must be 'paper', 'short' or an int >= 0; got {self.warmup!r}"
                )
        else:
            check_positive_int(self.warmup, "warmup", minimum=0)

    @property
    def n_warmup_(self) -> int:
        """Round-robin rounds: ``ceil(8 K log(K 2^D / delta))`` ("paper"), ``2K`` ("short")."""
        K, D = self.n_actions, self.n_features
        if self.warmup == "paper":
            return math.ceil(8 * K * math.log(K * 2**D / self.delta))
        if self.warmup == "short":
            return 2 * K
        return int(self.warmup)

    @property
    def max_depth_(self) -> int:
        """Deepest level: ``ceil(log2(T) / (D + 2)) + 2`` with a horizon, else 20."""
        if self.max_depth is not None:
            return int(self.max_depth)
        if self.horizon is not None:
            return math.ceil(math.log2(max(self.horizon, 2)) / (self.n_features + 2)) + 2
        return 20

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        # a warm-up shorter than the checks' first rounds, so they see the tree's rules; the
        # checks feed every configuration the first one's rewards, so m is the same
        return [
            {"n_objectives": 2, "warmup": 2, "sigma": 0.1},
            {"n_objectives": 2, "warmup": "short", "cone": [[-0.6, 1.0], [1.0, -0.6]]},
        ]

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        K, m = self.n_actions, self.n_objectives
        self._log_term = math.log(K * m / self.delta)
        # radius = coef / sqrt(n): Hoeffding's for [0, 1] rewards, or the known noise scale's
        self._rad_coef = (
            math.sqrt(self._log_term / 2.0)
            if self.sigma is None or self.sigma == "empirical"
            else float(self.sigma) * math.sqrt(2.0 * self._log_term)
        )
        self._n_warm = self.n_warmup_
        self._orthant = self.cone_.is_orthant
        self._WT = self.cone_.W.T.copy()
        self.tree_ = DyadicTree(K, m, self.n_features, self.max_depth_)
        self._n_splits = 0
        self._init_grid()

    def _init_grid(self) -> None:
        """Hook for the static grid: pre-split the tree."""

    @staticmethod
    def _check_cube(X: np.ndarray) -> None:
        if X.min() < 0.0 or X.max() > 1.0:
            raise ValueError(
                f"X must lie in [0, 1]^D (contexts of the unit cube); got values in "
                f"[{X.min()}, {X.max()}]"
            )

    # ------------------------------------------------------------------ estimates
    def _radius(self, count: np.ndarray, sums: np.ndarray, sumsq: np.ndarray | None) -> np.ndarray:
        """Sampling radius for statistics ``count`` ``(..., K)``, ``sums`` and ``sumsq``
        ``(..., K, m)``: Hoeffding's ``sqrt(log(K m / delta) / (2 n))`` (``sigma=None``),
        ``sigma sqrt(2 log(K m / delta) / n)``, or that with the arm's largest per-objective
        sample standard deviation (``"empirical"``, floored at 1e-3; infinite below 2
        samples). Infinite without samples."""
        if self.sigma == "empirical":
            n = count.astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = sums / n[..., None]
                var = (sumsq - n[..., None] * mean**2) / (n[..., None] - 1.0)
                sd = np.maximum(np.sqrt(np.maximum(var, 0.0)).max(axis=-1), 1e-3)
                rad = np.where(n >= 2, sd * np.sqrt(2.0 * self._log_term / n), np.inf)
            return rad
        rad = self._rad_coef / np.sqrt(np.maximum(count, 1))
        rad[count == 0] = np.inf
        return rad

    def _bias(self, level: np.ndarray) -> np.ndarray:
        """Hölder bias ``c_beta 2^(-h beta)`` of bins of level ``h``."""
        return self.c_beta * 2.0 ** (-self.beta * np.asarray(level, dtype=float))

    def _leaf_estimates(self, leaf: int) -> dict[str, np.ndarray]:
        """Per arm of ``leaf``: ``mean`` ``(K, m)`` (NaN without data), ``width`` ``(K,)`` of
        that estimate, box corners ``lcb``/``ucb`` ``(K, m)`` and the leaf's own sampling
        radius ``own`` ``(K,)`` (see the module docstring)."""
        t = self.tree_
        nodes = np.array([leaf]) if self._own_only else t.path(leaf)
        cnt, sums = t.count[nodes], t.sum[nodes]  # (P, K), (P, K, m)
        rad = self._radius(cnt, sums, t.sumsq[nodes] if self.sigma == "empirical" else None)
        width = rad + self._bias(t.level[nodes])[:, None]
        mean = sums / np.maximum(cnt, 1)[..., None]
        P, K = cnt.shape
        # the deepest bin with an estimate (the leaf itself when no bin has one: width inf)
        best = P - 1 - np.argmax(np.isfinite(width[::-1]), axis=0)
        arms = np.arange(K)
        w = width[..., None]  # an infinite width gives an infinite box: no constraint
        chosen = width[best, arms]
        est = mean[best, arms]
        est[~np.isfinite(chosen)] = np.nan
        return {
            "mean": est,
            "width": chosen,
            "lcb": (mean - w).max(axis=0),
            "ucb": (mean + w).min(axis=0),
            "own": rad[-1],
        }

    def _cone_values(self, diff: np.ndarray) -> np.ndarray:
        """``W d`` for the differences ``diff`` (``(..., m)``); the orthant skips the product."""
        return diff if self._orthant else diff @ self._WT

    def _front(self, points: np.ndarray) -> np.ndarray:
        """``(P,)`` bool: rows of ``points`` no other row dominates (as ``cones.dominates``)."""
        diff = points[:, None, :] - points[None, :, :]
        dom = (self._cone_values(diff) >= -DOMINANCE_TOL).all(axis=2) & (diff != 0.0).any(axis=2)
        return ~dom.any(axis=0)

    def _leaf_support(self, leaf: int, est: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """``(K,)`` bool play set of ``leaf`` from the current statistics."""
        est = self._leaf_estimates(leaf) if est is None else est
        active = self.tree_.active[leaf]
        known = active & np.isfinite(est["width"])
        play = active & ~known  # active arms without any estimate are explored
        t = self.tree_
        level = int(t.level[leaf])
        if self.explore_depth is not None and level > 0:
            # ... and so is every active arm without a sample in the leaf's ancestor at the
            # exploration depth (the leaf itself above it)
            anc = leaf
            for _ in range(level - min(level, int(self.explore_depth))):
                anc = int(t.parent[anc])
            play |= active & (t.count[anc] == 0)
        idx = np.flatnonzero(known)
        if idx.size:
            pts = est["ucb"][idx] if self._ucb_front else est["mean"][idx]
            play[idx[self._front(pts)]] = True
        return play

    def _eliminate_in(self, leaf: int, est: dict[str, np.ndarray]) -> None:
        active = self.tree_.active[leaf]
        idx = np.flatnonzero(active & np.isfinite(est["width"]))
        if idx.size < 2:
            return
        # beats[j, k]: the lower corner of j strictly dominates the upper corner of k
        diff = self._cone_values(est["lcb"][idx][:, None, :] - est["ucb"][idx][None, :, :])
        beats = (diff > 0.0).all(axis=2)
        np.fill_diagonal(beats, False)  # an empty box (data against the Hölder bound) aside
        out = beats.any(axis=0)
        if not out.all():  # boxes that contradict each other never empty the active set
            active[idx[out]] = False

    def _should_split(self, leaf: int, est: dict[str, np.ndarray]) -> bool:
        t = self.tree_
        if not self._adaptive or int(t.level[leaf]) >= t.L:
            return False
        play = self._leaf_support(leaf, est)
        rad = est["own"][play]
        return bool(rad.size and rad.max() <= self._bias(t.level[leaf]))

    # ------------------------------------------------------------------ hooks
    def _support(self, X: np.ndarray) -> np.ndarray:
        self._check_cube(X)
        n, K = X.shape[0], self.n_actions
        out = np.zeros((n, K), dtype=bool)
        t0 = self.n_updates_
        if n == 1 and t0 >= self._n_warm:  # the hot path of one case per round
            out[0] = self._leaf_support(self.tree_.leaf_of_cell(self.tree_.cells(X)[0].tolist()))
            return out
        rows = np.arange(n)
        warm = t0 + rows < self._n_warm
        out[rows[warm], (t0 + rows[warm]) % K] = True
        if not warm.all():
            leaves = self.tree_.leaves(X[~warm])
            for leaf in np.unique(leaves):
                out[rows[~warm][leaves == leaf]] = self._leaf_support(int(leaf))
        return out

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        return support_decision(self.rng_, self._support(X), eligible)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        support = restrict(self._support(X), eligible)
        return support / support.sum(axis=1, keepdims=True)

    def _pareto_estimate(self, X: np.ndarray) -> np.ndarray:
        self._check_cube(X)
        leaves = self.tree_.leaves(X)
        return np.array([self._leaf_support(int(leaf)) for leaf in leaves], dtype=bool)

    def _learn(self, X, actions, rewards, full_rewards, **extra) -> None:
        """Add each case's sample(s) to the tree, then eliminate and split in its leaf.
        Full-information feedback (``full_rewards`` ``(n, K, m)``) adds a sample of every
        arm."""
        self._check_cube(X)
        K = self.n_actions
        t = self.tree_
        for i, cell in enumerate(t.cells(X).tolist()):
            if full_rewards is not None:
                for k in range(K):
                    leaf = t.add(X[i], cell, k, full_rewards[i, k])
            else:
                leaf = t.add(X[i], cell, int(actions[i]), rewards[i])
            est = self._leaf_estimates(leaf)
            if self._eliminate:
                self._eliminate_in(leaf, est)
            if self.n_updates_ + i + 1 > self._n_warm and self._should_split(leaf, est):
                t.split(leaf)
                self._n_splits += 1

    # ------------------------------------------------------------------ inspection
    @property
    def n_leaves_(self) -> int:
        """Number of leaves (bins) of the tree."""
        return self.tree_.n_leaves

    @property
    def depth_(self) -> int:
        """Level of the deepest leaf."""
        return self.tree_.depth

    def leaf_estimates(self, x: Any) -> dict[str, Any]:
        """The bin holding context ``x`` (``(D,)``): its ``level``, ``lower`` and ``upper``
        corners, per-arm ``counts`` and ``means`` of its own samples (``(K, m)``, NaN for
        unsampled arms), the ``estimates`` the rules use (own or inherited), the ``active``
        set and the ``play`` set."""
        X = check_contexts(x, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        self._check_cube(X)
        t = self.tree_
        leaf = int(t.leaves(X[:1])[0])
        cnt = t.count[leaf]
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(cnt[:, None] > 0, t.sum[leaf] / cnt[:, None], np.nan)
        lo = t.lo[leaf]
        est = self._leaf_estimates(leaf)
        return {
            "level": int(t.level[leaf]),
            "lower": lo.copy(),
            "upper": lo + 2.0 ** (-int(t.level[leaf])),
            "counts": cnt.copy(),
            "means": mu,
            "estimates": est["mean"],
            "active": t.active[leaf].copy(),
            "play": self._leaf_support(leaf, est),
        }

    # ------------------------------------------------------------------ persistence
    def _get_learned_state(self) -> dict[str, Any]:
        return {"tree": self.tree_.get_state(), "n_splits": self._n_splits}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.tree_.set_state(state["tree"])
        self._n_splits = int(state["n_splits"])


_PARAMS_DOC = """
    Parameters
    ----------
    n_actions:
        ``K`` arms.
    n_features:
        ``D``; contexts must lie in ``[0, 1]^D``.
    n_objectives:
        ``m``; rewards are ``(n, m)``.
    cone:
        preference cone (:class:`~scarce.pareto.Cone`, a halfspace matrix ``W`` or None for
        the orthant).
    delta:
        confidence level in (0, 1); the log term is ``log(K m / delta)``.
    beta, c_beta:
        Hölder exponent in (0, 1] and constant of the mean functions (sup-norm); the bias
        term of a level-``h`` bin is ``c_beta * 2^(-h beta)``.
    sigma:
        known sub-Gaussian noise scale (radius ``sigma sqrt(2 log(K m / delta) / n)``),
        None for rewards in [0, 1] (Hoeffding radius ``sqrt(log(K m / delta) / (2 n))``), or
        ``"empirical"``: the known-scale form with the arm's sample standard deviation in the
        bin (largest over objectives, floored at 1e-3; it includes the mean's variation over
        the bin, so it errs wide), infinite below 2 samples.
    warmup:
        round-robin rounds: ``"paper"`` ``ceil(8 K log(K 2^D / delta))``, ``"short"`` ``2K``,
        or an int.
    horizon:
        ``T`` if known (sets the default depth).
    seed:
        int, Generator or None.
"""

_MAX_DEPTH_DOC = """    max_depth:
        deepest level; default ``ceil(log2(T) / (D + 2)) + 2`` with a horizon, else 20.
"""

_EXPLORE_DOC = """    explore_depth:
        level down to which a bin samples every active arm it has no sample of (None: only
        arms without any estimate on the root path are explored).
"""


class _AdaptiveTreePolicy(_TreePolicy):
    """A tree that splits as it learns (PCBShift, ParetoUCB): the tree's parameters plus
    ``max_depth`` and ``explore_depth``."""

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        n_objectives: int = 2,
        cone: Any = None,
        delta: float = 0.05,
        beta: float = 1.0,
        c_beta: float = 1.0,
        sigma: float | str | None = None,
        warmup: str | int = "paper",
        horizon: int | None = None,
        max_depth: int | None = None,
        explore_depth: int | None = 2,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            n_objectives=n_objectives,
            cone=cone,
            delta=delta,
            beta=beta,
            c_beta=c_beta,
            sigma=sigma,
            warmup=warmup,
            horizon=horizon,
            seed=seed,
        )
        self.max_depth = max_depth
        self.explore_depth = explore_depth


@register_policy
class PCBShift(_AdaptiveTreePolicy):
    __doc__ = (
        """Adaptive-discretisation Pareto elimination (Shukla & Kumar 2025, "PCBShift").

    A dyadic tree over ``[0, 1]^D`` whose bins keep regressogram estimates of every arm's
    mean reward vector and an active set; after a round-robin warm-up, each case plays
    uniformly on the estimated Pareto front (under the cone) of its leaf, a leaf using its
    nearest ancestor's estimate of an arm until it holds a sample of that arm, and ``update``
    eliminates arms dominated everywhere in the leaf and splits the leaf once the sampling
    radius of its front falls below its bias. The rules are in :mod:`scarce.pareto.pcbshift`. ``Decision.info``
    carries the support (``"support"``, ``(n, K)`` bool).
"""
        + _PARAMS_DOC
        + _MAX_DEPTH_DOC
        + _EXPLORE_DOC
    )


@register_policy
class StaticGridPCB(_TreePolicy):
    __doc__ = (
        """PCBShift's elimination and play rules on a fixed grid: the tree is split to
    ``grid_level`` up front (``2^(D grid_level)`` bins) and never refined; each bin uses its
    own samples only (every active arm without one is explored).
"""
        + _PARAMS_DOC
        + """    grid_level:
        level of the grid; default ``ceil(log2(T) / (D + 2))`` with a horizon, else 3.
"""
    )

    _adaptive = False
    _own_only = True

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        n_objectives: int = 2,
        cone: Any = None,
        delta: float = 0.05,
        beta: float = 1.0,
        c_beta: float = 1.0,
        sigma: float | str | None = None,
        warmup: str | int = "paper",
        horizon: int | None = None,
        grid_level: int | None = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            n_objectives=n_objectives,
            cone=cone,
            delta=delta,
            beta=beta,
            c_beta=c_beta,
            sigma=sigma,
            warmup=warmup,
            horizon=horizon,
            seed=seed,
        )
        self.grid_level = grid_level

    def _check_params(self) -> None:
        super()._check_params()
        if self.grid_level is not None:
            check_positive_int(self.grid_level, "grid_level", minimum=0)
            if self.n_features * self.grid_level > 16:
                raise ValueError(
                    f"grid_level * n_features must be <= 16 (bins); got {self.grid_level}"
                )

    @property
    def grid_level_(self) -> int:
        """The grid's level (see ``grid_level``)."""
        if self.grid_level is not None:
            return int(self.grid_level)
        if self.horizon is not None:
            return max(1, math.ceil(math.log2(max(self.horizon, 2)) / (self.n_features + 2)))
        return 3

    @property
    def max_depth_(self) -> int:
        return self.grid_level_

    def _init_grid(self) -> None:
        t = self.tree_
        frontier = [0]
        for _ in range(self.grid_level_):
            nxt = []
            for node in frontier:
                first = t.split(node)
                nxt.extend(range(first, first + 2**self.n_features))
            frontier = nxt


@register_policy
class ParetoUCB(_AdaptiveTreePolicy):
    __doc__ = (
        """Pareto UCB on the adaptive tree, without elimination: in the context's leaf, play
    uniformly on the Pareto front (under the cone) of the arms' upper confidence corners
    (every arm stays active). Estimates and splits as in :class:`PCBShift`.
"""
        + _PARAMS_DOC
        + _MAX_DEPTH_DOC
        + _EXPLORE_DOC
    )

    _eliminate = False
    _ucb_front = True
