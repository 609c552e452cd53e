"""Replicated simulation: ``S`` independent runs of LinUCB or LinTS as one vectorised
computation over a leading replica axis, bit-for-bit equal to ``S`` separate
:func:`scarce.sim.run` calls.

``run_replicated(policies, envs, horizon, seeds)[s]`` equals
``scarce.sim.run(policies[s], envs[s], horizon, seed=seeds[s])`` exactly (every array of the
:class:`~scarce.sim.Trace`), and leaves ``policies[s]`` in exactly the state the separate run
would (model arrays, update counts and random generator), so replicated and separate runs can
be mixed. :func:`sweep_replicated` is :func:`scarce.sim.sweep` for one policy on one
environment, computed this way, and returns the same table.

How exact equality is kept
--------------------------
Every random stream is independent of the actions taken (contexts, outcome noise and
Thompson draws: see :mod:`scarce.sim.run`), so each replica's streams are drawn from its own
generators in blocks of rounds; NumPy's generators give the same numbers in one call of size
``B`` as in ``B`` calls of size 1. The arithmetic then follows the separate run operation by
operation, in the same order. Reductions that go through BLAS (``x^T theta``, ``A^{-1} x``,
``x^T u``) are done with NumPy's stacked ``matmul``, which calls the same BLAS routine on each
replica's slice with the same shapes and memory layout as the separate run does, so even the
summation order is the same (both of :func:`scarce.models.linear.predict_variance`'s paths:
one case, and chunked GEMMs for a batch). Elementwise steps are exact by construction. Model
updates follow :meth:`scarce.models.RidgeRegression.partial_fit`: rank-1 steps row by row in
each model's order, vectorised over replicas; the refactorisations (more than 8 rows for a
model in one batch, or every ``resync_every`` updates) are done per replica and model with the
same NumPy and SciPy calls.

Scope
-----
Both context layouts (disjoint models on shared ``(n, d)`` contexts; one shared model on
per-action features ``(n, K, d)``), any ``batch_size``, bandit feedback, without forgetting or
windows, on :class:`~scarce.envs.LinearGaussianEnv` and :class:`~scarce.envs.LogisticEnv`.
Everything else raises a ``ValueError`` naming what is not supported (use
:func:`scarce.sim.run`). LinTS's choice probabilities with per-action features are Monte-Carlo
estimates from a per-policy stream; they are computed replica by replica (as costly as in
separate runs): pass ``probabilities=False`` when they are not needed. Hyperparameters
(``alpha``/``v``, ``lam``) may differ between replicas; the class, ``n_actions`` and
``n_features`` may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit, ndtr

from scarce.core.policy import SHARED_CONTEXT
from scarce.core.random import SeedLike, spawn, spawn_seeds
from scarce.envs.synthetic import LinearGaussianEnv, LogisticEnv
from scarce.models import linear
from scarce.models.ridge import _REFACTOR_ROWS
from scarce.policies.linear import LinTS, LinUCB
from scarce.sim.parallel import Backend, default_n_jobs, parallel_map
from scarce.sim.run import Trace
from scarce.sim.sweep import (
    EnvLike,
    PolicyLike,
    _assemble,
    _Task,
    as_env_spec,
    as_policy_spec,
    checkpoints,
    run_seeds,
)

#: about how many float64 values the pre-drawn random streams of one block of rounds hold
_BLOCK_VALUES = 1 << 19


def _check_replicas(policies: Sequence[Any], envs: Sequence[Any], seeds: Sequence[Any]) -> int:
    S = len(policies)
    if S < 1:
        raise ValueError("policies must hold at least one policy (one per replica)")
    if len(envs) != S or len(seeds) != S:
        raise ValueError(
            f"policies, envs and seeds must have one entry per replica; got {S} policies, "
            f"{len(envs)} envs and {len(seeds)} seeds"
        )
    if len({id(p) for p in policies}) != S:
        raise ValueError("policies must be S distinct objects (one per replica); got repeats")
    cls = type(policies[0])
    if cls not in (LinUCB, LinTS):
        raise ValueError(
            f"policies must be LinUCB or LinTS instances (replicated simulation covers these); "
            f"got {cls.__name__}"
        )
    env_cls = type(envs[0])
    if env_cls not in (LinearGaussianEnv, LogisticEnv):
        raise ValueError(
            f"envs must be LinearGaussianEnv or LogisticEnv instances; got {env_cls.__name__}"
        )
    K, d = envs[0].n_actions, envs[0].n_features
    for s, (p, e) in enumerate(zip(policies, envs, strict=True)):
        if type(p) is not cls:
            raise ValueError(
                f"policies must all be {cls.__name__}; policies[{s}] is {type(p).__name__}"
            )
        if type(e) is not env_cls:
            raise ValueError(
                f"envs must all be {env_cls.__name__}; envs[{s}] is {type(e).__name__}"
            )
        if e.action_features != envs[0].action_features:
            raise ValueError(
                f"envs must all have the same action_features; envs[{s}] has "
                f"{e.action_features}, envs[0] {envs[0].action_features}"
            )
        if (e.n_actions, e.n_features) != (K, d) or (p.n_actions, p.n_features) != (K, d):
            raise ValueError(
                f"every policy and env must have n_actions={K} and n_features={d}; replica {s} "
                f"has policy ({p.n_actions}, {p.n_features}) and env "
                f"({e.n_actions}, {e.n_features})"
            )
        if p.forgetting != 1.0 or p.window is not None:
            raise ValueError(
                f"policies[{s}] uses forgetting={p.forgetting} / window={p.window}; replicated "
                "simulation covers forgetting=1.0 and window=None only"
            )
        if p._initialized and (p.context_mode_ == SHARED_CONTEXT) == e.action_features:
            raise ValueError(
                f"policies[{s}] was used with the other context layout ({p.context_mode_})"
            )
    return S


@dataclass
class _State:
    """The ridge models of every replica, ``(S, K, ...)``, updated as
    :meth:`scarce.models.RidgeRegression.partial_fit` would update each (sign +1, no
    forgetting or window)."""

    A: np.ndarray
    A_inv: np.ndarray
    b: np.ndarray
    theta: np.ndarray
    n_obs: np.ndarray
    since: np.ndarray
    resync_every: np.ndarray

    def _rank_one(
        self, sel: np.ndarray, acts: np.ndarray, x: np.ndarray, y: np.ndarray, u: np.ndarray
    ) -> None:
        """One row ``x`` ``(m, d)`` with target ``y`` ``(m,)`` for model ``acts`` of replicas
        ``sel``; ``u = A_inv x`` ``(m, d)``. Sherman-Morrison and the recursive-least-squares
        step of ``RidgeRegression._add``, operation by operation."""
        S, K, d, _ = self.A.shape
        flat = sel * K + acts
        A_f, A_inv_f = self.A.reshape(S * K, d, d), self.A_inv.reshape(S * K, d, d)
        b_f, theta_f = self.b.reshape(S * K, d), self.theta.reshape(S * K, d)
        xr = x[:, None, :]
        xu = (xr @ u[:, :, None])[:, 0, 0]
        gain = u * (1.0 / (1.0 + xu))[:, None]
        th = theta_f.take(flat, axis=0)
        xt = (xr @ th[:, :, None])[:, 0, 0]
        th += gain * (y - xt)[:, None]
        theta_f[flat] = th
        Ai = A_inv_f.take(flat, axis=0)
        Ai -= gain[:, :, None] * u[:, None, :]
        A_inv_f[flat] = Ai
        Ak = A_f.take(flat, axis=0)
        Ak += x[:, :, None] * x[:, None, :]
        A_f[flat] = Ak
        bk = b_f.take(flat, axis=0)
        bk += y[:, None] * x
        b_f[flat] = bk

    def _refactor(self, s: int, m: int, X: np.ndarray, y: np.ndarray) -> None:
        """``RidgeRegression._add``'s refactorisation branch for rows ``X`` of model ``m``."""
        self.A[s, m] += 1.0 * (X.T @ X)
        self.b[s, m] += 1.0 * (X.T @ y)
        c = cho_factor(self.A[s, m], lower=True, check_finite=False)
        self.A_inv[s, m] = cho_solve(c, np.eye(self.A.shape[2]), check_finite=False)
        self.theta[s, m] = cho_solve(c, self.b[s, m], check_finite=False)
        self.since[s, m] = 0

    def learn_one(
        self, x: np.ndarray, acts: np.ndarray, y: np.ndarray, Z: np.ndarray | None
    ) -> None:
        """One case per replica: ``x`` ``(S, d)``, model ids ``acts`` and ``y`` ``(S,)``; ``Z``
        ``(S, K, d)`` holds ``A_inv[s, k] x[s]`` when the caller has it."""
        S = x.shape[0]
        reps = np.arange(S)
        self.n_obs[reps, acts] += 1.0
        self.since[reps, acts] += 1
        resync = self.since[reps, acts] >= self.resync_every
        sel = np.flatnonzero(~resync) if resync.any() else reps
        if Z is None:
            u = (self.A_inv[sel, acts[sel]] @ x[sel][:, :, None])[..., 0]
        else:
            u = Z[sel, acts[sel]]
        self._rank_one(sel, acts[sel], x[sel], y[sel], u)
        for s in np.flatnonzero(resync):
            self._refactor(int(s), int(acts[s]), x[s : s + 1], y[s : s + 1])

    def learn_batch(self, X: np.ndarray, acts: np.ndarray, y: np.ndarray) -> None:
        """A batch per replica: ``X`` ``(S, n, d)``, ``acts``, ``y`` ``(S, n)``. Each model takes
        its rows in order, by rank-1 steps or, for more than ``_REFACTOR_ROWS`` rows or at a
        resync, one refactorisation; models are independent, so the order across models
        does not matter."""
        S, n, _ = X.shape
        K = self.A.shape[1]
        counts = np.zeros((S, K), dtype=np.int64)
        np.add.at(counts, (np.repeat(np.arange(S), n), acts.reshape(-1)), 1)
        self.n_obs += 1.0 * counts
        self.since += counts
        refactor = (counts > 0) & (
            (counts > _REFACTOR_ROWS) | (self.since >= self.resync_every[:, None])
        )
        for j in range(n):
            a = acts[:, j]
            sel = np.flatnonzero(~refactor[np.arange(S), a])
            if sel.size:
                x = X[sel, j]  # (m, d), contiguous rows like the separate run's
                Ai = self.A_inv[sel, a[sel]]
                u = (Ai @ x[:, :, None])[..., 0]
                self._rank_one(sel, a[sel], x, y[sel, j], u)
        for s, m in zip(*np.nonzero(refactor), strict=True):
            rows = acts[s] == m
            self._refactor(int(s), int(m), X[s][rows], y[s][rows])


