"""Off-policy estimators: the value of a target policy from logs of another policy.

Notation: logged rows ``i = 1..n`` with context ``x_i``, action ``a_i``, reward ``r_i`` and
logging propensity ``p_i``; the target policy puts probability ``pi_i(a)`` on action ``a`` for
row ``i`` (at the row's position, for ranking logs); the importance weight is
``w_i = pi_i(a_i) / p_i``; ``q_i(a)`` is a reward model's prediction.

===============  ===================================================================  ==========
estimator        value                                                                unbiased?
===============  ===================================================================  ==========
``ips``          ``mean(w_i r_i)``                                                    yes
``snips``        ``sum(w_i r_i) / sum(w_i)``                                          consistent
``clipped_ips``  ``mean(min(w_i, M) r_i)``                                            no (bias <= 0
                                                                                      for r >= 0)
``dm``           ``mean(sum_a pi_i(a) q_i(a))``                                       if q right
``dr``           ``dm_i + w_i (r_i - q_i(a_i))``, averaged                            yes
``switch_dr``    ``dm_i + 1{w_i <= tau} w_i (r_i - q_i(a_i))``, averaged              no (DM where
                                                                                      w > tau)
``replay``       mean of ``r_i`` over rows where the deterministic target picks a_i   yes under
                                                                                      uniform logs
===============  ===================================================================  ==========

Every estimator here is a ratio ``sum(u_i) / sum(v_i)`` of per-row terms (``v_i = 1`` for the
plain means), which gives one recipe for the intervals:

* ``ci="normal"`` (default): ``value +- z_{1-alpha/2} * se`` with the delta-method standard
  error ``se = sd(u_i - value v_i) / (mean(v_i) sqrt(n))`` (the usual ``sd / sqrt(n)`` for
  means);
* ``ci="bootstrap"``: percentile interval of ``n_bootstrap`` resamples of the rows (drawn
  from ``seed``); the reward model of DM/DR/switch-DR is held fixed (not refitted per
  resample).

Reward models are **cross-fitted**: the rows are split into ``n_folds`` folds and each fold's
predictions come from a model fitted on the other folds, so that ``q_i`` never saw row ``i``
(this keeps DR unbiased with any model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from scarce.core.random import SeedLike, as_generator
from scarce.core.validation import check_positive_int, check_scalar
from scarce.ope.data import LoggedData, check_logged_data
from scarce.ope.reward_models import reward_table

#: row-sum tolerance for target probabilities
_SUM_TOL = 1e-6


@dataclass(frozen=True)
class Estimate:
    """A point estimate of a policy value with a confidence interval.

    Attributes
    ----------
    value:
        the estimate.
    ci:
        ``(low, high)``, a ``1 - alpha`` confidence interval.
    se:
        standard error (delta method for ``ci="normal"``, bootstrap sd for ``"bootstrap"``).
    estimator:
        name of the estimator.
    n:
        number of logged rows used.
    ci_method:
        ``"normal"`` or ``"bootstrap"``.
    alpha:
        miscoverage level of ``ci``.
    details:
        estimator-specific diagnostics (e.g. ``effective_sample_size``, ``n_matched``,
        ``max_weight``).
    """

    value: float
    ci: tuple[float, float]
    se: float
    estimator: str
    n: int
    ci_method: str = "normal"
    alpha: float = 0.05
    details: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        lo, hi = self.ci
        return (
            f"Estimate({self.estimator}: {self.value:.6g}, {100 * (1 - self.alpha):.0f}% CI "
            f"[{lo:.6g}, {hi:.6g}], n={self.n})"
        )

    def as_dict(self) -> dict[str, Any]:
        """Flat dict (for tables): estimator, value, ci_low, ci_high, se, n."""
        return {
            "estimator": self.estimator,
            "value": self.value,
            "ci_low": self.ci[0],
            "ci_high": self.ci[1],
            "se": self.se,
            "n": self.n,
        }


# ---------------------------------------------------------------------------- inputs
def target_probabilities(data: LoggedData, target: Any) -> np.ndarray:
    """The target policy's ``(n, K)`` action distribution for each logged row.

    Parameters
    ----------
    data:
        the logs.
    target:
        ``(n, K)`` probabilities (rows sum to 1); ``(n, K, P)`` probabilities per position
        (each ``[i, :, p]`` sums to 1; row ``i`` uses its logged position, so ``data`` must
        have ``positions``); or a ``scarce`` policy, asked for
        ``action_probabilities(data.contexts)`` (the same distribution for every position).

    Returns
    -------
    ``(n, K)`` float64.
    """
    data = check_logged_data(data)
    n, K = data.n, data.n_actions
    if hasattr(target, "action_probabilities") and not isinstance(target, np.ndarray):
        probs = np.asarray(target.action_probabilities(data.contexts), dtype=np.float64)
        source = f"{type(target).__name__}.action_probabilities"
    else:
        try:
            probs = np.asarray(target, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                "target must be (n, K) or (n, K, positions) probabilities or a scarce policy; "
                f"got {type(target).__name__}"
            ) from None
        source = "target"
        if probs.ndim == 3:
            if probs.shape[:2] != (n, K):
                raise ValueError(f"target must have shape ({n}, {K}, positions); got {probs.shape}")
            if data.positions is None:
                raise ValueError(
                    "target has per-position probabilities (n, K, positions) but data has no "
                    "positions"
                )
            if data.positions.max() >= probs.shape[2]:
                raise ValueError(
                    f"target has {probs.shape[2]} positions but data has position "
                    f"{int(data.positions.max())}"
                )
            _check_distribution(probs, "target")
            probs = probs[np.arange(n), :, data.positions]
    if probs.shape != (n, K):
        raise ValueError(f"{source} must have shape ({n}, {K}); got {probs.shape}")
    _check_distribution(probs, source)
    return probs


def _check_distribution(probs: np.ndarray, name: str) -> None:
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError(f"{name} must be finite, non-negative probabilities")
    sums = probs.sum(axis=1)
    bad = np.abs(sums - 1.0) > _SUM_TOL
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} must sum to 1 over actions; at {tuple(int(i) for i in idx)} it sums to "
            f"{sums[tuple(idx)]:.6g}"
        )


def importance_weights(data: LoggedData, target: Any) -> np.ndarray:
    """``(n,)`` importance weights ``pi_i(a_i) / p_i``."""
    pi = target_probabilities(data, target)
    return pi[np.arange(data.n), data.actions] / data.propensities


# ---------------------------------------------------------------------------- intervals
def _ratio_estimate(
    name: str,
    num: np.ndarray,
    den: np.ndarray | None,
    *,
    ci: str,
    alpha: float,
    n_bootstrap: int,
    seed: SeedLike,
    details: dict[str, Any],
) -> Estimate:
    """``sum(num) / sum(den)`` (the mean of ``num`` when ``den`` is None) with its interval."""
    if ci not in ("normal", "bootstrap"):
        raise ValueError(f"ci must be 'normal' or 'bootstrap'; got {ci!r}")
    alpha = check_scalar(
        alpha, "alpha", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False
    )
    n = num.shape[0]
    ones = den is None
    den_ = np.ones(n) if den is None else den
    total = den_.sum()
    value = float(num.sum() / total) if total > 0 else float("nan")
    if ci == "normal":
        if n < 2 or not np.isfinite(value):
            se = float("nan")
        else:
            influence = (num - value * den_) / den_.mean()
            se = float(influence.std(ddof=1) / np.sqrt(n))
        z = float(norm.ppf(1 - alpha / 2))
        lo, hi = value - z * se, value + z * se
    else:
        B = check_positive_int(n_bootstrap, "n_bootstrap", minimum=2)
        rng = as_generator(seed)
        stats = np.empty(B)
        chunk = max(1, min(B, 2_000_000 // max(n, 1)))
        for start in range(0, B, chunk):
            b = min(chunk, B - start)
            idx = rng.integers(0, n, size=(b, n))  # rows of each resample
            top = num[idx].sum(axis=1)
            bottom = np.full(b, float(n)) if ones else den_[idx].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                stats[start : start + b] = np.where(bottom > 0, top / bottom, np.nan)
        finite = stats[np.isfinite(stats)]
        if finite.size < 2:
            lo = hi = se = float("nan")
        else:
            lo, hi = (float(v) for v in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
            se = float(finite.std(ddof=1))
    return Estimate(
        value=value,
        ci=(float(lo), float(hi)),
        se=float(se),
        estimator=name,
        n=n,
        ci_method=ci,
        alpha=alpha,
        details=details,
    )


def _weight_details(w: np.ndarray) -> dict[str, Any]:
    s = w.sum()
    return {
        "effective_sample_size": float(s**2 / (w**2).sum()) if s > 0 else 0.0,
        "max_weight": float(w.max()),
        "mean_weight": float(w.mean()),
    }


# ---------------------------------------------------------------------------- estimators
def ips(
    data: LoggedData,
    target: Any,
    *,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: SeedLike = 0,
) -> Estimate:
    """Inverse propensity scoring: ``mean(w_i r_i)``; unbiased when every action the target
    can take has a positive logging propensity.

    Parameters
    ----------
    data:
        the logs.
    target:
        the target policy (see :func:`target_probabilities`).
    ci, alpha, n_bootstrap, seed:
        interval method (``"normal"`` or ``"bootstrap"``), miscoverage, bootstrap resamples
        and their seed (see the module docstring).
    """
    data = check_logged_data(data)
    w = importance_weights(data, target)
    return _ratio_estimate(
        "ips",
        w * data.rewards,
        None,
        ci=ci,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        seed=seed,
        details=_weight_details(w),
    )


def snips(
    data: LoggedData,
    target: Any,
    *,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: SeedLike = 0,
) -> Estimate:
    """Self-normalised IPS: ``sum(w_i r_i) / sum(w_i)``; a little biased, consistent, and
    invariant to shifting all rewards by a constant. Arguments as in :func:`ips`."""
    data = check_logged_data(data)
    w = importance_weights(data, target)
    return _ratio_estimate(
        "snips",
        w * data.rewards,
        w,
        ci=ci,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        seed=seed,
        details=_weight_details(w),
    )


def clipped_ips(
    data: LoggedData,
    target: Any,
    *,
    max_weight: float = 100.0,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: SeedLike = 0,
) -> Estimate:
    """IPS with weights clipped at ``max_weight`` (> 0): ``mean(min(w_i, M) r_i)``; trades a
    bias towards 0 for lower variance. Other arguments as in :func:`ips`."""
    data = check_logged_data(data)
    M = check_scalar(max_weight, "max_weight", low=0.0, low_inclusive=False)
    w = importance_weights(data, target)
    wc = np.minimum(w, M)
    details = _weight_details(w) | {"clipped_fraction": float((w > M).mean())}
    return _ratio_estimate(
        "clipped_ips",
        wc * data.rewards,
        None,
        ci=ci,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        seed=seed,
        details=details,
    )


def replay(
    data: LoggedData,
    target: Any,
    *,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: SeedLike = 0,
) -> Estimate:
    """The replay method (Li, Chu, Langford, Wang 2011) for a deterministic target: the mean
    reward over the rows where the target picks the logged action. Unbiased when the logging
    policy was uniformly random; the propensities are not used.

    ``target`` must be deterministic (every row of its probabilities one-hot), else a
    ``ValueError``. The estimate is NaN when no row matches. Other arguments as in :func:`ips`.
    """
    data = check_logged_data(data)
    pi = target_probabilities(data, target)
    if not np.all((pi == 0) | (pi == 1)):
        row = int(np.argmax(~np.all((pi == 0) | (pi == 1), axis=1)))
        raise ValueError(
            f"replay needs a deterministic target (one-hot probabilities); row {row} is "
            f"{np.round(pi[row], 4).tolist()}"
        )
    match = (pi[np.arange(data.n), data.actions] == 1).astype(np.float64)
    return _ratio_estimate(
        "replay",
        match * data.rewards,
        match,
        ci=ci,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        seed=seed,
        details={"n_matched": int(match.sum())},
    )


def dm(
    data: LoggedData,
    target: Any,
    *,
    reward_model: Any = None,
    n_folds: int = 2,
    per_action: bool = True,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: SeedLike = 0,
) -> Estimate:
    """Direct method: ``mean_i sum_a pi_i(a) q_i(a)`` with a cross-fitted reward model.

    Parameters
    ----------
    reward_model:
        a scikit-learn regressor (default ``Ridge(alpha=1.0)``), or precomputed ``(n, K)``
        predictions ``q_i(a)``.
    n_folds, per_action:
        cross-fitting (see :func:`cross_fit_rewards`).
    seed:
        seed of the folds and of the bootstrap.

    Notes
    -----
    Its interval reflects only the sampling of contexts given the fitted model, not the
    model's bias. Other arguments as in :func:`ips`.
    """
    data = check_logged_data(data)
    pi = target_probabilities(data, target)
    q = reward_table(data, reward_model, n_folds, per_action, seed)
    return _ratio_estimate(
        "dm",
        (pi * q).sum(axis=1),
        None,
        ci=ci,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        seed=seed,
        details={},
    )


def dr(
    data: LoggedData,
    target: Any,
    *,
    reward_model: Any = None,
    n_folds: int = 2,
    per_action: bool = True,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: SeedLike = 0,
) -> Estimate:
    """Doubly robust (Dudik, Langford, Li 2011): ``mean(dm_i + w_i (r_i - q_i(a_i)))``;
    unbiased when the propensities are right, whatever the (cross-fitted) reward model.
    Arguments as in :func:`dm`."""
    return _dr_like(
        "dr", data, target, np.inf, reward_model, n_folds, per_action, ci, alpha, n_bootstrap, seed
    )


def switch_dr(
    data: LoggedData,
    target: Any,
    *,
    tau: float = 100.0,
    reward_model: Any = None,
    n_folds: int = 2,
    per_action: bool = True,
    ci: str = "normal",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    seed: SeedLike = 0,
) -> Estimate:
    """Switch doubly robust (Wang, Agarwal, Dudik 2017, in the form of Open Bandit Pipeline):
    ``mean(dm_i + 1{w_i <= tau} w_i (r_i - q_i(a_i)))``: DR where the weight is at most
    ``tau`` (>= 0), DM elsewhere. ``tau = inf`` gives DR, ``tau = 0`` gives DM. Other
    arguments as in :func:`dm`."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.integer, np.floating)):
        raise ValueError(f"tau must be a number >= 0 (inf allowed); got {tau!r}")
    if np.isnan(tau) or tau < 0:
        raise ValueError(f"tau must be >= 0 (inf allowed); got {tau!r}")
    return _dr_like(
        "switch_dr",
        data,
        target,
        tau,
        reward_model,
        n_folds,
        per_action,
        ci,
        alpha,
        n_bootstrap,
        seed,
    )


