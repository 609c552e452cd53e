"""Core speed and regret benchmark: scarce's LinUCB and LinTS against a plain NumPy
reference, Vowpal Wabbit and MABWiser.

Run ``python benchmarks/bench_core.py [--quick]``. It prints one table and writes it as CSV to
``benchmarks/results/core.csv``. See ``benchmarks/README.md`` for what each column means.

Every library is driven through the same small runner interface
(:class:`core_runners.Runner`) on the same synthetic linear-Gaussian problems (same seeds,
same contexts, same reward noise), so the online timings and regrets are measured by one loop
(:func:`run_online`) for all of them. Peers that cannot be imported are reported as "not
installed". The ratio columns divide scarce's figures by the NumPy reference's from the same
run (the issue-18 targets: online at most 1.0x, batched LinUCB at least 1.5x).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from core_runners import NOISE_SD, RUNNERS, Runner, Settings, VWRunner

#: the clock of every timing: wall time, or the process's CPU time (``--clock cpu``: steadier
#: on a loaded machine, where waiting for a core inflates wall time)
CLOCK: Callable[[], float] = time.perf_counter
ALGORITHMS = ("LinUCB", "LinTS")
WARMUP_ROUNDS = 100  # rounds at the start of every online run left out of the timings
RESULTS_CSV = Path(__file__).resolve().parent / "results" / "core.csv"


# ---------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Config:
    """One problem size and how long to run it."""

    d: int
    K: int
    rounds: int  # online rounds per seed (the regret horizon, the same for every library)
    batch: int  # contexts in one batched ``decide`` call


FULL_CONFIGS = (
    Config(d=20, K=10, rounds=2000, batch=100_000),
    Config(d=50, K=100, rounds=1000, batch=10_000),
)
QUICK_CONFIGS = (
    Config(d=20, K=10, rounds=500, batch=20_000),
    Config(d=50, K=100, rounds=200, batch=2_000),
)


# ---------------------------------------------------------------------------------- problem
@dataclass(frozen=True)
class Problem:
    """A synthetic linear-Gaussian bandit, fully drawn up front (common random numbers).

    Action ``k`` has mean reward ``theta[k] @ x``; rows of ``theta`` have unit norm, contexts
    are ``N(0, I) / sqrt(d)`` and every (round, action) pair has its own ``N(0, 0.1^2)``
    noise, so a library's reward for an action does not depend on which library asks.
    """

    theta: np.ndarray  # (K, d)
    contexts: np.ndarray  # (T, d)
    means: np.ndarray  # (T, K) expected rewards
    rewards: np.ndarray  # (T, K) realised rewards

    @classmethod
    def generate(cls, d: int, K: int, rounds: int, seed: int) -> Problem:
        rng = np.random.default_rng(seed)
        theta = rng.standard_normal((K, d))
        theta /= np.linalg.norm(theta, axis=1, keepdims=True)
        contexts = rng.standard_normal((rounds, d)) / np.sqrt(d)
        means = contexts @ theta.T
        rewards = means + NOISE_SD * rng.standard_normal((rounds, K))
        return cls(theta, contexts, means, rewards)

    def random_policy_regret(self) -> float:
        """Expected cumulative regret of choosing uniformly at random (a reference point)."""
        return float(np.sum(self.means.max(axis=1) - self.means.mean(axis=1)))


def batch_contexts(d: int, n: int, seed: int) -> np.ndarray:
    """``n`` fresh contexts from the problem's context distribution."""
    return np.random.default_rng([seed, 1]).standard_normal((n, d)) / np.sqrt(d)


# ---------------------------------------------------------------------------------- measuring
@dataclass
class OnlineRun:
    """One seed's online run: cumulative expected regret and timings of the timed rounds."""

    regret: float
    decide_s: float
    update_s: float
    timed_rounds: int


