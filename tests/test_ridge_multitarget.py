"""Multi-target RidgeRegression (``n_targets = T``): every update path must give, target by
target, exactly what ``T`` separate single-target models fed the same rows give (same
design, same rank-1 / refactor / resync / forgetting / window / prior steps)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.models import RidgeRegression

TOL = dict(rtol=1e-10, atol=1e-12)


def _stream(rng, n, d, M, T):
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(n, T))
    ids = rng.integers(0, M, n)
    return X, Y, ids


def _feed(models, X, Y, ids, batches):
    """Feed the multi-target model and the T single-target ones the same batches."""
    multi, singles = models
    start = 0
    for size in batches:
        sl = slice(start, start + size)
        multi.partial_fit(X[sl], Y[sl], ids[sl])
        for t, single in enumerate(singles):
            single.partial_fit(X[sl], Y[sl, t], ids[sl])
        start += size


def _assert_same(multi, singles, Xq):
    for t, single in enumerate(singles):
        np.testing.assert_allclose(multi.A, single.A, **TOL)
        np.testing.assert_allclose(multi.A_inv, single.A_inv, **TOL)
        np.testing.assert_allclose(multi.b[..., t], single.b, **TOL)
        np.testing.assert_allclose(multi.theta[..., t], single.theta, **TOL)
        np.testing.assert_allclose(multi.n_obs, single.n_obs, **TOL)
    mean, var = multi.predict(Xq)
    n, M, T = Xq.shape[0], multi.n_models, multi.n_targets
    assert mean.shape == (n, M, T) and var.shape == (n, M)
    for t, single in enumerate(singles):
        m1, v1 = single.predict(Xq)
        np.testing.assert_allclose(mean[..., t], m1, **TOL)
        np.testing.assert_allclose(var, v1, **TOL)


PATHS = {
    # name: (constructor keywords, batch sizes): one row at a time (Sherman-Morrison/RLS),
    # small and large batches (refactor above 8 rows per model), frequent resyncs,
    # forgetting (refactor of every model), sliding window (rank-1 downdates)
    "rank1": ({}, [1] * 60),
    "small_batches": ({}, [3, 5, 2, 7, 4] * 6),
    "refactor": ({}, [40, 1, 30, 2]),
    "resync": ({"resync_every": 5}, [1, 2, 3] * 10),
    "forgetting": ({"forgetting": 0.9}, [1, 4, 1, 9, 2] * 4),
    "window": ({"window": 11}, [1, 3, 1, 12, 2] * 4),
    "window_large_batch": ({"window": 7, "resync_every": 4}, [20, 1, 1, 15]),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_multitarget_equals_separate_single_target_models(path):
    kwargs, batches = PATHS[path]
    rng = np.random.default_rng(sum(map(ord, path)))
    d, M, T = 4, 3, 3
    X, Y, ids = _stream(rng, sum(batches), d, M, T)
    multi = RidgeRegression(M, d, lam=0.7, n_targets=T, **kwargs)
    singles = [RidgeRegression(M, d, lam=0.7, **kwargs) for _ in range(T)]
    _feed((multi, singles), X, Y, ids, batches)
    _assert_same(multi, singles, rng.normal(size=(6, d)))


@pytest.mark.parametrize("mean_shape", ["per_model", "shared"])
def test_multitarget_set_prior_equals_separate_models(mean_shape):
    rng = np.random.default_rng(3)
    d, M, T = 3, 2, 4
    mean = rng.normal(size=(M, d, T)) if mean_shape == "per_model" else rng.normal(size=(d, T))
    L = rng.normal(size=(M, d, d))
    precision = L @ np.swapaxes(L, 1, 2) + np.eye(d)
    multi = RidgeRegression(M, d, n_targets=T)
    multi.set_prior(mean, precision)
    singles = []
    for t in range(T):
        single = RidgeRegression(M, d)
        single.set_prior(mean[..., t], precision)
        singles.append(single)
    # before any data the posterior mean is the prior mean
    np.testing.assert_allclose(multi.theta, np.broadcast_to(mean, (M, d, T)), **TOL)
    X, Y, ids = _stream(rng, 25, d, M, T)
    _feed((multi, singles), X, Y, ids, [1, 1, 3, 12, 8])
    _assert_same(multi, singles, rng.normal(size=(5, d)))


def test_multitarget_equals_direct_solve_per_model():
    rng = np.random.default_rng(7)
    d, M, T, lam = 5, 3, 2, 1.3
    X, Y, ids = _stream(rng, 80, d, M, T)
    model = RidgeRegression(M, d, lam=lam, n_targets=T)
    for i in range(0, 80, 4):
        model.partial_fit(X[i : i + 4], Y[i : i + 4], ids[i : i + 4])
    for m in range(M):
        Xm, Ym = X[ids == m], Y[ids == m]
        A = lam * np.eye(d) + Xm.T @ Xm
        np.testing.assert_allclose(model.theta[m], np.linalg.solve(A, Xm.T @ Ym), **TOL)
        np.testing.assert_allclose(model.A_inv[m], np.linalg.inv(A), **TOL)


def test_multitarget_predict_with_per_action_features():
    rng = np.random.default_rng(11)
    d, T, K = 4, 3, 5
    multi = RidgeRegression(1, d, n_targets=T)
    singles = [RidgeRegression(1, d) for _ in range(T)]
    X, Y, _ = _stream(rng, 30, d, 1, T)
    _feed((multi, singles), X, Y, np.zeros(30, dtype=np.int64), [10, 1, 19])
    Xq = rng.normal(size=(6, K, d))
    mean, var = multi.predict(Xq)
    assert mean.shape == (6, K, T) and var.shape == (6, K)
    for t, single in enumerate(singles):
        m1, v1 = single.predict(Xq)
        np.testing.assert_allclose(mean[..., t], m1, **TOL)
        np.testing.assert_allclose(var, v1, **TOL)


def test_single_target_default_keeps_its_shapes():
    model = RidgeRegression(3, 4)
    assert model.n_targets is None
    assert model.theta.shape == (3, 4) and model.b.shape == (3, 4)
    model.partial_fit(np.ones((2, 4)), np.ones(2), np.array([0, 2]))
    mean, var = model.predict(np.ones((5, 4)))
    assert mean.shape == (5, 3) and var.shape == (5, 3)
    one = RidgeRegression(3, 4, n_targets=1)
    one.partial_fit(np.ones((2, 4)), np.ones((2, 1)), np.array([0, 2]))
    np.testing.assert_allclose(one.theta[..., 0], model.theta, **TOL)


@pytest.mark.parametrize("window", [None, 6])
def test_multitarget_state_round_trip(window):
    rng = np.random.default_rng(5)
    d, M, T = 3, 2, 2
    X, Y, ids = _stream(rng, 40, d, M, T)
    a = RidgeRegression(M, d, n_targets=T, window=window)
    a.partial_fit(X[:20], Y[:20], ids[:20])
    b = RidgeRegression(M, d, n_targets=T, window=window)
    b.set_state({k: np.array(v) for k, v in a.get_state().items()})
    for model in (a, b):
        for i in range(20, 40):
            model.partial_fit(X[i : i + 1], Y[i : i + 1], ids[i : i + 1])
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.A_inv, b.A_inv)


def test_multitarget_rejects_bad_input():
    with pytest.raises(ValueError, match="n_targets"):
        RidgeRegression(1, 2, n_targets=0)
    model = RidgeRegression(2, 3, n_targets=2)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 2\)"):
        model.partial_fit(np.ones((4, 3)), np.ones(4))
    with pytest.raises(ValueError, match=r"y must have shape \(4, 2\)"):
        model.partial_fit(np.ones((4, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="mean must be finite"):
        model.set_prior(np.zeros(3), np.eye(3))  # single-target mean
    with pytest.raises(ValueError, match=r"state\['b'\]"):
        model.set_state(RidgeRegression(2, 3).get_state())  # single-target state
    with pytest.raises(ValueError, match=r"state\['b'\]"):
        RidgeRegression(2, 3).set_state(model.get_state())


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 4),
    M=st.integers(1, 3),
    T=st.integers(1, 4),
    batches=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    resync=st.integers(1, 30),
    window=st.one_of(st.none(), st.integers(1, 15)),
    seed=st.integers(0, 2**16),
)
def test_multitarget_property_matches_separate_models(d, M, T, batches, resync, window, seed):
    rng = np.random.default_rng(seed)
    X, Y, ids = _stream(rng, sum(batches), d, M, T)
    kw = dict(lam=0.5, resync_every=resync, window=window)
    multi = RidgeRegression(M, d, n_targets=T, **kw)
    singles = [RidgeRegression(M, d, **kw) for _ in range(T)]
    _feed((multi, singles), X, Y, ids, batches)
    # downdates (window) lose a little more precision than pure additions
    for t, single in enumerate(singles):
        np.testing.assert_allclose(multi.theta[..., t], single.theta, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(multi.A_inv, single.A_inv, rtol=1e-8, atol=1e-9)
    # and the shared design is the exact ridge design of the rows each model kept
    kept = slice(max(0, X.shape[0] - window), None) if window else slice(None)
    for m in range(M):
        rows = ids[kept] == m
        Xm, Ym = X[kept][rows], Y[kept][rows]
        A = 0.5 * np.eye(d) + Xm.T @ Xm
        np.testing.assert_allclose(multi.A[m], A, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(
            multi.theta[m], np.linalg.solve(A, Xm.T @ Ym), rtol=1e-6, atol=1e-7
        )
