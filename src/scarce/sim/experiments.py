"""Named experiments and experiments from TOML config files.

An :class:`Experiment` says which policies to run on which environments, for how long and
with how many seeds. :func:`run_experiment` runs one (by registered name or from a ``.toml``
file) and writes to an output folder:

* ``summary.csv``: one row per (env, policy, seed, metric), columns exactly
  ``experiment, env, policy, seed, metric, value`` (:data:`SUMMARY_COLUMNS`);
* ``traces.parquet``: the sweep table (:func:`scarce.sim.sweep`) with an ``experiment`` column;
* ``regret.png``: cumulative regret curves, one panel per environment.

Metrics
-------
Every experiment reports :data:`DEFAULT_METRICS`, computed from the last recorded step of each
run: ``cumulative_reward``, ``cumulative_regret`` (exact expected regret), ``mean_reward``,
``reward_to_opt`` (expected reward collected / what the oracle collects) and
``optimal_action_rate``. An experiment may add its own, as functions of one run's rows of the
sweep table.

Config files
------------
::

    name = "my-experiment"        # default: the file name without .toml
    description = "..."           # optional
    horizon = 2000                # cases per run
    seeds = 3                     # number of seeds, or a list of root seeds
    batch_size = 1                # cases decided between policy updates
    feedback = "bandit"           # or "full"
    base_seed = 0                 # root of the seed tree when seeds is a number
    n_checkpoints = 200           # recorded steps per run (0 = every step)
    logx = false                  # log-scale step axis in regret.png

    [[envs]]
    name = "linear"               # a name of scarce.envs.ENVIRONMENTS
    label = "linear-5"            # optional, default: name
    n_actions = 5                 # anything else: keyword arguments of the environment

    [[policies]]
    name = "LinTS"                # a name of scarce.policies.POLICIES
    label = "LinTS-v0.3"          # optional, default: name
    v = 0.3                       # anything else: constructor keywords of the policy
"""

from __future__ import annotations

import inspect
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.sim.plot import plot_regret
from scarce.sim.sweep import (
    RESERVED_POLICY_PARAMS,
    EnvSpec,
    PolicySpec,
    check_backend,
    run_seeds,
    sweep,
)
from scarce.sim.sweep import backend as backend_context

#: the columns of ``summary.csv``, in order (a contract shared by every experiment)
SUMMARY_COLUMNS = ("experiment", "env", "policy", "seed", "metric", "value")

#: a metric: one run's rows of the sweep table (sorted by step) -> a number
Metric = Callable[[pd.DataFrame], float]


class ExperimentError(ValueError):
    """A user-facing problem with an experiment: unknown name, bad config, bad setting."""


def _last(column: str) -> Metric:
    def metric(run: pd.DataFrame) -> float:
        return float(run[column].iloc[-1])

    metric.__name__ = column
    return metric


def _mean_reward(run: pd.DataFrame) -> float:
    return float(run["cumulative_reward"].iloc[-1] / run["step"].iloc[-1])


def _reward_to_opt(run: pd.DataFrame) -> float:
    best = float(run["cumulative_best_expected_reward"].iloc[-1])
    return float(run["cumulative_expected_reward"].iloc[-1]) / best if best else float("nan")


def _optimal_action_rate(run: pd.DataFrame) -> float:
    if np.isnan(run["cumulative_regret"].iloc[-1]):
        return float("nan")
    return float(run["cumulative_optimal"].iloc[-1] / run["step"].iloc[-1])


