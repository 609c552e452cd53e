"""Speed of scarce's off-policy estimators, printed as a table.

    python benchmarks/bench_ope.py            # n = 1e4, 1e5, 1e6 logged rows
    python benchmarks/bench_ope.py --quick    # n = 1e4, 1e5

Synthetic logs: ``K = 10`` actions, ``d = 10`` features, a softmax logging policy, Bernoulli
rewards, a stochastic target (for IPS, SNIPS, clipped IPS, DM, DR, switch-DR) and a
deterministic one (for replay). Each cell is the best of ``--repeat`` runs (wall-clock seconds
and rows per second). DM / DR / switch-DR are timed twice: with precomputed reward
predictions (the estimator itself) and with the default cross-fitted per-action ridge model
(2 folds). Bootstrap intervals (1000 resamples) are timed separately.

No peer is run: Open Bandit Pipeline, the reference implementation, cannot be imported here
(it needs Python < 3.11 or pinned old numpy/torch); its estimators are the same vectorised
one-liners, so the comparison would measure numpy, not the library.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

import scarce.ope as ope


def make_logs(n: int, K: int = 10, d: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) / np.sqrt(d)
    theta = rng.normal(size=(K, d))
    logits = X @ theta.T
    logging = np.exp(logits - logits.max(axis=1, keepdims=True))
    logging /= logging.sum(axis=1, keepdims=True)
    logging = 0.9 * logging + 0.1 / K
    u = rng.random(n)
    actions = np.minimum((u[:, None] > np.cumsum(logging, axis=1)).sum(axis=1), K - 1)
    p = 1 / (1 + np.exp(-logits[np.arange(n), actions]))
    rewards = (rng.random(n) < p).astype(float)
    data = ope.LoggedData(X, actions, rewards, logging[np.arange(n), actions], n_actions=K)
    target = np.roll(logging, 1, axis=1)
    greedy = np.eye(K)[np.argmax(logits, axis=1)]
    q = rng.random((n, K))
    return data, target, greedy, q


def _cases(data, target, greedy, q, n: int) -> dict:
    """name -> zero-argument call to time."""
    cases = {
        "ips": lambda: ope.ips(data, target),
        "snips": lambda: ope.snips(data, target),
        "clipped_ips": lambda: ope.clipped_ips(data, target, max_weight=10),
        "replay": lambda: ope.replay(data, greedy),
        "dm (given q)": lambda: ope.dm(data, target, reward_model=q),
        "dr (given q)": lambda: ope.dr(data, target, reward_model=q),
        "switch_dr (given q)": lambda: ope.switch_dr(data, target, reward_model=q),
    }
    if n <= 100_000:
        cases["dr (cross-fitted ridge)"] = lambda: ope.dr(data, target)
        cases["ips, bootstrap 1000"] = lambda: ope.ips(data, target, ci="bootstrap")
        cases["snips, bootstrap 1000"] = lambda: ope.snips(data, target, ci="bootstrap")
    return cases


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        cases = _cases(*make_logs(n), n)
        for name, fn in cases.items():
            reps = 1 if "bootstrap" in name or "cross" in name else args.repeat
            t = best_time(fn, reps)
            rows.append((name, n, t, n / t))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = f"{'estimator':<26} {'rows':>10} {'seconds':>10} {'rows/s':>14}"
    print(header)
    print("-" * len(header))
    for name, n, t, rate in rows:
        print(f"{name:<26} {n:>10,} {t:>10.4f} {rate:>14,.0f}")
    print(f"\nK=10, d=10; best of {args.repeat} (1 for bootstrap/cross-fitting); "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["estimator", "rows", "seconds", "rows_per_s", "ms"])
            for name, n, t, rate in rows:
                out.writerow([name, n, t, rate, 1e3 * t])


if __name__ == "__main__":
    main()
