"""The allocation loop: contexts in, allocation out, per-item rewards back, model updated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scarce.combinatorial.envs import QueryAwareAllocationEnv
from scarce.core.random import SeedLike, spawn
from scarce.core.validation import check_positive_int


def run_allocation(
    policy: Any,
    env: QueryAwareAllocationEnv,
    horizon: int,
    *,
    budget: int,
    batch_size: int = 1,
    feedback: str = "item",
    seed: SeedLike = None,
) -> pd.DataFrame:
    """Run an allocation policy for ``horizon`` cases.

    Parameters
    ----------
    policy:
        an :class:`~scarce.combinatorial.AllocationPolicy` or
        :class:`~scarce.combinatorial.FixedLevelPolicy` (anything with ``decide(X)`` returning
        an ``Allocation`` and ``update(X, levels, rewards)``).
    env:
        the environment.
    horizon:
        cases to decide (>= 1).
    budget:
        the per-case cap the oracle allocates under (regret is measured against it; a policy's
        own cap is its business, its ``spend`` is recorded).
    batch_size:
        cases decided between updates.
    feedback:
        ``"item"``: the policy learns every item's reward; ``"total"``: only the case total.
    seed:
        two independent streams are derived from it: contexts and reward noise (common random
        numbers across policies).

    Returns
    -------
    pandas.DataFrame
        one row per case: ``step`` (1-based), ``reward`` (realised total), ``expected_reward``,
        ``oracle_expected_reward`` (best allocation under ``budget``), ``regret``, ``spend``.
    """
    horizon = check_positive_int(horizon, "horizon")
    batch_size = check_positive_int(batch_size, "batch_size")
    if feedback not in ("item", "total"):
        raise ValueError(f"feedback must be 'item' or 'total'; got {feedback!r}")
    ctx_rng, out_rng = spawn(seed, 2)
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("reward", "expected_reward", "oracle_expected_reward", "spend")
    }
    done = 0
    while done < horizon:
        b = min(batch_size, horizon - done)
        X = env.contexts(b, ctx_rng)
        alloc = policy.decide(X)
        item_rewards = env.outcomes(X, alloc.levels, out_rng)
        total = item_rewards.sum(axis=1)
        policy.update(X, alloc.levels, item_rewards if feedback == "item" else total)
        cols["reward"].append(total)
        cols["expected_reward"].append(env.expected_reward(X, alloc.levels))
        cols["oracle_expected_reward"].append(env.expected_reward(X, env.oracle_levels(X, budget)))
        cols["spend"].append(alloc.spend)
        done += b
    frame = pd.DataFrame({k: np.concatenate(v) for k, v in cols.items()})
    frame.insert(0, "step", np.arange(1, horizon + 1))
    frame["regret"] = frame["oracle_expected_reward"] - frame["expected_reward"]
    return frame
