"""Allocation problems on bundled data (the leakage fix, binary employment), the synthetic
groups, and the registered experiments (contract, seeds)."""

import numpy as np
import pandas as pd
import pytest

from scarce.fair import fitted_effects, groups_env, jobs_env, star_env
from scarce.fair.data import load_star, two_folds
from scarce.sim import SUMMARY_COLUMNS, run_experiment
from scarce.sim.experiments import EXPERIMENTS, get_experiment, load_capability_experiments


@pytest.mark.data
def test_star_truth_and_prior_come_from_disjoint_folds(no_network):
    env = star_env("type1", seed=0)
    pop = env.population
    assert pop.X.shape == (5741, 10)
    assert pop.group_names == ("cauc/non-free", "cauc/free", "afam/non-free", "afam/free")
    np.testing.assert_array_equal(np.bincount(pop.groups), [2608, 1281, 352, 1500])
    assert env.cohort_size == 717 and env.resources.names == ("small-class", "aide")
    assert env.resources.kernels[0].support == 8
    t, _, rows = env.observational
    # the pretraining rows are the half of every (treatment, group) stratum not used for f*
    assert 0.45 < rows.mean() < 0.55
    strata = t * 4 + pop.groups
    again = ~two_folds(strata, np.random.default_rng(0))
    np.testing.assert_array_equal(rows, again)  # the fold the truth was not fitted on
    prior = env.observational_prior()
    pred = np.concatenate([np.ones((5741, 1)), pop.X], 1) @ prior.reshape(2, 11).T
    corr = [np.corrcoef(pred[:, r], env.effects[:, r])[0, 1] for r in range(2)]
    assert max(corr) < 0.99  # was 0.996 with the prior fitted on the truth's own rows
    assert 0.05 < env.effects[:, 0].mean() < 0.5  # small classes help (the STAR finding)
    assert star_env("type2", seed=0).resources.kernels[0].support == 24


@pytest.mark.data
def test_jobs_is_binary_employment_with_disjoint_folds(no_network):
    env = jobs_env("instant", n_individuals=1500, seed=0)
    pop = env.population
    assert 1400 <= pop.X.shape[0] <= 1700 and pop.X.shape[1] == 10
    assert pop.group_names == ("black", "hispanic", "other")
    assert env.resources.names == ("training", "counselling")
    assert np.all(np.abs(env.effects) <= 1.0)  # probability points
    assert 0.0 < env.effects[:, 0].mean() < 0.3  # NSW training raised employment
    _, y, rows = env.observational
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert rows.sum() < pop.X.shape[0]  # the NSW treated of the truth's fold are held out
    assert jobs_env("instant", n_individuals=1500, second_resource=False, seed=0).n_actions == 2


def test_fitted_effects_recover_a_known_interaction():
    rng = np.random.default_rng(0)
    n = 4000
    X = rng.normal(size=(n, 2))
    t = rng.integers(-1, 1, n)
    tau = 0.5 + 0.8 * X[:, 0]
    y = X @ [1.0, -1.0] + (t == 0) * tau + rng.normal(0, 0.1, n)
    eff = fitted_effects(X, t, y, 1, heterogeneity=1.0)[:, 0]
    np.testing.assert_allclose(eff * y.std(), tau, atol=0.05)
    tripled = fitted_effects(X, t, y, 1, heterogeneity=3.0)[:, 0]
    assert tripled.std() == pytest.approx(3 * eff.std(), rel=1e-9)
    # binary outcomes: probability differences of a logistic fit
    p = 1 / (1 + np.exp(-(0.2 + 1.0 * (t == 0) * (1 + X[:, 0]))))
    yb = (rng.random(n) < p).astype(float)
    effb = fitted_effects(X, t, yb, 1, binary=True, heterogeneity=1.0)[:, 0]
    assert np.all(np.abs(effb) <= 1) and np.corrcoef(effb, X[:, 0])[0, 1] > 0.9


def test_groups_differ_more_between_than_within():
    for seed in range(3):
        env = groups_env("instant", seed=seed)
        g = env.population.groups
        means = np.array([env.effects[g == k].mean(axis=0) for k in range(4)])
        within = np.array([env.effects[g == k].std(axis=0) for k in range(4)]).mean(axis=0)
        assert np.all(means.std(axis=0) > 2 * within)
        assert env.effects.min() > 0  # every resource helps everyone, by different amounts


@pytest.mark.data
def test_star_loader_reads_the_installed_package(no_network):
    assert len(load_star()) == 5741


def test_experiments_registered_with_horizons_in_rounds():
    load_capability_experiments()
    for name in ("metacub-star", "metacub-jobs", "metacub-groups", "metacub-misspec"):
        assert name in EXPERIMENTS
    assert get_experiment("metacub-groups").horizon == 400


def test_experiment_outputs_contract_and_seeds(tmp_path):
    exp = get_experiment("metacub-misspec", horizon=9, seeds=[3, 7])
    summary, paths = run_experiment(exp, out=tmp_path / "a", n_jobs=1)
    written = pd.read_csv(paths["summary"])
    assert tuple(written.columns) == SUMMARY_COLUMNS
    assert set(written["seed"]) == {3, 7}
    assert set(written["env"]) == {"groups-type2", "groups-type2-aggregate", "groups-mixed"}
    oracle = written[(written.policy == "Oracle") & (written.metric == "regret")]
    assert np.allclose(oracle["value"], 0.0)
    assert {"cumulative_outcome", "fair_regret", "disparity", "fairness_ratio:g0:r1"} <= set(
        written["metric"]
    )
    traces = pd.read_parquet(paths["traces"])
    assert len(traces) == 3 * 7 * 2 * 9
    assert paths["cumulative_outcome"].stat().st_size > 0 and paths["fairness"].stat().st_size > 0
    # the same seeds again: the same numbers; another seed list: other numbers
    again, _ = run_experiment(exp, out=tmp_path / "b", n_jobs=1)
    pd.testing.assert_frame_equal(summary, again)
    other, _ = run_experiment(get_experiment(exp, seeds=[4]), out=tmp_path / "c", n_jobs=1)
    a = summary[(summary.seed == 3) & (summary.metric == "cumulative_outcome")]
    b = other[other.metric == "cumulative_outcome"]
    assert not np.allclose(a["value"].to_numpy(), b["value"].to_numpy())
