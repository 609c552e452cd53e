"""Do scarce's LinUCB, the NumPy reference and MABWiser make the same decisions?

Run ``python benchmarks/core_agreement.py``. LinUCB is deterministic in all three, so on
``bench_core.py``'s problems (same contexts, same rewards, same settings) they should choose
the same action in every round; round-off can still part them where two actions' scores are
(nearly) tied. Each library plays its own run; the script records, per seed, the first round
at which the NumPy reference or MABWiser chose another action than scarce (empty: never), and
scarce's first twelve actions. Writes ``benchmarks/results/core_agreement.csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from bench_core import Problem
from core_runners import MABWiserRunner, NumpyRunner, ScarceRunner, Settings

RESULTS_CSV = Path(__file__).resolve().parent / "results" / "core_agreement.csv"
CONFIGS = ((20, 10, 1000), (50, 100, 300))  # (d, K, rounds)


def first_parting(d: int, K: int, rounds: int, seed: int) -> dict[str, object]:
    """One seed: the first round each peer chose differently from scarce (None: never)."""
    problem = Problem.generate(d, K, rounds, seed)
    runners = {
        label: cls("LinUCB", d, K, Settings())
        for label, cls in (
            ("scarce", ScarceRunner),
            ("numpy", NumpyRunner),
            ("MABWiser", MABWiserRunner),
        )
    }
    for runner in runners.values():
        runner.reset(seed)
    parted: dict[str, int | None] = {"numpy": None, "MABWiser": None}
    first_actions = []
    for t in range(rounds):
        x = problem.contexts[t : t + 1]
        actions = {label: runner.decide(x) for label, runner in runners.items()}
        if t < 12:
            first_actions.append(actions["scarce"])
        for label in parted:
            if parted[label] is None and actions[label] != actions["scarce"]:
                parted[label] = t
        for label, runner in runners.items():
            runner.update(x, actions[label], float(problem.rewards[t, actions[label]]))
    return {
        "d": d,
        "K": K,
        "rounds": rounds,
        "seed": seed,
        "numpy_parts_at": "" if parted["numpy"] is None else parted["numpy"],
        "mabwiser_parts_at": "" if parted["MABWiser"] is None else parted["MABWiser"],
        "scarce_first_actions": " ".join(map(str, first_actions)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=7, help="seeds per configuration (default 7)")
    p.add_argument("--label", default="", help="a label column (e.g. before / after)")
    p.add_argument(
        "--csv", type=Path, default=RESULTS_CSV, help=f"CSV output (default {RESULTS_CSV})"
    )
    args = p.parse_args(argv)
    if not MABWiserRunner.available():
        sys.exit("MABWiser is not installed: pip install -r benchmarks/requirements.txt")
    rows = []
    for d, K, rounds in CONFIGS:
        for seed in range(args.seeds):
            row = {"label": args.label, **first_parting(d, K, rounds, seed)}
            rows.append(row)
            print(row, flush=True)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