def _dr_like(
    name: str,
    data: LoggedData,
    target: Any,
    tau: float,
    reward_model: Any,
    n_folds: int,
    per_action: bool,
    ci: str,
    alpha: float,
    n_bootstrap: int,
    seed: SeedLike,
) -> Estimate:
    data = check_logged_data(data)
    pi = target_probabilities(data, target)
    q = reward_table(data, reward_model, n_folds, per_action, seed)
    rows = np.arange(data.n)
    w = pi[rows, data.actions] / data.propensities
    keep = w <= tau
    terms = (pi * q).sum(axis=1) + np.where(keep, w, 0.0) * (data.rewards - q[rows, data.actions])
    details = _weight_details(w) | {"switched_fraction": float((~keep).mean())}
    return _ratio_estimate(
        name,
        terms,
        None,
        ci=ci,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        seed=seed,
        details=details,
    )


#: the estimators by name (the CLI and the experiment use it)
ESTIMATORS = {
    "ips": ips,
    "snips": snips,
    "clipped_ips": clipped_ips,
    "dm": dm,
    "dr": dr,
    "switch_dr": switch_dr,
    "replay": replay,
}


def is_deterministic(probs: np.ndarray) -> bool:
    """Whether every row of ``(n, K)`` probabilities is one-hot (so :func:`replay` applies)."""
    return bool(np.all((probs == 0) | (probs == 1)))


