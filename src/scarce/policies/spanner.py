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
    """Row indices of a ``c``-approximate barycentric spanner of ``rows`` ``(N, r)``.

    Every row is then a combination of the returned rows with coefficients in ``[-c, c]``
    (Awerbuch and Kleinberg 2004, Proposition 2.4): a basis of rows is grown by maximising the
    determinant one position at a time, then the swap that multiplies the determinant the most
    is made while that factor exceeds ``c`` (at most ``r log_c r`` swaps). By the matrix
    determinant lemma, putting row ``a`` at position ``i`` multiplies the determinant by
    ``rows[a] . inv[:, i]``; the inverse follows each swap by a Sherman-Morrison update. Rows
    spanning fewer than ``r`` dimensions give a smaller spanner, computed in their own span.
    """
    N, r = rows.shape
    if c <= 1:
        raise ValueError(f"c must be > 1; got {c}")
    basis, inv = np.eye(r), np.eye(r)
    chosen = np.full(r, -1, dtype=np.int64)
    tol = 1e-9 * max(float(np.abs(rows).max(initial=0.0)), 1e-300)

    def put(i: int, a: int) -> None:
        nonlocal inv
        u = rows[a] - basis[i]  # X' = X + e_i u^T
        col = inv[:, i].copy()
        inv = inv - np.outer(col, u @ inv) / (1.0 + u @ col)
        basis[i], chosen[i] = rows[a], a

    for i in range(r):
        vol = np.abs(rows @ inv[:, i])
        a = int(np.argmax(vol))
        if vol[a] <= tol:  # nothing adds volume: the rows span i dimensions only
            if i == 0:
                return np.zeros(0, dtype=np.int64)
            _, _, Vt = np.linalg.svd(rows[chosen[:i]], full_matrices=False)
            return barycentric_spanner(rows @ Vt.T, c)
        put(i, a)
    inv = np.linalg.inv(basis)  # drop the round-off of r rank-one updates
    for _ in range(int(np.ceil(r * np.log(max(r, 2)) / np.log(c))) + 1):
        gain = np.abs(rows @ inv)  # (N, r): factor of each possible swap
        a, i = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if gain[a, i] <= c:
            break
        put(int(i), int(a))
    return np.unique(chosen)


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

    ``Decision.info``: ``n_survivors`` (actions with positive probability) and ``exact_search``.
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
        n_candidates: int = 256,
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
        return Vt[:r].T

    def _int_seed(self) -> int:
        return int(self.seed) if isinstance(self.seed, (int, np.integer)) else 0

    def _gamma(self, spec: dict[str, Any]) -> float:
        return float(spec["gamma_scale"] * max(1, self.n_updates_) ** spec["gamma_exponent"])

    # ------------------------------------------------------------------ one case
    def _case(
        self, pool: np.ndarray, pred: np.ndarray, rows: np.ndarray, spec: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Survivor positions in ``pool`` and their probabilities, for predictions ``pred``
        and projected embeddings ``rows`` ``(P, r)`` of the pool."""
        r = rows.shape[1]
        best = int(np.argmax(pred))
        gamma = self._gamma(spec)
        if pool.shape[0] <= r:
            keep = np.arange(pool.shape[0])
        else:
            if spec["rule"] == "squarecb":
                shrink = np.sqrt(1.0 + r + gamma / (4.0 * r) * (pred[best] - pred))
                rows = rows / shrink[:, None]
            keep = np.union1d(barycentric_spanner(rows, self.spanner_c), [best])
        if spec["rule"] == "squarecb":
            probs = igw_probabilities(pred[keep], gamma)
        else:
            probs = np.full(keep.shape[0], spec["epsilon"] / keep.shape[0])
            probs[np.flatnonzero(keep == best)[0]] += 1.0 - spec["epsilon"]
        return keep, probs

    def _distribution(self, X: np.ndarray, eligible: np.ndarray | None):
        """Per case: ``(pool ids (P,), predictions (P,), survivor ids, probabilities)``."""
        spec = self._rule_spec()
        theta = self.ridge_.theta[0]
        out = []
        if X.ndim == 3:
            for i in range(X.shape[0]):
                pool = (
                    np.arange(self.n_actions) if eligible is None else np.flatnonzero(eligible[i])
                )
                feats = X[i, pool]
                pred = feats @ theta
                rows = feats @ self._svd_basis(feats)
                keep, probs = self._case(pool, pred, rows, spec)
                out.append((pool, pred, pool[keep], probs))
            return out
        allowed = self._allowed(eligible)
        cat = self.catalog
        V, global_ids = self._catalog_basis()
        n_allowed = cat.n_active if allowed is None else allowed.sum(axis=1)
        small = np.broadcast_to(n_allowed <= self.n_candidates + V.shape[1], (X.shape[0],))
        if not small.all():
            _, top = cat.search(X * theta, self.n_candidates, allowed)
        for i in range(X.shape[0]):
            ok = cat.active if allowed is None else allowed[i]
            if small[i]:
                pool = np.flatnonzero(ok)
            else:
                pool = np.union1d(top[i][top[i] >= 0], global_ids[ok[global_ids]])
            feats = cat.rows(pool)
            pred = (X[i] * feats) @ theta
            keep, probs = self._case(pool, pred, feats @ V, spec)
            out.append((pool, pred, pool[keep], probs))
        return out

    def _decide(self, X, eligible):
        n = X.shape[0]
        dist = self._distribution(X, eligible)
        actions = np.empty(n, dtype=np.int64)
        probs = np.empty(n)
        u = self.rng_.random(n)
        for i, (_, _, ids, p) in enumerate(dist):
            j = min(int(np.searchsorted(np.cumsum(p), u[i] * p.sum(), side="right")), p.size - 1)
            actions[i], probs[i] = ids[j], p[j]
        exact = X.ndim == 3 or self.catalog.kind == "exact"
        info = {
            "n_survivors": np.array([float(d[2].size) for d in dist]),
            "exact_search": np.full(n, float(exact)),
        }
        width = max(d[0].size for d in dist)
        cand_ids = np.full((n, width), -1, dtype=np.int64)
        cand_s = np.full((n, width), -np.inf)
        for i, (pool, pred, _, _) in enumerate(dist):
            cand_ids[i, : pool.size], cand_s[i, : pool.size] = pool, pred
        if X.ndim == 3:
            scores = np.full((n, self.n_actions), -np.inf)
            for i, (pool, pred, _, _) in enumerate(dist):
                scores[i, pool] = pred
            return Decision(actions, probs, scores, info=info)
        return CatalogDecision(actions, probs, cand_ids, cand_s, self.n_actions, info=info)

    def _action_probabilities(self, X, eligible):
        out = np.zeros((X.shape[0], self.n_actions))
        for i, (_, _, ids, p) in enumerate(self._distribution(X, eligible)):
            out[i, ids] = p
        return out


__all__ = ["SpannerCB", "barycentric_spanner", "igw_probabilities", "numerical_rank"]
