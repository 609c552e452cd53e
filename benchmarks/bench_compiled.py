"""Would a compiled extension pay? Numba kernels of one online round against scarce and the
NumPy reference, in one process (issue 18: "a compiled extension only if it pays at least
2x on these figures and installs from the registry as a wheel").

Run ``PYTHONPATH=src:/path/to/numba python benchmarks/bench_compiled.py [--rounds N]
[--budget-rounds N] [--repeats R] [--csv PATH]`` (numba is not a dependency of scarce:
install it anywhere on the path, e.g. ``pip install --target /tmp/numba_pkgs numba``).

What it times, per round (``decide`` on one ``(1, d)`` context, then ``update`` with its
outcome; each call timed with ``time.perf_counter``, as ``bench_core`` and ``bench_budget``
do), after a warm-up that includes numba's compilation (reported apart, ``compile_s``):

* online LinUCB and LinTS at ``d = 20, K = 10`` and ``d = 50, K = 100`` on
  ``bench_core``'s problem, four ways: ``scarce`` (``LinUCB`` / ``LinTS`` through
  ``decide`` / ``update``, ``core_runners.ScarceRunner``), ``numpy`` (the theta-caching
  reference, ``core_runners.NumpyRunner``), ``numba+checks`` (:class:`NumbaLinear`: the
  library's state and arithmetic in loops, with the library's fast-path input checks) and
  ``numba kernel`` (the same without the checks); the first 100 rounds are not timed;
* ``KnapsackBandit`` (``K = 10``, 3 resources) and ``Deferral`` (linear, full feedback) on
  ``bench_budget``'s problem: the library against :class:`NumbaKnapsack` (with and without
  the checks), each from the library's state after ``--skip`` rounds (the warm-up and ``Z``
  are the library's), and LinUCB (``K = 10`` / ``K = 2``) of the library and of numba on
  the same problem for the budgeted-to-LinUCB ratios.

Within each repeat every variant runs the same rounds in turn (the order rotating between
repeats); the ratios are paired by repeat and the table gives their median. Agreement:
each variant keeps its own state on the same contexts and rewards; ``decisions_differ``
counts the rounds (all of them, online; the timed ones, budgeted) whose action differs
from the library's, ``repeats_differ`` the repeats with any, ``first_differ`` the earliest
such round and ``tie_gap_rel`` (online) the gap ``|s[a] - s[b]| / |s[a]|`` between the
library's scores of its choice ``a`` and the other's ``b`` at the first differing round
of a repeat (the largest over the repeats; from a replay of the library): 0 or about
``1e-16`` means a tie in exact arithmetic that rounding broke differently. Once a
decision differs the states part, so later decisions and the final states differ by more
than rounding. The ``*_max_abs`` / ``*_max_rel`` columns compare the final ``theta`` and
``A^{-1}`` (``max |a - b|`` and that over ``max |b|``, the library's array being ``b``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

CLOCK = time.perf_counter
WARMUP = 100  # untimed rounds at the start of an online run (bench_core's WARMUP_ROUNDS)
D_BUDGET = 20  # bench_budget's d


def _diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``max |a - b|`` and that over ``max |b|``."""
    gap = float(np.max(np.abs(a - b)))
    return gap, gap / float(np.max(np.abs(b)))


