"""The figures of ``scarce run pareto-shift`` (matplotlib ``Figure`` objects from
:func:`scarce.sim.new_figure`; the experiment runner writes them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scarce.pareto.envs import PeaksShiftEnv
from scarce.sim import new_figure

FRONT_CONTEXT = 0.9


def figures(
    summary: pd.DataFrame,
    curves: pd.DataFrame,
    growth: pd.DataFrame,
    T_max: int,
    policies: list[str],
    front: dict[str, Any] | None,
) -> dict[str, Any]:
    """``regret_vs_T``, ``regret_curves``, ``tree_growth``, ``front_f1`` and ``fronts``.

    Parameters
    ----------
    summary:
        the experiment's summary (``env`` is ``"<schedule>/T=<T>"``).
    curves, growth:
        the target-regret and growth tables (columns ``env``, ``T``, ``policy``, ``seed``...).
    T_max:
        the largest horizon (the curves are drawn at it).
    policies:
        policy labels, in legend order.
    front:
        :meth:`~scarce.pareto.PCBShift.leaf_estimates` at :data:`FRONT_CONTEXT` of one run, or
        None.
    """
    envs = list(dict.fromkeys(curves["env"]))
    colors = {p: f"C{i % 10}" for i, p in enumerate(policies)}
    out = {
        "regret_vs_T": _regret_vs_T(summary, envs, policies, colors),
        "regret_curves": _curves(curves[curves["T"] == T_max], envs, policies, colors, T_max),
    }
    trees = [p for p in policies if growth.loc[growth["policy"] == p, "n_leaves"].notna().any()]
    for name, metric, pols, ylabel in (
        ("tree_growth", "n_leaves", trees, "leaves (bins)"),
        ("front_f1", "front_f1", policies, "F1 of the estimated Pareto set"),
    ):
        fig, axes = new_figure(1, len(envs), width=4.0, height=3.4)
        sub = growth[growth["T"] == T_max]
        for ax, env in zip(axes[0], envs, strict=True):
            for pol in pols:
                g = sub[(sub["env"] == env) & (sub["policy"] == pol)].groupby("step")[metric]
                ax.plot(g.mean().index, g.mean().values, marker=".", label=pol, color=colors[pol])
            ax.set_title(f"{env}, T={T_max}")
            ax.set_xlabel("round")
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(fontsize=7)
        out[name] = fig
    out["fronts"] = _fronts(front)
    return out


def _regret_vs_T(summary: pd.DataFrame, envs: list[str], policies: list[str], colors: dict) -> Any:
    fig, axes = new_figure(1, len(envs), width=4.0, height=3.4)
    pref = summary[summary["metric"] == "preference_regret"].copy()
    pref["T"] = pref["env"].str.split("T=").str[1].astype(int)
    pref["base"] = pref["env"].str.split("/").str[0]
    for ax, env in zip(axes[0], envs, strict=True):
        sub = pref[pref["base"] == env]
        for pol in policies:
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
    return fig


def _curves(
    curves: pd.DataFrame, envs: list[str], policies: list[str], colors: dict, T_max: int
) -> Any:
    fig, axes = new_figure(2, len(envs), width=4.0, height=3.2)
    for col, env in enumerate(envs):
        for row, metric in enumerate(("preference_regret", "played_pareto_regret")):
            ax = axes[row][col]
            for pol in policies:
                sel = (curves["env"] == env) & (curves["policy"] == pol)
                g = curves[sel].groupby("since_shift")[metric]
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
    return fig


def _fronts(front: dict[str, Any] | None) -> Any:
    """True means and Pareto front at :data:`FRONT_CONTEXT` beside PCBShift's estimates."""
    env = PeaksShiftEnv()
    x = np.array([[FRONT_CONTEXT]])
    mu = env.expected_rewards(x)[0]
    star = env.pareto_sets(x)[0]
    fig, axes = new_figure(1, 1, width=5.2, height=4.4)
    ax = axes[0][0]
    ax.scatter(mu[:, 0], mu[:, 1], s=28, color="0.7", label="true means (all arms)")
    order = np.argsort(mu[star, 0])
    ax.plot(mu[star, 0][order], mu[star, 1][order], "k-o", ms=5, label="true Pareto front")
    for k in range(env.n_actions):
        ax.annotate(str(k), mu[k], textcoords="offset points", xytext=(3, 3), fontsize=7)
    if front is not None:
        est = front["estimates"]
        ok = ~np.isnan(est[:, 0])
        ax.scatter(est[ok, 0], est[ok, 1], marker="x", color="C0", label="PCBShift estimates")
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
    return fig
