"""Catalog-sized action spaces: decisions per second, agreement with exact search, index
memory, and regret of index search against exact search.

Run ``python benchmarks/bench_large.py [--quick] [--device cuda]``. Writes
``benchmarks/results/large_actions.csv`` (columns ``policy, K, d, backend, decisions_per_s,
top1_agreement, memory_mb``) and ``benchmarks/results/large_regret.csv`` (``--out DIR``: into
``DIR`` instead).

Setup. ``CatalogEnv(K, d=64)`` (clustered catalog with a power-law spectrum, user vectors
around 1). Each policy first learns from the same ``--warm`` logged cases (random actions),
so every backend starts from the same posterior; then it decides ``--cases`` cases in
batches of ``--batch`` without learning (decide only; the time of ``decide`` is measured,
after one warm-up batch; the index is built before timing and its build time is printed).

Backends. ``numpy``: exact search (BLAS, float32 features); ``torch-<device>``: the same on
torch tensors; ``faiss-ivf``: the IVF index (``nlist = 4 sqrt(K)``, ``nprobe`` below).

Agreement. ``top1_agreement`` is the share of cases on which the backend chose the action
the reference chose from the same state, with the same random draws: for CatalogTS and
SpannerCB the reference is the same policy with exact NumPy search (same seed, so the same
sampled parameters); for CatalogUCB it is the brute-force UCB argmax over all K actions
(widths of every action), computed on the first ``--ucb-ref`` cases (a quarter of them at
K = 10^6).

Regret. CatalogTS with the IVF index against CatalogTS with exact search on the same
problem, seed and horizon (``--horizon`` cases in batches of 50; learning on).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("policy", "K", "d", "backend", "decisions_per_s", "top1_agreement", "memory_mb")


def make_policy(name: str, K: int, d: int, backend: str, nprobe: int, device: str):
    from scarce.policies.catalog import CatalogTS, CatalogUCB
    from scarce.policies.spanner import SpannerCB

    cls, kw = {
        "CatalogTS": (CatalogTS, {"v": 0.1, "propensity_samples": 100}),
        "CatalogUCB": (CatalogUCB, {"alpha": 0.1}),
        "SpannerCB": (SpannerCB, {}),
    }[name]
    if backend == "faiss-ivf":
        kw.update(index={"kind": "ivf", "nprobe": nprobe})
    else:
        kw.update(index={"kind": "exact"})
        if backend.startswith("torch"):
            kw.update(backend="torch", device=device)
    return cls(n_actions=K, n_features=d, lam=1.0, seed=7, **kw)


def warm(policy, env, n: int) -> None:
    rng = np.random.default_rng(11)
    X = env.contexts(n, rng=rng)
    a = rng.integers(0, env.n_actions, n)
    policy.update(X, a, env.outcomes(X, a, rng=rng).rewards)


def brute_force_ucb(policy, X: np.ndarray) -> np.ndarray:
    """Exact LinUCB argmax over every action (blocks of actions, BLAS), for the reference."""
    theta, A_inv = policy.ridge_.theta[0], policy.ridge_.A_inv[0]
    F = policy.catalog.features
    out = np.empty(X.shape[0], dtype=np.int64)
    for i, x in enumerate(X):
        B = (x[:, None] * A_inv) * x[None, :]  # width^2 of f is f^T B f
        best, best_v = -1, -np.inf
        for s in range(0, F.shape[0], 1 << 16):
            f = F[s : s + (1 << 16)].astype(np.float64)
            width2 = np.einsum("kd,kd->k", f @ B, f)
            v = f @ (x * theta) + policy.alpha * np.sqrt(np.maximum(width2, 0.0))
            j = int(np.argmax(v))
            if v[j] > best_v:
                best, best_v = s + j, v[j]
        out[i] = best
    return out


def decide_all(policy, X: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    policy.decide(X[:batch])  # warm-up (and index build)
    acts, t0 = [], time.perf_counter()
    for s in range(0, X.shape[0], batch):
        acts.append(policy.decide(X[s : s + batch]).actions)
    return np.concatenate(acts), time.perf_counter() - t0


def bench_speed(args, sizes: list[int], backends: list[str]) -> list[dict]:
    from scarce.envs.catalog import CatalogEnv

    d, rows = 64, []
    for K in sizes:
        env = CatalogEnv(K, d, seed=0)
        X = env.contexts(args.cases, rng=np.random.default_rng(5))
        feat_mb = env.action_features.nbytes / 2**20
        print(f"K = {K:,}: action features {feat_mb:.1f} MB (float32)", flush=True)
        for name in args.policies:
            ref = None
            for backend in backends:
                if backend.startswith("torch") and name != "CatalogTS":
                    continue
                p = make_policy(name, K, d, backend, args.nprobe, args.device)
                p.set_actions(env.action_features)
                warm(p, env, args.warm)
                t0 = time.perf_counter()
                p.decide(X[:1])  # builds the index (and SpannerCB's catalog spanner)
                build = time.perf_counter() - t0
                # the same seed and state as the reference: restart the random stream
                p.rng_ = np.random.default_rng(99)
                acts, wall = decide_all(p, X, args.batch)
                if name == "CatalogUCB":
                    if ref is None:
                        m = min(args.ucb_ref if K < 1_000_000 else args.ucb_ref // 4, X.shape[0])
                        ref = brute_force_ucb(p, X[:m])
                    agree = float(np.mean(acts[: ref.size] == ref))
                else:
                    if backend == "numpy":
                        ref = acts
                    agree = float(np.mean(acts == ref)) if ref is not None else float("nan")
                mem = p.catalog.memory_bytes() or p.catalog.features.nbytes
                row = {
                    "policy": name,
                    "K": K,
                    "d": d,
                    "backend": backend,
                    "decisions_per_s": round(X.shape[0] / wall, 1),
                    "top1_agreement": round(agree, 4),
                    "memory_mb": round(mem / 2**20, 1),
                }
                rows.append(row)
                print(
                    f"  {name:<10} {backend:<10} {row['decisions_per_s']:>9.1f}/s  agree "
                    f"{row['top1_agreement']:.3f}  search memory {row['memory_mb']:.1f} MB "
                    f"(build {build:.1f} s)",
                    flush=True,
                )
    return rows


def bench_regret(args, K: int) -> list[dict]:
    from scarce.envs.catalog import CatalogEnv
    from scarce.sim import run

    env, rows = CatalogEnv(K, 64, seed=1), []
    for seed in range(args.regret_seeds):
        for backend in ("numpy", "faiss-ivf"):
            p = make_policy("CatalogTS", K, 64, backend, args.nprobe, args.device)
            p.set_actions(env.action_features)
            t0 = time.perf_counter()
            trace = run(p, env, args.horizon, batch_size=50, seed=seed, record_probabilities=False)
            rows.append(
                {
                    "policy": "CatalogTS",
                    "K": K,
                    "backend": backend,
                    "seed": seed,
                    "horizon": args.horizon,
                    "regret": round(float(trace.regret.sum()), 3),
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
            )
            print(
                f"  regret K={K:,} seed {seed} {backend:<10} {rows[-1]['regret']:.2f}", flush=True
            )
    by = {
        b: np.mean([r["regret"] for r in rows if r["backend"] == b]) for b in ("numpy", "faiss-ivf")
    }
    print(
        f"  mean regret: exact {by['numpy']:.2f}, ivf {by['faiss-ivf']:.2f} "
        f"(ratio {by['faiss-ivf'] / by['numpy']:.3f})",
        flush=True,
    )
    return rows


def write(path: Path, rows: list[dict], columns) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="K up to 10^5, fewer cases (about 2 min)")
    ap.add_argument("--device", default="cpu", help="torch device of the torch backend")
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--warm", type=int, default=2000)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--ucb-ref", type=int, default=None)
    ap.add_argument("--horizon", type=int, default=None)
    ap.add_argument("--regret-seeds", type=int, default=None)
    ap.add_argument(
        "--policies",
        nargs="+",
        default=["CatalogTS", "CatalogUCB", "SpannerCB"],
        help="measure these only; their rows replace the same rows of an existing CSV",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the CSV files")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="catalog sizes K")
    ap.add_argument("--no-regret", action="store_true", help="skip the regret comparison")
    args = ap.parse_args()
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    args.cases = args.cases or (200 if args.quick else 1000)
    args.ucb_ref = args.ucb_ref or (50 if args.quick else 100)
    args.horizon = args.horizon or (600 if args.quick else 2000)
    args.regret_seeds = args.regret_seeds or (1 if args.quick else 2)
    backends = ["numpy", "faiss-ivf"]
    try:
        import torch  # noqa: F401

        backends.insert(1, f"torch-{args.device}")
    except ModuleNotFoundError:
        print("torch not installed: no torch rows")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = bench_speed(args, sizes, backends)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "large_actions.csv"
    if path.exists() and (
        args.sizes or set(args.policies) != {"CatalogTS", "CatalogUCB", "SpannerCB"}
    ):
        with path.open() as fh:
            old = list(csv.DictReader(fh))
        new = {(r["policy"], str(r["K"]), r["backend"]) for r in rows}
        rows = [r for r in old if (r["policy"], r["K"], r["backend"]) not in new] + rows
        order = ["CatalogTS", "CatalogUCB", "SpannerCB"]
        rows.sort(key=lambda r: (int(r["K"]), order.index(r["policy"])))
    write(path, rows, COLUMNS)
    if not args.no_regret:
        regret = bench_regret(args, sizes[-1])
        write(args.out / "large_regret.csv", regret, list(regret[0]))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
