import math

import numpy as np
import pandas as pd
import pytest
from simtools import NoOracleEnv, OraclePolicy, RecordingPolicy, ToyEnv

from scarce.envs import make_env
from scarce.policies import LinTS, LinUCB, Random
from scarce.sim import TRACE_COLUMNS, Trace, run


def linucb(env, seed=0):
    return LinUCB(n_actions=env.n_actions, n_features=env.n_features, seed=seed)


@pytest.mark.parametrize("batch_size", [1, 4, 5, 16, 17, 40])
def test_exactly_horizon_cases(batch_size):
    env = ToyEnv(seed=0)
    trace = run(linucb(env), env, 17, batch_size=batch_size, seed=1)
    assert len(trace) == trace.horizon == 17
    np.testing.assert_array_equal(trace.step, np.arange(1, 18))
    assert trace.round[-1] == math.ceil(17 / batch_size) - 1
    np.testing.assert_array_equal(np.bincount(trace.round)[:-1], batch_size)
    for name in TRACE_COLUMNS:
        assert getattr(trace, name).shape == (17,)


def test_policy_sees_truncated_last_batch():
    env = ToyEnv(seed=0)
    policy = RecordingPolicy(n_actions=3, n_features=2, seed=0)
    run(policy, env, 10, batch_size=4, seed=0)
    assert [x.shape[0] for x in policy.seen_X] == [4, 4, 2]
    assert [u["n"] for u in policy.updates] == [4, 4, 2]
    assert policy.n_updates_ == 10


def test_same_seed_same_trace_and_different_seed_differs():
    def go(seed):
        env = ToyEnv(seed=3)
        return run(LinTS(n_actions=3, n_features=2, seed=7), env, 50, batch_size=3, seed=seed)

    assert go(11) == go(11)
    assert not np.array_equal(go(11).reward, go(12).reward)


def test_generator_seed_is_accepted():
    env = ToyEnv(seed=3)
    a = run(linucb(env), env, 20, seed=np.random.default_rng(5))
    b = run(linucb(env), ToyEnv(seed=3), 20, seed=np.random.default_rng(5))
    assert a == b


def test_common_random_numbers_across_policies():
    """Contexts come from their own stream: different policies see the same cases."""
    seen = []
    for seed in (0, 1):
        policy = RecordingPolicy(n_actions=3, n_features=2, seed=seed)  # different actions
        run(policy, ToyEnv(seed=0), 12, batch_size=5, seed=42)
        seen.append(np.concatenate(policy.seen_X))
    np.testing.assert_array_equal(seen[0], seen[1])


def test_oracle_policy_has_zero_regret():
    env = ToyEnv(n_actions=4, n_features=3, seed=0)
    policy = OraclePolicy(n_actions=4, n_features=3, env=env)
    trace = run(policy, env, 64, batch_size=7, seed=0)
    assert np.all(trace.regret == 0.0)
    assert trace.optimal.all()
    assert trace.summary()["cumulative_regret"] == 0.0
    assert trace.summary()["reward_to_opt"] == 1.0
    np.testing.assert_allclose(trace.expected_reward, trace.best_expected_reward)


def test_regret_is_exact_expected_regret():
    env = ToyEnv(seed=2)
    trace = run(Random(n_actions=3, n_features=2, seed=0), env, 30, seed=4)
    np.testing.assert_allclose(trace.regret, trace.best_expected_reward - trace.expected_reward)
    assert np.all(trace.regret >= 0)
    np.testing.assert_allclose(trace.cumulative_regret, np.cumsum(trace.regret))
    np.testing.assert_allclose(trace.probability, 1 / 3)


def test_full_information_feedback():
    env = ToyEnv(seed=0)
    policy = RecordingPolicy(n_actions=3, n_features=2, seed=0)
    trace = run(policy, env, 9, batch_size=4, seed=0, feedback="full")
    assert [u["full"].shape for u in policy.updates] == [(4, 3), (4, 3), (1, 3)]
    full = np.concatenate([u["full"] for u in policy.updates])
    np.testing.assert_array_equal(full[np.arange(9), trace.action], trace.reward)
    # a learning policy accepts full information too, and learns every action from each case
    learner = linucb(env)
    run(learner, env, 20, feedback="full", seed=0)
    np.testing.assert_array_equal(learner.model_.n_obs, 20)


def test_environment_without_oracle():
    env = NoOracleEnv(seed=0)
    trace = run(Random(n_actions=3, n_features=2, seed=0), env, 10, seed=0)
    assert not trace.has_oracle
    assert np.isnan(trace.regret).all()
    summary = trace.summary()
    assert math.isnan(summary["cumulative_regret"]) and summary["horizon"] == 10
    assert summary["mean_reward"] == pytest.approx(trace.reward.mean())


def test_trace_frame_and_summary():
    env = ToyEnv(seed=0)
    trace = run(linucb(env), env, 25, batch_size=2, seed=0)
    frame = trace.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(TRACE_COLUMNS) and len(frame) == 25
    s = trace.summary()
    assert {"cumulative_reward", "cumulative_regret", "mean_reward", "horizon"} <= set(s)
    assert s["cumulative_reward"] == pytest.approx(trace.cumulative_reward[-1])
    assert s["cumulative_regret"] == pytest.approx(trace.cumulative_regret[-1])
    assert isinstance(trace, Trace) and trace.policy == "LinUCB" and trace.env == "toy"


def test_per_action_features_env():
    env = make_env("linear-features", n_actions=4, n_features=3, seed=0)
    policy = LinUCB(n_actions=4, n_features=3, seed=0)
    trace = run(policy, env, 30, batch_size=4, seed=0)
    assert trace.horizon == 30 and np.all(trace.regret >= -1e-12)


def test_supervised_env():
    env = make_env("wine", seed=0)
    trace = run(linucb(env), env, 40, batch_size=3, seed=0)
    assert set(np.unique(trace.reward)) <= {0.0, 1.0}
    np.testing.assert_array_equal(trace.regret, 1.0 - trace.reward)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"horizon": 0}, "horizon"),
        ({"horizon": 5, "batch_size": 0}, "batch_size"),
        ({"horizon": 5, "feedback": "partial"}, "feedback"),
    ],
)
def test_bad_arguments(kwargs, match):
    env = ToyEnv(seed=0)
    with pytest.raises(ValueError, match=match):
        run(linucb(env), env, **kwargs)


def test_policy_must_match_env():
    env = ToyEnv(n_actions=3, seed=0)
    with pytest.raises(ValueError, match="n_actions"):
        run(LinUCB(n_actions=4, n_features=2), env, 5)