def run_online(
    runner: Runner, problem: Problem, seed: int, warmup: int = WARMUP_ROUNDS
) -> OnlineRun:
    """Play ``problem`` one case at a time: decide, observe the reward, update.

    Regret is the expected regret ``sum_t max_k mu_tk - mu_t,a_t`` over all rounds; the
    ``decide`` and ``update`` calls are timed with ``time.perf_counter`` after ``warmup`` rounds.
    """
    runner.reset(seed)
    contexts, rewards = problem.contexts, problem.rewards
    regrets = problem.means.max(axis=1)[:, None] - problem.means
    clock = CLOCK
    regret = decide_s = update_s = 0.0
    for t in range(contexts.shape[0]):
        x = contexts[t : t + 1]
        t0 = clock()
        a = runner.decide(x)
        t1 = clock()
        r = float(rewards[t, a])
        t2 = clock()
        runner.update(x, a, r)
        t3 = clock()
        if t >= warmup:
            decide_s += t1 - t0
            update_s += t3 - t2
        regret += regrets[t, a]
    return OnlineRun(float(regret), decide_s, update_s, max(contexts.shape[0] - warmup, 0))


def time_batch(runner: Runner, X: np.ndarray, repeats: int = 5, budget_s: float = 3.0) -> float:
    """Decisions per second of ``decide_batch`` on ``X`` (best of up to ``repeats`` calls)."""
    if runner.batch_limit is not None:
        X = X[: runner.batch_limit]
    best = float("inf")
    spent = 0.0
    for _ in range(repeats):
        t0 = CLOCK()
        actions = runner.decide_batch(X)
        elapsed = CLOCK() - t0
        if len(actions) != X.shape[0]:
            raise RuntimeError(
                f"decide_batch returned {len(actions)} actions for {X.shape[0]} cases"
            )
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget_s:
            break
    return X.shape[0] / best


@dataclass
class Result:
    """What one library measured for one algorithm and problem size."""

    library: str
    status: str = "ok"  # "ok", "not installed" or "failed: ..."
    us_per_round: float = float("nan")
    decide_us: float = float("nan")
    update_us: float = float("nan")
    decisions_per_s: float = float("nan")
    batch_size: int = 0
    regrets: list[float] = field(default_factory=list)

    @property
    def regret(self) -> float:
        return float(np.mean(self.regrets)) if self.regrets else float("nan")

    @property
    def regret_sd(self) -> float:
        return float(np.std(self.regrets, ddof=1)) if len(self.regrets) > 1 else float("nan")


def measure(
    runners: dict[str, Runner],
    config: Config,
    seeds: list[int],
    batch_repeats: int = 5,
    budget_s: float = 3.0,
) -> dict[str, Result]:
    """Every library's online runs over every seed, then its batched decision timing on its
    last model, interleaved: each seed's problem is played by every library in turn (in the
    reverse order on every other seed), and the batch calls alternate between libraries, so a
    slow spell of a shared machine lands on all of them rather than on one library's
    figures. Batch timings: the best of up to ``batch_repeats`` calls, fewer once a library
    has spent ``budget_s`` seconds in them. A library that raises is reported as failed and
    left out of later steps."""
    results = {label: Result(label) for label in runners}
    spent = {label: [0.0, 0.0, 0] for label in runners}  # decide s, update s, timed rounds
    live = list(runners)

    def attempt(label: str, step: Callable[..., Any], *args: Any) -> Any:
        """``step(*args)``, or None after marking ``label`` failed."""
        try:
            return step(*args)
        except Exception as exc:  # noqa: BLE001 - a failing peer must not stop the run
            results[label] = Result(label, status=f"failed: {type(exc).__name__}: {exc}")
            live.remove(label)
            print(f"{label} {config.d=} {config.K=} failed: {exc!r}", file=sys.stderr)
            return None

    def online(label: str, problem: Problem, seed: int) -> None:
        run = run_online(runners[label], problem, seed)
        results[label].regrets.append(run.regret)
        total = spent[label]
        total[0], total[1], total[2] = (
            total[0] + run.decide_s,
            total[1] + run.update_s,
            total[2] + run.timed_rounds,
        )

    for i, seed in enumerate(seeds):
        problem = Problem.generate(config.d, config.K, config.rounds, seed)
        for label in live[:: 1 if i % 2 == 0 else -1]:
            attempt(label, online, label, problem, seed)
    X = batch_contexts(config.d, config.batch, seeds[-1])
    size = {label: min(config.batch, runners[label].batch_limit or config.batch) for label in live}
    best = {label: 0.0 for label in live}  # the best rate so far
    used = {label: 0.0 for label in live}  # seconds of batch calls so far
    for rep in range(batch_repeats):
        for label in live[:: 1 if rep % 2 == 0 else -1]:
            if used[label] > budget_s:  # slow peers: fewer repeats
                continue
            rate = attempt(label, time_batch, runners[label], X, 1)
            if rate is not None:
                best[label] = max(best[label], rate)
                used[label] += size[label] / rate
    for label in live:
        result, (decide_s, update_s, timed) = results[label], spent[label]
        if timed:
            result.decide_us = 1e6 * decide_s / timed
            result.update_us = 1e6 * update_s / timed
            result.us_per_round = result.decide_us + result.update_us
        result.batch_size = size[label]
        result.decisions_per_s = best[label]
    return results


