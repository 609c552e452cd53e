"""Regret curves from a sweep table (PNG, matplotlib's non-interactive Agg backend)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 5.0, height: float = 3.8) -> Any:
    """A matplotlib ``Figure`` rendered with Agg (no pyplot, no global state) and its axes
    ``(nrows, ncols)``: what experiments return for the runner to write as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_regret(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    metric: str = "cumulative_regret",
    logx: bool = False,
    dpi: int = 120,
) -> Path:
    """Write :func:`regret_figure` to the PNG ``path`` (parent folders are created) and return
    ``path``; the arguments are those of :func:`regret_figure`."""
    fig = regret_figure(df, title=title, metric=metric, logx=logx)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def regret_figure(
    df: pd.DataFrame,
    *,
    title: str | None = None,
    metric: str = "cumulative_regret",
    logx: bool = False,
) -> Any:
    """Cumulative regret against step, one panel per environment (a matplotlib ``Figure``).

    Each policy's line is the mean over seeds; the shaded band is the mean +/- one standard
    error of the mean over seeds (no band with a single seed). The legend says so.

    Parameters
    ----------
    df:
        a sweep table (:func:`scarce.sim.sweep`): columns ``env``, ``policy``, ``seed``,
        ``step`` and ``metric``.
    title:
        figure title.
    metric:
        the column to plot (``"cumulative_regret"`` by default; ``"cumulative_reward"`` works
        for environments without an oracle).
    logx:
        logarithmic step axis.
    """
    missing = {"env", "policy", "seed", "step", metric} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks column(s) {sorted(missing)}; is it a sweep table?")
    envs = list(dict.fromkeys(df["env"]))
    policies = list(dict.fromkeys(df["policy"]))
    n = max(len(envs), 1)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols)
    axes = axes.ravel()
    colors = {p: f"C{i % 10}" for i, p in enumerate(policies)}
    n_seeds = int(df.groupby(["env", "policy"])["seed"].nunique().max()) if len(df) else 0

    for ax, env in zip(axes[: len(envs)], envs, strict=True):
        sub = df[df["env"] == env]
        for policy, g in sub.groupby("policy", sort=False):
            stats = g.groupby("step")[metric].agg(["mean", "std", "count"])
            steps = stats.index.to_numpy()
            mean = stats["mean"].to_numpy()
            ax.plot(steps, mean, color=colors[policy], label=str(policy), lw=1.6)
            count = stats["count"].to_numpy()
            if count.max() > 1:
                se = stats["std"].to_numpy() / np.sqrt(count)
                ax.fill_between(steps, mean - se, mean + se, color=colors[policy], alpha=0.2, lw=0)
        ax.set_title(str(env))
        ax.set_xlabel("step (cases decided)")
        ax.set_ylabel(metric.replace("_", " "))
        if logx:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(envs) :]:
        ax.set_visible(False)

    handles, labels = axes[0].get_legend_handles_labels()
    if n_seeds > 1:
        from matplotlib.patches import Patch

        handles.append(Patch(color="0.6", alpha=0.4))
        labels.append(f"band: mean ± 1 s.e. over {n_seeds} seeds")
    axes[0].legend(handles, labels, fontsize="small", loc="upper left", framealpha=0.8)
    if title:
        fig.suptitle(title)
    return fig