class _Run:
    """One variant's timed rounds: microseconds per round and the actions chosen."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.rounds = 0
        self.actions: list[int] = []

    @property
    def us(self) -> float:
        return self.seconds / self.rounds * 1e6


def _online(runner: Any, contexts: np.ndarray, rewards: np.ndarray, skip: int = WARMUP) -> _Run:
    """``bench_core.run_online``'s loop (decide, reward, update; the calls timed after the
    first ``skip`` rounds)."""
    run = _Run()
    clock = CLOCK
    for t in range(contexts.shape[0]):
        x = contexts[t : t + 1]
        t0 = clock()
        a = runner.decide(x)
        t1 = clock()
        r = float(rewards[t, a])
        t2 = clock()
        runner.update(x, a, r)
        t3 = clock()
        if t >= skip:
            run.seconds += (t1 - t0) + (t3 - t2)
            run.rounds += 1
        run.actions.append(a)
    return run


class _NumbaRunner:
    """:class:`compiled_runners.NumbaLinear` behind ``core_runners.Runner``'s calls; with
    ``api`` driven as ``ScarceRunner`` drives the library (a ``Decision`` back, the
    feedback as one-element lists)."""

    def __init__(
        self, ck: Any, algorithm: str, d: int, K: int, settings: Any, checks: bool, api: bool
    ):
        self.ck, self.algorithm, self.d, self.K = ck, algorithm, d, K
        self.settings, self.checks, self.api = settings, checks, api

    def reset(self, seed: int) -> None:
        s = self.settings
        width = s.alpha if self.algorithm == "LinUCB" else s.v
        self.policy = self.ck.NumbaLinear(
            self.algorithm, self.d, self.K, width, s.lam, seed, self.checks, self.api
        )
        if self.api:
            self.decide = self._decide_api
            self.update = self._update_api

    def decide(self, x: np.ndarray) -> int:
        return self.policy.decide(x)

    def update(self, x: np.ndarray, action: int, reward: float) -> None:
        self.policy.update(x, action, reward)

    def _decide_api(self, x: np.ndarray) -> int:
        return int(self.policy.decide(x).actions[0])

    def _update_api(self, x: np.ndarray, action: int, reward: float) -> None:
        self.policy.update(x, [action], [reward])


def _compile_times(ck: Any) -> dict[str, float]:
    """Seconds of the first decide + update of each kernel family (numba compiles then)."""
    out = {}
    x = np.full((1, 4), 0.1)
    for alg in ("LinUCB", "LinTS"):
        pol = ck.NumbaLinear(alg, 4, 3, 1.0, 1.0, 0, True)
        t0 = CLOCK()
        a = pol.decide(x)
        pol.update(x, a, 0.5)
        out[alg] = CLOCK() - t0
    return out


def linear_rows(ck: Any, args: argparse.Namespace, compile_s: dict[str, float]) -> list[dict]:
    """The online LinUCB / LinTS figures."""
    from bench_core import Problem
    from core_runners import NumpyRunner, ScarceRunner, Settings

    settings = Settings()
    rows = []
    for d, K in ((20, 10), (50, 100)):
        for alg in ("LinUCB", "LinTS"):
            variants: dict[str, Callable[[], Any]] = {
                "scarce": partial(ScarceRunner, alg, d, K, settings),
                "numpy": partial(NumpyRunner, alg, d, K, settings),
                "numba+api": partial(_NumbaRunner, ck, alg, d, K, settings, True, True),
                "numba+checks": partial(_NumbaRunner, ck, alg, d, K, settings, True, False),
                "numba kernel": partial(_NumbaRunner, ck, alg, d, K, settings, False, False),
            }
            names = list(variants)
            us = {name: [] for name in names}
            agree: dict[str, list] = {name: [] for name in names}
            for rep in range(args.repeats):
                problem = Problem.generate(d, K, args.rounds, rep)
                order = names[rep % len(names) :] + names[: rep % len(names)]
                runs, runners = {}, {}
                for name in order:
                    runner = variants[name]()
                    runner.reset(rep)
                    runs[name] = _online(runner, problem.contexts, problem.rewards)
                    runners[name] = runner
                    us[name].append(runs[name].us)
                lib = runners["scarce"].policy.model_
                for name in names:
                    if name == "scarce":
                        continue
                    first, differ = _first_differ(runs[name].actions, runs["scarce"].actions)
                    gap = np.nan
                    if differ:  # how close the library's own scores were there
                        other = runs[name].actions[first]
                        gap = _library_gap(alg, d, K, settings, problem, rep, first, other)
                    r = runners[name]
                    theta = r.theta if name == "numpy" else r.policy.theta
                    A_inv = r.A_inv if name == "numpy" else r.policy.A_inv
                    agree[name].append(
                        (differ, first, gap, *_diff(theta, lib.theta), *_diff(A_inv, lib.A_inv))
                    )
            ref_np, ref_lib = np.array(us["numpy"]), np.array(us["scarce"])
            for name in names:
                t = np.array(us[name])
                row = _row(f"{alg} d={d} K={K}", name, d, K, 1, args.rounds, args.rounds - WARMUP)
                row.update(us_median=float(np.median(t)), us_min=float(t.min()))
                row["x_numpy"] = float(np.median(t / ref_np))
                row["x_scarce"] = float(np.median(t / ref_lib))
                if agree[name]:
                    _agreement(row, agree[name])
                if name.startswith("numba"):
                    row["compile_s"] = compile_s[alg]
                rows.append(row)
    return rows


def _first_differ(actions: list[int], reference: list[int]) -> tuple[int, int]:
    """The first round whose action differs (-1: none) and how many differ."""
    differ = np.flatnonzero(np.array(actions) != np.array(reference))
    return (int(differ[0]) if differ.size else -1), int(differ.size)


def _library_gap(
    alg: str, d: int, K: int, settings: Any, problem: Any, seed: int, t: int, other: int
) -> float:
    """Replays the library to round ``t`` and returns ``|s[a] - s[other]| / |s[a]|`` for its
    scores ``s`` there, ``a`` its choice: 0 or a few ulps when the two actions were tied but
    for rounding."""
    from core_runners import ScarceRunner

    runner = ScarceRunner(alg, d, K, settings)
    runner.reset(seed)
    for i in range(t):
        x = problem.contexts[i : i + 1]
        a = runner.decide(x)
        runner.update(x, a, float(problem.rewards[i, a]))
    decision = runner.policy.decide(problem.contexts[t : t + 1])
    s, a = decision.scores[0], int(decision.actions[0])
    return float(abs(s[a] - s[other]) / abs(s[a]))


def _agreement(row: dict, agree: list[tuple]) -> None:
    """The agreement columns of ``row`` from one tuple per repeat: rounds that differ,
    the first of them, the library's score gap there, then the state differences."""
    a = np.array(agree, dtype=float)
    row["decisions_differ"] = int(a[:, 0].sum())
    row["repeats_differ"] = int(np.sum(a[:, 0] > 0))
    firsts = a[a[:, 1] >= 0, 1]
    row["first_differ"] = int(firsts.min()) if firsts.size else ""
    gaps = a[a[:, 0] > 0, 2]
    row["tie_gap_rel"] = float(np.nanmax(gaps)) if gaps.size and not np.isnan(gaps).all() else ""
    keys = ("theta_max_abs", "theta_max_rel", "A_inv_max_abs", "A_inv_max_rel")
    for i, key in enumerate(keys):
        row[key] = float(a[:, i + 3].max())
    if a.shape[1] > 7:
        row["cost_theta_max_rel"] = float(a[:, 8].max())