def regret_second_half(run: pd.DataFrame) -> float:
    """Cumulative regret accrued over the second half of the horizon (near zero once learned)."""
    steps = run["step"].to_numpy()
    regret = run["cumulative_regret"].to_numpy()
    half = max(int(steps[-1]) // 2, 1)
    return float(regret[-1] - np.interp(half, steps, regret))


#: metrics every experiment reports
DEFAULT_METRICS: dict[str, Metric] = {
    "cumulative_reward": _last("cumulative_reward"),
    "cumulative_regret": _last("cumulative_regret"),
    "mean_reward": _mean_reward,
    "reward_to_opt": _reward_to_opt,
    "optimal_action_rate": _optimal_action_rate,
}


@dataclass(frozen=True)
class Experiment:
    """A named comparison of policies on environments.

    Attributes
    ----------
    name:
        identifier (``scarce run NAME``); also the default output folder name.
    description:
        one line for ``scarce list``.
    build:
        ``build() -> (policies, envs)``: label -> :class:`~scarce.sim.PolicySpec` and
        label -> :class:`~scarce.sim.EnvSpec`.
    horizon:
        default cases per run.
    seeds:
        default number of seeds (or list of root seeds).
    batch_size, feedback, base_seed, n_checkpoints:
        as in :func:`scarce.sim.sweep`.
    metrics:
        extra metrics beyond :data:`DEFAULT_METRICS`: name -> function of one run's rows of the
        sweep table (sorted by step).
    logx:
        log-scale step axis in the regret plot.
    """

    name: str
    description: str
    build: Callable[[], tuple[dict[str, PolicySpec], dict[str, EnvSpec]]]
    horizon: int = 2000
    seeds: int | tuple[int, ...] = 3
    batch_size: int = 1
    feedback: str = "bandit"
    base_seed: int = 0
    n_checkpoints: int | None = 200
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    logx: bool = False

    def all_metrics(self) -> dict[str, Metric]:
        """:data:`DEFAULT_METRICS` followed by the experiment's own."""
        return {**DEFAULT_METRICS, **self.metrics}


#: what a :class:`CustomExperiment` runs: ``run(out=Path, horizon=int, seeds=int | tuple,
#: n_jobs=int | None, progress=callable | None) -> (summary, paths)``
CustomRun = Callable[..., tuple[pd.DataFrame, dict[str, Path]]]


@dataclass(frozen=True)
class CustomExperiment:
    """An experiment whose runs are not a plain policies x environments sweep (budgets,
    structured priors, vector rewards, delayed outcomes...): it brings its own ``run``.

    ``run(out=..., horizon=..., seeds=..., n_jobs=..., progress=...)`` must write
    ``out/summary.csv`` with exactly the columns :data:`SUMMARY_COLUMNS` (checked after the run)
    plus whatever traces and plots it makes, and return ``(summary, paths)`` like
    :func:`run_experiment`. ``horizon`` and ``seeds`` are the experiment's defaults unless the
    user overrides them; an experiment with several horizons (a regret-vs-T grid) treats
    ``horizon`` as the largest.

    Attributes
    ----------
    name, description, horizon, seeds:
        as in :class:`Experiment`.
    run:
        the function above.
    table_metrics:
        metrics the CLI prints (mean ± sd over seeds per env and policy).
    """

    name: str
    description: str
    run: CustomRun
    horizon: int = 2000
    seeds: int | tuple[int, ...] = 3
    table_metrics: tuple[str, ...] = ("cumulative_reward",)
    base_seed: int = 0


#: registered experiments by name (call :func:`load_capability_experiments` first to see the
#: ones defined next to each capability)
EXPERIMENTS: dict[str, Experiment | CustomExperiment] = {}

#: modules that register experiments when imported; a module that is not there (a capability
#: not yet built) is skipped, any other import error is raised
CAPABILITY_EXPERIMENT_MODULES: tuple[str, ...] = (
    "scarce.budget.experiments",
    "scarce.structured.experiments",
    "scarce.fair.experiments",
    "scarce.pareto.experiments",
    "scarce.ope.experiments",
    "scarce.drift.experiments",
    "scarce.combinatorial.experiments",
    "scarce.neural.experiments",
)


def register(experiment: Experiment | CustomExperiment) -> Experiment | CustomExperiment:
    """Add ``experiment`` to :data:`EXPERIMENTS` (replacing one of the same name)."""
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def load_capability_experiments() -> dict[str, Experiment | CustomExperiment]:
    """Import every module of :data:`CAPABILITY_EXPERIMENT_MODULES` (each registers its
    experiments) and return :data:`EXPERIMENTS`."""
    from scarce.core.plugins import import_if_present

    for module in CAPABILITY_EXPERIMENT_MODULES:
        import_if_present(module)
    return EXPERIMENTS


# ---------------------------------------------------------------------------- quickstart
def _quickstart() -> tuple[dict[str, PolicySpec], dict[str, EnvSpec]]:
    """Six policies on digits and on a small logistic problem.

    * Both environments have rewards in [0, 1], as GLM-UCB and GLM-TS require, so all six
      policies run on both; the synthetic one is ``logistic`` (Bernoulli rewards) rather than
      ``linear`` (Gaussian rewards, unbounded).
    * ``lam = 5`` for every model-based policy: the digits features are z-scored
      (``||x||^2 ~ 65``), so a unit prior is weak against the nearly separable one-vs-rest
      data. Exploration scales (``alpha``, ``v``, ``epsilon``) suit rewards in [0, 1].
    * Budget: horizon 2000 x 3 seeds x 12 runs, well under 2 minutes on 2 cores (GLM refits
      on digits dominate).
    """
    lam = 5.0
    policies = {
        "Random": PolicySpec("Random"),
        "EpsilonGreedy": PolicySpec("EpsilonGreedy", {"epsilon": 0.05, "lam": lam}),
        "LinUCB": PolicySpec("LinUCB", {"alpha": 0.5, "lam": lam}),
        "LinTS": PolicySpec("LinTS", {"v": 0.2, "lam": lam}),
        "GLMUCB": PolicySpec("GLMUCB", {"alpha": 0.5, "lam": lam}),
        "GLMTS": PolicySpec("GLMTS", {"v": 0.5, "lam": lam}),
    }
    envs = {
        "digits": EnvSpec("digits"),
        "logistic": EnvSpec("logistic", {"n_actions": 5, "n_features": 5}),
    }
    return policies, envs


register(
    Experiment(
        name="quickstart",
        description=(
            "Random, EpsilonGreedy, LinUCB, LinTS, GLMUCB and GLMTS on handwritten digits "
            "(real data: 10 classes as actions, 0/1 rewards) and a synthetic logistic problem "
            "(Bernoulli rewards, K=5 actions, d=5 features)"
        ),
        build=_quickstart,
        horizon=2000,
        seeds=3,
        metrics={"regret_second_half": regret_second_half},
    )
)


# ---------------------------------------------------------------------------- config files
_TOP_KEYS = {
    "name": str,
    "description": str,
    "horizon": int,
    "seeds": (int, list),
    "batch_size": int,
    "feedback": str,
    "base_seed": int,
    "n_checkpoints": int,
    "logx": bool,
    "envs": list,
    "policies": list,
}


def load_config(path: str | os.PathLike[str]) -> Experiment:
    """Read an :class:`Experiment` from a TOML file (format in the module docstring).

    Raises
    ------
    ExperimentError
        for a missing file, invalid TOML, unknown keys, unknown policy or environment names,
        or keyword arguments the policy or environment does not take; the message lists the
        valid choices.
    """
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"config file {str(path)!r} does not exist")
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{path}: invalid TOML: {exc}") from None
    where = str(path)

    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ExperimentError(
            f"{where}: unknown key(s) {unknown}; valid top-level keys: {', '.join(_TOP_KEYS)}"
        )
    for key, types in _TOP_KEYS.items():
        if key in raw and (
            not isinstance(raw[key], types) or (isinstance(raw[key], bool) and types is int)
        ):
            want = " or ".join(
                t.__name__ for t in (types if isinstance(types, tuple) else (types,))
            )
            raise ExperimentError(f"{where}: {key} must be {want}; got {raw[key]!r}")
    for key in ("envs", "policies"):
        if not raw.get(key):
            example = "linear" if key == "envs" else "LinUCB"
            raise ExperimentError(
                f"{where}: needs at least one [[{key}]] table with a name, e.g. "
                f'[[{key}]] name = "{example}"'
            )

    envs = _parse_envs(raw["envs"], where)
    policies = _parse_policies(raw["policies"], where)
    seeds = raw.get("seeds", 3)
    n_checkpoints = raw.get("n_checkpoints", 200)
    experiment = Experiment(
        name=raw.get("name", path.stem),
        description=raw.get("description", f"from {path.name}"),
        build=lambda: (dict(policies), dict(envs)),
        horizon=raw.get("horizon", 2000),
        seeds=tuple(seeds) if isinstance(seeds, list) else seeds,
        batch_size=raw.get("batch_size", 1),
        feedback=raw.get("feedback", "bandit"),
        base_seed=raw.get("base_seed", 0),
        n_checkpoints=None if n_checkpoints == 0 else n_checkpoints,
        logx=raw.get("logx", False),
    )
    try:
        _check_settings(experiment, experiment.horizon, experiment.seeds)
    except ExperimentError as exc:
        raise ExperimentError(f"{where}: {exc}") from None
    return experiment


