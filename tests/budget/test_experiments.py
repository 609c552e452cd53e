"""The deferral experiments run end to end through the one loop on tiny settings, return an
ExperimentResult that honours the summary contract, label seeds and honour the base seed."""

import numpy as np
import pandas as pd

from scarce.sim import SUMMARY_COLUMNS, run_seeds
from scarce.sim.experiments import load_capability_experiments, write_result


def _seeds(n, base=0):
    labels, roots = run_seeds(n, base)
    return list(zip(labels, roots, strict=True))


def test_synthetic_experiment_returns_the_contract(tmp_path):
    exp = load_capability_experiments()["deferral-synthetic"]
    result = exp.run(horizon=300, seeds=_seeds(1), n_jobs=1)
    df = result.summary
    assert list(df.columns) == ["env", "policy", "seed", "metric", "value"]
    assert {"human_better-b0.25", "complementary-b0.1", "heterogeneous-b0.25"} <= set(df["env"])
    want = {
        "Deferral",
        "Deferral-bandit",
        "OPT",
        "ModelOnly",
        "HumanOnly",
        "ArbitraryHuman",
        "BestReject",
        "StaticOPT",
    }
    assert want <= set(df["policy"])
    assert {"cumulative_reward", "ratio_to_opt", "budget_spent", "budget"} <= set(df["metric"])
    wide = df.pivot_table(index=["env", "policy", "seed"], columns="metric", values="value")
    spent = wide["budget_spent"].dropna()
    assert (spent <= wide.loc[spent.index, "budget"] + 1e-9).all()
    assert set(df["seed"]) == {0}
    assert {"reward_vs_budget", "regret_vs_T"} == set(result.figures)
    assert len(result.tables["traces"]) > 0
    summary, paths = write_result(result, exp.name, tmp_path / "s", [0])
    assert tuple(pd.read_csv(paths["summary"]).columns) == SUMMARY_COLUMNS
    assert paths["reward_vs_budget"].exists() and paths["traces"].exists()


def test_real_experiment_tiny_and_base_seed_honoured():
    exp = load_capability_experiments()["deferral-real"]
    a = exp.run(horizon=150, seeds=_seeds(1, base=0), n_jobs=1).summary
    assert {"Deferral", "OPT", "BestReject", "ModelOnly"} <= set(a["policy"])
    assert set(a["env"]) == {"digits-b0.02", "digits-b0.05", "digits-b0.1"}
    opt = a[(a.policy == "OPT") & (a.metric == "cumulative_reward")]["value"].to_numpy()
    exact = a[(a.policy == "OPT") & (a.metric == "opt_exact_01")]["value"].to_numpy()
    assert (exact <= opt + 1e-9).all()
    b = exp.run(horizon=150, seeds=_seeds(1, base=0), n_jobs=1).summary
    c = exp.run(horizon=150, seeds=_seeds(1, base=5), n_jobs=1).summary
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["value"], c["value"])  # another base seed, other runs
