"""``scarce run combinatorial``: budgeted allocation on the query-aware problem.

8 items per case, levels costing 64 / 128 / 256 / 400 (tokens), a per-case cap of 1024 (= 8 x
128: the spend of giving every item the second level). Compared, with per-item feedback unless
said otherwise:

* ``UCB-DP``, ``TS-DP``: :class:`~scarce.combinatorial.AllocationPolicy` with the exact
  knapsack; ``TS-DP-total`` learns from the case total only (full-bandit feedback);
* ``UCB-greedy``: the same learner with the greedy ratio allocation;
* ``fixed-64`` ... ``fixed-400``: every item at one level (256 and 400 exceed the cap; they are
  shown as references for what more spend buys).

Every run is :func:`scarce.sim.run` of a registered policy on the registered ``query-aware``
environment; the environment's per-case metrics give, per run: ``mean_expected_reward``,
``oracle_mean_expected_reward`` (best allocation under the cap, exact), ``cumulative_regret``
against it, ``reward_to_opt``, ``mean_spend``, ``max_spend`` and ``cap_violations`` (cases
over the cap). Outputs ``summary.csv``, ``traces.parquet`` (every case) and
``allocation.png`` (regret curves; reward vs spend).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scarce.sim import parallel_map
from scarce.sim.experiments import CustomExperiment, ExperimentResult, register
from scarce.sim.plot import new_figure

EXPERIMENT = "combinatorial"
ENV = "query-aware"
N_ITEMS, QUERY_DIM, COSTS, CAP = 8, 5, (64, 128, 256, 400), 1024

#: label -> (registered policy, constructor keywords beyond what the environment suggests)
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "UCB-DP": ("AllocationPolicy", {"method": "ucb", "solver": "dp"}),
    "TS-DP": ("AllocationPolicy", {"method": "ts", "solver": "dp"}),
    "TS-DP-total": ("AllocationPolicy", {"method": "ts", "solver": "dp", "feedback": "total"}),
    "UCB-greedy": ("AllocationPolicy", {"method": "ucb", "solver": "greedy"}),
    **{f"fixed-{c}": ("FixedLevelPolicy", {"level": i}) for i, c in enumerate(COSTS)},
}


@dataclass(frozen=True)
class _Task:
    policy: str
    seed: int
    root_seed: int
    horizon: int


def _run(task: _Task) -> pd.DataFrame:
    from scarce.core.random import spawn_seeds
    from scarce.envs import make_env
    from scarce.sim import PolicySpec, run

    env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(task.root_seed), 3)
    env = make_env(ENV, seed=env_seed, n_items=N_ITEMS, query_dim=QUERY_DIM, costs=COSTS, cap=CAP)
    name, params = POLICIES[task.policy]
    policy = PolicySpec(name, params).build_for(env, policy_seed, task.horizon)
    trace = run(policy, env, task.horizon, seed=stream_seed)
    frame = pd.DataFrame(
        {
            "step": trace.step,
            "reward": trace.reward,
            **{
                k.removeprefix("metric_"): v
                for k, v in trace.extras.items()
                if k.startswith("metric_")
            },
        }
    )
    frame.insert(0, "seed", task.seed)
    frame.insert(0, "policy", task.policy)
    frame.insert(0, "env", ENV)
    return frame


def _metrics(run: pd.DataFrame) -> dict[str, float]:
    exp, opt = run["expected_reward"].to_numpy(), run["oracle_expected_reward"].to_numpy()
    return {
        "mean_expected_reward": float(exp.mean()),
        "oracle_mean_expected_reward": float(opt.mean()),
        "cumulative_regret": float(run["regret"].sum()),
        "reward_to_opt": float(exp.sum() / opt.sum()),
        "mean_spend": float(run["spend"].mean()),
        "max_spend": float(run["spend"].max()),
        "cap_violations": float(run["over_cap"].sum()),
    }


def allocation_figure(traces: pd.DataFrame) -> Any:
    """Left: cumulative regret against the capped oracle (learning policies and fixed levels
    within the cap). Right: mean expected reward against mean spend, with the cap."""
    fig, axes = new_figure(1, 2, width=5.5, height=4.2)
    ax1, ax2 = axes[0]
    for label, g in traces.groupby("policy", sort=False):
        if g["spend"].max() <= CAP:
            curves = np.stack(
                [sg["regret"].cumsum().to_numpy() for _, sg in g.groupby("seed", sort=False)]
            )
            ax1.plot(np.arange(1, curves.shape[1] + 1), curves.mean(axis=0), label=label)
        per_seed = g.groupby("seed")[["expected_reward", "spend"]].mean()
        ax2.scatter(per_seed["spend"], per_seed["expected_reward"], s=14)
        ax2.annotate(
            label,
            (per_seed["spend"].mean(), per_seed["expected_reward"].mean()),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax1.set_xlabel("case")
    ax1.set_ylabel("cumulative expected regret (mean over seeds)")
    ax1.set_title(f"regret vs the exact allocation under the cap {CAP}", fontsize=9)
    ax1.legend(fontsize=7)
    ax2.axvline(CAP, color="k", lw=1, ls="--", label="cap")
    ax2.set_xlabel("mean spend per case")
    ax2.set_ylabel("mean expected reward per case")
    ax2.set_title("reward vs spend (one dot per seed)", fontsize=9)
    ax2.legend(fontsize=7)
    return fig


def run_combinatorial(
    *,
    horizon: int,
    seeds: list[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Any = None,
) -> ExperimentResult:
    """Run every policy for every seed (module docstring)."""
    tasks = [_Task(p, label, root, int(horizon)) for p in POLICIES for label, root in seeds]
    traces = pd.concat(parallel_map(_run, tasks, n_jobs=n_jobs, progress=progress))
    rows = [
        (ENV, policy, int(seed), metric, value)
        for (policy, seed), run in traces.groupby(["policy", "seed"], sort=False)
        for metric, value in _metrics(run).items()
    ]
    summary = pd.DataFrame(rows, columns=["env", "policy", "seed", "metric", "value"])
    return ExperimentResult(summary, {"traces": traces}, {"allocation": allocation_figure(traces)})


register(
    CustomExperiment(
        name=EXPERIMENT,
        description=(
            "budgeted allocation (8 items, levels 64/128/256/400, cap 1024 per case) on a "
            "query-aware synthetic problem: UCB/TS with exact knapsack (DP), greedy allocation, "
            "fixed levels"
        ),
        run=run_combinatorial,
        horizon=2000,
        seeds=3,
        table_metrics=("mean_expected_reward", "mean_spend", "cumulative_regret"),
    )
)
