"""Per-round cost of mixed-effect Thompson sampling against the number of actions K.

One round = ``decide`` on one context + ``update`` with its reward (choice probabilities are
lazy and not requested). meTS (joint and factored effect posteriors) at L = 5, d = 5 for
K in {100, 1000, 10000}, next to Thompson sampling on the exact joint Gaussian posterior over
all K d action parameters (effects integrated out; rank-1 covariance update plus a Cholesky
factor per round to sample), feasible only for small K.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_structured.py [--rounds 300] [--csv PATH]``
(the CSV: one row per method and K; empty times where the method is infeasible).
"""

from __future__ import annotations

import argparse
import csv
import time

import numpy as np

from scarce.structured import MixedEffectTS, mixing_matrices


class JointGaussianTS:
    """Thompson sampling with the full ``(K d)``-dimensional Gaussian posterior of all action
    parameters (the structure is used exactly, at cubic cost in ``K d``)."""

    def __init__(self, mixing, effect_cov, action_cov, noise_std, seed):
        K, L = mixing.shape
        d = action_cov.shape[0]
        C = mixing_matrices(mixing, d).reshape(K * d, L * d)
        self.K, self.d, self.noise2 = K, d, noise_std**2
        self.cov = C @ effect_cov @ C.T + np.kron(np.eye(K), action_cov)
        self.mean = np.zeros(K * d)
        self.rng = np.random.default_rng(seed)

    def decide(self, x):
        chol = np.linalg.cholesky(self.cov + 1e-10 * np.eye(self.cov.shape[0]))
        theta = self.mean + chol @ self.rng.standard_normal(self.mean.shape[0])
        return int(np.argmax(theta.reshape(self.K, self.d) @ x))

    def update(self, x, a, y):
        sl = slice(a * self.d, (a + 1) * self.d)
        u = self.cov[:, sl] @ x  # cov h, h = x in block a
        s = x @ u[sl] + self.noise2
        self.mean += u * ((y - x @ self.mean[sl]) / s)
        self.cov -= np.outer(u, u) / s


def _time_rounds(step, rounds: int, warmup: int, repeats: int) -> float:
    """Best over ``repeats`` blocks of ``rounds`` rounds (the least disturbed by other load)."""
    for t in range(warmup):
        step(t)
    best = np.inf
    t = warmup
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            step(t)
            t += 1
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()
    L, d = 5, 5
    rows = []
    for K in (100, 1000, 10000):
        rng = np.random.default_rng(0)
        mixing = rng.uniform(-1, 1, (K, L))
        rounds = args.rounds if K < 10000 else max(50, args.rounds // 3)
        total = args.warmup + rounds * args.repeats
        X = rng.uniform(-1, 1, (total, d))
        y = rng.standard_normal(total)
        for effects in ("joint", "factored"):
            pol = MixedEffectTS(
                n_actions=K,
                n_features=d,
                mixing=mixing,
                effect_cov=3.0 * np.eye(L * d),
                effects=effects,
                seed=1,
            )

            def step(t, pol=pol, X=X, y=y):
                a = pol.decide(X[t : t + 1]).actions
                pol.update(X[t : t + 1], a, y[t : t + 1])

            rows.append(
                (f"meTS ({effects})", K, _time_rounds(step, rounds, args.warmup, args.repeats))
            )
        if K <= 100:
            joint = JointGaussianTS(mixing, 3.0 * np.eye(L * d), np.eye(d), 1.0, seed=1)

            def jstep(t, joint=joint, X=X, y=y):
                joint.update(X[t], joint.decide(X[t]), y[t])

            rows.append(
                ("joint Gaussian TS", K, _time_rounds(jstep, rounds, args.warmup, args.repeats))
            )
        else:
            rows.append(("joint Gaussian TS", K, float("nan")))
    print(
        f"per-round time (decide + update, one context), L = {L}, d = {d}, "
        f"best of {args.repeats} x {args.rounds} rounds"
    )
    print(f"{'method':<20}{'K':>8}{'ms / round':>14}{'us / round / action':>22}")
    for name, K, sec in rows:
        if np.isnan(sec):
            print(f"{name:<20}{K:>8}{'infeasible':>14}{'':>22}")
        else:
            print(f"{name:<20}{K:>8}{sec * 1e3:>14.3f}{sec * 1e6 / K:>22.3f}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["method", "K", "ms_per_round", "us_per_round_per_action"])
            for name, K, sec in rows:
                ok = not np.isnan(sec)
                out.writerow([name, K, sec * 1e3 if ok else "", sec * 1e6 / K if ok else ""])


if __name__ == "__main__":
    main()
