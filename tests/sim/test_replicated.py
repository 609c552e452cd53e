"""Replicated simulation equals separate runs, bit for bit."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scarce.envs.synthetic import LinearGaussianEnv, LogisticEnv
from scarce.policies import Greedy, LinTS, LinUCB
from scarce.sim import run, sweep
from scarce.sim.replicated import run_replicated, sweep_replicated

K, D = 4, 3


def _replicas(policy_cls, env_cls, S, policy_kw, env_kw=None, resync_every=None):
    policies = [
        policy_cls(n_actions=K, n_features=D, seed=100 + s, **policy_kw[s % len(policy_kw)])
        for s in range(S)
    ]
    envs = [env_cls(n_actions=K, n_features=D, seed=s, **(env_kw or {})) for s in range(S)]
    if resync_every is not None:  # force frequent Cholesky resyncs of the ridge models
        shape = (1, K, D) if (env_kw or {}).get("action_features") else (1, D)
        for s, p in enumerate(policies):
            p._ensure_initialized(np.zeros(shape))
            p.model_.resync_every = resync_every + s
    return policies, envs


def _assert_same_state(a, b):
    for name in ("A", "A_inv", "b", "theta", "n_obs", "_since_resync"):
        np.testing.assert_array_equal(getattr(a.model_, name), getattr(b.model_, name))
    assert a.n_updates_ == b.n_updates_
    assert a.rng_.bit_generator.state == b.rng_.bit_generator.state


CASES = [
    (LinTS, LinearGaussianEnv, [{"v": 0.3}, {"v": 1.0, "lam": 2.0}], {"noise_std": 0.5}),
    (LinUCB, LinearGaussianEnv, [{"alpha": 0.5}, {"alpha": 2, "lam": 0.5}], {}),
    (LinTS, LogisticEnv, [{"v": 0.5}], {}),
    (LinUCB, LogisticEnv, [{"alpha": 1.0}], {"scale": 5.0}),
    (LinTS, LinearGaussianEnv, [{"v": 0.2}], {"noise_std": 0.0}),
    # per-action features: one shared model (few Monte-Carlo draws for TS's probabilities)
    (LinTS, LinearGaussianEnv, [{"v": 0.3, "propensity_samples": 30}], {"action_features": True}),
    (LinUCB, LogisticEnv, [{"alpha": 0.7}], {"action_features": True}),
]


@pytest.mark.parametrize("batch_size", [1, 7, 40])
@pytest.mark.parametrize(("policy_cls", "env_cls", "policy_kw", "env_kw"), CASES)
def test_equals_separate_runs_bit_for_bit(policy_cls, env_cls, policy_kw, env_kw, batch_size):
    """Batches of 7 use the rank-1 path per row and the chunked variance; batches of 40 put
    more than 8 rows in a model (refactorisation); 300 cases leave a truncated last batch."""
    S, T = 4, 300

    def seeds():  # a SeedSequence is consumed by spawning, so each side gets its own
        return [7, 8, np.random.SeedSequence(9), np.random.default_rng(10)]

    pr, er = _replicas(policy_cls, env_cls, S, policy_kw, env_kw, resync_every=40)
    traces = run_replicated(pr, er, T, seeds(), batch_size=batch_size)
    ps, es = _replicas(policy_cls, env_cls, S, policy_kw, env_kw, resync_every=40)
    for s, seed in enumerate(seeds()):
        separate = run(ps[s], es[s], T, seed=seed, batch_size=batch_size)
        assert traces[s] == separate  # every array bitwise equal, names and settings too
        _assert_same_state(pr[s], ps[s])


def test_continues_from_trained_policies_and_default_resync():
    """Policies already trained (and a horizon past the default resync_every=2000 of a model)
    continue exactly as separate runs would; replicated and separate calls can be mixed."""
    S = 2
    pr, er = _replicas(LinTS, LinearGaussianEnv, S, [{"v": 0.3}])
    ps, es = _replicas(LinTS, LinearGaussianEnv, S, [{"v": 0.3}])
    for s in range(S):
        run(pr[s], er[s], 50, seed=s)
        run(ps[s], es[s], 50, seed=s)
    traces = run_replicated(pr, er, 3 * 2000 * K // 4, [11, 12])
    for s in range(S):
        assert traces[s] == run(ps[s], es[s], 3 * 2000 * K // 4, seed=11 + s)
        _assert_same_state(pr[s], ps[s])
    assert max(p.model_.n_obs.max() for p in pr) > 2000


def test_without_probabilities():
    pr, er = _replicas(LinTS, LogisticEnv, 2, [{"v": 0.5}])
    ps, es = _replicas(LinTS, LogisticEnv, 2, [{"v": 0.5}])
    traces = run_replicated(pr, er, 100, [1, 2], probabilities=False)
    for s in range(2):
        separate = run(ps[s], es[s], 100, seed=1 + s)
        assert np.isnan(traces[s].probability).all()
        np.testing.assert_array_equal(traces[s].action, separate.action)
        np.testing.assert_array_equal(traces[s].reward, separate.reward)


@pytest.mark.parametrize(("n_jobs", "batch_size"), [(1, 1), (2, 3)])
def test_sweep_replicated_equals_sweep(n_jobs, batch_size):
    kw = dict(seeds=5, horizon=120, n_checkpoints=15, batch_size=batch_size)
    spec = (LinTS, {"v": 0.4})
    env = ("logistic", {"n_actions": K, "n_features": D})
    expected = sweep({"TS": spec}, {"log": env}, n_jobs=1, **kw)
    got = sweep_replicated(spec, env, policy_label="TS", env_label="log", n_jobs=n_jobs, **kw)
    pd.testing.assert_frame_equal(got, expected)


def test_rejects_what_it_does_not_cover():
    envs = [LinearGaussianEnv(n_actions=K, n_features=D, seed=0)]
    with pytest.raises(ValueError, match="LinUCB or LinTS"):
        run_replicated([Greedy(n_actions=K, n_features=D)], envs, 10, [0])
    with pytest.raises(ValueError, match="one entry per replica"):
        run_replicated([LinTS(n_actions=K, n_features=D)], envs, 10, [0, 1])
    with pytest.raises(ValueError, match="forgetting"):
        run_replicated([LinTS(n_actions=K, n_features=D, window=5)], envs, 10, [0])
    with pytest.raises(ValueError, match="n_actions=4"):
        run_replicated([LinTS(n_actions=K + 1, n_features=D)], envs, 10, [0])
    feats = LinearGaussianEnv(n_actions=K, n_features=D, action_features=True, seed=0)
    with pytest.raises(ValueError, match="same action_features"):
        run_replicated(
            [LinTS(n_actions=K, n_features=D), LinTS(n_actions=K, n_features=D)],
            [envs[0], feats],
            10,
            [0, 1],
        )
    with pytest.raises(ValueError, match="distinct"):
        run_replicated([LinTS(n_actions=K, n_features=D)] * 2, envs * 2, 10, [0, 1])
    used = LinTS(n_actions=K, n_features=D)
    used.decide(np.zeros((1, D)))
    with pytest.raises(ValueError, match="other context layout"):
        run_replicated([used], [feats], 10, [0])
    with pytest.raises(ValueError, match="horizon"):
        run_replicated([LinTS(n_actions=K, n_features=D)], envs, 0, [0])
    with pytest.raises(ValueError, match="batch_size"):
        run_replicated([LinTS(n_actions=K, n_features=D)], envs, 5, [0], batch_size=0)
    with pytest.raises(ValueError, match="must all be LinTS"):
        run_replicated(
            [LinTS(n_actions=K, n_features=D), LinUCB(n_actions=K, n_features=D)],
            envs * 2,
            10,
            [0, 1],
        )


@settings(max_examples=12)
@given(
    S=st.integers(1, 3),
    K=st.integers(1, 4),
    d=st.integers(1, 4),
    horizon=st.integers(1, 40),
    batch_size=st.integers(1, 12),
    thompson=st.booleans(),
    logistic=st.booleans(),
    features=st.booleans(),
    width=st.floats(0.0, 2.0),
    lam=st.floats(0.1, 5.0),
    seed=st.integers(0, 2**20),
)
def test_property_equal_to_separate_runs(
    S, K, d, horizon, batch_size, thompson, logistic, features, width, lam, seed
):
    cls = LinTS if thompson else LinUCB
    kw = {"v": width, "propensity_samples": 10} if thompson else {"alpha": width}
    env_cls = LogisticEnv if logistic else LinearGaussianEnv

    def make():
        pols = [cls(n_actions=K, n_features=d, lam=lam, seed=seed + s, **kw) for s in range(S)]
        envs = [
            env_cls(n_actions=K, n_features=d, action_features=features, seed=seed + 7 * s)
            for s in range(S)
        ]
        return pols, envs

    pr, er = make()
    traces = run_replicated(
        pr, er, horizon, [seed + 3 * s for s in range(S)], batch_size=batch_size
    )
    ps, es = make()
    for s in range(S):
        assert traces[s] == run(ps[s], es[s], horizon, seed=seed + 3 * s, batch_size=batch_size)
        _assert_same_state(pr[s], ps[s])