def _tables(items: list[Any], kind: str, where: str) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    labels: set[str] = set()
    for i, item in enumerate(items):
        ref = f"{where}: {kind}[{i}]"
        if not isinstance(item, dict):
            raise ExperimentError(f"{ref} must be a table ([[{kind}]]); got {item!r}")
        params = dict(item)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ExperimentError(f'{ref} needs name = "..." (a string)')
        label = params.pop("label", name)
        if not isinstance(label, str) or not label:
            raise ExperimentError(f"{ref}: label must be a non-empty string; got {label!r}")
        if label in labels:
            raise ExperimentError(
                f"{ref}: label {label!r} is used twice; give each {kind[:-1]} a distinct label"
            )
        labels.add(label)
        out.append((name, label, params))
    return out


def _parse_policies(items: list[Any], where: str) -> dict[str, PolicySpec]:
    from scarce.policies import get_policies

    POLICIES = get_policies()

    specs = {}
    for i, (name, label, params) in enumerate(_tables(items, "policies", where)):
        ref = f"{where}: policies[{i}] ({name})"
        if name not in POLICIES:
            raise ExperimentError(
                f"{ref}: unknown policy {name!r}; valid policies: {', '.join(POLICIES)}"
            )
        cls = POLICIES[name]
        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        settable = [p for p in valid if p not in RESERVED_POLICY_PARAMS]
        reserved = sorted(set(params) & set(RESERVED_POLICY_PARAMS))
        if reserved:
            raise ExperimentError(
                f"{ref}: {reserved} are set by the experiment (from the environment and the run "
                f"seed); valid keys for {name}: {', '.join(['label', *settable])}"
            )
        bad = sorted(set(params) - set(settable))
        if bad:
            raise ExperimentError(
                f"{ref}: unknown key(s) {bad}; valid keys for {name}: "
                f"{', '.join(['label', *settable])}"
            )
        specs[label] = PolicySpec(name, params)
    return specs


