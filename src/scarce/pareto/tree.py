"""The dyadic tree the PCBShift policies learn on: a partition of ``[0, 1]^D`` into bins, with
the per-arm statistics of the samples in every bin.

Every node (bin) keeps, per arm, the count, the sum and the sum of squares of the reward
vectors observed in its cell, *including its descendants' cells*: a sample is added to each
node on its root-to-leaf path, so an ancestor's statistics are the regressogram of its whole
cell and stay current after it splits (what :class:`~scarce.pareto.PCBShift` uses to give a
child its ancestors' estimates). A leaf also keeps the ids of its samples, so that on a split
each child starts with exactly the samples that fall in its cell. Nodes live in flat arrays
that grow by doubling.

Cells are half-open from below: a point on a cell edge belongs to the lower cell
(``ceil(x 2^L) - 1`` at the deepest level ``L``), and 0 belongs to the first cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _grow(arr: np.ndarray, fill: Any = 0) -> np.ndarray:
    extra = np.full_like(arr, fill)
    return np.concatenate([arr, extra])


class DyadicTree:
    """Nodes, statistics and samples of a dyadic partition of ``[0, 1]^D``.

    Parameters
    ----------
    n_arms:
        ``K``.
    n_objectives:
        ``m``.
    dim:
        ``D``.
    max_depth:
        deepest level ``L`` (a level-``h`` bin has width ``2^-h``); cells are indexed at
        this resolution.
    """

    _NODE_ARRAYS = ("lo", "level", "parent", "child", "active", "count", "sum", "sumsq")

    def __init__(self, n_arms: int, n_objectives: int, dim: int, max_depth: int) -> None:
        self.K, self.m, self.D, self.L = n_arms, n_objectives, dim, max_depth
        cap = 64
        self.lo = np.zeros((cap, dim))
        self.level = np.zeros(cap, dtype=np.int64)
        self.parent = np.full(cap, -1, dtype=np.int64)
        self.child = np.full(cap, -1, dtype=np.int64)
        self.active = np.zeros((cap, n_arms), dtype=bool)
        self.count = np.zeros((cap, n_arms), dtype=np.int64)
        self.sum = np.zeros((cap, n_arms, n_objectives))
        self.sumsq = np.zeros((cap, n_arms, n_objectives))
        self.n_nodes = 0
        self.samples: list[list[int]] = []
        self.sx = np.zeros((1024, dim))
        self.sk = np.zeros(1024, dtype=np.int64)
        self.sy = np.zeros((1024, n_objectives))
        self.n_samples = 0
        self._new_node(np.zeros(dim), 0, -1, np.ones(n_arms, dtype=bool))

    # ------------------------------------------------------------------ structure
    def _new_node(self, lo: np.ndarray, level: int, parent: int, active: np.ndarray) -> int:
        i = self.n_nodes
        if i == self.lo.shape[0]:
            for name in self._NODE_ARRAYS:
                fill = -1 if name in ("parent", "child") else 0
                setattr(self, name, _grow(getattr(self, name), fill))
        self.lo[i] = lo
        self.level[i] = level
        self.parent[i] = parent
        self.child[i] = -1
        self.active[i] = active
        self.count[i] = 0
        self.sum[i] = 0.0
        self.sumsq[i] = 0.0
        self.samples.append([])
        self.n_nodes += 1
        return i

    def cells(self, X: np.ndarray) -> np.ndarray:
        """``(n, D)`` integer cell coordinates of contexts ``X`` at the deepest level."""
        scale = float(2**self.L)
        return np.maximum(np.ceil(X * scale) - 1, 0).astype(np.int64)

    def leaf_of_cell(self, cell: list[int]) -> int:
        """The leaf holding the deepest-level cell ``cell`` (``D`` ints)."""
        node, child, level, L = 0, self.child, self.level, self.L
        while child[node] >= 0:
            shift = L - int(level[node]) - 1
            offset = 0
            for d, c in enumerate(cell):
                offset |= ((c >> shift) & 1) << d
            node = int(child[node]) + offset
        return node

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """``(n,)`` leaf of each context of ``X`` ``(n, D)``."""
        return np.array([self.leaf_of_cell(c) for c in self.cells(X).tolist()], dtype=np.int64)

    def path(self, node: int) -> np.ndarray:
        """Node ids from the root down to ``node``."""
        out = [node]
        parent = self.parent
        while parent[out[-1]] >= 0:
            out.append(int(parent[out[-1]]))
        return np.array(out[::-1], dtype=np.int64)

    def is_leaf(self, node: int) -> bool:
        return bool(self.child[node] < 0)

    @property
    def n_leaves(self) -> int:
        return int(np.sum(self.child[: self.n_nodes] < 0))

    @property
    def depth(self) -> int:
        return int(self.level[: self.n_nodes].max())

    # ------------------------------------------------------------------ data
    def add(self, x: np.ndarray, cell: list[int], k: int, y: np.ndarray) -> int:
        """Record reward vector ``y`` of arm ``k`` at context ``x`` (in ``cell``): in the
        statistics of every node on the path and in the leaf's samples. Returns the leaf."""
        i = self.n_samples
        if i == self.sx.shape[0]:
            self.sx, self.sk, self.sy = _grow(self.sx), _grow(self.sk), _grow(self.sy)
        self.sx[i], self.sk[i], self.sy[i] = x, k, y
        self.n_samples += 1
        leaf = self.leaf_of_cell(cell)
        self.samples[leaf].append(i)
        path = self.path(leaf)
        self.count[path, k] += 1
        self.sum[path, k] += y
        self.sumsq[path, k] += y * y
        return leaf

    def split(self, node: int) -> int:
        """Split leaf ``node`` into its ``2^D`` children (each starts with the node's active
        set and the statistics of the node's samples in its cell). Returns the first child's
        id; the children are consecutive, child ``offset`` holding the cells whose bit ``d``
        of the next level is bit ``d`` of ``offset``."""
        D = self.D
        level = int(self.level[node]) + 1
        half = 2.0 ** (-level)
        first = self.n_nodes
        for offset in range(2**D):
            bits = np.array([(offset >> d) & 1 for d in range(D)], dtype=float)
            self._new_node(self.lo[node] + bits * half, level, node, self.active[node].copy())
        self.child[node] = first
        ids = np.asarray(self.samples[node], dtype=np.int64)
        self.samples[node] = []
        if ids.size:
            shift = self.L - level
            cells = self.cells(self.sx[ids])
            which = first + (((cells >> shift) & 1) << np.arange(D)).sum(axis=1)
            for c in range(first, first + 2**D):
                sel = ids[which == c]
                self.samples[c] = sel.tolist()
                if sel.size:
                    k = self.sk[sel]
                    self.count[c] = np.bincount(k, minlength=self.K)
                    np.add.at(self.sum[c], k, self.sy[sel])
                    np.add.at(self.sumsq[c], k, self.sy[sel] ** 2)
        return first

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        """Arrays that rebuild the tree exactly (JSON + npz friendly)."""
        N, S = self.n_nodes, self.n_samples
        owner = np.full(S, -1, dtype=np.int64)
        for node, ids in enumerate(self.samples[:N]):
            if ids:
                owner[ids] = node
        state = {name: getattr(self, name)[:N] for name in self._NODE_ARRAYS}
        state.update({"sx": self.sx[:S], "sk": self.sk[:S], "sy": self.sy[:S], "owner": owner})
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` (the tree's shape parameters are the constructor's)."""
        dtypes = {"level": np.int64, "parent": np.int64, "child": np.int64, "count": np.int64}
        for name in self._NODE_ARRAYS:
            dtype = bool if name == "active" else dtypes.get(name, float)
            setattr(self, name, np.array(state[name], dtype=dtype))
        self.lo = self.lo.reshape(-1, self.D)
        self.active = self.active.reshape(-1, self.K)
        self.count = self.count.reshape(-1, self.K)
        self.sum = self.sum.reshape(-1, self.K, self.m)
        self.sumsq = self.sumsq.reshape(-1, self.K, self.m)
        self.n_nodes = self.lo.shape[0]
        sx = np.array(state["sx"], dtype=float).reshape(-1, self.D)
        sk = np.array(state["sk"], dtype=np.int64).reshape(-1)
        sy = np.array(state["sy"], dtype=float).reshape(-1, self.m)
        self.n_samples = sk.shape[0]
        cap = max(1024, self.n_samples)
        self.sx, self.sk, self.sy = (
            np.zeros((cap, self.D)),
            np.zeros(cap, np.int64),
            np.zeros((cap, self.m)),
        )
        self.sx[: self.n_samples], self.sk[: self.n_samples], self.sy[: self.n_samples] = sx, sk, sy
        owner = np.array(state["owner"], dtype=np.int64).reshape(-1)
        self.samples = [[] for _ in range(self.n_nodes)]
        for sid in np.argsort(owner, kind="stable").tolist():
            if owner[sid] >= 0:
                self.samples[int(owner[sid])].append(sid)
