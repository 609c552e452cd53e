"""The synthetic catalog problem, and a catalog policy served from a TOML config."""

from __future__ import annotations

import json

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
                ids, probs = res.support  # (catalog policies answer with the support)
                assert res.probabilities is None and abs(sum(probs) - 1) < 1e-6
                assert res.probability == probs[ids.index(res.action)]
                svc.reward(f"e{i}", float(i % 2))
            assert svc.sync() == 5
        finally:
            svc.store.close()


def test_catalog_decision_logs_its_support_not_k_probabilities(tmp_path):
    """A served catalog decision logs (and answers, exports, replays from the log) the
    actions with positive probability, not a (K,) list: the log row is O(support)."""
    pytest.importorskip("fastapi")
    pq = pytest.importorskip("pyarrow.parquet")
    from scarce.policies.spanner import SpannerCB
    from scarce.serve import DecisionService, EventStore
    from scarce.serve.config import load_config
    from scarce.serve.export import export_logs

    K = 20_000
    env = CatalogEnv(K, 3, seed=2)
    np.save(tmp_path / "items.npy", env.action_features)
    toml = tmp_path / "spanner.toml"
    toml.write_text(
        f'type = "SpannerCB"\nn_actions = {K}\nn_features = 3\n'
        f'actions = "{tmp_path / "items.npy"}"\nindex = "exact"\nseed = 0\n\n'
        "[service]\nsync_interval = 0.0\n"
    )
    config = load_config(toml)
    svc = DecisionService(config, EventStore(tmp_path / "log.db"))
    try:
        X = env.contexts(6, rng=np.random.default_rng(0))
        results = [svc.decide(list(x), event_id=f"e{i}") for i, x in enumerate(X)]
        ref = SpannerCB(n_actions=K, n_features=3, index="exact", seed=0)
        ref.set_actions(env.action_features)
        want_ids, want_p = ref.action_support(X)  # (the state at decision time: no update)
        logged = svc.store.get_decisions([f"e{i}" for i in range(6)])
        for i, res in enumerate(results):
            ids, probs = res.support
            n = int((want_ids[i] >= 0).sum())
            assert ids == want_ids[i, :n].tolist()
            np.testing.assert_allclose(probs, want_p[i, :n])
            assert 1 < len(ids) <= 4 and res.action in ids
            text = logged[f"e{i}"].probabilities
            assert len(text) < 40 * (len(ids) + 2)  # O(support); a (K,) list is > 80,000
            assert json.loads(text) == {"support": ids, "probabilities": probs}
            assert logged[f"e{i}"].probability == res.probability > 0
            # a retry is answered from the log, support included
            again = svc.decide(list(X[i]), event_id=f"e{i}")
            assert again.support == res.support and again.probabilities is None
            assert again.to_dict()["support"] == {"support": ids, "probabilities": probs}
            svc.reward(f"e{i}", float(i % 2))
        assert svc.sync() == 6
        path, n_rows = export_logs(svc.store, config, tmp_path / "log.parquet")
    finally:
        svc.store.close()
    table = pq.read_table(path).to_pylist()
    assert n_rows == 6
    for row, res in zip(table, results, strict=True):
        assert row["probabilities"] is None
        assert (row["support"], row["support_probabilities"]) == res.support
        assert row["propensity"] == res.probability


def test_catalog_shadow_is_evaluated_from_its_logged_support(tmp_path):
    pytest.importorskip("fastapi")
    from scarce.serve import DecisionService, EventStore
    from scarce.serve.config import load_config
    from scarce.serve.evaluate import evaluate_candidates, read_store
    from scarce.serve.versions import candidate_config

    env = CatalogEnv(40, 3, seed=2)
    items = tmp_path / "items.npy"
    np.save(items, env.action_features)
    head = f'n_actions = 40\nn_features = 3\nactions = "{items}"\nindex = "exact"\n'
    toml = tmp_path / "served.toml"
    toml.write_text(
        'type = "CatalogUCB"\n' + head + "alpha = 0.5\nseed = 0\n\n[service]\nsync_interval = 0.0\n"
    )
    config = load_config(toml)
    doc = {"type": "SpannerCB", "n_actions": 40, "n_features": 3, "actions": str(items)}
    shadow = candidate_config(config, {**doc, "index": "exact", "seed": 1})
    svc = DecisionService(config, EventStore(tmp_path / "log.db"), shadows=[("span", shadow)])
    rng = np.random.default_rng(0)
    X = env.contexts(30, rng=rng)
    rewards, pis, props = [], [], []
    try:
        for i, x in enumerate(X):
            res = svc.decide(list(x), event_id=f"e{i}")
            entry = json.loads(svc.store.get_decision(f"e{i}").shadow)["span"]
            assert (
                entry["probabilities"] is None
                and abs(sum(entry["support"]["probabilities"]) - 1) < 1e-9
            )
            ids, ps = entry["support"]["support"], entry["support"]["probabilities"]
            pis.append(ps[ids.index(res.action)] if res.action in ids else 0.0)
            props.append(res.probability)
            rewards.append(float(rng.random()))
            svc.reward(f"e{i}", rewards[-1])
        svc.sync()
        ev = evaluate_candidates(read_store(svc.store), {}, estimators=["ips"])
    finally:
        svc.store.close()
    row = ev.table[(ev.table["candidate"] == "shadow:span") & (ev.table["estimator"] == "ips")]
    want = np.mean(np.asarray(rewards) * np.asarray(pis) / np.asarray(props))
    assert len(row) == 1 and row["value"].iloc[0] == pytest.approx(want)
