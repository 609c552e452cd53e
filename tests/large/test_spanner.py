"""The barycentric spanner, SquareCB's inverse gap weighting, and SpannerCB's exploration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.envs.catalog import CatalogEnv
from scarce.policies.spanner import (
    SpannerCB,
    barycentric_spanner,
    igw_probabilities,
    numerical_rank,
)
from scarce.sim import run


@given(
    N=st.integers(1, 60),
    r=st.integers(1, 6),
    rank=st.integers(1, 6),
    c=st.sampled_from([1.5, 2.0, 4.0]),
    seed=st.integers(0, 10_000),
    zero_first=st.booleans(),
)
@settings(max_examples=80)
def test_every_row_is_a_bounded_combination_of_the_spanner(N, r, rank, c, seed, zero_first):
    rng = np.random.default_rng(seed)
    rank = min(rank, r, N)
    rows = rng.normal(size=(N, rank)) @ rng.normal(size=(rank, r)) * rng.exponential(size=(N, 1))
    if zero_first:  # a coordinate no row uses (elimination finds no pivot in that column)
        rows[:, 0] = 0.0
    idx = barycentric_spanner(rows, c)
    assert len(idx) == np.linalg.matrix_rank(rows) and len(set(idx)) == len(idx)
    coef, *_ = np.linalg.lstsq(rows[idx].T, rows.T, rcond=None)  # rows = coef^T @ spanner
    np.testing.assert_allclose(coef.T @ rows[idx], rows, atol=1e-6 * np.abs(rows).max())
    assert np.abs(coef).max(initial=0.0) <= c + 1e-6


def test_spanner_of_rows_with_an_unused_coordinate():
    rows = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, -3.0]])
    np.testing.assert_array_equal(barycentric_spanner(rows), [2])  # the longest row
    assert barycentric_spanner(np.zeros((4, 3))).size == 0


def test_spanner_of_the_simplex_corners_is_the_corners():
    rows = np.vstack([np.eye(3), np.full((20, 3), 0.2)])
    np.testing.assert_array_equal(barycentric_spanner(rows), [0, 1, 2])
    with pytest.raises(ValueError, match="c must be > 1"):
        barycentric_spanner(rows, 1.0)


@given(pred=st.lists(st.floats(-5, 5), min_size=1, max_size=12), gamma=st.floats(0, 1000))
def test_inverse_gap_weighting(pred, gamma):
    pred = np.array(pred)
    p = igw_probabilities(pred, gamma)
    k, best = pred.size, int(np.argmax(pred))
    np.testing.assert_allclose(p.sum(), 1.0)
    others = np.arange(k) != best
    np.testing.assert_allclose(p[others], 1.0 / (k + gamma * (pred[best] - pred[others])))
    assert np.all(p > 0) and p[best] >= p.max() - 1e-12


def test_numerical_rank_is_vw_rule():
    assert numerical_rank(np.array([10.0, 0.05, 0.05])) == 1  # 10 / 10.1 reaches 99%
    assert numerical_rank(np.array([5.0, 4.0, 1.0])) == 3
    assert numerical_rank(np.array([5.0, 4.95, 0.01])) == 2
    assert numerical_rank(np.zeros(3)) == 0


def _policy(K=400, d=6, **kw):
    env = CatalogEnv(K, d, seed=4)
    p = SpannerCB(n_actions=K, n_features=d, seed=2, **kw)
    p.set_actions(env.action_features)
    return p, env


def test_survivors_are_a_spanner_plus_the_greedy_action_with_exact_probabilities():
    p, env = _policy(max_actions=4, n_candidates=20)
    rng = np.random.default_rng(0)
    X = env.contexts(50, rng=rng)
    a = rng.integers(0, 400, 50)
    p.update(X, a, env.outcomes(X, a, rng=rng).rewards)
    x = env.contexts(1, rng=rng)
    probs = p.action_probabilities(x)[0]
    support = np.flatnonzero(probs)
    assert 2 <= support.size <= 4 + 1
    greedy = int(np.argmax((x * p.catalog.features) @ p.ridge_.theta[0]))
    assert greedy in support and probs[greedy] == probs.max()
    d = p.decide(np.repeat(x, 3000, axis=0))
    freq = np.bincount(d.actions, minlength=400) / 3000
    np.testing.assert_allclose(freq, probs, atol=0.03)
    np.testing.assert_allclose(d.probabilities, probs[d.actions])


def test_epsilon_rule_and_bad_exploration_settings():
    p, env = _policy(exploration={"rule": "epsilon", "epsilon": 0.2}, max_actions=3)
    probs = p.action_probabilities(env.contexts(1, rng=np.random.default_rng(1)))[0]
    support = probs[probs > 0]
    assert np.isclose(support.min(), 0.2 / support.size)
    assert np.isclose(support.max(), 0.8 + 0.2 / support.size)
    assert (
        SpannerCB(n_actions=2, n_features=2, exploration="epsilon")._rule_spec()["epsilon"] == 0.05
    )
    for bad, match in (
        ({"rule": "ucb"}, "rule"),
        ({"eps": 1}, "keys"),
        ({"epsilon": 2.0}, "epsilon"),
    ):
        with pytest.raises(ValueError, match=match):
            SpannerCB(n_actions=2, n_features=2, exploration=bad, actions=[[1, 0], [0, 1]]).decide(
                np.ones((1, 2))
            )


def test_pool_from_the_index_matches_exact_search():
    pytest.importorskip("faiss")
    env = CatalogEnv(6000, 8, seed=5)
    out = {}
    for kind in ("exact", "ivf"):
        p = SpannerCB(
            n_actions=6000,
            n_features=8,
            index={"kind": kind, "nlist": 8, "nprobe": 8},
            n_candidates=30,
            seed=1,
        )
        p.set_actions(env.action_features)
        X = env.contexts(40, rng=np.random.default_rng(2))
        p.update(
            X, np.arange(40), env.outcomes(X, np.arange(40), rng=np.random.default_rng(3)).rewards
        )
        out[kind] = p.action_probabilities(X)
    np.testing.assert_allclose(out["ivf"], out["exact"])  # every cell probed: the same pool


@pytest.mark.statistical
def test_spanner_cb_learns():
    p, env = _policy(K=3000, d=8)
    trace = run(p, env, 1500, batch_size=25, seed=0, record_probabilities=False)
    X = env.contexts(500, rng=np.random.default_rng(0))
    mu = env.expected_rewards(X)
    random_regret = 1500 * np.mean(mu.max(axis=1) - mu.mean(axis=1))
    late = trace.regret[-500:].mean() / trace.regret[:500].mean()
    assert trace.regret.sum() < 0.1 * random_regret and late < 0.5
