"""Off-policy evaluation on logged data: the logged-data type (Parquet in and out), IPS, SNIPS,
clipped IPS, the direct method, doubly robust, switch-DR and replay, each returning an
:class:`Estimate` with a confidence interval; the Open Bandit Dataset loader.

The names below are imported on first use (PEP 562), so that ``scarce`` commands that do not
evaluate anything (the CLI imports :mod:`scarce.ope.commands`) do not pay for SciPy's
statistics and pandas at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "LoggedData": "scarce.ope.data",
    "load_obd": "scarce.ope.obd",
    "cross_fit_rewards": "scarce.ope.reward_models",
    **{
        name: "scarce.ope.estimators"
        for name in (
            "ESTIMATORS",
            "Estimate",
            "clipped_ips",
            "dm",
            "dr",
            "evaluate",
            "importance_weights",
            "ips",
            "replay",
            "snips",
            "switch_dr",
            "target_probabilities",
        )
    },
}

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

if TYPE_CHECKING:  # pragma: no cover
    from scarce.ope.data import LoggedData
    from scarce.ope.estimators import (
        ESTIMATORS,
        Estimate,
        clipped_ips,
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
    from scarce.ope.reward_models import cross_fit_rewards


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scarce.ope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
