"""Speed of MetaCUB in the one loop: seconds per meta round and per base round.

Setting: cohorts of N = 5,000 individuals (two cohorts alternating every L = 8 rounds), 4
resources, 5 groups, 30 local candidates (+ 5 global) x 16 rollouts per meta round, type-1
kernels. A meta round is the first decision of a cohort (model refit + candidate search); a base
round is any other decision. EqualSplit (the same base level and refit, no search) is the
reference measured in the same run. Medians over the timed cohorts, after warm-up cohorts.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_fair.py [--csv PATH]`` (the CSV: one row per
policy and model, the printed columns unrounded).
"""

from __future__ import annotations

import argparse
import csv
import time

import numpy as np

from scarce.fair import EqualSplit, MetaCUB, synthetic_env
from scarce.sim import run


def timed(cls: type) -> type:
    """``cls`` whose decisions are timed, split into cohort starts and the other rounds."""

    class Timed(cls):  # type: ignore[misc, valid-type]
        def _init_state(self) -> None:
            super()._init_state()
            self.times_: list[tuple[bool, float]] = []

        def _decide(self, X, eligible, **context):
            start = self._new_cohort(context.get("units"))
            t0 = time.perf_counter()
            out = super()._decide(X, eligible, **context)
            self.times_.append((start, time.perf_counter() - t0))
            return out

    Timed.__name__ = cls.__name__
    return Timed


def bench(cls: type, model: str, cohorts: int = 7, warm: int = 3) -> dict[str, float]:
    env = synthetic_env(
        10_000,
        n_groups=5,
        n_features=8,
        n_resources=4,
        kernel="type1",
        budget_fractions=[0.04, 0.03, 0.02, 0.01],
        n_cohorts=2,
        seed=0,
    )
    kwargs = {"hidden": (32, 16), "epochs": 5} if model != "linear" else {}
    policy = timed(cls)(
        n_actions=env.n_actions,
        n_features=env.n_features,
        model=model,
        model_kwargs=kwargs,
        seed=0,
        **env.policy_params(0),
    )
    n = env.cohort_size
    run(policy, env, cohorts * 8 * n, batch_size=n, seed=0, record_probabilities=False)
    starts = [t for s, t in policy.times_ if s][warm:]
    base = [t for s, t in policy.times_[warm * 8 :] if not s]
    return {
        "meta_s": float(np.median(starts)),
        "meta_max_s": float(np.max(starts)),
        "base_s": float(np.median(base)),
        "pool": float(getattr(policy, "pool_", np.zeros(0)).shape[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()
    rows = [
        (f"{cls.__name__}/{model}", bench(cls, model))
        for model in ("linear", "neural_linear")
        for cls in (EqualSplit, MetaCUB)
    ]
    print(
        f"{'policy/model':<26}{'cohort start (s)':>18}{'max (s)':>10}{'base round (s)':>16}{'pool':>7}"
    )
    for name, r in rows:
        print(
            f"{name:<26}{r['meta_s']:>18.3f}{r['meta_max_s']:>10.3f}{r['base_s']:>16.4f}"
            f"{r['pool']:>7.0f}"
        )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["policy", "model", "cohort_start_s", "cohort_start_max_s", "base_round_s",
                          "pool"])  # fmt: skip
            for name, r in rows:
                policy, model = name.split("/")
                out.writerow([policy, model, r["meta_s"], r["meta_max_s"], r["base_s"], r["pool"]])


if __name__ == "__main__":
    main()
