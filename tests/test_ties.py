"""Identical models get identical scores, so that "ties go to the lowest action id" holds
for exact ties: two actions whose models are bitwise equal (untried actions, say) get means
and widths that are bitwise equal on every path of ``models.linear`` (one case, batches of
any size, leading replica axes), and a UCB rule then picks the lower id.

Before this was enforced, the ``K`` quadratic forms of one case were one matrix-vector
product whose BLAS kernel sums some rows in another order (rows 8 and 9 of 10 with
OpenBLAS), so an untried action 8 could beat an identical untried action 0 by one ulp."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.envs import LinearGaussianEnv
from scarce.models import linear
from scarce.policies import (
    GLMUCB,
    DiagonalLinUCB,
    Greedy,
    LinUCB,
    NeuralLinearUCB,
    SketchedLinUCB,
)
from scarce.sim.replicated import run_replicated


def _models(rng, K, d, groups):
    """``K`` models drawn from ``groups`` distinct ones: ``theta`` ``(K, d)``, ``cov``
    ``(K, d, d)`` and the group of each action (the first action of a group has the
    lowest id). At most ``K`` groups."""
    groups = min(groups, K)
    M = rng.normal(size=(groups, d, d + 2))
    cov = np.linalg.inv(M @ M.swapaxes(1, 2) + np.eye(d))
    theta = rng.normal(size=(groups, d))
    # every group present, the other actions in random groups, in a random order
    group = rng.permutation(
        np.concatenate([np.arange(groups), rng.integers(0, groups, K - groups)])
    )
    return theta[group].copy(), cov[group].copy(), group


def _assert_tied(values, group):
    """Columns (last axis) of actions in one group are bitwise equal."""
    for g in np.unique(group):
        cols = values[..., group == g]
        assert (cols == cols[..., :1]).all(), f"group {g}: {cols.reshape(-1, cols.shape[-1])[:3]}"


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from([1, 2, 5, 63, 64, 200]),
    K=st.integers(2, 24),
    d=st.sampled_from([2, 3, 5, 8, 13, 20, 33, 70]),
    share=st.floats(0.0, 1.0),
    scale=st.floats(1e-3, 1e3),
)
@settings(max_examples=200, deadline=None)
def test_identical_models_get_bitwise_equal_means_and_widths(seed, n, K, d, share, scale):
    """Every route of ``predict_mean`` / ``predict_variance`` (one case, a few cases, the
    factor, quadratic-feature and stacked batch paths, with few or many equal models),
    ``predict`` and ``one_case_widths``. ``share``: the share of distinct models."""
    rng = np.random.default_rng(seed)
    theta, cov, group = _models(rng, K, d, max(1, round(share * K)))
    X = scale * rng.normal(size=(n, d))
    mean, var = linear.predict(X, theta, cov)
    _assert_tied(mean, group)
    _assert_tied(var, group)
    # and they are the means and quadratic forms, to rounding (relative to |x|^T |S| |x|)
    bound = 1e-13 * np.einsum("nd,kde,ne->nk", np.abs(X), np.abs(cov), np.abs(X))
    assert (np.abs(var - np.einsum("nd,kde,ne->nk", X, cov, X)) <= bound).all()
    assert (np.abs(mean - X @ theta.T) <= 1e-13 * (np.abs(X) @ np.abs(theta).T)).all()
    if n == 1:
        mean1, std1 = linear.one_case_widths(X, theta, cov)
        _assert_tied(mean1, group)
        _assert_tied(std1, group)
        # still what predict gives, bit for bit
        np.testing.assert_array_equal(mean1, mean)
        np.testing.assert_array_equal(std1, np.sqrt(var[0]))


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from([1, 3, 64]),
    K=st.integers(2, 12),
    d=st.sampled_from([3, 12, 20]),
)
@settings(max_examples=40, deadline=None)
def test_identical_models_tie_on_every_replica_and_as_each_replica_alone(seed, n, K, d):
    """With a leading replica axis each replica's duplicates tie, and each slice is still
    what it gives alone."""
    rng = np.random.default_rng(seed)
    parts = [_models(rng, K, d, int(rng.integers(1, 4))) for _ in range(3)]
    theta = np.stack([p[0] for p in parts])
    cov = np.stack([p[1] for p in parts])
    X = rng.normal(size=(3, n, d))
    mean = linear.predict_mean(X, theta, batch_axes=1)
    var = linear.predict_variance(X, cov)
    for s, (th, cv, group) in enumerate(parts):
        _assert_tied(mean[s], group)
        _assert_tied(var[s], group)
        np.testing.assert_array_equal(mean[s], linear.predict_mean(X[s], th))
        np.testing.assert_array_equal(var[s], linear.predict_variance(X[s], cv))


def test_a_models_duplicates_found_exactly():
    """Models equal in value (signed zeros included) are one group; a model one ulp away
    is not, nor is one holding NaN."""
    base = np.arange(12.0).reshape(3, 4)
    models = np.stack([base[0], base[1], base[0], -0.0 * base[0] + base[0], base[2], base[1]])
    models[4, 0] = np.nextafter(models[0, 0], 1.0)
    first = linear.first_identical(models)  # one axis per model
    np.testing.assert_array_equal(first, [0, 1, 0, 0, 4, 1])
    with_nan = np.stack([np.full(4, np.nan), np.full(4, np.nan)])
    assert linear.first_identical(with_nan) is None
    assert linear.first_identical(base) is None


@pytest.mark.parametrize(
    "policy_cls", [LinUCB, GLMUCB, SketchedLinUCB, DiagonalLinUCB, Greedy, NeuralLinearUCB]
)
@pytest.mark.parametrize(("K", "d"), [(10, 20), (7, 5), (30, 13)])
def test_untried_actions_are_tried_in_id_order(policy_cls, K, d):
    """A fresh UCB policy's first decision is action 0, for every context, one case at a
    time and in a batch; while some actions are untried and tried ones score lower, the
    lowest untried id goes next."""
    rng = np.random.default_rng(K * d)
    X = rng.normal(size=(200, d))
    policy = policy_cls(n_actions=K, n_features=d, seed=0)
    assert (policy.decide(X).actions == 0).all()
    for x in X[:50]:
        assert policy.decide(x[None]).actions[0] == 0
    # LinUCB with a large width: tried actions' widths shrink below the untried ones'
    policy = LinUCB(n_actions=K, n_features=d, alpha=100.0, seed=0)
    for t in range(K):
        decision = policy.decide(X[t : t + 1])
        assert decision.actions[0] == t
        policy.update(X[t : t + 1], decision.actions, np.zeros(1))


def test_replicated_linucb_tries_untried_actions_in_id_order():
    """The replicated simulator makes the same calls as separate runs, ties included."""
    K, d = 10, 20
    envs = [LinearGaussianEnv(n_actions=K, n_features=d, seed=s) for s in range(3)]
    policies = [LinUCB(n_actions=K, n_features=d, alpha=1e4, seed=s) for s in range(3)]
    traces = run_replicated(policies, envs, horizon=K, seeds=range(3))
    for trace in traces:
        np.testing.assert_array_equal(trace.action, np.arange(K))


@pytest.mark.parametrize("n", [65, 127])
@pytest.mark.parametrize(("K", "d"), [(9, 16), (13, 20), (40, 33)])
def test_one_pair_of_equal_models_ties_in_a_large_batch(n, K, d):
    """Few equal models (here the last equals the first, the others distinct): a large batch
    computes every model, and the last model's rows of a wide product are the ones a BLAS
    kernel sums in its remainder block, so their columns are made equal afterwards."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        theta, cov, _ = _models(rng, K, d, K)  # all distinct
        cov[-1], theta[-1] = cov[0], theta[0]
        mean, var = linear.predict(rng.normal(size=(n, d)), theta, cov)
        np.testing.assert_array_equal(mean[:, -1], mean[:, 0])
        np.testing.assert_array_equal(var[:, -1], var[:, 0])