def _decide_disjoint(X, theta, A_inv, width, thompson, z, off):
    """Scores of disjoint models (``models.linear.predict`` and ``sample_scores``):
    ``X`` ``(S, n, d)`` -> ``(scores, mean, std, Z)``, each ``(S, n, K)`` (``Z`` ``(S, K, d)``
    for one case, else None; ``std`` None for UCB)."""
    n = X.shape[1]
    mean = X @ theta.swapaxes(1, 2)  # (S, n, K)
    Z = None
    if n == 1:
        xc = X[:, 0, :, None]  # (S, d, 1)
        Z = (A_inv @ xc[:, None])[..., 0]  # (S, K, d): A_inv[k] x for every action
        var = (Z @ xc)[..., 0][:, None, :]
    else:
        var = _variance(X, A_inv)
    var = np.maximum(var, 0.0)
    if thompson:
        std = width * np.sqrt(var)
        return mean + width * np.sqrt(var) * z[:, off : off + n], mean, std, Z
    return mean + width * np.sqrt(var), mean, None, Z


def _decide_features(X, theta, A_inv, width, thompson, z, off):
    """Scores of one shared model on per-action features ``X`` ``(S, n, K, d)``
    (``models.linear.predict`` and ``sample_scores``) -> ``(scores, None, None)``."""
    n = X.shape[1]
    if thompson:
        # linear._cholesky per replica: the same symmetrisation and LAPACK call (and the
        # same eigen-decomposition fallback)
        L = np.stack([linear._cholesky(c[0]) for c in A_inv])  # (S, d, d)
        draws = theta[:, 0][:, None, :] + width * z[:, off : off + n] @ L.swapaxes(1, 2)
        return np.einsum("snkd,snd->snk", X, draws), None, None
    mean = (X @ theta[:, 0][:, None, :, None])[..., 0]  # (S, n, K)
    Zf = X @ A_inv  # (S, n, K, d): per case (K, d) @ (d, d), as X @ cov[0]
    var = np.maximum(np.einsum("snkd,snkd->snk", Zf, X), 0.0)
    return mean + width * np.sqrt(var), None, None


