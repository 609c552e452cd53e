"""The one loop: costs and a budget, decision-time side information, ``Decision.info``
handed back to ``update``, vector rewards and environment metrics, for any policy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simtools import CostlyToyEnv, InfoPolicy, ToyEnv, VectorToyEnv

from scarce.core.ledger import Ledger, affordable
from scarce.core.outcome import Outcome
from scarce.feedback import FixedDelay, GeometricDelay
from scarce.policies import LinUCB, Random
from scarce.sim import EnvSpec, PolicySpec, run, sweep
from scarce.sim.experiments import summarize


def test_outcome_checks_its_extras():
    out = Outcome(np.zeros(3), {"costs": np.ones((3, 2))})
    assert len(out) == 3 and out.costs.shape == (3, 2)
    assert Outcome(np.zeros(2)).costs is None
    with pytest.raises(ValueError, match="extras\\['costs'\\].*n = 3"):
        Outcome(np.zeros(3), {"costs": np.ones((2, 1))})
    with pytest.raises(ValueError, match="rewards"):
        Outcome(np.zeros((2, 2, 2)))


def test_affordable_matches_a_brute_force_check():
    rng = np.random.default_rng(0)
    for _ in range(200):
        K, m = rng.integers(1, 5), rng.integers(1, 4)
        bound = rng.random((K, m)) * (rng.random((K, 1)) < 0.7)
        remaining = rng.random(m) * 2
        n = int(rng.integers(1, 4))
        got = affordable(bound, remaining, n)
        for a in range(K):
            free = not bound[a].any()
            fits = all(n * bound[a, j] <= remaining[j] + 1e-9 for j in range(m))
            assert got[a] == (free or fits)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.floats(0.05, 3.0),
    st.sampled_from(["uniform", "max", "bernoulli"]),
)
def test_a_ledger_never_lets_realised_spending_exceed_the_budget(seed, total, law):
    rng = np.random.default_rng(seed)
    K = 4
    bound = np.array([[0.0], [0.3], [0.7], [1.0]])
    ledger = Ledger(total, bound)
    for _ in range(60):
        ok = ledger.affordable()
        a = int(rng.choice(np.flatnonzero(ok)))
        ledger.reserve(np.array([a]))
        c = {"uniform": rng.random(), "max": 1.0, "bernoulli": float(rng.random() < 0.5)}[law]
        ledger.settle(np.array([a]), np.array([c * bound[a, 0]]))
        assert ledger.spent[0] <= total + 1e-9
        assert ledger.reserved[0] == pytest.approx(0.0, abs=1e-12)
    assert 0 <= K


def test_a_ledger_refuses_costs_above_the_bound_and_names_them():
    ledger = Ledger([1.0], [[0.0], [0.5]])
    with pytest.raises(ValueError, match=r"costs\[0, 0\] = 0.6 exceeds the cost bound 0.5"):
        ledger.settle(np.array([1]), np.array([0.6]), reserved=False)
    with pytest.raises(ValueError, match="finite"):
        ledger.settle(np.array([1]), np.array([np.nan]), reserved=False)
    with pytest.raises(ValueError, match="cost_bound must have shape"):
        Ledger([1.0, 2.0], [[0.0], [0.5]])


@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_loop_enforces_a_budget_on_a_policy_that_knows_nothing_of_it(batch_size):
    env = CostlyToyEnv(rate=0.05, n_actions=3, n_features=2, seed=0)
    # LinUCB is budget-unaware and would play costly actions forever
    trace = run(LinUCB(n_actions=3, n_features=2, seed=0), env, 400, batch_size=batch_size, seed=1)
    assert trace.budget.tolist() == [20.0]
    spent = trace.extras["costs"].sum()
    assert spent <= 20.0 + 1e-9 and spent > 15.0  # it spends, but never more
    left = trace.extras["budget_left"][:, 0]  # after each case's round
    ends = np.arange(batch_size - 1, 400, batch_size)
    np.testing.assert_allclose(
        left[ends], 20.0 - np.cumsum(trace.extras["costs"][:, 0])[ends], atol=1e-9
    )
    # every action taken in a round fitted, for each case of the round, in what was left
    bound = env.cost_bound[:, 0]
    before = 20.0
    for r in range(trace.round[-1] + 1):
        cases = np.flatnonzero(trace.round == r)
        assert np.all(len(cases) * bound[trace.action[cases]] <= before + 1e-9)
        before = left[cases[-1]]
    summary = trace.summary()
    assert summary["budget"] == 20.0 and summary["budget_spent"] == pytest.approx(spent)
    assert summary["chose_free"] == pytest.approx(float((trace.action == 0).sum()))


def test_decision_info_and_declared_extras_come_back_through_update():
    env = CostlyToyEnv(rate=1.0, n_actions=3, n_features=2, seed=0)
    policy = InfoPolicy(n_actions=3, n_features=2)
    trace = run(policy, env, 25, batch_size=4, seed=2)
    assert policy.returned_ == list(range(25))  # every decision's info came back, in order
    assert policy.costs_seen_ == 25
    assert policy.groups_seen_ == trace.extras["groups"].tolist()
    np.testing.assert_array_equal(trace.info["id"], np.arange(25))


@pytest.mark.parametrize("delay", [FixedDelay(2), GeometricDelay(0.5)])
def test_info_and_extras_travel_through_the_delay_buffer(delay):
    env = CostlyToyEnv(rate=1.0, n_actions=3, n_features=2, seed=0)
    policy = InfoPolicy(n_actions=3, n_features=2)
    run(policy, env, 30, batch_size=2, seed=3, delay=delay)
    returned = policy.returned_
    assert len(set(returned)) == len(returned) and set(returned) <= set(range(30))
    assert len(returned) >= 20
    assert policy.costs_seen_ == len(policy.returned_)


def test_extras_a_policy_does_not_declare_are_recorded_not_passed():
    env = CostlyToyEnv(rate=1.0, n_actions=3, n_features=2, seed=0)
    trace = run(Random(n_actions=3, n_features=2, seed=0), env, 10, seed=0)
    assert trace.extras["costs"].shape == (10, 1) and trace.extras["groups"].shape == (10,)
    frame = trace.to_frame()
    assert {"costs_0", "groups", "budget_left_0", "metric_chose_free"} <= set(frame.columns)


def test_vector_rewards_reach_a_vector_policy_and_a_scalar_one_is_refused():
    env = VectorToyEnv(n_actions=3, n_features=2, seed=0)
    policy = InfoPolicy(n_actions=3, n_features=2)
    trace = run(policy, env, 12, seed=0)
    assert trace.extras["vector_rewards"].shape == (12, 2)
    assert np.isnan(trace.reward).all() and np.isnan(trace.regret).all()
    with pytest.raises(ValueError, match="vector rewards of 2 objectives"):
        run(LinUCB(n_actions=3, n_features=2), env, 5, seed=0)


def test_a_sweep_reports_budget_spent_and_environment_metrics():
    envs = {"costly": EnvSpec(CostlyToyEnv, {"rate": 0.05, "n_actions": 3, "n_features": 2})}
    table = sweep(
        {"LinUCB": "LinUCB", "info": PolicySpec(InfoPolicy)},
        envs,
        seeds=2,
        horizon=200,
        n_jobs=1,
        n_checkpoints=10,
    )
    assert {"budget", "cumulative_cost", "cumulative_chose_free"} <= set(table.columns)
    summary = summarize(table, "x")
    wide = summary.pivot_table(index=["policy", "seed"], columns="metric", values="value")
    assert (wide["budget"] == 10.0).all()
    assert (wide["budget_spent"] <= wide["budget"] + 1e-9).all()
    # the environment suggested budget and horizon to the policy that takes them
    policy = PolicySpec(InfoPolicy).build_for(CostlyToyEnv(rate=0.05), 0, 200)
    assert policy.budget == 10.0 and policy.horizon == 200


def test_without_extras_the_loop_is_unchanged():
    a = run(LinUCB(n_actions=3, n_features=2, seed=0), ToyEnv(seed=0), 50, seed=4)
    assert a.extras == {} and a.info == {} and a.budget is None and a.contexts is None
    b = run(LinUCB(n_actions=3, n_features=2, seed=0), ToyEnv(seed=0), 50, seed=4)
    assert a == b
    c = run(
        LinUCB(n_actions=3, n_features=2, seed=0), ToyEnv(seed=0), 50, seed=4, record_contexts=True
    )
    assert c.contexts.shape == (50, 2)
