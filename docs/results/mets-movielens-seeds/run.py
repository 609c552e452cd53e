"""How firm is the MovieLens linear order? docs/mixed-effect-ts.md's seed tables.

    python tools/docs.py record --keep summary.csv --keep paired.csv mets-movielens-seeds \
        -- python docs/results/mets-movielens-seeds/run.py {out}
    python tools/docs.py record --keep summary.csv --keep paired.csv mets-movielens-paper \
        -- python docs/results/mets-movielens-seeds/run.py {out} paper

The registered ``mets-movielens`` (linear part, all movies, contexts from all users,
``meTS-Fa-exact`` added) on more runs. The default group: the issue's five root seeds 0-4,
20 runs (labels 0-19 from ``base_seed=1``; labels 0-4 are the registered experiment's five),
the same 20 with the authors' code's pool of 100 users per run (``user_pool=100``, the
default before), with the code's per-action contexts, and at the paper's horizon n = 5,000.
The ``paper`` group: the paper's protocol, 50 runs at n = 5,000, as the paper's text has it
(one context per round from all users), with the 100-user pool, and in the code's layout
(per-action contexts from a 100-user pool).
Writes ``summary.csv`` (the ``env`` column prefixed by the setting) and ``paired.csv``: for
each setting and each pair of neighbours in the paper's order, the paired differences over
runs (mean, standard error, paired t-test and Wilcoxon signed-rank p-values, and in how many
of the runs the first policy had the lower regret).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from scarce.structured.experiments import run_movielens

LINEAR = {
    "likelihoods": ("linear",),
    "factored_exact": True,
    "n_jobs": 1,
    "record_probabilities": False,
}
SETTINGS = {
    "issue seeds 0-4": lambda: run_movielens(seeds=[0, 1, 2, 3, 4], **LINEAR),
    "20 runs": lambda: run_movielens(seeds=20, **LINEAR),
    "20 runs, 100-user pool": lambda: run_movielens(seeds=20, user_pool=100, **LINEAR),
    "20 runs, per-action contexts": lambda: run_movielens(
        seeds=20, per_action_context=True, **LINEAR
    ),
    "20 runs, n = 5000": lambda: run_movielens(seeds=20, horizon=5000, **LINEAR),
}
PAPER = {
    "50 runs, n = 5000": lambda: run_movielens(seeds=50, horizon=5000, **LINEAR),
    "50 runs, n = 5000, 100-user pool": lambda: run_movielens(
        seeds=50, horizon=5000, user_pool=100, **LINEAR
    ),
    "50 runs, n = 5000, per-action contexts, 100-user pool": lambda: run_movielens(
        seeds=50, horizon=5000, per_action_context=True, user_pool=100, **LINEAR
    ),
}
#: (first, second): is the first one's regret lower?
PAIRS = [
    ("meTS", "meTS-Fa"),
    ("meTS", "meTS-Fa-exact"),
    ("meTS-Fa-exact", "meTS-Fa"),
    ("meTS-Fa", "HierTS"),
    ("HierTS", "LinTS"),
]


def paired(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, pair): statistics of ``second - first`` over the runs."""
    rows = []
    regret = summary[summary["metric"] == "cumulative_regret"]
    for env, frame in regret.groupby("env", sort=False):
        table = frame.pivot(index="seed", columns="policy", values="value")
        for first, second in PAIRS:
            diff = (table[second] - table[first]).to_numpy()
            n = len(diff)
            se = float(diff.std(ddof=1) / np.sqrt(n))
            rows.append(
                {
                    "setting": env,
                    "pair": f"{first} < {second}",
                    "runs": n,
                    "first": float(table[first].mean()),
                    "second": float(table[second].mean()),
                    "difference": float(diff.mean()),
                    "se": se,
                    "t_p": float(stats.ttest_rel(table[second], table[first]).pvalue),
                    "wilcoxon_p": float(stats.wilcoxon(diff).pvalue),
                    "first_lower": int(np.sum(diff > 0)),
                }
            )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    paper = sys.argv[2:] == ["paper"]
    group, experiment = (
        (PAPER, "mets-movielens-paper") if paper else (SETTINGS, "mets-movielens-seeds")
    )
    parts = []
    for name, run in group.items():
        summary = run().summary.copy()
        summary["env"] = name + ":" + summary["env"]
        summary["experiment"] = experiment
        parts.append(summary)
        print(name, "done", flush=True)
    summary = pd.concat(parts, ignore_index=True)
    summary.to_csv(out / "summary.csv", index=False)
    paired(summary).to_csv(out / "paired.csv", index=False)
