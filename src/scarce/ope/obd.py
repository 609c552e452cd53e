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

from scarce.ope.data import LoggedData

BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
_USER_COLUMNS = ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3")


def obd_root() -> Path:
    """Folder ``obp/dataset/obd`` inside the installed ``obp`` package (not imported)."""
    spec = importlib.util.find_spec("obp")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the Open Bandit Dataset sample ships with the obp package files: "
            "pip install --no-deps obp==0.4.1 (obp is never imported)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "obd"
    if not root.is_dir():
        raise ImportError(f"obp is installed but has no dataset folder at {root}")
    return root


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
