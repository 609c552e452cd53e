"""Speed of the vector-reward pieces: PCBShift per round over a long run, and exact gaps.

Run ``python benchmarks/bench_pareto.py [--rounds 100000] [--peer-rounds 20000] [--csv PATH]``.

1. PCBShift at K = 10 arms, m = 3 objectives, D = 2 context dimensions (no horizon given, so
   the tree may grow to depth 20), one case per round: ``decide`` then ``update`` with the
   reward vector, contexts from a covariate-shift environment (uniform, then a power law near
   a corner from the middle of the run). Reported: microseconds per round (decide + update)
   in each tenth of the run, so a cost growing with t would show, the decide and update
   costs separately over the last tenth, and the tree size. Times are CPU time of the
   process (``time.process_time``), which is robust to other load on a shared machine. The same loop runs, over
   ``--peer-rounds``, for the static grid, Pareto UCB, scalarised LinUCB and random play.
2. The gap of every arm for K = 50 arms under a 4-facet polyhedral cone in R^3 (exact MILP
   per strictly dominated arm) and, for reference, under the orthant (closed form).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from scarce.pareto import (  # noqa: E402
    Cone,
    ParetoUCB,
    PCBShift,
    PeaksShiftEnv,
    ScalarisedLinUCB,
    StaticGridPCB,
    gaps,
)
from scarce.policies import Random  # noqa: E402

K, M, D = 10, 3, 2
#: CPU time of this process: the machine is shared, and wall time would count the rounds in
#: which other processes held the cores
_clock = time.process_time


def _env(rounds: int) -> PeaksShiftEnv:
    return PeaksShiftEnv(
        n_actions=K,
        n_features=D,
        n_objectives=M,
        change_points=(rounds // 2,),
        distributions=((1.0, 1.0), (4.0, 1.0)),
        noise=0.1,
    )


def _policy(name: str, env: PeaksShiftEnv):
    common = {"n_actions": K, "n_features": D, "n_objectives": M, "seed": 0}
    tree = {"c_beta": env.holder_constant, "sigma": env.noise}
    return {
        "PCBShift": lambda: PCBShift(**common, **tree),
        "StaticGridPCB": lambda: StaticGridPCB(**common, **tree, grid_level=4),
        "ParetoUCB": lambda: ParetoUCB(**common, **tree),
        "LinUCB-chebyshev": lambda: ScalarisedLinUCB(
            **common, scalarization="chebyshev", alpha=0.2
        ),
        "Random": lambda: Random(n_actions=K, n_features=D, seed=0),
    }[name]()


def run_rounds(name: str, rounds: int, blocks: int = 10) -> dict[str, object]:
    env = _env(rounds)
    policy = _policy(name, env)
    rng = np.random.default_rng(1)
    X = env.contexts(rounds, rng)
    noise = rng.normal(0.0, env.noise, size=(rounds, M))
    block = rounds // blocks
    per_block = []
    t_dec = t_upd = 0.0
    for b in range(blocks):
        last = b == blocks - 1
        start = _clock()
        for t in range(b * block, (b + 1) * block):
            x = X[t : t + 1]
            if last:
                t0 = _clock()
                d = policy.decide(x)
                t1 = _clock()
                y = env.expected_rewards(x)[:, d.actions[0]] + noise[t : t + 1]
                t2 = _clock()
                policy.update(x, d.actions, y)
                t3 = _clock()
                t_dec += t1 - t0
                t_upd += t3 - t2
            else:
                d = policy.decide(x)
                y = env.expected_rewards(x)[:, d.actions[0]] + noise[t : t + 1]
                policy.update(x, d.actions, y)
        elapsed = _clock() - start
        per_block.append(1e6 * elapsed / block)
    return {
        "policy": name,
        "rounds": rounds,
        "us_per_round_blocks": per_block,
        "us_decide_last": 1e6 * t_dec / block,
        "us_update_last": 1e6 * t_upd / block,
        "leaves": getattr(policy, "n_leaves_", ""),
        "depth": getattr(policy, "depth_", ""),
    }


def four_facet_cone() -> Cone:
    rays = [[1.0, 0.25, 0.25], [0.25, 1.0, 0.25], [0.25, 0.25, 1.0], [0.9, 0.9, 0.05]]
    cone = Cone.from_generators(rays)
    if cone.W.shape[0] != 4:
        raise RuntimeError(f"expected 4 facets, got {cone.W.shape[0]}")
    return cone


def bench_gaps(repeats: int = 5) -> list[dict[str, object]]:
    rows = []
    rng = np.random.default_rng(0)
    means = rng.uniform(0.1, 1.0, size=(50, 3))
    for label, cone in (
        ("4-facet cone (MILP)", four_facet_cone()),
        ("orthant (closed form)", Cone.orthant(3)),
    ):
        times = []
        for _ in range(repeats):
            t0 = _clock()
            g = gaps(means, cone)
            times.append(_clock() - t0)
        rows.append(
            {
                "cone": label,
                "K": 50,
                "m": 3,
                "strictly_dominated_arms": int(np.sum(g > 0)),
                "ms_per_call_median": 1e3 * float(np.median(times)),
                "ms_per_call_min": 1e3 * float(np.min(times)),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--peer-rounds", type=int, default=20_000)
    parser.add_argument("--csv", default=None, help="also write the tables to this CSV file")
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    print(f"# load average at start: {os.getloadavg()[0]:.2f}")

    results = [run_rounds("PCBShift", args.rounds)]
    for name in ("StaticGridPCB", "ParetoUCB", "LinUCB-chebyshev", "Random"):
        results.append(run_rounds(name, args.peer_rounds))
    print(f"\n## Per-round cost, K={K}, m={M}, D={D}, one case per round (decide + update)")
    header = f"{'policy':18s} {'rounds':>7s} {'first 10%':>10s} {'last 10%':>9s} {'decide':>7s} {'update':>7s} {'leaves':>7s} {'depth':>5s}"
    print(header)
    for r in results:
        blocks = r["us_per_round_blocks"]
        print(
            f"{r['policy']:18s} {r['rounds']:7d} {blocks[0]:10.1f} {blocks[-1]:9.1f} "
            f"{r['us_decide_last']:7.1f} {r['us_update_last']:7.1f} {r['leaves']!s:>7s} {r['depth']!s:>5s}"
        )
    pcb = results[0]["us_per_round_blocks"]
    print("PCBShift us/round by tenth of the run: " + ", ".join(f"{v:.0f}" for v in pcb))

    gap_rows = bench_gaps()
    print("\n## Gaps of K=50 arms (m=3), one call of scarce.pareto.gaps")
    for r in gap_rows:
        print(
            f"{r['cone']:24s} dominated arms {r['strictly_dominated_arms']:3d}  "
            f"median {r['ms_per_call_median']:8.2f} ms  min {r['ms_per_call_min']:8.2f} ms"
        )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["table", "name", "rounds", "value_name", "value"])
            for r in results:
                for i, v in enumerate(r["us_per_round_blocks"]):
                    w.writerow(["per_round", r["policy"], r["rounds"], f"us_per_round_block{i}", v])
                w.writerow(
                    ["per_round", r["policy"], r["rounds"], "us_decide_last", r["us_decide_last"]]
                )
                w.writerow(
                    ["per_round", r["policy"], r["rounds"], "us_update_last", r["us_update_last"]]
                )
            for r in gap_rows:
                w.writerow(["gaps", r["cone"], 50, "ms_per_call_median", r["ms_per_call_median"]])


if __name__ == "__main__":
    main()
