"""``scarce run ope-obd``: the Open Bandit Dataset protocol (Saito et al. 2021).

The dataset holds logs of two policies run on the same traffic in the same week: uniform
random and Bernoulli Thompson sampling (BTS). Each one's on-policy value (its click rate on its
own logs) is the ground truth for evaluating it *off*-policy from the *other* one's logs:

* target **bts**, evaluated from the **random** logs: BTS is context-free, so its policy is its
  per-position action distribution, here the empirical frequency of each item at each
  position in the BTS logs (the week's average of the changing BTS policy);
* target **bts-obp**, evaluated from the **random** logs, Open Bandit Pipeline's protocol (its
  benchmark and paper): Bernoulli TS with obp's ZOZOTOWN prior
  (``BernoulliTS(is_zozotown_prior=True)``, parameters read from obp's package data, obp not
  imported), its per-position distribution computed exactly
  (:func:`scarce.ope.obd.beta_rank_probabilities`) where obp uses Monte Carlo. The truth is
  the same BTS click rate;
* target **random**, evaluated from the **bts** logs: the uniform distribution ``1 / K``.

For each campaign (``all``, ``men``, ``women``), target and seed, the evaluation logs are a
bootstrap resample of ``horizon`` rows (at most 10,000) of the other policy's logs (so seeds
show the estimators' spread), and every estimator but replay (the targets are stochastic)
is run with 95% normal intervals; the reward model of DM/DR/switch-DR is one ridge regression
on ``[user features, one-hot item, one-hot position]`` (pooled over items: about 60 rows per
item and fold are too few for per-item models with 106 features), cross-fitted on 2 folds.

Outputs: ``summary.csv`` (metrics ``truth``, ``truth_se`` and per estimator ``<e>_estimate``,
``<e>_ci_low``, ``<e>_ci_high``, ``<e>_relative_error`` = ``|estimate - truth| / truth``,
``<e>_covered``), ``estimates.parquet`` (one row per campaign, target, seed, estimator) and
``estimate_vs_truth.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scarce.sim import parallel_map, run_seeds
from scarce.sim.experiments import SUMMARY_COLUMNS, CustomExperiment, ExperimentResult, register
from scarce.sim.plot import new_figure

EXPERIMENT = "ope-obd"
CAMPAIGNS = ("all", "men", "women")
#: target policy -> the behaviour policy whose logs evaluate it
DIRECTIONS = {"bts": "random", "bts-obp": "random", "random": "bts"}
#: target policy -> the logged policy whose on-policy click rate is its truth
TRUTH_LOGS = {"bts": "bts", "bts-obp": "bts", "random": "random"}
OBD_ESTIMATORS = ("ips", "snips", "clipped_ips", "dm", "dr", "switch_dr")


def policy_distribution(target: str, campaign: str) -> tuple[np.ndarray, float, float]:
    """``(K, 3)`` per-position action distribution of a target policy, the on-policy click
    rate of the logged policy it stands for, and that rate's standard error.

    ``random`` is exactly uniform; ``bts`` is the empirical frequency of each item at each
    position in the BTS logs; ``bts-obp`` is Bernoulli TS with obp's ZOZOTOWN prior (obp's
    protocol), ranked exactly by :func:`~scarce.ope.obd.beta_rank_probabilities`.
    """
    from scarce.ope.obd import beta_rank_probabilities, bts_prior, load_obd

    if target not in DIRECTIONS:
        raise ValueError(f"target must be one of {tuple(DIRECTIONS)}; got {target!r}")
    logs = load_obd(TRUTH_LOGS[target], campaign, affinity=False)
    K, P = logs.n_actions, 3
    if target == "random":
        dist = np.full((K, P), 1.0 / K)
    elif target == "bts-obp":
        dist = beta_rank_probabilities(*bts_prior(campaign), P)
    else:
        counts = np.zeros((K, P))
        np.add.at(counts, (logs.actions, logs.positions), 1.0)
        dist = counts / counts.sum(axis=0, keepdims=True)
    r = logs.rewards
    return dist, float(r.mean()), float(r.std(ddof=1) / np.sqrt(r.size))


@dataclass(frozen=True)
class _Task:
    campaign: str
    target: str
    seed: int
    root_seed: int
    n_rows: int
    dist: np.ndarray  # (K, 3) the target's per-position distribution
    truth: float
    truth_se: float


def _evaluate(task: _Task) -> list[dict[str, Any]]:
    from scarce.ope.estimators import evaluate
    from scarce.ope.obd import load_obd

    logger = DIRECTIONS[task.target]
    dist, truth, truth_se = task.dist, task.truth, task.truth_se
    logs = load_obd(logger, task.campaign)
    rng = np.random.default_rng(task.root_seed)
    logs = logs.subset(rng.integers(0, logs.n, size=task.n_rows))
    # (n, K, positions): the context-free target's distribution at every position
    target = np.broadcast_to(dist[None, :, :], (logs.n, *dist.shape))
    seed = int(rng.integers(2**31))
    estimates = evaluate(logs, target, list(OBD_ESTIMATORS), seed=seed, per_action=False)
    rows = []
    for name, est in estimates.items():
        rows.append(
            {
                "campaign": task.campaign,
                "target": task.target,
                "logs": logger,
                "seed": task.seed,
                "estimator": name,
                "estimate": est.value,
                "ci_low": est.ci[0],
                "ci_high": est.ci[1],
                "se": est.se,
                "truth": truth,
                "truth_se": truth_se,
                "n": est.n,
                "effective_sample_size": est.details.get("effective_sample_size", np.nan),
            }
        )
    return rows


def _summary(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (campaign, target, seed), g in table.groupby(["campaign", "target", "seed"], sort=False):
        env, policy = f"obd-{campaign}", f"{target} (from {DIRECTIONS[target]} logs)"
        truth = float(g["truth"].iloc[0])
        rows.append((EXPERIMENT, env, policy, int(seed), "truth", truth))
        rows.append((EXPERIMENT, env, policy, int(seed), "truth_se", float(g["truth_se"].iloc[0])))
        for r in g.itertuples():
            e = r.estimator
            covered = float(r.ci_low <= truth <= r.ci_high)
            for metric, value in (
                ("estimate", r.estimate),
                ("ci_low", r.ci_low),
                ("ci_high", r.ci_high),
                ("relative_error", abs(r.estimate - truth) / truth),
                ("covered", covered),
            ):
                rows.append((EXPERIMENT, env, policy, int(seed), f"{e}_{metric}", float(value)))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def estimates_figure(table: pd.DataFrame) -> Any:
    """One panel per (target, campaign): each estimator's estimates (mean over seeds, with the
    mean 95% interval) against the on-policy truth (line, with its 95% band)."""
    targets = list(dict.fromkeys(table["target"]))
    campaigns = list(dict.fromkeys(table["campaign"]))
    fig, axes = new_figure(len(targets), len(campaigns), width=4.2, height=3.4)
    for i, target in enumerate(targets):
        for j, campaign in enumerate(campaigns):
            ax = axes[i][j]
            g = table[(table["target"] == target) & (table["campaign"] == campaign)]
            if g.empty:
                ax.set_visible(False)
                continue
            agg = g.groupby("estimator", sort=False)[["estimate", "ci_low", "ci_high"]].mean()
            x = np.arange(len(agg))
            ax.errorbar(
                x, agg["estimate"],
                yerr=[agg["estimate"] - agg["ci_low"], agg["ci_high"] - agg["estimate"]],
                fmt="o", capsize=3, label="estimate (mean 95% CI)",
            )  # fmt: skip
            for _seed, sg in g.groupby("seed"):
                ax.scatter(x, sg.set_index("estimator").loc[agg.index, "estimate"], s=6,
                           color="grey", alpha=0.5)  # fmt: skip
            truth, tse = float(g["truth"].iloc[0]), float(g["truth_se"].iloc[0])
            ax.axhline(truth, color="k", lw=1, label="on-policy truth")
            ax.axhspan(truth - 1.96 * tse, truth + 1.96 * tse, color="k", alpha=0.1)
            ax.set_xticks(x, list(agg.index), rotation=35, ha="right", fontsize=8)
            ax.set_title(f"{target} from {DIRECTIONS[target]} logs, {campaign}", fontsize=9)
            ax.set_ylabel("click rate")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle("Open Bandit Dataset: off-policy estimate vs on-policy truth")
    return fig


def run_ope_obd(
    *,
    horizon: int,
    seeds: int | tuple[int, ...] | list[tuple[int, int]],
    n_jobs: int | None = None,
    progress: Any = None,
    campaigns: tuple[str, ...] = CAMPAIGNS,
    targets: tuple[str, ...] = tuple(DIRECTIONS),
    base_seed: int = 0,
) -> ExperimentResult:
    """Run the protocol (module docstring); ``horizon`` = evaluation rows per run (<= 10000);
    ``seeds``: ``(label, root)`` pairs (what ``scarce run`` passes) or a number / list of
    roots for :func:`scarce.sim.run_seeds` with ``base_seed``; ``targets``: any of ``"bts"``
    (empirical BTS frequencies), ``"bts-obp"`` (obp's protocol) and ``"random"``. A seed draws
    the same bootstrap rows for every target of a direction."""
    n_rows = int(min(horizon, 10_000))
    if isinstance(seeds, list) and seeds and isinstance(seeds[0], tuple):
        labels, roots = [p[0] for p in seeds], [p[1] for p in seeds]
    else:
        labels, roots = run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds, base_seed)
    bad = [t for t in targets if t not in DIRECTIONS]
    if bad or not targets:
        raise ValueError(f"targets must be among {tuple(DIRECTIONS)}; got {targets!r}")
    dists = {(c, t): policy_distribution(t, c) for c in campaigns for t in targets}
    tasks = [
        _Task(c, t, s, root, n_rows, *dists[(c, t)])
        for c in campaigns
        for t in targets
        for s, root in zip(labels, roots, strict=True)
    ]
    results = parallel_map(_evaluate, tasks, n_jobs=n_jobs, progress=progress)
    table = pd.DataFrame([row for rows in results for row in rows])
    figure = estimates_figure(table)
    return ExperimentResult(_summary(table), {"estimates": table}, {"estimate_vs_truth": figure})


register(
    CustomExperiment(
        name=EXPERIMENT,
        description=(
            "Open Bandit Dataset (real logs): BTS (as its logged item frequencies, and as obp's "
            "ZOZOTOWN-prior Bernoulli TS) evaluated from uniform-random logs and uniform-random "
            "from BTS logs with IPS, SNIPS, clipped IPS, DM, DR and switch-DR, against each "
            "policy's on-policy click rate"
        ),
        run=run_ope_obd,
        horizon=10_000,
        seeds=5,
        table_metrics=("truth", "ips_estimate", "snips_estimate", "dr_estimate"),
    )
)
