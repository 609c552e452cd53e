"""Named experiments of the fair-allocation capability (``scarce run metacub-star``,
``scarce run metacub-jobs``).

Each runs MetaCUB and the baselines on one semi-synthetic data set under instant feedback and
the Type-I and Type-II delay kernels (env names ``<data>-instant``, ``<data>-type1``,
``<data>-type2``), with the clairvoyant oracle and the fair oracle as references, and writes

* ``summary.csv`` (contract columns): per (env, policy, seed) ``cumulative_outcome`` (full
  expected effect of all allocations), ``observed_outcome``, ``regret`` (oracle's cumulative
  outcome minus the policy's), ``fair_regret`` (against the fair oracle),
  ``fairness_ratio_min``, ``fairness_ratio_max``, ``disparity`` (``max_k |FR_k - 1|``),
  ``outcome_spread`` and the ratios per group (``fairness_ratio:<group>``) and per group and
  resource (``fairness_ratio:<group>:<resource>``);
* ``traces.parquet``: per-round outcomes and cumulative outcome of every run;
* ``cumulative_outcome.png`` (curves per env, mean over seeds) and ``fairness.png`` (allocation
  fairness ratio per group and policy, per env).

Populations, cohorts and cooldowns are fixed by the env seed 0; the run seed drives noise,
tie-breaking and exploration. MetaCUB runs with the linear outcome model (the neural models
are much slower on 2 cores; see docs/fair-delayed.md), the spec's band ``eps_f = 0.2`` and
``rounding="randomized"`` (realised rates match the planned ones).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.sim.experiments import SUMMARY_COLUMNS, CustomExperiment, register

KERNELS = ("instant", "type1", "type2")

#: policy label -> factory(env)
POLICY_NAMES = (
    "MetaCUB",
    "MetaCUB-delay-agnostic",
    "MetaCUB-pretrained",
    "EqualSplit",
    "LinUCB",
    "LinUCB-delay-agnostic",
    "LinUCB-delay-aware",
    "UCB",
    "CUCB",
    "DUCB",
    "SWUCB",
    "EXP3",
    "Random",
    "Oracle",
    "FairOracle",
)


def make_allocator(name: str, env: Any) -> Any:
    """A fresh allocator by its label (see :data:`POLICY_NAMES`)."""
    from scarce.fair import (
        EXP3Allocator,
        IndexAllocator,
        LinUCBAllocator,
        MetaCUB,
        OracleAllocator,
        RandomAllocator,
    )

    table = {
        "MetaCUB": lambda: MetaCUB(model="linear", rounding="randomized"),
        "MetaCUB-delay-agnostic": lambda: MetaCUB(
            model="linear",
            rounding="randomized",
            attribution="delay_agnostic",
            name="MetaCUB-delay-agnostic",
        ),
        "MetaCUB-pretrained": lambda: MetaCUB(
            model="linear", rounding="randomized", pretrain=True, name="MetaCUB-pretrained"
        ),
        "EqualSplit": lambda: MetaCUB(model="linear", meta="parity", rounding="randomized"),
        "LinUCB": lambda: LinUCBAllocator("wait"),
        "LinUCB-delay-agnostic": lambda: LinUCBAllocator("delay_agnostic"),
        "LinUCB-delay-aware": lambda: LinUCBAllocator("kernel_ls"),
        "UCB": lambda: IndexAllocator("ucb"),
        "CUCB": lambda: IndexAllocator("cucb"),
        "DUCB": lambda: IndexAllocator("ducb"),
        "SWUCB": lambda: IndexAllocator("swucb"),
        "EXP3": lambda: EXP3Allocator(),
        "Random": lambda: RandomAllocator(),
        "Oracle": lambda: OracleAllocator(env),
        "FairOracle": lambda: OracleAllocator(env, fair=True),
    }
    if name not in table:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(table)}")
    return table[name]()


@functools.lru_cache(maxsize=8)
def build_env(dataset: str, kernel: str) -> Any:
    """The environment of ``dataset`` (``"star"``, ``"jobs"`` or ``"synthetic"``) with a kernel
    family (cached per process)."""
    from scarce.fair import jobs_env, star_env, synthetic_env

    makers = {"star": star_env, "jobs": jobs_env}
    if dataset == "synthetic":
        return synthetic_env(800, kernel=kernel, seed=0, name=f"synthetic-{kernel}")
    if dataset not in makers:
        raise ValueError(f"dataset must be 'star', 'jobs' or 'synthetic'; got {dataset!r}")
    return makers[dataset](kernel, seed=0, name=f"{dataset}-{kernel}")


def run_task(item: tuple[str, str, str, int, int, int]) -> dict[str, Any]:
    """One run: ``(dataset, kernel, policy, seed label, root seed, horizon)`` -> metrics and
    the per-round frame."""
    from scarce.fair import simulate

    dataset, kernel, policy, seed, root, horizon = item
    env = build_env(dataset, kernel)
    trace = simulate(make_allocator(policy, env), env, horizon, seed=root)
    frame = trace.to_frame()
    frame.insert(0, "seed", seed)
    frame.insert(0, "policy", policy)
    frame.insert(0, "env", env.name)
    return {
        "env": env.name,
        "policy": policy,
        "seed": seed,
        "metrics": trace.metrics(),
        "frame": frame,
    }


def run_fair_experiment(
    name: str,
    dataset: str,
    *,
    out: Path,
    horizon: int,
    seeds: Any,
    n_jobs: int | None = None,
    progress: Any = None,
    policies: tuple[str, ...] = POLICY_NAMES,
    kernels: tuple[str, ...] = KERNELS,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Run every (kernel, policy, seed) and write the outputs (see the module docstring)."""
    from scarce.sim import parallel_map, run_seeds

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels, roots = run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds, 0)
    for k in kernels:
        build_env(dataset, k)  # fail fast (missing data) before starting workers
    items = [
        (dataset, k, p, int(label), int(root), int(horizon))
        for k in kernels
        for p in policies
        for label, root in zip(labels, roots, strict=True)
    ]
    results = parallel_map(run_task, items, n_jobs=n_jobs, progress=progress)
    rows = []
    best = {(r["env"], r["seed"], r["policy"]): r["metrics"]["cumulative_outcome"] for r in results}
    for r in results:
        m = dict(r["metrics"])
        for ref, key in (("Oracle", "regret"), ("FairOracle", "fair_regret")):
            if (r["env"], r["seed"], ref) in best:
                m[key] = best[(r["env"], r["seed"], ref)] - m["cumulative_outcome"]
        for metric, value in m.items():
            rows.append((name, r["env"], r["policy"], r["seed"], metric, float(value)))
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    traces = pd.concat([r["frame"] for r in results], ignore_index=True)
    traces.insert(0, "experiment", name)
    paths = {
        "summary": out / "summary.csv",
        "traces": out / "traces.parquet",
        "plot": out / "cumulative_outcome.png",
        "fairness_plot": out / "fairness.png",
    }
    summary.to_csv(paths["summary"], index=False)
    traces.to_parquet(paths["traces"], index=False)
    plot_cumulative(traces, paths["plot"], title=f"{name}: cumulative expected outcome")
    plot_fairness(summary, paths["fairness_plot"], title=f"{name}: allocation fairness ratio")
    return summary, paths


