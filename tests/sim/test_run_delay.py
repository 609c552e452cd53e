"""``scarce.sim.run(..., delay=...)``: delayed feedback through the pending-decision buffer."""

import numpy as np
import pytest
from simtools import RecordingPolicy, ToyEnv

from scarce.feedback import DelayKernel, FixedDelay, GeometricDelay, KernelDelay
from scarce.policies import LinUCB
from scarce.sim import run


def linucb(seed=0):
    return LinUCB(n_actions=3, n_features=2, seed=seed)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("feedback", ["bandit", "full"])
def test_zero_delay_is_bit_identical_to_no_delay(batch_size, feedback):
    a = run(linucb(), ToyEnv(seed=0), 60, batch_size=batch_size, seed=5, feedback=feedback)
    b = run(
        linucb(),
        ToyEnv(seed=0),
        60,
        batch_size=batch_size,
        seed=5,
        feedback=feedback,
        delay=FixedDelay(0),
    )
    assert a == b
    c = run(
        linucb(),
        ToyEnv(seed=0),
        60,
        batch_size=batch_size,
        seed=5,
        feedback=feedback,
        delay=KernelDelay(DelayKernel.instant()),
    )
    assert a == c


def test_fixed_delay_updates_late_and_in_order():
    policy = RecordingPolicy(n_actions=3, n_features=2, seed=0)
    trace = run(policy, ToyEnv(seed=0), 10, batch_size=2, seed=1, delay=FixedDelay(2))
    # rounds 0..4; decisions of round r are learned in round r + 2, so rounds 3 and 4 never are
    assert [u["n"] for u in policy.updates] == [2, 2, 2]
    learned = np.concatenate([u["rewards"] for u in policy.updates])
    np.testing.assert_array_equal(learned, trace.reward[:6])
    acts = np.concatenate([u["actions"] for u in policy.updates])
    np.testing.assert_array_equal(acts, trace.action[:6])


def test_kernel_pieces_join_to_the_reward():
    policy = RecordingPolicy(n_actions=3, n_features=2, seed=0)
    k = DelayKernel.beta(2.0, 5.0, 4)  # all four lags have mass: complete 3 rounds later
    trace = run(policy, ToyEnv(seed=0), 12, seed=2, delay=KernelDelay(k))
    assert [u["n"] for u in policy.updates] == [1] * 9
    learned = np.concatenate([u["rewards"] for u in policy.updates])
    np.testing.assert_allclose(learned, trace.reward[:9], rtol=0, atol=1e-12)


def test_per_action_kernels_deliver_exactly_the_completed_decisions():
    policy = RecordingPolicy(n_actions=3, n_features=2, seed=0)
    k = DelayKernel.beta(2.0, 5.0, 4)
    horizon = 30
    trace = run(
        policy, ToyEnv(seed=0), horizon, seed=4, delay=KernelDelay([k, k, DelayKernel.fixed(1)])
    )
    done_lag = np.where(trace.action == 2, 1, 3)
    expected = sorted(
        (int(a), float(r))
        for a, r, rd, lag in zip(trace.action, trace.reward, trace.round, done_lag, strict=True)
        if rd + lag <= horizon - 1
    )
    got = sorted(
        (int(a), round(float(r), 9))
        for u in policy.updates
        for a, r in zip(u["actions"], u["rewards"], strict=True)
    )
    assert [a for a, _ in got] == [a for a, _ in expected]
    np.testing.assert_allclose([r for _, r in got], [r for _, r in expected], atol=1e-9)


def test_sampled_kernel_lags_are_whole_outcomes():
    policy = RecordingPolicy(n_actions=3, n_features=2, seed=0)
    trace = run(policy, ToyEnv(seed=0), 50, seed=3, delay=GeometricDelay(0.3, max_lag=5))
    learned = np.concatenate([u["rewards"] for u in policy.updates])
    # Bernoulli rewards arrive whole: every learned reward is 0 or 1, and no more than decided
    assert set(np.unique(learned)) <= {0.0, 1.0}
    assert 40 <= learned.shape[0] < 50
    assert learned.sum() <= trace.reward.sum()


def test_delayed_linucb_learns_less_early():
    a = run(linucb(), ToyEnv(seed=0), 40, seed=3)
    b = run(linucb(), ToyEnv(seed=0), 40, seed=3, delay=FixedDelay(10))
    # same first decision (no data yet in either), different later ones (b learns 10 rounds late)
    assert a.action[0] == b.action[0]
    np.testing.assert_array_equal(a.action[:1], b.action[:1])
    assert not np.array_equal(a.action, b.action)


def test_delay_type_checked():
    with pytest.raises(TypeError, match="delay must be None or a scarce.feedback.DelayModel"):
        run(linucb(), ToyEnv(seed=0), 5, seed=0, delay=3)