def _parse_envs(items: list[Any], where: str) -> dict[str, EnvSpec]:
    from scarce.envs import ENVIRONMENTS

    specs = {}
    for i, (name, label, params) in enumerate(_tables(items, "envs", where)):
        ref = f"{where}: envs[{i}] ({name})"
        if name not in ENVIRONMENTS:
            raise ExperimentError(
                f"{ref}: unknown environment {name!r}; valid environments: {', '.join(ENVIRONMENTS)}"
            )
        valid = _env_keys(name)
        if valid is not None:
            bad = sorted(set(params) - set(valid))
            if bad:
                raise ExperimentError(
                    f"{ref}: unknown key(s) {bad}; valid keys for {name}: "
                    f"{', '.join(['label', *valid])}"
                )
        specs[label] = EnvSpec(name, params)
    return specs


def _env_keys(name: str) -> list[str] | None:
    """Keyword arguments ``make_env(name, ...)`` accepts (None if they cannot be told)."""
    from scarce.envs import make_env

    try:
        env = make_env(name, seed=0)
    except ImportError as exc:
        raise ExperimentError(f"environment {name!r}: {exc}") from None
    except (TypeError, ValueError):
        return None
    params = inspect.signature(type(env).__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in ("self", "X", "y", "name")]


# ---------------------------------------------------------------------------- running
def get_experiment(
    name_or_path: str | os.PathLike[str] | Experiment | CustomExperiment,
    *,
    horizon: int | None = None,
    seeds: int | list[int] | None = None,
) -> Experiment | CustomExperiment:
    """A registered experiment by name, or one read from a ``.toml`` file, with ``horizon`` and
    ``seeds`` overridden where given; its settings are validated.

    Raises
    ------
    ExperimentError
        unknown name (the message lists the registered ones), bad config or settings.
    """
    if isinstance(name_or_path, Experiment | CustomExperiment):
        experiment = name_or_path
    else:
        load_capability_experiments()
        text = os.fspath(name_or_path)
        if text.endswith(".toml") or os.path.sep in text:
            experiment = load_config(text)
        elif text in EXPERIMENTS:
            experiment = EXPERIMENTS[text]
        elif Path(text).is_file():
            experiment = load_config(text)
        else:
            raise ExperimentError(
                f"unknown experiment {text!r}; registered experiments: {', '.join(EXPERIMENTS)} "
                "(or give the path of a .toml config file)"
            )
    if horizon is not None or seeds is not None:
        experiment = replace(
            experiment,
            horizon=experiment.horizon if horizon is None else horizon,
            seeds=experiment.seeds
            if seeds is None
            else (tuple(seeds) if isinstance(seeds, list) else seeds),
        )
    _check_settings(experiment, experiment.horizon, experiment.seeds)
    return experiment


