"""The deferral environments: registered, the Environment protocol (budget, cost bound,
expected rewards and costs, extras), common random numbers across policies, the static OPT."""

import numpy as np
import pytest

from scarce.budget import DigitsDeferral, SyntheticDeferral
from scarce.envs import get_envs, make_env
from scarce.sim import PolicySpec, run


def test_registered_names_and_fixed_regimes():
    envs = get_envs()
    for name in (
        "deferral-synthetic",
        "deferral-digits",
        "deferral-complementary",
        "deferral-human-better",
        "deferral-heterogeneous",
    ):
        assert name in envs
    env = make_env("deferral-heterogeneous", seed=0, budget_rate=0.1)
    assert env.regime == "heterogeneous" and env.budget(100).tolist() == [10.0]
    with pytest.raises(ValueError, match="regime is fixed"):
        make_env("deferral-complementary", regime="human_better")
    with pytest.raises(ValueError, match="regime must be one of"):
        SyntheticDeferral("easy")


@pytest.mark.parametrize("regime", ["complementary", "human_better", "heterogeneous"])
def test_synthetic_protocol_and_means(regime):
    env = SyntheticDeferral(regime, seed=3, budget_rate=0.2, cost_bound=0.5)
    assert env.n_actions == 2 and env.n_resources == 1
    np.testing.assert_array_equal(env.cost_bound, [[0.0], [0.5]])
    rng = np.random.default_rng(0)
    X = env.contexts(40_000, rng)
    assert np.allclose(X.sum(axis=1), 1.0)  # l1 norm
    if regime == "heterogeneous":
        assert set(np.count_nonzero(X, axis=1)) == {1, 2, 3}
    out = env.outcomes(X, np.ones(40_000, dtype=int), rng)
    mu, mc = env.expected_rewards(X), env.expected_costs(X)
    assert mc.shape == (40_000, 2, 1) and np.all(mc[:, 0] == 0)
    # realised outcomes average to the expected ones (4 standard errors)
    assert abs(out.rewards.mean() - mu[:, 1].mean()) < 4 * 0.5 / np.sqrt(40_000)
    assert abs(out.extras["model_rewards"].mean() - mu[:, 0].mean()) < 4 * 0.5 / np.sqrt(40_000)
    assert abs(out.costs.mean() - mc[:, 1, 0].mean()) < 4 * 0.25 / np.sqrt(40_000)
    assert out.costs.max() <= 0.5
    params = env.policy_params(1000)
    assert params["budget"] == 200.0 and params["horizon"] == 1000 and params["cost_bound"] == 0.5
    assert params["mean_cost"] == pytest.approx(mc[:, 1, 0].mean(), abs=0.01)


def test_static_opt_honours_cost_bound_under_bernoulli_noise():
    """The static OPT with costs ``cost_bound * Bernoulli(p)`` must use ``E c = cost_bound p``:
    no static policy, in particular no threshold of the gain/cost ratio, beats it."""
    for cb in (0.5, 1.0):
        env = SyntheticDeferral("human_better", seed=1, cost_bound=cb, budget_rate=0.1)
        opt = env.static_opt()
        X = env.contexts(100_000, np.random.default_rng(9))
        mu, c = env.expected_rewards(X), env.expected_costs(X)[:, 1, 0]
        gain = mu[:, 1] - mu[:, 0]
        order = np.argsort(-gain / c)
        fits = np.cumsum(c[order]) <= 0.1 * X.shape[0]  # the best static deferral set
        value = (mu[:, 0].sum() + gain[order][fits & (gain[order] > 0)].sum()) / X.shape[0]
        assert value <= opt + 0.005, (cb, value, opt)
        assert value >= opt - 0.005


def test_common_random_numbers_and_the_hindsight_extras():
    env = SyntheticDeferral("complementary", seed=2, budget_rate=0.3)
    traces = [
        run(PolicySpec(name).build_for(env, 0, 300), env, 300, seed=7, record_contexts=True)
        for name in ("ModelOnly", "HumanOnly", "Deferral")
    ]
    for tr in traces[1:]:
        np.testing.assert_array_equal(tr.contexts, traces[0].contexts)
        for key in ("model_rewards", "human_rewards", "deferral_costs", "mean_rewards"):
            np.testing.assert_array_equal(tr.extras[key], traces[0].extras[key])
    human = traces[1]
    deferred = human.action == 1
    np.testing.assert_array_equal(human.reward[deferred], human.extras["human_rewards"][deferred])
    np.testing.assert_array_equal(
        human.extras["costs"][:, 0], np.where(deferred, human.extras["deferral_costs"], 0.0)
    )
    assert human.budget_spent[0] <= 90.0 + 1e-9


def test_digits_environment_scores_only_its_last_batch():
    env = DigitsDeferral(seed=0, budget_rate=0.05)
    assert env.n_features == 23 and 0.7 < env.model_accuracy < 0.9
    X = env.contexts(50, np.random.default_rng(0))
    mu = env.expected_rewards(X)
    assert mu.shape == (50, 2) and set(np.unique(mu[:, 0])) <= {0.0, 1.0}
    np.testing.assert_array_equal(X @ env.score_weights(), X[:, 20])
    with pytest.raises(ValueError, match="most recent contexts batch"):
        env.expected_rewards(X[:3])
    out = env.outcomes(X, np.ones(50, dtype=int), np.random.default_rng(1))
    assert out.costs.max() <= 1.0 and np.all(out.extras["model_rewards"] == mu[:, 0])
    assert 0 < env.static_opt() <= 1.0


def test_policy_params_computes_only_what_is_wanted(monkeypatch):
    """A sweep asks only for what the policy takes: the static optimum (a solve on a large
    sample) is left out for a learner, and StaticOPT still gets the same rule."""
    env = SyntheticDeferral(seed=3, budget_rate=0.25)
    full = env.policy_params(500)
    calls = []
    solve = SyntheticDeferral.oracle_rule
    monkeypatch.setattr(
        SyntheticDeferral, "oracle_rule", lambda self: calls.append(1) or solve(self)
    )
    learner = PolicySpec("Deferral", {}).build_for(env, 0, 500)
    assert calls == [] and learner.budget == full["budget"]
    some = env.policy_params(500, {"budget", "cost_bound"})
    assert "oracle_weights" not in some and "mean_cost" not in some
    assert {k: some[k] for k in ("budget", "cost_bound", "horizon")} == {
        k: full[k] for k in ("budget", "cost_bound", "horizon")
    }
    opt = PolicySpec("StaticOPT", {}).build_for(env, 0, 500)
    assert calls == [1]
    assert opt.get_params()["oracle_weights"] == full["oracle_weights"]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"norm": "l2", "noise": "gaussian"},
        {"regime": "heterogeneous"},
        {"regime": "human_better", "n_features": 2},  # k = 0 often: the rejection path
    ],
)
def test_contexts_one_by_one_are_separate_draws(kw):
    """The replicated simulator's block of rounds equals one context per call, bit for bit
    and in the same stream (a row count above and below the sorting path's threshold)."""
    env = SyntheticDeferral(seed=0, **kw)
    for n in (5, 300):
        a, b = np.random.default_rng(7), np.random.default_rng(7)
        one = np.concatenate([env.contexts(1, rng=a) for _ in range(n)])
        block = env.contexts_one_by_one(n, b)
        assert np.array_equal(one, block)
        assert a.random() == b.random()