# ---------------------------------------------------------------------------------- reporting
@dataclass
class Row:
    """One table row: an algorithm at one problem size, with every library's result."""

    algorithm: str
    config: Config
    results: dict[str, Result]

    def _pair(self, peer: str, ours: str = "scarce") -> tuple[Result, Result] | None:
        ours, other = self.results.get(ours), self.results.get(peer)
        if ours is None or other is None or ours.status != "ok" or other.status != "ok":
            return None
        return ours, other

    def ratio(self) -> float:
        """scarce's mean regret over MABWiser's (same algorithm, same settings)."""
        pair = self._pair("MABWiser")
        return float("nan") if pair is None else pair[0].regret / pair[1].regret

    def online_ratio(self, ours: str = "scarce") -> float:
        """scarce's µs per round over the NumPy reference's (target: at most 1.0);
        ``ours="scarce+numba"``: the compiled backend's."""
        pair = self._pair("numpy", ours)
        return float("nan") if pair is None else pair[0].us_per_round / pair[1].us_per_round

    def batch_ratio(self) -> float:
        """scarce's batched decisions/s over the NumPy reference's (LinUCB target: >= 1.5)."""
        pair = self._pair("numpy")
        return float("nan") if pair is None else pair[0].decisions_per_s / pair[1].decisions_per_s


def _fmt(value: float, kind: str) -> str:
    if not np.isfinite(value):
        return "-"
    if kind == "us":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{value:.3f}"
    return f"{value:,.1f}"


COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (library, metric, header)
    ("scarce", "us", "scarce\nµs/round"),
    ("scarce+numba", "us", "scarce+numba\nµs/round"),
    ("numpy", "us", "numpy\nµs/round"),
    ("VW", "us", "VW\nµs/round"),
    ("MABWiser", "us", "MABWiser\nµs/round"),
    ("scarce", "rate", "scarce\ndecisions/s"),
    ("numpy", "rate", "numpy\ndecisions/s"),
    ("VW", "rate", "VW\ndecisions/s"),
    ("MABWiser", "rate", "MABWiser\ndecisions/s"),
    ("scarce", "regret", "scarce\nregret"),
    ("scarce+numba", "regret", "scarce+numba\nregret"),
    ("numpy", "regret", "numpy\nregret"),
    ("VW", "regret", "VW\nregret"),
    ("MABWiser", "regret", "MABWiser\nregret"),
)


def _cell(result: Result | None, metric: str) -> str:
    if result is None:
        return "-"
    if result.status != "ok":
        return result.status if result.status == "not installed" else "failed"
    if metric == "us":
        return _fmt(result.us_per_round, "us")
    if metric == "rate":
        return _fmt(result.decisions_per_s, "rate")
    sd = f" ± {result.regret_sd:.1f}" if np.isfinite(result.regret_sd) else ""
    return _fmt(result.regret, "regret") + sd


