"""The synthetic catalog problem, and a catalog policy served from a TOML config."""

from __future__ import annotations

import numpy as np
import pytest

from scarce.envs.catalog import CatalogEnv
from scarce.sim import run


def test_catalog_env_truth_and_noise():
    env = CatalogEnv(500, 4, noise=0.2, seed=0)
    assert env.action_features.shape == (500, 4) and env.action_features.dtype == np.float32
    X = env.contexts(3000, rng=np.random.default_rng(1))
    a = np.random.default_rng(2).integers(0, 500, 3000)
    r = env.outcomes(X, a, rng=np.random.default_rng(3)).rewards
    mu = env.expected_rewards(X)[np.arange(3000), a]
    resid = r - mu
    assert abs(resid.mean()) < 0.02 and abs(resid.std() - 0.2) < 0.02
    # the noise stream does not depend on the actions taken (common random numbers)
    r2 = env.outcomes(X, (a + 1) % 500, rng=np.random.default_rng(3)).rewards
    np.testing.assert_allclose(
        r2 - env.expected_rewards(X)[np.arange(3000), (a + 1) % 500], resid, atol=1e-5
    )
    with pytest.raises(ValueError, match="noise"):
        CatalogEnv(10, 2, noise=-1)


def test_catalog_policy_runs_in_the_simulation_loop_with_full_feedback():
    from scarce.policies.catalog import CatalogUCB

    env = CatalogEnv(200, 3, seed=1)
    p = CatalogUCB(n_actions=200, n_features=3, alpha=0.5, seed=0)
    p.set_actions(env.action_features)
    trace = run(p, env, 60, batch_size=6, seed=0, feedback="full")
    assert np.all(trace.probability == 1.0)
    assert p.ridge_.n_obs[0] == 60 * 200  # one shared model: every action's row of every case


def test_catalog_policy_served_from_toml(tmp_path):
    pytest.importorskip("fastapi")
    from scarce.serve import DecisionService, EventStore
    from scarce.serve.config import load_config

    env = CatalogEnv(40, 3, seed=2)
    np.save(tmp_path / "items.npy", env.action_features)
    for kind in ("CatalogTS", "CatalogUCB", "SpannerCB"):
        toml = tmp_path / f"{kind}.toml"
        toml.write_text(
            f'type = "{kind}"\nn_actions = 40\nn_features = 3\nactions = "{tmp_path / "items.npy"}"\n'
            'index = "exact"\nseed = 0\n\n[service]\nsync_interval = 0.0\n'
        )
        svc = DecisionService(load_config(toml), EventStore(tmp_path / f"{kind}.db"))
        try:
            X = env.contexts(5, rng=np.random.default_rng(0))
            results = [svc.decide(list(x), event_id=f"e{i}") for i, x in enumerate(X)]
            for i, res in enumerate(results):
                assert 0 <= res.action < 40 and 0 < res.probability <= 1
                assert abs(sum(res.probabilities) - 1) < 1e-6
                svc.reward(f"e{i}", float(i % 2))
            assert svc.sync() == 5
        finally:
            svc.store.close()
