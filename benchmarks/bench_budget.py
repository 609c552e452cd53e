"""Per-round cost of the budgeted learners next to plain LinUCB (same loop, same process).

Run ``python benchmarks/bench_budget.py [--rounds N] [--repeats R] [--clock cpu] [--csv PATH]``.
One round is ``decide`` on one context plus ``update`` with its outcome, as
:func:`scarce.sim.run` makes them (the budgeted policies also get their costs and their
``Decision.info`` back). Rows:

* ``LinUCB K=2`` and ``LinUCB K=10`` (d = 20): the reference;
* ``Deferral`` (linear, d = 20, full feedback: the model's reward every round);
* ``KnapsackBandit`` (K = 10, 3 resources, d = 20, bandit feedback);
* the same two with ``backend="numba"`` (the compiled single-case path), when numba is
  installed; their ratio is to the NumPy ``LinUCB``, the reference of issue 18's target.

The first ``--skip`` rounds (the Z warm-up and model start-up) are left out of the timings;
the budget is large enough never to bind. Within each repeat the policies run in turn, and
each budgeted policy's time is divided by the LinUCB time (same K) of the same repeat; the
table gives the median and the best over the repeats of the times and of these ratios (the
ratio is the figure to compare across machines and loads). ``--clock cpu`` times with the
process's CPU time instead of the wall clock: much steadier when other work shares the
cores. ``--csv`` writes the table, unrounded, with the load average at the start and end
(``--append`` adds its rows to the file, ``--label`` names the version measured, so that
runs of two versions of scarce can share one file).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import inspect
import os
import time
from collections.abc import Callable

import numpy as np

from scarce.budget import Deferral, KnapsackBandit
from scarce.policies import LinUCB

D = 20


def _time_rounds(
    make: Callable[[], object],
    K: int,
    m: int,
    rounds: int,
    skip: int,
    seed: int,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float]:
    """Microseconds per round of ``decide`` and of ``update``, after ``skip`` rounds."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (rounds, D)) / D
    R = rng.uniform(0, 1, (rounds, K))
    C = rng.uniform(0, 1, (rounds, m))
    zeros = np.zeros((1, m))
    pol = make()
    deferral = isinstance(pol, Deferral)
    costed = isinstance(pol, KnapsackBandit)
    t_decide = t_update = 0.0
    for t in range(rounds):
        x = X[t : t + 1]
        t0 = clock()
        d = pol.decide(x)
        t1 = clock()
        a = d.actions
        r = R[t, a]
        if deferral:
            c = C[t : t + 1, :1] if a[0] == 1 else zeros
            t2 = clock()
            pol.update(x, a, r, costs=c, model_rewards=R[t, :1], info=d.info)
        elif costed:
            c = C[t : t + 1] if a[0] != 0 else zeros
            t2 = clock()
            pol.update(x, a, r, costs=c, info=d.info)
        else:
            t2 = clock()
            pol.update(x, a, r)
        t3 = clock()
        if t >= skip:
            t_decide += t1 - t0
            t_update += t3 - t2
    n = rounds - skip
    return t_decide / n * 1e6, t_update / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--skip", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--csv", default=None, help="write the table here (CSV)")
    parser.add_argument("--append", action="store_true", help="add to --csv, keep its rows")
    parser.add_argument(
        "--label", default="", help="the version measured (a CSV column: e.g. before, after)"
    )
    args = parser.parse_args()
    T = args.rounds
    big = 10.0 * T
    dual = {"warmup_rounds": 100}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    def deferral(backend: str | None = None) -> object:
        extra = {} if backend is None else {"backend": backend}
        return Deferral(n_features=D, budget=big, horizon=T, dual=dual, seed=0, **extra)

    def knapsack(backend: str | None = None) -> object:
        extra = {} if backend is None else {"backend": backend}
        return KnapsackBandit(
            n_actions=10,
            n_features=D,
            budget=[big] * 3,
            horizon=T,
            n_resources=3,
            dual=dual,
            seed=0,
            **extra,
        )

    # name: (factory, K, m); the reference LinUCB row has the same K
    cases = {
        "LinUCB K=2": (lambda: LinUCB(n_actions=2, n_features=D, seed=0), 2, 1),
        "LinUCB K=10": (lambda: LinUCB(n_actions=10, n_features=D, seed=0), 10, 1),
        "Deferral (linear)": (deferral, 2, 1),
        "KnapsackBandit K=10 m=3": (knapsack, 10, 3),
    }
    # (a version of scarce without the backend parameter measures the NumPy rows only)
    if (
        importlib.util.find_spec("numba") is not None
        and "backend" in inspect.signature(KnapsackBandit).parameters
    ):
        cases['Deferral (linear), backend="numba"'] = (lambda: deferral("numba"), 2, 1)
        cases['KnapsackBandit K=10 m=3, backend="numba"'] = (lambda: knapsack("numba"), 10, 3)
    load_start = os.getloadavg()
    split: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for rep in range(args.repeats):
        for name, (make, K, m) in cases.items():
            split[name].append(_time_rounds(make, K, m, T, args.skip, rep, clock))
    load_end = os.getloadavg()
    rows = []
    for name, (_, K, m) in cases.items():
        parts = np.array(split[name])  # (repeats, 2)
        total = parts.sum(axis=1)
        ratio = total / np.array(split[f"LinUCB K={K}"]).sum(axis=1)  # paired by repeat
        rows.append(
            {
                "label": args.label,
                "policy": name,
                "K": K,
                "m": m,
                "d": D,
                "rounds": T,
                "skip": args.skip,
                "repeats": args.repeats,
                "clock": args.clock,
                "us_median": float(np.median(total)),
                "us_min": float(total.min()),
                "decide_us_median": float(np.median(parts[:, 0])),
                "update_us_median": float(np.median(parts[:, 1])),
                "ratio_median": float(np.median(ratio)),
                "ratio_min": float(ratio.min()),
                "ratio_max": float(ratio.max()),
                "load_start": load_start[0],
                "load_end": load_end[0],
            }
        )
    print(
        f"{'policy':<42} {'us/round':>9} {'best':>7} {'decide':>7} {'update':>7} "
        f"{'x LinUCB (same K)':>18} {'range':>12}"
    )
    for r in rows:
        spread = f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}"
        print(
            f"{r['policy']:<42} {r['us_median']:>9.1f} {r['us_min']:>7.1f} "
            f"{r['decide_us_median']:>7.1f} {r['update_us_median']:>7.1f} "
            f"{r['ratio_median']:>18.2f} {spread:>12}"
        )
    print(
        f"{args.clock} clock, median (and best) of {args.repeats} repeats of {T} rounds "
        f"({args.skip} skipped); 1-min load average {load_start[0]:.1f} at the start, "
        f"{load_end[0]:.1f} at the end, {os.cpu_count()} CPUs"
    )
    if args.csv:
        exists = args.append and os.path.exists(args.csv)
        with open(args.csv, "a" if exists else "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            if not exists:
                writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
