"""The seven failures found by attacking the service (issue 16), each over the real HTTP stack
(``scarce serve`` under uvicorn in a subprocess) on SQLite and PostgreSQL where it applies:

1. one extreme event must not halt the log-ordered learner (bounded features, quarantine);
2. the service reconnects to PostgreSQL after a database restart;
3. concurrent identical rewards on PostgreSQL are safe (no 500);
4. a batch is all or nothing;
5. no password in the banner or in start-up errors;
6. non-ASCII API keys work;
7. a wrong or missing key is refused before the body is read; stalled and idle connections
   are closed after configurable timeouts.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("httpx", reason="the serve extra is not installed")

import selectors
import socket
import threading
import time
from pathlib import Path

import httpx
from servetools import ServerProcess, make_config, run_serve, write_policy

from scarce.serve import DecisionService, EventStore

KEY = "fault-test-key"
H = {"X-API-Key": KEY}

GLM_POLICY = """
type = "GLMUCB"
n_actions = 3
n_features = 4
seed = 0

[service]
reward_window = 3600.0
sync_interval = 0.1
snapshot_every = 0
max_abs_feature = 1e12
"""

BUDGET_POLICY = """
type = "LinUCB"
n_actions = 3
n_features = 2
seed = 1

[service]
sync_interval = 0.2

