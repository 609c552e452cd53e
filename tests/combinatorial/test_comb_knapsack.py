"""The per-case optimiser: exact against brute force; greedy feasible but not always optimal."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scarce.combinatorial import allocation_value, greedy_mckp, solve_mckp


def brute_force(scores, costs, budget):
    best = -np.inf
    for levels in itertools.product(range(len(costs)), repeat=scores.shape[0]):
        if sum(costs[lv] for lv in levels) <= budget:
            best = max(best, allocation_value(scores, levels))
    return best


@st.composite
def problems(draw):
    N = draw(st.integers(1, 5))
    L = draw(st.integers(1, 4))
    costs = np.array(draw(st.lists(st.integers(0, 12), min_size=L, max_size=L)))
    lo, hi = N * costs.min(), N * costs.max()
    budget = draw(st.integers(int(lo), int(hi) + 3))
    seed = draw(st.integers(0, 2**16))
    scores = np.random.default_rng(seed).normal(size=(N, L))
    return scores, costs, budget


@given(problems())
def test_dp_matches_brute_force_and_respects_the_cap(problem):
    scores, costs, budget = problem
    levels = solve_mckp(scores, costs, budget)
    assert levels.shape == (scores.shape[0],)
    assert costs[levels].sum() <= budget
    assert allocation_value(scores, levels) == pytest.approx(brute_force(scores, costs, budget))
    g = greedy_mckp(scores, costs, budget)
    assert costs[g].sum() <= budget
    assert allocation_value(scores, g) <= allocation_value(scores, levels) + 1e-9


def test_dp_with_token_costs_and_a_case_greedy_gets_wrong():
    costs = np.array([64, 128, 256, 400])
    # item 0 gains a lot only at the top level; greedy's best ratio goes to item 1 first
    scores = np.array([[0.0, 0.1, 0.2, 3.0], [0.0, 1.0, 1.1, 1.2]])
    budget = 464  # item 0 at 400 + item 1 at 64
    dp = solve_mckp(scores, costs, budget)
    np.testing.assert_array_equal(dp, [3, 0])
    gr = greedy_mckp(scores, costs, budget)
    assert allocation_value(scores, gr) < allocation_value(scores, dp)
    assert allocation_value(scores, dp) == pytest.approx(brute_force(scores, costs, budget))


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="cheapest level"):
        solve_mckp(np.zeros((3, 2)), [10, 20], 29)
    with pytest.raises(ValueError, match="scores must have shape"):
        solve_mckp(np.zeros((3, 3)), [10, 20], 100)
    with pytest.raises(ValueError, match="costs must be integers"):
        solve_mckp(np.zeros((3, 2)), [10.5, 20], 100)
    with pytest.raises(ValueError, match="costs must be >= 0"):
        solve_mckp(np.zeros((3, 2)), [-1, 20], 100)
    with pytest.raises(ValueError, match="budget"):
        greedy_mckp(np.zeros((3, 2)), [10, 20], -5)
    with pytest.raises(ValueError, match="finite"):
        solve_mckp(np.full((1, 2), np.nan), [1, 2], 5)
