"""Grids of runs (environments x policies x seeds) on local processes or Ray, as one tidy table.

Seeding
-------
Every run gets a *root seed*: with ``seeds=n`` the roots are
``scarce.core.random.spawn_seeds(base_seed, n)`` (children of
``numpy.random.SeedSequence(base_seed)``) and the ``seed`` column holds ``0 .. n-1``; with an
explicit list ``seeds=[s0, s1, ...]`` each value is itself the root and the ``seed`` column
holds it. Three independent seeds are then spawned from the root: one to build the
environment (e.g. the true parameters of a synthetic problem; an explicit ``seed`` in the
environment's parameters overrides it and fixes the instance across runs), one for the run's
context and outcome streams (see :func:`scarce.sim.run`) and one for the policy. The root
depends only on the seed index, so every policy faces the same environment instance and the
same cases for a given seed (common random numbers), and results do not depend on the number
of processes or on the order in which runs finish.

Recorded steps
--------------
Storing every case of every run makes large files, so by default cumulative quantities are
recorded at about ``n_checkpoints=200`` steps: half log-spaced (dense early, where the curves
bend) and half evenly spaced, always including steps 1, ``horizon // 2`` and ``horizon``
(see :func:`checkpoints`). ``n_checkpoints=None`` records every step.

Backends
--------
Runs execute through :func:`scarce.sim.parallel_map` (:mod:`scarce.sim.parallel`): local worker
processes by default, or Ray.

Streaming and resuming
----------------------
With ``out=PATH``, :func:`sweep` writes each run to ``PATH.parts/<key>.parquet`` as soon as it
finishes (atomically: a temporary file, then a rename), then the whole table to ``PATH``. The
key is a hash of everything that determines the run (labels, seed, root seed, specs, horizon,
batch size, feedback, recorded steps). ``resume=True`` loads the parts already there and
runs only the missing ones, so an interrupted sweep loses at most the runs in flight; a
changed setting changes the key, so stale parts are never reused. The parts folder is kept
(it is small, and it makes a repeated ``resume=True`` free).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.core.policy import Policy
from scarce.core.random import spawn_seeds
from scarce.envs.base import Environment
from scarce.sim.parallel import Backend, parallel_map
from scarce.sim.run import Feedback, run

#: columns of the table :func:`sweep` returns, in order; environments with a budget add
#: ``budget`` and ``cumulative_cost`` (both summed over resources), and each per-case metric
#: of an environment (:meth:`~scarce.envs.Environment.case_metrics`) adds
#: ``cumulative_<metric>``
SWEEP_COLUMNS = (
    "env",
    "policy",
    "seed",
    "step",
    "cumulative_reward",
    "cumulative_expected_reward",
    "cumulative_best_expected_reward",
    "cumulative_regret",
    "cumulative_optimal",
)

#: constructor arguments a sweep sets itself, from the environment and the run seed
RESERVED_POLICY_PARAMS = ("n_actions", "n_features", "seed")


@dataclass(frozen=True)
class PolicySpec:
    """How to build a policy for a run: a class (or its name in
    :data:`scarce.policies.POLICIES`) and constructor keywords.

    ``n_actions`` and ``n_features`` come from the environment and ``seed`` from the run,
    unless given in ``params``.
    """

    policy: type[Policy] | str
    params: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> type[Policy]:
        """The policy class."""
        if isinstance(self.policy, str):
            from scarce.policies import get_policies

            POLICIES = get_policies()
            if self.policy not in POLICIES:
                raise ValueError(
                    f"unknown policy {self.policy!r}; valid policies: {', '.join(sorted(POLICIES))}"
                )
            return POLICIES[self.policy]
        if isinstance(self.policy, type) and issubclass(self.policy, Policy):
            return self.policy
        raise TypeError(f"policy must be a Policy subclass or a policy name; got {self.policy!r}")

    def build(self, n_actions: int, n_features: int, seed: int | None) -> Policy:
        """A fresh policy for an environment with ``n_actions`` actions and ``n_features`` features."""
        kwargs: dict[str, Any] = {"n_actions": n_actions, "n_features": n_features, "seed": seed}
        kwargs.update(self.params)
        return self.resolve()(**kwargs)

    def build_for(self, env: Environment, seed: int | None, horizon: int) -> Policy:
        """A fresh policy for a run of ``horizon`` cases on ``env``: ``n_actions`` and
        ``n_features`` from the environment, then the parameters it suggests
        (:meth:`~scarce.envs.Environment.policy_params`: a budget, the horizon, priors...)
        that the policy's constructor takes, then ``params``, which win."""
        cls = self.resolve()
        accepted = set(cls.param_names())
        kwargs: dict[str, Any] = {
            "n_actions": env.n_actions,
            "n_features": env.n_features,
            "seed": seed,
        }
        # only what the policy takes and the user left unset (some suggestions are costly)
        wanted = accepted - set(self.params)
        kwargs.update({k: v for k, v in _suggestions(env, horizon, wanted).items() if k in wanted})
        kwargs.update(self.params)
        return cls(**kwargs)


