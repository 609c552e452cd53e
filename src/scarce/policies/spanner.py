"""Exploration over a barycentric spanner of the actions, for catalogs too large to explore
action by action: the large-action-space reduction of Vowpal Wabbit (``--large_action_space``)
after Zhu, Foster, Langford and Mineiro (ICML 2022).

Per case, :class:`SpannerCB`:

1. predicts every candidate's reward with one ridge model on ``phi(x, a) = x * f_a`` (the
   catalog's layout of :mod:`scarce.policies.catalog`; per-case features ``(n, K, d)`` too);
2. keeps a pool: the ``n_candidates`` best predictions (from the catalog's inner-product
   index) plus a spanner of the whole catalog (so early, when every gap is small, the pool
   still spans the catalog; above 65,536 actions, of a seeded sample of that many); every
   allowed action when that is no more;
3. reweights the pool's embeddings by VW's shrink factors
   ``1 / sqrt(1 + r + gamma / (4 r) * gap_a)`` (squarecb only), projects them on the top right
   singular vectors of the catalog (randomized SVD, scikit-learn; rank ``r`` at most
   ``max_actions``, cut where 99% of the singular values' sum is reached, as VW does) and
   computes a ``spanner_c``-approximate barycentric spanner (Awerbuch and Kleinberg 2004);
4. explores over the spanner plus the greedy action: SquareCB's inverse gap weighting
   ``p(a) = 1 / (|S| + gamma (y_best - y_a))`` with ``gamma = gamma_scale * t^gamma_exponent``
   (``t`` the number of updates), the rest on the greedy action; or epsilon-greedy.

Given the state and the context every step is deterministic, so the reported probabilities
are exact for the rule as run (``probability_method = "exact"``); actions outside the survivors
have probability 0. Unlike VW, the greedy action always survives. A barycentric spanner is
invariant under invertible linear maps, so the spanner of ``x * f_a`` is computed on ``f_a``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import lapack
from sklearn.utils.extmath import randomized_svd

from scarce.core.decision import Decision
from scarce.core.random import SeedLike
from scarce.core.validation import check_positive_int, check_scalar
from scarce.policies import register_policy
from scarce.policies.catalog import CatalogDecision, CatalogPolicy

EXPLORATION_RULES = ("squarecb", "epsilon")
# catalogs above this many actions get their SVD basis and catalog-level spanner from a seeded
# sample of this size (the spanner's passes over all rows would cost seconds per catalog change)
_BASIS_SAMPLE = 65_536


def barycentric_spanner(rows: np.ndarray, c: float = 2.0) -> np.ndarray:
    """Row indices (ascending) of a ``c``-approximate barycentric spanner of ``rows`` ``(N, r)``.

    Every row is then a combination of the returned rows with coefficients in ``[-c, c]``
    (Awerbuch and Kleinberg 2004, Proposition 2.4): a basis of rows is grown by maximising the
    determinant one position at a time, then the swap that multiplies the determinant the most
    is made while that factor exceeds ``c`` (at most ``r log_c r`` swaps).

    The growing phase is Gaussian elimination with partial pivoting (LAPACK ``getrf``): with
    rows ``0..i-1`` of the basis chosen and the others still unit vectors, putting row ``a`` at
    position ``i`` multiplies the determinant by ``a``'s residual in column ``i`` after
    eliminating columns ``0..i-1``, and the pivot of column ``i`` is the largest residual. The
    coefficients of every row in that basis are ``L L11^-1`` (``L`` the unit lower factor); a
    swap, rarely needed, multiplies the determinant by ``rows[a] . inv[:, i]`` (matrix
    determinant lemma) and updates the inverse by Sherman-Morrison. Rows spanning fewer than
    ``r`` dimensions give a smaller spanner, computed in their own span.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"rows must be a 2-D (N, r) array; got shape {rows.shape}")
    if c <= 1:
        raise ValueError(f"c must be > 1; got {c}")
    return _spanner(rows, float(c), in_span=False)