def table_rows(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the printed table."""
    header = [
        "algorithm",
        "d",
        "K",
        "rounds × seeds",
        *(h for _, _, h in COLUMNS),
        "online\nscarce/numpy",
        "online\nscarce+numba/numpy",
        "batch\nscarce/numpy",
        "regret\nscarce/MABWiser",
    ]
    body = []
    for row in rows:
        any_result = next(iter(row.results.values()))
        seeds = len(any_result.regrets) if any_result.regrets else 0
        cells = [
            row.algorithm,
            str(row.config.d),
            str(row.config.K),
            f"{row.config.rounds} × {seeds}",
        ]
        cells += [_cell(row.results.get(lib), metric) for lib, metric, _ in COLUMNS]
        ratios = (row.online_ratio(), row.online_ratio("scarce+numba"), row.batch_ratio())
        cells += [_fmt(r, "ratio") for r in (*ratios, row.ratio())]
        body.append(cells)
    return header, body


def footnote(
    rows: list[Row],
    runners: dict[str, type[Runner]],
    settings: Settings,
    seeds: list[int],
    load_start: tuple[float, float, float],
) -> str:
    """Settings, exact peer configurations, versions and machine, under the table."""
    s = settings
    lines = [
        (
            f"Problem: theta (K, d) unit-norm rows, contexts N(0, I)/sqrt(d), reward noise sd "
            f"{NOISE_SD}; seeds {seeds} (problem and learner seed alike). µs/round: decide + "
            f"update of one (1, d) context, mean over all rounds after the first {WARMUP_ROUNDS} "
            "of every seed's run; the libraries take turns on each seed (the order reversed "
            "on every other seed). Regret: cumulative expected regret (known means), mean ± sd "
            "over seeds. decisions/s: one batched decide after the last seed's run, best of up "
            "to 5 calls (up to 3 s), the libraries taking turns."
        ),
        (
            f"Settings: LinUCB alpha={s.alpha}, lam={s.lam} (MABWiser LinUCB(alpha={s.alpha}, "
            f"l2_lambda={s.lam})); LinTS v={s.v}, lam={s.lam} (MABWiser LinTS(alpha={s.v}, "
            f"l2_lambda={s.lam}))."
        ),
    ]
    for config in sorted({r.config for r in rows}, key=lambda c: (c.d, c.K)):
        ref = np.mean(
            [
                Problem.generate(config.d, config.K, config.rounds, s).random_policy_regret()
                for s in seeds
            ]
        )
        batch_vw = min(config.batch, VWRunner.batch_limit or config.batch)
        lines.append(
            f"d={config.d}, K={config.K}: uniform-random regret {ref:,.1f}; batch of "
            f"{config.batch:,} contexts (VW: loop of predict over {batch_vw:,})."
        )
    if VWRunner.label in runners and VWRunner.available():
        for algorithm in ALGORITHMS:
            vw = VWRunner(algorithm, 1, 1, settings)
            lines.append(f"VW for {algorithm}: vw {vw.description()}")
    versions = ", ".join(
        f"{label} {cls.version() if cls.available() else 'not installed'}"
        for label, cls in runners.items()
    )
    try:
        import scarce

        where = str(Path(scarce.__file__).resolve().parent)
    except ImportError:
        where = "not installed"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info()
        )
    except ImportError:
        blas = "threadpoolctl not installed"
    clock = "process CPU time" if CLOCK is time.process_time else "wall clock"
    lines.append(f"Clock: {clock}; BLAS: {blas}; scarce from {where}.")
    lines.append(
        f"Versions: {versions}, numpy {np.__version__}, Python {platform.python_version()}; "
        f"{os.cpu_count()} CPUs, {platform.machine()}; 1-min load average {load_start[0]:.1f} "
        f"at the start, {os.getloadavg()[0]:.1f} at the end (other load inflates wall-clock "
        "timings most)."
    )
    return "\n".join(lines)


def print_table(rows: list[Row], note: str) -> None:
    header, body = table_rows(rows)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        flat = [h.replace("\n", " ") for h in header]
        widths = [max(len(c) for c in col) for col in zip(flat, *body, strict=True)]

        def line(cells: list[str]) -> str:
            first, *rest = zip(cells, widths, strict=True)
            return "  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)])

        print(line(flat))
        print(line(["-" * w for w in widths]))
        for cells in body:
            print(line(cells))
        print(note)
        return
    table = Table(title="scarce core benchmark", caption=note, caption_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for cells in body:
        table.add_row(*cells)
    Console(width=max(200, Console().width)).print(table)


def write_csv(rows: list[Row], path: Path, settings: Settings) -> None:
    """The table's numbers, unrounded, one line per (algorithm, size, library)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [
        "algorithm",
        "d",
        "K",
        "rounds",
        "seeds",
        "library",
        "status",
        "us_per_round",
        "decide_us",
        "update_us",
        "decisions_per_s",
        "batch_size",
        "regret_mean",
        "regret_sd",
        "regrets",
        "regret_ratio_scarce_over_mabwiser",
        "online_ratio_scarce_over_numpy",
        "online_ratio_scarce_numba_over_numpy",
        "batch_ratio_scarce_over_numpy",
        "clock",
        "alpha",
        "v",
        "lam",
        "config",
    ]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            for lib, res in row.results.items():
                writer.writerow(
                    {
                        "algorithm": row.algorithm,
                        "d": row.config.d,
                        "K": row.config.K,
                        "rounds": row.config.rounds,
                        "seeds": len(res.regrets),
                        "library": lib,
                        "status": res.status,
                        "us_per_round": res.us_per_round,
                        "decide_us": res.decide_us,
                        "update_us": res.update_us,
                        "decisions_per_s": res.decisions_per_s,
                        "batch_size": res.batch_size,
                        "regret_mean": res.regret,
                        "regret_sd": res.regret_sd,
                        "regrets": ";".join(f"{r:.6g}" for r in res.regrets),
                        "regret_ratio_scarce_over_mabwiser": row.ratio(),
                        "online_ratio_scarce_over_numpy": row.online_ratio(),
                        "online_ratio_scarce_numba_over_numpy": row.online_ratio("scarce+numba"),
                        "batch_ratio_scarce_over_numpy": row.batch_ratio(),
                        "clock": "cpu" if CLOCK is time.process_time else "wall",
                        "alpha": settings.alpha,
                        "v": settings.v,
                        "lam": settings.lam,
                        "config": _description(lib, row.algorithm, row.config, settings),
                    }
                )


