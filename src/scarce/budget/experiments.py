"""Deferral experiments: ``scarce run deferral-synthetic`` and ``scarce run deferral-real``.

Every run goes through :func:`scarce.sim.run` (one task per environment and seed, through
:func:`scarce.sim.parallel_map`): the learners and the baselines are registered policies
built by :meth:`scarce.sim.PolicySpec.build_for` from the environment's suggested parameters,
with the class defaults. All policies of a task share the environment instance and the
stream seed, so they meet the same cases and outcomes (common random numbers); the first
run's trace holds the realised sequence, on which the hindsight benchmarks are computed:
the empirical OPT (real data) and BestReject's threshold (the best of a grid of step 0.01,
spec A.7), which is then run like any policy.

Results (:class:`~scarce.sim.ExperimentResult`, written by the runner):

* ``summary``: env labels carry the regime and the budget fraction (``human_better-b0.25``);
  metrics ``cumulative_reward`` (realised), ``expected_reward``, ``ratio_to_opt``,
  ``budget_spent``, ``budget`` and ``cumulative_regret`` (``OPT`` minus the expected reward
  of the actions taken); the ``OPT`` rows also give ``best_tau`` (BestReject's threshold)
  and, on real data, ``opt_exact_01`` and ``opt_static``;
* ``traces``: cumulative expected reward and spending of every run at checkpoints;
* figures ``reward_vs_budget`` and (synthetic) ``regret_vs_T``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scarce.budget.baselines import BestReject
from scarce.budget.opt import best_threshold, empirical_opt_deferral
from scarce.core.random import spawn_seeds
from scarce.sim import EnvSpec, ExperimentResult, PolicySpec, new_figure, parallel_map, run
from scarce.sim.experiments import CustomExperiment, register

BUDGET_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)
REAL_BUDGET_FRACTIONS = (0.02, 0.05, 0.1)
REGIMES = ("complementary", "human_better", "heterogeneous")
N_CHECKPOINTS = 50

#: the baselines every budget task runs, in order (BestReject gets its hindsight threshold)
BASELINES = ("ModelOnly", "HumanOnly", "ArbitraryHuman")


@dataclass(frozen=True)
class _Task:
    env: str  # label, e.g. "human_better-b0.25"
    env_spec: EnvSpec
    real: bool
    horizon: int
    seed: int
    root: int
    learners: tuple[tuple[str, PolicySpec], ...]
    with_baselines: bool


def _synthetic_learners() -> tuple[tuple[str, PolicySpec], ...]:
    """Deferral with full and with bandit feedback, class defaults."""
    return (
        ("Deferral", PolicySpec("Deferral")),
        ("Deferral-bandit", PolicySpec("Deferral", {"feedback": "bandit"})),
    )


def _real_learners() -> tuple[tuple[str, PolicySpec], ...]:
    """Deferral and (with the ``neural`` extra, PyTorch) NeuralDeferral, class defaults."""
    learners = [("Deferral", PolicySpec("Deferral"))]
    if importlib.util.find_spec("torch"):
        learners.append(("Deferral-Neural", PolicySpec("NeuralDeferral")))
    return tuple(learners)


def _execute(task: _Task) -> tuple[list[tuple], list[pd.DataFrame]]:
    """All runs of one environment and seed; returns summary rows and checkpoint frames."""
    env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(task.root), 3)
    env = task.env_spec.build(env_seed)
    T = task.horizon
    B = float(env.budget(T)[0])
    cb = float(env.cost_bound[1, 0])
    traces: dict[str, Any] = {}

    def go(label: str, spec: PolicySpec, record: bool = False) -> Any:
        policy = spec.build_for(env, policy_seed, T)
        traces[label] = run(
            policy, env, T, seed=stream_seed, record_probabilities=False, record_contexts=record
        )
        return policy

    info: dict[str, float] = {"budget": B}
    if task.with_baselines:
        go(BASELINES[0], PolicySpec(BASELINES[0]), record=True)
        for name in BASELINES[1:]:
            go(name, PolicySpec(name))
    for label, spec in task.learners:
        go(label, spec, record=not traces)
    first = next(iter(traces.values()))
    ex = first.extras
    if task.with_baselines:
        scorer = PolicySpec(BestReject).build_for(env, policy_seed, T)
        scores = scorer.model_scores(first.contexts)
        tau, _ = best_threshold(scores, ex["mean_rewards"], ex["deferral_costs"], B, cb)
        info["best_tau"] = tau
        go("BestReject", PolicySpec(BestReject, {"threshold": tau}))
        if not task.real:
            go("StaticOPT", PolicySpec("StaticOPT"))
    if task.real:
        human, model, costs = ex["human_rewards"], ex["model_rewards"], ex["deferral_costs"]
        opt = empirical_opt_deferral(human, model, costs, B).value
        info["opt_exact_01"] = empirical_opt_deferral(human, model, costs, B, exact=True).value
        info["opt_static"] = T * env.static_opt()
    else:
        opt = T * env.static_opt()
    return _rows(task, traces, opt, info)


def _rows(
    task: _Task, traces: dict[str, Any], opt: float, info: dict[str, float]
) -> tuple[list[tuple], list[pd.DataFrame]]:
    T, B = task.horizon, info["budget"]
    steps = np.unique(np.geomspace(1, T, N_CHECKPOINTS).astype(np.int64))
    rows: list[tuple] = []
    frames: list[pd.DataFrame] = []
    for label, trace in traces.items():
        expected = float(trace.expected_reward.sum())
        realised = float(trace.reward.sum())
        # synthetic: expected reward of the actions taken against the static OPT (less
        # noisy); real: realised reward against the empirical OPT of the sequence (the paper's)
        ratio = (realised if task.real else expected) / opt
        metrics = {
            "cumulative_reward": realised,
            "expected_reward": expected,
            "ratio_to_opt": ratio,
            "budget_spent": float(trace.budget_spent.sum()),
            "budget": B,
            "cumulative_regret": opt - expected,
        }
        rows += [(task.env, label, task.seed, k, float(v)) for k, v in metrics.items()]
        frames.append(
            pd.DataFrame(
                {
                    "env": task.env,
                    "policy": label,
                    "seed": task.seed,
                    "horizon": T,
                    "step": steps,
                    "cumulative_expected_reward": np.cumsum(trace.expected_reward)[steps - 1],
                    "budget_spent": np.cumsum(trace.extras["costs"][:, 0])[steps - 1],
                    "opt": opt * steps / T,
                }
            )
        )
    opt_metrics = {"cumulative_reward": opt, "ratio_to_opt": 1.0, "budget": B}
    opt_metrics["cumulative_regret"] = 0.0
    opt_metrics.update({k: v for k, v in info.items() if k != "budget"})
    rows += [(task.env, "OPT", task.seed, k, float(v)) for k, v in opt_metrics.items()]
    return rows, frames


def _collect(
    tasks: list[_Task], n_jobs: int | None, progress: Callable[[int, int], None] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = parallel_map(_execute, tasks, n_jobs=n_jobs, progress=progress)
    rows = [r for rs, _ in results for r in rs]
    summary = pd.DataFrame(rows, columns=["env", "policy", "seed", "metric", "value"])
    traces = pd.concat([f for _, fs in results for f in fs], ignore_index=True)
    return summary, traces


def _budget_figure(summary: pd.DataFrame, prefixes: tuple[str, ...]) -> Any:
    """Mean reward per round (top) and reward / OPT (bottom) against ``B / T``."""
    base = summary[~summary["env"].str.contains("-T")]
    fig, axes = new_figure(2, len(prefixes), width=5.5, height=3.8)
    budgets = base[base["metric"] == "budget"].groupby("env")["value"].first()
    panels = (("expected_reward", "mean reward per round"), ("ratio_to_opt", "reward / OPT"))
    for row, (metric, label) in enumerate(panels):
        sel = base[base["metric"] == metric].copy()
        if metric == "expected_reward":  # OPT's row holds its expected total
            opt = base[(base["policy"] == "OPT") & (base["metric"] == "cumulative_reward")]
            sel = pd.concat([sel, opt])
        sel["fraction"] = sel["env"].str.extract(r"-b([0-9.]+)$")[0].astype(float)
        sel["prefix"] = sel["env"].str.replace(r"-b[0-9.]+$", "", regex=True)
        if metric == "expected_reward":  # per round: total / T, with T = budget / fraction
            sel["value"] = sel["value"] / (sel["env"].map(budgets) / sel["fraction"])
        for ax, prefix in zip(axes[row], prefixes, strict=True):
            part = sel[sel["prefix"] == prefix]
            for policy, grp in part.groupby("policy"):
                stats = grp.groupby("fraction")["value"].agg(["mean", "std"]).fillna(0.0)
                ax.errorbar(
                    stats.index,
                    stats["mean"],
                    yerr=stats["std"],
                    label=policy,
                    marker="o",
                    capsize=2,
                )
            ax.set_title(prefix)
            ax.set_xlabel("budget B / T")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    return fig


def _regret_figure(summary: pd.DataFrame) -> Any:
    """Deferral's regret against OPT vs the horizon (log-log), with fitted slopes."""
    sel = summary[
        (summary["metric"] == "cumulative_regret")
        & summary["env"].str.contains("-T")
        & (summary["policy"] == "Deferral")
    ].copy()
    sel["T"] = sel["env"].str.extract(r"-T([0-9]+)$")[0].astype(int)
    sel["prefix"] = sel["env"].str.replace(r"-T[0-9]+$", "", regex=True)
    fig, axes = new_figure(1, 1, width=5.5, height=4.0)
    ax = axes[0][0]
    for prefix, grp in sel.groupby("prefix"):
        stats = grp.groupby("T")["value"].mean()
        pos = stats[stats > 0]
        slope = (
            float(np.polyfit(np.log(pos.index), np.log(pos.to_numpy()), 1)[0])
            if len(pos) >= 2
            else float("nan")
        )
        ax.loglog(
            stats.index,
            np.maximum(stats.to_numpy(), 1e-9),
            marker="o",
            label=f"{prefix} (slope {slope:.2f})",
        )
    Ts = np.array(sorted(sel["T"].unique()), dtype=float)
    if Ts.size:
        ref = sel["value"].clip(lower=1e-9).mean()
        ax.loglog(Ts, ref * np.sqrt(Ts / Ts.mean()), "k--", alpha=0.4, label="~ sqrt(T)")
    ax.set_xlabel("horizon T")
    ax.set_ylabel("regret vs OPT (Deferral)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def run_synthetic(
    *,
    horizon: int = 10_000,
    seeds: list[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExperimentResult:
    """Reward vs budget fraction (three regimes, all baselines, Deferral with full and bandit
    feedback) at ``horizon``, and Deferral's regret vs T on a log grid of 4 horizons from
    1,000 (or ``horizon / 10``) to ``horizon`` at ``B = 0.25 T``."""
    learners = _synthetic_learners()
    tasks: list[_Task] = []
    for regime in REGIMES:
        for frac in BUDGET_FRACTIONS:
            spec = EnvSpec("deferral-synthetic", {"regime": regime, "budget_rate": frac})
            for label, root in seeds:
                tasks.append(
                    _Task(f"{regime}-b{frac}", spec, False, horizon, label, root, learners, True)
                )
    lo = min(1000, max(horizon // 10, 10))
    grid = sorted({int(round(t)) for t in np.geomspace(lo, horizon, 4)})
    for regime in REGIMES:
        spec = EnvSpec("deferral-synthetic", {"regime": regime, "budget_rate": 0.25})
        for T in grid:
            for label, root in seeds:
                env = f"{regime}-b0.25-T{T}"
                tasks.append(_Task(env, spec, False, T, label, root, learners[:1], False))
    summary, traces = _collect(tasks, n_jobs, progress)
    figures = {
        "reward_vs_budget": _budget_figure(summary, REGIMES),
        "regret_vs_T": _regret_figure(summary),
    }
    return ExperimentResult(summary, {"traces": traces}, figures)


def run_real(
    *,
    horizon: int = 2000,
    seeds: list[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExperimentResult:
    """Digits deferral (:class:`~scarce.budget.envs.DigitsDeferral`): Deferral, Deferral-Neural
    (NeuralDeferral) and the baselines, at three budgets; ratio to the empirical OPT (LP
    relaxation; the exact 0/1 value is ``opt_exact_01``)."""
    learners = _real_learners()
    tasks = [
        _Task(
            f"digits-b{frac}",
            EnvSpec("deferral-digits", {"budget_rate": frac}),
            True,
            horizon,
            label,
            root,
            learners,
            True,
        )
        for frac in REAL_BUDGET_FRACTIONS
        for label, root in seeds
    ]
    summary, traces = _collect(tasks, n_jobs, progress)
    figures = {"reward_vs_budget": _budget_figure(summary, ("digits",))}
    return ExperimentResult(summary, {"traces": traces}, figures)


register(
    CustomExperiment(
        name="deferral-synthetic",
        description=("Deferral vs OPT and baselines: reward vs budget (3 regimes), regret vs T"),
        run=run_synthetic,
        horizon=10_000,
        seeds=3,
        table_metrics=("ratio_to_opt", "budget_spent"),
    )
)
register(
    CustomExperiment(
        name="deferral-real",
        description="Deferral on digits with a fixed naive-Bayes model and simulated experts",
        run=run_real,
        horizon=2000,
        seeds=3,
        table_metrics=("ratio_to_opt", "budget_spent"),
    )
)