def _mc_probabilities(policies, n_updates, X, theta, A_inv, acts) -> np.ndarray:
    """LinTS's Monte-Carlo choice probabilities with per-action features, per replica with
    the policy's own method and stream (not vectorised: as costly as in separate runs)."""
    out = np.empty(acts.shape)
    rows = np.arange(acts.shape[1])
    for s, p in enumerate(policies):
        mc = p._mc_probabilities(X[s], theta[s], A_inv[s], None, int(n_updates[s]))
        out[s] = mc[rows, acts[s]]
    return out


def _variance(X: np.ndarray, A_inv: np.ndarray) -> np.ndarray:
    """:func:`scarce.models.linear.predict_variance` for ``n > 1`` cases per replica:
    ``X`` ``(S, n, d)``, ``A_inv`` ``(S, K, d, d)`` -> ``(S, n, K)``; the same GEMM and GEMV
    calls on each replica's slice, in the same chunks."""
    S, n, d = X.shape
    K = A_inv.shape[1]
    stacked = A_inv.transpose(0, 2, 1, 3).reshape(S, d, K * d)
    out = np.empty((S, n, K))
    ones = np.ones(d)
    step = max(1, linear._CHUNK_BYTES // (8 * K * d))
    for start in range(0, n, step):
        Xc = X[:, start : start + step]
        c = Xc.shape[1]
        Z = (Xc @ stacked).reshape(S, c, K, d)
        Z *= Xc[:, :, None, :]
        out[:, start : start + c] = (Z.reshape(S, c * K, d) @ ones).reshape(S, c, K)
    return out


def _probability_of(mean: np.ndarray, std: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """:func:`scarce.models.linear.gaussian_argmax_probability_of` per replica: ``mean``,
    ``std`` ``(S, n, K)``, ``actions`` ``(S, n)`` -> ``(S, n)``. Same elementwise steps; the
    final quadrature sum is a stacked ``matmul`` so that each replica gets the BLAS call a
    separate run makes (one GEMV over all replicas may sum in another order)."""
    S, n, K = mean.shape
    std = np.maximum(std, 1e-12)
    idx = actions[:, :, None]
    nodes = linear._GH_NODES
    vals = (
        np.take_along_axis(mean, idx, axis=2) + np.take_along_axis(std, idx, axis=2) * nodes
    )  # (S, n, q)
    zz = (vals[:, :, None, :] - mean[..., None]) / std[..., None]  # (S, n, K, q)
    logcdf = np.log(np.maximum(ndtr(zz), 1e-300))
    keep = np.ones((S, n, K), dtype=bool)
    np.put_along_axis(keep, idx, False, axis=2)
    logcdf = np.where(keep[..., None], logcdf, 0.0)
    dens = np.exp(logcdf.sum(axis=2))  # (S, n, q)
    return np.clip(dens @ linear._GH_WEIGHTS, 0.0, 1.0)


def run_replicated(
    policies: Sequence[LinUCB | LinTS],
    envs: Sequence[LinearGaussianEnv | LogisticEnv],
    horizon: int,
    seeds: Sequence[SeedLike],
    *,
    batch_size: int = 1,
    probabilities: bool = True,
) -> list[Trace]:
    """Run ``policies[s]`` on ``envs[s]`` with run seed ``seeds[s]`` for every replica ``s``,
    vectorised over replicas; equal to ``[scarce.sim.run(p, e, horizon, seed=s) ...]``.

    Parameters
    ----------
    policies:
        ``S`` LinUCB or LinTS instances of one class (fresh or already trained; each is
        updated in place, exactly as :func:`scarce.sim.run` would).
    envs:
        ``S`` environments of one class (:class:`~scarce.envs.LinearGaussianEnv` or
        :class:`~scarce.envs.LogisticEnv`) and one ``action_features`` setting, with the same
        ``n_actions`` and ``n_features`` as the policies.
    horizon:
        cases decided per replica, >= 1.
    seeds:
        ``S`` run seeds (int, ``SeedSequence`` or ``Generator``), as ``run(..., seed=...)``.
    batch_size:
        cases decided per round before the policies learn, as ``run(..., batch_size=...)``.
    probabilities:
        record LinTS's choice probabilities (exact Gauss-Hermite quadrature, as
        :func:`scarce.sim.run` does; about as costly as the rest of a round). False leaves
        the ``probability`` column NaN for LinTS (LinUCB's are always 1).

    Returns
    -------
    list of Trace
        one per replica, each equal to the separate run's.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1; got {horizon!r}")
    horizon = int(horizon)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    batch_size = int(batch_size)
    policies, envs, seeds = list(policies), list(envs), list(seeds)
    S = _check_replicas(policies, envs, seeds)
    K, d = envs[0].n_actions, envs[0].n_features
    thompson = isinstance(policies[0], LinTS)
    logistic = isinstance(envs[0], LogisticEnv)

    features = bool(envs[0].action_features)  # (n, K, d) contexts, one shared model
    X0 = np.zeros((1, K, d) if features else (1, d))
    for p in policies:
        p._ensure_initialized(X0)  # validates parameters and seeds rng_, like a first decide
    models = [p.model_ for p in policies]
    n_updates0 = np.array([p.n_updates_ for p in policies])
    state = _State(
        A=np.stack([m.A for m in models]),  # (S, M, d, d): M = K models, or 1 shared
        A_inv=np.stack([m.A_inv for m in models]),
        b=np.stack([m.b for m in models]),  # (S, K, d)
        theta=np.stack([m.theta for m in models]),
        n_obs=np.stack([m.n_obs for m in models]),  # (S, K)
        since=np.stack([m._since_resync for m in models]),
        resync_every=np.array([m.resync_every for m in models]),
    )
    A_inv, theta = state.A_inv, state.theta
    width = np.array([float(p.v if thompson else p.alpha) for p in policies])[:, None, None]

    if features:
        true_theta = np.stack([e.theta for e in envs])[:, None, :, None]  # (S, 1, d, 1)
    else:
        true_theta_T = np.stack([e.theta for e in envs]).swapaxes(1, 2)  # (S, d, K) like theta.T
    noise_std = np.array([0.0 if logistic else e.noise_std for e in envs])[:, None, None]
    noiseless = bool(np.all(noise_std == 0.0))
    streams = [spawn(seed, 2) for seed in seeds]

    action = np.empty((S, horizon), dtype=np.int64)
    reward = np.empty((S, horizon))
    chosen_expected = np.empty((S, horizon))
    best_expected = np.empty((S, horizon))
    probability = np.full((S, horizon), np.nan if thompson and not probabilities else 1.0)

    # whole batches per block of pre-drawn streams
    per_case = (K * d if features else d) + 2 * K  # pre-drawn values per case and replica
    per_block = max(1, _BLOCK_VALUES // (S * per_case) // batch_size) * batch_size
    for block_start in range(0, horizon, per_block):
        C = min(per_block, horizon - block_start)
        ctx = np.stack([e.contexts(C, rng=c) for e, (c, _) in zip(envs, streams, strict=True)])
        if logistic:
            noise = np.stack([o.random((C, K)) for _, o in streams])
        else:
            noise = np.stack(
                [
                    o.standard_normal((C, K)) if e.noise_std != 0.0 else np.zeros((C, K))
                    for e, (_, o) in zip(envs, streams, strict=True)
                ]
            )
        z = None
        if thompson:
            z = np.stack([p.rng_.standard_normal((C, d if features else K)) for p in policies])
        for off in range(0, C, batch_size):
            n = min(batch_size, C - off)
            t = slice(block_start + off, block_start + off + n)
            X = np.ascontiguousarray(ctx[:, off : off + n])  # (S, n, d) or (S, n, K, d)
            if features:
                scores, mean, std = _decide_features(X, theta, A_inv, width, thompson, z, off)
            else:
                scores, mean, std, Z = _decide_disjoint(X, theta, A_inv, width, thompson, z, off)
            acts = np.argmax(scores, axis=2)  # (S, n)
            if thompson and probabilities:
                if features:
                    seen = n_updates0 + block_start + off  # each policy's n_updates_ now
                    probability[:, t] = _mc_probabilities(policies, seen, X, theta, A_inv, acts)
                else:
                    probability[:, t] = _probability_of(mean, std, acts)
            # --- outcomes and truth (envs.synthetic)
            expected = (X @ true_theta)[..., 0] if features else X @ true_theta_T
            if logistic:
                expected = expit(expected)
                full = (noise[:, off : off + n] < expected).astype(np.float64)
            elif noiseless:
                full = expected
            else:
                full = np.where(
                    noise_std == 0.0, expected, expected + noise_std * noise[:, off : off + n]
                )
            rew = np.take_along_axis(full, acts[:, :, None], axis=2)[..., 0]  # (S, n)
            action[:, t] = acts
            reward[:, t] = rew
            chosen_expected[:, t] = np.take_along_axis(expected, acts[:, :, None], axis=2)[..., 0]
            best_expected[:, t] = expected.max(axis=2)
            # --- learn: ModelPolicy._training_rows, then RidgeRegression.partial_fit
            if features:
                rows = np.take_along_axis(X, acts[:, :, None, None], axis=2)[:, :, 0]  # (S, n, d)
                ids = np.zeros_like(acts)
                if n == 1:
                    state.learn_one(rows[:, 0], ids[:, 0], rew[:, 0], None)
                else:
                    state.learn_batch(rows, ids, rew)
            elif n == 1:  # A_inv[a] x is a column the variance step computed (same GEMV call)
                state.learn_one(X[:, 0], acts[:, 0], rew[:, 0], Z)
            else:
                state.learn_batch(X, acts, rew)

    for s, (p, m) in enumerate(zip(policies, models, strict=True)):
        m.A, m.A_inv, m.b = state.A[s].copy(), state.A_inv[s].copy(), state.b[s].copy()
        m.theta, m.n_obs = state.theta[s].copy(), state.n_obs[s].copy()
        m._since_resync = state.since[s].copy()
        p.n_updates_ += horizon

    regret = best_expected - chosen_expected
    optimal = regret <= 1e-12 * np.maximum(1.0, np.abs(best_expected))
    steps = np.arange(1, horizon + 1, dtype=np.int64)
    return [
        Trace(
            step=steps.copy(),
            round=(steps - 1) // batch_size,
            action=action[s],
            reward=reward[s],
            expected_reward=chosen_expected[s],
            best_expected_reward=best_expected[s],
            regret=regret[s],
            optimal=optimal[s],
            probability=probability[s],
            policy=type(policies[s]).__name__,
            env=str(envs[s].name),
            batch_size=batch_size,
            feedback="bandit",
            has_oracle=True,
        )
        for s in range(S)
    ]


def _run_group(tasks: list[_Task]) -> list[dict[str, np.ndarray]]:
    """Replicated run of a group of sweep tasks (one policy, one environment, many seeds);
    the recorded arrays of each, as :func:`scarce.sim.sweep` records them."""
    envs, pols, streams = [], [], []
    for task in tasks:
        env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(task.root_seed), 3)
        e = task.env_spec.build(env_seed)
        envs.append(e)
        pols.append(task.policy_spec.build(e.n_actions, e.n_features, policy_seed))
        streams.append(stream_seed)
    traces = run_replicated(
        pols,
        envs,
        tasks[0].horizon,
        streams,
        batch_size=tasks[0].batch_size,
        probabilities=False,
    )
    idx = tasks[0].steps - 1
    return [
        {
            "cumulative_reward": tr.cumulative_reward[idx],
            "cumulative_expected_reward": tr.cumulative_expected_reward[idx],
            "cumulative_best_expected_reward": tr.cumulative_best_expected_reward[idx],
            "cumulative_regret": tr.cumulative_regret[idx],
            "cumulative_optimal": np.cumsum(tr.optimal)[idx],
        }
        for tr in traces
    ]


def sweep_replicated(
    policy: PolicyLike,
    env: EnvLike,
    seeds: int | Sequence[int],
    horizon: int,
    *,
    batch_size: int = 1,
    base_seed: int = 0,
    n_checkpoints: int | None = 200,
    policy_label: str = "policy",
    env_label: str = "env",
    n_jobs: int | None = 1,
    backend: Backend | None = None,
    address: str | None = None,
) -> pd.DataFrame:
    """:func:`scarce.sim.sweep` of one policy on one environment over ``seeds``, computed as
    replicated simulations; the same table, bit for bit (bandit feedback).

    Parameters
    ----------
    policy:
        LinUCB or LinTS, as in :func:`scarce.sim.sweep` (``PolicySpec``, ``(cls, params)``,
        class or name).
    env:
        ``"linear"`` or ``"logistic"`` (or a factory of those environments), as in
        :func:`scarce.sim.sweep`.
    seeds, horizon, batch_size, base_seed, n_checkpoints:
        as in :func:`scarce.sim.sweep`.
    policy_label, env_label:
        values of the ``policy`` and ``env`` columns.
    n_jobs, backend, address:
        the seeds are split into ``n_jobs`` groups of consecutive seeds, each one replicated
        simulation, run with :func:`scarce.sim.sweep.parallel_map` (default: one group, in
        this process).

    Returns
    -------
    pandas.DataFrame
        columns :data:`scarce.sim.SWEEP_COLUMNS`, one row per (seed, recorded step).
    """
    pspec, espec = as_policy_spec(policy), as_env_spec(env)
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1; got {horizon!r}")
    labels, roots = run_seeds(seeds, base_seed)
    steps = checkpoints(int(horizon), n_checkpoints)
    tasks = [
        _Task(
            index=i,
            env=env_label,
            policy=policy_label,
            seed=label,
            root_seed=root,
            env_spec=espec,
            policy_spec=pspec,
            horizon=int(horizon),
            batch_size=int(batch_size),
            feedback="bandit",
            steps=steps,
        )
        for i, (label, root) in enumerate(zip(labels, roots, strict=True))
    ]
    n_groups = default_n_jobs() if n_jobs is None else n_jobs
    if isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 1:
        raise ValueError(f"n_jobs must be an int >= 1 or None; got {n_jobs!r}")
    groups = [list(g) for g in np.array_split(np.arange(len(tasks)), min(n_groups, len(tasks)))]
    grouped = parallel_map(
        _run_group,
        [[tasks[i] for i in g] for g in groups],
        n_jobs=min(n_groups, len(groups)),
        backend=backend,
        address=address,
    )
    results = [arrays for group in grouped for arrays in group]
    return _assemble(tasks, results, steps)
