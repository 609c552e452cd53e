"""Baselines: exact bookkeeping of the index policies, EXP3 and LinUCB variants."""

import numpy as np
import pytest

from scarce.fair import EXP3Allocator, IndexAllocator, LinUCBAllocator, synthetic_env
from scarce.fair.population import AllocationState


def drive(alloc, env, rounds, seed=0):
    """Run ``alloc`` by hand, returning the allocations and observations it saw."""
    rng = np.random.default_rng(seed)
    alloc.reset(env.problem, rng)
    state = AllocationState(env.population.X.shape[0], env.resources)
    cohort = env.population.cohort(0)
    log = []
    for t in range(rounds):
        units, r = alloc.allocate(t, cohort, state.eligible(cohort, t))
        state.record(cohort, units, r, t)
        y = rng.normal(size=units.size)
        alloc.observe(t, units, y)
        log.append((t, units.copy(), r.copy(), y))
    return log


@pytest.fixture
def env():
    return synthetic_env(
        60,
        n_groups=2,
        n_resources=2,
        kernel="instant",
        n_cohorts=1,
        budget_fractions=[0.1, 0.05],
        seed=0,
    )


def test_ucb_counts_and_sums(env):
    ucb = IndexAllocator("ucb")
    log = drive(ucb, env, 6)
    n, s = np.zeros_like(ucb.n), np.zeros_like(ucb.s)
    for _, u, r, y in log:
        n[u, r] += 1
        s[u, r] += y
    np.testing.assert_allclose(ucb.n, n)
    np.testing.assert_allclose(ucb.s, s)


def test_ducb_discounts_every_round(env):
    g = 0.8
    ducb = IndexAllocator("ducb", gamma=g)
    log = drive(ducb, env, 5)
    n, s = np.zeros_like(ducb.n), np.zeros_like(ducb.s)
    T = len(log)
    for t, u, r, y in log:
        # discounting happens at the start of each later round's allocation
        n[u, r] += g ** (T - 1 - t)
        s[u, r] += y * g ** (T - 1 - t)
    np.testing.assert_allclose(ducb.n, n, atol=1e-12)
    np.testing.assert_allclose(ducb.s, s, atol=1e-12)


def test_swucb_keeps_only_the_window(env):
    W = 3
    sw = IndexAllocator("swucb", window=W)
    log = drive(sw, env, 7)
    T = len(log)
    n, s = np.zeros_like(sw.n), np.zeros_like(sw.s)
    for t, u, r, y in log:
        if t > T - 1 - W:
            n[u, r] += 1
            s[u, r] += y
    np.testing.assert_allclose(sw.n, n, atol=1e-12)
    np.testing.assert_allclose(sw.s, s, atol=1e-12)


def test_unseen_arms_first(env):
    ucb = IndexAllocator("ucb")
    log = drive(ucb, env, 3)
    arms = np.concatenate([u * 2 + r for _, u, r, _ in log])
    # arms are (member, resource); with 9 units per round over 120 arms, none repeats
    assert np.unique(arms).size == arms.size


def test_exp3_weights_move_toward_rewarded_arms(env):
    exp3 = EXP3Allocator(eta=0.5)
    drive(exp3, env, 3)
    before = exp3.logw.copy()
    u = np.array([0, 1])
    exp3.last_res[u] = 0
    exp3.prob[u, 0] = 0.5
    exp3.observe(3, u, np.array([1.0, -1.0]))
    assert exp3.logw[0, 0] > before[0, 0] and exp3.logw[1, 0] < before[1, 0]


def test_linucb_variant_names_and_validation():
    assert LinUCBAllocator("wait").name == "LinUCB"
    assert LinUCBAllocator("delay_agnostic").name == "LinUCB-delay-agnostic"
    assert LinUCBAllocator("kernel_ls").name == "LinUCB-delay-aware"
    with pytest.raises(ValueError, match="attribution must be"):
        LinUCBAllocator("psychic")
    with pytest.raises(ValueError, match="kind must be one of"):
        IndexAllocator("thompson")