def _check_settings(experiment: Experiment | CustomExperiment, horizon: Any, seeds: Any) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ExperimentError(f"horizon must be an int >= 1; got {horizon!r}")
    if isinstance(experiment, Experiment):  # sweep settings; a custom experiment has none
        b = experiment.batch_size
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ExperimentError(f"batch_size must be an int >= 1; got {b!r}")
        if experiment.feedback not in ("bandit", "full"):
            raise ExperimentError(
                f"feedback must be 'bandit' or 'full'; got {experiment.feedback!r}"
            )
        n = experiment.n_checkpoints
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise ExperimentError(
                f"n_checkpoints must be an int >= 1 (0 in a config: all); got {n!r}"
            )
    try:
        run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds, experiment.base_seed)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(str(exc)) from None


def _dry_run(policies: Mapping[str, PolicySpec], envs: Mapping[str, EnvSpec]) -> None:
    """Build every environment and policy and play one small batch, so that bad parameters
    (and rewards outside a policy's required range) fail here with a clear message instead of
    deep inside a worker process."""
    for env_label, espec in envs.items():
        try:
            env = espec.build(0)
        except (TypeError, ValueError, ImportError) as exc:
            raise ExperimentError(f"environment {env_label!r}: {exc}") from None
        for pol_label, pspec in policies.items():
            try:
                policy = pspec.build(env.n_actions, env.n_features, 0)
                X = env.contexts(32, rng=np.random.default_rng(0))
                full = np.asarray(env.full_outcomes(X, rng=np.random.default_rng(1)))
                bounds = policy.reward_bounds
                if bounds is not None and (full.min() < bounds[0] or full.max() > bounds[1]):
                    raise ExperimentError(
                        f"policy {pol_label!r} needs rewards in [{bounds[0]}, {bounds[1]}] but "
                        f"environment {env_label!r} gives rewards in [{full.min():.3g}, "
                        f"{full.max():.3g}]; use an environment with rewards in that range "
                        "(e.g. 'logistic' or a data set)"
                    )
                decision = policy.decide(X)
                policy.update(X, decision.actions, full[np.arange(X.shape[0]), decision.actions])
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ExperimentError):
                    raise
                raise ExperimentError(
                    f"policy {pol_label!r} on environment {env_label!r}: {exc}"
                ) from None


def summarize(
    traces: pd.DataFrame, experiment: str, metrics: Mapping[str, Metric] | None = None
) -> pd.DataFrame:
    """The ``summary.csv`` table of a sweep table.

    Parameters
    ----------
    traces:
        a sweep table (:func:`scarce.sim.sweep`).
    experiment:
        the value of the ``experiment`` column.
    metrics:
        name -> function of one run's rows (default :data:`DEFAULT_METRICS`).

    Returns
    -------
    pandas.DataFrame
        columns exactly :data:`SUMMARY_COLUMNS`; one row per (env, policy, seed, metric).
    """
    metrics = DEFAULT_METRICS if metrics is None else metrics
    rows = []
    for (env, policy, seed), run in traces.groupby(["env", "policy", "seed"], sort=False):
        run = run.sort_values("step")
        for name, fn in metrics.items():
            rows.append((experiment, env, policy, int(seed), name, float(fn(run))))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def aggregate(
    summary: pd.DataFrame, metrics: tuple[str, ...] = ("cumulative_reward", "cumulative_regret")
) -> pd.DataFrame:
    """Mean and standard deviation over seeds of ``metrics`` per (env, policy).

    Returns
    -------
    pandas.DataFrame
        one row per (env, policy) in order of appearance; columns ``env``, ``policy``,
        ``n_seeds`` and ``<metric>_mean``, ``<metric>_sd`` for each metric (sd is NaN with one seed).
    """
    sub = summary[summary["metric"].isin(metrics)]
    wide = sub.pivot_table(
        index=["env", "policy", "seed"], columns="metric", values="value", sort=False, dropna=False
    )
    groups = wide.groupby(level=["env", "policy"], sort=False)
    table = pd.DataFrame({"n_seeds": groups.size()})
    for m in metrics:
        col = wide[m] if m in wide else pd.Series(float("nan"), index=wide.index)
        by = col.groupby(level=["env", "policy"], sort=False)
        table[f"{m}_mean"] = by.mean()
        table[f"{m}_sd"] = by.std()
    return table.reset_index()


