"""Per-round cost of mixed-effect Thompson sampling against the number of actions K, and a
many-seed sweep of it replicated (vectorised over seeds) against separate runs.

1. **Per round.** One round = ``decide`` on one context + ``update`` with its reward (choice
   probabilities are lazy and not requested). meTS (joint and factored effect posteriors) at
   L = 5, d = 5 for K in {10, 100, 1000, 10000}, next to Thompson sampling on the exact joint
   Gaussian posterior over all K d action parameters (effects integrated out; rank-1
   covariance update plus a Cholesky factor per round to sample), feasible only for small K.
   The slope of log(time per round) against log(K) between consecutive K (1 = linear in K)
   is printed under the table.
2. **Sweep.** ``--seeds`` seeds x ``--horizon`` rounds of meTS (joint, and factored: meTS-Fa)
   with the true prior on the paper's synthetic problem (``MixedEffectEnv``: K = 100, L = 3,
   d = 2, linear rewards), batch size 1, without choice probabilities (as sweeps run): one
   :func:`scarce.sim.run` per seed, all in this process, against one
   :func:`scarce.sim.run_replicated` call over the seeds (checked to give identical traces).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_structured.py [--rounds 300] [--csv PATH]
[--seeds 100] [--horizon 1000] [--skip-sweep]`` (the CSV: one row per method and K; empty
times where the method is infeasible; the sweep table goes to ``structured_sweep.csv`` in the
same folder).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from scarce.sim import run, run_replicated
from scarce.structured import MixedEffectEnv, MixedEffectTS, mixing_matrices


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


def bench_sweep(seeds: int, horizon: int) -> list[dict[str, object]]:
    """Wall time of ``seeds`` separate runs and of one replicated run, per effects setting."""

    def make(effects):
        envs = [
            MixedEffectEnv(n_actions=100, n_effects=3, n_features=2, seed=s) for s in range(seeds)
        ]
        pols = [
            MixedEffectTS(n_actions=100, n_features=2, effects=effects, seed=1000 + s, **e.prior())
            for s, e in enumerate(envs)
        ]
        return pols, envs

    rows: list[dict[str, object]] = []
    for effects in ("joint", "factored"):
        pols, envs = make(effects)
        t0 = time.perf_counter()
        separate = [
            run(p, e, horizon, seed=s, record_probabilities=False)
            for s, (p, e) in enumerate(zip(pols, envs, strict=True))
        ]
        t_sep = time.perf_counter() - t0
        pols, envs = make(effects)
        t0 = time.perf_counter()
        replicated = run_replicated(pols, envs, horizon, list(range(seeds)), probabilities=False)
        t_rep = time.perf_counter() - t0
        identical = all(a == b for a, b in zip(replicated, separate, strict=True))
        if not identical:
            raise AssertionError(f"replicated traces differ from separate runs ({effects})")
        for path, wall in (("separate runs", t_sep), ("replicated", t_rep)):
            rows.append(
                {
                    "method": f"meTS ({effects})",
                    "path": path,
                    "seeds": seeds,
                    "horizon": horizon,
                    "wall_s": wall,
                    "us_per_seed_round": wall * 1e6 / (seeds * horizon),
                    "speedup_vs_separate": t_sep / wall,
                    "identical": identical,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    parser.add_argument("--seeds", type=int, default=100, help="seeds of the sweep")
    parser.add_argument("--horizon", type=int, default=1000, help="rounds of the sweep")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    L, d = 5, 5
    rows = []
    for K in (10, 100, 1000, 10000):
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
    print("slope of log(time / round) against log(K) between consecutive K (1 = linear):")
    for name in dict.fromkeys(name for name, _, _ in rows):
        pts = [(K, sec) for n, K, sec in rows if n == name and not np.isnan(sec)]
        slopes = [
            f"{K0}->{K1}: {np.log(t1 / t0) / np.log(K1 / K0):.2f}"
            for (K0, t0), (K1, t1) in zip(pts, pts[1:], strict=False)
        ]
        print(f"  {name:<20}{', '.join(slopes)}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["method", "K", "ms_per_round", "us_per_round_per_action"])
            for name, K, sec in rows:
                ok = not np.isnan(sec)
                out.writerow([name, K, sec * 1e3 if ok else "", sec * 1e6 / K if ok else ""])

    if args.skip_sweep:
        return
    print(
        f"\nsweep: {args.seeds} seeds x {args.horizon} rounds, MixedEffectEnv K=100, L=3, d=2, "
        "separate runs vs one replicated run (one process)"
    )
    sweep_rows = bench_sweep(args.seeds, args.horizon)
    print(f"{'method':<18}{'path':<16}{'wall s':>9}{'us/seed/round':>15}{'speed-up':>10}")
    for r in sweep_rows:
        print(
            f"{r['method']:<18}{r['path']:<16}{r['wall_s']:>9.2f}{r['us_per_seed_round']:>15.1f}"
            f"{r['speedup_vs_separate']:>9.1f}x"
        )
    if args.csv:
        with open(Path(args.csv).with_name("structured_sweep.csv"), "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(sweep_rows[0]))
            writer.writeheader()
            writer.writerows(sweep_rows)


if __name__ == "__main__":
    main()
