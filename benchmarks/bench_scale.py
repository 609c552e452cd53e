"""Scale benchmark: replicated (vectorised) sweeps against separate runs, and decisions per
second with many actions and high dimension.

Run ``python benchmarks/bench_scale.py [--quick]``. It prints two tables and writes them as
CSV to ``benchmarks/results/scale_sweep.csv`` and ``benchmarks/results/scale_decisions.csv``
(``--out DIR``: into ``DIR`` instead).

1. **Sweep.** ``S`` seeds x ``T`` rounds of LinTS (``v = 0.1``, ``lam = 1``) on the synthetic
   linear-Gaussian problem with ``K = 10`` actions and ``d = 20`` features (noise sd 0.1),
   batch size 1: :func:`scarce.sim.sweep` (separate runs on ``--jobs`` local processes)
   against :func:`scarce.sim.sweep_replicated` (one vectorised computation over the seeds, in
   one process and split over ``--jobs`` processes). The tables are checked to be identical.
   A second sweep does the same for the budgeted ``Deferral`` on ``deferral-synthetic``
   (``--budget-horizon`` rounds, one process each; ``scale_budget_sweep.csv``).
   Note that each separate run also computes LinTS's exact choice probabilities (the trace
   records them; the sweep table does not), which the replicated sweep skips; the extra row
   ``replicated + probabilities`` measures a replicated run that computes them too.
2. **Decisions per second** with per-action features (one shared model): ``K = 10,000``
   actions at ``d = 50`` for exact LinUCB/LinTS and the sketched and diagonal
   approximations, and at ``d = 500``. Each step decides a batch of ``--batch`` cases and
   learns from it; timings are of decide + update, after one warm-up step.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one BLAS thread: runs are parallel over processes

RESULTS = Path(__file__).resolve().parent / "results"


def bench_sweep(seeds: int, horizon: int, jobs: int) -> list[dict[str, object]]:
    import pandas as pd

    from scarce.core.random import spawn_seeds
    from scarce.envs.synthetic import LinearGaussianEnv
    from scarce.policies import LinTS
    from scarce.sim import run_replicated, sweep, sweep_replicated

    policy = (LinTS, {"v": 0.1, "lam": 1.0})
    env = ("linear", {"n_actions": 10, "n_features": 20, "noise_std": 0.1})
    rows: list[dict[str, object]] = []

    def timed(label: str, fn, n_jobs: int) -> pd.DataFrame | None:
        t0 = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
        rows.append({"path": label, "processes": n_jobs, "wall_s": wall})
        print(f"  {label:<34} {n_jobs} proc  {wall:8.2f} s", flush=True)
        return out

    separate = timed(
        "separate runs (sweep)",
        lambda: sweep({"LinTS": policy}, {"linear": env}, seeds, horizon, n_jobs=jobs),
        jobs,
    )
    rep1 = timed(
        "replicated (sweep_replicated)",
        lambda: sweep_replicated(
            policy, env, seeds, horizon, policy_label="LinTS", env_label="linear", n_jobs=1
        ),
        1,
    )
    repj = timed(
        "replicated (sweep_replicated)",
        lambda: sweep_replicated(
            policy, env, seeds, horizon, policy_label="LinTS", env_label="linear", n_jobs=jobs
        ),
        jobs,
    )

    def with_probabilities() -> None:
        roots = spawn_seeds(0, seeds)
        trip = [spawn_seeds(np.random.SeedSequence(r), 3) for r in roots]
        envs = [LinearGaussianEnv(10, 20, 0.1, seed=e) for e, _, _ in trip]
        pols = [LinTS(n_actions=10, n_features=20, v=0.1, seed=p) for _, _, p in trip]
        run_replicated(pols, envs, horizon, [s for _, s, _ in trip], probabilities=True)

    timed("replicated + probabilities", with_probabilities, 1)
    for table in (rep1, repj):
        pd.testing.assert_frame_equal(table, separate)
    base = rows[0]["wall_s"]
    for row in rows:
        row["speedup_vs_separate"] = base / row["wall_s"]
        row["identical_table"] = row["path"] != "replicated + probabilities"
        row.update(seeds=seeds, horizon=horizon, K=10, d=20)
    return rows


def bench_budget_sweep(seeds: int, horizon: int) -> list[dict[str, object]]:
    """``seeds`` x ``horizon`` rounds of :class:`~scarce.budget.Deferral` (full feedback, the
    ``Z`` warm-up) on ``deferral-synthetic`` (budget rate 0.25, d = 20): separate runs
    (:func:`scarce.sim.sweep`, one process) against :func:`scarce.sim.sweep_replicated` (one
    process); the tables are checked identical. Both build one environment and one policy
    per seed; the row ``building`` times that part alone (a one-round sweep), and the
    last figure subtracts it from both."""
    import pandas as pd

    from scarce.sim import sweep, sweep_replicated

    policy = ("Deferral", {})
    rows: list[dict[str, object]] = []

    def timed(label: str, fn) -> pd.DataFrame | None:
        t0 = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
        rows.append({"path": label, "processes": 1, "wall_s": wall})
        print(f"  {label:<34} 1 proc  {wall:8.2f} s", flush=True)
        return out

    env = "deferral-synthetic"
    # a one-round sweep: the building of every environment and policy, and little else (it
    # also imports the plug-ins and draws the environments' shared Monte Carlo sample)
    sweep({"Deferral": policy}, {env: env}, 1, 1, n_jobs=1)
    timed(
        "building (one-round sweep)",
        lambda: sweep({"Deferral": policy}, {env: env}, seeds, 1, n_jobs=1),
    )
    separate = timed(
        "separate runs (sweep)",
        lambda: sweep({"Deferral": policy}, {env: env}, seeds, horizon, n_jobs=1),
    )
    replicated = timed(
        "replicated (sweep_replicated)",
        lambda: sweep_replicated(
            policy, env, seeds, horizon, policy_label="Deferral", env_label=env
        ),
    )
    pd.testing.assert_frame_equal(replicated, separate)
    built, base, rep = (row["wall_s"] for row in rows)
    for row in rows:
        row["speedup_vs_separate"] = base / row["wall_s"]
        row["identical_table"] = row["path"] != "building (one-round sweep)"
        row.update(seeds=seeds, horizon=horizon, K=2, d=20)
    # the simulations alone: the building subtracted from both
    rows[2]["speedup_runs_only"] = (base - built) / (rep - built) if rep > built else float("nan")
    return rows


def bench_decisions(K: int, d_values: list[int], batch: int, steps: int) -> list[dict[str, object]]:
    from scarce.policies import (
        DiagonalLinTS,
        DiagonalLinUCB,
        LinTS,
        LinUCB,
        SketchedLinTS,
        SketchedLinUCB,
    )

    rows: list[dict[str, object]] = []
    for d in d_values:
        rng = np.random.default_rng(d)
        theta = rng.normal(size=d) / np.sqrt(d)
        policies = {
            "LinUCB (exact)": LinUCB(n_actions=K, n_features=d, alpha=1.0, seed=0),
            "LinTS (exact)": LinTS(n_actions=K, n_features=d, v=0.1, seed=0),
            "SketchedLinUCB (l=16)": SketchedLinUCB(
                n_actions=K, n_features=d, alpha=1.0, sketch_size=16, seed=0
            ),
            "SketchedLinTS (l=16)": SketchedLinTS(
                n_actions=K, n_features=d, v=0.1, sketch_size=16, seed=0
            ),
            "DiagonalLinUCB": DiagonalLinUCB(n_actions=K, n_features=d, alpha=1.0, seed=0),
            "DiagonalLinTS": DiagonalLinTS(n_actions=K, n_features=d, v=0.1, seed=0),
        }
        b = max(1, batch * 50 // d)  # cases per call: keeps X (b, K, d) at the d=50 size
        for name, policy in policies.items():
            # exact UCB at large d: O(K d^2) per case; fewer steps keep it to seconds
            n_steps = max(2, steps // 10) if name == "LinUCB (exact)" and d > 100 else steps
            total, decided = 0.0, 0
            for step in range(n_steps + 1):
                X = rng.normal(size=(b, K, d)) / np.sqrt(d)
                t0 = time.perf_counter()
                dec = policy.decide(X)
                y = X[np.arange(b), dec.actions] @ theta + 0.1 * rng.normal(size=b)
                policy.update(X, dec.actions, y)
                if step > 0:  # the first step is a warm-up
                    total += time.perf_counter() - t0
                    decided += b
            rows.append(
                {
                    "policy": name,
                    "K": K,
                    "d": d,
                    "batch": b,
                    "decisions": decided,
                    "decisions_per_s": decided / total,
                    "ms_per_decision": 1e3 * total / decided,
                }
            )
            print(f"  K={K} d={d:<4} {name:<24} {decided / total:10.1f} decisions/s", flush=True)
    return rows


def _write(rows: list[dict[str, object]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        # rows may add columns (the budgeted sweep's last row): the union, in order of appearance
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--horizon", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2, help="local processes")
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument(
        "--batch", type=int, default=10, help="cases per decide call at d=50 (scaled by 50/d)"
    )
    parser.add_argument("--steps", type=int, default=20, help="decide+update calls timed")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument(
        "--budget-horizon", type=int, default=2000, help="rounds of the budgeted sweep (0: skip)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the CSV files")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.horizon, args.actions, args.steps = 8, 500, 2000, 4

    print(f"scale benchmark on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    if not args.skip_sweep:
        print(f"\nLinTS sweep: {args.seeds} seeds x {args.horizon} rounds, K=10, d=20")
        sweep_rows = bench_sweep(args.seeds, args.horizon, args.jobs)
        print(f"\n{'path':<34}{'proc':>5}{'wall s':>10}{'speed-up':>10}  identical")
        for r in sweep_rows:
            print(
                f"{r['path']:<34}{r['processes']:>5}{r['wall_s']:>10.2f}"
                f"{r['speedup_vs_separate']:>9.1f}x  {r['identical_table']}"
            )
        _write(sweep_rows, args.out / "scale_sweep.csv")

    if args.budget_horizon:
        h = 300 if args.quick else args.budget_horizon
        print(f"\nDeferral sweep (budgeted): {args.seeds} seeds x {h} rounds, deferral-synthetic")
        budget_rows = bench_budget_sweep(args.seeds, h)
        print(f"\n{'path':<34}{'wall s':>10}{'speed-up':>10}  identical")
        for r in budget_rows:
            print(
                f"{r['path']:<34}{r['wall_s']:>10.2f}{r['speedup_vs_separate']:>9.1f}x  "
                f"{r['identical_table']}"
            )
        print(
            f"simulations alone (building subtracted): {budget_rows[2]['speedup_runs_only']:.1f}x"
        )
        _write(budget_rows, args.out / "scale_budget_sweep.csv")

    print(f"\nDecisions per second, per-action features, K={args.actions}, batch {args.batch}")
    dec_rows = bench_decisions(args.actions, [50, 500], args.batch, args.steps)
    print(f"\n{'policy':<24}{'d':>5}{'decisions/s':>14}{'ms/decision':>13}")
    for r in dec_rows:
        print(
            f"{r['policy']:<24}{r['d']:>5}{r['decisions_per_s']:>14.1f}{r['ms_per_decision']:>13.2f}"
        )
    _write(dec_rows, args.out / "scale_decisions.csv")


if __name__ == "__main__":
    main()
