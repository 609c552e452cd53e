"""The simulation loop and what is built on it: :func:`run` one policy on one environment and
get a :class:`Trace`; :func:`sweep` grids of runs on local processes or Ray (:func:`backend`)
into one tidy table, streamed to Parquet and resumable; :func:`run_replicated` and
:func:`sweep_replicated` many seeds of LinUCB/LinTS as one vectorised computation;
:func:`plot_regret`; named and TOML-configured experiments (:func:`run_experiment`)."""

from scarce.sim.config import load_config
from scarce.sim.experiments import (
    CAPABILITY_EXPERIMENT_MODULES,
    DEFAULT_METRICS,
    EXPERIMENTS,
    SUMMARY_COLUMNS,
    CustomExperiment,
    Experiment,
    ExperimentError,
    ExperimentResult,
    aggregate,
    get_experiment,
    load_capability_experiments,
    register,
    run_experiment,
    summarize,
    write_result,
)
from scarce.sim.parallel import backend, current_backend, parallel_map
from scarce.sim.plot import new_figure, plot_regret, regret_figure
from scarce.sim.replicated import run_replicated, sweep_replicated
from scarce.sim.run import TRACE_COLUMNS, Trace, run
from scarce.sim.sweep import (
    SWEEP_COLUMNS,
    EnvSpec,
    PolicySpec,
    checkpoints,
    final_rows,
    run_seeds,
    sweep,
)

__all__ = [
    "CAPABILITY_EXPERIMENT_MODULES",
    "CustomExperiment",
    "load_capability_experiments",
    "DEFAULT_METRICS",
    "EXPERIMENTS",
    "SUMMARY_COLUMNS",
    "SWEEP_COLUMNS",
    "TRACE_COLUMNS",
    "EnvSpec",
    "Experiment",
    "ExperimentError",
    "ExperimentResult",
    "PolicySpec",
    "Trace",
    "aggregate",
    "backend",
    "checkpoints",
    "current_backend",
    "final_rows",
    "get_experiment",
    "load_config",
    "parallel_map",
    "new_figure",
    "plot_regret",
    "regret_figure",
    "register",
    "run",
    "run_experiment",
    "run_replicated",
    "run_seeds",
    "summarize",
    "sweep",
    "sweep_replicated",
    "write_result",
]
