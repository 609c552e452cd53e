"""The variant rows of docs/mixed-effect-ts.md's regret table (one summary.csv).

    python tools/docs.py record mets-variants -- python docs/results/mets-variants/run.py {out}

Each variant is the registered experiment with one option changed; its ``env`` column is
prefixed with the variant's name, so that all of them fit one table.
"""

import sys
from pathlib import Path

import pandas as pd

from scarce.structured.experiments import run_movielens, run_synthetic

VARIANTS = {
    "mixing-U[-1,1]": lambda: run_synthetic(likelihoods=("logistic",), logistic_mixing_high=1.0),
    "min_item_ratings=20": lambda: run_movielens(min_item_ratings=20),
    "per-action-contexts": lambda: run_synthetic(per_action_context=True, likelihoods=("linear",)),
    "F.4": lambda: run_synthetic(effect_var=1.0, action_var=3.0, likelihoods=("linear",)),
}

if __name__ == "__main__":
    out = Path(sys.argv[1])
    parts = []
    for name, run in VARIANTS.items():
        summary = run().summary.copy()
        summary["env"] = name + ":" + summary["env"]
        summary["experiment"] = "mets-variants"
        parts.append(summary)
        print(name, "done", flush=True)
    pd.concat(parts).to_csv(out / "summary.csv", index=False)
