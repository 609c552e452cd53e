"""``scarce run pareto-shift``: PCBShift and baselines on covariate-shift problems with two
objectives, for several shift strengths and horizons.

Environments (``peaks-shift``, :class:`~scarce.pareto.envs.PeaksShiftEnv`, ``K = 10``,
``D = 1``, noise 0.1): source ``Beta(1, 1 + nu)`` (a power law near ``x = 0``), target
``Beta(1 + nu, 1)`` (near ``x = 1``) for ``nu`` in 0 (no shift, both uniform), 1, 3
(``rho_0.05(P, Q)`` about 10, 39 and 9700); and a two-change-point schedule (``Beta(1, 5)``
near the origin, then uniform, then the target ``Beta(6, 1)``). Each runs at horizons
``T/4, T/2, T`` with the (last) change point at ``T_i / 2``. Policies get the environment's
suggestions (:meth:`~scarce.envs.Environment.policy_params`: ``n_objectives``, the Hölder
constants, the noise scale, the horizon); static grids of 8, 16 and 32 bins are the
references of issue 15.

Every run goes through :func:`scarce.sim.run`, in :data:`N_CHECKPOINTS` consecutive segments
(fewer for runs under 2000 cases)
on the same policy and environment (the environment's clock carries the schedule across
them): after each segment the estimated Pareto sets are scored on fixed target contexts
(front F1) and the tree's size is read. The regrets are the environment's
:meth:`~scarce.pareto.PeaksShiftEnv.case_metrics`, summed over the target phase.

The result (written by the runner): ``summary.csv``; ``traces.parquet`` (cumulative
target-phase regrets against rounds since the shift, ``table = "target_regret"``, and front
F1 and tree size at the checkpoints, ``table = "growth"``); figures ``regret_vs_T``,
``regret_curves``, ``tree_growth``, ``front_f1`` and ``fronts`` (true vs estimated Pareto
fronts at a target context).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from scarce.core.random import spawn_seeds
from scarce.pareto.envs import PeaksShiftEnv
from scarce.pareto.plots import FRONT_CONTEXT, figures
from scarce.pareto.regret import front_f1
from scarce.sim import EnvSpec, PolicySpec, parallel_map, run
from scarce.sim.experiments import SUMMARY_COLUMNS, CustomExperiment, ExperimentResult, register

NAME = "pareto-shift"
N_CHECKPOINTS = 20
N_EVAL = 100
#: shift strengths: source Beta(1, 1 + nu) (mass near 0), target Beta(1 + nu, 1) (near 1)
SHIFTS = (0, 1, 3)

#: label -> how to build the policy (the environment's suggestions fill in the rest)
POLICIES: dict[str, PolicySpec] = {
    "PCBShift": PolicySpec("PCBShift"),
    "StaticGridPCB-8": PolicySpec("StaticGridPCB", {"grid_level": 3}),
    "StaticGridPCB-16": PolicySpec("StaticGridPCB", {"grid_level": 4}),
    "StaticGridPCB-32": PolicySpec("StaticGridPCB", {"grid_level": 5}),
    "ParetoUCB": PolicySpec("ParetoUCB"),
    "LinUCB-linear": PolicySpec("ScalarisedLinUCB", {"scalarization": "linear", "alpha": 0.2}),
    "LinUCB-chebyshev": PolicySpec(
        "ScalarisedLinUCB", {"scalarization": "chebyshev", "alpha": 0.2}
    ),
    "Random": PolicySpec("Random"),
}

#: per-case metrics of the environment summed over the target phase
TARGET_METRICS = (
    "preference_regret",
    "preference_regret_filtered",
    "log_hausdorff_regret",
    "played_pareto_regret",
)


def env_specs(T: int) -> dict[str, EnvSpec]:
    """The four schedules for horizon ``T`` (the last change point at ``T // 2``)."""
    half = T // 2
    out = {
        f"nu={nu}": EnvSpec(
            "peaks-shift",
            {"change_points": (half,), "distributions": ((1.0, 1.0 + nu), (1.0 + nu, 1.0))},
        )
        for nu in SHIFTS
    }
    out["multi"] = EnvSpec(
        "peaks-shift",
        {
            "change_points": (max(T // 4, 1), max(half, 2)),
            "distributions": ((1.0, 5.0), (1.0, 1.0), (6.0, 1.0)),
        },
    )
    return out


def pareto_estimate(policy: Any, X: np.ndarray) -> np.ndarray:
    """``(n, K)`` bool: a vector policy's estimated Pareto sets at ``X``; for another policy
    (uniform random play) the actions it may play there."""
    if hasattr(policy, "pareto_estimate"):
        return policy.pareto_estimate(X)
    return policy.action_probabilities(X) > 0


def run_segments(
    policy: Any,
    env: PeaksShiftEnv,
    horizon: int,
    *,
    seed: int,
    n_checkpoints: int = N_CHECKPOINTS,
    eval_contexts: np.ndarray | None = None,
) -> dict[str, Any]:
    """Run ``policy`` on ``env`` for ``horizon`` cases through :func:`scarce.sim.run`, in
    ``n_checkpoints`` consecutive segments (segment ``i`` with the ``i``-th seed spawned from
    ``seed``), and score the estimated Pareto sets after each.

    Returns
    -------
    dict with ``metrics``: name -> ``(horizon,)`` per-case metric of the environment;
    ``actions`` ``(horizon,)``; ``checkpoints`` ``(C,)`` rounds; ``front_f1`` ``(C,)`` mean F1
    of the estimated sets on ``eval_contexts`` (default: 100 target contexts from ``seed``);
    ``n_leaves`` and ``depth`` ``(C,)`` (NaN without a tree).
    """
    ends = np.unique(np.linspace(0, horizon, n_checkpoints + 1).round().astype(int))[1:]
    seeds = spawn_seeds(seed, len(ends) + 1)
    if eval_contexts is None:
        eval_contexts = env.sample_phase(N_EVAL, -1, np.random.default_rng(seeds[-1]))
    truth = env.pareto_sets(eval_contexts)
    parts: list[Any] = []
    f1, leaves, depth = [], [], []
    start = 0
    for end, s in zip(ends, seeds, strict=False):
        parts.append(run(policy, env, int(end - start), seed=s, record_probabilities=False))
        f1.append(float(front_f1(pareto_estimate(policy, eval_contexts), truth).mean()))
        leaves.append(float(getattr(policy, "n_leaves_", np.nan)))
        depth.append(float(getattr(policy, "depth_", np.nan)))
        start = end
    names = [k for k in parts[0].extras if k.startswith("metric_")]
    return {
        "metrics": {
            k.removeprefix("metric_"): np.concatenate([p.extras[k] for p in parts]) for k in names
        },
        "actions": np.concatenate([p.action for p in parts]),
        "checkpoints": ends,
        "front_f1": np.array(f1),
        "n_leaves": np.array(leaves),
        "depth": np.array(depth),
    }


def checkpoints_for(T: int) -> int:
    """Segments of a run of ``T`` cases: :data:`N_CHECKPOINTS`, fewer for short runs (at
    least 100 cases each)."""
    return max(1, min(N_CHECKPOINTS, T // 100))


def _run_one(task: tuple[str, int, str, int, int]) -> dict[str, Any]:
    env_label, T, policy_label, seed_label, root = task
    env_seed, stream_seed, policy_seed = spawn_seeds(root, 3)
    env = env_specs(T)[env_label].build(env_seed)
    policy = POLICIES[policy_label].build_for(env, policy_seed, T)
    out = run_segments(policy, env, T, seed=stream_seed, n_checkpoints=checkpoints_for(T))
    start = env.target_start - 1
    m = out["metrics"]
    metrics = {name: float(m[name][start:].sum()) for name in TARGET_METRICS}
    metrics["played_pareto_regret_all_rounds"] = float(m["played_pareto_regret"].sum())
    metrics["front_f1"] = float(out["front_f1"][-1])
    if not np.isnan(out["n_leaves"][-1]):
        metrics["n_leaves"] = float(out["n_leaves"][-1])
        metrics["depth"] = float(out["depth"][-1])
    since = np.arange(1, T - start + 1)
    idx = np.unique(np.linspace(0, since.size - 1, 40).round().astype(int))
    curve = pd.DataFrame(
        {"since_shift": since[idx], **{k: np.cumsum(m[k][start:])[idx] for k in TARGET_METRICS}}
    )
    growth = pd.DataFrame(
        {k: out[k] for k in ("front_f1", "n_leaves", "depth")} | {"step": out["checkpoints"]}
    )
    front = None
    if hasattr(policy, "leaf_estimates"):
        front = policy.leaf_estimates(np.array([FRONT_CONTEXT]))
    return {
        "env": env_label,
        "T": T,
        "policy": policy_label,
        "seed": seed_label,
        "metrics": metrics,
        "curve": curve,
        "growth": growth,
        "front": front,
    }


def horizons(horizon: int) -> list[int]:
    """``T/4, T/2, T`` (at least 16 each)."""
    return sorted({max(16, horizon // 4), max(16, horizon // 2), max(16, int(horizon))})


def run_pareto_shift(
    *,
    horizon: int = 4000,
    seeds: list[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    policies: tuple[str, ...] | None = None,
) -> ExperimentResult:
    """The experiment's runs (``horizon`` is the largest ``T``; ``seeds`` the runner's
    ``(label, root)`` pairs; ``policies`` a subset of :data:`POLICIES`, default all)."""
    labels = list(POLICIES) if policies is None else list(policies)
    tasks = [
        (env_label, T, pol, label, root)
        for T in horizons(horizon)
        for env_label in env_specs(T)
        for pol in labels
        for label, root in seeds
    ]
    results = parallel_map(_run_one, tasks, n_jobs=n_jobs, progress=progress)
    rows, curves, growth = [], [], []
    for r in results:
        env_name = f"{r['env']}/T={r['T']}"
        for metric, value in r["metrics"].items():
            rows.append((env_name, r["policy"], r["seed"], metric, value))
        for frame, sink in ((r["curve"], curves), (r["growth"], growth)):
            sink.append(frame.assign(env=r["env"], T=r["T"], policy=r["policy"], seed=r["seed"]))
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS[1:]))
    curves_df = pd.concat(curves, ignore_index=True)
    growth_df = pd.concat(growth, ignore_index=True)
    traces = pd.concat(
        [curves_df.assign(table="target_regret"), growth_df.assign(table="growth")],
        ignore_index=True,
    )
    T_max = max(horizons(horizon))
    front = next(
        (
            r["front"]
            for r in results
            if r["policy"] == "PCBShift"
            and r["T"] == T_max
            and r["env"] == f"nu={SHIFTS[-1]}"
            and r["seed"] == seeds[0][0]
        ),
        None,
    )
    return ExperimentResult(
        summary, {"traces": traces}, figures(summary, curves_df, growth_df, T_max, labels, front)
    )


register(
    CustomExperiment(
        name=NAME,
        description=(
            "Vector rewards under covariate shift: PCBShift (adaptive tree, Pareto elimination) vs "
            "static grids of 8/16/32 bins, Pareto UCB, scalarised LinUCB (linear, Chebyshev) and "
            "random; K=10 arms, 2 objectives, shift strengths nu=0/1/3 and a two-change-point "
            "schedule, T/4..T"
        ),
        run=run_pareto_shift,
        horizon=4000,
        seeds=3,
        table_metrics=("preference_regret", "played_pareto_regret", "front_f1"),
    )
)
