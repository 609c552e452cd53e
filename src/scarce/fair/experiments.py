"""Named experiments of the fair-allocation capability (``scarce run metacub-star``,
``metacub-jobs``, ``metacub-groups``, ``metacub-misspec``).

Every run is :func:`scarce.sim.run` of an allocation policy on a registered
:class:`~scarce.fair.FairAllocationEnv` (one round = one cohort: ``batch_size =
env.cohort_size``); the experiment's ``horizon`` counts rounds. Seeds: each seed label's root
seed spawns the environment's seed (fold split, cohorts, cooldowns, synthetic populations), the
run's streams (observation noise) and the policies' seed, so every policy of one seed faces the
same environment instance and the same noise (common random numbers) and the base seed is
honoured.

* ``metacub-star`` / ``metacub-jobs``: MetaCUB, its delay-agnostic and pretrained variants,
  EqualSplit, the three flat LinUCBs, the paper's per-group UCB (and CUCB, DUCB, SWUCB), EXP3,
  Random, Oracle and FairOracle on ``<data>-instant``, ``<data>-type1``, ``<data>-type2``
  (horizon 240 rounds, 3 seeds);
* ``metacub-groups``: the headline ablation on ``groups-instant``, ``groups-type1``,
  ``groups-type2`` (groups that differ more between than within): MetaCUB against EqualSplit
  (same base level, parity shares) and FairOracle (the band-constrained clairvoyant), with
  ParityOracle, Oracle, the delay-aware LinUCB, UCB, EXP3 and Random (horizon 400 rounds);
* ``metacub-misspec``: MetaCUB told the true kernel, or assuming type-1 or instant feedback,
  on ``groups-type2`` (per-person increments), ``groups-type2-aggregate`` (only the round's
  total observed) and ``groups-mixed`` (resource-specific kernels), with EqualSplit and
  FairOracle (horizon 400 rounds).

Outputs (:class:`~scarce.sim.ExperimentResult`; the runner writes them): ``summary.csv`` with
per (env, policy, seed) the measures of :func:`scarce.fair.allocation_metrics` plus ``regret``
(Oracle's cumulative outcome minus the policy's) and ``fair_regret`` (against FairOracle);
``traces.parquet`` (per-round outcomes); ``cumulative_outcome.png`` and ``fairness.png``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from scarce.core.random import spawn_seeds
from scarce.sim.experiments import CustomExperiment, ExperimentResult, register

KERNELS = ("instant", "type1", "type2")

#: the policies of the data experiments, by label
DATA_POLICIES = (
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
GROUPS_POLICIES = (
    "MetaCUB",
    "EqualSplit",
    "FairOracle",
    "ParityOracle",
    "Oracle",
    "LinUCB-delay-aware",
    "UCB",
    "EXP3",
    "Random",
)
MISSPEC_POLICIES = (
    "MetaCUB",
    "MetaCUB-assume-type1",
    "MetaCUB-assume-instant",
    "MetaCUB-delay-agnostic",
    "EqualSplit",
    "FairOracle",
    "Oracle",
)


def make_policy(label: str, env: Any, seed: int) -> Any:
    """A fresh policy by its label for ``env`` (learners get the environment's suggested
    parameters: the true kernels, unless the label says what to assume)."""
    from scarce.fair import (
        EqualSplit,
        EXP3Allocator,
        FairOracle,
        GroupUCB,
        LinUCBAllocator,
        MetaCUB,
        Oracle,
        RandomAllocator,
    )

    d = {"n_actions": env.n_actions, "n_features": env.n_features, "seed": seed}
    d.update(env.policy_params(0))
    table: dict[str, Callable[[], Any]] = {
        "MetaCUB": lambda: MetaCUB(**d),
        "MetaCUB-delay-agnostic": lambda: MetaCUB(attribution="delay_agnostic", **d),
        "MetaCUB-pretrained": lambda: MetaCUB(
            model_kwargs={"prior_theta": env.observational_prior()}, **d
        ),
        "MetaCUB-assume-type1": lambda: MetaCUB(**{**d, "kernels": "type1"}),
        "MetaCUB-assume-instant": lambda: MetaCUB(**{**d, "kernels": "instant"}),
        "EqualSplit": lambda: EqualSplit(**d),
        "LinUCB": lambda: LinUCBAllocator(attribution="wait", **d),
        "LinUCB-delay-agnostic": lambda: LinUCBAllocator(attribution="delay_agnostic", **d),
        "LinUCB-delay-aware": lambda: LinUCBAllocator(attribution="kernel_ls", **d),
        "UCB": lambda: GroupUCB(**d),
        "CUCB": lambda: GroupUCB(alpha=1.0, c=3.0, **d),
        "DUCB": lambda: GroupUCB(discount=0.9, **d),
        "SWUCB": lambda: GroupUCB(window=50, **d),
        "EXP3": lambda: EXP3Allocator(**d),
        "Random": lambda: RandomAllocator(**d),
        "Oracle": lambda: Oracle(env=env, seed=seed),
        "FairOracle": lambda: FairOracle(env=env, seed=seed),
        "ParityOracle": lambda: FairOracle(env=env, eps_f=0.0, seed=seed),
    }
    if label not in table:
        raise ValueError(f"unknown policy {label!r}; valid: {', '.join(table)}")
    return table[label]()


@functools.lru_cache(maxsize=16)
def build_env(name: str, seed: int) -> Any:
    """The registered environment ``name`` with ``seed`` (cached per process; the dynamics
    restart at every run)."""
    from scarce.envs import make_env

    return make_env(name, seed=seed)


def run_task(item: tuple[str, str, int, int, int]) -> dict[str, Any]:
    """One run: ``(env name, policy label, seed label, root seed, rounds)`` -> the run's
    measures and its per-round frame."""
    from scarce.fair.metrics import allocation_metrics, per_round
    from scarce.sim.run import run

    env_name, label, seed, root, rounds = item
    env_seed, run_seed, policy_seed = spawn_seeds(root, 3)
    env = build_env(env_name, int(env_seed))
    policy = make_policy(label, env, int(policy_seed))
    n = env.cohort_size
    trace = run(
        policy, env, rounds * n, batch_size=n, seed=int(run_seed), record_probabilities=False
    )
    metrics = allocation_metrics(trace, env.population.group_names, env.resources.names)
    frame = per_round(trace)
    frame.insert(0, "seed", seed)
    frame.insert(0, "policy", label)
    frame.insert(0, "env", env_name)
    return {"env": env_name, "policy": label, "seed": seed, "metrics": metrics, "frame": frame}


def run_fair_experiment(
    envs: Sequence[str],
    policies: Sequence[str],
    *,
    horizon: int,
    seeds: Sequence[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Any = None,
) -> ExperimentResult:
    """Every (env, policy, seed) run, as an :class:`~scarce.sim.ExperimentResult` (see the
    module docstring); ``horizon`` in rounds, ``seeds`` ``[(label, root), ...]``."""
    from scarce.sim import parallel_map

    for name in envs:
        build_env(name, 0)  # fail fast (unknown name, missing data) before the workers start
    items = [
        (e, p, int(label), int(root), int(horizon))
        for e in envs
        for p in policies
        for label, root in seeds
    ]
    results = parallel_map(run_task, items, n_jobs=n_jobs, progress=progress)
    outcome = {
        (r["env"], r["seed"], r["policy"]): r["metrics"]["cumulative_outcome"] for r in results
    }
    rows = []
    for r in results:
        m = dict(r["metrics"])
        for ref, key in (("Oracle", "regret"), ("FairOracle", "fair_regret")):
            if (r["env"], r["seed"], ref) in outcome:
                m[key] = outcome[(r["env"], r["seed"], ref)] - m["cumulative_outcome"]
        rows.extend((r["env"], r["policy"], r["seed"], k, float(v)) for k, v in m.items())
    summary = pd.DataFrame(rows, columns=["env", "policy", "seed", "metric", "value"])
    traces = pd.concat([r["frame"] for r in results], ignore_index=True)
    figures = {
        "cumulative_outcome": cumulative_figure(traces),
        "fairness": fairness_figure(summary),
    }
    return ExperimentResult(summary, {"traces": traces}, figures)


def cumulative_figure(traces: pd.DataFrame) -> Any:
    """Cumulative expected outcome per round (mean over seeds), one panel per env."""
    from scarce.sim.plot import new_figure

    envs = list(dict.fromkeys(traces["env"]))
    fig, axes = new_figure(1, len(envs))
    for ax, env in zip(axes[0], envs, strict=True):
        sub = traces[traces["env"] == env]
        mean = sub.groupby(["policy", "round"], sort=False)["cumulative_outcome"].mean()
        for policy in dict.fromkeys(sub["policy"]):
            curve = mean.loc[policy]
            style = "--" if "Oracle" in policy else "-"
            ax.plot(curve.index, curve.to_numpy(), style, label=policy, lw=1.1)
        ax.set_title(env)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative expected outcome")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def fairness_figure(summary: pd.DataFrame) -> Any:
    """Allocation fairness ratio per group and policy (mean over seeds), one panel per env,
    with the [0.8, 1.2] band."""
    from scarce.sim.plot import new_figure

    per_group = summary[summary["metric"].str.count(":") == 1].copy()
    per_group["group"] = per_group["metric"].str.split(":").str[1]
    envs = list(dict.fromkeys(per_group["env"]))
    fig, axes = new_figure(len(envs), 1, width=10.0, height=3.0)
    for ax, env in zip(axes[:, 0], envs, strict=True):
        sub = per_group[per_group["env"] == env]
        table = sub.pivot_table(index="policy", columns="group", values="value", sort=False)
        x = np.arange(len(table.index))
        width = 0.8 / max(len(table.columns), 1)
        for j, g in enumerate(table.columns):
            ax.bar(x + j * width, table[g].to_numpy(), width, label=g)
        ax.axhspan(0.8, 1.2, color="grey", alpha=0.15)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x + 0.4 - width / 2, table.index, rotation=30, fontsize=6)
        ax.set_ylabel("FR")
        ax.set_title(env)
        ax.legend(fontsize=6, ncol=len(table.columns))
    return fig


def _custom(
    name: str, envs: Sequence[str], policies: Sequence[str], horizon: int, description: str
) -> CustomExperiment:
    def run(*, horizon, seeds, n_jobs=None, progress=None):
        return run_fair_experiment(
            envs, policies, horizon=horizon, seeds=seeds, n_jobs=n_jobs, progress=progress
        )

    return CustomExperiment(
        name=name,
        description=description,
        run=run,
        horizon=horizon,
        seeds=3,
        table_metrics=("cumulative_outcome", "regret", "fairness_ratio_min", "fairness_ratio_max"),
    )


register(
    _custom(
        "metacub-star",
        [f"star-{k}" for k in KERNELS],
        DATA_POLICIES,
        240,
        "MetaCUB vs flat, per-group and delay-agnostic baselines on Tennessee STAR (small class "
        "/ aide for 4 ethnicity x free-lunch groups), instant, type-1 and type-2 kernels "
        "(horizon in rounds)",
    )
)
register(
    _custom(
        "metacub-jobs",
        [f"jobs-{k}" for k in KERNELS],
        DATA_POLICIES,
        240,
        "MetaCUB vs baselines on JOBS (NSW + CPS, binary employment; training and counselling "
        "for black / hispanic / other), instant, type-1 and type-2 kernels (horizon in rounds)",
    )
)
register(
    _custom(
        "metacub-groups",
        [f"groups-{k}" for k in KERNELS],
        GROUPS_POLICIES,
        400,
        "the meta level's ablation: MetaCUB vs EqualSplit (parity shares, same base level) vs "
        "FairOracle on synthetic groups that differ more between than within (horizon in rounds)",
    )
)
register(
    _custom(
        "metacub-misspec",
        ["groups-type2", "groups-type2-aggregate", "groups-mixed"],
        MISSPEC_POLICIES,
        400,
        "MetaCUB told the true kernel vs assuming type-1 or instant feedback, with per-person "
        "or aggregate outcomes and resource-specific kernels (horizon in rounds)",
    )
)