def evaluate(
    data: LoggedData,
    target: Any,
    estimators: list[str] | None = None,
    **kwargs: Any,
) -> dict[str, Estimate]:
    """Run several estimators on one target.

    Parameters
    ----------
    data, target:
        as in :func:`ips`.
    estimators:
        names from :data:`ESTIMATORS`; default all, with ``replay`` only for a deterministic
        target.
    kwargs:
        ``ci``, ``alpha``, ``n_bootstrap``, ``seed`` for every estimator; ``reward_model``,
        ``n_folds``, ``per_action`` for the model-based ones (the reward model is fitted once
        and shared); ``max_weight`` for clipped IPS; ``tau`` for switch-DR.
    """
    data = check_logged_data(data)
    pi = target_probabilities(data, target)
    if estimators is None:
        estimators = [e for e in ESTIMATORS if e != "replay" or is_deterministic(pi)]
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown:
        raise ValueError(f"estimators must be among {list(ESTIMATORS)}; got {unknown}")
    common = {k: kwargs[k] for k in ("ci", "alpha", "n_bootstrap", "seed") if k in kwargs}
    model_kw = {k: kwargs[k] for k in ("n_folds", "per_action") if k in kwargs}
    extra = set(kwargs) - set(common) - set(model_kw) - {"reward_model", "max_weight", "tau"}
    if extra:
        raise TypeError(f"evaluate got unexpected keyword(s) {sorted(extra)}")
    q = None
    if any(e in ("dm", "dr", "switch_dr") for e in estimators):
        q = reward_table(
            data,
            kwargs.get("reward_model"),
            model_kw.get("n_folds", 2),
            model_kw.get("per_action", True),
            common.get("seed", 0),
        )
    out = {}
    for name in estimators:
        kw = dict(common)
        if name in ("dm", "dr", "switch_dr"):
            kw["reward_model"] = q
        if name == "clipped_ips" and "max_weight" in kwargs:
            kw["max_weight"] = kwargs["max_weight"]
        if name == "switch_dr" and "tau" in kwargs:
            kw["tau"] = kwargs["tau"]
        out[name] = ESTIMATORS[name](data, pi, **kw)
    return out
