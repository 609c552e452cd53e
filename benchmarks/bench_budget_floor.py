"""How fast could one budgeted round be? The issue-18 question, measured (K = 10, m = 3, d = 20).

Run ``python benchmarks/bench_budget_floor.py [--rounds N] [--repeats R] [--csv PATH]``.

``benchmarks/bench_budget.py`` times the library's ``KnapsackBandit`` against ``LinUCB``. This
benchmark asks what a *stacked* round (each action's reward and ``m`` consumptions as one
``(d, 1 + m)`` target sharing one ``A^{-1}``: one product for all means, one width per
action, one rank-one step) would cost, in two parts:

1. **Rounding.** On random cases of the benchmark's shapes, how often the stacked products
   differ in the last bit from the separate ones the library makes (and must keep, since its
   seeded trajectories and the replicated simulator are bit for bit those products):
   the consumption widths' GEMV over the ``K - 1`` costly rows against the same rows of the
   ``K``-row GEMV; the means ``x @ Theta`` ``(K - 1, d, 1 + m)`` against ``X @ theta.T`` and
   ``x @ theta_c``; a model's residual ``x @ Theta_a`` against ``x.dot(theta_a)`` and
   ``x @ theta_c[a]``.
2. **Floors.** Process CPU time per round (``decide`` + ``update`` of one case) of the bare
   NumPy arithmetic, without the policies' API, checks, ledger or bookkeeping: a LinUCB round
   (the library's own operations) and a stacked knapsack round (the fewest calls: one
   ``A^{-1} x`` for all actions, one product for all means, one width per action, clipping,
   ``r - c @ prices``, then one rank-one step of ``A^{-1}`` and of the ``(d, 1 + m)`` estimate
   reusing the decision's products, and the Hedge step of the prices), and the library's own
   knapsack arithmetic alone (the NumPy calls of its single-case path: separate products, no
   API), next to the library's ``LinUCB`` and ``KnapsackBandit`` in the same repeat. Each
   time is divided by the library LinUCB's time of the same repeat.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

import numpy as np

from scarce.budget import KnapsackBandit
from scarce.policies import LinUCB

K, M, D = 10, 3, 20


def rounding(trials: int, seed: int) -> dict[str, float]:
    """Fraction of ``trials`` random cases where each stacked product differs (any bit of any
    entry) from the separate products of the library's single-case path."""
    rng = np.random.default_rng(seed)
    differ = {"widths: costly rows alone": 0, "means: one stacked product": 0, "residual": 0}
    for _ in range(trials):
        x = rng.uniform(0, 1, D) / D
        L = rng.normal(size=(K, D, D)) / D
        A_inv = L @ L.swapaxes(1, 2) + np.eye(D)
        theta = rng.normal(size=(K, D))  # rewards, one model per action
        theta_c = rng.normal(size=(K - 1, D, M))  # consumptions of the costly actions
        Theta = np.concatenate([theta[1:, :, None], theta_c], axis=2)  # (K - 1, d, 1 + m)
        Ax = A_inv @ x
        differ["widths: costly rows alone"] += not np.array_equal((Ax @ x)[1:], Ax[1:] @ x)
        stacked = x @ Theta
        separate_r, separate_c = (x[None, :] @ theta.T)[0, 1:], x @ theta_c
        differ["means: one stacked product"] += not (
            np.array_equal(stacked[:, 0], separate_r) and np.array_equal(stacked[:, 1:], separate_c)
        )
        a = int(rng.integers(1, K))
        one = x.dot(Theta[a - 1])
        differ["residual"] += not (
            one[0] == x.dot(theta[a]) and np.array_equal(one[1:], x @ theta_c[a - 1])
        )
    return {name: count / trials for name, count in differ.items()}


