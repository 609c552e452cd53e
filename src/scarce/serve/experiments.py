"""``scarce run serve-loop``: the production loop (:mod:`scarce.serve.example`) per seed: a
uniformly random policy served over HTTP with a budget and delayed rewards on a real data set,
three candidates evaluated from its logs, the best promoted (guarded), the reward rate before
and after.

Outputs: ``summary.csv`` (metrics ``reward_rate_before``, ``reward_rate_after``,
``promoted_estimate``, ``promoted_ci_low``, ``served_estimate`` (the guard's estimate of the
served policy), ``budget``, ``budget_spent``; policy = the promoted candidate), ``evaluation.parquet`` (every candidate's estimate per seed), ``rewards.parquet``
(every decision), ``reward_rate.png`` and ``evaluation.png`` (seed label 0's run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from scarce.sim import parallel_map, run_seeds
from scarce.sim.experiments import CustomExperiment, ExperimentResult, register

EXPERIMENT = "serve-loop"
DATASET = "breast-cancer"


@dataclass(frozen=True)
class _Task:
    label: int
    root: int
    n_before: int
    n_after: int


def _run(task: _Task) -> Any:
    from scarce.serve.example import run_production_loop

    return task.label, run_production_loop(
        dataset=DATASET, n_before=task.n_before, n_after=task.n_after, seed=task.root
    )


def run_serve_loop(
    *,
    horizon: int,
    seeds: int | tuple[int, ...] | list[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Any = None,
    base_seed: int = 0,
) -> ExperimentResult:
    """Run the loop once per seed; ``horizon`` decisions, half before the promotion."""
    if isinstance(seeds, list) and seeds and isinstance(seeds[0], tuple):
        labels, roots = [p[0] for p in seeds], [p[1] for p in seeds]
    else:
        labels, roots = run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds, base_seed)
    n_before = int(horizon) // 2
    tasks = [
        _Task(label, root % 2**31, n_before, int(horizon) - n_before)
        for label, root in zip(labels, roots, strict=True)
    ]
    results = parallel_map(_run, tasks, n_jobs=n_jobs, progress=progress)
    summary, evaluations, rewards = [], [], []
    figures: dict[str, Any] = {}
    for label, r in results:
        t = r.evaluation.table
        best = t[t["candidate"] == r.promoted]
        metrics = {
            "reward_rate_before": r.rate("before"),
            "reward_rate_after": r.rate("after"),
            "promoted_estimate": float(best["value"].iloc[0]) if len(best) else float("nan"),
            "promoted_ci_low": float(best["ci_low"].iloc[0]) if len(best) else float("nan"),
            "served_estimate": float(
                r.promotion.get("guard", {}).get("current", {}).get("value", float("nan"))
            )
            if isinstance(r.promotion.get("guard"), dict)
            else float("nan"),
            "budget": r.budget,
            "budget_spent": r.spent,
        }
        for metric, value in metrics.items():
            summary.append(
                {"env": DATASET, "policy": r.promoted or "(none)", "seed": label,
                 "metric": metric, "value": value}
            )  # fmt: skip
        evaluations.append(t.assign(seed=label))
        rewards.append(r.rewards.assign(seed=label))
        if not figures:
            from scarce.serve.evaluate import evaluation_figure

            figures = {"reward_rate": r.figure(), "evaluation": evaluation_figure(r.evaluation)}
    return ExperimentResult(
        pd.DataFrame(summary),
        {
            "evaluation": pd.concat(evaluations, ignore_index=True),
            "rewards": pd.concat(rewards, ignore_index=True),
        },
        figures,
    )


register(
    CustomExperiment(
        name=EXPERIMENT,
        description=(
            "The production loop on breast-cancer diagnoses (real data): a uniformly random "
            "policy served over HTTP with a biopsy budget and delayed rewards, LinUCB, LinTS "
            "and epsilon-greedy evaluated from its logs (DR), the best promoted with a guard, "
            "reward rate before and after"
        ),
        run=run_serve_loop,
        horizon=1200,
        seeds=3,
        table_metrics=("reward_rate_before", "reward_rate_after", "promoted_estimate"),
    )
)
