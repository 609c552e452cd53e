"""Semi-synthetic simulators on bundled data, and the registered experiments."""

import numpy as np
import pandas as pd
import pytest

from scarce.fair import fitted_effects, jobs_env, star_env
from scarce.fair.experiments import POLICY_NAMES, run_fair_experiment
from scarce.sim import SUMMARY_COLUMNS
from scarce.sim.experiments import EXPERIMENTS, load_capability_experiments


@pytest.mark.data
def test_star_env(no_network):
    env = star_env("type1", seed=0)
    pop = env.population
    assert pop.X.shape == (5741, 10)
    assert pop.group_names == ("cauc/non-free", "cauc/free", "afam/non-free", "afam/free")
    np.testing.assert_array_equal(np.bincount(pop.groups), [2608, 1281, 352, 1500])
    assert len(pop.cohorts) == 8 and env.resources.names == ("small-class", "aide")
    assert env.resources.kernels[0].support == 8
    assert np.all(np.isfinite(env.effects)) and env.effects.std(axis=0).min() > 0.1
    # small classes help on average (the STAR finding), in outcome-SD units
    assert 0.05 < env.effects[:, 0].mean() < 0.5
    assert star_env("type2", seed=0).resources.kernels[0].support == 24


@pytest.mark.data
def test_jobs_env(no_network):
    env = jobs_env("instant", n_individuals=1500, seed=0)
    pop = env.population
    assert 1400 <= pop.X.shape[0] <= 1700 and pop.X.shape[1] == 10
    assert pop.group_names == ("black", "hispanic", "other")
    assert env.effects.shape[1] == 2 and env.resources.names == ("training", "counselling")
    assert set(np.unique(pop.groups)) == {0, 1, 2}
    one = jobs_env("instant", n_individuals=1500, second_resource=False, seed=0)
    assert one.effects.shape[1] == 1


def test_fitted_effects_recover_a_known_interaction():
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 2))
    t = rng.integers(-1, 1, n)  # -1 none, 0 treated
    tau = 0.5 + 0.8 * X[:, 0]
    y = X @ [1.0, -1.0] + (t == 0) * tau + rng.normal(0, 0.1, n)
    eff = fitted_effects(X, t, y, 1, heterogeneity=1.0)[:, 0]
    np.testing.assert_allclose(eff * y.std(), tau, atol=0.05)
    tripled = fitted_effects(X, t, y, 1, heterogeneity=3.0)[:, 0]
    assert tripled.std() == pytest.approx(3 * eff.std(), rel=1e-9)
    assert tripled.mean() == pytest.approx(eff.mean(), rel=1e-9)


def test_experiments_registered():
    load_capability_experiments()
    assert "metacub-star" in EXPERIMENTS and "metacub-jobs" in EXPERIMENTS


def test_experiment_outputs_contract(tmp_path):
    summary, paths = run_fair_experiment(
        "fair-test",
        "synthetic",
        out=tmp_path,
        horizon=16,
        seeds=2,
        n_jobs=1,
        policies=("MetaCUB", "LinUCB-delay-agnostic", "Random", "Oracle", "FairOracle"),
    )
    written = pd.read_csv(paths["summary"])
    assert tuple(written.columns) == SUMMARY_COLUMNS
    assert set(written["env"]) == {"synthetic-instant", "synthetic-type1", "synthetic-type2"}
    metrics = set(written["metric"])
    for m in (
        "cumulative_outcome",
        "fairness_ratio_min",
        "fairness_ratio_max",
        "disparity",
        "regret",
        "fair_regret",
    ):
        assert m in metrics
    oracle = written[(written.policy == "Oracle") & (written.metric == "regret")]
    assert np.allclose(oracle["value"], 0.0)
    reg = written[(written.metric == "regret")]
    assert (reg["value"] >= -1e-9).all()
    traces = pd.read_parquet(paths["traces"])
    assert len(traces) == 3 * 5 * 2 * 16
    assert paths["regret"].stat().st_size > 0 and paths["fairness_plot"].stat().st_size > 0
    assert set(POLICY_NAMES) >= set(written["policy"])