class _Data:
    """The contexts, rewards and consumptions of one repeat (as bench_budget draws them)."""

    def __init__(self, rounds: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.X = rng.uniform(0, 1, (rounds, D)) / D
        self.R = rng.uniform(0, 1, (rounds, K))
        self.C = rng.uniform(0, 1, (rounds, M))


def bare_linucb(data: _Data, skip: int) -> float:
    """Microseconds per round of LinUCB's arithmetic alone (after ``skip`` rounds)."""
    A_inv = np.broadcast_to(np.eye(D), (K, D, D)).copy()
    theta = np.zeros((K, D))
    beta = np.ones(K)
    total = 0.0
    for t in range(data.X.shape[0]):
        x = data.X[t]
        t0 = time.process_time()
        Ax = A_inv @ x
        s = Ax @ x
        np.maximum(s, 0.0, out=s)
        np.sqrt(s, out=s)
        s *= beta
        s += theta @ x
        a = int(s.argmax())
        u = Ax[a]
        gain = u * (1.0 / (1.0 + u.dot(x)))
        theta[a] += gain * (data.R[t, a] - x.dot(theta[a]))
        A_inv[a] -= np.multiply.outer(gain, u)
        if t >= skip:
            total += time.process_time() - t0
    return total / (data.X.shape[0] - skip) * 1e6


def bare_stacked_knapsack(data: _Data, skip: int) -> float:
    """Microseconds per round of a stacked knapsack round's arithmetic alone."""
    A_inv = np.broadcast_to(np.eye(D), (K, D, D)).copy()
    Theta = np.zeros((K, D, 1 + M))  # action 0 is free: its consumption columns stay 0
    beta = np.ones(K)
    lo, hi = np.zeros(K), np.ones(K)
    bound = np.ones((K, M))
    bound[0] = 0.0
    prices = np.full(M, 0.1)
    weights = np.full(M + 1, 1.0 / (M + 1))
    eta_scale, eta_rate = 0.01, 0.001
    y = np.empty(1 + M)
    total = 0.0
    for t in range(data.X.shape[0]):
        x = data.X[t]
        t0 = time.process_time()
        Ax = A_inv @ x
        w = Ax @ x
        mean = x @ Theta  # (K, 1 + m)
        np.maximum(w, 0.0, out=w)
        np.sqrt(w, out=w)
        w *= beta
        r = mean[:, 0] + w
        np.minimum(r, hi, out=r)
        np.maximum(r, lo, out=r)
        c = mean[:, 1:] - w[:, None]
        np.maximum(c, 0.0, out=c)
        np.minimum(c, bound, out=c)
        a = int((r - c @ prices).argmax())
        y[0] = data.R[t, a]
        y[1:] = data.C[t] if a else 0.0
        u = Ax[a]
        gain = u * (1.0 / (1.0 + u.dot(x)))
        Theta[a] += np.multiply.outer(gain, y - mean[a])
        A_inv[a] -= np.multiply.outer(gain, u)
        factors = np.exp(y[1:] * eta_scale - eta_rate)
        weights[:-1] *= factors
        np.divide(weights, np.add.reduce(weights), out=weights)
        if t >= skip:
            total += time.process_time() - t0
    return total / (data.X.shape[0] - skip) * 1e6


def bare_separate_knapsack(data: _Data, skip: int) -> float:
    """Microseconds per round of the library's own knapsack arithmetic alone (the NumPy calls
    of ``OutcomeModels.priced_one``, ``RidgeRegression.add_one_paired`` and
    ``DualPrices.step``, without the deferred ``A += x x^T``)."""
    A_inv = np.broadcast_to(np.eye(D), (K, D, D)).copy()
    A_inv_c = A_inv[1:].copy()
    theta, b = np.zeros((K, D)), np.zeros((K, D))
    theta_c, b_c = np.zeros((K - 1, D, M)), np.zeros((K - 1, D, M))
    beta, beta_c = np.ones(K), np.ones(K - 1)
    zeros, zeros_c, zeros_3 = np.zeros(K), np.zeros(K - 1), np.zeros((1, K, M))
    lo, hi = np.zeros(K), np.ones(K)
    bound = np.ones((1, K, M))
    bound[0, 0] = 0.0
    c = np.zeros((1, K, M))
    prices = np.full(M, 0.1)
    weights = np.full(M + 1, 1.0 / (M + 1))
    eta_scale, eta_rate = np.full(M, 0.01), 0.001
    idle = np.exp(np.zeros(M) * eta_scale - eta_rate)
    total = 0.0
    for t in range(data.X.shape[0]):
        X = data.X[t : t + 1]
        t0 = time.process_time()
        x = X[0]
        Ax = A_inv @ x
        var = Ax @ x
        r = X @ theta.T
        np.maximum(var, zeros, out=var)
        np.sqrt(var, out=var)
        var *= beta
        row = r[0]
        row += var
        np.minimum(row, hi, out=row)
        np.maximum(row, lo, out=row)
        var = Ax[1:] @ x
        np.maximum(var, zeros_c, out=var)
        np.sqrt(var, out=var)
        var *= beta_c
        np.subtract(x @ theta_c, var[:, None], out=c[0, 1:])
        np.maximum(c, zeros_3, out=c)
        np.minimum(c, bound, out=c)
        scores = c @ prices
        np.subtract(r, scores, out=scores)
        a = int(scores[0].argmax())
        y = data.R[t, a]
        u = A_inv[a].dot(x)
        gain = u * (1.0 / (1.0 + 1.0 * x.dot(u)))
        theta[a] += gain * (y - x.dot(theta[a]))
        b[a] += (1.0 * y) * x
        if a:
            cost = data.C[t]
            theta_c[a - 1] += np.multiply.outer(gain, cost - x.dot(theta_c[a - 1]))
            b_c[a - 1] += np.multiply.outer(x, cost)
            A_inv[a] -= np.multiply.outer(gain, u)
            A_inv_c[a - 1] = A_inv[a]
            if np.logical_or.reduce(cost):
                weights[:-1] *= np.exp(cost * eta_scale - eta_rate)
            else:
                weights[:-1] *= idle
        else:
            A_inv[a] -= np.multiply.outer(gain, u)
            weights[:-1] *= idle
        weights /= np.add.reduce(weights)
        if t >= skip:
            total += time.process_time() - t0
    return total / (data.X.shape[0] - skip) * 1e6


def library(policy: object, data: _Data, skip: int, costed: bool) -> float:
    """Microseconds per round of a library policy, driven as bench_budget drives it."""
    zeros = np.zeros((1, M))
    total = 0.0
    for t in range(data.X.shape[0]):
        x = data.X[t : t + 1]
        t0 = time.process_time()
        d = policy.decide(x)  # type: ignore[attr-defined]
        a = d.actions
        if costed:
            c = data.C[t : t + 1] if a[0] != 0 else zeros
            policy.update(x, a, data.R[t, a], costs=c, info=d.info)  # type: ignore[attr-defined]
        else:
            policy.update(x, a, data.R[t, a])  # type: ignore[attr-defined]
        if t >= skip:
            total += time.process_time() - t0
    return total / (data.X.shape[0] - skip) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--skip", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=2000, help="random cases of part 1")
    parser.add_argument("--csv", default=None, help="write part 2's table here (CSV)")
    args = parser.parse_args()
    T, big = args.rounds, 10.0 * args.rounds
    print(
        f"1. stacked products that round differently from the separate ones ({args.trials} cases)"
    )
    for name, share in rounding(args.trials, 0).items():
        print(f"   {name:<28} {share:6.1%}")

    def knapsack() -> KnapsackBandit:
        return KnapsackBandit(
            n_actions=K,
            n_features=D,
            budget=[big] * M,
            horizon=T,
            n_resources=M,
            dual={"warmup_rounds": 100},
            seed=0,
        )

    rows = {
        "LinUCB K=10 (library)": lambda data: library(
            LinUCB(n_actions=K, n_features=D, seed=0), data, args.skip, False
        ),
        "LinUCB arithmetic alone": lambda data: bare_linucb(data, args.skip),
        "separate knapsack arithmetic alone": lambda data: bare_separate_knapsack(data, args.skip),
        "stacked knapsack arithmetic alone": lambda data: bare_stacked_knapsack(data, args.skip),
        "KnapsackBandit K=10 m=3 (library)": lambda data: library(
            knapsack(), data, args.skip, True
        ),
    }
    load_start = os.getloadavg()[0]
    times: dict[str, list[float]] = {name: [] for name in rows}
    for rep in range(args.repeats):
        data = _Data(T, rep)
        for name, run in rows.items():
            times[name].append(run(data))
    load_end = os.getloadavg()[0]
    ref = np.array(times["LinUCB K=10 (library)"])
    print(f"2. {'round':<36} {'us/round':>9} {'x LinUCB (library)':>19}")
    table = []
    for name, values in times.items():
        us = np.array(values)
        ratio = us / ref  # paired by repeat
        table.append(
            {
                "row": name,
                "us_median": float(np.median(us)),
                "ratio_median": float(np.median(ratio)),
                "ratio_min": float(ratio.min()),
                "ratio_max": float(ratio.max()),
                "load_start": load_start,
                "load_end": load_end,
            }
        )
        print(f"   {name:<36} {np.median(us):>9.1f} {np.median(ratio):>19.2f}")
    print(
        f"process CPU time, median of {args.repeats} repeats of {T} rounds ({args.skip} "
        f"skipped); 1-min load average {load_start:.1f} at the start, {load_end:.1f} at the end"
    )
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)


if __name__ == "__main__":
    main()
