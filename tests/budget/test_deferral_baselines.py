"""The deferral baselines are policies: they run in the one loop, never overspend (the loop's
ledger), and BestReject run with its hindsight threshold collects exactly what the offline
evaluation of that threshold says."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.budget import BestReject, SyntheticDeferral, apply_budget, best_threshold
from scarce.sim import PolicySpec, run

NAMES = ("ModelOnly", "HumanOnly", "ArbitraryHuman", "BestReject", "StaticOPT", "Deferral")


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.floats(0.01, 1.2),
    st.floats(0.1, 1.0),
    st.sampled_from(["complementary", "human_better", "heterogeneous"]),
    st.integers(1, 4),
)
def test_no_policy_overspends_in_the_loop(seed, rate, cost_bound, regime, batch):
    env = SyntheticDeferral(
        regime, n_features=6, seed=seed, budget_rate=rate, cost_bound=cost_bound
    )
    T = 60
    for name in NAMES:
        trace = run(PolicySpec(name).build_for(env, seed, T), env, T, seed=seed, batch_size=batch)
        assert trace.budget_spent[0] <= rate * T + 1e-9, name


def test_best_reject_in_the_loop_equals_the_offline_evaluation():
    env = SyntheticDeferral("human_better", seed=4, budget_rate=0.2)
    T = 1500
    first = run(PolicySpec("ModelOnly").build_for(env, 0, T), env, T, seed=3, record_contexts=True)
    ex = first.extras
    scorer = PolicySpec(BestReject).build_for(env, 0, T)
    scores = scorer.model_scores(first.contexts)
    np.testing.assert_allclose(scores, ex["mean_rewards"][:, 0])  # the true model mean
    tau, value = best_threshold(scores, ex["mean_rewards"], ex["deferral_costs"], 0.2 * T, 1.0)
    trace = run(PolicySpec(BestReject, {"threshold": tau}).build_for(env, 0, T), env, T, seed=3)
    assert trace.expected_reward.sum() == pytest.approx(value, rel=1e-12)
    defer = apply_budget(scores < tau, ex["deferral_costs"], 0.2 * T, 1.0)
    np.testing.assert_array_equal(trace.action, defer.astype(int))


def test_arbitrary_human_defers_at_the_budget_rate_and_static_opt_nears_opt():
    env = SyntheticDeferral("heterogeneous", seed=5, budget_rate=0.25)
    T = 4000
    arb = run(PolicySpec("ArbitraryHuman").build_for(env, 1, T), env, T, seed=2)
    p = min(1.0, 0.25 / env.mean_cost())
    first_half = arb.action[: T // 2].mean()
    assert abs(first_half - p) < 4 * np.sqrt(p * (1 - p) / (T // 2))
    opt = T * env.static_opt()
    oracle = run(PolicySpec("StaticOPT").build_for(env, 1, T), env, T, seed=2)
    model = run(PolicySpec("ModelOnly").build_for(env, 1, T), env, T, seed=2)
    ratio = oracle.expected_reward.sum() / opt
    assert 0.97 <= ratio <= 1.01, ratio  # the optimum played under the hard budget
    assert model.expected_reward.sum() / opt < 0.9


def test_rules_validate_their_parameters():
    x = np.zeros((1, 3))
    with pytest.raises(ValueError, match="score_weights must be given"):
        BestReject(n_features=3).decide(x)
    with pytest.raises(ValueError, match="n_actions must be 2"):
        BestReject(n_actions=3, n_features=3, score_weights=[1, 0, 0]).decide(x)
    from scarce.budget import ArbitraryHuman, StaticOPT

    with pytest.raises(ValueError, match="needs budget, horizon and mean_cost"):
        ArbitraryHuman(n_features=3).decide(x)
    with pytest.raises(ValueError, match="oracle_weights"):
        StaticOPT(n_features=3).decide(x)
