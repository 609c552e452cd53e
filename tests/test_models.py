"""Exact checks of the models against closed forms and brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import expit

from scarce.models import LogisticRegression, RidgeRegression, linear


def _direct_ridge(X, y, lam):
    d = X.shape[1]
    A = lam * np.eye(d) + X.T @ X
    return np.linalg.solve(A, X.T @ y), np.linalg.inv(A)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(1, 6),
    lam=st.floats(0.05, 10.0),
    batch=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_ridge_rank_one_updates_equal_direct_solve(n, d, lam, batch, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    model = RidgeRegression(1, d, lam=lam)
    for start in range(0, n, batch):
        model.partial_fit(X[start : start + batch], y[start : start + batch])
    theta, cov = _direct_ridge(X, y, lam)
    np.testing.assert_allclose(model.theta[0], theta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(model.A_inv[0], cov, rtol=1e-7, atol=1e-9)


def test_ridge_posterior_equals_joint_gaussian_conditioning():
    """With prior theta ~ N(0, s^2/lam I) and noise N(0, s^2), the posterior of theta given y
    from the joint Gaussian of (theta, y) equals (A^{-1} b, s^2 A^{-1})."""
    rng = np.random.default_rng(3)
    n, d, lam, s = 15, 4, 2.0, 0.7
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    model = RidgeRegression(1, d, lam=lam)
    model.partial_fit(X, y)
    prior = (s**2 / lam) * np.eye(d)
    cov_yy = X @ prior @ X.T + s**2 * np.eye(n)
    cov_ty = prior @ X.T
    mean = cov_ty @ np.linalg.solve(cov_yy, y)
    cov = prior - cov_ty @ np.linalg.solve(cov_yy, cov_ty.T)
    np.testing.assert_allclose(model.theta[0], mean, atol=1e-10)
    np.testing.assert_allclose(s**2 * model.A_inv[0], cov, atol=1e-10)


def test_ridge_disjoint_models_are_independent():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = rng.normal(size=30)
    ids = rng.integers(0, 3, size=30)
    model = RidgeRegression(3, 3, lam=0.5)
    model.partial_fit(X[:10], y[:10], ids[:10])
    for i in range(10, 30):
        model.partial_fit(X[i : i + 1], y[i : i + 1], ids[i : i + 1])
    for m in range(3):
        theta, cov = _direct_ridge(X[ids == m], y[ids == m], 0.5)
        np.testing.assert_allclose(model.theta[m], theta, atol=1e-9)
        np.testing.assert_allclose(model.A_inv[m], cov, atol=1e-9)


def test_ridge_window_keeps_only_recent_observations():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    y = rng.normal(size=50)
    model = RidgeRegression(1, 3, lam=1.0, window=7)
    for i in range(50):
        model.partial_fit(X[i : i + 1], y[i : i + 1])
    theta, cov = _direct_ridge(X[-7:], y[-7:], 1.0)
    np.testing.assert_allclose(model.theta[0], theta, atol=1e-8)
    np.testing.assert_allclose(model.A_inv[0], cov, atol=1e-8)


def test_ridge_forgetting_matches_weighted_ridge():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    y = rng.normal(size=40)
    g = 0.9
    model = RidgeRegression(1, 3, lam=1.0, forgetting=g)
    model.partial_fit(X[:15], y[:15])
    for i in range(15, 40):
        model.partial_fit(X[i : i + 1], y[i : i + 1])
    w = g ** np.arange(39, -1, -1)
    A = np.eye(3) + (X * w[:, None]).T @ X
    np.testing.assert_allclose(
        model.theta[0], np.linalg.solve(A, (X * w[:, None]).T @ y), atol=1e-9
    )
    np.testing.assert_allclose(model.A_inv[0], np.linalg.inv(A), atol=1e-9)


def test_ridge_rejects_bad_parameters():
    with pytest.raises(ValueError, match="lam"):
        RidgeRegression(1, 2, lam=0.0)
    with pytest.raises(ValueError, match="forgetting"):
        RidgeRegression(1, 2, forgetting=1.5)
    with pytest.raises(ValueError, match="window"):
        RidgeRegression(1, 2, window=0)


def test_logistic_mle_and_laplace_match_scipy():
    rng = np.random.default_rng(4)
    n, d, lam = 80, 3, 0.8
    X = rng.normal(size=(n, d))
    y = (rng.random(n) < expit(X @ np.array([1.0, -2.0, 0.5]))).astype(float)
    model = LogisticRegression(1, d, lam=lam, tol=1e-12)
    for start in range(0, n, 9):
        model.partial_fit(X[start : start + 9], y[start : start + 9])

    def nll(t):
        z = X @ t
        return np.sum(np.logaddexp(0, z) - y * z) + 0.5 * lam * t @ t

    ref = minimize(nll, np.zeros(d), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(model.theta[0], ref, atol=1e-6)
    p = expit(X @ ref)
    H = (X * (p * (1 - p))[:, None]).T @ X + lam * np.eye(d)
    np.testing.assert_allclose(model.laplace_cov[0], np.linalg.inv(H), atol=1e-6)
    np.testing.assert_allclose(
        model.design_cov[0], np.linalg.inv(lam * np.eye(d) + X.T @ X), atol=1e-9
    )


def test_predict_shapes_and_values_both_layouts():
    rng = np.random.default_rng(5)
    theta = rng.normal(size=(4, 3))
    cov = np.stack([np.eye(3) * (k + 1) for k in range(4)])
    X = rng.normal(size=(6, 3))
    mean, var = linear.predict(X, theta, cov)
    np.testing.assert_allclose(mean, X @ theta.T)
    np.testing.assert_allclose(var, (X**2).sum(1)[:, None] * np.arange(1, 5)[None, :])
    X3 = rng.normal(size=(6, 4, 3))
    mean3, var3 = linear.predict(X3, theta[:1], cov[:1])
    np.testing.assert_allclose(mean3, X3 @ theta[0])
    np.testing.assert_allclose(var3, (X3**2).sum(-1))


def test_gaussian_argmax_probabilities_match_monte_carlo():
    rng = np.random.default_rng(6)
    mean = rng.normal(size=(3, 5))
    std = rng.uniform(0.2, 1.5, size=(3, 5))
    eligible = np.ones((3, 5), dtype=bool)
    eligible[1, [0, 3]] = False
    exact = linear.gaussian_argmax_probabilities(mean, std, eligible)
    draws = mean[None] + std[None] * rng.standard_normal((200_000, 3, 5))
    draws = np.where(eligible[None], draws, -np.inf)
    winners = np.argmax(draws, axis=2)
    mc = np.stack([(winners == k).mean(0) for k in range(5)], axis=1)
    np.testing.assert_allclose(exact, mc, atol=4e-3)
    np.testing.assert_allclose(exact.sum(1), 1.0)
    assert np.all(exact[1, [0, 3]] == 0)
    chosen = np.array([2, 1, 4])
    np.testing.assert_allclose(
        linear.gaussian_argmax_probability_of(mean, std, chosen, eligible),
        exact[np.arange(3), chosen],
        atol=1e-5,
    )


def test_sample_scores_have_posterior_moments():
    rng = np.random.default_rng(7)
    theta = np.array([[1.0, -1.0]])
    cov = np.array([[[0.5, 0.2], [0.2, 0.3]]])
    X3 = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    draws = np.concatenate([linear.sample_scores(X3, theta, cov, 2.0, rng) for _ in range(40_000)])
    expected_cov = 4.0 * X3[0] @ cov[0] @ X3[0].T
    np.testing.assert_allclose(draws.mean(0), X3[0] @ theta[0], atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), expected_cov, atol=0.05)


def test_ridge_set_prior_gives_the_conjugate_gaussian_posterior():
    """With prior N(mu0, P0^{-1}) and unit noise, the posterior is
    N((P0 + X^T X)^{-1} (P0 mu0 + X^T y), (P0 + X^T X)^{-1}), whatever the update path."""
    rng = np.random.default_rng(12)
    d = 3
    L = rng.normal(size=(2, d, d))
    P0 = L @ np.swapaxes(L, 1, 2) + 0.5 * np.eye(d)
    mu0 = rng.normal(size=(2, d))
    model = RidgeRegression(2, d, resync_every=5)
    model.set_prior(mu0, P0)
    X, y, ids = rng.normal(size=(30, d)), rng.normal(size=30), rng.integers(0, 2, 30)
    for i in range(0, 30, 3):  # rank-1 updates and resyncs
        model.partial_fit(X[i : i + 3], y[i : i + 3], ids[i : i + 3])
    for m in range(2):
        Xm, ym = X[ids == m], y[ids == m]
        cov = np.linalg.inv(P0[m] + Xm.T @ Xm)
        np.testing.assert_allclose(model.A_inv[m], cov, atol=1e-10)
        np.testing.assert_allclose(model.theta[m], cov @ (P0[m] @ mu0[m] + Xm.T @ ym), atol=1e-10)


def test_ridge_set_prior_rejects_bad_input():
    model = RidgeRegression(2, 2)
    with pytest.raises(ValueError, match="precision must be positive definite"):
        model.set_prior(np.zeros(2), -np.eye(2))
    with pytest.raises(ValueError, match="mean must be finite with shape"):
        model.set_prior(np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="forgetting"):
        RidgeRegression(1, 2, forgetting=0.9).set_prior(np.zeros(2), np.eye(2))
    model.partial_fit(np.ones((1, 2)), np.ones(1))
    with pytest.raises(ValueError, match="before any observation"):
        model.set_prior(np.zeros(2), np.eye(2))
