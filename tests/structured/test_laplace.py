"""meTS-GLM: the Laplace approximation against SciPy's mode and curvature, its plug-in into the
closed forms, and the mini-batch (official-code parity) option."""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit
from structured_tools import random_instance

from scarce.structured import MixedEffectTS, mixing_matrices


def _nll(theta, X, y, ridge):
    z = X @ theta
    return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * ridge * theta @ theta


def _numerical_hessian(f, x, h=1e-4):
    n = x.shape[0]
    H = np.zeros((n, n))
    E = np.eye(n) * h
    for i in range(n):
        for j in range(n):
            H[i, j] = (
                f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j]) + f(x - E[i] - E[j])
            ) / (4 * h * h)
    return H


@pytest.mark.parametrize("ridge", [1e-5, 0.5])
def test_laplace_mode_and_curvature_equal_scipy(ridge):
    rng = np.random.default_rng(0)
    K, L, d = 3, 2, 2
    params = random_instance(rng, K, L, d)
    pol = MixedEffectTS(
        n_actions=K, n_features=d, likelihood="logistic", laplace_ridge=ridge, seed=0, **params
    )
    n = 60
    X = rng.uniform(-1, 1, (n, d))
    a = rng.integers(K, size=n)
    y = (rng.random(n) < expit(X @ np.array([1.0, -2.0]))).astype(float)
    for t in range(n):  # incremental, warm-started refits
        pol.update(X[t : t + 1], a[t : t + 1], y[t : t + 1])
    for i in range(K):
        Xi, yi = X[a == i], y[a == i]
        res = minimize(_nll, np.zeros(d), args=(Xi, yi, ridge), method="BFGS", tol=1e-12)
        np.testing.assert_allclose(pol.mu_lap_[i], res.x, atol=1e-5)
        # G^LAP is the likelihood's curvature at the mode: the penalised Hessian minus ridge I
        H = _numerical_hessian(lambda t, Xi=Xi, yi=yi: _nll(t, Xi, yi, ridge), res.x)
        np.testing.assert_allclose(pol.G_[i], H - ridge * np.eye(d), atol=1e-4)
        np.testing.assert_allclose(pol.B_[i], pol.G_[i] @ pol.mu_lap_[i], atol=1e-12)


def test_laplace_plugs_into_propositions_1_and_2():
    """With the Laplace likelihood N(mu, G^{-1}), the effect posterior is Proposition 1 with
    G^{-1} B -> mu^LAP (explicit inverses here; every action has full-rank G^LAP)."""
    rng = np.random.default_rng(1)
    K, L, d = 3, 2, 2
    params = random_instance(rng, K, L, d)
    pol = MixedEffectTS(n_actions=K, n_features=d, likelihood="logistic", **params)
    X = rng.uniform(-1, 1, (90, d))
    a = np.arange(90) % K
    y = (rng.random(90) < 0.5).astype(float)
    pol.update(X, a, y)
    C = mixing_matrices(params["mixing"], d)
    prec = np.linalg.inv(params["effect_cov"])
    h = prec @ params["effect_mean"]
    for i in range(K):
        P = np.linalg.inv(params["action_cov"][i] + np.linalg.inv(pol.G_[i]))
        prec += C[i].T @ P @ C[i]
        h += C[i].T @ P @ pol.mu_lap_[i]
    mean, cov = pol.effect_posterior()
    np.testing.assert_allclose(cov, np.linalg.inv(prec), atol=1e-9)
    np.testing.assert_allclose(mean, np.linalg.solve(prec, h), atol=1e-9)
    psi = rng.standard_normal(L * d)
    L0 = np.linalg.inv(params["action_cov"][0])
    S = np.linalg.inv(L0 + pol.G_[0])
    cm, cc = pol.conditional_action_posterior(0, psi)
    np.testing.assert_allclose(cc, S, atol=1e-10)
    np.testing.assert_allclose(cm, S @ (L0 @ C[0] @ psi + pol.G_[0] @ pol.mu_lap_[0]), atol=1e-10)


def test_laplace_batch_caps_the_precision():
    """With laplace_batch=k the curvature comes from k resampled points, so it stops growing
    with the history; the full-history default keeps growing."""
    rng = np.random.default_rng(2)
    d = 2
    X = rng.uniform(-1, 1, (600, d))
    y = (rng.random(600) < expit(X @ np.array([0.5, -0.5]))).astype(float)
    traces = {}
    for batch in (None, 30):
        pol = MixedEffectTS(
            n_actions=1,
            n_features=d,
            mixing=np.ones((1, 1)),
            likelihood="logistic",
            laplace_batch=batch,
            seed=3,
        )
        out = []
        for start in range(0, 600, 20):
            pol.update(X[start : start + 20], np.zeros(20, int), y[start : start + 20])
            out.append(np.trace(pol.G_[0]))
        traces[batch] = np.array(out)
    full, capped = traces[None], traces[30]
    assert full[-1] > 15 * full[0] / 2  # grows roughly linearly with 600 vs 20 points
    assert capped[-1] < 2.0 * capped[1]  # bounded by the curvature of ~30 points
    assert np.all(capped <= 30 * 0.25 * 2 + 1e-9)  # 30 points, sigmoid' <= 1/4, ||x||^2 <= 2
