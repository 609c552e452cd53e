"""Population dynamics: budgets, cooldowns, cohorts and one resource per person per round."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.fair import (
    EXP3Allocator,
    IndexAllocator,
    LinUCBAllocator,
    MetaCUB,
    OracleAllocator,
    RandomAllocator,
    rates_to_counts,
    simulate,
    synthetic_env,
)
from scarce.fair.population import (
    AllocationState,
    Resources,
    randomized_counts,
    stratified_cohorts,
)
from scarce.feedback import DelayKernel


def resources(budgets=(3, 2), cooldowns=(1, 0)):
    return Resources(budgets, cooldowns, [DelayKernel.instant()] * len(budgets), ("a", "b"))


def test_state_rejects_each_violation_with_a_clear_message():
    st_ = AllocationState(10, resources())
    cohort = np.arange(6)
    st_.record(cohort, [0, 1, 2, 3], [0, 0, 0, 1], t=0)
    with pytest.raises(ValueError, match="resource 'a' over budget by 1"):
        st_.record(cohort, [1, 2, 3, 4], [0, 0, 0, 0], t=5)
    with pytest.raises(ValueError, match="unit 0 is in cooldown for resource 'a'"):
        st_.record(cohort, [0], [0], t=1)
    with pytest.raises(ValueError, match="more than one resource"):
        st_.record(cohort, [4, 4], [0, 1], t=1)
    with pytest.raises(ValueError, match="not in the current cohort"):
        st_.record(cohort, [8], [1], t=1)
    st_.record(cohort, [0, 3], [0, 1], t=2)  # cooldown of 'a' is 1 round; 'b' has none
    elig = st_.eligible(np.array([0, 3, 5]), 3)
    np.testing.assert_array_equal(elig, [[False, True], [True, True], [True, True]])


def test_rates_to_counts_errors_name_resource_and_overshoot():
    sizes = np.array([10, 30])
    budgets = np.array([5, 8])
    with pytest.raises(
        ValueError, match=r"resource 'b'.*ask for 12 units.*budget is 8.*overshoot 4"
    ):
        rates_to_counts(np.array([[0.2, 0.1], [0.3, 0.3]]), sizes, budgets, names=["a", "b"])
    clipped = rates_to_counts(
        np.array([[0.2, 0.1], [0.3, 0.3]]), sizes, budgets, clip_infeasible=True
    )
    assert clipped[:, 1].sum() <= 8
    np.testing.assert_array_equal(clipped[:, 0], [2, 3])
    with pytest.raises(ValueError, match="rates must have shape"):
        rates_to_counts(np.zeros((3, 2)), sizes, budgets)
    with pytest.raises(ValueError, match=r"rates must lie in \[0, 1\]"):
        rates_to_counts(np.full((2, 2), 1.5), sizes, budgets)


@given(st.integers(0, 10_000))
def test_fill_leftover_spends_the_budget_without_exceeding_it(seed):
    rng = np.random.default_rng(seed)
    K, R = rng.integers(2, 6), rng.integers(1, 4)
    sizes = rng.integers(0, 40, K)
    budgets = rng.integers(0, max(sizes.sum(), 1) + 1, R)
    shares = rng.dirichlet(np.ones(K), R)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(sizes > 0, np.minimum(1, shares * budgets[:, None] / sizes), 0.0)
    plain = rates_to_counts(rates, sizes, budgets)
    full = rates_to_counts(rates, sizes, budgets, fill_leftover=True)
    want = rates * sizes[None, :]
    np.testing.assert_array_equal(plain, np.floor(want + 1e-9).T)
    assert np.all(plain <= full) and np.all(full <= np.ceil(want - 1e-9).T)
    assert np.all(full.sum(axis=0) <= budgets)
    # the budget is spent, or every group with a fractional remainder got its extra unit
    np.testing.assert_array_equal(
        full.sum(axis=0), np.minimum(budgets, np.ceil(want - 1e-9).sum(axis=1))
    )


@given(st.integers(0, 10_000))
def test_randomized_rounding_is_unbiased_and_within_budget(seed):
    rng = np.random.default_rng(seed)
    K, R = int(rng.integers(2, 6)), int(rng.integers(1, 4))
    sizes = rng.integers(1, 40, K)
    budgets = rng.integers(1, sizes.sum() + 1, R)
    shares = rng.dirichlet(np.ones(K), R)
    want = np.minimum(shares * budgets[:, None], sizes[None, :]).astype(float)
    draws = randomized_counts(np.broadcast_to(want, (4000, R, K)), rng)
    assert np.all(draws >= np.floor(want + 1e-9)) and np.all(draws <= np.ceil(want - 1e-9) + 0)
    assert np.all(draws.sum(axis=2) <= budgets)
    assert np.all(draws.sum(axis=2) >= np.floor(want.sum(axis=1) + 1e-9))
    np.testing.assert_allclose(draws.mean(axis=0), want, atol=0.05)


def test_stratified_cohorts_partition_and_keep_proportions():
    groups = np.repeat([0, 1, 2], [80, 40, 24])
    cohorts = stratified_cohorts(groups, 8, seed=0)
    assert len(cohorts) == 8
    allc = np.sort(np.concatenate(cohorts))
    np.testing.assert_array_equal(allc, np.arange(144))
    for c in cohorts:
        np.testing.assert_array_equal(np.bincount(groups[c], minlength=3), [10, 5, 3])


ALLOCATORS = {
    "random": lambda env: RandomAllocator(),
    "oracle": lambda env: OracleAllocator(env),
    "fair-oracle": lambda env: OracleAllocator(env, fair=True),
    "linucb": lambda env: LinUCBAllocator("kernel_ls"),
    "ucb": lambda env: IndexAllocator("ucb"),
    "swucb": lambda env: IndexAllocator("swucb", window=5),
    "exp3": lambda env: EXP3Allocator(),
    "metacub": lambda env: MetaCUB(
        model="linear", n_candidates=5, n_rollouts=4, rounding="randomized"
    ),
}


@settings(max_examples=25)
@given(
    seed=st.integers(0, 1000),
    which=st.sampled_from(sorted(ALLOCATORS)),
    kernel=st.sampled_from(["instant", "type1", "type2"]),
    cohort_length=st.integers(2, 5),
)
def test_budgets_cooldowns_cohorts_never_violated(seed, which, kernel, cohort_length):
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
    trace = simulate(ALLOCATORS[which](env), env, 4 * cohort_length + 1, seed=seed)
    res, pop = env.resources, env.population
    # independent re-check of the trace (simulate also enforces these as it runs)
    for t in range(trace.horizon):
        now = trace.round == t
        units, rs = trace.unit[now], trace.resource[now]
        assert np.all(np.bincount(rs, minlength=3) <= res.budgets)
        assert np.unique(units).size == units.size
        assert np.isin(units, pop.cohort(t // cohort_length)).all()
    for r in range(3):
        mine = trace.resource == r
        for u in np.unique(trace.unit[mine]):
            rounds = np.sort(trace.round[mine & (trace.unit == u)])
            assert np.all(np.diff(rounds) > res.cooldowns[r])


def test_simulate_rejects_a_cheating_allocator():
    class Greedy(RandomAllocator):
        def allocate(self, t, cohort, eligible):
            return cohort[:50], np.zeros(50, dtype=np.int64)

    env = synthetic_env(200, kernel="instant", seed=0)
    with pytest.raises(ValueError, match="over budget by"):
        simulate(Greedy(), env, 3, seed=0)
