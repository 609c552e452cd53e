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
summation order is the same. Elementwise steps are exact by construction. The occasional
Cholesky resynchronisation of a model (every ``resync_every`` updates) is done per replica with
the same SciPy calls as :class:`scarce.models.RidgeRegression`.

Scope
-----
Disjoint models on shared contexts (``(n, d)``) with ``batch_size=1`` and bandit feedback,
without forgetting or windows, on :class:`~scarce.envs.LinearGaussianEnv` and
:class:`~scarce.envs.LogisticEnv` without per-action features. Everything else raises a
``ValueError`` naming what is not supported (use :func:`scarce.sim.run`). Hyperparameters
(``alpha``/``v``, ``lam``) may differ between replicas; the class, ``n_actions`` and
``n_features`` may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit, ndtr

from scarce.core.policy import SHARED_CONTEXT
from scarce.core.random import SeedLike, spawn, spawn_seeds
from scarce.envs.synthetic import LinearGaussianEnv, LogisticEnv
from scarce.models import linear
from scarce.policies.linear import LinTS, LinUCB
from scarce.sim.run import Trace
from scarce.sim.sweep import (
    Backend,
    EnvLike,
    PolicyLike,
    _assemble,
    _Task,
    as_env_spec,
    as_policy_spec,
    checkpoints,
    default_n_jobs,
    parallel_map,
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
        if e.action_features:
            raise ValueError(
                f"envs[{s}] has per-action features; replicated simulation covers shared "
                "contexts (n, d) only"
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
        if p._initialized and p.context_mode_ != SHARED_CONTEXT:
            raise ValueError(f"policies[{s}] was used with per-action features")
    return S


def run_replicated(
    policies: Sequence[LinUCB | LinTS],
    envs: Sequence[LinearGaussianEnv | LogisticEnv],
    horizon: int,
    seeds: Sequence[SeedLike],
    *,
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
        :class:`~scarce.envs.LogisticEnv`, shared contexts), with the same ``n_actions`` and
        ``n_features`` as the policies.
    horizon:
        cases decided per replica, >= 1 (one case per round).
    seeds:
        ``S`` run seeds (int, ``SeedSequence`` or ``Generator``), as ``run(..., seed=...)``.
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
    policies, envs, seeds = list(policies), list(envs), list(seeds)
    S = _check_replicas(policies, envs, seeds)
    K, d = envs[0].n_actions, envs[0].n_features
    thompson = isinstance(policies[0], LinTS)
    logistic = isinstance(envs[0], LogisticEnv)

    X0 = np.zeros((1, d))
    for p in policies:
        p._ensure_initialized(X0)  # validates parameters and seeds rng_, like a first decide
    models = [p.model_ for p in policies]
    A = np.stack([m.A for m in models])  # (S, K, d, d)
    A_inv = np.stack([m.A_inv for m in models])
    b = np.stack([m.b for m in models])  # (S, K, d)
    theta = np.stack([m.theta for m in models])
    n_obs = np.stack([m.n_obs for m in models])  # (S, K)
    since = np.stack([m._since_resync for m in models])
    resync_every = np.array([m.resync_every for m in models])
    width = np.array([float(p.v if thompson else p.alpha) for p in policies])[:, None]

    true_theta_T = np.stack([e.theta for e in envs]).swapaxes(1, 2)  # (S, d, K) like theta.T
    noise_std = np.array([0.0 if logistic else e.noise_std for e in envs])[:, None]
    streams = [spawn(seed, 2) for seed in seeds]

    action = np.empty((S, horizon), dtype=np.int64)
    reward = np.empty((S, horizon))
    chosen_expected = np.empty((S, horizon))
    best_expected = np.empty((S, horizon))
    probability = np.full((S, horizon), np.nan if thompson and not probabilities else 1.0)

    reps = np.arange(S)
    flat_base = reps * K  # flat index of (replica, action) is s * K + a
    A_f, A_inv_f = A.reshape(S * K, d, d), A_inv.reshape(S * K, d, d)
    b_f, theta_f = b.reshape(S * K, d), theta.reshape(S * K, d)
    n_obs_f, since_f = n_obs.reshape(S * K), since.reshape(S * K)
    block = max(1, _BLOCK_VALUES // (S * (d + 2 * K)))
    for start in range(0, horizon, block):
        B = min(block, horizon - start)
        ctx = np.stack([e.contexts(B, rng=c) for e, (c, _) in zip(envs, streams, strict=True)])
        if logistic:
            noise = np.stack([o.random((B, K)) for _, o in streams])
        else:
            noise = np.stack(
                [
                    o.standard_normal((B, K)) if e.noise_std != 0.0 else np.zeros((B, K))
                    for e, (_, o) in zip(envs, streams, strict=True)
                ]
            )
        if thompson:
            z = np.stack([p.rng_.standard_normal((B, K)) for p in policies])
        for i in range(B):
            t = start + i
            x = np.ascontiguousarray(ctx[:, i])  # (S, d)
            xr, xc = x[:, None, :], x[:, :, None]  # (S, 1, d) row and (S, d, 1) column views
            # --- decide: linear.predict on one case (see models.linear.predict_variance, n == 1)
            mean = (xr @ theta.swapaxes(1, 2))[:, 0]  # (S, K)
            Z = (A_inv @ xc[:, None])[..., 0]  # (S, K, d): A_inv[k] x for every action
            var = (Z @ xc)[..., 0]
            var = np.maximum(var, 0.0)
            if thompson:
                std = width * np.sqrt(var)
                scores = mean + width * np.sqrt(var) * z[:, i]
            else:
                scores = mean + width * np.sqrt(var)
            acts = np.argmax(scores, axis=1)
            if thompson and probabilities:
                probability[:, t] = _probability_of(mean, std, acts)
            # --- outcomes and truth (envs.synthetic)
            expected = (xr @ true_theta_T)[:, 0]
            if logistic:
                p_true = expit(expected)
                rew = (noise[reps, i, acts] < p_true[reps, acts]).astype(np.float64)
                expected = p_true
            elif np.all(noise_std == 0.0):
                rew = expected[reps, acts]
            else:
                rew = np.where(
                    noise_std[:, 0] == 0.0,
                    expected[reps, acts],
                    (expected + noise_std * noise[:, i])[reps, acts],
                )
            action[:, t] = acts
            reward[:, t] = rew
            chosen_expected[:, t] = expected[reps, acts]
            best_expected[:, t] = expected.max(axis=1)
            # --- learn: RidgeRegression._add with one row, sign +1. u = A_inv[a] x is the
            # column the variance step computed (same GEMV call), so it is reused.
            flat = flat_base + acts
            n_obs_f[flat] += 1.0
            since_f[flat] += 1
            u = Z.reshape(S * K, d).take(flat, axis=0)
            xu = (xr @ u[:, :, None])[:, 0, 0]
            gain = u * (1.0 / (1.0 + xu))[:, None]
            th = theta_f.take(flat, axis=0)
            xt = (xr @ th[:, :, None])[:, 0, 0]
            th += gain * (rew - xt)[:, None]
            theta_f[flat] = th
            Ai = A_inv_f.take(flat, axis=0)
            Ai -= gain[:, :, None] * u[:, None, :]
            A_inv_f[flat] = Ai
            Ak = A_f.take(flat, axis=0)
            Ak += x[:, :, None] * x[:, None, :]
            A_f[flat] = Ak
            bk = b_f.take(flat, axis=0)
            bk += rew[:, None] * x
            b_f[flat] = bk
            for s in np.flatnonzero(since_f[flat] >= resync_every):
                m = acts[s]
                c = cho_factor(A[s, m], lower=True, check_finite=False)
                A_inv[s, m] = cho_solve(c, np.eye(d), check_finite=False)
                theta[s, m] = cho_solve(c, b[s, m], check_finite=False)
                since[s, m] = 0

    for s, (p, m) in enumerate(zip(policies, models, strict=True)):
        m.A, m.A_inv, m.b, m.theta = A[s].copy(), A_inv[s].copy(), b[s].copy(), theta[s].copy()
        m.n_obs, m._since_resync = n_obs[s].copy(), since[s].copy()
        p.n_updates_ += horizon

    regret = best_expected - chosen_expected
    optimal = regret <= 1e-12 * np.maximum(1.0, np.abs(best_expected))
    steps = np.arange(1, horizon + 1, dtype=np.int64)
    return [
        Trace(
            step=steps.copy(),
            round=steps - 1,
            action=action[s],
            reward=reward[s],
            expected_reward=chosen_expected[s],
            best_expected_reward=best_expected[s],
            regret=regret[s],
            optimal=optimal[s],
            probability=probability[s],
            policy=type(policies[s]).__name__,
            env=str(envs[s].name),
            batch_size=1,
            feedback="bandit",
            has_oracle=True,
        )
        for s in range(S)
    ]


def _probability_of(mean: np.ndarray, std: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """:func:`scarce.models.linear.gaussian_argmax_probability_of` for one case per replica:
    ``mean``, ``std`` ``(S, K)``, ``actions`` ``(S,)``. Same elementwise steps; the final
    quadrature sum is a stacked ``matmul`` so that each replica gets the BLAS dot product a
    separate run computes (a single GEMV over all replicas may sum in another order)."""
    S, K = mean.shape
    rows = np.arange(S)
    std = np.maximum(std, 1e-12)
    nodes = linear._GH_NODES
    vals = mean[rows, actions][:, None] + std[rows, actions][:, None] * nodes[None, :]
    zz = (vals[:, None, :] - mean[:, :, None]) / std[:, :, None]  # (S, K, q)
    logcdf = np.log(np.maximum(ndtr(zz), 1e-300))
    keep = np.ones((S, K), dtype=bool)
    keep[rows, actions] = False
    logcdf = np.where(keep[:, :, None], logcdf, 0.0)
    dens = np.exp(logcdf.sum(axis=1))[:, None, :]  # (S, 1, q)
    return np.clip((dens @ linear._GH_WEIGHTS)[:, 0], 0.0, 1.0)


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
    traces = run_replicated(pols, envs, tasks[0].horizon, streams, probabilities=False)
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
    base_seed: int = 0,
    n_checkpoints: int | None = 200,
    policy_label: str = "policy",
    env_label: str = "env",
    n_jobs: int | None = 1,
    backend: Backend | None = None,
    address: str | None = None,
) -> pd.DataFrame:
    """:func:`scarce.sim.sweep` of one policy on one environment over ``seeds``, computed as
    replicated simulations; the same table, bit for bit (``batch_size=1``, bandit feedback).

    Parameters
    ----------
    policy:
        LinUCB or LinTS, as in :func:`scarce.sim.sweep` (``PolicySpec``, ``(cls, params)``,
        class or name).
    env:
        ``"linear"`` or ``"logistic"`` (or a factory of those environments), as in
        :func:`scarce.sim.sweep`.
    seeds, horizon, base_seed, n_checkpoints:
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
            batch_size=1,
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