def _suggestions(env: Environment, horizon: int, names: set[str]) -> dict[str, Any]:
    """``env.policy_params(horizon, names)``; an environment written before ``names``
    existed (``policy_params(self, horizon)``) is asked for everything."""
    try:
        takes_names = "names" in inspect.signature(env.policy_params).parameters
    except (TypeError, ValueError):  # no signature to read: ask the old way
        takes_names = False
    return env.policy_params(horizon, names) if takes_names else env.policy_params(horizon)


@dataclass(frozen=True)
class EnvSpec:
    """How to build an environment for a run; picklable, so it can travel to a worker.

    Parameters
    ----------
    factory:
        a name understood by :func:`scarce.envs.make_env` (``"digits"``, ``"linear"``, ...) or a
        module-level callable ``factory(seed=..., **params) -> Environment``.
    params:
        keyword arguments for the factory. A ``seed`` here fixes the instance for every run;
        otherwise each run passes its own environment seed.
    """

    factory: str | Callable[..., Environment]
    params: Mapping[str, Any] = field(default_factory=dict)

    def build(self, seed: int | None) -> Environment:
        """Build the environment with ``seed`` (unless ``params`` fix one)."""
        kwargs = dict(self.params)
        seed = kwargs.pop("seed", seed)
        if isinstance(self.factory, str):
            from scarce.envs import make_env

            return make_env(self.factory, seed=seed, **kwargs)
        return self.factory(seed=seed, **kwargs)


PolicyLike = PolicySpec | tuple[Any, Mapping[str, Any]] | type | str
EnvLike = EnvSpec | tuple[Any, Mapping[str, Any]] | str | Callable[..., Environment]


def as_policy_spec(spec: PolicyLike) -> PolicySpec:
    """Normalise ``PolicySpec | (cls_or_name, params) | cls | name`` to a :class:`PolicySpec`."""
    if isinstance(spec, PolicySpec):
        out = spec
    elif isinstance(spec, tuple) and len(spec) == 2:
        out = PolicySpec(spec[0], dict(spec[1]))
    elif isinstance(spec, (str, type)):
        out = PolicySpec(spec)
    else:
        raise TypeError(f"cannot make a policy spec from {spec!r}; use PolicySpec(cls, params)")
    out.resolve()
    return out


def as_env_spec(spec: EnvLike) -> EnvSpec:
    """Normalise ``EnvSpec | (factory, params) | name | callable`` to an :class:`EnvSpec`."""
    if isinstance(spec, EnvSpec):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        return EnvSpec(spec[0], dict(spec[1]))
    if isinstance(spec, str) or callable(spec):
        return EnvSpec(spec)
    raise TypeError(f"cannot make an environment spec from {spec!r}; use EnvSpec(name, params)")