[budgets.slots]
total = 3.0
costs = [1.0, 1.0, 1.0]
"""

EXTREME = [1e12, -1e12, 1e12, 1e12]


def _db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return request.getfixturevalue("pg_server").new_database()


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _good_context(i: int) -> list[float]:
    return [0.1 * (i % 5), 1.0, -0.2 * (i % 3), 0.5]


# ---------------------------------------------------------------------- 1. extreme event
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_extreme_event_never_halts_the_learner(backend, tmp_path, request):
    """GLMUCB, a context of +-1e12 (allowed by this config) and its reward: the event is
    quarantined (counted in health, /metrics and the policy's counts), the learner goes on
    with the later events, snapshots work, a restart works and ``scarce replay`` reproduces
    the snapshot."""
    db = _db(backend, tmp_path, request)
    policy = write_policy(tmp_path / "glm.toml", GLM_POLICY)
    server = ServerProcess(db, policy, KEY).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=H) as c:

            def decide_and_reward(eid: str, context: list[float], value: float) -> None:
                d = c.post("/v1/decisions", json={"context": context, "event_id": eid})
                assert d.status_code == 200, d.text
                r = c.post("/v1/rewards", json={"event_id": eid, "value": value})
                assert r.status_code == 200 and r.json()["status"] == "accepted", r.text

            def model_version() -> int:
                return int(c.get("/v1/health").json()["model_version"])

            # as in the report: the extreme event comes first (the GLM's Newton step on it
            # meets a singular matrix), then the normal traffic
            decide_and_reward("extreme", EXTREME, 1.0)
            assert _wait_for(lambda: model_version() == 1)
            for i in range(8):
                decide_and_reward(f"g{i}", _good_context(i), float(i % 2))
            assert _wait_for(lambda: model_version() == 9), c.get("/v1/health").json()
            health = c.get("/v1/health").json()
            assert health["status"] == "ok" and health["quarantined"] == 1
            counts = c.get("/v1/policies/default").json()["counts"]
            assert counts["quarantined"] == 1 and counts["learned"] == 8
            metrics = c.get("/metrics").text
            assert "scarce_quarantined_events 1.0" in metrics
            snap = c.post("/v1/snapshots")
            assert snap.status_code == 201 and snap.json()["model_version"] == 9
            # the decisions go on: the model scores normal contexts
            d = c.post("/v1/decisions", json={"context": _good_context(1), "event_id": "after"})
            assert d.status_code == 200 and d.json()["model_version"] == 9
    finally:
        server.stop()
    assert "quarantined" in server.stderr()  # logged
    server = ServerProcess(db, policy, KEY).start()  # a restart works
    try:
        assert httpx.get(server.url + "/v1/health").json()["model_version"] == 9
    finally:
        server.stop()
    out = run_serve("replay", "--db", db, "--policy", str(policy))
    assert out.returncode == 0, out.stderr
    assert "reproduced exactly" in out.stdout and "1 quarantined" in out.stdout


def test_features_beyond_the_bound_are_a_422_naming_the_field(tmp_path):
    from fastapi.testclient import TestClient

    from scarce.serve.app import create_app

    svc = DecisionService(make_config(type="GLMUCB", n_features=4), EventStore(tmp_path / "b.db"))
    c = TestClient(create_app(svc, no_auth=True))
    try:
        for body in ({"context": EXTREME}, {"context": [1e7, 0, 0, 0]}):
            r = c.post("/v1/decisions", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["errors"][0]["field"].startswith("context")
        assert c.post("/v1/decisions", json={"context": [1e5, 0, 0, 0]}).status_code == 200
        assert svc.store.counts()["decisions"] == 1
    finally:
        svc.store.close()


# ---------------------------------------------------------------------- 2. PostgreSQL restart
def test_reconnects_after_a_postgres_restart(own_pg_server, tmp_path):
    db = own_pg_server.new_database()
    policy = write_policy(tmp_path / "p.toml", BUDGET_POLICY.replace("3.0", "100.0"))
    server = ServerProcess(db, policy, KEY).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=H) as c:
            for i in range(4):  # every worker thread of the server holds a connection now
                assert c.post("/v1/decisions", json={"context": [i, 1]}).status_code == 200
            own_pg_server.stop()
            down = c.post("/v1/decisions", json={"context": [0, 1]})
            assert down.status_code == 503 and down.json()["errors"][0]["field"] == "store"
            assert c.get("/v1/health").status_code == 503
            own_pg_server.start()
            for i in range(8):
                d = c.post("/v1/decisions", json={"context": [i, 2], "event_id": f"r{i}"})
                assert d.status_code == 200, d.text
                r = c.post("/v1/rewards", json={"event_id": f"r{i}", "value": 1.0})
                assert r.status_code == 200, r.text
            assert c.get("/v1/health").status_code == 200
            assert c.post("/v1/snapshots").status_code == 201
            assert c.get("/v1/policies/default").json()["counts"]["decisions"] == 12
    finally:
        server.stop()


# ---------------------------------------------------------------------- 3. reward race
def _race(n_threads: int, call) -> list:
    barrier = threading.Barrier(n_threads)
    out: list = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            result = call(i)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            result = exc
        with lock:
            out.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_identical_rewards_are_safe(backend, tmp_path, request):
    """Many threads send the same reward for one event at once: one is accepted, the others
    are duplicates; different rewards: one accepted, the others ignored. No exception."""
    store = EventStore(_db(backend, tmp_path, request))
    svc = DecisionService(make_config(), store)
    try:
        for k in range(6):
            eid = f"e{k}"
            svc.decide([0.5, 1.0], event_id=eid)
            same = _race(12, lambda i, eid=eid: svc.reward(eid, 1.0))
            assert sorted(same) == ["accepted"] + ["duplicate"] * 11, same
            other = f"o{k}"
            svc.decide([0.5, 1.0], event_id=other)
            diff = _race(12, lambda i, other=other: svc.reward(other, i / 12))
            assert sorted(diff) == ["accepted"] + ["ignored"] * 11, diff
    finally:
        store.close()


def test_concurrent_identical_rewards_over_http_on_postgres(pg_server, tmp_path):
    policy = write_policy(tmp_path / "p.toml", BUDGET_POLICY.replace("3.0", "100.0"))
    server = ServerProcess(pg_server.new_database(), policy, KEY).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=H) as c:
            for k in range(5):
                eid = f"h{k}"
                assert c.post("/v1/decisions", json={"context": [k, 1], "event_id": eid})
                statuses = _race(
                    8,
                    lambda i, eid=eid: httpx.post(
                        server.url + "/v1/rewards",
                        json={"event_id": eid, "value": 1.0},
                        headers=H,
                        timeout=30,
                    ),
                )
                assert [r.status_code for r in statuses] == [200] * 8, [r.text for r in statuses]
                assert (
                    sorted(r.json()["status"] for r in statuses) == ["accepted"] + ["duplicate"] * 7
                )
    finally:
        server.stop()


# ---------------------------------------------------------------------- 4. atomic batches
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_batches_are_all_or_nothing(backend, tmp_path, request):
    """Budget 3, every action costs 1: a batch of 5 is a 409 and logs nothing; a batch of 3
    is answered and logged; its retry (same event ids, eligible in another order) gets the
    same answers and charges nothing; a batch whose last case reuses an event id for another
    request is a 409 and logs nothing."""
    db = _db(backend, tmp_path, request)
    policy = write_policy(tmp_path / "p.toml", BUDGET_POLICY)
    server = ServerProcess(db, policy, KEY).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=H) as c:

            def counts() -> tuple[int, float]:
                info = c.get("/v1/policies/default").json()
                return info["counts"]["decisions"], info["budgets"]["slots"]["remaining"]

            five = {"requests": [{"context": [i, 1.0]} for i in range(5)]}
            r = c.post("/v1/decisions/batch", json=five)
            assert r.status_code == 409, r.text
            assert r.json()["errors"][0]["field"].startswith("requests[3]")
            assert counts() == (0, 3.0)
            three = {
                "requests": [
                    {"context": [i, 1.0], "event_id": f"b{i}", "eligible": [0, 1, 2]}
                    for i in range(3)
                ]
            }
            ok = c.post("/v1/decisions/batch", json=three)
            assert ok.status_code == 200 and len(ok.json()["decisions"]) == 3
            assert counts() == (3, 0.0)
            for case in three["requests"]:
                case["eligible"] = [2, 0, 1]
            again = c.post("/v1/decisions/batch", json=three)
            assert again.status_code == 200 and again.json() == ok.json()
            assert counts() == (3, 0.0)
            reuse = {
                "requests": [
                    {"context": [0.0, 1.0], "event_id": "b0", "eligible": [0, 1, 2]},
                    {"context": [9.0, 9.0], "event_id": "b1"},
                ]
            }
            conflict = c.post("/v1/decisions/batch", json=reuse)
            assert conflict.status_code == 409
            assert conflict.json()["errors"][0]["field"] == "requests[1].event_id"
            assert counts() == (3, 0.0)
    finally:
        server.stop()


# ---------------------------------------------------------------------- 5. credentials
def test_no_password_in_the_banner_or_in_errors(pg_server, tmp_path):
    secret = "s3cret-Pa55"
    url = pg_server.new_database().replace("scarce@", f"scarce:{secret}@")  # trust auth
    policy = write_policy(tmp_path / "p.toml", BUDGET_POLICY)
    server = ServerProcess(url, policy, KEY).start()
    server.stop()
    banner = server.stderr()
    assert "scarce serve:" in banner and "scarce:***@" in banner
    assert secret not in banner
    # a server that is not there: one error line, no password, no traceback
    dead = f"postgresql://scarce:{secret}@127.0.0.1:1/nothing"
    for args in (
        ("serve", "--db", dead, "--policy", str(policy)),
        ("export-logs", "--db", dead, "--policy", str(policy), "--out", str(tmp_path / "x")),
        ("replay", "--db", dead, "--policy", str(policy)),
    ):
        out = run_serve(*args, env={"SCARCE_API_KEYS": KEY})
        assert out.returncode == 2, out
        assert secret not in out.stderr + out.stdout
        assert "Traceback" not in out.stderr
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error:"), out.stderr


# ---------------------------------------------------------------------- 6. non-ASCII keys
def test_non_ascii_api_keys_work(tmp_path):
    key = "clé-ünïcødé-κλειδί"
    policy = write_policy(tmp_path / "p.toml", BUDGET_POLICY.replace("3.0", "100.0"))
    server = ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", policy, key).start()
    try:
        raw = {"X-API-Key": key.encode("utf-8")}
        for content_type in ("application/json", "application/vnd.test+json"):
            d = httpx.post(
                server.url + "/v1/decisions",
                content=b'{"context": [1.0, 2.0], "event_id": "u"}',
                headers={**raw, "Content-Type": content_type},
                timeout=10,
            )
            assert d.status_code == 200, d.text
        r = httpx.post(
            server.url + "/v1/rewards", json={"event_id": "u", "value": 1.0}, headers=raw
        )
        assert r.status_code == 200, r.text
        latin1 = {"X-API-Key": key.encode("utf-8").decode("latin-1").encode("utf-8")}
        assert httpx.post(server.url + "/v1/snapshots", headers=latin1).status_code == 401
    finally:
        server.stop()


# ---------------------------------------------------------------------- 7. connections
def _raw(port: int, data: bytes, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if data:
        s.sendall(data)
    return s


def _read_until_closed(s: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection; and how long that took
    (``inf`` when it was still open after ``limit`` seconds)."""
    t0 = time.monotonic()
    s.settimeout(0.2)
    got = b""
    while time.monotonic() - t0 < limit:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return got, time.monotonic() - t0
        if not chunk:
            return got, time.monotonic() - t0
        got += chunk
    return got, float("inf")


def _server(tmp: Path, *extra: str) -> ServerProcess:
    policy = write_policy(tmp / "p.toml", BUDGET_POLICY.replace("3.0", "1000.0"))
    return ServerProcess(f"sqlite:///{tmp / 'g.db'}", policy, KEY, *extra).start()


def _read_all_until_closed(socks: list[socket.socket], limit: float) -> list[tuple[bytes, bool]]:
    """For each socket: what the server sent within ``limit`` seconds (all sockets at once),
    and whether it closed the connection."""
    got = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + limit
    with selectors.DefaultSelector() as sel:
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.1):
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    got[s] += chunk
                else:
                    open_.discard(s)
                    sel.unregister(s)
    return [(got[s], s not in open_) for s in socks]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):
    """A server with 1-second request and keep-alive timeouts."""
    server = _server(
        tmp_path_factory.mktemp("guarded"), "--timeout-keep-alive", "1", "--timeout-request", "1"
    )
    yield server
    server.stop()


