"""The factor path of ``models.linear.predict_variance`` (large batches on few models, issue
18): ``x^T S x`` as ``||F^T x||^2`` with a Cholesky (or signed eigen-) factor ``F`` of each
covariance. It agrees with the brute-force quadratic form and with the quadratic-feature
path the batched LinUCB / LinTS decisions took before, to rounding, for any matrix; each
batch slice is computed as it would be alone; and decisions only differ at near-ties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.models import linear
from scarce.policies import LinTS, LinUCB


def _covariances(rng, K, d):
    M = rng.normal(size=(K, d, d + 2))
    return np.linalg.inv(M @ M.swapaxes(1, 2) + np.eye(d))


def _brute(X, cov):
    return np.einsum("...nd,...kde,...ne->...nk", X, cov, X)


def _scale(X, cov):
    """``|x|^T |S| |x|``: what the rounding of any route is relative to."""
    return _brute(np.abs(X), np.abs(cov))


def _uses_factor_path(n, K, d):
    return n >= 64 and K <= linear._FACTOR_MAX_MODELS and d >= linear._FACTOR_MIN_FEATURES


@pytest.mark.parametrize(("n", "K", "d"), [(64, 1, 12), (500, 16, 20), (250, 10, 70)])
def test_factor_path_equals_brute_force_and_quadratic_features(n, K, d):
    assert _uses_factor_path(n, K, d)
    rng = np.random.default_rng(n + K + d)
    cov, X = _covariances(rng, K, d), rng.normal(size=(n, d))
    var = linear.predict_variance(X, cov)
    np.testing.assert_allclose(var, _brute(X, cov), rtol=1e-10)
    if d <= linear._QUAD_MAX_FEATURES:  # the route taken before
        np.testing.assert_allclose(var, linear._variance_quadratic(X, cov), rtol=1e-10)


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(64, 300),
    K=st.integers(1, 16),
    d=st.integers(12, 24),
    kind=st.sampled_from(["psd", "singular", "indefinite", "asymmetric"]),
)
@settings(max_examples=40, deadline=None)
def test_factor_path_is_the_quadratic_form_of_any_matrix(seed, n, K, d, kind):
    """Positive definite, singular (rank-deficient), indefinite and non-symmetric matrices:
    the quadratic form to rounding (the fallback factors carry signs)."""
    rng = np.random.default_rng(seed)
    if kind == "psd":
        cov = _covariances(rng, K, d)
    elif kind == "singular":
        B = rng.normal(size=(K, d, d // 2))
        cov = B @ B.swapaxes(1, 2)
    else:
        B = rng.normal(size=(K, d, d))
        cov = B if kind == "asymmetric" else B + B.swapaxes(1, 2)
    X = rng.normal(size=(n, d))
    var = linear.predict_variance(X, cov)
    assert var.shape == (n, K)
    np.testing.assert_array_less(np.abs(var - _brute(X, cov)), 1e-12 * _scale(X, cov) + 1e-300)


def test_non_finite_covariance_propagates_to_its_model_only():
    rng = np.random.default_rng(3)
    K, d, n = 4, 12, 100
    cov, X = _covariances(rng, K, d), rng.normal(size=(n, d))
    cov[2, 0, 1] = np.nan
    var = linear.predict_variance(X, cov)
    assert np.isnan(var[:, 2]).all()
    keep = [0, 1, 3]
    np.testing.assert_allclose(var[:, keep], _brute(X, cov[keep]), rtol=1e-10)


@pytest.mark.parametrize(("n", "K", "d", "indefinite"), [(80, 5, 12, False), (300, 16, 20, True)])
def test_factor_path_batch_slices_equal_each_alone_bitwise(n, K, d, indefinite):
    """Leading batch axes (the replicated simulator) take the same factor and BLAS calls on
    each slice, including a partial last chunk and a slice needing the signed fallback."""
    rng = np.random.default_rng(n)
    S = 3
    cov = np.stack([_covariances(rng, K, d) for _ in range(S)])
    if indefinite:
        B = rng.normal(size=(d, d))
        cov[1, K - 1] = B + B.T
    X = rng.normal(size=(S, n, d))
    var = linear.predict_variance(X, cov)
    for s in range(S):
        np.testing.assert_array_equal(var[s], linear.predict_variance(X[s], cov[s]))
    np.testing.assert_array_less(np.abs(var - _brute(X, cov)), 1e-12 * _scale(X, cov))


def _trained(cls, K, d, seed, **params):
    rng = np.random.default_rng(seed)
    policy = cls(n_actions=K, n_features=d, seed=seed, **params)
    X = rng.normal(size=(3000, d)) / np.sqrt(d)
    policy.update(X, rng.integers(K, size=3000), X[:, 0] + 0.1 * rng.normal(size=3000))
    return policy, rng.normal(size=(5000, d)) / np.sqrt(d)


def _check_scores_and_decisions(decision, reference, eligible=None):
    """Scores to 1e-10 relative; the same action wherever the best eligible score leads
    the runner-up by more than 1e-9 (only exact near-ties may be broken differently)."""
    ref = reference if eligible is None else np.where(eligible, reference, -np.inf)
    fin = np.isfinite(ref)
    assert np.array_equal(fin, np.isfinite(decision.scores))
    np.testing.assert_allclose(decision.scores[fin], ref[fin], rtol=1e-10, atol=1e-12)
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-9 * np.maximum(1.0, np.abs(top2[:, 1]))
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(decision.actions[clear], ref.argmax(axis=1)[clear])


@pytest.mark.parametrize("masked", [False, True])
def test_batched_linucb_matches_the_quadratic_feature_route(masked):
    K, d, alpha = 10, 20, 1.3
    policy, X = _trained(LinUCB, K, d, 11, alpha=alpha)
    theta, cov = policy.model_.theta, policy.model_.A_inv
    reference = X @ theta.T + alpha * np.sqrt(np.maximum(linear._variance_quadratic(X, cov), 0))
    eligible = np.random.default_rng(1).random((X.shape[0], K)) < 0.7 if masked else None
    if masked:
        eligible[:, 0] = True
    decision = policy.decide(X, eligible=eligible)
    _check_scores_and_decisions(decision, reference, eligible)
    np.testing.assert_array_equal(decision.probabilities, 1.0)


def test_batched_lints_matches_the_quadratic_feature_route():
    K, d, v = 10, 20, 0.3
    policy, X = _trained(LinTS, K, d, 12, v=v)
    theta, cov = policy.model_.theta, policy.model_.A_inv
    mean = X @ theta.T
    std = np.sqrt(np.maximum(linear._variance_quadratic(X, cov), 0))
    twin = np.random.Generator(np.random.PCG64())
    twin.bit_generator.state = policy.rng_.bit_generator.state  # the draws decide will make
    reference = mean + v * std * twin.standard_normal((X.shape[0], K))
    decision = policy.decide(X)
    _check_scores_and_decisions(decision, reference)
    probs = linear.gaussian_argmax_probability_of(mean, v * std, decision.actions)
    np.testing.assert_allclose(decision.probabilities, probs, rtol=1e-6, atol=1e-9)