def checkpoints(horizon: int, n: int | None = 200) -> np.ndarray:
    """Sorted unique 1-based steps at which a sweep records cumulative quantities.

    About ``n`` steps: ``n // 2`` log-spaced and ``n // 2`` evenly spaced over
    ``1 .. horizon``, plus 1, ``horizon // 2`` and ``horizon``. ``n=None`` (or
    ``n >= horizon``) gives every step.
    """
    if n is None or n >= horizon:
        return np.arange(1, horizon + 1, dtype=np.int64)
    half = max(n // 2, 1)
    log = np.geomspace(1, horizon, half)
    lin = np.linspace(1, horizon, half)
    extra = [1, max(horizon // 2, 1), horizon]
    steps = np.unique(np.concatenate([np.rint(log), np.rint(lin), extra]).astype(np.int64))
    return steps[(steps >= 1) & (steps <= horizon)]


def run_seeds(seeds: int | Sequence[int], base_seed: int = 0) -> tuple[list[int], list[int]]:
    """``(labels, roots)`` for ``seeds`` (see the module docstring)."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(
                f"seeds must be >= 1 (a number of seeds) or a list of ints; got {seeds}"
            )
        return list(range(int(seeds))), spawn_seeds(int(base_seed), int(seeds))
    values = [int(s) for s in seeds]
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise ValueError(
            f"seeds must be a non-empty list of distinct non-negative ints; got {seeds!r}"
        )
    return values, values


@dataclass(frozen=True)
class Task:
    """Everything one run of a sweep needs; plain data, so it pickles to a worker."""

    index: int
    env: str
    policy: str
    seed: int
    root_seed: int
    env_spec: EnvSpec
    policy_spec: PolicySpec
    horizon: int
    batch_size: int
    feedback: str
    steps: np.ndarray
    delay: Any = None


def _execute(task: Task) -> tuple[int, dict[str, np.ndarray]]:
    """Run one task; returns its index and the cumulative arrays at ``task.steps``."""
    env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(task.root_seed), 3)
    env = task.env_spec.build(env_seed)
    policy = task.policy_spec.build_for(env, policy_seed, task.horizon)
    # BLAS is single-threaded here already: parallel_map wraps every call
    trace = run(
        policy,
        env,
        task.horizon,
        batch_size=task.batch_size,
        seed=stream_seed,
        feedback=task.feedback,  # type: ignore[arg-type]
        delay=task.delay,
        record_probabilities=False,  # not in the sweep table; costly for some TS policies
    )
    return task.index, recorded(trace, task.steps)


def recorded(trace: Any, steps: np.ndarray) -> dict[str, np.ndarray]:
    """The sweep table's columns of one run (a :class:`~scarce.sim.Trace`) at ``steps``."""
    idx = steps - 1
    out = {
        "cumulative_reward": trace.cumulative_reward[idx],
        "cumulative_expected_reward": trace.cumulative_expected_reward[idx],
        "cumulative_best_expected_reward": trace.cumulative_best_expected_reward[idx],
        "cumulative_regret": trace.cumulative_regret[idx],
        "cumulative_optimal": np.cumsum(trace.optimal)[idx],
    }
    if trace.budget is not None:
        out["budget"] = np.full(idx.shape, float(trace.budget.sum()))
        out["cumulative_cost"] = np.cumsum(trace.extras["costs"].sum(axis=1))[idx]
    for name, values in trace.extras.items():
        if name.startswith("metric_"):
            out[f"cumulative_{name.removeprefix('metric_')}"] = np.cumsum(values)[idx]
    return out


def _describe(obj: Any) -> Any:
    """A stable, JSON-able description of a spec component (no memory addresses)."""
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    if isinstance(obj, np.integer | np.floating | np.bool_):
        return obj.item()
    if isinstance(obj, Mapping):
        return {str(k): _describe(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [_describe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()}
    if isinstance(obj, type) or callable(obj):
        return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    return repr(obj)


def run_key(task: Task) -> str:
    """Hex key of everything that determines a sweep run (its part file's name)."""
    desc = {
        "env": task.env,
        "policy": task.policy,
        "seed": task.seed,
        "root_seed": task.root_seed,
        "env_spec": [_describe(task.env_spec.factory), _describe(task.env_spec.params)],
        "policy_spec": [_describe(task.policy_spec.policy), _describe(task.policy_spec.params)],
        "horizon": task.horizon,
        "batch_size": task.batch_size,
        "feedback": task.feedback,
        "steps": _describe(np.asarray(task.steps, dtype=np.int64)),
    }
    if task.delay is not None:  # keys of runs without delay are unchanged
        desc["delay"] = _describe(task.delay)
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:24]


def _write_part(parts: Path, task: Task, arrays: dict[str, np.ndarray]) -> None:
    frame = pd.DataFrame({"step": task.steps, **arrays})
    final = parts / f"{run_key(task)}.parquet"
    tmp = parts / f".{final.name}.{os.getpid()}.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, final)


def _read_part(parts: Path, task: Task) -> dict[str, np.ndarray] | None:
    path = parts / f"{run_key(task)}.parquet"
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - an unreadable part is simply redone
        return None
    if list(frame.columns[: len(SWEEP_COLUMNS) - 3]) != [
        "step",
        *SWEEP_COLUMNS[4:],
    ] or not np.array_equal(frame["step"].to_numpy(), task.steps):
        return None
    return {name: frame[name].to_numpy() for name in frame.columns[1:]}


def parts_dir(out: str | os.PathLike[str]) -> Path:
    """The folder where :func:`sweep` streams the runs of a sweep written to ``out``."""
    path = Path(out)
    return path.with_name(path.name + ".parts")


def sweep(
    policies: Mapping[str, PolicyLike],
    envs: Mapping[str, EnvLike],
    seeds: int | Sequence[int],
    horizon: int,
    *,
    batch_size: int = 1,
    feedback: Feedback = "bandit",
    base_seed: int = 0,
    n_checkpoints: int | None = 200,
    n_jobs: int | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
    backend: Backend | None = None,
    address: str | None = None,
    delay: Any = None,
) -> pd.DataFrame:
    """Run every policy on every environment for every seed.

    Parameters
    ----------
    policies:
        label -> :class:`PolicySpec`, ``(class or name, params)``, class or name.
    envs:
        label -> :class:`EnvSpec`, ``(make_env name or module-level factory, params)``,
        name or factory. Must be picklable when ``n_jobs > 1``.
    seeds:
        number of seeds, or an explicit list of root seeds (see the module docstring).
    horizon:
        cases decided per run.
    batch_size, feedback:
        passed to :func:`scarce.sim.run`.
    base_seed:
        root of the seed tree when ``seeds`` is a number.
    n_checkpoints:
        about how many steps to record per run (see :func:`checkpoints`); None for all.
    n_jobs:
        worker processes; default ``min(2, cpu count)``. ``1`` runs in this process.
    out:
        if given, the table is also written there as Parquet, and each run is streamed to
        ``out.parts/`` as it finishes (see "Streaming and resuming" in the module docstring).
    progress:
        called as ``progress(completed_runs, total_runs)`` after each run (and once with the
        number of runs already done: 0, or those resumed).
    resume:
        with ``out``, reuse the runs already streamed to ``out.parts/`` and run only the rest.
    backend, address:
        where the runs execute (see :func:`parallel_map`); None: the enclosing
        :func:`backend` context, by default local processes.
    delay:
        None, or a :class:`scarce.feedback.DelayModel` applied to every run (passed to
        :func:`scarce.sim.run`; it must pickle for worker processes).

    Returns
    -------
    pandas.DataFrame
        tidy, one row per (env, policy, seed, recorded step), columns :data:`SWEEP_COLUMNS`,
        ordered by env, policy, seed and step as given. ``cumulative_optimal`` counts cases
        where an optimal action was chosen. Oracle-based columns are NaN for environments
        without an oracle.
    """
    if not policies:
        raise ValueError("policies must name at least one policy")
    if not envs:
        raise ValueError("envs must name at least one environment")
    pspecs = {str(k): as_policy_spec(v) for k, v in policies.items()}
    especs = {str(k): as_env_spec(v) for k, v in envs.items()}
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1; got {horizon!r}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    if feedback not in ("bandit", "full"):
        raise ValueError(f"feedback must be 'bandit' or 'full'; got {feedback!r}")
    labels, roots = run_seeds(seeds, base_seed)
    steps = checkpoints(int(horizon), n_checkpoints)

    tasks = [
        Task(
            index=i,
            env=e,
            policy=p,
            seed=label,
            root_seed=root,
            env_spec=especs[e],
            policy_spec=pspecs[p],
            horizon=int(horizon),
            batch_size=int(batch_size),
            feedback=feedback,
            steps=steps,
            delay=delay,
        )
        for i, (e, p, (label, root)) in enumerate(
            (e, p, s) for e in especs for p in pspecs for s in zip(labels, roots, strict=True)
        )
    ]
    if not isinstance(resume, bool | np.bool_):
        raise TypeError(f"resume must be a bool; got {resume!r}")
    if resume and out is None:
        raise ValueError("resume=True needs out=PATH (where the finished runs were streamed)")
    total = len(tasks)
    results: list[dict[str, np.ndarray] | None] = [None] * total
    parts = None
    if out is not None:
        parts = parts_dir(out)
        parts.mkdir(parents=True, exist_ok=True)
        if resume:
            for task in tasks:
                results[task.index] = _read_part(parts, task)
    todo = [task for task in tasks if results[task.index] is None]
    n_before = total - len(todo)

    def on_result(_: int, result: tuple[int, dict[str, np.ndarray]]) -> None:
        index, arrays = result
        results[index] = arrays
        if parts is not None:
            _write_part(parts, tasks[index], arrays)

    def shifted(done: int, _: int) -> None:
        if progress is not None:
            progress(n_before + done, total)

    parallel_map(
        _execute,
        todo,
        n_jobs=n_jobs,
        progress=shifted,
        backend=backend,
        address=address,
        on_result=on_result,
    )

    frame = assemble(tasks, results, steps)
    if out is not None:
        path = Path(out)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    return frame


def assemble(tasks: list[Task], results: list[Any], steps: np.ndarray) -> pd.DataFrame:
    """The sweep table of ``tasks`` from each task's :func:`recorded` arrays ``results``
    (in task order) at ``steps``."""
    m = steps.shape[0]
    n = len(tasks)
    cols: dict[str, Any] = {
        "env": np.repeat([t.env for t in tasks], m),
        "policy": np.repeat([t.policy for t in tasks], m),
        "seed": np.repeat(np.array([t.seed for t in tasks], dtype=np.int64), m),
        "step": np.tile(steps, n),
    }
    names = list(SWEEP_COLUMNS[4:])
    for r in results:
        names += [k for k in r if k not in names]
    nan = np.full(m, np.nan)
    for name in names:
        cols[name] = np.concatenate([r.get(name, nan) for r in results])
    frame = pd.DataFrame(cols, columns=[*SWEEP_COLUMNS[:4], *names])
    frame["cumulative_optimal"] = frame["cumulative_optimal"].astype(np.int64)
    return frame


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The last recorded step of every (env, policy, seed) run of a sweep table."""
    idx = frame.groupby(["env", "policy", "seed"], sort=False)["step"].idxmax()
    return frame.loc[idx.to_numpy()].reset_index(drop=True)