def test_wrong_or_missing_key_refused_before_the_body(tmp_path):
    """100 connections announce 1 MB bodies without a valid key and send 900 kB of them:
    each is answered 401 and closed without the rest being read, and the server does not
    keep the bodies in memory."""
    guarded = _server(tmp_path)
    rss0 = guarded.rss_bytes()
    socks = []
    for i in range(100):
        key = b"" if i % 2 else b"X-API-Key: wrong\r\n"
        head = (
            b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + key
            + b"Content-Length: 1000000\r\n\r\n"
        )
        s = _raw(guarded.port, head)
        s.setblocking(False)
        socks.append(s)
    # push 900 kB into every connection (as far as the server takes it) for up to 5 s
    sent = [0] * len(socks)
    chunk = b"0" * 65536
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(n < 900_000 for n in sent):
        progress = False
        for i, s in enumerate(socks):
            if sent[i] >= 900_000:
                continue
            try:
                n = s.send(chunk[: 900_000 - sent[i]])
            except BlockingIOError:
                continue
            except OSError:  # answered and closed by the server
                sent[i] = 900_000
                continue
            sent[i] += n
            progress = progress or n > 0
        if not progress:
            time.sleep(0.05)
    time.sleep(0.5)
    grown = guarded.rss_bytes() - rss0
    answers = _read_all_until_closed(socks, 5.0)
    for s in socks:
        s.close()
    guarded.stop()
    assert all(a.startswith(b"HTTP/1.1 401") for a, _ in answers), answers[0]
    assert all(closed for _, closed in answers)  # the rest of the body is not awaited
    assert grown < 30 * 2**20, f"server memory grew by {grown / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    "data",
    [
        b"",  # connects and sends nothing
        b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\n",  # stalls in the headers
        b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nX-API-Key: "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        + b'{"context": [',  # stalls in the body (with a valid key)
    ],
    ids=["idle", "stalled-headers", "stalled-body"],
)
def test_stalled_connections_are_closed(guarded, data):
    s = _raw(guarded.port, data)
    try:
        got, dt = _read_until_closed(s, 8.0)
    finally:
        s.close()
    assert dt < 8.0, "the connection was still open after 8 s (timeout-request is 1 s)"
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), got


def test_idle_keep_alive_connections_are_closed(guarded):
    body = b'{"context": [1.0, 2.0]}'
    request = (
        b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nX-API-Key: "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    s = _raw(guarded.port, request)
    try:
        got, dt = _read_until_closed(s, 8.0)
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200"), got
    assert dt < 8.0
    store = EventStore(guarded.db_url)  # the answered decision was logged
    try:
        assert store.counts()["decisions"] >= 1
    finally:
        store.close()
