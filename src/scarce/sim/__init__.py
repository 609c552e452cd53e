"""The simulation loop and what is built on it: :func:`run` one policy on one environment and
get a :class:`Trace`; :func:`sweep` grids of runs on local processes into one tidy table;
:func:`plot_regret`; named and TOML-configured experiments (:func:`run_experiment`)."""

from scarce.sim.experiments import (
    CAPABILITY_EXPERIMENT_MODULES,
    DEFAULT_METRICS,
    EXPERIMENTS,
    CustomExperiment,
    SUMMARY_COLUMNS,
    Experiment,
    ExperimentError,
    aggregate,
    get_experiment,
    load_capability_experiments,
    load_config,
    register,
    run_experiment,
    summarize,
)
from scarce.sim.plot import plot_regret
from scarce.sim.run import TRACE_COLUMNS, Trace, run
from scarce.sim.sweep import SWEEP_COLUMNS, EnvSpec, PolicySpec, checkpoints, final_rows, sweep

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
    "PolicySpec",
    "Trace",
    "aggregate",
    "checkpoints",
    "final_rows",
    "get_experiment",
    "load_config",
    "plot_regret",
    "register",
    "run",
    "run_experiment",
    "summarize",
    "sweep",
]
