"""Policies with vector rewards: the base that takes ``(n, m)`` rewards through ``update``, and
the tree policies (PCBShift, its static-grid version, Pareto UCB without elimination).

Vector rewards
--------------
:class:`scarce.core.policy.Policy.update` validates rewards as ``(n,)``. :class:`VectorPolicy`
overrides ``update`` to validate ``(n, m)`` rewards itself and then calls the same hooks
(``_ensure_initialized``, ``_learn``) as the base, so decisions, persistence and the RNG
discipline are the library's.

Every vector policy reports, in ``Decision.scores``, the probability of each action (so the
support of the policy, its play set, is ``scores > 0``), and offers :meth:`pareto_estimate`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import Policy
from scarce.core.random import SeedLike
from scarce.core.validation import (
    check_actions,
    check_contexts,
    check_finite,
    check_positive_int,
    check_scalar,
)
from scarce.pareto.cones import _TOL, Cone
from scarce.pareto.gaps import _is_orthant


def _cone_matrix(cone: Any, m: int) -> Cone:
    if cone is None:
        return Cone.orthant(m)
    c = cone if isinstance(cone, Cone) else Cone.from_halfspaces(cone)
    if c.dim != m:
        raise ValueError(f"cone must live in R^{m} (n_objectives); got a cone in R^{c.dim}")
    return c


class VectorPolicy(Policy):
    """A policy learning from ``(n, m)`` reward vectors.

    Parameters
    ----------
    n_actions:
        ``K``.
    n_features:
        context dimension ``D``.
    n_objectives:
        ``m``, the length of a reward vector.
    cone:
        the preference cone: a :class:`~scarce.pareto.Cone`, a halfspace matrix ``W``
        (``(rows, m)``, ``C = {x : W x >= 0}``) or None for the orthant ``R^m_+``.
    seed:
        int, Generator or None.
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        n_objectives: int = 2,
        cone: Any = None,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.n_objectives = n_objectives
        self.cone = cone

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        if isinstance(params.get("cone"), Cone):
            params["cone"] = params["cone"].W  # the same cone, in a saveable form
        return params

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.n_objectives, "n_objectives")
        self.cone_ = _cone_matrix(self.cone, int(self.n_objectives))

    def update(
        self,
        X: Any,
        actions: Any = None,
        rewards: Any = None,
        *,
        full_rewards: Any = None,
        **extra: Any,
    ) -> VectorPolicy:
        """Learn from bandit feedback with vector rewards.

        Parameters
        ----------
        X:
            ``(n, D)`` contexts the decisions were made on.
        actions:
            ``(n,)`` chosen action ids.
        rewards:
            ``(n, m)`` reward vectors of the chosen actions (``(n,)`` is accepted when
            ``m = 1``).
        full_rewards:
            not supported (vector policies learn from bandit feedback only).
        """
        if full_rewards is not None:
            raise ValueError(
                f"{type(self).__name__} learns from bandit feedback only; pass actions and rewards"
            )
        if actions is None or rewards is None:
            raise ValueError("update needs actions and (n, m) rewards")
        if extra:
            raise TypeError(
                f"{type(self).__name__}.update got unexpected keyword(s) {sorted(extra)}; accepted: none"
            )
        X = check_contexts(X, self.n_features, self.n_actions)
        n = X.shape[0]
        actions = check_actions(actions, n, self.n_actions)
        m = self.n_objectives
        R = np.asarray(rewards, dtype=np.float64)
        if R.ndim == 1 and m == 1 and R.shape[0] == n:
            R = R[:, None]
        if R.shape != (n, m):
            raise ValueError(
                f"rewards must have shape ({n}, {m}) (one reward vector per case); got {R.shape}"
            )
        check_finite(R, "rewards")
        self._ensure_initialized(X)
        self._learn(X, actions, R, None)
        self.n_updates_ += n
        return self

    def _ensure_initialized(self, X: np.ndarray) -> None:
        if X.ndim != 2:
            raise ValueError(
                f"X must have shape (n, {self.n_features}) (shared contexts); got {X.shape}"
            )
        super()._ensure_initialized(X)

    def play_set(self, X: Any) -> np.ndarray:
        """``(n, K)`` bool: the support of the policy at each context, the next decisions
        being the next rounds (does not change state or the random stream)."""
        return self.action_probabilities(X) > 0

    def pareto_estimate(self, X: Any) -> np.ndarray:
        """``(n, K)`` bool: the policy's estimate of the Pareto set at each context."""
        X = check_contexts(X, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        return self._pareto_estimate(X)

    def _pareto_estimate(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _decision_from_support(
    rng: np.random.Generator, support: np.ndarray, eligible: np.ndarray | None
) -> Decision:
    """Uniform draw on each row's support (restricted to eligible actions; when that is
    empty, uniform over the eligible actions): the ``floor(u * size)``-th arm of the set."""
    if eligible is not None:
        s = support & eligible
        empty = ~s.any(axis=1)
        s[empty] = eligible[empty]
        support = s
    n = support.shape[0]
    size = support.sum(axis=1)
    probs = support / size[:, None]
    k = np.floor(rng.random(n) * size).astype(np.int64)
    if n == 1:  # the hot path of one case per round
        actions = np.flatnonzero(support[0])[k]
    else:
        actions = np.argmax(np.cumsum(support, axis=1) > k[:, None], axis=1)
    return Decision(actions, 1.0 / size, probs)


class _TreeParetoPolicy(VectorPolicy):
    """Shared machinery of the tree policies: a dyadic tree over ``[0, 1]^D`` with per-bin,
    per-arm regressogram statistics, samples redistributed to the children on a split."""

    _eliminate = True
    _ucb_front = False
    _adaptive = True

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
        pairwise: bool = False,
        n_min: int = 2,
        child_init: str = "redistribute",
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
        self.max_depth = max_depth
        self.pairwise = pairwise
        self.n_min = n_min
        self.child_init = child_init

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
        if not isinstance(self.pairwise, bool):
            raise ValueError(f"pairwise must be a bool; got {self.pairwise!r}")
        check_positive_int(self.n_min, "n_min")
        if self.child_init not in ("redistribute", "copy_parent"):
            raise ValueError(
                f"child_init must be 'redistribute' or 'copy_parent'; got {self.child_init!r}"
            )
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

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        K, m, D = self.n_actions, self.n_objectives, self.n_features
        self._log_term = math.log(K * m / self.delta)
        self._n_warm = self.n_warmup_
        self._orthant = _is_orthant(self.cone_)
        self._WT = self.cone_.W.T.copy()
        self._L = self.max_depth_
        self._n_nodes = 0
        cap = 64
        self._lo = np.zeros((cap, D))
        self._level = np.zeros(cap, dtype=np.int64)
        self._child = np.full(cap, -1, dtype=np.int64)
        self._active = np.zeros((cap, K), dtype=bool)
        self._count = np.zeros((cap, K), dtype=np.int64)
        self._sum = np.zeros((cap, K, m))
        self._sumsq = np.zeros((cap, K, m))
        self._play = np.zeros((cap, K), dtype=bool)
        self._samples: list[list[int]] = []
        self._sx = np.zeros((1024, D))
        self._sk = np.zeros(1024, dtype=np.int64)
        self._sy = np.zeros((1024, m))
        self._n_samples = 0
        self._n_splits = 0
        self._new_node(np.zeros(D), 0, np.ones(K, dtype=bool))
        self._refresh(0)
        self._init_grid()

    def _init_grid(self) -> None:
        """Hook for the static grid: pre-split the tree."""

    def _new_node(self, lo: np.ndarray, level: int, active: np.ndarray) -> int:
        i = self._n_nodes
        if i == self._lo.shape[0]:
            grow = self._lo.shape[0]
            self._lo = np.concatenate([self._lo, np.zeros_like(self._lo[:grow])])
            self._level = np.concatenate([self._level, np.zeros(grow, dtype=np.int64)])
            self._child = np.concatenate([self._child, np.full(grow, -1, dtype=np.int64)])
            self._active = np.concatenate([self._active, np.zeros_like(self._active[:grow])])
            self._count = np.concatenate([self._count, np.zeros_like(self._count[:grow])])
            self._sum = np.concatenate([self._sum, np.zeros_like(self._sum[:grow])])
            self._sumsq = np.concatenate([self._sumsq, np.zeros_like(self._sumsq[:grow])])
            self._play = np.concatenate([self._play, np.zeros_like(self._play[:grow])])
        self._lo[i] = lo
        self._level[i] = level
        self._child[i] = -1
        self._active[i] = active
        self._count[i] = 0
        self._sum[i] = 0.0
        self._sumsq[i] = 0.0
        self._play[i] = active
        self._samples.append([])
        self._n_nodes += 1
        return i

    def _cells(self, X: np.ndarray) -> np.ndarray:
        """``(n, D)`` integer cell coordinates at the deepest level; a point on a cell edge
        belongs to the lower cell (``ceil(x 2^L) - 1``)."""
        scale = float(2**self._L)
        return np.maximum(np.ceil(X * scale) - 1, 0).astype(np.int64)

    def _leaf_of_cell(self, cell: list[int]) -> int:
        node, child, level, L = 0, self._child, self._level, self._L
        while child[node] >= 0:
            shift = L - int(level[node]) - 1
            offset = 0
            for d, c in enumerate(cell):
                offset |= ((c >> shift) & 1) << d
            node = int(child[node]) + offset
        return node

    def _leaves(self, X: np.ndarray) -> list[int]:
        return [self._leaf_of_cell(c) for c in self._cells(X).tolist()]

    @staticmethod
    def _check_cube(X: np.ndarray) -> None:
        if X.min() < 0.0 or X.max() > 1.0:
            raise ValueError(
                f"X must lie in [0, 1]^D (contexts of the unit cube); got values in [{X.min()}, {X.max()}]"
            )

    # ------------------------------------------------------------------ statistics
    def _radius(self, node: int, idx: np.ndarray) -> np.ndarray:
        """Sampling part of the confidence radius of arms ``idx`` in ``node``.

        ``sigma sqrt(2 log(K m / delta) / n)`` with a known noise scale; Hoeffding's
        ``sqrt(log(K m / delta) / (2 n))`` for rewards in [0, 1] (``sigma=None``); with
        ``sigma="empirical"`` the known-scale form with the arm's largest per-objective sample
        standard deviation in the bin (floored at 1e-3; infinite radius below 2 samples).
        """
        n = self._count[node, idx]
        n1 = np.maximum(n, 1)
        if self.sigma is None:
            return np.sqrt(self._log_term / (2.0 * n1))
        if self.sigma == "empirical":
            mean = self._sum[node, idx] / n1[:, None]
            var = (self._sumsq[node, idx] - n1[:, None] * mean**2) / np.maximum(n1 - 1, 1)[:, None]
            scale = np.maximum(np.sqrt(np.maximum(var, 0.0)).max(axis=1), 1e-3)
            return np.where(n >= 2, scale * np.sqrt(2.0 * self._log_term / n1), np.inf)
        return self.sigma * np.sqrt(2.0 * self._log_term / n1)

    def _bias(self, node: int) -> float:
        return float(self.c_beta * 2.0 ** (-self.beta * int(self._level[node])))

    def _cone_values(self, diff: np.ndarray) -> np.ndarray:
        """``W d`` for the differences ``diff`` (``(..., m)``); the orthant skips the product."""
        return diff if self._orthant else diff @ self._WT

    def _refresh(self, node: int) -> None:
        """Eliminate arms in ``node`` and recompute its play set (the cached support)."""
        cnt, active = self._count[node], self._active[node]
        play = active & (cnt == 0)
        idx = np.flatnonzero(active & (cnt > 0))
        if idx.size:
            c = cnt[idx]
            mu = self._sum[node, idx] / c[:, None]
            rad = self._radius(node, idx)
            if self._eliminate:
                ok = np.flatnonzero(c >= self.n_min)
                if ok.size > 1:
                    width = (rad[ok] + (0.0 if self.pairwise else self._bias(node)))[:, None]
                    lcb, ucb = mu[ok] - width, mu[ok] + width
                    # out[j, k]: the LCB of j strictly dominates the UCB of k under the cone
                    diff = self._cone_values(lcb[:, None, :] - ucb[None, :, :])
                    out = (diff > 0.0).all(axis=2).any(axis=0)
                    if out.any():
                        active[idx[ok[out]]] = False
                        keep = np.ones(idx.size, dtype=bool)
                        keep[ok[out]] = False
                        idx, mu, rad = idx[keep], mu[keep], rad[keep]
            if self._ucb_front:
                wide = ~np.isfinite(rad)  # no finite upper bound yet: explored like n = 0
                play[idx[wide]] = True
                idx, pts = idx[~wide], mu[~wide] + rad[~wide, None]
            else:
                pts = mu
            # the same test as cones.dominates: weakly dominates (W d >= -tol) and differs
            diff = pts[:, None, :] - pts[None, :, :]
            dom = (self._cone_values(diff) >= -_TOL).all(axis=2) & (diff != 0.0).any(axis=2)
            play[idx[~dom.any(axis=0)]] = True
        self._play[node] = play

    def _should_split(self, node: int) -> bool:
        if not self._adaptive or int(self._level[node]) >= self._L:
            return False
        idx = np.flatnonzero(self._play[node])
        if idx.size == 0 or self._count[node, idx].min() < 1:
            return False
        return bool(self._radius(node, idx).max() <= self._bias(node))

    def _split(self, node: int) -> None:
        D = self.n_features
        level = int(self._level[node]) + 1
        half = 2.0 ** (-level)
        first = self._n_nodes
        for offset in range(2**D):
            bits = np.array([(offset >> d) & 1 for d in range(D)], dtype=float)
            self._new_node(self._lo[node] + bits * half, level, self._active[node].copy())
        self._child[node] = first
        ids = np.asarray(self._samples[node], dtype=np.int64)
        self._samples[node] = []
        if ids.size:
            shift = self._L - level
            cells = self._cells(self._sx[ids])
            child = first + (((cells >> shift) & 1) << np.arange(D)).sum(axis=1)
            for c in range(first, first + 2**D):
                sel = ids[child == c]
                self._samples[c] = sel.tolist()
                if sel.size and self.child_init == "redistribute":
                    k = self._sk[sel]
                    self._count[c] = np.bincount(k, minlength=self.n_actions)
                    np.add.at(self._sum[c], k, self._sy[sel])
                    np.add.at(self._sumsq[c], k, self._sy[sel] ** 2)
        if self.child_init == "copy_parent":
            self._count[first : first + 2**D] = self._count[node]
            self._sum[first : first + 2**D] = self._sum[node]
            self._sumsq[first : first + 2**D] = self._sumsq[node]
        for c in range(first, first + 2**D):
            self._refresh(c)
        self._n_splits += 1

    def _add_sample(self, x: np.ndarray, k: int, y: np.ndarray) -> int:
        i = self._n_samples
        if i == self._sx.shape[0]:
            self._sx = np.concatenate([self._sx, np.zeros_like(self._sx)])
            self._sk = np.concatenate([self._sk, np.zeros_like(self._sk)])
            self._sy = np.concatenate([self._sy, np.zeros_like(self._sy)])
        self._sx[i] = x
        self._sk[i] = k
        self._sy[i] = y
        self._n_samples += 1
        return i

    # ------------------------------------------------------------------ hooks
    def _support(self, X: np.ndarray) -> np.ndarray:
        n, K = X.shape[0], self.n_actions
        out = np.zeros((n, K), dtype=bool)
        t0 = self.n_updates_
        leaves = self._leaves(X)
        for i, leaf in enumerate(leaves):
            if t0 + i < self._n_warm:
                out[i, (t0 + i) % K] = True
            else:
                out[i] = self._play[leaf]
        return out

    def _decide(self, X: np.ndarray, eligible: np.ndarray | None) -> Decision:
        self._check_cube(X)
        return _decision_from_support(self.rng_, self._support(X), eligible)

    def _action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
        self._check_cube(X)
        support = self._support(X)
        if eligible is not None:
            s = support & eligible
            empty = ~s.any(axis=1)
            s[empty] = eligible[empty]
            support = s
        return support / support.sum(axis=1, keepdims=True)

    def _pareto_estimate(self, X: np.ndarray) -> np.ndarray:
        self._check_cube(X)
        return self._play[self._leaves(X)].copy()

    def _learn(self, X, actions, rewards, full_rewards, **extra) -> None:
        self._check_cube(X)
        cells = self._cells(X).tolist()
        for i, cell in enumerate(cells):
            k = int(actions[i])
            leaf = self._leaf_of_cell(cell)  # per row: an earlier row may have split the leaf
            sid = self._add_sample(X[i], k, rewards[i])
            self._samples[leaf].append(sid)
            self._count[leaf, k] += 1
            self._sum[leaf, k] += rewards[i]
            self._sumsq[leaf, k] += rewards[i] ** 2
            self._refresh(leaf)
            if self.n_updates_ + i + 1 > self._n_warm and self._should_split(leaf):
                self._split(leaf)

    # ------------------------------------------------------------------ inspection
    @property
    def n_leaves_(self) -> int:
        """Number of leaves (bins) of the tree."""
        return int(np.sum(self._child[: self._n_nodes] < 0))

    @property
    def depth_(self) -> int:
        """Level of the deepest leaf."""
        return int(self._level[: self._n_nodes].max())

    def leaf_estimates(self, x: Any) -> dict[str, Any]:
        """The bin holding context ``x`` (``(D,)``): its level, bounds, per-arm counts,
        estimated mean vectors (``(K, m)``, NaN for unsampled arms), active set and play set."""
        X = check_contexts(x, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        self._check_cube(X)
        leaf = self._leaves(X[:1])[0]
        cnt = self._count[leaf]
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.where(cnt[:, None] > 0, self._sum[leaf] / cnt[:, None], np.nan)
        lo = self._lo[leaf]
        return {
            "level": int(self._level[leaf]),
            "lower": lo.copy(),
            "upper": lo + 2.0 ** (-int(self._level[leaf])),
            "counts": cnt.copy(),
            "means": mu,
            "active": self._active[leaf].copy(),
            "play": self._play[leaf].copy(),
        }

    # ------------------------------------------------------------------ persistence
    def _get_learned_state(self) -> dict[str, Any]:
        N, S = self._n_nodes, self._n_samples
        owner = np.full(S, -1, dtype=np.int64)
        for node, ids in enumerate(self._samples[:N]):
            if ids:
                owner[ids] = node
        return {
            "lo": self._lo[:N],
            "level": self._level[:N],
            "child": self._child[:N],
            "active": self._active[:N],
            "count": self._count[:N],
            "sum": self._sum[:N],
            "sumsq": self._sumsq[:N],
            "play": self._play[:N],
            "sx": self._sx[:S],
            "sk": self._sk[:S],
            "sy": self._sy[:S],
            "owner": owner,
            "n_splits": self._n_splits,
        }

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self._lo = np.array(state["lo"], dtype=float)
        self._level = np.array(state["level"], dtype=np.int64)
        self._child = np.array(state["child"], dtype=np.int64)
        self._active = np.array(state["active"], dtype=bool)
        self._count = np.array(state["count"], dtype=np.int64)
        self._sum = np.array(state["sum"], dtype=float)
        self._sumsq = np.array(state["sumsq"], dtype=float)
        self._play = np.array(state["play"], dtype=bool)
        self._n_nodes = self._lo.shape[0]
        self._sx = np.array(state["sx"], dtype=float).reshape(-1, self.n_features)
        self._sk = np.array(state["sk"], dtype=np.int64)
        self._sy = np.array(state["sy"], dtype=float).reshape(-1, self.n_objectives)
        self._n_samples = self._sk.shape[0]
        owner = np.array(state["owner"], dtype=np.int64)
        self._samples = [[] for _ in range(self._n_nodes)]
        for sid in np.argsort(owner, kind="stable").tolist():
            if owner[sid] >= 0:
                self._samples[int(owner[sid])].append(sid)
        self._n_splits = int(state["n_splits"])
        if self._sx.shape[0] == 0:  # keep room to grow
            self._sx = np.zeros((1024, self.n_features))
            self._sk = np.zeros(1024, dtype=np.int64)
            self._sy = np.zeros((1024, self.n_objectives))


_TREE_DOC = """
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
        ``T`` if known (sets the default ``max_depth``).
    max_depth:
        deepest level; default ``ceil(log2(T) / (D + 2)) + 2`` with a horizon, else 20.
    pairwise:
        drop the common bias term when comparing arms of the same bin for elimination.
    n_min:
        samples an arm needs in a bin before it may eliminate or be eliminated.
    child_init:
        ``"redistribute"``: a new child's statistics are those of the parent's samples that
        fall in its cell (exact regressograms; arms without samples there are explored
        again); ``"copy_parent"``: every child starts with the parent's counts and sums
        (smoother early play, inflated counts).
    seed:
        int, Generator or None.
"""


class PCBShift(_TreeParetoPolicy):
    __doc__ = (
        """Adaptive-discretisation Pareto elimination (Shukla & Kumar 2025, "PCBShift").

    A dyadic tree over ``[0, 1]^D``. Each bin keeps, per arm, the count and the sum of the
    reward vectors observed in it (a regressogram estimate of the arm's mean vector over the
    bin) and an active set. Per round, after a round-robin warm-up at the root: find the
    leaf of the context; play uniformly on the estimated Pareto front (under the cone) of
    the active arms' mean estimates, plus any active arm not yet sampled in the bin. After
    the update, an active arm is eliminated from the bin when some other arm's lower
    confidence vector strictly dominates its upper one (confidence radius = sampling radius
    + bias ``c_beta V_h^beta``); the bin splits into ``2^D`` children when the largest
    sampling radius of its play set falls below its bias. Children inherit the active set
    and the samples that fall in their cell.
"""
        + _TREE_DOC
    )


class StaticGridPCB(_TreeParetoPolicy):
    __doc__ = (
        """PCBShift on a fixed grid: the tree is split to ``grid_level`` up front (``2^(D
    grid_level)`` bins) and never refined; elimination and play as in :class:`PCBShift`.
"""
        + _TREE_DOC
        + """    grid_level:
        level of the fixed grid; default ``ceil(log2(T) / (D + 2))`` with a horizon, else 3
        (``max_depth`` is ignored: the grid is the tree).
"""
    )

    _adaptive = False

    def __init__(self, *, grid_level: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.grid_level = grid_level

    @classmethod
    def _param_names(cls) -> list[str]:
        return [*_TreeParetoPolicy._param_names(), "grid_level"]

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
        if self.grid_level is not None:
            return int(self.grid_level)
        if self.horizon is not None:
            return max(1, math.ceil(math.log2(max(self.horizon, 2)) / (self.n_features + 2)))
        return 3

    @property
    def max_depth_(self) -> int:
        return self.grid_level_

    def _init_grid(self) -> None:
        frontier = [0]
        for _ in range(self.grid_level_):
            nxt = []
            for node in frontier:
                self._split(node)
                first = int(self._child[node])
                nxt.extend(range(first, first + 2**self.n_features))
            frontier = nxt
        self._n_splits = 0


class ParetoUCB(_TreeParetoPolicy):
    __doc__ = (
        """Pareto UCB on the adaptive tree, without elimination: in the context's bin, play
    uniformly on the Pareto front (under the cone) of the arms' upper confidence vectors
    ``mean + radius`` (every arm stays active). Splitting as in :class:`PCBShift`.
"""
        + _TREE_DOC
    )

    _eliminate = False
    _ucb_front = True
