"""Shadow mode and promotions (issue 17, items 2 and 3): shadows never change the served
answer; a promotion and a rollback are recorded, reversible, lose no decision under load, and
replay and export keep working across policy versions."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from servetools import ServerProcess, make_config, run_serve, toml_text

from scarce.serve import (
    DecisionService,
    EventStore,
    StoreError,
    export_logs,
    models_equal,
    replay,
)
from scarce.serve.evaluate import evaluate_candidates, read_store
from scarce.serve.promotion import PromotionError, promote
from scarce.serve.versions import active_version, candidate_config, list_versions

BASE = {"type": "LinUCB", "n_actions": 3, "n_features": 2, "alpha": 1.0, "seed": 0}


def _shadows(config):
    return [
        (
            "lints",
            candidate_config(config, {"type": "LinTS", "n_actions": 3, "n_features": 2, "seed": 5}),
        ),
        (
            "eps",
            candidate_config(
                config, {"type": "EpsilonGreedy", "n_actions": 3, "n_features": 2, "epsilon": 0.3}
            ),
        ),
    ]


def _drive(svc, clock, rng, n=60, start=0):
    answers = []
    for i in range(start, start + n):
        x = rng.normal(size=2).tolist()
        if i % 7 == 3:
            answers.append(
                svc.decide_batch([{"context": x, "event_id": f"b{i}"}, {"context": x[::-1]}])[0]
            )
        else:
            eligible = [0, 2] if i % 5 == 0 else None
            answers.append(svc.decide(x, event_id=f"e{i}", eligible=eligible))
        if i % 3 != 0:
            svc.reward(answers[-1].event_id, float(rng.random()))
        clock.advance(1.0)
        if i % 10 == 9:
            svc.sync()
    svc.sync()
    return answers


def test_shadows_never_change_the_served_answer(tmp_path, clock):
    config = make_config(**{k: v for k, v in BASE.items() if k != "type"}, type="LinUCB")
    plain = DecisionService(config, EventStore(f"sqlite:///{tmp_path / 'a.db'}"), clock=clock)
    with_shadows = DecisionService(
        config, EventStore(f"sqlite:///{tmp_path / 'b.db'}"), clock=clock, shadows=_shadows(config)
    )
    # a shadow that breaks is recorded, never raised
    with_shadows.shadows["eps"].choose = lambda *a, **k: 1 / 0  # type: ignore[method-assign]
    a = _drive(plain, clock, np.random.default_rng(0))
    b = _drive(with_shadows, clock, np.random.default_rng(0))
    strip = [{k: v for k, v in r.to_dict().items() if k != "event_id"} for r in a]
    assert strip == [{k: v for k, v in r.to_dict().items() if k != "event_id"} for r in b]
    assert models_equal(plain.policy, with_shadows.policy)
    rec = with_shadows.store.get_decision("e1")
    shadow = json.loads(rec.shadow)
    assert shadow["eps"] == {"error": "ZeroDivisionError: division by zero"}
    lints = shadow["lints"]
    assert set(lints) == {"action", "probability", "probabilities", "model_version"}
    assert abs(sum(lints["probabilities"]) - 1) < 1e-6 and 0 <= lints["action"] < 3
    assert plain.store.get_decision("e1").shadow is None
    # the shadow learned the same join log: it equals its own replay
    lints_cfg = with_shadows.shadows["lints"].config
    assert models_equal(replay(lints_cfg, with_shadows.store), with_shadows.shadows["lints"].policy)
    # a shadow's choices are judged from its logged probabilities
    ev = evaluate_candidates(read_store(with_shadows.store), {}, estimators=["ips"])
    rows = ev.table[ev.table["candidate"] == "shadow:lints"]
    assert set(rows["estimator"]) == {"ips", "where_agreed"}
    assert 0 < ev.notes["shadow:lints"]["agreement"] < 1
    plain.store.close()
    with_shadows.store.close()


def test_shadow_respects_the_served_mask(tmp_path, clock):
    config = make_config(budgets={"x": {"total": 1.0, "costs": [0.0, 1.0, 1.0]}})
    svc = DecisionService(
        config, EventStore(f"sqlite:///{tmp_path / 'm.db'}"), clock=clock, shadows=_shadows(config)
    )
    for i in range(20):
        svc.decide([float(i), 1.0], event_id=f"e{i}", eligible=[0, 1])
    for i in range(20):
        shadow = json.loads(svc.store.get_decision(f"e{i}").shadow)
        assert shadow["lints"]["action"] in (0, 1)  # never an action the case could not take
    svc.store.close()


def _served_and_logged(svc, clock, rng, n):
    return _drive(svc, clock, rng, n)


def test_promotion_and_rollback_are_recorded_and_replayable(tmp_path, clock):
    config = make_config()
    url = f"sqlite:///{tmp_path / 'p.db'}"
    svc = DecisionService(config, EventStore(url), clock=clock)
    rng = np.random.default_rng(1)
    _drive(svc, clock, rng, 40)
    out = promote(svc, doc={"type": "LinTS", "n_actions": 3, "n_features": 2, "seed": 3}, name="ts")
    assert out["version"] == 2 and out["previous"] == 1 and out["model_version"] == svc.watermark
    cand = svc.config
    assert cand.policy_type == "LinTS" and svc.policy_version == 2
    # the promoted model is the candidate fed the whole join log
    assert models_equal(svc.policy, replay(cand, svc.store))
    after = _drive(svc, clock, rng, 30, start=100)
    assert {r.policy_version for r in after} == {2}
    with pytest.raises(PromotionError, match="already served"):
        promote(svc, version=2)
    back = promote(svc, version=1, note="rollback")
    assert back["version"] == 1 and svc.config.policy_type == "LinUCB"
    _drive(svc, clock, rng, 20, start=200)
    versions = {
        v: n
        for v, n in svc.store.query(
            "SELECT policy_version, COUNT(*) FROM decisions GROUP BY policy_version"
        )
    }
    assert set(versions) == {1, 2} and sum(versions.values()) == svc.store.counts()["decisions"]
    assert [v.version for v in list_versions(svc.store)] == [1, 2]
    assert active_version(svc.store) == 1
    # replay and export across versions
    assert models_equal(replay(config, svc.store), svc.policy)
    path, n = export_logs(svc.store, svc.config, tmp_path / "x.parquet")
    import pyarrow.parquet as pq

    assert set(pq.read_table(path).column("policy_version").to_pylist()) == {1, 2}
    # the candidate may not change the join rules
    with pytest.raises(Exception, match="reward_window"):
        promote(
            svc,
            doc={
                "type": "LinTS",
                "n_actions": 3,
                "n_features": 2,
                "service": {"reward_window": 1.0},
            },
        )
    svc.store.close()
    # a restart serves the active version; the other config is refused with the way out
    promote_to_two = DecisionService(config, EventStore(url), clock=clock)
    promote(promote_to_two, version=2)
    promote_to_two.store.close()
    with pytest.raises(StoreError, match="serves policy version 2"):
        DecisionService(config, EventStore(url), clock=clock)
    restarted = DecisionService(cand, EventStore(url), clock=clock)
    assert restarted.policy_version == 2 and models_equal(
        restarted.policy, replay(cand, restarted.store)
    )
    restarted.store.close()


def test_the_guard_promotes_only_a_better_candidate(tmp_path, clock):
    from test_evaluate import collect

    from scarce.envs import make_env

    env = make_env("linear", seed=3, n_actions=3, n_features=4)
    config = make_config(type="Random", n_actions=3, n_features=4)
    svc = DecisionService(config, EventStore(f"sqlite:///{tmp_path / 'g.db'}"), clock=clock)
    collect(svc, env, 400, clock=clock)
    bad = {"type": "EpsilonGreedy", "n_actions": 3, "n_features": 4, "epsilon": 1.0}
    with pytest.raises(PromotionError, match="does not beat") as err:
        promote(svc, doc=bad, guard={"estimator": "snips"})
    assert err.value.details["candidate"]["ci_low"] < err.value.details["current"]["value"]
    assert svc.policy_version == 1
    good = {"type": "LinUCB", "n_actions": 3, "n_features": 4, "alpha": 0.5}
    out = promote(svc, doc=good, name="lin", guard={"estimator": "dr"})
    assert out["guard"]["passed"] and svc.config.policy_type == "LinUCB"
    svc.store.close()


def test_promote_command_and_a_running_service_follows(tmp_path):
    import httpx

    policy = tmp_path / "p.toml"
    policy.write_text(toml_text({**BASE, "service": {"sync_interval": 0.2}}))
    db = f"sqlite:///{tmp_path / 'c.db'}"
    cand = tmp_path / "ts.toml"
    cand.write_text(toml_text({"type": "LinTS", "n_actions": 3, "n_features": 2, "seed": 1}))
    server = ServerProcess(db, policy, "kk").start()
    try:
        H = {"X-API-Key": "kk"}
        with httpx.Client(base_url=server.url, headers=H, timeout=30) as c:
            for i in range(10):
                assert (
                    c.post(
                        "/v1/decisions", json={"context": [i, 1], "event_id": f"a{i}"}
                    ).status_code
                    == 200
                )
            out = run_serve("promote", "--db", db, "--candidate", str(cand))
            assert out.returncode == 0 and "v1 -> v2" in out.stdout, out.stderr
            import time

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                r = c.post("/v1/decisions", json={"context": [0, 1]})
                if r.json()["policy_version"] == 2:
                    break
                time.sleep(0.1)
            assert r.json()["policy_version"] == 2
            listing = run_serve("promote", "--db", db, "--list")
            assert "* v2 ts (LinTS)" in listing.stdout
            back = run_serve("promote", "--db", db, "--version", "1")
            assert back.returncode == 0 and "v2 -> v1" in back.stdout
            again = run_serve("promote", "--db", db, "--version", "1")
            assert again.returncode == 2 and "already served" in again.stderr
    finally:
        server.stop()
    # replay (no --policy: the store's active version) reproduces the model
    out = run_serve("replay", "--db", db)
    assert out.returncode == 0, out.stderr


def test_promotion_and_rollback_under_load_lose_no_decision(tmp_path):
    import httpx

    policy = tmp_path / "p.toml"
    policy.write_text(toml_text({**BASE, "service": {"sync_interval": 0.1}}))
    db = f"sqlite:///{tmp_path / 'l.db'}"
    server = ServerProcess(db, policy, "kk").start()
    answers: list[dict] = []
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(k: int) -> None:
        rng = np.random.default_rng(k)
        with httpx.Client(base_url=server.url, headers={"X-API-Key": "kk"}, timeout=30) as c:
            i = 0
            while not stop.is_set() and i < 400:
                eid = f"c{k}-{i}"
                r = c.post(
                    "/v1/decisions", json={"context": rng.normal(size=2).tolist(), "event_id": eid}
                )
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    with lock:
                        answers.append(r.json())
                    if i % 2:
                        c.post("/v1/rewards", json={"event_id": eid, "value": float(rng.random())})
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        import time

        with httpx.Client(base_url=server.url, headers={"X-API-Key": "kk"}, timeout=60) as admin:
            time.sleep(1.0)
            p = admin.post(
                "/v1/promotions",
                json={
                    "config": {"type": "LinTS", "n_actions": 3, "n_features": 2, "seed": 2},
                    "name": "ts",
                },
            )
            assert p.status_code == 201, p.text
            time.sleep(1.0)
            r = admin.post("/v1/promotions", json={"version": 1, "note": "rollback"})
            assert r.status_code == 201 and r.json()["previous"] == 2, r.text
            time.sleep(0.5)
            listing = admin.get("/v1/promotions").json()
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop.set()
        server.stop()
    assert not failures, failures[:3]
    assert [p["version"] for p in listing["promotions"]] == [2, 1]
    store = EventStore(db, create=False)
    try:
        logged = dict(store.query("SELECT event_id, policy_version FROM decisions"))
        # every answered decision is in the log, with the version that answered it
        assert len(logged) == len(answers)
        assert all(logged[a["event_id"]] == a["policy_version"] for a in answers)
        assert {a["policy_version"] for a in answers} == {1, 2}
    finally:
        store.close()
