"""Replicated simulation (:mod:`scarce.sim.replicated`) of mixed-effect Thompson sampling on
the structured environments: ``S`` runs of :class:`~scarce.structured.MixedEffectTS` (or
:class:`~scarce.structured.HierarchicalTS`) as one computation over a leading replica axis,
bit for bit equal to ``S`` separate :func:`scarce.sim.run` calls.

How the arithmetic stays the separate runs' own: every posterior quantity is kept stacked,
``(S, K, ...)`` per action and ``(S, blocks, ...)`` for the effects, and each step is the
expression of :mod:`scarce.structured.mets` with a leading replica axis. NumPy's stacked
``matmul``, ``solve``, ``inv`` and ``cholesky`` run the same BLAS/LAPACK routine on each
slice, with the same shapes and memory layout, as the unbatched calls; reductions whose
order could change with the layout (the per-action ``einsum`` of per-action contexts, the
sum over the actions touched in a batch) are taken replica by replica or over groups of
replicas with the same shapes. The Thompson normals of a round (``n Ld`` effect normals,
then ``n K`` score normals) are drawn from each policy's generator in blocks of cases and
split per round exactly as one round of a separate run draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from scarce.core.policy import ACTION_FEATURES, SHARED_CONTEXT
from scarce.models import linear
from scarce.policies.linear import ReplicaDecision


class MixedEffectReplicas:
    """``S`` :class:`~scarce.structured.MixedEffectTS` policies of one class as one
    computation (the replicated-simulation plug-in of the family; see
    :mod:`scarce.sim.replicated` for the protocol).

    Covered: every ``effects`` setting (``"joint"``, ``"factored"`` (meTS-Fa),
    ``"factored-exact"``), both context layouts, any batch size, the linear-Gaussian
    likelihood and the logistic one (meTS-GLM) with ``laplace_batch=None``; with the logistic
    likelihood the Laplace refits run replica by replica (as costly as in separate runs), the
    rest is batched. Mixing, priors, ``noise_std``, ``jitter``, ``laplace_ridge``,
    ``max_iter`` and ``propensity_samples`` may differ between replicas; ``likelihood``,
    ``effects`` and the number of effects ``L`` may not. ``laplace_batch`` set raises
    ``ValueError``.

    Parameters
    ----------
    policies:
        ``S`` distinct policies of one class (fresh or trained; updated in place by
        :meth:`finish`).
    action_features:
        True for ``(n, K, d)`` contexts (one per action), False for ``(n, d)``.
    """

    def __init__(self, policies: Sequence[Any], action_features: bool) -> None:
        policies = list(policies)
        first = policies[0]
        K, d = first.n_actions, first.n_features
        self.features = bool(action_features)
        layout = ACTION_FEATURES if self.features else SHARED_CONTEXT
        for s, p in enumerate(policies):
            if p.likelihood != first.likelihood:
                raise ValueError(
                    f"policies must all have the same likelihood; policies[{s}] has "
                    f"{p.likelihood!r} and policies[0] {first.likelihood!r}"
                )
            if p.likelihood == "logistic" and p.laplace_batch is not None:
                raise ValueError(
                    f"policies[{s}] has laplace_batch={p.laplace_batch}; replicated simulation "
                    "covers laplace_batch=None only (subsampled refits draw from the policy's "
                    "generator between its Thompson draws)"
                )
            if p._initialized and p.context_mode_ != layout:
                raise ValueError(
                    f"policies[{s}] was used with the other context layout ({p.context_mode_})"
                )
            # validates the parameters and seeds rng_, like a first decide
            p._ensure_initialized(np.zeros((1, K, d) if self.features else (1, d)))
            if (p.effects, p.n_effects_) != (first.effects, first.n_effects_):
                raise ValueError(
                    "policies must all have the same effects setting and number of effects; "
                    f"policies[{s}] has effects={p.effects!r}, L={p.n_effects_} and policies[0] "
                    f"effects={first.effects!r}, L={first.n_effects_}"
                )
        self.policies = policies
        self.S, self.K, self.d = len(policies), K, d
        self.Ld = first.n_effects_ * d
        self.factored_exact = first.effects == "factored-exact"
        self.logistic = first.likelihood == "logistic"

        def stack(name: str) -> np.ndarray:
            return np.stack([getattr(p, name) for p in policies])

        # fixed by the parameters
        self.C = stack("C_")  # (S, K, d, Ld)
        self.Cb = stack("Cb_")  # (S, K, nb, d, bs)
        self.action_prec = stack("action_prec_")  # (S, K, d, d)
        self.prior_prec = stack("effect_prior_prec_")  # (S, nb, bs, bs)
        self.prior_mean = stack("effect_mean_")  # (S, Ld)
        self.noise2 = np.array([float(p.noise_std) ** 2 for p in policies])
        self.jitter = np.array([float(p.jitter) for p in policies])
        self.resync_every = np.array([int(p.resync_every) for p in policies])
        # the learned state
        self.G, self.B = stack("G_"), stack("B_")
        self.P, self.h, self.Scov, self.u = stack("P_"), stack("h_"), stack("S_"), stack("u_")
        self.WT = stack("WT_")  # (S, d, K, Ld)
        self.W = self.WT.transpose(0, 2, 1, 3)  # (S, K, d, Ld) view, as MixedEffectTS.W_
        self.effect_prec, self.effect_h = stack("effect_prec_"), stack("effect_h_")
        self.since = np.array([p._since_resync for p in policies])
        self.seen = np.array([p.n_updates_ for p in policies])
        self._factor: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ deciding
    def draws(self, n_cases: int) -> np.ndarray:
        """``(S, n_cases, Ld + K)`` standard normals from each policy's generator: the
        ``n (Ld + K)`` values a round of ``n`` cases draws, in the order it draws them."""
        w = self.Ld + self.K
        return np.stack([p.rng_.standard_normal((n_cases, w)) for p in self.policies])

    def _effect_factor(self) -> tuple[np.ndarray, np.ndarray]:
        """``MixedEffectTS._effect_factor`` of every replica: means ``(S, Ld)`` and lower
        Cholesky factors ``(S, nb, bs, bs)``."""
        if self._factor is None:
            prec = 0.5 * (self.effect_prec + np.swapaxes(self.effect_prec, -1, -2))
            mean = np.linalg.solve(prec, self.effect_h[..., None])[..., 0].reshape(self.S, -1)
            if self.factored_exact:
                d = self.d
                prec = np.stack([prec[:, 0, j : j + d, j : j + d] for j in range(0, self.Ld, d)], 1)
            self._factor = (mean, np.linalg.cholesky(prec))
        return self._factor

    def _projections(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        S, n = X.shape[:2]
        if not self.features:
            XW = (X @ self.WT.reshape(S, self.d, -1)).reshape(S, n, self.K, -1)
            xu = X @ np.swapaxes(self.u, 1, 2)
            var = linear.predict_variance(X, self.Scov)
        else:
            XW = (X[:, :, :, None, :] @ self.W[:, None])[:, :, :, 0, :]
            XS = (X[:, :, :, None, :] @ self.Scov[:, None])[:, :, :, 0, :]
            # einsum's summation order may depend on the layout: replica by replica
            xu = np.stack([np.einsum("nkd,kd->nk", X[s], self.u[s]) for s in range(S)])
            var = np.stack([np.einsum("nkd,nkd->nk", XS[s], X[s]) for s in range(S)])
        return XW, xu, np.maximum(var, 0.0)

    def decide(self, X: np.ndarray, draws: np.ndarray) -> ReplicaDecision:
        """Decisions on contexts ``X`` ``(S, n, d)`` (or ``(S, n, K, d)``) with ``draws``
        ``(S, n, Ld + K)`` from :meth:`draws`."""
        S, n = X.shape[:2]
        K, Ld = self.K, self.Ld
        XW, xu, var = self._projections(X)
        mean, chol = self._effect_factor()
        flat = draws.reshape(S, n * (Ld + K))
        nb, bs = chol.shape[1:3]
        zb = flat[:, : n * Ld].reshape(S, n, nb, bs).transpose(0, 2, 3, 1)  # (S, nb, bs, n)
        dev = np.linalg.solve(np.swapaxes(chol, -1, -2), zb)
        psi = mean[:, None, :] + dev.transpose(0, 3, 1, 2).reshape(S, n, Ld)
        std = np.sqrt(var)
        noise = flat[:, n * Ld :].reshape(S, n, K)
        scores = (XW @ psi[..., None])[..., 0] + xu + std * noise
        actions = np.argmax(scores, axis=2)
        seen = self.seen.copy()  # mean and chol are replaced, never written, by updates

        def probabilities() -> np.ndarray:
            # Rao-Blackwellised Monte Carlo from each policy's own deterministic stream
            return np.stack(
                [
                    p._rb_probabilities(
                        (XW[s], xu[s], std[s], mean[s], chol[s], int(seen[s])), None, actions[s]
                    )
                    for s, p in enumerate(self.policies)
                ]
            )

        return ReplicaDecision(actions, probabilities, {})

    # ------------------------------------------------------------------ learning
    def learn(
        self, X: np.ndarray, decision: ReplicaDecision, rewards: np.ndarray, **extras: Any
    ) -> None:
        """Bandit feedback ``rewards`` ``(S, n)`` for ``decision`` on ``X`` (as
        ``MixedEffectTS._learn``, every replica at once)."""
        S, n = rewards.shape
        K, d = self.K, self.d
        acts = decision.actions
        if self.features:
            feats = np.take_along_axis(X, acts[:, :, None, None], axis=2)[:, :, 0]
        else:
            feats = X
        if n == 1:
            rs, ac, counts = np.arange(S), acts[:, 0], np.ones(S, dtype=np.int64)
        else:
            touched = [np.unique(a) for a in acts]
            counts = np.array([t.size for t in touched])
            rs, ac = np.repeat(np.arange(S), counts), np.concatenate(touched)
        if self.logistic:
            # the Laplace refits (damped Newton on each pulled action's history) replica by
            # replica, with each policy's own GLM, as a separate run does them
            starts = np.concatenate([[0], np.cumsum(counts)])
            for s, p in enumerate(self.policies):
                p.glm_.partial_fit(feats[s], rewards[s], acts[s])
                mine = ac[starts[s] : starts[s + 1]]
                for m in mine:
                    p._laplace(int(m))
                self.G[s, mine], self.B[s, mine] = p.G_[mine], p.B_[mine]
        else:
            s2 = self.noise2[:, None]
            outer = np.einsum("snd,sne->snde", feats, feats) / s2[..., None, None]
            ids = (acts + K * np.arange(S)[:, None]).reshape(-1)
            np.add.at(self.G.reshape(S * K, d, d), ids, outer.reshape(S * n, d, d))
            B_add = (feats * (rewards / s2)[..., None]).reshape(S * n, d)
            np.add.at(self.B.reshape(S * K, d), ids, B_add)
        self._update_actions(rs, ac, counts)
        self.seen += n

    def _update_actions(self, rs: np.ndarray, ac: np.ndarray, counts: np.ndarray) -> None:
        """``MixedEffectTS._update_actions`` for the ``(replica, action)`` pairs ``rs, ac``
        (replica by replica in order, ``counts[s]`` pairs each)."""
        d = self.d
        P_old, h_old = self.P[rs, ac], self.h[rs, ac]
        L0, G, B = self.action_prec[rs, ac], self.G[rs, ac], self.B[rs, ac]
        Scov = np.linalg.inv(L0 + G)
        Scov = 0.5 * (Scov + np.swapaxes(Scov, 1, 2))
        Se = Scov
        jit = self.jitter[rs]
        if np.any(jit != 0):
            Se = Scov.copy()
            nz = jit != 0
            Se[nz] = np.linalg.inv((L0 + G)[nz] + jit[nz][:, None, None] * np.eye(d))
        P = L0 - L0 @ Se @ L0
        P = 0.5 * (P + np.swapaxes(P, 1, 2))
        h = (L0 @ (Se @ B[..., None]))[..., 0]
        self.P[rs, ac] = P
        self.h[rs, ac] = h
        self.Scov[rs, ac] = Scov
        self.W[rs, ac] = Scov @ L0 @ self.C[rs, ac]
        self.u[rs, ac] = (Scov @ B[..., None])[..., 0]
        self._factor = None

        self.since += counts
        resync = self.since >= self.resync_every
        for s in np.flatnonzero(resync):
            self._recompute_effect_precision(int(s))
        # the incremental correction, summed over each replica's touched actions
        Cb = self.Cb[rs, ac]  # (M, nb, d, bs)
        CbT = np.swapaxes(Cb, 2, 3)
        dprec = CbT @ ((P - P_old)[:, None] @ Cb)
        dh = (CbT @ (h - h_old)[:, None, :, None])[..., 0]
        if not resync.any() and np.all(counts == counts[0]):  # e.g. every batch of one case
            k = int(counts[0])
            self.effect_prec += dprec.reshape(self.S, k, *dprec.shape[1:]).sum(axis=1)
            self.effect_h += dh.reshape(self.S, k, *dh.shape[1:]).sum(axis=1)
            return
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for k in np.unique(counts[~resync]):
            group = np.flatnonzero((counts == k) & ~resync)
            rows = starts[group][:, None] + np.arange(k)
            self.effect_prec[group] = self.effect_prec[group] + dprec[rows].sum(axis=1)
            self.effect_h[group] = self.effect_h[group] + dh[rows].sum(axis=1)

    def _recompute_effect_precision(self, s: int) -> None:
        """``MixedEffectTS._recompute_effect_precision`` of replica ``s``."""
        Cb = self.Cb[s]
        CbT = np.swapaxes(Cb, 2, 3)
        prec = (CbT @ (self.P[s][:, None] @ Cb)).sum(axis=0)
        hs = (CbT @ self.h[s][:, None, :, None])[..., 0].sum(axis=0)
        nb, bs = self.prior_prec.shape[1:3]
        prior_mean = self.prior_mean[s].reshape(nb, bs, 1)
        self.effect_prec[s] = self.prior_prec[s] + prec
        self.effect_h[s] = (self.prior_prec[s] @ prior_mean)[..., 0] + hs
        self.since[s] = 0

    def finish(self) -> None:
        """Write the learned state back into the policies (posterior arrays and caches,
        ``n_updates_``; their generators already advanced by :meth:`draws`)."""
        for s, p in enumerate(self.policies):
            p.G_, p.B_ = self.G[s].copy(), self.B[s].copy()
            p.P_, p.h_, p.S_, p.u_ = (a[s].copy() for a in (self.P, self.h, self.Scov, self.u))
            p.WT_ = self.WT[s].copy()
            p.W_ = p.WT_.transpose(1, 0, 2)
            p.effect_prec_, p.effect_h_ = self.effect_prec[s].copy(), self.effect_h[s].copy()
            p._since_resync = int(self.since[s])
            p._factor = None
            p.n_updates_ = int(self.seen[s])


class StructuredTruth:
    """The outcome model of ``S`` structured environments of one class
    (:class:`~scarce.structured.MixedEffectEnv` or :class:`~scarce.structured.MovieLensEnv`)
    for :mod:`scarce.sim.replicated` (their ``_replicated_truth`` hook): per-action parameters
    ``theta`` ``(K, d)``, linear (Gaussian noise) or logistic (Bernoulli) rewards, contexts
    ``(n, d)`` or ``(n, K, d)``. Every environment must have the same class, likelihood and
    context layout; the parameters and noise may differ."""

    def __init__(self, envs: Sequence[Any]) -> None:
        first = envs[0]
        for s, e in enumerate(envs):
            if type(e) is not type(first):
                raise ValueError(
                    f"envs must all be {type(first).__name__}; envs[{s}] is {type(e).__name__}"
                )
            if (e.likelihood, e.per_action_context) != (first.likelihood, first.per_action_context):
                raise ValueError(
                    f"envs must all have the same likelihood and per_action_context; envs[{s}] "
                    f"has {e.likelihood!r}, {e.per_action_context} and envs[0] "
                    f"{first.likelihood!r}, {first.per_action_context}"
                )
        self.action_features = bool(first.per_action_context)
        self.logistic = first.likelihood == "logistic"
        self.theta = np.stack([e.theta for e in envs])  # (S, K, d)
        self.noise_std = np.array([float(e.noise_std) for e in envs])[:, None, None]
        self.K = first.n_actions

    def noise(self, rngs: Sequence[np.random.Generator], n_cases: int) -> np.ndarray:
        """``(S, n_cases, K)``: uniforms (logistic) or standard normals, as the environments'
        ``_full_outcomes`` draw them."""
        shape = (n_cases, self.K)
        if self.logistic:
            return np.stack([o.random(shape) for o in rngs])
        return np.stack([o.standard_normal(shape) for o in rngs])

    def outcomes(self, X: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected and realised rewards ``(S, n, K)`` on contexts ``X``."""
        if self.action_features:  # einsum replica by replica, as each environment computes it
            z = np.stack(
                [np.einsum("nkd,kd->nk", x, t) for x, t in zip(X, self.theta, strict=True)]
            )
        else:
            z = X @ np.swapaxes(self.theta, 1, 2)
        if self.logistic:
            p = expit(z)
            return p, (noise < p).astype(np.float64)
        return z, z + self.noise_std * noise
