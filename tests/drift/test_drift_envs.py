"""Time-varying environments: exact expected rewards at the right times."""

from __future__ import annotations

import numpy as np
import pytest

from scarce.drift import DriftingLinearEnv, PiecewiseLinearEnv
from scarce.policies import Random
from scarce.sim import run


def test_piecewise_expected_rewards_follow_the_segments():
    env = PiecewiseLinearEnv(n_actions=3, n_features=4, change_every=5, n_segments=3, seed=0)
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(4):  # 4 batches of 4: times 0..15 cross changes at 5, 10, 15
        X = env.contexts(4, rng)
        mu = env.expected_rewards(X)
        times = np.arange(len(seen) * 4, len(seen) * 4 + 4)
        for i, t in enumerate(times):
            seg = (t // 5) % 3
            np.testing.assert_allclose(mu[i], env.thetas[seg] @ X[i])
        seen.append(mu)
    assert env.t == 16
    np.testing.assert_allclose(np.linalg.norm(env.thetas, axis=-1), 1.0)
    np.testing.assert_array_equal(env.change_points(16), [5, 10, 15])
    # noiseless outcomes are the expected rewards
    quiet = PiecewiseLinearEnv(n_actions=3, n_features=4, noise_std=0.0, seed=1)
    X = quiet.contexts(6, rng)
    np.testing.assert_allclose(quiet.full_outcomes(X, rng), quiet.expected_rewards(X))


def test_drifting_parameters_turn_smoothly_and_periodically():
    env = DriftingLinearEnv(n_actions=4, n_features=6, period=100.0, seed=2)
    t = np.arange(0, 300)
    theta = env.theta_at(t)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=-1), 1.0)
    np.testing.assert_allclose(env.theta_at(t + 100), theta, atol=1e-12)
    step = np.linalg.norm(np.diff(theta, axis=0), axis=-1)
    np.testing.assert_allclose(step, 2 * np.sin(np.pi / 100))
    X = np.random.default_rng(3).normal(size=(3, 6))
    np.testing.assert_allclose(
        env.expected_rewards_at(X, np.array([0, 50, 7])),
        np.stack([theta[0] @ X[0], theta[50] @ X[1], theta[7] @ X[2]]),
    )


def test_scoring_refers_to_the_last_batch_and_bad_arguments_rejected():
    env = PiecewiseLinearEnv(seed=0)
    X = env.contexts(3)
    with pytest.raises(ValueError, match="last batch"):
        env.expected_rewards(X[:2])
    with pytest.raises(ValueError, match="times"):
        env.expected_rewards_at(X, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="change_every"):
        PiecewiseLinearEnv(change_every=0)
    with pytest.raises(ValueError, match="period"):
        DriftingLinearEnv(period=0.0)
    with pytest.raises(ValueError, match="n_features"):
        DriftingLinearEnv(n_features=1)
    env.reset()
    assert env.t == 0


def test_simulator_regret_is_exact_across_changes():
    env = PiecewiseLinearEnv(n_actions=3, n_features=3, change_every=50, noise_std=0.0, seed=4)
    trace = run(Random(n_actions=3, n_features=3, seed=0), env, 120, batch_size=7, seed=0)
    assert np.all(trace.regret >= 0) and np.isfinite(trace.regret).all()
    # noiseless: realised reward = expected reward of the chosen action at its own time
    np.testing.assert_allclose(trace.reward, trace.expected_reward)