def _spanner(rows: np.ndarray, c: float, in_span: bool) -> np.ndarray:
    # (float32 rows are factorised in float32, the pools' case: twice as fast as float64; the
    # swaps, rare, run in float64)
    N, r = rows.shape
    scale = float(np.abs(rows).max(initial=0.0))
    if N == 0 or r == 0 or scale == 0.0:
        return np.zeros(0, dtype=np.int64)
    getrf, trtri = _lapack(rows.dtype)
    lu, piv, _ = getrf(rows)
    perm = list(range(N))
    for i, p in enumerate(piv.tolist()):  # LAPACK's row interchanges, in order
        perm[i], perm[p] = perm[p], perm[i]
    tol = (1e-9 if lu.dtype == np.float64 else 1e-5) * scale
    thin = np.flatnonzero(np.abs(np.diagonal(lu)) <= tol)
    if N < r or thin.size:  # the rows span fewer than r dimensions (or nearly)
        if in_span:  # (already in their own span: keep the well-conditioned part)
            return np.sort(np.array(perm[: int(thin[0]) if thin.size else min(N, r)]))
        rows = rows.astype(np.float64)
        _, s, Vt = np.linalg.svd(rows, full_matrices=False)
        k = int((s > 1e-9 * s[0]).sum())
        return _spanner(rows @ Vt[:k].T, c, in_span=True)
    chosen = np.array(perm[:r])
    L11 = np.tril(lu[:r], -1)
    L11.flat[:: r + 1] = 1.0
    # coefficients of rows r.. (in pivot order) in the chosen basis: L21 L11^-1 (the first r
    # rows are the basis itself). (A triangular inverse and C-ordered operands: scipy's trsm
    # and products with Fortran-ordered operands were 10-100 times slower on a loaded
    # 2-core machine.)
    inv11 = np.ascontiguousarray(trtri(L11, lower=1, unitdiag=1)[0])
    coef = np.ascontiguousarray(lu[r:]) @ inv11
    if np.abs(coef).max(initial=0.0) <= c:
        return np.sort(chosen)
    rows = rows.astype(np.float64)
    basis = rows[chosen].copy()
    inv = np.linalg.inv(basis)

    def put(i: int, a: int) -> None:
        nonlocal inv
        u = rows[a] - basis[i]  # X' = X + e_i u^T
        col = inv[:, i].copy()
        inv = inv - np.outer(col, u @ inv) / (1.0 + u @ col)
        basis[i], chosen[i] = rows[a], a

    for _ in range(int(np.ceil(r * np.log(max(r, 2)) / np.log(c))) + 1):
        gain = np.abs(rows @ inv)  # (N, r): factor of each possible swap
        a, i = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if gain[a, i] <= c:
            break
        put(int(i), int(a))
    return np.unique(chosen)


_LAPACK: dict = {}


def _lapack(dtype: np.dtype) -> tuple[Any, Any]:
    """LAPACK ``getrf`` and ``trtri`` of ``dtype`` (looked up once: the look-up costs as much
    as a small factorisation)."""
    key = np.dtype(dtype)
    if key not in _LAPACK:
        _LAPACK[key] = lapack.get_lapack_funcs(("getrf", "trtri"), (np.zeros(1, dtype=key),))
    return _LAPACK[key]


def igw_probabilities(predictions: np.ndarray, gamma: float) -> np.ndarray:
    """SquareCB's inverse gap weighting over ``predictions`` ``(k,)`` (larger is better):
    ``1 / (k + gamma * gap)`` for each action but the best (lowest index among ties), which
    gets the rest."""
    k = predictions.shape[0]
    best = int(np.argmax(predictions))
    p = 1.0 / (k + gamma * (predictions[best] - predictions))
    p[best] = 0.0
    p[best] = 1.0 - p.sum()
    return p


def numerical_rank(singular_values: np.ndarray, mass: float = 0.99) -> int:
    """Smallest ``r`` whose leading singular values reach ``mass`` of their sum (VW's rule)."""
    s = np.asarray(singular_values, dtype=np.float64)
    if s.size == 0 or s.sum() <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(s) / s.sum(), mass) + 1)


