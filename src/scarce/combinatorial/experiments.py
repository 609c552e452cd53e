"""``scarce run combinatorial``: budgeted allocation on the query-aware problem.

8 items per case, levels costing 64 / 128 / 256 / 400 (tokens), a per-case cap of 1024 (= 8 x
128: the spend of giving every item the second level). Compared, with per-item feedback unless
said otherwise:

* ``UCB-DP``, ``TS-DP``: :class:`~scarce.combinatorial.AllocationPolicy` with the exact
  knapsack; ``TS-DP-total`` learns from the case total only (full-bandit feedback);
* ``UCB-greedy``: the same learner with the greedy ratio allocation;
* ``fixed-64`` ... ``fixed-400``: every item at one level (256 and 400 exceed the cap; they are
  shown as references for what more spend buys).

Metrics per run: ``mean_expected_reward``, ``oracle_mean_expected_reward`` (best allocation
under the cap, exact), ``cumulative_regret`` against it, ``reward_to_opt``, ``mean_spend``,
``max_spend`` and ``cap_violations`` (cases over the cap). Outputs ``summary.csv``,
``traces.parquet`` (every case) and ``allocation.png`` (regret curves; reward vs spend).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.sim import parallel_map, run_seeds
from scarce.sim.experiments import SUMMARY_COLUMNS, CustomExperiment, register

EXPERIMENT = "combinatorial"
ENV = "query-aware"
N_ITEMS, N_FEATURES, COSTS, CAP = 8, 5, (64, 128, 256, 400), 1024

#: label -> (kind, keyword arguments, feedback)
POLICIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "UCB-DP": ("learn", {"method": "ucb", "solver": "dp"}, "item"),
    "TS-DP": ("learn", {"method": "ts", "solver": "dp"}, "item"),
    "TS-DP-total": ("learn", {"method": "ts", "solver": "dp"}, "total"),
    "UCB-greedy": ("learn", {"method": "ucb", "solver": "greedy"}, "item"),
    **{f"fixed-{c}": ("fixed", {"level": i}, "item") for i, c in enumerate(COSTS)},
}


@dataclass(frozen=True)
class _Task:
    policy: str
    seed: int
    root_seed: int
    horizon: int


def _run(task: _Task) -> pd.DataFrame:
    from scarce.combinatorial import (
        AllocationPolicy,
        FixedLevelPolicy,
        QueryAwareAllocationEnv,
        run_allocation,
    )
    from scarce.core.random import spawn_seeds

    env_seed, stream_seed, policy_seed = spawn_seeds(np.random.SeedSequence(task.root_seed), 3)
    env = QueryAwareAllocationEnv(N_ITEMS, N_FEATURES, COSTS, seed=env_seed)
    kind, kwargs, feedback = POLICIES[task.policy]
    common = {"n_items": N_ITEMS, "n_features": env.context_dim, "costs": COSTS}
    if kind == "learn":
        policy: Any = AllocationPolicy(**common, budget=CAP, seed=policy_seed, **kwargs)
    else:
        policy = FixedLevelPolicy(**common, **kwargs)
    frame = run_allocation(
        policy, env, task.horizon, budget=CAP, feedback=feedback, seed=stream_seed
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
        "cap_violations": float((run["spend"] > CAP).sum()),
    }


def plot_allocation(traces: pd.DataFrame, path: Path) -> Path:
    """Left: cumulative regret against the capped oracle (learning policies and fixed levels
    within the cap). Right: mean expected reward against mean spend, with the cap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, g in traces.groupby("policy", sort=False):
        spend_ok = g["spend"].max() <= CAP
        if spend_ok:
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_combinatorial(
    *,
    out: Path,
    horizon: int,
    seeds: int | tuple[int, ...],
    n_jobs: int | None = None,
    progress: Any = None,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Run every policy for every seed (module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels, roots = run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds, 0)
    tasks = [
        _Task(p, s, root, int(horizon))
        for p in POLICIES
        for s, root in zip(labels, roots, strict=True)
    ]
    traces = pd.concat(parallel_map(_run, tasks, n_jobs=n_jobs, progress=progress))
    rows = []
    for (policy, seed), run in traces.groupby(["policy", "seed"], sort=False):
        for metric, value in _metrics(run).items():
            rows.append((EXPERIMENT, ENV, policy, int(seed), metric, value))
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    paths = {
        "summary": out / "summary.csv",
        "traces": out / "traces.parquet",
        "plot": out / "allocation.png",
    }
    summary.to_csv(paths["summary"], index=False)
    traces.insert(0, "experiment", EXPERIMENT)
    traces.to_parquet(paths["traces"], index=False)
    plot_allocation(traces, paths["plot"])
    return summary, paths


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
