"""Through the real HTTP stack: ``scarce serve`` (uvicorn) in a subprocess on loopback, httpx
clients. Contract tests of every endpoint and every bad input on SQLite and PostgreSQL, crash
safety under load with ``kill -9``, and two replicas sharing one PostgreSQL database."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("httpx", reason="the serve extra is not installed")

import json
import threading
import time
from pathlib import Path

import httpx
from servetools import BAD_DECISIONS, BAD_REWARDS, ServerProcess, run_serve, write_policy

from scarce.serve import EventStore, load_config, models_equal, replay
from scarce.serve.snapshot import decode

KEY = "http-test-key"
H = {"X-API-Key": KEY}

POLICY = """
type = "EpsilonGreedy"
n_actions = 3
n_features = 2
epsilon = 0.3
seed = 7

[service]
reward_window = 3600.0
sync_interval = 0.2
snapshot_every = 25

[budgets.beds]
total = {total}
costs = [0.0, 1.0, 1.0]
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loopback(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One ``scarce serve`` per backend for the contract tests of this module."""
    tmp = tmp_path_factory.mktemp("loopback")
    policy = write_policy(tmp / "p.toml", POLICY.format(total=5.0))
    if request.param == "sqlite":
        db = f"sqlite:///{tmp / 'h.db'}"
    else:
        db = request.getfixturevalue("pg_server").new_database()
    server = ServerProcess(db, policy, KEY).start()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert (
            c.post(
                "/v1/decisions", json={"context": [1, 2], "event_id": "e"}, headers=H
            ).status_code
            == 200
        )
    yield server
    server.stop()


def test_contract_over_loopback(loopback: ServerProcess):
    with httpx.Client(base_url=loopback.url, timeout=10) as c:
        assert c.get("/openapi.json").status_code == 200
        assert c.post("/v1/decisions", json={"context": [1, 2]}).status_code == 401
        assert (
            c.post(
                "/v1/decisions", json={"context": [1, 2]}, headers={"X-API-Key": "no"}
            ).status_code
            == 401
        )
        d = c.post("/v1/decisions", json={"context": [1, 2], "event_id": "a"}, headers=H)
        assert d.status_code == 200 and d.json()["event_id"] == "a"
        assert set(d.json()) == {
            "event_id",
            "action",
            "probability",
            "probabilities",
            "model_version",
            "policy_version",
        }
        batch = c.post(
            "/v1/decisions/batch",
            json={"requests": [{"context": [0, 1], "event_id": "b1"}, {"context": [1, 0]}]},
            headers=H,
        )
        assert batch.status_code == 200 and len(batch.json()["decisions"]) == 2
        r = c.post("/v1/rewards", json={"event_id": "a", "value": 1.0}, headers=H)
        assert r.json() == {"event_id": "a", "status": "accepted"}
        again = c.post("/v1/rewards", json={"event_id": "a", "value": 1.0}, headers=H)
        assert again.json()["status"] == "duplicate"
        other = c.post("/v1/rewards", json={"event_id": "a", "value": 0.0}, headers=H)
        assert other.json()["status"] == "ignored"
        unknown = c.post("/v1/rewards", json={"event_id": "zz", "value": 1}, headers=H)
        assert unknown.status_code == 404
        big = c.post(
            "/v1/decisions",
            content=b"[" + b"0," * 600_000 + b"0]",
            headers={**H, "Content-Type": "application/json"},
        )
        assert big.status_code == 413
        s = c.post("/v1/snapshots", headers=H)
        assert s.status_code == 201 and s.json()["model_version"] >= 1
        p = c.get("/v1/policies/default", headers=H).json()
        assert p["counts"]["decisions"] == 4 and p["budgets"]["beds"]["initial"] == 5.0
        assert c.get("/v1/policies/other", headers=H).status_code == 404
        assert c.get("/v1/health").json()["model_version"] == s.json()["model_version"]


@pytest.mark.parametrize(("body", "field"), BAD_DECISIONS)
def test_bad_decisions_over_loopback(loopback: ServerProcess, body: bytes, field: str):
    r = httpx.post(
        loopback.url + "/v1/decisions",
        content=body,
        headers={**H, "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 422, r.text
    assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()


@pytest.mark.parametrize(("body", "field"), BAD_REWARDS)
def test_bad_rewards_over_loopback(loopback: ServerProcess, body: bytes, field: str):
    r = httpx.post(
        loopback.url + "/v1/rewards",
        content=body,
        headers={**H, "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 422, r.text
    assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()


def test_serve_refuses_to_start_without_keys(tmp_path: Path):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "scarce.serve", "serve", "--db", str(tmp_path / "x.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "SCARCE_API_KEYS" in out.stderr and "--no-auth" in out.stderr


def _context_of(event_id: str) -> list[float]:
    worker, n = event_id[1:].split("-")
    return [int(worker) / 10, (int(n) % 7) / 7]


def _load(url: str, stop: threading.Event, acked: list, lock: threading.Lock, worker: int):
    """Decide and reward as fast as possible; record what the server acknowledged."""
    i = 0
    with httpx.Client(base_url=url, timeout=5) as c:
        while not stop.is_set():
            eid = f"w{worker}-{i}"
            context = _context_of(eid)
            i += 1
            try:
                d = c.post(
                    "/v1/decisions",
                    json={"context": context, "event_id": eid},
                    headers=H,
                )
                if d.status_code == 200:
                    with lock:
                        acked.append(("decision", eid, d.json()["action"]))
                    value = float(d.json()["action"] == worker % 3)
                    r = c.post("/v1/rewards", json={"event_id": eid, "value": value}, headers=H)
                    if r.status_code == 200:
                        with lock:
                            acked.append(("reward", eid, value))
                elif d.status_code != 409:  # 409: budget exhausted
                    with lock:
                        acked.append(("error", eid, d.status_code))
            except httpx.HTTPError:
                return  # the server was killed


def _run_load(url: str, n_workers: int, seconds: float, on_time=None):
    stop = threading.Event()
    acked: list = []
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_load, args=(url, stop, acked, lock, w)) for w in range(n_workers)
    ]
    for t in threads:
        t.start()
    time.sleep(seconds)
    if on_time is not None:
        on_time()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return acked


@pytest.mark.statistical
@pytest.mark.parametrize("backend", ["sqlite", "sqlite-commit-in-loop", "postgres"])
def test_crash_safety_kill_9(tmp_path: Path, backend: str, request: pytest.FixtureRequest):
    """kill -9 under concurrent load; after a restart every acknowledged decision and reward
    is in the log once, budgets are not overspent, and the replayed log equals the model
    (on PostgreSQL a group of decisions is one statement that commits by itself; with
    ``--commit-in-loop`` the event loop commits instead of a writer thread)."""
    total = 40.0
    policy = write_policy(tmp_path / "p.toml", POLICY.format(total=total))
    extra = ("--commit-in-loop",) if backend == "sqlite-commit-in-loop" else ()
    if backend.startswith("sqlite"):
        db = f"sqlite:///{tmp_path / 'crash.db'}"
    else:
        db = request.getfixturevalue("pg_server").new_database()
    server = ServerProcess(db, policy, KEY, *extra).start()
    try:
        acked = _run_load(server.url, n_workers=6, seconds=1.5, on_time=server.kill)
    finally:
        server.kill()
    assert not [a for a in acked if a[0] == "error"]
    decisions = {eid: a for kind, eid, a in acked if kind == "decision"}
    rewards = {eid: v for kind, eid, v in acked if kind == "reward"}
    assert len(decisions) > 20  # the load really ran

    server = ServerProcess(db, policy, KEY, *extra).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            # retries after the crash are answered from the log
            for eid, action in list(decisions.items())[:5]:
                again = c.post(
                    "/v1/decisions",
                    json={"context": _context_of(eid), "event_id": eid},
                    headers=H,
                )
                assert again.status_code == 200 and again.json()["action"] == action
            snap = c.post("/v1/snapshots", headers=H).json()
    finally:
        server.stop()

    store = EventStore(db)
    try:
        logged = dict(store.query("SELECT event_id, action FROM decisions"))
        assert all(logged.get(eid) == a for eid, a in decisions.items())
        assert len(store.query("SELECT event_id FROM decisions")) == len(logged)
        stored = store.query("SELECT event_id, value FROM rewards")
        assert len({e for e, _ in stored}) == len(stored)  # one reward row per event here
        stored_map = {e: json.loads(v)[0] for e, v in stored}
        assert all(stored_map.get(eid) == v for eid, v in rewards.items())
        # budgets: what is left is exactly the total minus what logged decisions charged
        charges = [json.loads(c) for (c,) in store.query("SELECT charges FROM decisions") if c]
        spent = sum(amount for ch in charges for (_, _, amount) in ch)
        (_, _, initial, remaining) = store.budget_rows()[0]
        assert spent <= total and remaining == pytest.approx(total - spent, abs=1e-9)
        # replaying the log reproduces the learner exactly
        config = load_config(policy)
        latest = store.latest_snapshot()
        assert latest.watermark == snap["model_version"] > 0
        model = decode(latest.state_json, latest.arrays_npz, latest.checksum, config.make_policy())
        assert models_equal(replay(config, store, until=latest.watermark), model)
    finally:
        store.close()


@pytest.mark.statistical
def test_two_replicas_share_postgres(pg_server, tmp_path: Path):
    total = 30.0
    policy = write_policy(tmp_path / "p.toml", POLICY.format(total=total))
    url = pg_server.new_database()
    a = ServerProcess(url, policy, KEY).start()
    b = ServerProcess(url, policy, KEY).start()
    try:
        stop = threading.Event()
        acked: list = []
        lock = threading.Lock()
        threads = [
            threading.Thread(target=_load, args=(srv.url, stop, acked, lock, w))
            for w, srv in enumerate([a, b] * 3)
        ]
        for t in threads:
            t.start()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not [x for x in acked if x[0] == "error"]
        decisions = {eid: act for kind, eid, act in acked if kind == "decision"}
        assert len(decisions) > 20
        with httpx.Client(timeout=10) as c:
            # a decision made on one replica is known to the other (retry, reward)
            eid, action = next(iter(decisions.items()))
            for srv in (a, b):
                again = c.post(
                    srv.url + "/v1/decisions",
                    json={"context": _context_of(eid), "event_id": eid},
                    headers=H,
                )
                assert again.json()["action"] == action
            snap_a = c.post(a.url + "/v1/snapshots", headers=H).json()
            snap_b = c.post(b.url + "/v1/snapshots", headers=H).json()
            # both replicas joined and learned the same log: same watermark, one snapshot
            assert snap_a["model_version"] == snap_b["model_version"] > 0
            assert snap_a["checksum"] == snap_b["checksum"]
            pol = c.get(b.url + "/v1/policies/default", headers=H).json()
        spent = sum(1.0 for act in decisions.values() if act in (1, 2))
        assert spent <= total
        assert pol["budgets"]["beds"]["remaining"] >= 0
        assert pol["budgets"]["beds"]["remaining"] <= total - spent + 1e-9
    finally:
        a.stop()
        b.stop()
    store = EventStore(url)
    try:
        config = load_config(policy)
        latest = store.latest_snapshot()
        model = decode(latest.state_json, latest.arrays_npz, latest.checksum, config.make_policy())
        assert models_equal(replay(config, store, until=latest.watermark), model)
    finally:
        store.close()


@pytest.mark.statistical
def test_two_worker_processes_share_sqlite(tmp_path: Path):
    """``--workers 2``: two processes on one SQLite file never overspend the budget, and each
    answers retries of the other's decisions."""
    total = 12.0
    policy = write_policy(tmp_path / "p.toml", POLICY.format(total=total))
    db = f"sqlite:///{tmp_path / 'w.db'}"
    server = ServerProcess(db, policy, KEY, "--workers", "2").start()
    try:
        acked = _run_load(server.url, n_workers=6, seconds=1.5)
        assert not [x for x in acked if x[0] == "error"]
        decisions = {eid: act for kind, eid, act in acked if kind == "decision"}
        assert len(decisions) > 20
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for eid, action in list(decisions.items())[:10]:  # whichever worker answers
                again = c.post(
                    "/v1/decisions", json={"context": _context_of(eid), "event_id": eid}, headers=H
                )
                assert again.json()["action"] == action
            assert c.post("/v1/snapshots", headers=H).status_code == 201
    finally:
        server.stop()
    store = EventStore(db)
    try:
        (_, _, _, remaining) = store.budget_rows()[0]
        charges = [json.loads(c) for (c,) in store.query("SELECT charges FROM decisions") if c]
        spent = sum(amount for ch in charges for (_, _, amount) in ch)
        assert spent <= total and remaining == pytest.approx(total - spent, abs=1e-9)
        logged = dict(store.query("SELECT event_id, action FROM decisions"))
        assert all(logged[eid] == a for eid, a in decisions.items())
    finally:
        store.close()


def test_commit_in_loop_needs_one_process(tmp_path: Path):
    policy = write_policy(tmp_path / "p.toml", POLICY.format(total=5.0))
    out = run_serve(
        "serve",
        "--db",
        str(tmp_path / "w.db"),
        "--policy",
        str(policy),
        "--workers",
        "2",
        "--commit-in-loop",
        env={"SCARCE_API_KEYS": KEY},
    )
    assert out.returncode == 2 and "--commit-in-loop" in out.stderr
