"""Off-policy evaluation on logged data: the logged-data type (Parquet in and out), IPS, SNIPS,
clipped IPS, the direct method, doubly robust, switch-DR and replay, each returning an
:class:`Estimate` with a confidence interval; the Open Bandit Dataset loader."""

from scarce.ope.data import LoggedData
from scarce.ope.estimators import (
    ESTIMATORS,
    Estimate,
    clipped_ips,
    cross_fit_rewards,
    dm,
    dr,
    evaluate,
    importance_weights,
    ips,
    replay,
    snips,
    switch_dr,
    target_probabilities,
)
from scarce.ope.obd import load_obd

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "LoggedData",
    "clipped_ips",
    "cross_fit_rewards",
    "dm",
    "dr",
    "evaluate",
    "importance_weights",
    "ips",
    "load_obd",
    "replay",
    "snips",
    "switch_dr",
    "target_probabilities",
]
