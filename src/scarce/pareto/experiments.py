"""``scarce run pareto-shift``: PCBShift and baselines on covariate-shift problems with two
objectives, for several shift strengths and horizons.

Environments (:class:`~scarce.pareto.envs.PeaksShiftEnv`, ``K = 10``, ``D = 1``, noise 0.1):
source ``Beta(1, 1 + nu)`` (a power law near ``x = 0``), target ``Beta(1 + nu, 1)`` (near
``x = 1``) for ``nu`` in 0 (no shift, both uniform), 1, 3 (``rho_0.05(P, Q)`` about 10, 39
and 9700); and a two-change-point schedule (``Beta(1, 5)`` near the origin, then uniform,
then the target ``Beta(6, 1)``). Each runs at horizons ``T/4, T/2, T``
with the (last) change point at ``T_i / 2``.

Outputs in ``out/``: ``summary.csv`` (contract columns), ``traces.parquet`` (per-checkpoint
cumulative regrets, front F1 and tree size), ``regret_vs_T.png``, ``regret_curves.png``,
``tree_growth.png``, ``front_f1.png`` and ``fronts.png`` (true vs estimated Pareto fronts at
a target context).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.pareto.baselines import ParetoRandom, ScalarisedLinUCB
from scarce.pareto.envs import PeaksShiftEnv
from scarce.pareto.policy import ParetoUCB, PCBShift, StaticGridPCB
from scarce.pareto.runner import simulate
from scarce.sim import parallel_map, run_seeds
from scarce.sim.experiments import SUMMARY_COLUMNS, CustomExperiment, register

NAME = "pareto-shift"
N_ACTIONS = 10
NOISE = 0.1
FRONT_CONTEXT = 0.9
#: shift strengths: source Beta(1, 1 + nu) (mass near 0), target Beta(1 + nu, 1) (near 1)
SHIFTS = (0, 1, 3)

POLICIES = (
    "PCBShift",
    "PCBShift-hoeffding",
    "StaticGridPCB",
    "ParetoUCB",
    "LinUCB-linear",
    "LinUCB-chebyshev",
    "Random",
)


def _schedules(T: int) -> dict[str, dict[str, Any]]:
    half = T // 2
    out: dict[str, dict[str, Any]] = {
        f"nu={nu}": {
            "change_points": (half,),
            "distributions": ((1.0, 1.0 + nu), (1.0 + nu, 1.0)),
        }
        for nu in SHIFTS
    }
    out["multi"] = {
        "change_points": (T // 4, half),
        "distributions": ((1.0, 5.0), (1.0, 1.0), (6.0, 1.0)),
    }
    return out


def make_env(label: str, T: int, seed: int = 0) -> PeaksShiftEnv:
    """The environment ``label`` (a key of the schedules) for horizon ``T``."""
    return PeaksShiftEnv(n_actions=N_ACTIONS, noise=NOISE, seed=seed, **_schedules(T)[label])


def make_policy(label: str, env: PeaksShiftEnv, T: int, seed: int) -> Any:
    """A fresh policy ``label`` (one of :data:`POLICIES`) tuned to ``env``: the tree policies
    get the instance's Hölder constant and noise scale (``PCBShift-hoeffding`` uses the
    Hoeffding radius for rewards in [0, 1] instead), LinUCB a width for noise 0.1."""
    common = {
        "n_actions": env.n_actions,
        "n_features": env.n_features,
        "n_objectives": env.n_objectives,
    }
    tree = {"c_beta": env.holder_constant, "beta": env.beta, "sigma": env.noise, "horizon": T}
    if label == "PCBShift":
        return PCBShift(**common, **tree, seed=seed)
    if label == "PCBShift-hoeffding":  # the [0, 1]-rewards radius: wider, so fewer splits
        return PCBShift(**common, **{**tree, "sigma": None}, seed=seed)
    if label == "StaticGridPCB":
        return StaticGridPCB(**common, **tree, seed=seed)
    if label == "ParetoUCB":
        return ParetoUCB(**common, **tree, seed=seed)
    if label.startswith("LinUCB-"):
        return ScalarisedLinUCB(**common, scalarization=label.split("-")[1], alpha=0.2, seed=seed)
    if label == "Random":
        return ParetoRandom(**common, seed=seed)
    raise ValueError(f"unknown policy {label!r}; valid: {', '.join(POLICIES)}")


def _run_one(task: tuple[str, int, str, int, int]) -> dict[str, Any]:
    env_label, T, policy_label, seed_label, root = task
    env = make_env(env_label, T)
    policy = make_policy(policy_label, env, T, seed=root + 1)
    tr = simulate(policy, env, T, seed=root, n_checkpoints=20)
    start = tr.target_start - 1
    cum = {
        name: np.cumsum(getattr(tr, name)[start:])
        for name in (
            "preference_regret",
            "preference_regret_filtered",
            "log_hausdorff_regret",
            "played_regret",
        )
    }
    target_steps = np.arange(1, T - start + 1)
    idx = np.unique(np.linspace(0, target_steps.size - 1, 40).round().astype(int))
    curve = pd.DataFrame({"since_shift": target_steps[idx], **{k: v[idx] for k, v in cum.items()}})
    metrics = {
        "preference_regret": tr.target("preference_regret"),
        "preference_regret_filtered": tr.target("preference_regret_filtered"),
        "log_hausdorff_regret": tr.target("log_hausdorff_regret"),
        "played_pareto_regret": tr.target("played_regret"),
        "played_pareto_regret_all_rounds": float(tr.played_regret.sum()),
        "front_f1": float(tr.front_f1[-1]),
    }
    if not np.isnan(tr.n_leaves[-1]):
        metrics["n_leaves"] = float(tr.n_leaves[-1])
        metrics["depth"] = float(tr.depth[-1])
    growth = pd.DataFrame(
        {
            "step": tr.checkpoints,
            "front_f1": tr.front_f1,
            "n_leaves": tr.n_leaves,
            "depth": tr.depth,
        }
    )
    front = None
    if hasattr(policy, "leaf_estimates"):
        est = policy.leaf_estimates(np.array([FRONT_CONTEXT]))
        front = {k: v for k, v in est.items()}
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


def run(
    *,
    out: Path,
    horizon: int = 4000,
    seeds: int | tuple[int, ...] = 3,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Run the experiment (``horizon`` is the largest ``T``) and write its files to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels, roots = run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds)
    horizons = sorted({max(16, horizon // 4), max(16, horizon // 2), max(16, int(horizon))})
    tasks = [
        (env_label, T, pol, lab, root)
        for T in horizons
        for env_label in _schedules(T)
        for pol in POLICIES
        for lab, root in zip(labels, roots, strict=True)
    ]
    results = parallel_map(_run_one, tasks, n_jobs=n_jobs, progress=progress)

    rows, curves, growth = [], [], []
    for r in results:
        env_name = f"{r['env']}/T={r['T']}"
        for metric, value in r["metrics"].items():
            rows.append((NAME, env_name, r["policy"], r["seed"], metric, value))
        for _kind, frame, sink in (("target", r["curve"], curves), ("growth", r["growth"], growth)):
            f = frame.copy()
            f.insert(0, "seed", r["seed"])
            f.insert(0, "policy", r["policy"])
            f.insert(0, "T", r["T"])
            f.insert(0, "env", r["env"])
            f.insert(0, "experiment", NAME)
            sink.append(f)
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    paths = {"summary": out / "summary.csv", "traces": out / "traces.parquet"}
    summary.to_csv(paths["summary"], index=False)
    curves_df = pd.concat(curves, ignore_index=True)
    growth_df = pd.concat(growth, ignore_index=True)
    traces = pd.concat(
        [curves_df.assign(table="target_regret"), growth_df.assign(table="growth")],
        ignore_index=True,
    )
    traces.to_parquet(paths["traces"], index=False)

    T_max = max(horizons)
    front = next(
        (
            r["front"]
            for r in results
            if r["policy"] == "PCBShift"
            and r["T"] == T_max
            and r["env"] == f"nu={SHIFTS[-1]}"
            and r["seed"] == labels[0]
        ),
        None,
    )
    paths.update(_plots(out, summary, curves_df, growth_df, T_max, front))
    return summary, paths


def _plots(
    out: Path,
    summary: pd.DataFrame,
    curves: pd.DataFrame,
    growth: pd.DataFrame,
    T_max: int,
    front: dict[str, Any] | None,
) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    envs = list(dict.fromkeys(curves["env"]))
    colors = {p: f"C{i}" for i, p in enumerate(POLICIES)}

    # regret vs T
    fig, axes = plt.subplots(1, len(envs), figsize=(4 * len(envs), 3.4), squeeze=False)
    pref = summary[summary["metric"] == "preference_regret"].copy()
    pref["T"] = pref["env"].str.split("T=").str[1].astype(int)
    pref["base"] = pref["env"].str.split("/").str[0]
    for ax, env in zip(axes[0], envs, strict=True):
        sub = pref[pref["base"] == env]
        for pol in POLICIES:
            g = sub[sub["policy"] == pol].groupby("T")["value"]
            mean, sd = g.mean(), g.std().fillna(0.0)
            ax.errorbar(
                mean.index,
                mean.values,
                yerr=np.vstack([np.minimum(sd.values, mean.values), sd.values]),
                marker="o",
                ms=3,
                capsize=2,
                label=pol,
                color=colors[pol],
            )
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(bottom=0.0)
        ax.set_title(env)
        ax.set_xlabel("horizon T (change point at T/2)")
    axes[0][0].set_ylabel("target-phase preference regret")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Preference regret vs T (mean ± sd over seeds)")
    fig.tight_layout()
    paths["regret_vs_T"] = out / "regret_vs_T.png"
    fig.savefig(paths["regret_vs_T"], dpi=110)
    plt.close(fig)

    # cumulative target regret curves at T_max
    fig, axes = plt.subplots(2, len(envs), figsize=(4 * len(envs), 6.4), squeeze=False)
    sub = curves[curves["T"] == T_max]
    for col, env in enumerate(envs):
        for row, metric in enumerate(("preference_regret", "played_regret")):
            ax = axes[row][col]
            for pol in POLICIES:
                g = sub[(sub["env"] == env) & (sub["policy"] == pol)].groupby("since_shift")[metric]
                mean, sd = g.mean(), g.std().fillna(0.0)
                ax.plot(mean.index, mean.values, label=pol, color=colors[pol])
                lower = np.maximum(mean - sd, 0.0)
                ax.fill_between(mean.index, lower, mean + sd, alpha=0.15, color=colors[pol])
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_ylim(bottom=0.0)
            ax.set_title(f"{env}, T={T_max}")
            ax.set_xlabel("rounds since the (last) change point")
            ax.set_ylabel(f"cumulative {metric.replace('_', ' ')}")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    paths["regret_curves"] = out / "regret_curves.png"
    fig.savefig(paths["regret_curves"], dpi=110)
    plt.close(fig)

    # tree growth and front F1
    for name, metric, pols, ylabel in (
        (
            "tree_growth",
            "n_leaves",
            ("PCBShift", "PCBShift-hoeffding", "ParetoUCB", "StaticGridPCB"),
            "leaves (bins)",
        ),
        ("front_f1", "front_f1", POLICIES, "F1 of the estimated Pareto set"),
    ):
        fig, axes = plt.subplots(1, len(envs), figsize=(4 * len(envs), 3.4), squeeze=False)
        sub = growth[growth["T"] == T_max]
        for ax, env in zip(axes[0], envs, strict=True):
            for pol in pols:
                g = sub[(sub["env"] == env) & (sub["policy"] == pol)].groupby("step")[metric]
                ax.plot(g.mean().index, g.mean().values, marker=".", label=pol, color=colors[pol])
            ax.set_title(f"{env}, T={T_max}")
            ax.set_xlabel("round")
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=110)
        plt.close(fig)

    # true vs estimated Pareto fronts at one target context
    env = make_env(f"nu={SHIFTS[-1]}", T_max)
    mu = env.mean_rewards(np.array([[FRONT_CONTEXT]]))[0]
    star = env.pareto_sets(np.array([[FRONT_CONTEXT]]))[0]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.scatter(mu[:, 0], mu[:, 1], s=28, color="0.7", label="true means (all arms)")
    order = np.argsort(mu[star, 0])
    ax.plot(mu[star, 0][order], mu[star, 1][order], "k-o", ms=5, label="true Pareto front")
    for k in range(env.n_actions):
        ax.annotate(
            str(k), mu[k], textcoords="offset points", xytext=(3, 3), fontsize=7, color="0.4"
        )
    if front is not None:
        est = front["means"]
        ok = ~np.isnan(est[:, 0])
        ax.scatter(est[ok, 0], est[ok, 1], marker="x", color="C0", label="PCBShift bin estimates")
        play = front["play"] & ok
        o = np.argsort(est[play, 0])
        ax.plot(
            est[play, 0][o],
            est[play, 1][o],
            "C0--s",
            mfc="none",
            ms=8,
            label="estimated front (play set)",
        )
        ax.set_title(
            f"x = {FRONT_CONTEXT}: bin [{front['lower'][0]:.3f}, {front['upper'][0]:.3f}], "
            f"level {front['level']}",
            fontsize=9,
        )
    ax.set_xlabel("objective 1")
    ax.set_ylabel("objective 2")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths["fronts"] = out / "fronts.png"
    fig.savefig(paths["fronts"], dpi=110)
    plt.close(fig)
    return paths


register(
    CustomExperiment(
        name=NAME,
        description=(
            "Vector rewards under covariate shift: PCBShift (adaptive tree, Pareto elimination; "
            "known-noise and Hoeffding radii) vs "
            "static grid, Pareto UCB, scalarised LinUCB (linear, Chebyshev) and random; K=10 arms, "
            "2 objectives, shift strengths nu=0/1/3 and a two-change-point schedule, T/4..T"
        ),
        run=run,
        horizon=4000,
        seeds=3,
        table_metrics=("preference_regret", "played_pareto_regret", "front_f1"),
    )
)
