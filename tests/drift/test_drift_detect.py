"""The CUSUM change-detection wrapper: detection delay, no false alarms when stationary,
lower regret than a stationary learner after a change, batch/sequential agreement."""

from __future__ import annotations

import numpy as np
import pytest

import scarce
from scarce.drift import ChangeDetecting, PiecewiseLinearEnv
from scarce.envs import LinearGaussianEnv
from scarce.policies import POLICIES, LinUCB
from scarce.sim import run


def test_registered_for_the_contract_suite():
    assert POLICIES["ChangeDetecting"] is ChangeDetecting


@pytest.mark.statistical
@pytest.mark.parametrize("base", ["LinUCB", "LinTS"])
def test_detects_every_change_quickly_and_beats_stationary(base):
    params = {"alpha": 0.5} if base == "LinUCB" else {"v": 0.1}
    for seed in range(3):
        env = PiecewiseLinearEnv(change_every=1000, n_segments=3, seed=100 + seed)
        pol = ChangeDetecting(n_actions=5, n_features=5, base=base, base_params=params, seed=seed)
        trace = run(pol, env, 3000, seed=seed)
        alarms = np.asarray(pol.alarms_)
        # one alarm per change, within 25 cases of it, none elsewhere
        assert len(alarms) == 2, alarms
        delays = alarms - np.array([1000, 2000])
        assert np.all((delays >= 0) & (delays <= 25)), delays
        env2 = PiecewiseLinearEnv(change_every=1000, n_segments=3, seed=100 + seed)
        stationary = run(POLICIES[base](n_actions=5, n_features=5, seed=seed, **params), env2,
                         3000, seed=seed)  # fmt: skip
        after = slice(1000, None)
        assert trace.regret[after].sum() < 0.25 * stationary.regret[after].sum()


@pytest.mark.statistical
def test_glr_detects_every_change_without_false_alarms():
    for seed in range(2):
        env = PiecewiseLinearEnv(change_every=1000, n_segments=3, seed=100 + seed)
        pol = ChangeDetecting(
            n_actions=5, n_features=5, base_params={"alpha": 0.5}, detector="glr", seed=seed
        )
        run(pol, env, 3000, seed=seed)
        delays = np.asarray(pol.alarms_) - np.array([1000, 2000])
        assert np.all((delays >= 0) & (delays <= 25)), pol.alarms_
        quiet = ChangeDetecting(
            n_actions=5, n_features=5, base_params={"alpha": 0.5}, detector="glr", seed=seed
        )
        run(quiet, LinearGaussianEnv(n_actions=5, n_features=5, seed=seed), 4000, seed=seed)
        assert quiet.alarms_ == []


def test_glr_statistic_by_hand():
    pol = ChangeDetecting(n_actions=1, n_features=1, detector="glr", window=3)
    pol.decide(np.zeros((1, 1)))
    for z in (0.5, 2.0, 4.0, 3.0):  # the window keeps 2.0, 4.0, 3.0
        g = pol._glr(0, z)
    # suffixes (newest first): [3] -> m=3; [3, 4] -> 3.5; [3, 4, 2] -> 3
    cands = [k / 2 * (m - 1 - np.log(m)) for k, m in ((1, 3.0), (2, 3.5), (3, 3.0))]
    assert g == pytest.approx(max(cands))


@pytest.mark.statistical
def test_no_false_alarm_on_a_stationary_problem():
    for seed in range(3):
        env = LinearGaussianEnv(n_actions=5, n_features=5, noise_std=0.1, seed=seed)
        pol = ChangeDetecting(n_actions=5, n_features=5, base_params={"alpha": 0.5}, seed=seed)
        run(pol, env, 5000, batch_size=5, seed=seed)
        assert pol.alarms_ == []
        assert pol.base_policy_.n_updates_ == 5000


def test_batched_updates_equal_one_by_one_and_split_at_the_alarm():
    env = PiecewiseLinearEnv(n_actions=3, n_features=3, change_every=150, seed=7)
    rng = np.random.default_rng(0)
    X = env.contexts(300, rng)
    R = env.full_outcomes(X, rng)
    a = ChangeDetecting(n_actions=3, n_features=3, warmup=10, seed=1)
    b = ChangeDetecting(n_actions=3, n_features=3, warmup=10, seed=1)
    acts = rng.integers(0, 3, 300)
    rew = R[np.arange(300), acts]
    for s in range(0, 300, 50):
        a.update(X[s : s + 50], acts[s : s + 50], rew[s : s + 50])
    for i in range(300):
        b.update(X[i : i + 1], acts[i : i + 1], rew[i : i + 1])
    assert a.alarms_ == b.alarms_ and len(a.alarms_) >= 1
    assert 150 <= a.alarms_[0] <= 175
    assert a.base_policy_.n_updates_ == 300 - a.alarms_[-1]
    np.testing.assert_allclose(a.base_policy_.model_.theta, b.base_policy_.model_.theta)


def test_restart_gives_a_fresh_wrapped_policy_and_survives_save_load(tmp_path):
    env = PiecewiseLinearEnv(n_actions=3, n_features=3, change_every=200, seed=3)
    pol = ChangeDetecting(n_actions=3, n_features=3, base="Greedy", warmup=10, seed=2)
    run(pol, env, 260, seed=0)
    assert len(pol.alarms_) == 1
    pol.save(tmp_path / "cd")
    loaded = scarce.load(tmp_path / "cd")
    assert loaded.alarms_ == pol.alarms_
    np.testing.assert_array_equal(loaded.statistic_, pol.statistic_)
    X = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_array_equal(loaded.decide(X).actions, pol.decide(X).actions)


def test_bad_parameters_rejected_on_first_use():
    X = np.zeros((1, 3))
    for kwargs, word in (
        ({"base": "Nope"}, "base"),
        ({"base": "ChangeDetecting"}, "base"),
        ({"threshold": 0.0}, "threshold"),
        ({"warmup": 1}, "warmup"),
        ({"detector": "page"}, "detector"),
        ({"window": 0}, "window"),
        ({"base_params": {"seed": 1}}, "base_params"),
        ({"base_params": {"alpha": -1.0}}, "alpha"),
    ):
        with pytest.raises(ValueError, match=word):
            ChangeDetecting(n_actions=2, n_features=3, **kwargs).decide(X)


def test_wraps_a_linucb_exactly_until_the_first_alarm():
    """Without an alarm the wrapper decides exactly like the wrapped policy would."""
    env = LinearGaussianEnv(n_actions=4, n_features=3, seed=0)
    wrapped = ChangeDetecting(n_actions=4, n_features=3, seed=0)
    rng = np.random.default_rng(5)
    plain = LinUCB(n_actions=4, n_features=3)
    for _ in range(20):
        X = env.contexts(5, rng)
        d1, d2 = wrapped.decide(X), plain.decide(X)
        np.testing.assert_array_equal(d1.actions, d2.actions)
        r = env.outcomes(X, d1.actions, rng).rewards
        wrapped.update(X, d1.actions, r)
        plain.update(X, d2.actions, r)
    assert wrapped.alarms_ == []
