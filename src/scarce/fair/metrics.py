"""Allocation and fairness measures of a run, from the one loop's
:class:`~scarce.sim.Trace` of a :class:`~scarce.fair.FairAllocationEnv` (groups come in
``trace.extras["groups"]``, effects in ``trace.extras["metric_effect"]``).

* ``cumulative_outcome``: the full expected effect of every allocation of the run, however late
  it is released (what an oracle's run is compared with);
* ``observed_outcome``: the sum of the observed round totals ``y(t)``;
* ``fairness_ratio:<group>`` ``FR_k = (A_k / E_k) / (A / E)``: allocations per person-round in
  the batch of group ``k`` over the overall rate (1 is parity; ``E_k`` counts the rounds each
  member of ``k`` spent in the batch), ``fairness_ratio_min`` / ``_max``, and per resource
  ``fairness_ratio:<group>:<resource>``;
* ``disparity = max_k |FR_k - 1|`` and ``disparity_by_resource`` (the same over every group and
  resource);
* ``outcome_spread``: max - min over groups of the effect received per person-round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _ratios(alloc: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    total = alloc.sum() / max(exposure.sum(), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(exposure > 0, alloc / np.maximum(exposure, 1), np.nan)
        return rate / total if total > 0 else np.full(rate.shape, np.nan)


def fairness_ratios(trace, n_groups: int, n_resources: int) -> tuple[np.ndarray, np.ndarray]:
    """``(FR (K,), FR by resource (K, R))`` of a run (see the module docstring)."""
    groups = np.asarray(trace.extras["groups"], dtype=np.int64)
    actions = np.asarray(trace.action)
    exposure = np.bincount(groups, minlength=n_groups)
    given = actions > 0
    fr = _ratios(np.bincount(groups[given], minlength=n_groups), exposure)
    by_res = np.stack(
        [
            _ratios(np.bincount(groups[actions == r + 1], minlength=n_groups), exposure)
            for r in range(n_resources)
        ],
        axis=1,
    )
    return fr, by_res


def allocation_metrics(
    trace, group_names: Sequence[str], resource_names: Sequence[str]
) -> dict[str, float]:
    """The measures of the module docstring for one run."""
    K, R = len(group_names), len(resource_names)
    fr, frr = fairness_ratios(trace, K, R)
    effect = np.asarray(trace.extras["metric_effect"])
    groups = np.asarray(trace.extras["groups"], dtype=np.int64)
    exposure = np.bincount(groups, minlength=K)
    per = np.bincount(groups, weights=effect, minlength=K) / np.maximum(exposure, 1)
    out = {
        "cumulative_outcome": float(effect.sum()),
        "observed_outcome": float(np.asarray(trace.extras["metric_observed"]).sum()),
        "allocations": float((np.asarray(trace.action) > 0).sum()),
        "fairness_ratio_min": float(np.nanmin(fr)),
        "fairness_ratio_max": float(np.nanmax(fr)),
        "disparity": float(np.nanmax(np.abs(fr - 1.0))),
        "disparity_by_resource": float(np.nanmax(np.abs(frr - 1.0))),
        "outcome_spread": float(per[exposure > 0].max() - per[exposure > 0].min()),
    }
    for k, g in enumerate(group_names):
        out[f"fairness_ratio:{g}"] = float(fr[k])
        for r, name in enumerate(resource_names):
            out[f"fairness_ratio:{g}:{name}"] = float(frr[k, r])
    return out


def per_round(trace) -> pd.DataFrame:
    """One row per round: ``round``, ``effect`` (full effect of the round's allocations),
    ``observed`` (the round's observed total) and their running sums."""
    rnd = np.asarray(trace.round)
    n_rounds = int(rnd.max()) + 1 if rnd.size else 0
    effect = np.bincount(rnd, weights=trace.extras["metric_effect"], minlength=n_rounds)
    observed = np.bincount(rnd, weights=trace.extras["metric_observed"], minlength=n_rounds)
    return pd.DataFrame(
        {
            "round": np.arange(n_rounds),
            "effect": effect,
            "observed": observed,
            "cumulative_outcome": np.cumsum(effect),
            "cumulative_observed": np.cumsum(observed),
        }
    )
