"""Synthetic environments: shapes, exact oracles, seeding and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from scarce.envs import Environment, LinearGaussianEnv, LogisticEnv

ENV_CLASSES = [LinearGaussianEnv, LogisticEnv]


@pytest.mark.parametrize("cls", ENV_CLASSES)
@pytest.mark.parametrize("action_features", [False, True])
def test_shapes(cls, action_features):
    env = cls(n_actions=4, n_features=3, action_features=action_features, seed=0)
    assert isinstance(env, Environment)
    X = env.contexts(7)
    assert X.shape == ((7, 4, 3) if action_features else (7, 3))
    assert X.dtype == np.float64
    assert env.expected_rewards(X).shape == (7, 4)
    assert env.full_outcomes(X).shape == (7, 4)
    assert env.outcomes(X, np.arange(7) % 4).rewards.shape == (7,)
    assert env.theta.shape == ((3,) if action_features else (4, 3))
    assert env.describe()["n_actions"] == 4


@given(
    n_actions=st.integers(1, 6),
    n_features=st.integers(1, 6),
    n=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    action_features=st.booleans(),
)
@settings(max_examples=25, deadline=None)
def test_linear_expected_rewards_are_exact(n_actions, n_features, n, seed, action_features):
    env = LinearGaussianEnv(
        n_actions=n_actions, n_features=n_features, action_features=action_features, seed=seed
    )
    X = env.contexts(n)
    expected = env.expected_rewards(X)
    manual = X @ env.theta if action_features else X @ env.theta.T
    np.testing.assert_array_equal(expected, manual)
    np.testing.assert_allclose(np.linalg.norm(env.theta, axis=-1), 1.0)
    assert expected.shape == (n, n_actions)


def test_logistic_expected_rewards_and_theta_norm():
    env = LogisticEnv(n_actions=5, n_features=4, scale=2.5, seed=3)
    np.testing.assert_allclose(np.linalg.norm(env.theta, axis=1), 2.5)
    X = env.contexts(11)
    np.testing.assert_allclose(env.expected_rewards(X), expit(X @ env.theta.T))
    envf = LogisticEnv(n_actions=5, n_features=4, action_features=True, seed=3)
    Xf = envf.contexts(11)
    np.testing.assert_allclose(envf.expected_rewards(Xf), expit(Xf @ envf.theta))
    np.testing.assert_allclose(np.linalg.norm(envf.theta), 3.0)


def test_linear_noisy_outcomes_average_to_expected():
    env = LinearGaussianEnv(n_actions=3, n_features=5, noise_std=0.5, seed=1)
    X = env.contexts(4)
    reps = 5000
    draws = env.full_outcomes(np.tile(X, (reps, 1)), rng=np.random.default_rng(2))
    draws = draws.reshape(reps, 4, 3)
    # standard error 0.5 / sqrt(5000) ~ 0.007; 5 standard errors
    np.testing.assert_allclose(draws.mean(axis=0), env.expected_rewards(X), atol=0.035)
    resid = draws - env.expected_rewards(X)
    assert abs(resid.std() - 0.5) < 0.02


def test_logistic_outcomes_are_bernoulli_with_expected_mean():
    env = LogisticEnv(n_actions=3, n_features=2, seed=4)
    X = env.contexts(3)
    reps = 5000
    draws = env.full_outcomes(np.tile(X, (reps, 1)), rng=np.random.default_rng(5))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert draws.dtype == np.float64
    mean = draws.reshape(reps, 3, 3).mean(axis=0)
    # Bernoulli standard error <= 0.5 / sqrt(5000) ~ 0.007
    np.testing.assert_allclose(mean, env.expected_rewards(X), atol=0.035)


def test_noiseless_outcomes_equal_expected():
    env = LinearGaussianEnv(n_actions=3, n_features=4, noise_std=0.0, seed=0)
    X = env.contexts(6)
    np.testing.assert_array_equal(env.full_outcomes(X), env.expected_rewards(X))
    acts = np.array([0, 1, 2, 2, 1, 0])
    np.testing.assert_array_equal(
        env.outcomes(X, acts).rewards, env.expected_rewards(X)[np.arange(6), acts]
    )


@pytest.mark.parametrize("cls", ENV_CLASSES)
def test_same_seed_same_problem_contexts_and_outcomes(cls):
    a, b = cls(n_actions=4, n_features=3, seed=42), cls(n_actions=4, n_features=3, seed=42)
    np.testing.assert_array_equal(a.theta, b.theta)
    Xa, Xb = a.contexts(10), b.contexts(10)
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(a.full_outcomes(Xa), b.full_outcomes(Xb))
    c = cls(n_actions=4, n_features=3, seed=43)
    assert not np.array_equal(a.theta, c.theta)


@pytest.mark.parametrize("cls", ENV_CLASSES)
def test_rng_argument_overrides_own_stream(cls):
    a, b = cls(n_actions=4, n_features=3, seed=1), cls(n_actions=4, n_features=3, seed=2)
    Xa = a.contexts(5, rng=np.random.default_rng(9))
    Xb = b.contexts(5, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(Xa, Xb)
    # outcome draws follow the rng too (the problems differ, so compare against the same env)
    o1 = a.full_outcomes(Xa, rng=np.random.default_rng(3))
    o2 = a.full_outcomes(Xa, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(o1, o2)
    # the env's own stream was not advanced by calls given an rng
    fresh = cls(n_actions=4, n_features=3, seed=1)
    np.testing.assert_array_equal(a.contexts(5), fresh.contexts(5))


def test_outcome_draws_do_not_depend_on_actions():
    env = LinearGaussianEnv(n_actions=3, n_features=2, seed=0)
    X = env.contexts(5)
    full = env.full_outcomes(X, rng=np.random.default_rng(7))
    acts = np.array([2, 0, 1, 1, 0])
    chosen = env.outcomes(X, acts, rng=np.random.default_rng(7)).rewards
    np.testing.assert_array_equal(chosen, full[np.arange(5), acts])


@pytest.mark.parametrize(
    "cls,kwargs,argname",
    [
        (LinearGaussianEnv, {"n_actions": 0}, "n_actions"),
        (LinearGaussianEnv, {"n_actions": 2.5}, "n_actions"),
        (LinearGaussianEnv, {"n_actions": True}, "n_actions"),
        (LinearGaussianEnv, {"n_features": 0}, "n_features"),
        (LinearGaussianEnv, {"noise_std": -0.1}, "noise_std"),
        (LinearGaussianEnv, {"noise_std": float("nan")}, "noise_std"),
        (LinearGaussianEnv, {"action_features": "yes"}, "action_features"),
        (LogisticEnv, {"n_actions": -1}, "n_actions"),
        (LogisticEnv, {"n_features": "3"}, "n_features"),
        (LogisticEnv, {"scale": 0.0}, "scale"),
        (LogisticEnv, {"scale": float("inf")}, "scale"),
        (LogisticEnv, {"action_features": 1}, "action_features"),
    ],
)
def test_bad_constructor_args_name_the_argument(cls, kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        cls(**kwargs)


def test_bad_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        LinearGaussianEnv(seed=-1)


@pytest.mark.parametrize("cls", ENV_CLASSES)
def test_bad_contexts_and_actions_are_rejected(cls):
    env = cls(n_actions=3, n_features=4, seed=0)
    with pytest.raises(ValueError, match="X"):
        env.expected_rewards(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="X"):
        env.expected_rewards(np.zeros((2, 3, 4)))  # per-action features to a disjoint env
    with pytest.raises(ValueError, match="NaN"):
        env.expected_rewards(np.full((2, 4), np.nan))
    X = env.contexts(2)
    with pytest.raises(ValueError, match="actions"):
        env.outcomes(X, np.array([0, 3]))
    with pytest.raises(ValueError, match="actions"):
        env.outcomes(X, np.array([-1, 0]))
    with pytest.raises(ValueError, match="actions"):
        env.outcomes(X, np.array([0]))
    with pytest.raises(ValueError, match="n must be"):
        env.contexts(0)
    envf = cls(n_actions=3, n_features=4, action_features=True, seed=0)
    with pytest.raises(ValueError, match="X"):
        envf.expected_rewards(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="X"):
        envf.expected_rewards(np.zeros((2, 2, 4)))


def test_single_case_vector_is_a_batch_of_one():
    env = LinearGaussianEnv(n_actions=3, n_features=4, seed=0)
    x = env.contexts(1)[0]
    assert env.expected_rewards(x).shape == (1, 3)


def test_logistic_default_scale_separates_best_action():
    env = LogisticEnv(seed=0)
    p = np.sort(env.expected_rewards(env.contexts(4000, rng=np.random.default_rng(0))), axis=1)
    assert p[:, -1].mean() > 0.65
    assert (p[:, -1] - p[:, -2]).mean() > 0.04
