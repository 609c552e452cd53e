"""OPT solvers against brute force on tiny instances, and the baselines' budget rule."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from scarce.budget import (
    apply_budget,
    best_threshold,
    empirical_opt_deferral,
    fractional_knapsack,
    oracle_z,
    static_opt_deferral,
    static_opt_lp,
)

floats = st.floats(-1.0, 1.0, allow_nan=False)
# no subnormal costs: HiGHS treats |c| < 1e-9 as 0, the greedy solution is exact
costs = st.one_of(st.just(0.0), st.floats(1e-3, 1.0))


def brute_force_01(g, c, cap):
    best = 0.0
    for z in itertools.product((0, 1), repeat=len(g)):
        z = np.array(z, dtype=float)
        if z @ c <= cap + 1e-12:
            best = max(best, float(z @ g))
    return best


@settings(max_examples=150)
@given(
    st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            st.lists(floats, min_size=n, max_size=n),
            st.lists(costs, min_size=n, max_size=n),
            st.floats(0.0, 4.0),
        )
    )
)
def test_fractional_knapsack_matches_linprog_and_bounds_the_01_optimum(case):
    g, c, cap = np.array(case[0]), np.array(case[1]), case[2]
    sol = fractional_knapsack(g, c, cap)
    lp = linprog(-g, A_ub=c[None, :], b_ub=[cap], bounds=(0, 1), method="highs")
    assert sol.value == pytest.approx(-lp.fun, abs=1e-9)
    assert sol.used <= cap + 1e-9
    assert np.all((sol.z >= 0) & (sol.z <= 1))
    assert np.sum((sol.z > 1e-12) & (sol.z < 1 - 1e-12)) <= 1  # at most one fractional item
    exact = brute_force_01(g, c, cap)
    assert sol.value >= exact - 1e-9
    rm = np.zeros_like(g)
    assert empirical_opt_deferral(g, rm, c, cap, exact=True).value == pytest.approx(exact, abs=1e-9)
    assert empirical_opt_deferral(g, rm, c, cap).value == pytest.approx(sol.value, abs=1e-9)


@settings(max_examples=60)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(0, 1), min_size=n, max_size=n),
            st.lists(st.floats(0, 1), min_size=n, max_size=n),
            st.lists(st.floats(0.01, 1), min_size=n, max_size=n),
            st.floats(0.0, 1.0),
        )
    )
)
def test_static_deferral_opt_equals_two_action_lp(case):
    mh, mm, mc = (np.array(v) for v in case[:3])
    rate = case[3]
    sol = static_opt_deferral(mh, mm, mc, rate)
    n = mh.shape[0]
    R = np.column_stack([mm, mh])
    C = np.stack([np.zeros(n), mc], axis=1)[:, :, None]
    value, pi = static_opt_lp(R, C, rate)
    assert sol.value == pytest.approx(value, abs=1e-8)
    assert np.allclose(pi.sum(axis=1), 1.0)
    # the knapsack policy is a threshold rule on gain - price * cost
    gain = mh - mm
    strict = np.abs(gain - sol.price * mc) > 1e-9
    assert np.all((sol.z[strict] > 0.5) == (gain[strict] - sol.price * mc[strict] > 0))


def test_static_lp_several_resources_matches_enumeration_of_vertices():
    # 2 contexts, 3 actions (0 free), 2 resources: compare with a fine grid over the simplex
    rng = np.random.default_rng(3)
    R = rng.uniform(0, 1, (2, 3))
    C = rng.uniform(0, 1, (2, 3, 2))
    C[:, 0] = 0.0
    rate = np.array([0.2, 0.3])
    value, pi = static_opt_lp(R, C, rate)
    grid = np.linspace(0, 1, 41)
    simplex = np.array([(a, b, 1 - a - b) for a in grid for b in grid if a + b <= 1 + 1e-12])
    # every pair of grid policies (one per context), vectorised: (S, S) values and costs
    value_pairs = (simplex @ R[0])[:, None] + (simplex @ R[1])[None, :]
    cost_pairs = (simplex @ C[0])[:, None, :] + (simplex @ C[1])[None, :, :]
    feasible = np.all(cost_pairs / 2 <= rate + 1e-12, axis=2)
    best = float(value_pairs[feasible].max() / 2)
    assert value >= best - 1e-9
    assert value <= best + 0.05  # the grid step bounds the gap
    assert np.all(np.einsum("ia,iaj->j", pi, C) / 2 <= rate + 1e-7)


def test_opt_validation_errors():
    with pytest.raises(ValueError, match="cost must be >= 0"):
        fractional_knapsack([1.0], [-1.0], 1.0)
    with pytest.raises(ValueError, match="same shape"):
        fractional_knapsack([1.0, 2.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="capacity"):
        fractional_knapsack([1.0], [1.0], -1.0)
    with pytest.raises(ValueError, match="rewards must be"):
        static_opt_lp(np.ones(3), np.ones((3, 1)), 0.5)
    with pytest.raises(ValueError, match="budget"):
        oracle_z(1.0, 0.0)
    assert oracle_z(50.0, 25.0) == 2.0


def test_apply_budget_against_a_sequential_loop():
    rng = np.random.default_rng(0)
    for _ in range(50):
        intent = rng.random(100) < 0.6
        c = rng.uniform(0, 1, 100)
        B, cb = rng.uniform(0, 30), 1.0
        spent, expect = 0.0, np.zeros(100, dtype=bool)
        for t in range(100):
            if intent[t] and spent <= B - cb + 1e-9:
                expect[t] = True
                spent += c[t]
        np.testing.assert_array_equal(apply_budget(intent, c, B, cb), expect)
        assert c[expect].sum() <= B + 1e-9


def test_best_threshold_is_the_best_of_the_grid():
    rng = np.random.default_rng(1)
    T = 300
    scores = rng.uniform(0, 1, T)
    mu = rng.uniform(0, 1, (T, 2))
    costs = rng.uniform(0, 1, T)
    tau, value = best_threshold(scores, mu, costs, 40.0, 1.0)
    rows = np.arange(T)
    for t in np.arange(0, 1.01, 0.05):
        (_, other) = best_threshold(scores, mu, costs, 40.0, 1.0, thresholds=np.array([t]))
        assert value >= other - 1e-12
    defer = apply_budget(scores < tau, costs, 40.0, 1.0)
    assert value == pytest.approx(mu[rows, defer.astype(int)].sum())
    assert 0.0 <= tau <= 1.01