@register_policy
class SpannerCB(CatalogPolicy):
    """SquareCB (or epsilon-greedy) over a barycentric spanner of the catalog (VW's
    ``--large_action_space``); see the module docstring.

    Parameters
    ----------
    max_actions:
        ``r``: largest spanner (VW's ``--max_actions``); the SVD keeps at most this many
        directions.
    spanner_c:
        approximation factor of the spanner, > 1 (VW's ``--spanner_c``).
    exploration:
        ``{"rule": "squarecb", "gamma_scale": 10.0, "gamma_exponent": 0.5}`` (the default) or
        ``{"rule": "epsilon", "epsilon": 0.05}``; a rule name alone takes its defaults.
    n_candidates:
        best-predicted actions put in the pool (from the catalog's index).
    n_actions, n_features, actions, lam, index, backend, device, seed:
        as in :class:`~scarce.policies.catalog.CatalogPolicy`.

    Notes
    -----
    ``Decision.info`` holds ``n_survivors`` (actions with positive probability) and
    ``exact_search``; the decision's ``support`` holds the survivors and their
    probabilities.
    """

    probability_method = "exact"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        actions: str | list | None = None,
        max_actions: int = 50,
        spanner_c: float = 2.0,
        exploration: str | dict | None = None,
        lam: float = 1.0,
        index: dict | None = None,
        backend: str = "numpy",
        device: str = "cpu",
        n_candidates: int = 128,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(
            n_actions=n_actions,
            n_features=n_features,
            actions=actions,
            lam=lam,
            index=index,
            backend=backend,
            device=device,
            seed=seed,
        )
        self.max_actions = max_actions
        self.spanner_c = spanner_c
        self.exploration = exploration
        self.n_candidates = n_candidates

    def _rule_spec(self) -> dict[str, Any]:
        spec = {"rule": "squarecb", "gamma_scale": 10.0, "gamma_exponent": 0.5, "epsilon": 0.05}
        given = self.exploration or {}
        if isinstance(given, str):  # the rule alone (a TOML config's form)
            given = {"rule": given}
        if not isinstance(given, dict) or set(given) - set(spec):
            raise ValueError(
                f"exploration must be a dict with keys among {sorted(spec)}; got {self.exploration!r}"
            )
        spec.update(given)
        if spec["rule"] not in EXPLORATION_RULES:
            raise ValueError(
                f"exploration['rule'] must be one of {EXPLORATION_RULES}; got {spec['rule']!r}"
            )
        check_scalar(spec["gamma_scale"], "exploration['gamma_scale']", low=0.0)
        check_scalar(spec["gamma_exponent"], "exploration['gamma_exponent']", low=0.0)
        check_scalar(spec["epsilon"], "exploration['epsilon']", low=0.0, high=1.0)
        return spec

    def _check_params(self) -> None:
        super()._check_params()
        check_positive_int(self.max_actions, "max_actions")
        check_scalar(self.spanner_c, "spanner_c", low=1.0, low_inclusive=False)
        check_positive_int(self.n_candidates, "n_candidates")
        self._rule_spec()

    # ------------------------------------------------------------------ catalog-level parts
    def _catalog_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """``(V (d, r), spanner ids)`` of the active catalog, cached by catalog version."""
        cat = self.catalog
        cached = getattr(self, "_basis_cache", None)
        if cached is None or cached[0] != cat.version:
            live = np.flatnonzero(cat.active)
            if live.size > _BASIS_SAMPLE:  # a seeded sample stands for a huge catalog
                rng = np.random.default_rng([self._int_seed(), cat.version, 15_485_863])
                live = np.sort(rng.choice(live, _BASIS_SAMPLE, replace=False))
            V = self._svd_basis(cat.features[live])
            ids = live[
                barycentric_spanner(cat.features[live].astype(np.float64) @ V, self.spanner_c)
            ]
            cached = (cat.version, V, ids)
            self._basis_cache = cached
        return cached[1], cached[2]

    def _svd_basis(self, F: np.ndarray) -> np.ndarray:
        """Top right singular vectors ``(d, r)`` of ``F`` (``r`` by :func:`numerical_rank`)."""
        k = min(self.max_actions, *F.shape)
        _, s, Vt = randomized_svd(F.astype(np.float64), k, random_state=self._int_seed())
        r = max(1, numerical_rank(s))
        return np.ascontiguousarray(Vt[:r].T)  # (C order: a product with it is 3x faster)

    def _int_seed(self) -> int:
        return int(self.seed) if isinstance(self.seed, (int, np.integer)) else 0

    def _gamma(self, spec: dict[str, Any]) -> float:
        return float(spec["gamma_scale"] * max(1, self.n_updates_) ** spec["gamma_exponent"])

    # ------------------------------------------------------------------ the distribution
    def _survivors(
        self, pred: np.ndarray, rows: np.ndarray, spec: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Survivor positions and their probabilities for ``n`` pools at once.

        ``pred`` ``(n, W)``: predictions, ``-inf`` at padding (each pool's entries first);
        ``rows`` ``(n, W, r)``: projected embeddings. Returns ``(n, S)`` positions (ascending,
        ``-1`` padding) and probabilities (0 at padding). Only the spanner runs per pool."""
        n, _, r = rows.shape
        every = np.arange(n)
        size = np.isfinite(pred).sum(axis=1)
        best = np.argmax(pred, axis=1)  # (ties: the first, i.e. the lowest id)
        top = pred[every, best]
        gap = np.where(np.isfinite(pred), top[:, None] - pred, 0.0)
        gamma = self._gamma(spec)
        shrink = np.ones_like(gap)
        if spec["rule"] == "squarecb":  # VW's shrink factors
            shrink = np.sqrt(1.0 + r + gamma / (4.0 * r) * gap)
        rows = rows / shrink[:, :, None].astype(rows.dtype)
        keep = np.full((n, r + 1), -1, dtype=np.int64)
        for i in range(n):  # the spanner: one LAPACK factorisation per pool
            m = int(size[i])
            if m <= r:
                k = np.arange(m)
            else:
                k = _spanner(rows[i, :m], float(self.spanner_c), in_span=False)
                if not (k == best[i]).any():
                    k = np.sort(np.append(k, best[i]))
            keep[i, : k.size] = k
        ok = keep >= 0
        k = ok.sum(axis=1)[:, None]
        is_best = keep == best[:, None]
        if spec["rule"] == "squarecb":  # inverse gap weighting (igw_probabilities, batched)
            kept_gap = gap[every[:, None], np.maximum(keep, 0)]
            probs = np.where(ok, 1.0 / (k + gamma * kept_gap), 0.0)
            probs[is_best] = 0.0
            probs[is_best] = 1.0 - probs.sum(axis=1)
        else:
            probs = np.where(ok, spec["epsilon"] / k, 0.0)
            probs[is_best] += 1.0 - spec["epsilon"]
        return keep, probs

    def _distribution(self, X: np.ndarray, eligible: np.ndarray | None):
        """``(pool ids, predictions, survivor ids, probabilities)``: ``(n, W)`` pools (ascending
        ids, ``-1`` / ``-inf`` padding) and ``(n, S)`` survivors (``-1`` / 0 padding)."""
        spec = self._rule_spec()
        theta = self.ridge_.theta[0]
        n = X.shape[0]
        if X.ndim == 3:  # per case: its own actions, their own SVD basis
            parts = []
            for i in range(n):
                pool = (
                    np.arange(self.n_actions) if eligible is None else np.flatnonzero(eligible[i])
                )
                feats = X[i, pool]
                pred = feats @ theta
                keep, probs = self._survivors(
                    pred[None], (feats @ self._svd_basis(feats))[None], spec
                )
                keep, probs = keep[0][keep[0] >= 0], probs[0][keep[0] >= 0]
                parts.append((pool, pred, pool[keep], probs))
            return tuple(
                _padded([p[j] for p in parts], (-1, -np.inf, -1, 0.0)[j]) for j in range(4)
            )
        allowed = self._allowed(eligible)
        cat = self.catalog
        V, global_ids = self._catalog_basis()
        n_allowed = np.broadcast_to(cat.n_active if allowed is None else allowed.sum(axis=1), (n,))
        small = n_allowed <= self.n_candidates + V.shape[1]
        q = X * theta
        large = np.flatnonzero(~small)
        if large.size:  # the index's best predictions plus the catalog's spanner
            sub = None if allowed is None else allowed[large]
            top = cat.search_ids(q[large], self.n_candidates, sub)
            extra = np.broadcast_to(global_ids, (large.size, global_ids.size))
            if sub is not None:
                extra = np.where(sub[:, global_ids], extra, -1)
            found = _sorted_unique(np.concatenate([top, extra], axis=1))
        if large.size == n:
            pool = found
        else:  # some pools as large as the catalog: all of it
            pools = [
                np.flatnonzero(cat.active if allowed is None else allowed[i]) for i in range(n)
            ]
            for j, i in enumerate(large):
                pools[i] = found[j]
            pool = _padded(pools, -1)  # (ascending ids, then -1)
        feats = cat.features[np.maximum(pool, 0)]  # (n, W, d) float32, as stored
        pred = np.where(pool >= 0, np.einsum("nwd,nd->nw", feats, q, dtype=np.float64), -np.inf)
        # (the embeddings in float32: a spanner needs no more, and this product is the
        # costliest step after the search and the spanners)
        rows = (feats.reshape(-1, feats.shape[2]) @ V.astype(np.float32)).reshape(
            *pool.shape, V.shape[1]
        )
        keep, probs = self._survivors(pred, rows, spec)
        survivors = np.where(keep >= 0, pool[np.arange(n)[:, None], np.maximum(keep, 0)], -1)
        return pool, pred, survivors, probs

    def _decide(self, X, eligible):
        n = X.shape[0]
        pool, pred, survivors, probs = self._distribution(X, eligible)
        u = self.rng_.random(n)
        size = (survivors >= 0).sum(axis=1)
        below = np.cumsum(probs, axis=1) <= (u * probs.sum(axis=1))[:, None]
        j = np.minimum(below.sum(axis=1), size - 1)
        every = np.arange(n)
        actions, chosen = survivors[every, j], probs[every, j]
        exact = X.ndim == 3 or self.catalog.kind == "exact"
        info = {"n_survivors": size.astype(float), "exact_search": np.full(n, float(exact))}
        if X.ndim == 3:
            scores = np.full((n, self.n_actions), -np.inf)
            ok = pool >= 0
            scores[np.nonzero(ok)[0], pool[ok]] = pred[ok]
            return Decision(actions, chosen, scores, info=info)
        return CatalogDecision(
            actions,
            chosen,
            pool,
            pred,
            self.n_actions,
            support_fn=lambda: (survivors, probs),
            info=info,
        )

    def _support(self, X, eligible):
        _, _, survivors, probs = self._distribution(X, eligible)
        return survivors, probs


def _padded(arrays: list[np.ndarray], fill: float) -> np.ndarray:
    """Stack 1-D arrays of different lengths into ``(len(arrays), longest)``, padded by ``fill``."""
    width = max(a.size for a in arrays)
    out = np.full((len(arrays), width), fill, dtype=np.result_type(arrays[0], type(fill)))
    for i, a in enumerate(arrays):
        out[i, : a.size] = a
    return out


def _sorted_unique(ids: np.ndarray) -> np.ndarray:
    """Each row's distinct ids ``>= 0`` in ascending order, then ``-1`` padding (``(n, W)``,
    ``W`` the most distinct ids of a row)."""
    none = np.iinfo(np.int64).max
    s = np.sort(np.where(ids >= 0, ids, none), axis=1)
    s[:, 1:][s[:, 1:] == s[:, :-1]] = none
    s = np.sort(s, axis=1)
    s = s[:, : max(1, int((s < none).sum(axis=1).max()))]
    return np.where(s < none, s, -1)


__all__ = ["SpannerCB", "barycentric_spanner", "igw_probabilities", "numerical_rank"]
