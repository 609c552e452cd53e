"""The fair-allocation world in the one loop: cohorts as batches, decision-time rules, exact
delayed release, the two observation modes, rule enforcement, common random numbers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.envs import get_envs, make_env
from scarce.fair import (
    FairAllocationEnv,
    Population,
    RandomAllocator,
    Resources,
    allocation_metrics,
    synthetic_env,
)
from scarce.feedback import DelayKernel
from scarce.policies import LinUCB
from scarce.sim import run


def tiny_env(kernel, noise_sd=0.0, observation="individual", cohorts=None, cooldowns=(0,)):
    """4 individuals, 1 resource with capacity 2, effects 1..4."""
    X = np.arange(8, dtype=float).reshape(4, 2)
    pop = Population(X, [0, 0, 1, 1], ("a", "b"), cohorts or [np.arange(4)])
    res = Resources([2], list(cooldowns), [kernel], ("r",))
    return FairAllocationEnv(
        pop,
        res,
        np.array([[1.0], [2.0], [3.0], [4.0]]),
        cohort_length=2,
        noise_sd=noise_sd,
        observation=observation,
    )


def play(env, actions_by_round, seed=0):
    """Drive the world by hand; returns the outcomes."""
    rng = np.random.default_rng(seed)
    out = []
    for acts in actions_by_round:
        X = env.contexts(env.cohort_size, rng=rng)
        env.context_extras(X)
        out.append(env.outcomes(X, np.asarray(acts), rng=rng))
    return out


def test_release_matches_a_hand_computation_and_sums_overlaps():
    k = DelayKernel([0.5, 0.3, 0.2])
    env = tiny_env(k)
    # unit 0 gets the resource at rounds 0 and 1 (no cooldown), unit 3 at round 1
    outs = play(env, [[1, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    y0 = [o.rewards[0] for o in outs]
    np.testing.assert_allclose(y0, [0.5, 0.5 + 0.3, 0.3 + 0.2, 0.2])
    y3 = [o.rewards[3] for o in outs]
    np.testing.assert_allclose(y3, [0.0, 0.5 * 4, 0.3 * 4, 0.2 * 4])
    totals = [float(o.extras["round_outcome"][0]) for o in outs]
    np.testing.assert_allclose(totals, np.asarray(y0) + np.asarray(y3))
    assert all(o.extras["individual"].all() for o in outs)


def test_aggregate_mode_gives_equal_shares_of_the_round_total():
    k = DelayKernel([0.5, 0.5])
    outs = play(tiny_env(k, observation="aggregate"), [[1, 0, 0, 1], [0, 0, 0, 0]])
    for o, total in zip(outs, [2.5, 2.5], strict=True):
        np.testing.assert_allclose(o.rewards, total / 4)
        np.testing.assert_allclose(o.extras["round_outcome"], total)
        assert not o.extras["individual"].any()


def test_former_members_release_into_the_round_total_only():
    # two cohorts of two; unit 0 (cohort 0) is treated at round 1, cohort 1 takes over at 2
    env = tiny_env(DelayKernel([0.5, 0.25, 0.25]), cohorts=[np.array([0, 1]), np.array([2, 3])])
    outs = play(env, [[0, 0], [1, 0], [0, 0], [0, 0]])
    assert [o.rewards.tolist() for o in outs][2:] == [[0.0, 0.0], [0.0, 0.0]]
    np.testing.assert_allclose([o.extras["round_outcome"][0] for o in outs], [0, 0.5, 0.25, 0.25])


def test_context_extras_say_the_rules_of_the_round():
    env = tiny_env(DelayKernel.instant(), cooldowns=(2,))
    rng = np.random.default_rng(0)
    X = env.contexts(4, rng=rng)
    extras = env.context_extras(X)
    assert extras["units"].tolist() == [0, 1, 2, 3] and extras["groups"].tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(extras["capacities"], np.tile([4, 2], (4, 1)))
    np.testing.assert_array_equal(extras["cooldowns"], np.tile([0, 2], (4, 1)))
    assert extras["eligible"].all()
    env.outcomes(X, np.array([1, 0, 0, 0]), rng=rng)
    for _ in range(2):  # in cooldown for two rounds
        X = env.contexts(4, rng=rng)
        assert env.context_extras(X)["eligible"].tolist()[0] == [True, False]
        env.outcomes(X, np.zeros(4, dtype=np.int64), rng=rng)
    assert env.context_extras(env.contexts(4, rng=rng))["eligible"][0].all()


def test_broken_rules_raise_and_name_them():
    env = tiny_env(DelayKernel.instant(), cooldowns=(1,))
    rng = np.random.default_rng(0)
    X = env.contexts(4, rng=rng)
    with pytest.raises(ValueError, match="over budget by 1.*honour the capacities"):
        env.outcomes(X, np.array([1, 1, 1, 0]), rng=rng)
    env.reset()
    X = env.contexts(4, rng=rng)
    env.outcomes(X, np.array([1, 0, 0, 0]), rng=rng)
    with pytest.raises(ValueError, match="outcomes were already drawn"):
        env.outcomes(X, np.array([0, 0, 0, 0]), rng=rng)
    X = env.contexts(4, rng=rng)
    with pytest.raises(ValueError, match="unit 0 is in cooldown"):
        env.outcomes(X, np.array([1, 0, 0, 0]), rng=rng)
    with pytest.raises(ValueError, match="cohort size 4"):
        env.contexts(5, rng=rng)
    with pytest.raises(ValueError, match="no full-information feedback"):
        env.full_outcomes(X)


def test_a_discrete_policy_is_stopped_with_a_clear_message():
    env = synthetic_env(200, kernel="instant", seed=0)
    with pytest.raises(ValueError, match="makes 'discrete' decisions but .* takes 'allocation'"):
        run(
            LinUCB(n_actions=3, n_features=5, seed=0),
            env,
            5 * env.cohort_size,
            batch_size=env.cohort_size,
            seed=0,
        )


def test_noise_does_not_depend_on_the_policy():
    # the same unit allocated at the same round by two different allocations sees the same noise
    env = tiny_env(DelayKernel.instant(), noise_sd=1.0)
    a = play(env, [[1, 0, 1, 0]], seed=5)[0]
    env.reset()
    b = play(env, [[1, 1, 0, 0]], seed=5)[0]
    assert a.rewards[0] == b.rewards[0]
    assert a.rewards[0] != 1.0


def test_runs_restart_the_dynamics_and_are_reproducible():
    env = synthetic_env(240, kernel="type1", n_cohorts=3, seed=1)
    n = env.cohort_size
    runs = [
        run(
            RandomAllocator(n_actions=3, n_features=5, seed=4),
            env,
            12 * n,
            batch_size=n,
            seed=9,
            record_probabilities=False,
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert runs[0].extras["groups"].shape == (12 * n,)
    assert set(runs[0].extras) >= {
        "groups",
        "units",
        "capacities",
        "round_outcome",
        "metric_effect",
    }


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 1000),
    kernel=st.sampled_from(["instant", "type1", "type2"]),
    cohort_length=st.integers(2, 5),
    which=st.sampled_from(
        ["MetaCUB", "EqualSplit", "GroupUCB", "EXP3Allocator", "RandomAllocator", "LinUCBAllocator"]
    ),
)
def test_capacities_cooldowns_and_cohorts_hold_in_the_trace(seed, kernel, cohort_length, which):
    from scarce.policies import get_policies

    env = synthetic_env(
        120,
        n_groups=3,
        n_features=3,
        n_resources=3,
        kernel=kernel,
        budget_fractions=[0.3, 0.2, 0.1],
        cohort_length=cohort_length,
        n_cohorts=3,
        seed=seed,
    )
    params = {"n_actions": 4, "n_features": 3, "seed": seed, **env.policy_params(0)}
    if which == "MetaCUB":
        params["search"] = {"n_candidates": 5, "n_rollouts": 4}
    policy = get_policies()[which](**params)
    n, rounds = env.cohort_size, 4 * cohort_length + 1
    trace = run(policy, env, rounds * n, batch_size=n, seed=seed, record_probabilities=False)
    res = env.resources
    units, acts, rnd = trace.extras["units"], trace.action, trace.round
    for t in range(rounds):
        now = rnd == t
        assert np.all(np.bincount(acts[now], minlength=4)[1:] <= res.budgets)
        assert np.array_equal(units[now], env.cohort(t))
    for r in range(3):
        mine = acts == r + 1
        for u in np.unique(units[mine]):
            rounds_u = np.sort(rnd[mine & (units == u)])
            assert np.all(np.diff(rounds_u) > res.cooldowns[r])


def test_fairness_metrics_by_brute_force():
    env = synthetic_env(160, kernel="instant", n_cohorts=2, seed=3)
    n = env.cohort_size
    trace = run(
        RandomAllocator(n_actions=3, n_features=5, seed=1), env, 6 * n, batch_size=n, seed=2
    )
    m = allocation_metrics(trace, env.population.group_names, env.resources.names)
    g, a = trace.extras["groups"], trace.action
    overall = (a > 0).mean()
    for k, name in enumerate(env.population.group_names):
        assert m[f"fairness_ratio:{name}"] == pytest.approx((a[g == k] > 0).mean() / overall)
        for r, res in enumerate(env.resources.names):
            rate = (a[g == k] == r + 1).mean() / (a == r + 1).mean()
            assert m[f"fairness_ratio:{name}:{res}"] == pytest.approx(rate)
    assert m["cumulative_outcome"] == pytest.approx(
        sum(env.effects[u, x - 1] for u, x in zip(trace.extras["units"], a, strict=True) if x > 0)
    )


def test_registered_environments():
    names = set(get_envs())
    for kind in ("instant", "type1", "type2"):
        assert {f"star-{kind}", f"jobs-{kind}", f"groups-{kind}", f"synthetic-{kind}"} <= names
    assert {"star", "jobs", "groups-type2-aggregate", "groups-mixed"} <= names
    mixed = make_env("groups-mixed", seed=0)
    assert [k.name for k in mixed.resources.kernels] == ["type1", "type2"]
    assert mixed.policy_params(100) == {"kernels": ["type1", "type2"], "cohort_length": 8}
    assert make_env("groups-type2-aggregate", seed=0).observation == "aggregate"
