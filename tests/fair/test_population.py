"""Population dynamics: budgets, cooldowns, cohorts and one resource per person per round."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.fair import rates_to_counts
from scarce.fair.population import (
    AllocationState,
    Resources,
    carry_counts,
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


@settings(max_examples=40)
@given(st.integers(0, 10_000))
def test_carry_rounding_tracks_cumulative_targets_within_one_unit(seed):
    rng = np.random.default_rng(seed)
    K, R = int(rng.integers(2, 6)), int(rng.integers(1, 3))
    caps = rng.integers(1, 15, R)
    carry = np.zeros((R, K))
    given_total = np.zeros((R, K))
    want_total = np.zeros((R, K))
    for _ in range(30):
        want = rng.dirichlet(np.ones(K), R) * caps[:, None] * rng.uniform(0.5, 1.0)
        counts = carry_counts(want, carry, caps)
        assert np.all(counts >= 0) and np.all(counts.sum(axis=1) <= caps)
        carry = np.clip(want + carry - counts, -1.0, 1.0)
        given_total += counts
        want_total += want
        assert np.all(np.abs(given_total - want_total) <= 1.0 + 1e-9)


def test_carry_rounding_never_exceeds_a_capacity_whatever_the_carry():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        K, R = int(rng.integers(1, 6)), int(rng.integers(1, 3))
        caps = rng.integers(0, 20, R)
        want = rng.dirichlet(np.ones(K), R) * caps[:, None]
        counts = carry_counts(want, rng.uniform(-1, 1, (R, K)), caps)
        assert np.all(counts >= 0) and np.all(counts.sum(axis=1) <= caps)
    # vectorised over candidates: (C, R, K)
    want = rng.dirichlet(np.ones(3), (5, 2)) * np.array([4, 7])[None, :, None]
    many = carry_counts(want, np.zeros((2, 3)), np.array([4, 7]))
    single = np.stack([carry_counts(w, np.zeros((2, 3)), np.array([4, 7])) for w in want])
    np.testing.assert_array_equal(many, single)
