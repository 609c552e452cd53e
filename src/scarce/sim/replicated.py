"""Replicated simulation: ``S`` independent runs of one policy class as one vectorised
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
``B`` as in ``B`` calls of size 1. The arithmetic is the separate runs' own: the kernels of
:mod:`scarce.models.linear` and :func:`scarce.models.row_step.rank_one_update` take a leading
batch axis, and their batched form makes the same BLAS call on each replica's slice, with the
same shapes and memory layout, as an unbatched call (NumPy's stacked ``matmul`` calls the 2-D
routine once per slice), so even summation orders agree.

Plugging a policy family in
---------------------------
The loop here owns the environments (contexts, outcomes, truth) and the trace; a policy
class takes part by a classmethod hook ``_replicated(policies, action_features)`` that
returns an object with four methods (:class:`ReplicatedPolicies`):

* ``draws(n_cases)``: the policies' own random numbers for the next ``n_cases`` cases,
  ``(S, n_cases, ...)``, drawn from each policy's generator exactly as a separate run would
  draw them (None for deterministic policies);
* ``decide(X, draws)``: decisions on ``X`` ``(S, n, ...)`` as a
  :class:`~scarce.policies.linear.ReplicaDecision` (actions ``(S, n)``, their
  probabilities or a function computing them, and ``info`` for ``learn``);
* ``learn(X, decision, rewards)``: bandit feedback ``(S, n)``;
* ``finish()``: write the learned state back into the ``S`` policy objects.

The hook raises ``ValueError`` for settings it does not cover. :class:`LinUCB` and
:class:`LinTS` plug in through :class:`~scarce.policies.linear.LinearReplicas`,
:class:`~scarce.structured.MixedEffectTS` and :class:`~scarce.structured.HierarchicalTS`
through :class:`~scarce.structured.replicated.MixedEffectReplicas`.

Environments likewise: the loop draws contexts with each environment's own ``contexts``, and
an environment class declares ``_replicated_truth(envs)`` returning a
:class:`ReplicatedTruth` (outcome noise drawn per replica, expected and realised rewards of
every action); :class:`~scarce.envs.LinearGaussianEnv` and :class:`~scarce.envs.LogisticEnv`
are built in (:func:`replicated_truth`), the structured environments plug in through
:class:`~scarce.structured.replicated.StructuredTruth`.

Environments with a budget take part by a second hook, a classmethod
``_replicated_env(envs, seeds)`` of their class (``block(C)``: the contexts and outcome
variates of the next ``C`` rounds; ``outcomes(X, actions, variates)``: rewards and extras;
``expected_rewards(X)``); :func:`_run_budgeted` is then the loop, with what
:func:`scarce.sim.run` adds for a budget (the loop's ledger and eligible mask, the costs
booked, ``budget_left``, the extras given to the policies that declare them, ``Decision.info``
recorded), and the family's ``decide`` also takes ``eligible``. :mod:`scarce.budget.replicated`
has both hooks for ``KnapsackBandit`` / ``Deferral`` on ``SyntheticDeferral``.

Scope
-----
Policies with a ``_replicated`` hook (LinUCB and LinTS: both context layouts, without
forgetting or windows; MixedEffectTS and HierarchicalTS: see
:class:`~scarce.structured.replicated.MixedEffectReplicas`), any ``batch_size``, bandit
feedback, on environments with a replicated outcome model
(:class:`~scarce.envs.LinearGaussianEnv`, :class:`~scarce.envs.LogisticEnv`,
:class:`~scarce.structured.MixedEffectEnv`, :class:`~scarce.structured.MovieLensEnv`; no
budget, eligibility masks or delays); the budgeted learners on the synthetic deferral
environments (``batch_size=1``, see :mod:`scarce.budget.replicated`). Everything else raises a
``ValueError`` naming what is not
supported (use :func:`scarce.sim.run`). LinTS's choice probabilities with per-action features
are Monte-Carlo estimates from a per-policy stream; they are computed replica by replica (as
costly as in separate runs): pass ``probabilities=False`` when they are not needed.
Hyperparameters may differ between replicas; the class, ``n_actions`` and ``n_features`` may
not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import expit

from scarce.core.ledger import TOLERANCE
from scarce.core.random import SeedLike, spawn, spawn_seeds
from scarce.envs.synthetic import LinearGaussianEnv, LogisticEnv
from scarce.policies.linear import ReplicaDecision
from scarce.sim.parallel import Backend, default_n_jobs, parallel_map
from scarce.sim.run import Trace
from scarce.sim.sweep import (
    EnvLike,
    PolicyLike,
    Task,
    as_env_spec,
    as_policy_spec,
    assemble,
    checkpoints,
    recorded,
    run_seeds,
)


class ReplicatedPolicies(Protocol):
    """What a policy family's ``_replicated(policies, action_features)`` hook returns: ``S``
    policies of one class as one computation (see the module docstring)."""

    def draws(self, n_cases: int) -> np.ndarray | None: ...

    def decide(self, X: np.ndarray, draws: np.ndarray | None) -> ReplicaDecision: ...

    def learn(
        self, X: np.ndarray, decision: ReplicaDecision, rewards: np.ndarray, **extras: Any
    ) -> None: ...

    def finish(self) -> None: ...


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
    # the class itself must declare the hook: a subclass may decide or learn differently
    if "_replicated" not in cls.__dict__:
        raise ValueError(
            "policies must be LinUCB or LinTS instances (or of another class with a "
            f"replicated form, a _replicated hook); got {cls.__name__}"
        )
    K, d = envs[0].n_actions, envs[0].n_features
    for s, (p, e) in enumerate(zip(policies, envs, strict=True)):
        if type(p) is not cls:
            raise ValueError(
                f"policies must all be {cls.__name__}; policies[{s}] is {type(p).__name__}"
            )
        if (e.n_actions, e.n_features) != (K, d) or (p.n_actions, p.n_features) != (K, d):
            raise ValueError(
                f"every policy and env must have n_actions={K} and n_features={d}; replica {s} "
                f"has policy ({p.n_actions}, {p.n_features}) and env "
                f"({e.n_actions}, {e.n_features})"
            )
    return S


class ReplicatedTruth(Protocol):
    """What an environment class's ``_replicated_truth(envs)`` hook returns: the outcome
    model of ``S`` environments of one class as one computation (contexts come from each
    environment's own :meth:`~scarce.envs.Environment.contexts`)."""

    #: contexts are ``(n, K, d)`` (one per action) rather than ``(n, d)``
    action_features: bool

    def noise(self, rngs: Sequence[np.random.Generator], n_cases: int) -> np.ndarray:
        """``(S, n_cases, ...)`` outcome noise, drawn from ``rngs[s]`` as separate runs
        draw it for ``n_cases`` cases."""
        ...

    def outcomes(self, X: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected rewards ``(S, n, K)`` and realised rewards of every action ``(S, n, K)``
        on contexts ``X`` with ``noise`` (a slice of :meth:`noise`)."""
        ...


class _SyntheticTruth:
    """:class:`~scarce.envs.LinearGaussianEnv` and :class:`~scarce.envs.LogisticEnv`."""

    def __init__(self, envs: Sequence[LinearGaussianEnv | LogisticEnv]) -> None:
        cls = type(envs[0])
        self.action_features = bool(envs[0].action_features)  # (n, K, d), one shared model
        for s, e in enumerate(envs):
            if type(e) is not cls:
                raise ValueError(
                    f"envs must all be {cls.__name__}; envs[{s}] is {type(e).__name__}"
                )
            if e.action_features != self.action_features:
                raise ValueError(
                    f"envs must all have the same action_features; envs[{s}] has "
                    f"{e.action_features}, envs[0] {envs[0].action_features}"
                )
        self.logistic = cls is LogisticEnv
        if self.action_features:
            self.theta = np.stack([e.theta for e in envs])[:, None, :, None]  # (S, 1, d, 1)
        else:
            self.theta_T = np.stack([e.theta for e in envs]).swapaxes(1, 2)  # (S, d, K)
        self.noise_std = np.array([0.0 if self.logistic else e.noise_std for e in envs])
        self.noise_std = self.noise_std[:, None, None]
        self.noiseless = bool(np.all(self.noise_std == 0.0))
        self.K = envs[0].n_actions

    def noise(self, rngs: Sequence[np.random.Generator], n_cases: int) -> np.ndarray:
        shape = (n_cases, self.K)
        if self.logistic:
            return np.stack([o.random(shape) for o in rngs])
        return np.stack(
            [
                o.standard_normal(shape) if sd != 0.0 else np.zeros(shape)
                for o, sd in zip(rngs, self.noise_std[:, 0, 0], strict=True)
            ]
        )

    def outcomes(self, X: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        expected = (X @ self.theta)[..., 0] if self.action_features else X @ self.theta_T
        if self.logistic:
            expected = expit(expected)
            return expected, (noise < expected).astype(np.float64)
        if self.noiseless:
            return expected, expected
        return expected, np.where(
            self.noise_std == 0.0, expected, expected + self.noise_std * noise
        )


def replicated_truth(envs: Sequence[Any]) -> ReplicatedTruth:
    """The outcome model of ``envs`` (``S`` environments of one class) for the replicated
    loop: built in for :class:`~scarce.envs.LinearGaussianEnv` and
    :class:`~scarce.envs.LogisticEnv`, else the class's ``_replicated_truth(envs)`` hook
    (which raises ``ValueError`` for what it does not cover)."""
    cls = type(envs[0])
    if cls in (LinearGaussianEnv, LogisticEnv):
        return _SyntheticTruth(envs)
    # the class itself must declare the hook: a subclass may draw outcomes differently
    if "_replicated_truth" not in cls.__dict__:
        raise ValueError(
            "envs must be LinearGaussianEnv or LogisticEnv instances (or of another class with "
            "a replicated form: a _replicated_truth hook, or a _replicated_env hook for "
            f"environments with a budget); got {cls.__name__}"
        )
    return cls._replicated_truth(envs)


def run_replicated(
    policies: Sequence[Any],
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
        ``S`` instances of one class with a replicated form (LinUCB, LinTS, MixedEffectTS or
        HierarchicalTS; fresh or already trained; each is updated in place, exactly as
        :func:`scarce.sim.run` would).
    envs:
        ``S`` environments of one class with a replicated outcome model
        (:class:`~scarce.envs.LinearGaussianEnv`, :class:`~scarce.envs.LogisticEnv`,
        :class:`~scarce.structured.MixedEffectEnv` or :class:`~scarce.structured.MovieLensEnv`)
        and one context layout, with the same ``n_actions`` and ``n_features`` as the
        policies.
    horizon:
        cases decided per replica, >= 1.
    seeds:
        ``S`` run seeds (int, ``SeedSequence`` or ``Generator``), as ``run(..., seed=...)``.
    batch_size:
        cases decided per round before the policies learn, as ``run(..., batch_size=...)``.
    probabilities:
        record the choice probabilities a policy computes on demand (LinTS's exact
        Gauss-Hermite quadrature, meTS's Rao-Blackwellised Monte Carlo, as
        :func:`scarce.sim.run` does; about as costly as the rest of a round, or more). False leaves them NaN (LinUCB's are always 1).

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
    if "_replicated_env" in type(envs[0]).__dict__:
        for s_, e in enumerate(envs):
            if type(e) is not type(envs[0]):
                raise ValueError(
                    f"envs must all be {type(envs[0]).__name__}; envs[{s_}] is {type(e).__name__}"
                )
        return _run_budgeted(policies, envs, horizon, seeds, batch_size, probabilities)
    K, d = envs[0].n_actions, envs[0].n_features
    truth = replicated_truth(envs)
    features = truth.action_features
    family: ReplicatedPolicies = type(policies[0])._replicated(policies, features)
    streams = [spawn(seed, 2) for seed in seeds]

    action = np.empty((S, horizon), dtype=np.int64)
    reward = np.empty((S, horizon))
    chosen_expected = np.empty((S, horizon))
    best_expected = np.empty((S, horizon))
    probability = np.full((S, horizon), np.nan)

    # whole batches per block of pre-drawn streams
    per_case = (K * d if features else d) + 2 * K  # pre-drawn values per case and replica
    per_block = max(1, _BLOCK_VALUES // (S * per_case) // batch_size) * batch_size
    for block_start in range(0, horizon, per_block):
        C = min(per_block, horizon - block_start)
        ctx = np.stack([e.contexts(C, rng=c) for e, (c, _) in zip(envs, streams, strict=True)])
        noise = truth.noise([o for _, o in streams], C)
        draws = family.draws(C)
        for off in range(0, C, batch_size):
            n = min(batch_size, C - off)
            t = slice(block_start + off, block_start + off + n)
            X = np.ascontiguousarray(ctx[:, off : off + n])  # (S, n, d) or (S, n, K, d)
            decision = family.decide(X, None if draws is None else draws[:, off : off + n])
            acts = decision.actions  # (S, n)
            if not callable(decision.probabilities):
                probability[:, t] = decision.probabilities
            elif probabilities:
                probability[:, t] = decision.probabilities()
            expected, full = truth.outcomes(X, noise[:, off : off + n])
            rew = np.take_along_axis(full, acts[:, :, None], axis=2)[..., 0]  # (S, n)
            action[:, t] = acts
            reward[:, t] = rew
            chosen_expected[:, t] = np.take_along_axis(expected, acts[:, :, None], axis=2)[..., 0]
            best_expected[:, t] = expected.max(axis=2)
            family.learn(X, decision, rew)
    family.finish()

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


def _run_budgeted(
    policies: list[Any],
    envs: list[Any],
    horizon: int,
    seeds: list[SeedLike],
    batch_size: int,
    probabilities: bool,
) -> list[Trace]:
    """:func:`run_replicated` on environments with a replicated form of their own (a
    ``_replicated_env(envs, seeds)`` hook: :mod:`scarce.budget.replicated`), with what
    :func:`scarce.sim.run` adds for a budget: the loop's ledger (its eligible mask, the costs
    booked, ``budget_left``), the outcome extras given to the policies that declare them and
    recorded, and the policies' ``Decision.info`` recorded."""
    if batch_size != 1:
        raise ValueError(f"replicated budgeted runs need batch_size=1; got {batch_size}")
    S = len(policies)
    budgets = [e.budget(horizon) for e in envs]
    if any(b is None for b in budgets):
        raise ValueError("replicated runs on these environments need a budget (budget_rate)")
    world = type(envs[0])._replicated_env(envs, seeds)
    family = type(policies[0])._replicated(policies, False)
    if not getattr(family, "takes_eligible", False):
        raise ValueError(
            f"{type(policies[0]).__name__} has no replicated form for budgeted environments "
            "(one whose decide takes the loop's eligible mask: KnapsackBandit, Deferral)"
        )
    keys = set(policies[0].update_keywords)
    B = np.stack([np.asarray(b, dtype=np.float64) for b in budgets])  # (S, m)
    cb = np.stack([np.asarray(e.cost_bound, dtype=np.float64) for e in envs])  # (S, K, m)
    free = ~cb.any(axis=2)
    spent = np.zeros_like(B)
    rows = np.arange(S)
    action = np.empty((S, horizon), dtype=np.int64)
    reward = np.empty((S, horizon))
    chosen_expected = np.empty((S, horizon))
    best_expected = np.empty((S, horizon))
    probability = np.full((S, horizon), np.nan)
    extras: dict[str, np.ndarray] = {"budget_left": np.empty((S, horizon, B.shape[1]))}
    info: dict[str, np.ndarray] = {}
    block = 1024
    for start in range(0, horizon, block):
        contexts, variates = world.block(min(block, horizon - start))
        for i in range(contexts.shape[1]):
            t = start + i
            X = np.ascontiguousarray(contexts[:, i])  # (S, 1, d)
            # the loop's ledger (Ledger.affordable with nothing reserved)
            eligible = (cb <= (B - spent)[:, None, :] + TOLERANCE).all(axis=2) | free
            decision = family.decide(X, None, eligible=eligible[:, None, :])
            acts = decision.actions  # (S, 1)
            rew, outcome = world.outcomes(X, acts, variates[:, i])
            costs = outcome["costs"][:, 0]  # (S, m)
            bound = cb[rows, acts[:, 0]]
            if not ((costs >= 0) & (costs <= bound + 1e-12)).all():
                raise ValueError("an environment reported costs above its cost bound")
            spent = spent + costs
            extras["budget_left"][:, t] = B - spent
            family.learn(X, decision, rew, **{k: v for k, v in outcome.items() if k in keys})
            for name, values in outcome.items():
                _put(extras, name, t, values, horizon)
            for name, values in decision.info.items():
                _put(info, name, t, values, horizon)
            expected = world.expected_rewards(X)[:, 0]  # (S, K)
            action[:, t] = acts[:, 0]
            reward[:, t] = rew[:, 0]
            chosen_expected[:, t] = expected[rows, acts[:, 0]]
            best_expected[:, t] = expected.max(axis=1)
            if probabilities:
                probability[:, t] = decision.probabilities[:, 0]
    family.finish()
    regret = best_expected - chosen_expected
    optimal = regret <= 1e-12 * np.maximum(1.0, np.abs(best_expected))
    steps = np.arange(1, horizon + 1, dtype=np.int64)
    oracle = bool(getattr(envs[0], "has_oracle", False))
    return [
        Trace(
            step=steps.copy(),
            round=steps - 1,
            action=action[s],
            reward=reward[s],
            expected_reward=chosen_expected[s],
            best_expected_reward=best_expected[s],
            regret=regret[s],
            optimal=optimal[s] if oracle else np.zeros(horizon, bool),
            probability=probability[s],
            policy=type(policies[s]).__name__,
            env=str(envs[s].name),
            batch_size=1,
            feedback="bandit",
            has_oracle=oracle,
            extras={name: values[s] for name, values in extras.items()},
            info={name: values[s] for name, values in info.items()},
            budget=B[s].copy(),
        )
        for s in range(S)
    ]


def _put(arrays: dict[str, np.ndarray], name: str, t: int, values: Any, horizon: int) -> None:
    """Record ``values`` ``(S, 1, ...)`` of round ``t`` in ``arrays[name]`` ``(S, horizon,
    ...)`` (allocated on first use, NaN / 0 filled as :func:`scarce.sim.run` does)."""
    values = np.asarray(values)
    arr = arrays.get(name)
    if arr is None:
        fill: Any = np.nan if values.dtype.kind == "f" else 0
        arr = np.full((values.shape[0], horizon, *values.shape[2:]), fill, dtype=values.dtype)
        arrays[name] = arr
    arr[:, t] = values[:, 0]


def _run_group(tasks: list[Task]) -> list[dict[str, np.ndarray]]:
    """Replicated run of a group of sweep tasks (one policy, one environment, many seeds);
    the recorded arrays of each, as :func:`scarce.sim.sweep` records them."""
    envs, pols, streams = [], [], []
    for task in tasks:
        env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(task.root_seed), 3)
        e = task.env_spec.build(env_seed)
        envs.append(e)
        pols.append(task.policy_spec.build_for(e, policy_seed, task.horizon))
        streams.append(stream_seed)
    traces = run_replicated(
        pols,
        envs,
        tasks[0].horizon,
        streams,
        batch_size=tasks[0].batch_size,
        probabilities=False,
    )
    return [recorded(tr, tasks[0].steps) for tr in traces]


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
        LinUCB, LinTS, MixedEffectTS or HierarchicalTS, as in :func:`scarce.sim.sweep`
        (``PolicySpec``, ``(cls, params)``, class or name).
    env:
        ``"linear"`` or ``"logistic"`` (or a factory of those environments, or of
        :class:`~scarce.structured.MixedEffectEnv` / :class:`~scarce.structured.MovieLensEnv`),
        as in :func:`scarce.sim.sweep`.
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
        Task(
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
    return assemble(tasks, results, steps)
