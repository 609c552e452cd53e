"""Per-round cost of the budgeted learners next to plain LinUCB (same loop, same process).

Run ``python benchmarks/bench_budget.py [--rounds N] [--repeats R]``. One round is ``decide``
on one context plus ``update`` with its outcome, as :func:`scarce.sim.run` makes them (the
budgeted policies also get their costs and their ``Decision.info`` back). Rows:

* ``LinUCB K=2`` and ``LinUCB K=10`` (d = 20): the reference;
* ``Deferral`` (linear, d = 20, full feedback: the model's reward every round);
* ``KnapsackBandit`` (K = 10, 3 resources, d = 20, bandit feedback).

The first ``--skip`` rounds (the Z warm-up and model start-up) are left out of the timings;
the budget is large enough never to bind. Policies are timed in turn within each repeat and
the fastest of ``--repeats`` runs is reported (the least disturbed by other load); the ratio
to LinUCB with the same K is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from scarce.budget import Deferral, KnapsackBandit
from scarce.policies import LinUCB

D = 20


def _time_rounds(
    make: Callable[[], object], K: int, m: int, rounds: int, skip: int, seed: int
) -> float:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (rounds, D)) / D
    R = rng.uniform(0, 1, (rounds, K))
    C = rng.uniform(0, 1, (rounds, m))
    zeros = np.zeros((1, m))
    pol = make()
    deferral = isinstance(pol, Deferral)
    costed = isinstance(pol, KnapsackBandit)
    start = 0.0
    for t in range(rounds):
        if t == skip:
            start = time.perf_counter()
        x = X[t : t + 1]
        d = pol.decide(x)
        a = d.actions
        r = R[t, a]
        if deferral:
            c = C[t : t + 1, :1] if a[0] == 1 else zeros
            pol.update(x, a, r, costs=c, model_rewards=R[t, :1], info=d.info)
        elif costed:
            c = C[t : t + 1] if a[0] != 0 else zeros
            pol.update(x, a, r, costs=c, info=d.info)
        else:
            pol.update(x, a, r)
    return (time.perf_counter() - start) / (rounds - skip) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--skip", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    T = args.rounds
    big = 10.0 * T
    dual = {"warmup_rounds": 100}

    def deferral() -> object:
        return Deferral(n_features=D, budget=big, horizon=T, dual=dual, seed=0)

    def knapsack() -> object:
        return KnapsackBandit(
            n_actions=10,
            n_features=D,
            budget=[big] * 3,
            horizon=T,
            n_resources=3,
            dual=dual,
            seed=0,
        )

    # name: (factory, K, m); the reference LinUCB row has the same K
    cases = {
        "LinUCB K=2": (lambda: LinUCB(n_actions=2, n_features=D, seed=0), 2, 1),
        "LinUCB K=10": (lambda: LinUCB(n_actions=10, n_features=D, seed=0), 10, 1),
        "Deferral (linear)": (deferral, 2, 1),
        "KnapsackBandit K=10 m=3": (knapsack, 10, 3),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for rep in range(args.repeats):
        for name, (make, K, m) in cases.items():
            times[name].append(_time_rounds(make, K, m, T, args.skip, rep))
    results = {name: float(np.min(v)) for name, v in times.items()}
    print(f"{'policy':<30} {'us/round':>10} {'x LinUCB (same K)':>18}")
    for name, us in results.items():
        ref = results[f"LinUCB K={cases[name][1]}"]
        print(f"{name:<30} {us:>10.1f} {us / ref:>18.2f}")


if __name__ == "__main__":
    main()
