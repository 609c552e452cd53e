"""Speed of MetaCUB: seconds per meta round and per base round.

Setting of the issue: N = 5,000 individuals in one cohort, 4 resources, 5 groups, 30 local
candidates (+ 5 global) x 16 rollouts per meta round, Type-I kernels. The model is warmed up
on a few cohorts first; the table reports the median over the timed meta rounds (including
the model refit) and over base rounds, for the linear and the neural-linear outcome model.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_fair.py``
"""

from __future__ import annotations

import time

import numpy as np

from scarce.fair import MetaCUB, synthetic_env
from scarce.fair.env import AllocationState


def bench(model: str, n_meta: int = 4, warm: int = 3) -> dict[str, float]:
    env = synthetic_env(
        5000,
        n_groups=5,
        n_features=8,
        n_resources=4,
        kernel="type1",
        budget_fractions=[0.04, 0.03, 0.02, 0.01],
        n_cohorts=1,
        seed=0,
    )
    kwargs = {"hidden": (32, 16), "epochs": 5} if model != "linear" else {}
    m = MetaCUB(model=model, n_candidates=30, n_global=5, n_rollouts=16, model_kwargs=kwargs)
    rng = np.random.default_rng(0)
    m.reset(env.problem, rng)
    state = AllocationState(5000, env.resources)
    cohort = env.population.cohort(0)
    L = env.cohort_length
    meta_t, base_t, pools = [], [], []
    for h in range(warm + n_meta):
        t0 = time.perf_counter()
        m.start_cohort(h, cohort, h * L)
        if h >= warm:
            meta_t.append(time.perf_counter() - t0)
            pools.append(len(m.pool))
        for t in range(h * L, (h + 1) * L):
            t1 = time.perf_counter()
            units, r = m.allocate(t, cohort, state.eligible(cohort, t))
            base_t.append(time.perf_counter() - t1)
            state.record(cohort, units, r, t)
            y = env.effects[units, r] + rng.normal(0, 0.5, units.size)
            m.observe(t, units, y)
    return {
        "meta_s": float(np.median(meta_t)),
        "meta_max_s": float(np.max(meta_t)),
        "base_s": float(np.median(base_t)),
        "pool": float(np.mean(pools)),
    }


def main() -> None:
    rows = [(model, bench(model)) for model in ("linear", "neural_linear")]
    print(f"{'model':<15}{'meta round (s)':>16}{'max (s)':>10}{'base round (s)':>16}{'pool':>8}")
    for model, r in rows:
        print(
            f"{model:<15}{r['meta_s']:>16.3f}{r['meta_max_s']:>10.3f}{r['base_s']:>16.4f}"
            f"{r['pool']:>8.0f}"
        )


if __name__ == "__main__":
    main()
