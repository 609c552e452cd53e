"""The Open Bandit Dataset sample (Saito et al. 2021) as :class:`~scarce.ope.LoggedData`.

The sample (10,000 rows per behaviour policy and campaign) ships inside the ``obp`` package's
files (``pip install --no-deps obp==0.4.1``). It is read straight from the CSVs; ``obp`` itself
is never imported (it would pull in torch and pins old libraries).

Each row is one impression on ZOZOTOWN: a fashion item (the action) shown at one of three
positions to a user, with a click as reward and the logging policy's probability of showing
that item at that position (``propensity_score``). The two logging policies are
``"random"`` (uniform: propensity ``1 / n_items``) and ``"bts"`` (Bernoulli Thompson sampling,
context-free, updated during the week).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd

from scarce.core.validation import check_positive_int
from scarce.ope.data import LoggedData

BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
_USER_COLUMNS = ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3")


def _obp_file(*parts: str) -> Path:
    """A file or folder inside the installed ``obp`` package (found, never imported)."""
    spec = importlib.util.find_spec("obp")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the Open Bandit Dataset sample ships with the obp package files: "
            "pip install --no-deps obp==0.4.1 (obp is never imported)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.exists():
        raise ImportError(f"obp is installed but has no {'/'.join(parts)} at {path}")
    return path


def obd_root() -> Path:
    """Folder ``obp/dataset/obd`` inside the installed ``obp`` package (not imported)."""
    return _obp_file("dataset", "obd")


def bts_prior(campaign: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """The Beta prior ``(alpha (K,), beta (K,))`` of the Bernoulli Thompson sampling policy
    that obp uses to replicate ZOZOTOWN's production BTS (``BernoulliTS(is_zozotown_prior=
    True, campaign=...)``), read from the package's ``obp/policy/conf/prior_bts.yaml``."""
    import yaml

    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {CAMPAIGNS}; got {campaign!r}")
    conf = yaml.safe_load(_obp_file("policy", "conf", "prior_bts.yaml").read_text())
    alpha = np.asarray(conf[campaign]["alpha"], dtype=np.float64)
    beta = np.asarray(conf[campaign]["beta"], dtype=np.float64)
    return alpha, beta


def beta_rank_probabilities(
    alpha: np.ndarray, beta: np.ndarray, n_positions: int = 3, *, n_grid: int = 10_000
) -> np.ndarray:
    """``(K, n_positions)``: the probability that item ``k`` holds rank ``p`` (0 = largest)
    among independent draws ``theta_j ~ Beta(alpha_j, beta_j)``, i.e. the per-position action
    distribution of a context-free Bernoulli TS that shows its ``n_positions`` largest draws
    (what obp's ``BernoulliTS.compute_batch_action_dist`` estimates by Monte Carlo).

    ``P(k at p) = integral P(exactly p others exceed x) dF_k(x)``, on a grid of ``n_grid``
    cells spanning every item's central ``1 - 2e-12`` mass: each cell's ``F_k`` mass times the
    Poisson-binomial count of the other items' survival probabilities at its midpoint. With
    the ZOZOTOWN priors the columns sum to 1 within 2e-6 before they are renormalised, and
    the entries move by less than 5e-7 when the grid is refined 8 times.
    """
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size < n_positions:
        raise ValueError(
            f"alpha and beta must be (K,) with K >= n_positions = {n_positions}; got "
            f"{a.shape} and {b.shape}"
        )
    if not (np.all(a > 0) and np.all(b > 0)):
        raise ValueError("alpha and beta must be > 0")
    n_grid = check_positive_int(n_grid, "n_grid")
    from scipy import special

    K = a.size
    lo = special.betaincinv(a, b, 1e-12).min()
    hi = special.betaincinv(a, b, 1.0 - 1e-12).max()
    x = np.linspace(lo, hi, n_grid + 1)
    mass = np.diff(special.betainc(a[:, None], b[:, None], x[None, :]), axis=1)  # (K, G)
    survival = special.betaincc(a[:, None], b[:, None], 0.5 * (x[1:] + x[:-1])[None, :])
    # counts[p, k, g]: P(exactly p items other than k exceed the midpoint of cell g)
    counts = np.zeros((n_positions, K, survival.shape[1]))
    counts[0] = 1.0
    for j in range(K):
        s = np.broadcast_to(survival[j], counts.shape[1:]).copy()
        s[j] = 0.0  # item k is not one of its own competitors
        for p in range(n_positions - 1, 0, -1):
            counts[p] = counts[p] * (1.0 - s) + counts[p - 1] * s
        counts[0] *= 1.0 - s
    probs = np.einsum("pkg,kg->kp", counts, mass)
    return probs / probs.sum(axis=0, keepdims=True)


def load_obd(
    behavior: str = "random", campaign: str = "all", *, affinity: bool = True
) -> LoggedData:
    """Load the Open Bandit Dataset sample of one behaviour policy and campaign.

    Parameters
    ----------
    behavior:
        ``"random"`` or ``"bts"``: the policy that logged the data.
    campaign:
        ``"all"`` (80 items), ``"men"`` (34) or ``"women"`` (46).
    affinity:
        include the ``user-item_affinity_*`` columns in the contexts (else only the one-hot
        user features).

    Returns
    -------
    LoggedData
        ``contexts`` ``(10000, d)``: one-hot encoding of the four hashed user features
        (categories sorted, so the encoding is the same for both behaviour policies of a
        campaign) followed by the user-item affinities; ``actions`` = ``item_id``; ``rewards``
        = click (0/1); ``propensities`` = ``propensity_score``; ``positions`` = position - 1
        (0, 1, 2); ``timestamps`` in seconds since the Unix epoch; ``n_actions`` = number of
        items in ``item_context.csv``.
    """
    if behavior not in BEHAVIORS:
        raise ValueError(f"behavior must be one of {BEHAVIORS}; got {behavior!r}")
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {CAMPAIGNS}; got {campaign!r}")
    folder = obd_root() / behavior / campaign
    frame = pd.read_csv(folder / f"{campaign}.csv", index_col=0)
    n_items = len(pd.read_csv(folder / "item_context.csv", index_col=0))
    # the categories of both behaviour policies, so that both get the same columns
    levels = {c: set() for c in _USER_COLUMNS}
    for other in BEHAVIORS:
        path = obd_root() / other / campaign / f"{campaign}.csv"
        if os.path.exists(path):
            cats = pd.read_csv(path, usecols=list(_USER_COLUMNS))
            for c in _USER_COLUMNS:
                levels[c].update(cats[c].astype(str))
    blocks = []
    for c in _USER_COLUMNS:
        cat = pd.Categorical(frame[c].astype(str), categories=sorted(levels[c]))
        blocks.append(np.eye(len(cat.categories))[cat.codes])
    if affinity:
        aff = [c for c in frame.columns if c.startswith("user-item_affinity_")]
        blocks.append(frame[aff].to_numpy(dtype=np.float64))
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return LoggedData(
        contexts=np.hstack(blocks),
        actions=frame["item_id"].to_numpy(dtype=np.int64),
        rewards=frame["click"].to_numpy(dtype=np.float64),
        propensities=frame["propensity_score"].to_numpy(dtype=np.float64),
        n_actions=n_items,
        positions=frame["position"].to_numpy(dtype=np.int64) - 1,
        timestamps=seconds,
    )