def _description(label: str, algorithm: str, config: Config, settings: Settings) -> str:
    cls = next(c for c in RUNNERS if c.label == label)
    if not cls.available():
        return ""
    return cls(algorithm, config.d, config.K, settings).description()


# ---------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="short runs (a smoke test; figures are noisier)"
    )
    p.add_argument(
        "--seeds", type=int, default=None, help="number of seeds (default 3, 1 with --quick)"
    )
    p.add_argument(
        "--libraries",
        default="scarce,scarce+numba,numpy,VW,MABWiser",
        help="comma-separated subset of scarce,scarce+numba,numpy,VW,MABWiser",
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time with the wall clock (default) or the process's CPU time (steadier when "
        "other work shares the cores)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit BLAS to this many threads (threadpoolctl); default: as configured",
    )
    p.add_argument("--alpha", type=float, default=Settings.alpha, help="LinUCB width multiplier")
    p.add_argument("--v", type=float, default=Settings.v, help="LinTS posterior scale")
    p.add_argument("--lam", type=float, default=Settings.lam, help="ridge penalty")
    p.add_argument(
        "--csv", type=Path, default=RESULTS_CSV, help=f"CSV output (default {RESULTS_CSV})"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    global CLOCK
    args = parse_args(argv)
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.blas_threads is not None:
        import scipy.linalg  # noqa: F401 - load every BLAS the runs will use, then limit them
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    settings = Settings(alpha=args.alpha, v=args.v, lam=args.lam)
    configs = QUICK_CONFIGS if args.quick else FULL_CONFIGS
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 3)))
    wanted = {name.strip().lower() for name in args.libraries.split(",")}
    runners = {cls.label: cls for cls in RUNNERS if cls.label.lower() in wanted}
    installed = {label: cls.available() for label, cls in runners.items()}
    for label, ok in installed.items():
        if not ok:
            print(f"{label}: not installed, skipped", file=sys.stderr)

    rows = []
    load_start = os.getloadavg()
    started = time.perf_counter()
    for config in configs:
        for algorithm in ALGORITHMS:
            t0 = time.perf_counter()
            ready = {
                label: cls(algorithm, config.d, config.K, settings)
                for label, cls in runners.items()
                if installed[label]
            }
            results = {
                label: Result(label, status="not installed")
                for label in runners
                if not installed[label]
            }
            results.update(measure(ready, config, seeds))
            print(
                f"  {algorithm:6s} d={config.d:<3d} K={config.K:<4d} "
                f"{time.perf_counter() - t0:6.1f} s",
                file=sys.stderr,
            )
            results = {label: results[label] for label in runners}
            rows.append(Row(algorithm, config, results))
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print_table(rows, footnote(rows, runners, settings, seeds, load_start))
    write_csv(rows, args.csv, settings)
    print(f"wrote {args.csv}")
    return rows


if __name__ == "__main__":
    main()
