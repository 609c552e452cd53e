"""The deferral experiments run end to end on tiny settings and honour the summary contract."""

import pandas as pd

from scarce.sim.experiments import SUMMARY_COLUMNS, load_capability_experiments


def test_experiments_registered_and_write_the_contract(tmp_path):
    exps = load_capability_experiments()
    assert {"deferral-synthetic", "deferral-real"} <= set(exps)
    summary, paths = exps["deferral-synthetic"].run(
        out=tmp_path / "s", horizon=300, seeds=1, n_jobs=1
    )
    df = pd.read_csv(tmp_path / "s" / "summary.csv")
    assert tuple(df.columns) == SUMMARY_COLUMNS
    assert {"human_better-b0.25", "complementary-b0.1"} <= set(df["env"])
    want = {"Deferral", "OPT", "ModelOnly", "HumanOnly", "ArbitraryHuman", "BestReject"}
    assert want <= set(df["policy"])
    assert {"cumulative_reward", "ratio_to_opt", "budget_spent", "budget"} <= set(df["metric"])
    wide = df.pivot_table(index=["env", "policy", "seed"], columns="metric", values="value")
    assert (
        wide["budget_spent"].dropna() <= wide["budget"].loc[wide["budget_spent"].notna()] + 1e-9
    ).all()
    for key in ("traces", "reward_vs_budget", "regret_vs_T", "table"):
        assert paths[key].exists()
    assert len(pd.read_parquet(paths["traces"])) > 0


def test_real_experiment_tiny(tmp_path):
    exps = load_capability_experiments()
    summary, paths = exps["deferral-real"].run(out=tmp_path / "r", horizon=150, seeds=1, n_jobs=1)
    assert {"Deferral", "Deferral-Neural", "OPT", "BestReject"} <= set(summary["policy"])
    assert set(summary["env"]) == {"digits-b0.02", "digits-b0.05", "digits-b0.1"}
    opt = summary[(summary.policy == "OPT") & (summary.metric == "cumulative_reward")]
    exact = summary[(summary.policy == "OPT") & (summary.metric == "opt_exact_01")]
    assert (exact["value"].to_numpy() <= opt["value"].to_numpy() + 1e-9).all()
