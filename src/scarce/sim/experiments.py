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
``scarce run CONFIG.toml`` reads an :class:`Experiment` from TOML: the format is documented in
:mod:`scarce.sim.config` (and in ``docs/configs.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.sim.parallel import backend as backend_context
from scarce.sim.parallel import check_backend
from scarce.sim.plot import regret_figure
from scarce.sim.sweep import SWEEP_COLUMNS, EnvSpec, PolicySpec, run_seeds, sweep

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


@dataclass
class ExperimentResult:
    """What an experiment produces; :func:`run_experiment` writes it (one place writes every
    experiment's outputs and checks the ``summary.csv`` contract).

    Attributes
    ----------
    summary:
        columns ``env, policy, seed, metric, value`` (an ``experiment`` column is added if
        absent); ``seed`` holds the seed *labels* the experiment was given (see
        :class:`CustomExperiment`).
    tables:
        name -> table, written as ``<name>.parquet`` (``traces`` by convention for per-step
        curves).
    figures:
        name -> matplotlib ``Figure`` (:func:`scarce.sim.plot.new_figure`), written as
        ``<name>.png``.
    """

    summary: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


#: what a :class:`CustomExperiment` runs: ``run(horizon=int, seeds=[(label, root), ...],
#: n_jobs=int | None, progress=callable | None) -> ExperimentResult``
CustomRun = Callable[..., ExperimentResult]


@dataclass(frozen=True)
class CustomExperiment:
    """An experiment whose runs are not a plain policies x environments sweep (several
    horizons, a structure learned offline, population dynamics, an evaluation protocol...):
    it brings its own ``run``.

    ``run(horizon=..., seeds=..., n_jobs=..., progress=...)`` returns an
    :class:`ExperimentResult` and writes nothing. ``horizon`` is the experiment's default
    unless the user overrides it (an experiment with several horizons treats it as the
    largest). ``seeds`` is a list of ``(label, root_seed)`` pairs from
    :func:`scarce.sim.run_seeds` with the experiment's ``base_seed``: every random draw of seed
    ``label`` derives from ``root_seed``, and the summary's ``seed`` column holds ``label``
    (``0 .. n-1`` for ``--seeds n``, the values themselves for an explicit list), as in every
    other experiment. Runs go through :func:`scarce.sim.parallel_map` with ``n_jobs`` and
    ``progress``.

    Attributes
    ----------
    name, description, horizon, seeds, base_seed:
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
    "scarce.serve.experiments",
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
        from scarce.sim.config import load_config

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
    check_settings(experiment, experiment.horizon, experiment.seeds)
    return experiment


def check_settings(experiment: Experiment | CustomExperiment, horizon: Any, seeds: Any) -> None:
    """Raise :class:`ExperimentError` for a bad horizon, seeds or sweep setting."""
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


def _dry_run(
    experiment: Experiment, policies: Mapping[str, PolicySpec], envs: Mapping[str, EnvSpec]
) -> None:
    """Build every environment and policy and run a few cases through the loop, so that bad
    parameters (and rewards outside a policy's required range) fail here with a clear message
    instead of deep inside a worker process."""
    from scarce.sim.run import run

    for env_label, espec in envs.items():
        try:
            env = espec.build(0)
        except (TypeError, ValueError, ImportError) as exc:
            raise ExperimentError(f"environment {env_label!r}: {exc}") from None
        for pol_label, pspec in policies.items():
            try:
                policy = pspec.build_for(env, 0, experiment.horizon)
                _check_reward_range(policy, env, pol_label, env_label)
                run(
                    policy,
                    env,
                    min(16, experiment.horizon),
                    batch_size=experiment.batch_size,
                    feedback=experiment.feedback,  # type: ignore[arg-type]
                    seed=0,
                    record_probabilities=False,
                )
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ExperimentError):
                    raise
                raise ExperimentError(
                    f"policy {pol_label!r} on environment {env_label!r}: {exc}"
                ) from None


def _check_reward_range(policy: Any, env: Any, pol_label: str, env_label: str) -> None:
    bounds = policy.reward_bounds
    if bounds is None or env.n_objectives is not None:
        return
    X = env.contexts(32, rng=np.random.default_rng(0))
    full = np.asarray(env.full_outcomes(X, rng=np.random.default_rng(1)))
    if full.min() < bounds[0] or full.max() > bounds[1]:
        raise ExperimentError(
            f"policy {pol_label!r} needs rewards in [{bounds[0]}, {bounds[1]}] but "
            f"environment {env_label!r} gives rewards in [{full.min():.3g}, {full.max():.3g}]; "
            "use an environment with rewards in that range (e.g. 'logistic' or a data set)"
        )


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
        name -> function of one run's rows (default :data:`DEFAULT_METRICS`). Runs on an
        environment with a budget also report ``budget`` and ``budget_spent`` (summed over
        resources), and every per-case metric of an environment its total
        (``cumulative_<name>`` in the sweep table gives ``<name>``).

    Returns
    -------
    pandas.DataFrame
        columns exactly :data:`SUMMARY_COLUMNS`; one row per (env, policy, seed, metric).
    """
    metrics = DEFAULT_METRICS if metrics is None else metrics
    standard = set(SWEEP_COLUMNS) | {"cumulative_cost", "budget"}
    rows = []
    for (env, policy, seed), run in traces.groupby(["env", "policy", "seed"], sort=False):
        run = run.sort_values("step")
        for name, fn in metrics.items():
            rows.append((experiment, env, policy, int(seed), name, float(fn(run))))
        last = run.iloc[-1]
        if "budget" in run and not np.isnan(last["budget"]):
            rows.append((experiment, env, policy, int(seed), "budget", float(last["budget"])))
            spent = float(last["cumulative_cost"])
            rows.append((experiment, env, policy, int(seed), "budget_spent", spent))
        for col in run.columns:
            if col.startswith("cumulative_") and col not in standard and not np.isnan(last[col]):
                name = col.removeprefix("cumulative_")
                rows.append((experiment, env, policy, int(seed), name, float(last[col])))
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
    """Run an experiment and write its outputs to ``out``: ``summary.csv`` (always), a
    Parquet file per table (``traces.parquet``...) and a PNG per figure (``regret.png``...).

    Parameters
    ----------
    name_or_path:
        a name in :data:`EXPERIMENTS`, the path of a ``.toml`` config, or an experiment.
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
        Ray cluster); None keeps the enclosing :func:`scarce.sim.backend` context (default
        local). Custom experiments get it through that context, so every
        :func:`~scarce.sim.parallel_map` inside them uses it.

    Returns
    -------
    (summary, paths)
        the ``summary.csv`` table and ``{"summary": path, <table>: path, <figure>: path}``.

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
    seeds_arg = list(experiment.seeds) if isinstance(experiment.seeds, tuple) else experiment.seeds
    labels, roots = run_seeds(seeds_arg, experiment.base_seed)
    if isinstance(experiment, CustomExperiment):
        result = experiment.run(
            horizon=experiment.horizon,
            seeds=list(zip(labels, roots, strict=True)),
            n_jobs=n_jobs,
            progress=progress,
        )
    else:
        result = _run_sweep(experiment, n_jobs, progress)
    return write_result(result, experiment.name, Path(out), labels)


def _run_sweep(
    experiment: Experiment, n_jobs: int | None, progress: Callable[[int, int], None] | None
) -> ExperimentResult:
    policies, envs = experiment.build()
    _dry_run(experiment, policies, envs)
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
    n_seeds = traces["seed"].nunique()
    has_regret = bool(traces["cumulative_regret"].notna().any())
    figure = regret_figure(
        traces,
        title=f"{experiment.name}: cumulative {'expected regret' if has_regret else 'reward'} "
        f"(horizon {experiment.horizon}, {n_seeds} seed{'s' if n_seeds != 1 else ''})",
        metric="cumulative_regret" if has_regret else "cumulative_reward",
        logx=experiment.logx,
    )
    return ExperimentResult(summary, {"traces": traces}, {"regret": figure})


def write_result(
    result: ExperimentResult, name: str, out: Path, labels: list[int] | None = None
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Write ``result`` to ``out`` (see :func:`run_experiment`) after checking the summary
    contract: the columns :data:`SUMMARY_COLUMNS` and, given ``labels``, seeds among them."""
    summary = result.summary.copy()
    if "experiment" not in summary.columns:
        summary.insert(0, "experiment", name)
    if tuple(summary.columns) != SUMMARY_COLUMNS:
        raise RuntimeError(
            f"experiment {name!r} returned summary columns {list(summary.columns)}; "
            f"the contract is {list(SUMMARY_COLUMNS)}"
        )
    if labels is not None and not set(summary["seed"].astype(int)) <= set(labels):
        raise RuntimeError(
            f"experiment {name!r} reported seeds {sorted(set(summary['seed']))}; the seed "
            f"column must hold the seed labels {labels}"
        )
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.csv"}
    summary.to_csv(paths["summary"], index=False)
    for key, table in result.tables.items():
        table = table.copy()
        if "experiment" not in table.columns:
            table.insert(0, "experiment", name)
        paths[key] = out / f"{key}.parquet"
        table.to_parquet(paths[key], index=False)
    for key, fig in result.figures.items():
        paths[key] = out / f"{key}.png"
        fig.savefig(paths[key], dpi=120)
    return summary, paths
