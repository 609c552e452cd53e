"""The base level's selection rule against brute force; outcome models."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.fair import (
    History,
    LinearOutcomeModel,
    NeuralOutcomeModel,
    RandomAllocator,
    synthetic_env,
)
from scarce.fair.models import block_features, observational_prior
from scarce.fair.population import NEVER
from scarce.fair.selection import quota_round, sort_scores
from scarce.feedback import AllocationLog, KernelConvolvedLS, fit_ridge
from scarce.sim import run


def brute_round(scores, groups, quotas, last, t, cooldowns, order):
    n, R = scores.shape
    take = np.zeros((n, R), dtype=bool)
    served = np.zeros(n, dtype=bool)
    for r in order:
        for k in range(quotas.shape[0]):
            members = [
                i
                for i in range(n)
                if groups[i] == k and not served[i] and t - last[i, r] > cooldowns[r]
            ]
            members.sort(key=lambda i: -scores[i, r])
            for i in members[: quotas[k, r]]:
                take[i, r] = True
                served[i] = True
                last[i, r] = t
    return take


@settings(max_examples=60)
@given(st.integers(0, 100_000), st.integers(1, 4), st.integers(1, 3), st.integers(1, 30))
def test_quota_round_matches_brute_force(seed, K, R, n):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n, R))  # continuous: no ties
    groups = rng.integers(K, size=n)
    cooldowns = rng.integers(0, 3, R)
    last = np.where(rng.random((n, R)) < 0.3, 5 - rng.integers(1, 4, (n, R)), NEVER)
    C = 3
    quotas = rng.integers(0, 6, (C, K, R))
    order = np.argsort(-rng.integers(1, 10, R), kind="stable")
    ss = sort_scores(scores, groups, rng)
    lasts = np.repeat(last[None], C, axis=0)
    got = quota_round(ss, quotas, lasts, 5, cooldowns, order)
    for c in range(C):
        lb = last.copy()
        want = brute_round(scores, groups, quotas[c], lb, 5, cooldowns, order)
        np.testing.assert_array_equal(got[c], want)
        np.testing.assert_array_equal(lasts[c], lb)


@pytest.fixture(scope="module")
def logged():
    """A random allocator's history over 48 rounds of a noiseless type-2 world with 2 cohorts
    (so late increments of former members come back as remainder rows)."""
    env = synthetic_env(400, kernel="type2", n_cohorts=2, noise_sd=0.0, seed=0)
    policy = RandomAllocator(n_actions=3, n_features=5, seed=0)
    n = env.cohort_size
    run(policy, env, 48 * n, batch_size=n, seed=0, record_probabilities=False)
    assert (policy.history_.observations().unit == -1).any()
    return env, policy.history_


def test_history_state_round_trips(logged):
    _, history = logged
    copy = History(5)
    copy.set_state(history.get_state())
    for a, b in zip(copy.allocations(), history.allocations(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(copy.observations().value, history.observations().value)


def test_online_kernel_ls_equals_batch_refit(logged):
    env, history = logged
    K = env.resources.kernels
    model = LinearOutcomeModel(5, K)
    for now in (7, 8, 20, 33, 47):
        model.fit(history, now)
    u, r, t, _, X = history.allocations()
    alloc = AllocationLog(u, r, t, block_features(X, r, 2))
    Z, y, w = KernelConvolvedLS().design(alloc, history.observations(), K, 47)
    batch = fit_ridge(Z, y, w, lam=1.0)
    np.testing.assert_allclose(model.theta, batch.theta[0], atol=1e-10)
    np.testing.assert_allclose(model.A_inv, batch.A_inv[0], atol=1e-10)


def test_linear_model_recovers_true_effects_from_noiseless_delayed_increments(logged):
    env, history = logged
    model = LinearOutcomeModel(5, env.resources.kernels, lam=1e-6)
    model.fit(history, 47)
    mean, sd = model.predict(env.population.X)
    np.testing.assert_allclose(mean, env.effects, atol=1e-4)
    assert np.all(sd >= 0)
    draws = model.sample(env.population.X[:5], 200, np.random.default_rng(0))
    assert draws.shape == (200, 5, 2)
    copy = LinearOutcomeModel(5, env.resources.kernels, lam=1e-6)
    copy.set_state(model.get_state())
    np.testing.assert_array_equal(copy.predict(env.population.X[:5])[0], mean[:5])


def test_linear_model_widths_shrink_with_data(logged):
    env, history = logged
    model = LinearOutcomeModel(5, env.resources.kernels)
    model.fit(history, 10)
    _, sd_early = model.predict(env.population.X)
    model.fit(history, 47)
    _, sd_late = model.predict(env.population.X)
    assert sd_late.mean() < sd_early.mean()


@pytest.mark.parametrize("uncertainty", ["neural_linear", "mc_dropout", "gaussian_head"])
def test_neural_models_fit_predict_sample_and_save(logged, uncertainty):
    env, history = logged
    kw = {"uncertainty": uncertainty, "hidden": (16, 8), "epochs": 15, "seed": 0}
    model = NeuralOutcomeModel(5, env.resources.kernels, **kw)
    X = env.population.X[:50]
    model.fit(history, 47)
    mean, sd = model.predict(X)
    assert mean.shape == sd.shape == (50, 2)
    assert np.all(sd >= 0) and sd.mean() > 0
    corr = np.corrcoef(mean.ravel(), env.effects[:50].ravel())[0, 1]
    assert corr > 0.5  # the network learned something
    s = model.sample(X, 4, np.random.default_rng(0))
    assert s.shape == (4, 50, 2) and np.all(np.isfinite(s))
    assert np.std(s, axis=0).mean() > 0
    copy = NeuralOutcomeModel(5, env.resources.kernels, **{**kw, "seed": 1})
    copy.set_state(model.get_state())
    np.testing.assert_allclose(copy.predict(X)[0], mean)
    # the whole state travels, dropout masks' generator included: the same widths next
    copy.set_state(model.get_state())
    np.testing.assert_allclose(copy.predict(X)[1], model.predict(X)[1])


def test_neural_linear_width_shrinks_with_more_data(logged):
    env, history = logged
    X = env.population.X[:100]
    m = NeuralOutcomeModel(5, env.resources.kernels, hidden=(16, 8), epochs=10, seed=0)
    m.fit(history, 12)
    _, early = m.predict(X)
    m.fit(history, 47)
    _, late = m.predict(X)
    assert late.mean() < early.mean()


def test_model_validation():
    env = synthetic_env(50, seed=0)
    with pytest.raises(ValueError, match="uncertainty must be one of"):
        NeuralOutcomeModel(5, env.resources.kernels, uncertainty="ensemble")
    with pytest.raises(ValueError, match="attribution must be one of"):
        LinearOutcomeModel(5, env.resources.kernels, attribution="magic")
    with pytest.raises(ValueError, match="prior_theta must have shape"):
        LinearOutcomeModel(5, env.resources.kernels, prior_theta=np.zeros(3))


def test_observational_prior_recovers_effect_coefficients():
    rng = np.random.default_rng(0)
    n, d, R = 6000, 3, 2
    X = rng.normal(size=(n, d))
    t = rng.integers(-1, R, n)
    theta = rng.normal(size=(R, d + 1))
    eff = np.where(t[:, None] >= 0, np.concatenate([np.ones((n, 1)), X], 1) @ theta.T, 0.0)
    y = X @ rng.normal(size=d) + eff[np.arange(n), np.maximum(t, 0)] * (t >= 0)
    prior = observational_prior(X, t, y + rng.normal(0, 0.05, n), R, lam=1e-6)
    np.testing.assert_allclose(prior, theta.reshape(-1), atol=0.01)


def test_prior_is_the_starting_point_and_is_shrunk_towards(logged):
    env, history = logged
    K = env.resources.kernels
    prior = np.arange(12, dtype=float) / 10
    m = LinearOutcomeModel(5, K, prior_theta=prior, lam=1e-6)
    np.testing.assert_array_equal(m.theta, prior)
    m.fit(history, 47)
    mean, _ = m.predict(env.population.X)
    np.testing.assert_allclose(mean, env.effects, atol=1e-4)  # noiseless: the truth
    stiff = LinearOutcomeModel(5, K, prior_theta=prior, lam=1e9)
    stiff.fit(history, 47)
    np.testing.assert_allclose(stiff.theta, prior, atol=1e-3)
