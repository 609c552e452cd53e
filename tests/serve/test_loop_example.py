"""The production-loop example (issue 17, item 4): a real data set replayed through the HTTP
service with delayed rewards and a budget, three candidates evaluated from the logs, the best
promoted, the reward rate before and after (small sizes: the full run is ``scarce run
serve-loop``)."""

from __future__ import annotations


def test_the_loop_promotes_a_learner_and_the_reward_rate_rises(tmp_path):
    from scarce.serve.example import run_production_loop

    r = run_production_loop(n_before=200, n_after=120, seed=0, workdir=tmp_path)
    t = r.evaluation.table
    assert set(t["candidate"]) == {"linucb", "lints", "epsilon-greedy", "(logged)"}
    assert r.promoted in ("linucb", "lints", "epsilon-greedy")
    assert r.promotion["guard"]["passed"] and r.promotion["previous"] == 1
    assert set(r.rewards.loc[r.rewards["phase"] == "after", "policy_version"]) == {2}
    # uniform random on two classes is right about half the time; the promoted learner far more
    assert 0.35 < r.rate("before") < 0.65 and r.rate("after") > r.rate("before") + 0.2
    assert 0 < r.spent <= r.budget
    assert r.figure().axes  # the before/after plot


def test_serve_loop_experiment_writes_contract_outputs(tmp_path):
    from scarce.sim.experiments import SUMMARY_COLUMNS, run_experiment

    summary, paths = run_experiment("serve-loop", out=tmp_path, horizon=240, seeds=1, n_jobs=1)
    assert tuple(summary.columns) == tuple(SUMMARY_COLUMNS)
    m = summary.set_index("metric")["value"]
    assert m["reward_rate_after"] > m["reward_rate_before"]
    for name in (
        "summary.csv",
        "evaluation.parquet",
        "rewards.parquet",
        "reward_rate.png",
        "evaluation.png",
    ):
        assert (tmp_path / name).exists(), name
