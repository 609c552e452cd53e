"""A catalog of action features and the maximum-inner-product index that searches it.

Thompson sampling turns "best action" into ``argmax_a <q, f_a>`` for a sampled query ``q``;
with a million actions that is a maximum-inner-product search (MIPS). :class:`ActionCatalog`
holds the ``(K, m)`` features in ``K`` fixed slots (ids are stable: removing an action frees
its slot, adding fills a free one), keeps an index in step with every change, and answers
``search(queries, k, eligible)`` with the ``k`` best active, eligible actions, their scores
recomputed exactly in float64.

Two index kinds (:class:`IndexSpec`):

* ``"exact"``: every score through an :class:`~scarce.models.backend.ArrayBackend` (NumPy or
  torch), chunked over actions;
* ``"ivf"``: faiss ``IndexIVFFlat`` (the ``large`` extra) on the MIPS-to-nearest-neighbour
  reduction of Bachrach et al. (2014): each ``f`` becomes ``[f, sqrt(R^2 - |f|^2)]`` with
  ``R`` the largest norm, each query ``[q, 0]``, so the nearest neighbour in L2 is the largest
  inner product. Only ``nprobe`` of the ``nlist`` cells are scanned: approximate, deterministic.
  An added action longer than ``R`` forces a rebuild. The index's own memory is the float32
  vectors plus one coordinate, ids and centroids (about 1.05x the float32 features).

``"auto"`` is exact up to ``exact_below`` active actions and IVF above. A saved catalog stores
the features, the active mask and the IVF centroids (never a pickled index); loading re-adds
the vectors to the same cells, so searches after loading return what they returned before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scarce.models.backend import ArrayBackend

INDEX_KINDS = ("auto", "exact", "ivf")


@dataclass(frozen=True)
class IndexSpec:
    """How a catalog is searched.

    Attributes
    ----------
    kind:
        ``"auto"`` (exact up to ``exact_below`` active actions, IVF above), ``"exact"`` or ``"ivf"``.
    exact_below:
        largest number of active actions searched exactly under ``"auto"``.
    nlist:
        IVF cells; None: ``4 sqrt(n_active)`` (between 1 and 65,536).
    nprobe:
        IVF cells scanned per query (more: slower, closer to exact).
    train_per_cell:
        k-means training points per cell (a seeded sample of the active actions).
    """

    kind: str = "auto"
    exact_below: int = 100_000
    nlist: int | None = None
    nprobe: int = 32
    train_per_cell: int = 32

    @classmethod
    def from_param(cls, value: Any, name: str = "index") -> IndexSpec:
        """Build from a policy parameter: None (defaults), a kind (``"ivf"``) or a dict of the
        attributes above (a TOML config can give the kind as a string)."""
        if value is None:
            return cls()
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, dict):
            raise ValueError(
                f"{name} must be None, an index kind {INDEX_KINDS} or a dict of index settings; got {value!r}"
            )
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"{name} has unknown key(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}"
            )
        spec = cls(**value)
        if spec.kind not in INDEX_KINDS:
            raise ValueError(f"{name}['kind'] must be one of {INDEX_KINDS}; got {spec.kind!r}")
        for key, low in (("exact_below", 0), ("nprobe", 1), ("train_per_cell", 1)):
            v = getattr(spec, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name}[{key!r}] must be an int >= {low}; got {v!r}")
        if spec.nlist is not None and (
            isinstance(spec.nlist, bool)
            or not isinstance(spec.nlist, (int, np.integer))
            or spec.nlist < 1
        ):
            raise ValueError(f"{name}['nlist'] must be None or an int >= 1; got {spec.nlist!r}")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _faiss() -> Any:
    try:
        import faiss
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            "an 'ivf' index needs faiss: pip install 'scarce[large]' (faiss-cpu)"
        ) from exc
    return faiss


class _IVF:
    """faiss IVF-Flat on the MIPS-to-L2 augmented vectors (see the module docstring)."""

    def __init__(self, dim: int, spec: IndexSpec) -> None:
        self.dim, self.spec = dim, spec
        self.radius = 0.0
        self.index: Any = None

    def _augment(self, F: np.ndarray) -> np.ndarray:
        sq = np.einsum("ij,ij->i", F, F, dtype=np.float64)
        extra = np.sqrt(np.maximum(self.radius**2 - sq, 0.0))
        return np.hstack([F, extra[:, None]]).astype(np.float32)

    def _empty(self, centroids: np.ndarray) -> None:
        faiss = _faiss()
        quantizer = faiss.IndexFlatL2(self.dim + 1)
        quantizer.add(centroids)
        index = faiss.IndexIVFFlat(quantizer, self.dim + 1, centroids.shape[0])
        index.is_trained = True
        index.nprobe = min(self.spec.nprobe, centroids.shape[0])
        self.index, self._quantizer = index, quantizer  # the quantizer must outlive the index

    def build(self, F: np.ndarray, ids: np.ndarray, seed: int) -> None:
        """Train cells on a seeded sample of the ``F[ids]`` rows and add them all."""
        faiss = _faiss()
        rows = F[ids]
        self.radius = float(np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64).max()))
        self.radius *= 1.0 + 1e-6
        n = rows.shape[0]
        nlist = self.spec.nlist or int(np.clip(round(4 * np.sqrt(n)), 1, 65_536))
        nlist = min(nlist, n)
        rng = np.random.default_rng([seed, n, 104_729])
        m = min(n, nlist * self.spec.train_per_cell)
        sample = self._augment(rows[np.sort(rng.choice(n, m, replace=False))])
        km = faiss.Kmeans(self.dim + 1, nlist, niter=10, seed=int(seed) % (2**31), verbose=False)
        km.cp.min_points_per_centroid = 1
        km.train(sample)
        self._empty(np.ascontiguousarray(km.centroids, dtype=np.float32))
        self.add(F, ids)

    def restore(self, F: np.ndarray, ids: np.ndarray, centroids: np.ndarray, radius: float) -> None:
        self.radius = float(radius)
        self._empty(np.ascontiguousarray(centroids, dtype=np.float32))
        self.add(F, ids)

    def fits(self, rows: np.ndarray) -> bool:
        """Whether these rows can be added without a rebuild (norms within the radius)."""
        return bool(np.einsum("ij,ij->i", rows, rows, dtype=np.float64).max() <= self.radius**2)

    def add(self, F: np.ndarray, ids: np.ndarray) -> None:
        if ids.size:
            self.index.add_with_ids(self._augment(F[ids]), ids.astype(np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if ids.size:
            self.index.remove_ids(ids.astype(np.int64))

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        Q = np.hstack([queries, np.zeros((queries.shape[0], 1))]).astype(np.float32)
        _, ids = self.index.search(Q, int(k))
        return ids

    def centroids(self) -> np.ndarray:
        return self._quantizer.reconstruct_n(0, self._quantizer.ntotal)

    def memory_bytes(self) -> int:
        ntotal, nlist = int(self.index.ntotal), int(self.index.nlist)
        return ntotal * ((self.dim + 1) * 4 + 8) + nlist * (self.dim + 1) * 4


class ActionCatalog:
    """``capacity`` slots of ``dim`` action features, the active ones searchable by inner product.

    Parameters
    ----------
    capacity:
        ``K``, the number of action ids (slots); fixed.
    dim:
        ``m``, features per action.
    spec:
        how to search (:class:`IndexSpec`).
    backend:
        array backend of exact search.
    seed:
        seeds the IVF training sample and k-means (builds are reproducible).
    """

    def __init__(
        self, capacity: int, dim: int, spec: IndexSpec, backend: ArrayBackend, seed: int = 0
    ) -> None:
        self.capacity, self.dim, self.spec, self.backend, self.seed = (
            capacity,
            dim,
            spec,
            backend,
            seed,
        )
        self.features = np.zeros((capacity, dim), dtype=np.float32)
        self.active = np.zeros(capacity, dtype=bool)
        self.version = 0  # bumped on every change (users cache derived data by it)
        self._ivf: _IVF | None = None
        self._held: Any = None  # the backend's copy of the features
        self._count = (-1, 0)  # (version, active actions)

    # ------------------------------------------------------------------ changes
    def _rows(self, features: Any, name: str) -> np.ndarray:
        F = np.asarray(features, dtype=np.float64)
        if F.ndim != 2 or F.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (k, {self.dim}); got {F.shape}")
        if not np.isfinite(F).all():
            raise ValueError(f"{name} contains NaN or inf")
        return F.astype(np.float32)

    def set(self, features: Any) -> np.ndarray:
        """Replace the catalog: rows go to slots ``0..k-1``; other slots become free."""
        F = self._rows(features, "features")
        if F.shape[0] > self.capacity:
            raise ValueError(
                f"features has {F.shape[0]} rows, more than n_actions={self.capacity} slots"
            )
        self.features[:] = 0.0
        self.features[: F.shape[0]] = F
        self.active[:] = False
        self.active[: F.shape[0]] = True
        self._changed(rebuild=True)
        return np.arange(F.shape[0])

    def add(self, features: Any, ids: Any = None) -> np.ndarray:
        """Put ``features`` ``(k, m)`` in free slots (``ids``, or the lowest free ones); returns the ids."""
        F = self._rows(features, "features")
        free = np.flatnonzero(~self.active)
        if ids is None:
            if F.shape[0] > free.size:
                raise ValueError(
                    f"no room for {F.shape[0]} actions: {free.size} of n_actions={self.capacity} "
                    "slots are free (remove actions or construct with a larger n_actions)"
                )
            ids = free[: F.shape[0]]
        else:
            ids = self._ids(ids, "ids")
            if ids.shape[0] != F.shape[0]:
                raise ValueError(
                    f"ids must have one id per row of features ({F.shape[0]}); got {ids.shape[0]}"
                )
            if self.active[ids].any() or np.unique(ids).size != ids.size:
                raise ValueError("ids must be distinct free slots; some are active or repeated")
        self.features[ids] = F
        self.active[ids] = True
        rebuild = self._ivf is None or not self._ivf.fits(F)
        if not rebuild:
            self._ivf.add(self.features, ids)  # type: ignore[union-attr]
        self._changed(rebuild=rebuild)
        return ids

    def remove(self, ids: Any) -> None:
        """Free the slots ``ids`` (they are never returned by a search again)."""
        ids = self._ids(ids, "ids")
        if not self.active[ids].all():
            raise ValueError(
                f"ids must be active actions; {ids[~self.active[ids]].tolist()} are not"
            )
        self.active[ids] = False
        self.features[ids] = 0.0
        if self._ivf is not None:
            self._ivf.remove(ids)
        self._changed(rebuild=False)

    def _ids(self, ids: Any, name: str) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(ids))
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a 1-D array of integer action ids; got {arr!r}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.capacity):
            raise ValueError(f"{name} must be in [0, {self.capacity}); got {arr.tolist()}")
        return arr.astype(np.int64)

    def _changed(self, rebuild: bool) -> None:
        self.version += 1
        self._held = None
        if rebuild:
            self._ivf = None

    # ------------------------------------------------------------------ queries
    @property
    def n_active(self) -> int:
        """Active actions (counted once per catalog version)."""
        if self._count[0] != self.version:
            self._count = (self.version, int(self.active.sum()))
        return self._count[1]

    @property
    def kind(self) -> str:
        """The index searches use now: ``"exact"`` or ``"ivf"``."""
        if self.spec.kind == "auto":
            return "exact" if self.n_active <= self.spec.exact_below else "ivf"
        return self.spec.kind

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """float64 features of ``ids`` (any shape; a trailing ``m`` axis is added)."""
        return self.features[ids].astype(np.float64)

    def _ensure(self) -> None:
        if self.kind == "exact":
            self._ivf = None  # (an "auto" catalog that shrank below exact_below)
        elif self._ivf is None:
            self._ivf = _IVF(self.dim, self.spec)
            self._ivf.build(self.features, np.flatnonzero(self.active), self.seed)

    def held(self) -> Any:
        if self._held is None:
            self._held = self.backend.put(self.features)
        return self._held

    def exact_topk(
        self, queries: np.ndarray, k: int, eligible: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` ``(n, k)`` by exact search over active (and eligible) actions."""
        allowed = self.active if eligible is None else eligible & self.active[None, :]
        return self.backend.topk(queries, self.held(), k, allowed=allowed)

    def _rescore(self, queries: np.ndarray, ids: np.ndarray, ok: np.ndarray):
        """Exact float64 scores of ``ids`` ``(n, k)`` (``-inf`` where not ``ok``), re-sorted."""
        rows = self.rows(np.maximum(ids, 0))
        scores = np.where(ok, np.einsum("nm,nkm->nk", queries, rows), -np.inf)
        order = np.lexsort((ids, -scores), axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        ids = np.where(np.isfinite(scores), np.take_along_axis(ids, order, axis=1), -1)
        return scores, ids

    def search(
        self, queries: np.ndarray, k: int, eligible: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best active, eligible actions per query, best first.

        Parameters
        ----------
        queries:
            ``(n, m)`` float64 query vectors.
        k:
            how many per query.
        eligible:
            optional ``(n, K)`` bool mask.

        Returns
        -------
        scores, ids:
            ``(n, k)``: float64 inner products recomputed exactly from the features, and int64
            ids (``-1`` and ``-inf`` where fewer than ``k`` actions qualify). With the IVF index
            the set is approximate; a case whose fetched candidates hold fewer than ``k``
            eligible actions is searched exactly.
        """
        if self.n_active == 0:
            raise ValueError("the catalog has no active actions: set or add actions first")
        self._ensure()
        if self._ivf is None:
            _, ids = self.exact_topk(queries, k, eligible)
            return self._rescore(queries, ids, ids >= 0)
        n = queries.shape[0]
        fetch = k if eligible is None else min(self.n_active, 4 * k + 16)
        ids = self._ivf.search(queries, fetch)
        ok = ids >= 0
        if eligible is not None:
            ok &= eligible[np.arange(n)[:, None], np.maximum(ids, 0)]
        scores, ids = self._rescore(queries, ids, ok)
        scores, ids = scores[:, :k], ids[:, :k]
        short = np.flatnonzero((ids < 0).any(axis=1))
        if short.size:  # too few eligible among the candidates: search those cases exactly
            _, i2 = self.exact_topk(
                queries[short], k, None if eligible is None else eligible[short]
            )
            scores[short], ids[short] = self._rescore(queries[short], i2, i2 >= 0)
        return scores, ids

    def search_ids(
        self, queries: np.ndarray, k: int, eligible: np.ndarray | None = None
    ) -> np.ndarray:
        """The ids of :meth:`search` as a set, in no particular order: with the IVF index and
        no mask, the index's answer without the exact rescoring that only orders it."""
        if self.n_active == 0 or eligible is not None:
            return self.search(queries, k, eligible)[1]
        self._ensure()
        if self._ivf is None:
            return self.exact_topk(queries, k)[1]
        return self._ivf.search(queries, k)

    def memory_bytes(self) -> int:
        """Bytes of the index beyond the features themselves (0 for exact NumPy search)."""
        self._ensure()
        if self._ivf is not None:
            return self._ivf.memory_bytes()
        return 0 if self.backend.name == "numpy" else int(self.features.nbytes)

    # ------------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "features": self.features,
            "active": self.active,
            "version": self.version,
        }
        if self._ivf is not None:
            state["ivf"] = {"centroids": self._ivf.centroids(), "radius": self._ivf.radius}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        F = np.asarray(state["features"], dtype=np.float32)
        if F.shape != (self.capacity, self.dim):
            raise ValueError(
                f"state['features'] must have shape ({self.capacity}, {self.dim}); got {F.shape}"
            )
        self.features = F.copy()
        self.active = np.asarray(state["active"], dtype=bool).copy()
        self.version = int(state["version"])
        self._count = (-1, 0)  # (the loaded mask may differ at the same version number)
        self._held, self._ivf = None, None
        if "ivf" in state:
            self._ivf = _IVF(self.dim, self.spec)
            self._ivf.restore(
                self.features,
                np.flatnonzero(self.active),
                np.asarray(state["ivf"]["centroids"]),
                float(state["ivf"]["radius"]),
            )
