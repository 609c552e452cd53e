"""Replicated simulation of mixed-effect TS on the structured environments equals separate
runs, bit for bit (traces and the whole posterior state)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structured_tools import random_instance

from scarce.envs.synthetic import LinearGaussianEnv
from scarce.policies import LinTS
from scarce.sim import run, sweep
from scarce.sim.replicated import run_replicated, sweep_replicated
from scarce.structured import HierarchicalTS, MixedEffectEnv, MixedEffectTS, MovieLensEnv

STATE = ("G_", "B_", "P_", "h_", "S_", "WT_", "u_", "effect_prec_", "effect_h_")


def _assert_same_state(a, b):
    for name in STATE:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a._since_resync == b._since_resync
    assert a.n_updates_ == b.n_updates_
    assert a.rng_.bit_generator.state == b.rng_.bit_generator.state
    if a.likelihood == "logistic":
        np.testing.assert_array_equal(a.mu_lap_, b.mu_lap_)
        for key in ("theta", "laplace_cov", "X", "y", "m"):
            np.testing.assert_array_equal(a.glm_.get_state()[key], b.glm_.get_state()[key])
    # the (K, d, Ld) view is the view of the stored (d, K, Ld) array, as after a separate run
    assert a.W_.base is a.WT_


def _make(S, K=6, L=2, d=3, *, env_kw=None, policy_kw=(), cls=MixedEffectTS, priors="true"):
    envs = [
        MixedEffectEnv(n_actions=K, n_effects=L, n_features=d, seed=s, **(env_kw or {}))
        for s in range(S)
    ]
    pols = []
    for s, e in enumerate(envs):
        kw = dict(policy_kw[s % len(policy_kw)]) if policy_kw else {}
        if cls is MixedEffectTS:
            if priors == "true":
                kw.update(e.prior())
            else:  # random priors, general (K, d, L d) mixing matrices for odd replicas
                kw.update(random_instance(np.random.default_rng(s), K, L, d, general=s % 2 == 1))
        pols.append(cls(n_actions=K, n_features=d, propensity_samples=16, seed=50 + s, **kw))
    return pols, envs


def _check(make, horizon, seeds, batch_size=1, probabilities=True):
    """``seeds``: a list of run seeds, or a function making one (a SeedSequence or Generator
    is consumed by a run, so each side needs its own)."""
    seeds_of = seeds if callable(seeds) else lambda: seeds
    pr, er = make()
    traces = run_replicated(
        pr, er, horizon, seeds_of(), batch_size=batch_size, probabilities=probabilities
    )
    ps, es = make()
    for s, seed in enumerate(seeds_of()):
        separate = run(ps[s], es[s], horizon, seed=seed, batch_size=batch_size)
        if not probabilities:
            assert np.isnan(traces[s].probability).all()
            traces[s].probability = separate.probability
        assert traces[s] == separate  # every array bitwise equal, names and settings too
        _assert_same_state(pr[s], ps[s])
    return pr


CASES = [
    # effects settings, hyperparameters differing between replicas (noise, jitter)
    ({}, [{"effects": "joint"}, {"effects": "joint", "noise_std": 0.5, "jitter": 1e-3}], "true"),
    ({}, [{"effects": "factored"}, {"effects": "factored", "noise_std": 2.0}], "true"),
    ({"noise_std": 0.3}, [{"effects": "factored-exact", "jitter": 1e-2}], "true"),
    # one context per action (the official code's layout), logistic rewards (meTS-Lin)
    ({"per_action_context": True}, [{"effects": "joint"}], "true"),
    ({"likelihood": "logistic", "per_action_context": True}, [{"effects": "factored"}], "true"),
    # meTS-GLM (Laplace refits replica by replica), ridge and iterations per replica
    (
        {"likelihood": "logistic"},
        [
            {"likelihood": "logistic", "effects": "joint"},
            {"likelihood": "logistic", "effects": "joint", "laplace_ridge": 1e-3, "max_iter": 3},
        ],
        "true",
    ),
    (
        {"likelihood": "logistic", "per_action_context": True},
        [{"likelihood": "logistic", "effects": "factored", "jitter": 1e-5}],
        "true",
    ),
    # random priors and general mixing matrices
    (
        {"likelihood": "logistic"},
        [{"effects": "joint"}, {"effects": "joint", "jitter": 0.1}],
        "random",
    ),
]


@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize(("env_kw", "policy_kw", "priors"), CASES)
def test_mets_equals_separate_runs_bit_for_bit(env_kw, policy_kw, priors, batch_size):
    def make():
        return _make(3, env_kw=env_kw, policy_kw=policy_kw, priors=priors)

    def seeds():
        return [3, np.random.SeedSequence(4), np.random.default_rng(5)]

    _check(make, 120, seeds, batch_size)


def test_many_touched_actions_and_resyncs():
    """Batches of 40 on 30 actions touch a different number of actions (often more than 8)
    in each replica; small resync periods (different per replica) recompute the effect
    precision in some replicas and correct it incrementally in others in the same round."""

    def make():
        pols, envs = _make(4, K=30, L=3, d=2, policy_kw=[{"effects": "joint"}])
        for s, p in enumerate(pols):
            p.resync_every = 37 + 13 * s
        return pols, envs

    pr = _check(make, 400, [1, 2, 3, 4], batch_size=40, probabilities=False)
    assert all(p._since_resync < p.resync_every for p in pr)


def test_hierarchical_ts_and_continuing_from_trained_policies():
    """HierarchicalTS runs the same code; policies trained by separate runs continue in a
    replicated run exactly as they would separately (and vice versa)."""

    def make():
        pols, envs = _make(2, cls=HierarchicalTS, env_kw={"noise_std": 0.5})
        for s, (p, e) in enumerate(zip(pols, envs, strict=True)):
            run(p, e, 30, seed=90 + s)
        return pols, envs

    pr = _check(make, 60, [7, 8], batch_size=3)
    assert all(p.n_updates_ == 90 for p in pr)


def test_movielens_environment():
    rng = np.random.default_rng(0)
    users, items = rng.standard_normal((40, 3)), rng.standard_normal((25, 3))

    def make():
        envs = [MovieLensEnv(users, items, n_actions=8, pool_size=20, seed=s) for s in range(2)]
        pols = [MixedEffectTS(n_actions=8, n_features=3, seed=s) for s in range(2)]
        return pols, envs

    _check(make, 80, [1, 2], batch_size=2)


def test_other_policies_on_structured_environments():
    """LinTS's replicated form runs on the structured environments too."""

    def make():
        envs = [MixedEffectEnv(n_actions=5, n_effects=2, n_features=3, seed=s) for s in range(2)]
        return [LinTS(n_actions=5, n_features=3, v=0.5, seed=s) for s in range(2)], envs

    pr, er = make()
    traces = run_replicated(pr, er, 60, [1, 2])
    ps, es = make()
    for s in range(2):
        assert traces[s] == run(ps[s], es[s], 60, seed=s + 1)


