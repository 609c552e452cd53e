"""The "questionable" list of issue 16, settled: key ids and scopes (tenant separation), no
CDN-loaded /docs, health on a full disk / failed write / corrupt file, forged snapshots,
one-line start-up errors, ``export-logs`` on a missing file, owner-only database files,
``errors`` in every error body, ``eligible`` order; and the Prometheus metrics."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("httpx", reason="the serve extra is not installed")

import json
import os
import socket
import stat
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from servetools import FakeClock, ServerProcess, make_config, run_serve, toml_text, write_policy

from scarce.policies import LinTS
from scarce.serve import DecisionService, EventStore, StoreError, StoreUnavailableError
from scarce.serve import snapshot as snap
from scarce.serve.app import create_app
from scarce.serve.auth import KeyVerifier, hash_key, key_line
from scarce.serve.snapshot import SnapshotError

POLICY = """
type = "LinUCB"
n_actions = 3
n_features = 2
seed = 0

[service]
sync_interval = 0.2

[budgets.beds]
total = 10.0
costs = [0.0, 1.0, 1.0]
"""
KEY = "hardening-key"
H = {"X-API-Key": KEY}


def _service(tmp_path: Path, **overrides) -> DecisionService:
    return DecisionService(
        make_config(**overrides), EventStore(tmp_path / "h.db"), clock=FakeClock()
    )


# ---------------------------------------------------------------------- keys: ids and scopes
def test_key_ids_separate_tenants_and_scopes_limit_keys(tmp_path):
    keys = {
        "a": key_line(hash_key("key-a"), key_id="clinic-a", scopes=["decide", "reward"]),
        "a2": key_line(hash_key("key-a2"), key_id="clinic-a", scopes=["decide"]),  # rotation
        "b": key_line(hash_key("key-b"), key_id="clinic-b"),
    }
    svc = _service(tmp_path, budgets={"beds": {"total": 10.0, "costs": [0.0, 1.0, 1.0]}})
    c = TestClient(create_app(svc, keys=KeyVerifier(keys.values())))
    ha, ha2, hb = ({"X-API-Key": k} for k in ("key-a", "key-a2", "key-b"))
    try:
        body = {"context": [0.5, 1.0], "event_id": "e1"}
        first = c.post("/v1/decisions", json=body, headers=ha)
        assert first.status_code == 200
        assert svc.store.query("SELECT key_id FROM decisions") == [("clinic-a",)]
        # another tenant can neither reward nor probe it
        other = c.post("/v1/rewards", json={"event_id": "e1", "value": 1.0}, headers=hb)
        assert other.status_code == 404
        assert c.post("/v1/decisions", json=body, headers=hb).status_code == 409
        # the same tenant's new key retries it; scopes limit what a key may do
        assert c.post("/v1/decisions", json=body, headers=ha2).json() == first.json()
        denied = c.post("/v1/rewards", json={"event_id": "e1", "value": 1.0}, headers=ha2)
        assert denied.status_code == 403 and denied.json()["errors"][0]["field"] == "X-API-Key"
        ok = c.post("/v1/rewards", json={"event_id": "e1", "value": 1.0}, headers=ha)
        assert ok.json()["status"] == "accepted"
        for method, path in (("get", "/v1/policies/default"), ("post", "/v1/snapshots")):
            assert getattr(c, method)(path, headers=ha).status_code == 403
            assert getattr(c, method)(path, headers=hb).status_code in (200, 201)
        assert c.get("/metrics", headers=ha).status_code == 403
        assert c.get("/metrics", headers=hb).status_code == 200
    finally:
        svc.store.close()


def test_api_key_command_writes_id_and_scopes_owner_only(tmp_path):
    keys = tmp_path / "keys.txt"
    out = run_serve("api-key", "--key-file", str(keys), "--id", "clinic-a", "--scopes", "decide")
    assert out.returncode == 0, out.stderr
    key = out.stdout.split("key:")[1].split()[0]
    line = keys.read_text().strip()
    assert line.endswith("id=clinic-a scopes=decide") and key not in line
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    info = KeyVerifier([line]).identify(key)
    assert info is not None and info.id == "clinic-a" and info.scopes == {"decide"}
    bad = run_serve("api-key", "--scopes", "decide,rule")
    assert bad.returncode == 2 and "scopes" in bad.stderr


# ---------------------------------------------------------------------- docs, error bodies
def test_no_cdn_docs_and_every_error_has_errors(tmp_path):
    svc = _service(tmp_path)
    c = TestClient(create_app(svc, keys=KeyVerifier([hash_key(KEY)])))
    try:
        assert c.get("/openapi.json").status_code == 200
        for path in ("/docs", "/redoc"):
            r = c.get(path, headers=H)
            assert r.status_code == 404 and "cdn" not in r.text
        answers = [
            c.get("/nowhere", headers=H),  # 404
            c.get("/v1/decisions", headers=H),  # 405
            c.post("/v1/decisions", json={"context": [1.0, 2.0]}),  # 401
            c.get("/v1/policies/other", headers=H),  # 404 from the route
        ]
        assert [r.status_code for r in answers] == [404, 405, 401, 404]
        for r in answers:
            errors = r.json()["errors"]
            assert errors and {"field", "message"} <= set(errors[0]), r.json()
    finally:
        svc.store.close()


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("hardening")
    server = ServerProcess(
        f"sqlite:///{tmp / 'h.db'}", write_policy(tmp / "p.toml", POLICY), KEY
    ).start()
    yield server
    server.stop()


def test_malformed_http_is_a_400_with_errors(loopback):
    with socket.create_connection(("127.0.0.1", loopback.port), timeout=10) as s:
        s.sendall(b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["errors"][0]["field"] == "request"


# ---------------------------------------------------------------------- health
def test_health_is_503_when_the_disk_is_nearly_full(tmp_path):
    svc = _service(tmp_path, service={"min_free_disk_mb": 1e12})
    c = TestClient(create_app(svc, no_auth=True))
    try:
        r = c.get("/v1/health")
        assert r.status_code == 503 and r.json()["errors"][0]["field"] == "disk"
    finally:
        svc.store.close()


def test_a_failed_write_is_a_503_and_makes_health_503(tmp_path, monkeypatch):
    """SQLite's own "database or disk is full" (``max_page_count`` caps the file): the
    decision that hit it is a 503 naming the store, and health is 503 after it."""
    from scarce.serve.db import Database

    svc = _service(tmp_path)
    svc.store.close()
    connect = Database._connect

    def capped(self):
        conn = connect(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(Database, "_connect", capped)
    c = TestClient(create_app(svc, no_auth=True))
    assert c.get("/v1/health").status_code == 200
    big = [{"context": [float(i), 1.0], "group": "g" * 90} for i in range(100)]
    r = c.post("/v1/decisions/batch", json={"requests": big})
    assert r.status_code == 503 and r.json()["errors"][0]["field"] == "store"
    assert "full" in r.json()["detail"]
    h = c.get("/v1/health")
    assert h.status_code == 503 and "full" in h.json()["detail"]
    svc.store.close()


def _corrupt(path: Path) -> None:
    """Overwrite the second half of the file (b-tree pages; the header stays valid)."""
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data), page):
        data[start + 8 : start + 200] = b"\xa5" * 192
    path.write_bytes(bytes(data))


def test_corrupt_pages_make_health_503_and_refuse_a_start(tmp_path):
    svc = _service(tmp_path, service={"integrity_check_interval": 0.001})
    for i in range(300):
        svc.decide([i / 300, 1.0], event_id=f"e{i:04d}")
    svc.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    c = TestClient(create_app(svc, no_auth=True))
    assert c.get("/v1/health").status_code == 200
    _corrupt(tmp_path / "h.db")
    try:  # the background joiner runs the integrity check when it is due
        svc.sync()
    except StoreUnavailableError:  # and may find the damage itself
        pass
    r = c.get("/v1/health")
    assert r.status_code == 503 and r.json()["errors"][-1]["field"] == "integrity"
    svc.store.close()
    with pytest.raises(StoreError):
        _service(tmp_path)


# ---------------------------------------------------------------------- snapshots
def _forge(svc: DecisionService, state_json: bytes) -> None:
    s = svc.store.latest_snapshot()
    checksum = snap.checksum(state_json, s.arrays_npz)
    svc.store.run(
        lambda tx: tx.execute(
            "UPDATE snapshots SET state_json = ?, checksum = ? WHERE version = ?",
            (state_json, checksum, s.version),
        )
    )


def test_forged_snapshots_are_refused_before_construction(tmp_path, monkeypatch):
    svc = _service(tmp_path)
    for i in range(5):
        svc.decide([i / 5, 1.0], event_id=f"e{i}")
        svc.reward(f"e{i}", 1.0)
    svc.sync()
    svc.publish_snapshot()
    doc = json.loads(svc.store.latest_snapshot().state_json)
    constructed = []
    monkeypatch.setattr(LinTS, "__init__", lambda self, **kw: constructed.append(kw))
    _forge(svc, json.dumps({**doc, "class": "scarce.policies.linear.LinTS"}).encode())
    with pytest.raises(SnapshotError, match="LinTS"):
        _service(tmp_path)
    assert constructed == []  # the forged class was never constructed
    monkeypatch.undo()
    other = {**doc, "params": {**doc["params"], "alpha": 7.5}}
    _forge(svc, json.dumps(other).encode())
    with pytest.raises(SnapshotError, match="parameters"):
        _service(tmp_path)
    svc.store.close()


# ---------------------------------------------------------------------- start-up and commands
def _one_error_line(out) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), out.stderr
    return lines[0]


def test_start_up_failures_are_one_error_line(tmp_path, pg_server):
    policy = write_policy(tmp_path / "p.toml", POLICY)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database\n" * 500)
    missing_db = pg_server.new_database().rsplit("/", 1)[0] + "/no_such_database"
    for db, expect in (
        ("/sys/scarce-no-write/x.db", "cannot create"),  # a read-only file system
        (str(garbage), "not a database"),
        (missing_db, "no_such_database"),
    ):
        out = run_serve("serve", "--db", db, "--policy", str(policy), env={"SCARCE_API_KEYS": KEY})
        assert expect in _one_error_line(out)


def test_export_logs_on_a_missing_file_creates_nothing(tmp_path):
    policy = write_policy(tmp_path / "p.toml", POLICY)
    missing = tmp_path / "typo.db"
    for args in (
        ("export-logs", "--out", str(tmp_path / "x.parquet")),
        ("replay",),
    ):
        out = run_serve(*args, "--db", str(missing), "--policy", str(policy))
        assert "no database" in _one_error_line(out)
        assert not missing.exists()


def test_database_files_are_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        svc = _service(tmp_path)
        svc.decide([0.1, 0.2])
        files = [tmp_path / name for name in ("h.db", "h.db-wal", "h.db-shm")]
        assert all(f.exists() for f in files)
        assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
        svc.store.close()
    finally:
        os.umask(old)


def test_eligible_order_does_not_make_a_retry_a_conflict(tmp_path):
    svc = _service(tmp_path)
    try:
        a = svc.decide([0.3, 0.4], eligible=[2, 0], event_id="x")
        assert svc.decide([0.3, 0.4], eligible=[0, 2], event_id="x") == a
        assert svc.store.query("SELECT eligible FROM decisions") == [("[0, 2]",)]
    finally:
        svc.store.close()


# ---------------------------------------------------------------------- metrics
def test_prometheus_metrics_over_http(loopback):
    with httpx.Client(base_url=loopback.url, headers=H, timeout=10) as c:
        for i in range(4):
            assert c.post("/v1/decisions", json={"context": [i, 1.0], "event_id": f"m{i}"})
        c.post("/v1/decisions", json={"context": [1.0]})  # a 422
        c.post("/v1/rewards", json={"event_id": "m0", "value": 1.0})
        c.post("/v1/rewards", json={"event_id": "m0", "value": 1.0})
        c.post("/v1/snapshots")
        assert httpx.get(loopback.url + "/metrics").status_code == 401  # a key is needed
        text = c.get("/metrics").text
    lines = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(lines['scarce_decisions_total{status="200"}']) >= 4
    assert float(lines['scarce_decisions_total{status="422"}']) >= 1
    assert float(lines['scarce_rewards_total{status="accepted"}']) == 1
    assert float(lines['scarce_rewards_total{status="duplicate"}']) == 1
    assert float(lines['scarce_request_duration_seconds_count{endpoint="decisions"}']) >= 4
    spent = sum(1 for k in lines if k.startswith("scarce_budget_remaining"))
    assert spent == 1 and float(lines['scarce_budget_initial{group="",resource="beds"}']) == 10
    assert float(lines["scarce_model_version"]) >= 1
    assert float(lines["scarce_policy_version"]) == 1
    for name in (
        "scarce_quarantined_events",
        "scarce_unjoined_decisions",
        "scarce_learner_lag_events",
    ):
        assert name in lines


def test_a_log_written_before_key_ids_is_upgraded(tmp_path):
    """A database from before key ids (no ``key_id`` column) gets the column at start and
    keeps serving its logged decisions."""
    svc = _service(tmp_path)
    first = svc.decide([0.2, 0.3], event_id="old")
    svc.store.run(lambda tx: tx.execute("ALTER TABLE decisions DROP COLUMN key_id"))
    svc.store.close()
    again = _service(tmp_path)
    try:
        assert again.decide([0.2, 0.3], event_id="old") == first
        assert again.reward("old", 1.0) == "accepted"
        assert again.store.query("SELECT key_id FROM decisions") == [(None,)]
    finally:
        again.store.close()


def _downgrade(store) -> None:
    """Make a log look as an earlier version wrote it: no info, extras, versions, shadows,
    one-policy snapshots."""

    def unit(tx):
        for table, columns in (
            ("decisions", ("info", "extras", "action_value", "policy_version", "shadow")),
            ("rewards", ("extras",)),
            ("joined_events", ("extras",)),
        ):
            for column in columns:
                tx.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        tx.execute("DROP TABLE promotions")
        tx.execute("DROP TABLE policy_versions")
        tx.execute(
            "CREATE TABLE old_snapshots (version BIGINT PRIMARY KEY, watermark BIGINT NOT NULL "
            "UNIQUE, created_at DOUBLE PRECISION NOT NULL, checksum TEXT NOT NULL, state_json "
            "BLOB NOT NULL, arrays_npz BLOB NOT NULL)"
        )
        tx.execute(
            "INSERT INTO old_snapshots SELECT version, watermark, created_at, checksum, "
            "state_json, arrays_npz FROM snapshots"
        )
        tx.execute("DROP TABLE snapshots")
        tx.execute("ALTER TABLE old_snapshots RENAME TO snapshots")

    store.run(unit)


def test_a_log_of_an_earlier_version_is_read_as_it_is_and_upgraded_at_start(tmp_path):
    import sqlite3

    from servetools import run_serve

    svc = _service(tmp_path)
    for i in range(5):
        svc.decide([0.1 * i, 0.3], event_id=f"o{i}")
        svc.reward(f"o{i}", 1.0)
    svc.sync()
    svc.publish_snapshot()
    config, url = svc.config, svc.store.url
    _downgrade(svc.store)
    svc.store.close()
    path = url
    before = sqlite3.connect(path).execute("PRAGMA table_info(decisions)").fetchall()
    policy = tmp_path / "p.toml"
    policy.write_text(toml_text(config.to_doc()))
    out = run_serve(
        "export-logs", "--db", url, "--policy", str(policy), "--out", str(tmp_path / "x.parquet")
    )
    assert out.returncode == 0 and "5 events" in out.stdout, out.stderr
    rep = run_serve("replay", "--db", url, "--policy", str(policy))
    assert rep.returncode == 0 and "reproduced exactly" in rep.stdout, rep.stdout + rep.stderr
    assert sqlite3.connect(path).execute("PRAGMA table_info(decisions)").fetchall() == before
    upgraded = DecisionService(config, EventStore(url))
    assert upgraded.watermark == 5 and upgraded.policy_version == 1
    assert upgraded.store.get_decision("o1").policy_version is None  # decided before versions
    assert upgraded.store.latest_snapshot(policy_version=1) is not None
    upgraded.store.close()
