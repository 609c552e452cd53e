"""Per-case cost of the neural policies next to LinTS, amortised over the retrain schedule.

Problem: the wheel bandit (delta = 0.5, K = 5, 2 coordinates + bias), the settings of
``scarce run neural`` (network ``scarce.neural.experiments.NETWORKS["wheel"]``). For every
seed, every policy sees the same contexts and reward noise (drawn up front); the clock covers
``decide`` and ``update`` only (the environment is outside it), on one torch thread and one
BLAS thread, in CPU time of the process (``time.process_time``: on a shared machine, wall time
also counts the waits for a core). Policies run interleaved per seed, so a change in the
machine's load hits them alike. Printed per policy: microseconds per case (amortised: retrainings included), the same
without the updates that retrained, the number of retrainings and milliseconds per
retraining, the ratio to LinTS, and the cumulative regret.

    python benchmarks/bench_neural.py                 # 6,000 cases, 3 seeds
    python benchmarks/bench_neural.py --quick         # 1,000 cases, 1 seed
    python benchmarks/bench_neural.py --policies LinTS,NeuralLinearTS,EnsembleTS

Writes ``benchmarks/results/neural.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from scarce.envs import WheelEnv
from scarce.neural.experiments import policies_for

ALL = (
    "LinTS",
    "LinUCB",
    "NeuralLinearTS",
    "NeuralLinearUCB",
    "NeuralUCB",
    "EnsembleTS",
    "DropoutTS",
)


def one_run(name: str, seed: int, horizon: int, network: dict | None = None) -> dict[str, float]:
    env = WheelEnv(delta=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    X = env.contexts(horizon, rng=rng)
    full = env.full_outcomes(X, rng=rng)
    best = env.expected_rewards(X)
    spec = policies_for("wheel")[name]
    if network and "network" in spec.params:
        spec = type(spec)(
            spec.policy, {**spec.params, "network": {**spec.params["network"], **network}}
        )
    policy = spec.build(env.n_actions, env.n_features, seed)
    total = retrain_time = regret = 0.0
    for t in range(horizon):
        x = X[t : t + 1]
        before = getattr(policy, "n_retrains", 0)
        start = time.process_time()
        a = policy.decide(x).actions
        policy.update(x, a, full[t, a])
        elapsed = time.process_time() - start
        total += elapsed
        if getattr(policy, "n_retrains", 0) != before:
            retrain_time += elapsed
        regret += best[t].max() - best[t, a[0]]
    retrains = int(getattr(policy, "n_retrains", 0))
    return {
        "policy": name,
        "seed": seed,
        "us_per_case": 1e6 * total / horizon,
        "us_per_case_without_retrains": 1e6 * (total - retrain_time) / max(horizon - retrains, 1),
        "retrains": retrains,
        "ms_per_retrain": 1e3 * retrain_time / retrains if retrains else 0.0,
        "regret": regret,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizon", type=int, default=6000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 cases, 1 seed")
    parser.add_argument("--policies", default="LinTS,NeuralLinearTS")
    parser.add_argument("--csv", default="benchmarks/results/neural.csv")
    parser.add_argument(
        "--network",
        default="{}",
        help="JSON overrides of the network settings, e.g. '{\"train_steps\": 100}'",
    )
    args = parser.parse_args()
    horizon, seeds = (1000, 1) if args.quick else (args.horizon, args.seeds)
    names = args.policies.split(",")
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        parser.error(f"unknown policies {unknown}; choose from {', '.join(ALL)}")
    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for seed in range(seeds):
            for name in names:
                rows.append(one_run(name, seed, horizon, json.loads(args.network)))
                print(f"  seed {seed} {name}: {rows[-1]['us_per_case']:.0f} us/case", flush=True)
    df = pd.DataFrame(rows)
    if "LinTS" in names:  # each seed's cost over LinTS's on the same cases, same moment
        lints = df[df.policy == "LinTS"].set_index("seed")["us_per_case"]
        df["x_LinTS"] = df["us_per_case"] / df["seed"].map(lints)
    table = df.groupby("policy", sort=False).mean(numeric_only=True).drop(columns="seed")
    pd.set_option("display.width", 200)
    print(
        f"\nwheel bandit delta=0.5, {horizon} cases, {seeds} seed(s), one torch/BLAS thread; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; network overrides "
        f"{args.network}"
    )
    print(table.round(2).to_string())
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