@settings(max_examples=10, deadline=None)
@given(
    S=st.integers(1, 3),
    K=st.integers(1, 6),
    L=st.integers(1, 3),
    d=st.integers(1, 3),
    horizon=st.integers(1, 30),
    batch_size=st.integers(1, 8),
    effects=st.sampled_from(["joint", "factored", "factored-exact"]),
    features=st.booleans(),
    seed=st.integers(0, 2**20),
)
def test_property_equal_to_separate_runs(S, K, L, d, horizon, batch_size, effects, features, seed):
    def make():
        envs = [
            MixedEffectEnv(
                n_actions=K,
                n_effects=L,
                n_features=d,
                per_action_context=features,
                pool_size=10,
                seed=seed + s,
            )
            for s in range(S)
        ]
        pols = [
            MixedEffectTS(
                n_actions=K,
                n_features=d,
                effects=effects,
                propensity_samples=8,
                seed=seed + 5 * s,
                **e.prior(),
            )
            for s, e in enumerate(envs)
        ]
        return pols, envs

    _check(make, horizon, [seed + 3 * s for s in range(S)], batch_size)


def test_rejects_what_it_does_not_cover():
    envs = [MixedEffectEnv(n_actions=4, n_effects=2, n_features=2, seed=s) for s in range(2)]

    def mets(**kw):
        return MixedEffectTS(n_actions=4, n_features=2, mixing=np.ones((4, 2)), **kw)

    with pytest.raises(ValueError, match="laplace_batch=None only"):
        run_replicated([mets(likelihood="logistic", laplace_batch=5)], envs[:1], 5, [0])
    with pytest.raises(ValueError, match="same likelihood"):
        run_replicated([mets(), mets(likelihood="logistic")], envs, 5, [0, 1])
    with pytest.raises(ValueError, match="same effects setting"):
        run_replicated([mets(), mets(effects="factored")], envs, 5, [0, 1])
    with pytest.raises(ValueError, match="same effects setting"):
        run_replicated([mets(), MixedEffectTS(n_actions=4, n_features=2)], envs, 5, [0, 1])
    used = mets()
    used.decide(np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="other context layout"):
        run_replicated([used], envs[:1], 5, [0])
    mixed = [envs[0], MixedEffectEnv(n_actions=4, n_effects=2, n_features=2, likelihood="logistic")]
    with pytest.raises(ValueError, match="same likelihood and per_action_context"):
        run_replicated([mets(), mets()], mixed, 5, [0, 1])
    other = [envs[0], LinearGaussianEnv(n_actions=4, n_features=2, seed=0)]
    with pytest.raises(ValueError, match="must all be MixedEffectEnv"):
        run_replicated([mets(), mets()], other, 5, [0, 1])

    class Sub(MixedEffectEnv):  # may draw outcomes differently: not covered
        pass

    with pytest.raises(ValueError, match="_replicated_truth hook"):
        run_replicated([mets()], [Sub(n_actions=4, n_effects=2, n_features=2)], 5, [0])


def test_sweep_replicated_equals_sweep():
    """A sweep of meTS on the structured environment (class and keywords as the env spec)."""
    kw = dict(seeds=4, horizon=80, n_checkpoints=10, batch_size=2)
    spec = (MixedEffectTS, {"effects": "factored", "propensity_samples": 8})
    env = (MixedEffectEnv, {"n_actions": 7, "n_effects": 1, "n_features": 2})
    expected = sweep({"meTS": spec}, {"me": env}, n_jobs=1, **kw)
    got = sweep_replicated(spec, env, policy_label="meTS", env_label="me", **kw)
    pd.testing.assert_frame_equal(got, expected)
