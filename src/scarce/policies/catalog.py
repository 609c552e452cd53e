"""Thompson sampling and UCB over a catalog of up to millions of actions with features.

The action set is the catalog: ``K`` slots (``n_actions``) of ``d`` features each
(``n_features``), given as the ``actions`` parameter (a ``.npy`` path or a nested list) or
through :meth:`CatalogPolicy.set_actions`, :meth:`~CatalogPolicy.add_actions` and
:meth:`~CatalogPolicy.remove_actions`. Contexts are user vectors ``x`` ``(n, d)``; the reward
model is linear in the elementwise product, ``E[r | x, a] = (x * f_a) . theta``, so scoring
every action is one inner product with the query ``q = x * theta`` and "best action" is a
maximum-inner-product search (:mod:`scarce.models.mips`). (``x = 1`` gives the context-free
catalog bandit ``f_a . theta``; append ones to ``x`` and copies of ``f`` to mix both.)
Per-action features given per case, ``(n, K, d)``, are scored exactly as in
:class:`~scarce.policies.LinTS` / :class:`~scarce.policies.LinUCB`.

* :class:`CatalogTS` draws ``theta~ ~ N(theta_hat, v^2 A^{-1})`` per case and asks the index
  for ``argmax_a (x * theta~) . f_a``. Its choice probability is a Monte-Carlo estimate of
  the rule as run (index included), from ``propensity_samples`` draws of a separate stream.
* :class:`CatalogUCB`: the width ``sqrt(phi^T A^{-1} phi)`` is no inner product, so the index
  proposes candidates (the top ``n_candidates`` for the mean query) and the candidates' UCBs
  are computed exactly. Each decision carries a certificate: the chosen action is the exact
  UCB argmax whenever its UCB beats ``mu_M + alpha * R * max|x| / sqrt(lambda_min(A))``
  (``mu_M`` the last candidate's mean, ``R`` the longest feature vector), an upper bound on the
  UCB of every action the (exact) mean search did not return. Cases left uncertified are
  searched again at the ends of the ``n_directions`` longest axes of the confidence
  ellipsoid, and choose among both candidate sets.

Decisions on ``(n, d)`` contexts are :class:`~scarce.policies.catalog_decision.CatalogDecision`
objects: no ``(n, K)`` array unless one is read; their ``support`` (and
:meth:`CatalogPolicy.action_support`) give the choice distribution in sparse form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import ACTION_FEATURES, SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike
from scarce.core.validation import check_contexts, check_positive_int, check_scalar
from scarce.models import linear
from scarce.models.backend import ArrayBackend, check_backend
from scarce.models.mips import ActionCatalog, IndexSpec
from scarce.models.ridge import RidgeRegression
from scarce.policies import register_policy
from scarce.policies.base import masked
from scarce.policies.catalog_decision import CatalogDecision


class CatalogPolicy(Policy):
    """Shared machinery of the catalog policies: the catalog, its index, and one ridge model
    on ``phi(x, a) = x * f_a`` (or the given per-action features).

    Parameters
    ----------
    n_actions:
        ``K``, the number of action slots (ids ``0..K-1``); the catalog may fill fewer.
    n_features:
        ``d``: length of a context and of an action's features.
    actions:
        the catalog: a path to a ``.npy`` file holding a ``(k, d)`` array (``k <= K``; rows go
        to slots ``0..k-1``), the features as a nested list, or None (set later with
        :meth:`set_actions`). Read on first use; a saved policy keeps its catalog in its own
        state and does not read this again.
    lam:
        ridge penalty (prior precision), > 0.
    index:
        search settings: None (defaults: exact up to 100,000 actions, IVF above), a kind
        (``"auto"``, ``"exact"``, ``"ivf"``) or a dict of :class:`~scarce.models.mips.IndexSpec`
        fields.
    backend, device:
        array backend of exact search: ``"numpy"`` or ``"torch"`` (on ``device``).
    """

    #: context layouts: (n, d) user vectors against the catalog, or (n, K, d) per-case features
    layouts = (SHARED_CONTEXT, ACTION_FEATURES)

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        actions: str | list | None = None,
        lam: float = 1.0,
        index: str | dict | None = None,
        backend: str = "numpy",
        device: str = "cpu",
        seed: SeedLike = None,
    ) -> None:
        super().__init__(n_actions=n_actions, n_features=n_features, seed=seed)
        self.actions = actions
        self.lam = lam
        self.index = index
        self.backend = backend
        self.device = device
        self._catalog: ActionCatalog | None = None

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        from scarce.checks import D, K

        rng = np.random.default_rng(0)
        return [{"actions": rng.normal(size=(K, D)).round(3).tolist()}]

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.lam, "lam", low=0.0, low_inclusive=False)
        IndexSpec.from_param(self.index)
        check_backend(self.backend, self.device)
        if self.actions is not None and not isinstance(self.actions, (str, list)):
            raise ValueError(
                f"actions must be None, a path to a .npy file or a nested list; got {type(self.actions).__name__}"
            )

    # ------------------------------------------------------------------ the catalog
    @property
    def catalog(self) -> ActionCatalog:
        """The :class:`~scarce.models.mips.ActionCatalog` (loaded from ``actions`` on first use)."""
        if self._catalog is None:
            cat = self._empty_catalog()
            if self.actions is not None:
                if isinstance(self.actions, str):
                    path = Path(self.actions)
                    if not path.exists():
                        raise ValueError(f"actions: no file at {self.actions!r}")
                    cat.set(np.load(path, allow_pickle=False))
                else:
                    cat.set(self.actions)
            self._catalog = cat
        return self._catalog

    def _empty_catalog(self) -> ActionCatalog:
        self._check_params()
        seed = int(self.seed) if isinstance(self.seed, (int, np.integer)) else 0
        return ActionCatalog(
            self.n_actions,
            self.n_features,
            IndexSpec.from_param(self.index),
            ArrayBackend(self.backend, self.device),
            seed=seed,
        )

    def set_actions(self, features: Any) -> np.ndarray:
        """Replace the catalog by ``features`` ``(k, d)`` (slots ``0..k-1``); returns their ids."""
        return self.catalog.set(features)

    def add_actions(self, features: Any, ids: Any = None) -> np.ndarray:
        """Add ``features`` ``(k, d)`` in free slots (``ids`` or the lowest free); returns the ids.
        The index takes them in place (an IVF index is rebuilt only if one is longer than
        every vector it was built with)."""
        return self.catalog.add(features, ids)

    def remove_actions(self, ids: Any) -> None:
        """Remove actions ``ids``: never chosen again (probability 0); their slots become free."""
        self.catalog.remove(ids)

    def _shared_catalog(self) -> ActionCatalog:
        cat = self.catalog
        if cat.n_active == 0:
            raise ValueError(
                f"{type(self).__name__} has no catalog for (n, {self.n_features}) contexts: pass "
                "actions= (a .npy path or nested list) or call set_actions(features) first"
            )
        return cat

    def _allowed(self, eligible: np.ndarray | None) -> np.ndarray | None:
        """The eligible mask restricted to active actions (None when every action qualifies)."""
        cat = self._shared_catalog()
        if eligible is None:
            return None  # searches only ever return active actions
        allowed = eligible & cat.active[None, :]
        empty = ~allowed.any(axis=1)
        if empty.any():
            raise ValueError(f"eligible has no active action for case {int(np.argmax(empty))}")
        return allowed

    # ------------------------------------------------------------------ the model
    def _init_state(self) -> None:
        # one model shared by every action (not one per action, as other policies keep in
        # ``model_`` on (n, d) contexts): full-information feedback teaches it n * K rows
        self.ridge_ = RidgeRegression(1, self.n_features, lam=self.lam)

    def _features(self, X: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``phi(x_i, a_i)`` rows ``(n, d)``."""
        if X.ndim == 3:
            return X[np.arange(X.shape[0]), actions]
        cat = self._shared_catalog()
        gone = ~cat.active[actions]
        if gone.any():
            raise ValueError(
                f"actions must be in the catalog; {np.unique(actions[gone]).tolist()[:10]} "
                "are free slots (never added, or removed)"
            )
        return X * cat.rows(actions)

    def _learn(self, X, actions, rewards, full_rewards, **extra):  # type: ignore[override]
        n = X.shape[0]
        if full_rewards is not None:
            if X.ndim == 3:
                feats = X.reshape(n * self.n_actions, -1)
                targets = full_rewards.reshape(-1)
            else:
                live = np.flatnonzero(self._shared_catalog().active)
                feats = (X[:, None, :] * self.catalog.rows(live)[None]).reshape(-1, self.n_features)
                targets = full_rewards[:, live].reshape(-1)
        else:
            feats, targets = self._features(X, actions), rewards
        self.ridge_.partial_fit(feats, targets, np.zeros(feats.shape[0], dtype=np.int64))

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ridge_.theta[0].copy(), self.ridge_.A_inv[0].copy()

    # ------------------------------------------------------------------ probabilities
    def action_support(self, X: Any, *, eligible: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The actions with positive probability and their probabilities, without the
        ``(n, K)`` array of :meth:`action_probabilities` (8 MB per case at a million actions).

        Parameters
        ----------
        X:
            ``(n, d)`` user vectors or ``(n, K, d)`` per-action features.
        eligible:
            optional ``(n, K)`` bool mask.

        Returns
        -------
        ids, probabilities:
            ``(n, s)``: int64 action ids by ascending id, ``-1`` after a case's last, and
            their probabilities (0 at the padding); each row's probabilities sum to 1 and
            equal the nonzero entries of :meth:`action_probabilities`. Like it, this writes
            nothing and leaves the random stream alone.
        """
        X = check_contexts(X, self.n_features, self.n_actions)
        self._ensure_initialized(X)
        return self._support(X, self._check_eligible(eligible, X.shape[0]))

    def _support(self, X: np.ndarray, eligible: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _action_probabilities(self, X, eligible):
        ids, probs = self._support(X, eligible)
        out = np.zeros((X.shape[0], self.n_actions))
        ok = ids >= 0
        out[np.nonzero(ok)[0], ids[ok]] = probs[ok]
        return out

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()
        if self._catalog is not None:
            state["catalog"] = self._catalog.get_state()
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        if "catalog" in state:  # the saved catalog, not a re-read of the actions parameter
            cat = self._empty_catalog()
            cat.set_state(state["catalog"])
            self._catalog = cat

    def _get_learned_state(self) -> dict[str, Any]:
        return {"model": self.ridge_.get_state()}

    def _set_learned_state(self, state: dict[str, Any]) -> None:
        self.ridge_.set_state(state["model"])


@register_policy
class CatalogTS(CatalogPolicy):
    """Linear Thompson sampling over a catalog, searched through an inner-product index.

    Parameters
    ----------
    v:
        posterior scale, >= 0 (as in :class:`~scarce.policies.LinTS`).
    propensity_samples:
        Monte-Carlo draws behind each reported choice probability.
    n_actions, n_features, actions, lam, index, backend, device, seed:
        as in :class:`CatalogPolicy`.

    Notes
    -----
    ``Decision.info`` holds ``exact_search`` (1.0 when the case was searched exactly).
    Probabilities are estimates (``probability_method = "monte_carlo"``), the frequency with
    which the rule as run, index included, picks the chosen action over
    ``propensity_samples`` posterior draws from a stream fixed by the policy's update count.
    Read them (or the decision's ``support``) before changing the catalog.
    """

    probability_method = "monte_carlo"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        actions: str | list | None = None,
        v: float = 1.0,
        lam: float = 1.0,
        index: str | dict | None = None,
        backend: str = "numpy",
        device: str = "cpu",
        propensity_samples: int = 200,
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
        self.v = v
        self.propensity_samples = propensity_samples

    @classmethod
    def _unit_test_params(cls) -> list[dict[str, Any]]:
        return [{**p, "propensity_samples": 4000} for p in super()._unit_test_params()]

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.v, "v", low=0.0)
        check_positive_int(self.propensity_samples, "propensity_samples")

    def _choose(
        self, X: np.ndarray, draws: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(actions, sampled scores)`` ``(n,)`` of the rule for parameter draws ``(n, d)``."""
        if X.ndim == 3:
            s = masked(np.einsum("nkd,nd->nk", X, draws), allowed)
            a = np.argmax(s, axis=1)
            return a, s[np.arange(X.shape[0]), a]
        scores, ids = self.catalog.search(X * draws, 1, allowed)
        return ids[:, 0], scores[:, 0]

    def _decide(self, X, eligible):
        n = X.shape[0]
        allowed = eligible if X.ndim == 3 else self._allowed(eligible)
        theta, cov = self._posterior()
        draws = linear.sample_parameters(theta, cov, float(self.v), n, self.rng_)
        actions, chosen = self._choose(X, draws, allowed)
        n_updates, version = self.n_updates_, (None if X.ndim == 3 else self.catalog.version)

        picks: list[np.ndarray] = []  # the Monte-Carlo picks, drawn once for both uses

        def mc() -> np.ndarray:
            if not picks:
                picks.append(self._mc_picks(X, theta, cov, allowed, n_updates, version))
            return picks[0]

        def probabilities() -> np.ndarray:
            return (mc() == actions[None, :]).mean(axis=0)

        exact = X.ndim == 3 or self.catalog.kind == "exact"
        info = {"exact_search": np.full(n, float(exact))}
        if X.ndim == 3:
            scores = masked(np.einsum("nkd,nd->nk", X, draws), allowed)
            return Decision(actions, None, scores, probability_fn=probabilities, info=info)
        return CatalogDecision(
            actions,
            None,
            actions[:, None],
            chosen[:, None],
            self.n_actions,
            probability_fn=probabilities,
            support_fn=lambda: _runs(mc()),
            info=info,
        )

    def _mc_picks(self, X, theta, cov, allowed, n_updates, version) -> np.ndarray:
        """``(S, n)`` actions the rule picks for ``S`` draws of a stream fixed by the state."""
        if version is not None and version != self.catalog.version:
            raise RuntimeError(
                "the catalog changed after this decision; read its probabilities before "
                "adding or removing actions"
            )
        n, S = X.shape[0], int(self.propensity_samples)
        rng = np.random.default_rng([int(n_updates), n, 7919])
        draws = linear.sample_parameters(theta, cov, float(self.v), S * n, rng).reshape(S, n, -1)
        if X.ndim == 2 and allowed is None:  # one batched search for all draws
            return self._choose(np.tile(X, (S, 1)), draws.reshape(S * n, -1), None)[0].reshape(S, n)
        return np.stack([self._choose(X, draws[s], allowed)[0] for s in range(S)])

    def _support(self, X, eligible):
        allowed = eligible if X.ndim == 3 else self._allowed(eligible)
        theta, cov = self._posterior()
        version = None if X.ndim == 3 else self.catalog.version
        return _runs(self._mc_picks(X, theta, cov, allowed, self.n_updates_, version))


@register_policy
class CatalogUCB(CatalogPolicy):
    """LinUCB over a catalog: index candidates, exact UCB rescoring (see the module docstring).

    Parameters
    ----------
    alpha:
        width multiplier, >= 0.
    n_candidates:
        candidates fetched per query (``M``).
    n_directions:
        longest ellipsoid axes whose two ends are also queried (0: the mean query only).
    n_actions, n_features, actions, lam, index, backend, device, seed:
        as in :class:`CatalogPolicy`.

    Notes
    -----
    ``Decision.info`` holds ``certified`` (1.0 when the choice is provably the exact UCB
    argmax, provided the mean search itself was exact) and ``exact_search``. The rule is
    deterministic, so probabilities are exactly 1.
    """

    deterministic = True
    probability_method = "exact"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        actions: str | list | None = None,
        alpha: float = 1.0,
        lam: float = 1.0,
        index: str | dict | None = None,
        backend: str = "numpy",
        device: str = "cpu",
        n_candidates: int = 32,
        n_directions: int = 1,
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
        self.alpha = alpha
        self.n_candidates = n_candidates
        self.n_directions = n_directions

    def _check_params(self) -> None:
        super()._check_params()
        check_scalar(self.alpha, "alpha", low=0.0)
        check_positive_int(self.n_candidates, "n_candidates")
        check_positive_int(self.n_directions, "n_directions", minimum=0)

    def _ucb_exact(self, X: np.ndarray, theta, A_inv) -> np.ndarray:
        mean, var = linear.predict(X, theta[None], A_inv[None])
        return mean + self.alpha * np.sqrt(var)

    def _axis_candidates(self, X, theta, A_inv, allowed, M):
        """``(n, 2 n_directions M)`` ids from the queries at both ends of the longest axes of
        the confidence ellipsoid (one index call when there is no eligibility mask)."""
        w, V = self._axes(A_inv)
        points = []
        for j in range(1, min(self.n_directions, self.n_features) + 1):
            step = self.alpha * np.sqrt(max(w[-j], 0.0)) * V[:, -j]
            points += [theta + step, theta - step]
        n, q = X.shape[0], len(points)
        if allowed is not None:  # (one search per point: no q-fold copy of an (n, K) mask)
            return np.concatenate([self.catalog.search(X * p, M, allowed)[1] for p in points], 1)
        queries = (X[None, :, :] * np.stack(points)[:, None, :]).reshape(q * n, -1)
        ids = self.catalog.search(queries, M)[1]
        return ids.reshape(q, n, M).transpose(1, 0, 2).reshape(n, q * M)

    def _ucb_of(self, X, ids, theta, A_inv):
        """Exact float64 UCBs ``(n, C)`` of candidate ids ``(n, C)`` (``-inf`` at ``-1``), and
        the position of each row's best (ties: lower id)."""
        phi = X[:, None, :] * self.catalog.rows(np.maximum(ids, 0))
        width = np.sqrt(np.maximum(np.einsum("ncd,ncd->nc", phi @ A_inv, phi), 0.0))
        ucb = np.where(ids >= 0, phi @ theta + self.alpha * width, -np.inf)
        order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), -ucb), axis=1)
        return ucb, order[:, 0]

    def _rule(self, X, eligible):
        """``(actions, candidate ids, candidate UCBs, certified)`` of the current state.

        Stage 1 searches the mean query for every case and certifies what it can; stage 2
        adds the ellipsoid-axis queries for the cases left uncertified only. A certified
        case's choice strictly beats the bound on every action outside the mean candidates,
        so the axis candidates could not change it (when the mean search is exact)."""
        theta, A_inv = self._posterior()
        if X.ndim == 3:
            ucb = masked(self._ucb_exact(X, theta, A_inv), eligible)
            return np.argmax(ucb, axis=1), None, ucb, np.ones(X.shape[0], dtype=bool)
        allowed = self._allowed(eligible)
        n, r = X.shape[0], np.arange(X.shape[0])
        M = min(self.n_candidates, self.catalog.n_active)
        mean_s, ids = self.catalog.search(X * theta, M, allowed)
        ucb, best = self._ucb_of(X, ids, theta, A_inv)
        # bound on the UCB of any action the mean search did not return
        # (lambda_max(A^-1) = 1 / lambda_min(A))
        top = np.sqrt(max(float(self._axes(A_inv)[0][-1]), 0.0))
        bound = mean_s[:, -1] + self.alpha * self._radius() * np.abs(X).max(axis=1) * top
        missed = np.isfinite(mean_s[:, -1]) & (M < self._n_allowed(allowed))
        certified = ~missed | (ucb[r, best] > bound)
        todo = np.flatnonzero(~certified) if self.n_directions and self.alpha > 0 else []
        if len(todo):
            sub = None if allowed is None else allowed[todo]
            more = self._axis_candidates(X[todo], theta, A_inv, sub, M)
            both = np.concatenate([ids[todo], more], axis=1)
            both = np.where(_first_occurrence(both), both, -1)  # keep each id once
            ucb2, best2 = self._ucb_of(X[todo], both, theta, A_inv)
            width = both.shape[1]
            ids = np.concatenate([ids, np.full((n, width - M), -1)], axis=1)
            ucb = np.concatenate([ucb, np.full((n, width - M), -np.inf)], axis=1)
            ids[todo], ucb[todo], best[todo] = both, ucb2, best2
            certified[todo] = ucb2[np.arange(len(todo)), best2] > bound[todo]
        return ids[r, best], ids, ucb, certified

    def _axes(self, A_inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``np.linalg.eigh(A_inv)``, kept while ``A_inv`` is unchanged: decisions between
        updates (every batch of a deployed policy) reuse it."""
        cached = getattr(self, "_axes_cache", None)
        if cached is None or not np.array_equal(cached[0], A_inv):
            cached = (A_inv.copy(), *np.linalg.eigh(A_inv))
            self._axes_cache = cached
        return cached[1], cached[2]

    def _radius(self) -> float:
        cat = self.catalog
        key = getattr(self, "_radius_cache", (None, 0.0))
        if key[0] != cat.version:
            F = cat.features[cat.active]
            key = (cat.version, float(np.sqrt(np.einsum("ij,ij->i", F, F, dtype=np.float64).max())))
            self._radius_cache = key
        return key[1]

    def _n_allowed(self, allowed: np.ndarray | None) -> np.ndarray | int:
        return self.catalog.n_active if allowed is None else allowed.sum(axis=1)

    def _decide(self, X, eligible):
        n = X.shape[0]
        actions, ids, ucb, certified = self._rule(X, eligible)
        exact = X.ndim == 3 or self.catalog.kind == "exact"
        info = {"certified": certified.astype(float), "exact_search": np.full(n, float(exact))}
        if ids is None:
            return Decision(actions, np.ones(n), ucb, info=info)
        return CatalogDecision(actions, np.ones(n), ids, ucb, self.n_actions, info=info)

    def _support(self, X, eligible):
        actions = self._rule(X, eligible)[0]
        return actions[:, None], np.ones((X.shape[0], 1))


def _runs(picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, frequencies)`` ``(n, s)`` of the actions picked ``(S, n)`` per case (ascending
    ids, ``-1`` / 0 padding)."""
    picks = np.sort(picks.T, axis=1)
    n, S = picks.shape
    first = np.ones(picks.shape, dtype=bool)  # sorted picks: runs of one action
    first[:, 1:] = picks[:, 1:] != picks[:, :-1]
    width = int(first.sum(axis=1).max())
    ids = np.full((n, width), -1, dtype=np.int64)
    probs = np.zeros((n, width))
    for i in range(n):
        starts = np.flatnonzero(first[i])
        ids[i, : starts.size] = picks[i, starts]
        probs[i, : starts.size] = np.diff(np.append(starts, S)) / S
    return ids, probs


def _first_occurrence(ids: np.ndarray) -> np.ndarray:
    """``(n, C)`` bool: True where ``ids[i, j]`` did not occur earlier in row ``i``."""
    order = np.argsort(ids, axis=1, kind="stable")
    s = np.take_along_axis(ids, order, axis=1)
    first_sorted = np.ones_like(s, dtype=bool)
    first_sorted[:, 1:] = s[:, 1:] != s[:, :-1]
    out = np.empty_like(first_sorted)
    np.put_along_axis(out, order, first_sorted, axis=1)
    return out & (ids >= 0)


__all__ = ["CatalogDecision", "CatalogPolicy", "CatalogTS", "CatalogUCB"]