def plot_cumulative(traces: pd.DataFrame, path: Path, title: str) -> None:
    """Cumulative outcome curves (mean over seeds), one panel per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(traces["env"]))
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        sub = traces[traces["env"] == env]
        mean = sub.groupby(["policy", "round"], sort=False)["cumulative_outcome"].mean()
        colors = plt.get_cmap("tab20").colors
        for j, policy in enumerate(dict.fromkeys(sub["policy"])):
            curve = mean.loc[policy]
            style = "--" if "Oracle" in policy else "-"
            ax.plot(
                curve.index,
                curve.to_numpy(),
                style,
                label=policy,
                lw=1.2,
                color=colors[j % len(colors)],
            )
        ax.set_title(env)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative expected outcome")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fairness(summary: pd.DataFrame, path: Path, title: str) -> None:
    """Bar chart of the allocation fairness ratio per group (mean over seeds), per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_group = summary[summary["metric"].str.count(":") == 1].copy()
    per_group["group"] = per_group["metric"].str.split(":").str[1]
    envs = list(dict.fromkeys(per_group["env"]))
    fig, axes = plt.subplots(len(envs), 1, figsize=(11, 3.2 * len(envs)), squeeze=False)
    for ax, env in zip(axes[:, 0], envs, strict=True):
        sub = per_group[per_group["env"] == env]
        table = sub.pivot_table(index="policy", columns="group", values="value", sort=False)
        x = np.arange(len(table.index))
        width = 0.8 / max(len(table.columns), 1)
        for j, g in enumerate(table.columns):
            ax.bar(x + j * width, table[g].to_numpy(), width, label=g)
        ax.axhspan(0.8, 1.2, color="grey", alpha=0.15)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x + 0.4 - width / 2, table.index, rotation=30, fontsize=7)
        ax.set_ylabel("FR")
        ax.set_title(env)
        ax.legend(fontsize=7, ncol=len(table.columns))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _custom(name: str, dataset: str, description: str) -> CustomExperiment:
    def run(*, out, horizon, seeds, n_jobs=None, progress=None):
        return run_fair_experiment(
            name, dataset, out=out, horizon=horizon, seeds=seeds, n_jobs=n_jobs, progress=progress
        )

    return CustomExperiment(
        name=name,
        description=description,
        run=run,
        horizon=240,
        seeds=3,
        table_metrics=("cumulative_outcome", "regret", "fairness_ratio_min", "fairness_ratio_max"),
    )


register(
    _custom(
        "metacub-star",
        "star",
        "MetaCUB vs flat and delay-agnostic baselines on Tennessee STAR (small class / aide for "
        "4 ethnicity x free-lunch groups), instant, Type-I and Type-II delay kernels",
    )
)
register(
    _custom(
        "metacub-jobs",
        "jobs",
        "MetaCUB vs baselines on JOBS (NSW treated + CPS controls; training and counselling "
        "slots for black / hispanic / other), instant, Type-I and Type-II delay kernels",
    )
)