def run_experiment(
    name_or_path: str | os.PathLike[str] | Experiment | CustomExperiment,
    *,
    out: str | os.PathLike[str],
    horizon: int | None = None,
    seeds: int | list[int] | None = None,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: str | None = None,
    address: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Run an experiment and write ``summary.csv``, ``traces.parquet`` and ``regret.png``.

    Parameters
    ----------
    name_or_path:
        a name in :data:`EXPERIMENTS`, the path of a ``.toml`` config, or an :class:`Experiment`.
    out:
        output folder (created).
    horizon, seeds:
        override the experiment's defaults.
    n_jobs:
        worker processes (default ``min(2, cpu count)``).
    progress:
        ``progress(completed_runs, total_runs)``.
    backend, address:
        where the runs execute: ``"local"`` processes or ``"ray"`` (at ``address``, or a local
        Ray cluster); None keeps the enclosing :func:`scarce.sim.sweep.backend` context
        (default local). Custom experiments get it through that context, so every
        :func:`~scarce.sim.sweep.parallel_map` inside them uses it.

    Returns
    -------
    (summary, paths)
        the ``summary.csv`` table and ``{"summary": ..., "traces": ..., "plot": ...}``.

    Raises
    ------
    ExperimentError
        unknown experiment, bad config or settings.
    """
    experiment = get_experiment(name_or_path, horizon=horizon, seeds=seeds)
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1
    ):
        raise ExperimentError(f"jobs must be an int >= 1; got {n_jobs!r}")
    if backend is not None or address is not None:
        try:
            name, address = check_backend(backend or "local", address)
        except (TypeError, ValueError) as exc:
            raise ExperimentError(str(exc)) from None
        with backend_context(name, address):  # type: ignore[arg-type]
            return run_experiment(
                experiment, out=out, n_jobs=n_jobs, progress=progress, backend=None
            )
    if isinstance(experiment, CustomExperiment):
        return _run_custom(experiment, Path(out), n_jobs, progress)
    policies, envs = experiment.build()
    _dry_run(policies, envs)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds_arg = list(experiment.seeds) if isinstance(experiment.seeds, tuple) else experiment.seeds
    traces = sweep(
        policies,
        envs,
        seeds_arg,
        experiment.horizon,
        batch_size=experiment.batch_size,
        feedback=experiment.feedback,  # type: ignore[arg-type]
        base_seed=experiment.base_seed,
        n_checkpoints=experiment.n_checkpoints,
        n_jobs=n_jobs,
        progress=progress,
    )
    summary = summarize(traces, experiment.name, experiment.all_metrics())
    paths = {
        "summary": out / "summary.csv",
        "traces": out / "traces.parquet",
        "plot": out / "regret.png",
    }
    summary.to_csv(paths["summary"], index=False)
    traces.insert(0, "experiment", experiment.name)
    traces.to_parquet(paths["traces"], index=False)
    n_seeds = traces["seed"].nunique()
    plot_regret(
        traces,
        paths["plot"],
        title=f"{experiment.name}: cumulative expected regret (horizon {experiment.horizon}, "
        f"{n_seeds} seed{'s' if n_seeds != 1 else ''})",
        logx=experiment.logx,
    )
    return summary, paths


def _run_custom(
    experiment: CustomExperiment,
    out: Path,
    n_jobs: int | None,
    progress: Callable[[int, int], None] | None,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    summary, paths = experiment.run(
        out=out,
        horizon=experiment.horizon,
        seeds=experiment.seeds,
        n_jobs=n_jobs,
        progress=progress,
    )
    if tuple(summary.columns) != SUMMARY_COLUMNS:
        raise RuntimeError(
            f"experiment {experiment.name!r} returned summary columns {list(summary.columns)}; "
            f"the contract is {list(SUMMARY_COLUMNS)}"
        )
    written = pd.read_csv(out / "summary.csv")
    if tuple(written.columns) != SUMMARY_COLUMNS or len(written) != len(summary):
        raise RuntimeError(f"experiment {experiment.name!r} did not write {out / 'summary.csv'}")
    return summary, paths