def products_rows(ck: Any, args: argparse.Namespace) -> list[dict]:
    """The floor of a linear round: the products ``A_k^{-1} x`` of all ``K`` actions alone,
    NumPy's stacked ``A_inv @ x`` against the kernels' loop (best of the repeats)."""
    rows = []
    for d, K in ((20, 10), (50, 100)):
        rng = np.random.default_rng(0)
        B = rng.standard_normal((K, d, d)) / d
        A_inv = np.ascontiguousarray(np.eye(d) + B @ B.transpose(0, 2, 1))
        zeros = np.zeros((K, d))
        S = ck.pack_ridge(A_inv, A_inv, zeros, zeros)
        X = rng.standard_normal((1, d))
        Z = np.zeros((K, d))
        x = X[0]
        calls = {
            "numpy": partial(np.matmul, A_inv, x),
            "numba kernel": partial(ck.all_products, S, X, Z),
        }
        n = max(200, 200_000 // (K * d))
        for name, call in calls.items():
            call()
            best = np.inf
            for _ in range(args.repeats):
                t0 = CLOCK()
                for _ in range(n):
                    call()
                best = min(best, (CLOCK() - t0) / n * 1e6)
            row = _row(f"A_inv @ x only d={d} K={K}", name, d, K, 1, n, n)
            row.update(us_median="", us_min=best)
            rows.append(row)
    return rows


def _row(figure: str, variant: str, d: int, K: int, m: int, rounds: int, timed: int) -> dict:
    keys = (
        "us_median us_min x_numpy x_scarce x_linucb_scarce x_linucb_numba decisions_differ "
        "repeats_differ first_differ tie_gap_rel theta_max_abs theta_max_rel A_inv_max_abs A_inv_max_rel compile_s"
    ).split()
    row: dict[str, Any] = {"figure": figure, "variant": variant, "d": d, "K": K, "m": m}
    row.update(rounds=rounds, timed_rounds=timed)
    row.update({k: "" for k in keys})
    return row


# ------------------------------------------------------------------------- budgeted


def _budget_problem(K: int, m: int, rounds: int, seed: int) -> tuple[np.ndarray, ...]:
    """``bench_budget``'s draws: contexts, every action's reward, every resource's cost."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (rounds, D_BUDGET)) / D_BUDGET
    R = rng.uniform(0, 1, (rounds, K))
    C = rng.uniform(0, 1, (rounds, m))
    return X, R, C


def _budgeted_library(pol: Any, X, R, C, start: int, stop: int, deferral: bool) -> _Run:
    """``bench_budget._time_rounds``'s loop on rounds ``[start, stop)`` (all timed)."""
    run = _Run()
    m = C.shape[1]
    zeros = np.zeros((1, m))
    clock = CLOCK
    for t in range(start, stop):
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
        else:
            c = C[t : t + 1] if a[0] != 0 else zeros
            t2 = clock()
            pol.update(x, a, r, costs=c, info=d.info)
        t3 = clock()
        run.seconds += (t1 - t0) + (t3 - t2)
        run.rounds += 1
        run.actions.append(int(a[0]))
    return run


def _budgeted_numba(nk: Any, X, R, C, start: int, stop: int, deferral: bool) -> _Run:
    """The same rounds on :class:`compiled_runners.NumbaKnapsack`."""
    run = _Run()
    m = C.shape[1]
    zeros = np.zeros((1, m))
    clock = CLOCK
    for t in range(start, stop):
        x = X[t : t + 1]
        t0 = clock()
        a = nk.decide(x)
        t1 = clock()
        r = float(R[t, a])
        if deferral:
            c = C[t : t + 1, :1] if a == 1 else zeros
        else:
            c = C[t : t + 1] if a != 0 else zeros
        mr = float(R[t, 0])
        t2 = clock()
        nk.update(x, a, r, c, mr)
        t3 = clock()
        run.seconds += (t1 - t0) + (t3 - t2)
        run.rounds += 1
        run.actions.append(a)
    return run


def _linucb_library(K: int, X, R, skip: int) -> _Run:
    from scarce.policies import LinUCB

    pol = LinUCB(n_actions=K, n_features=D_BUDGET, seed=0)
    run = _Run()
    clock = CLOCK
    for t in range(X.shape[0]):
        x = X[t : t + 1]
        t0 = clock()
        a = pol.decide(x).actions
        t1 = clock()
        r = R[t, a]
        t2 = clock()
        pol.update(x, a, r)
        t3 = clock()
        if t >= skip:
            run.seconds += (t1 - t0) + (t3 - t2)
            run.rounds += 1
    return run


def _linucb_numba(ck: Any, K: int, X, R, skip: int) -> _Run:
    return _online(ck.NumbaLinear("LinUCB", D_BUDGET, K, 1.0, 1.0, 0, True), X, R, skip)


def _library_state(pol: Any) -> dict[str, np.ndarray]:
    models = pol.models_
    rs = models.reward_groups[0][2].model.get_state()
    cs = models.cost_groups[0][2].model.get_state()
    return {"A_inv": rs["A_inv"], "theta": rs["theta"], "cost_theta": cs["theta"]}


def budget_rows(ck: Any, args: argparse.Namespace) -> list[dict]:
    """The KnapsackBandit and Deferral figures."""
    from scarce.budget import Deferral, KnapsackBandit

    T, skip = args.budget_rounds, args.skip
    big = 10.0 * T
    dual = {"warmup_rounds": 100}
    figures = {
        "KnapsackBandit K=10 m=3": (10, 3, False),
        "Deferral (linear)": (2, 1, True),
    }
    rows = []
    compile_s = None
    for figure, (K, m, deferral) in figures.items():
        names = [
            "scarce", "numba+api", "numba+checks", "numba kernel", "LinUCB scarce", "LinUCB numba"
        ]  # fmt: skip
        us: dict[str, list[float]] = {n: [] for n in names}
        agree: dict[str, list] = {n: [] for n in names[1:4]}
        for rep in range(args.repeats):
            X, R, C = _budget_problem(K, m, T, rep)
            if deferral:
                pol = Deferral(n_features=D_BUDGET, budget=big, horizon=T, dual=dual, seed=0)
            else:
                pol = KnapsackBandit(
                    n_actions=K, n_features=D_BUDGET, budget=[big] * m, horizon=T,
                    n_resources=m, dual=dual, seed=0,
                )  # fmt: skip
            _budgeted_library(pol, X, R, C, 0, skip, deferral)  # warm-up, Z, start-up
            kernels = {
                "numba+api": ck.NumbaKnapsackAPI(pol, deferral),
                "numba+checks": ck.NumbaKnapsack(pol, True, deferral),
                "numba kernel": ck.NumbaKnapsack(pol, False, deferral),
            }
            if compile_s is None:  # numba compiles on the first round
                probe = ck.NumbaKnapsack(pol, True, deferral)
                t0 = CLOCK()
                _budgeted_numba(probe, X, R, C, skip, skip + 1, deferral)
                compile_s = CLOCK() - t0
            segments: dict[str, Callable[[], _Run]] = {
                "scarce": partial(_budgeted_library, pol, X, R, C, skip, T, deferral),
                "LinUCB scarce": partial(_linucb_library, K, X, R, skip),
                "LinUCB numba": partial(_linucb_numba, ck, K, X, R, skip),
            }
            for n, nk in kernels.items():
                loop = _budgeted_library if n == "numba+api" else _budgeted_numba
                segments[n] = partial(loop, nk, X, R, C, skip, T, deferral)
            order = names[rep % len(names) :] + names[: rep % len(names)]
            runs = {}
            for n in order:
                runs[n] = segments[n]()
                us[n].append(runs[n].us)
            lib = _library_state(pol)
            for n, nk in kernels.items():
                first, differ = _first_differ(runs[n].actions, runs["scarce"].actions)
                d = nk.d
                agree[n].append(
                    (
                        differ,
                        first,
                        np.nan,  # (the budgeted score gap is not replayed)
                        *_diff(nk.RS[:, 2 * d], lib["theta"]),
                        *_diff(nk.RS[:, :d], lib["A_inv"]),
                        *_diff(nk.CT[:, 0], lib["cost_theta"]),
                    )
                )
        lin_lib, lin_nb = np.array(us["LinUCB scarce"]), np.array(us["LinUCB numba"])
        ref_lib = np.array(us["scarce"])
        for n in names:
            t = np.array(us[n])
            label = figure if not n.startswith("LinUCB") else f"{figure}: LinUCB K={K}"
            variant = n.replace("LinUCB ", "")
            row = _row(label, variant, D_BUDGET, K, m, T, T - skip)
            row.update(us_median=float(np.median(t)), us_min=float(t.min()))
            row["x_scarce"] = float(np.median(t / (lin_lib if n.startswith("LinUCB") else ref_lib)))
            row["x_linucb_scarce"] = float(np.median(t / lin_lib))
            row["x_linucb_numba"] = float(np.median(t / lin_nb))
            if n in agree:
                _agreement(row, agree[n])
                row["compile_s"] = compile_s
            rows.append(row)
    return rows


def _print(rows: list[dict]) -> None:
    def f(v: Any, spec: str) -> str:
        return "" if v == "" or v is None else format(v, spec)

    print(
        f"{'figure':<36} {'variant':<13} {'us/round':>9} {'best':>7} {'x numpy':>8} "
        f"{'x scarce':>9} {'x LinUCB':>9} {'x nbLinUCB':>10} {'differ':>6} {'first':>5} "
        f"{'tie gap':>7} "
        f"{'theta rel':>9} {'A_inv rel':>9}"
    )
    for r in rows:
        print(
            f"{r['figure']:<36} {r['variant']:<13} {f(r['us_median'], '.2f'):>9} "
            f"{f(r['us_min'], '.2f'):>7} {f(r['x_numpy'], '.2f'):>8} {f(r['x_scarce'], '.3f'):>9} "
            f"{f(r['x_linucb_scarce'], '.2f'):>9} {f(r['x_linucb_numba'], '.2f'):>10} "
            f"{f(r['decisions_differ'], 'd'):>6} {f(r['first_differ'], 'd'):>5} "
            f"{f(r['tie_gap_rel'], '.0e'):>7} {f(r['theta_max_rel'], '.1e'):>9} "
            f"{f(r['A_inv_max_rel'], '.1e'):>9}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="online rounds (LinUCB/LinTS)")
    parser.add_argument("--budget-rounds", type=int, default=3000, help="budgeted rounds")
    parser.add_argument("--skip", type=int, default=500, help="untimed budgeted rounds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("linear", "budget"), default=None)
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="cpu: the process's CPU time"
    )
    parser.add_argument("--csv", default=None, help="write the table here (CSV)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if importlib.util.find_spec("numba") is None:
        sys.exit("bench_compiled needs numba (not a scarce dependency): pip install numba")
    t0 = CLOCK()
    import compiled_runners as ck  # (imports numba)

    import_s = CLOCK() - t0
    compile_s = _compile_times(ck)
    load_start = os.getloadavg()[0]
    rows = [] if args.only == "budget" else linear_rows(ck, args, compile_s)
    if args.only is None:
        rows += products_rows(ck, args)
    if args.only != "linear":
        rows += budget_rows(ck, args)
    load_end = os.getloadavg()[0]
    _print(rows)
    budget_compile = next((r["compile_s"] for r in rows if r["m"] > 1 and r["compile_s"]), None)
    versions = {p: importlib.metadata.version(p) for p in ("numba", "llvmlite", "numpy")}
    print(
        f"{args.clock} clock, median (best) of {args.repeats} repeats; ratios paired by repeat. "
        f"{versions}; import numba {import_s:.2f} s; first decide + update (compilation) "
        + ", ".join(f"{k} {v:.2f} s" for k, v in compile_s.items())
        + (f", KnapsackBandit {budget_compile:.2f} s" if budget_compile else "")
        + f"; load average {load_start:.1f} -> {load_end:.1f}, {os.cpu_count()} CPUs"
    )
    if args.csv:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys + ["clock", "load_start", "load_end"])
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {**r, "clock": args.clock, "load_start": load_start, "load_end": load_end}
                )


if __name__ == "__main__":
    main()
