"""The HTTP API in-process (FastAPI TestClient): every endpoint, auth, validation messages,
size limits, and schemathesis fuzzing of the published OpenAPI schema (no 5xx)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("httpx", reason="the serve extra is not installed")

import hmac
import json
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from servetools import BAD_DECISIONS, BAD_REWARDS, FakeClock, make_config

from scarce.serve import DecisionService, EventStore
from scarce.serve import auth as auth_mod
from scarce.serve.app import create_app
from scarce.serve.auth import KeyVerifier, hash_key, load_key_hashes, read_key_file

KEY = "test-key-1"
H = {"X-API-Key": KEY}


def _client(tmp_path: Path, clock: FakeClock, **overrides) -> tuple[TestClient, DecisionService]:
    svc = DecisionService(make_config(**overrides), EventStore(tmp_path / "api.db"), clock=clock)
    app = create_app(svc, keys=KeyVerifier([hash_key(KEY), hash_key("other-key")]))
    return TestClient(app), svc


@pytest.fixture
def client(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[TestClient, DecisionService]]:
    c, svc = _client(
        tmp_path,
        clock,
        type="LinTS",
        service={"reward_window": 60.0, "max_batch": 4, "max_body_bytes": 4096},
        budgets={"beds": {"total": 3.0, "costs": [0.0, 1.0, 1.0]}},
        quotas={"beds": {"north": 1.0}},
    )
    yield c, svc
    svc.store.close()


# ---------------------------------------------------------------------- endpoints
def test_openapi_published_with_exact_field_names(client):
    c, _ = client
    doc = c.get("/openapi.json").json()
    for path in (
        "/v1/decisions",
        "/v1/decisions/batch",
        "/v1/rewards",
        "/v1/health",
        "/v1/policies/{name}",
        "/v1/snapshots",
    ):
        assert path in doc["paths"]
    schemas = doc["components"]["schemas"]
    request = schemas["DecisionRequest"]
    assert set(request["properties"]) == {"context", "eligible", "group", "event_id"}
    assert request["required"] == ["context"]
    assert request["properties"]["context"]["minItems"] == 2  # the schema states d and K
    assert request["properties"]["context"]["maxItems"] == 2
    assert set(schemas["DecisionResponse"]["properties"]) == {
        "event_id",
        "action",
        "probability",
        "probabilities",
        "model_version",
        "policy_version",
        "support",  # (catalog policies only: the sparse distribution)
    }
    assert set(schemas["RewardRequest"]["properties"]) == {"event_id", "value", "cost"}
    assert doc["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_decision_reward_snapshot_policy_health(client, clock):
    c, svc = client
    r = c.post("/v1/decisions", json={"context": [0.5, 1.0], "event_id": "e1"}, headers=H)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "event_id",
        "action",
        "probability",
        "probabilities",
        "model_version",
        "policy_version",
    }
    assert body["event_id"] == "e1" and body["model_version"] == 0
    assert abs(sum(body["probabilities"]) - 1) < 1e-9
    assert body["probability"] == body["probabilities"][body["action"]]
    # retry: same answer, logged once
    assert (
        c.post("/v1/decisions", json={"context": [0.5, 1.0], "event_id": "e1"}, headers=H).json()
        == body
    )
    # no event id: one is generated
    gen = c.post("/v1/decisions", json={"context": [0.1, 0.1]}, headers=H).json()
    assert len(gen["event_id"]) == 32

    rw = c.post("/v1/rewards", json={"event_id": "e1", "value": 1}, headers=H)
    assert rw.status_code == 200 and rw.json() == {"event_id": "e1", "status": "accepted"}
    again = c.post("/v1/rewards", json={"event_id": "e1", "value": 1}, headers=H)
    assert again.json()["status"] == "duplicate"
    other = c.post("/v1/rewards", json={"event_id": "e1", "value": 0.5, "cost": [0.1]}, headers=H)
    assert other.json()["status"] == "ignored"
    unknown = c.post("/v1/rewards", json={"event_id": "zz", "value": 1}, headers=H)
    assert unknown.status_code == 404 and "event_id" in unknown.json()["detail"]

    snap = c.post("/v1/snapshots", headers=H)
    assert snap.status_code == 201
    assert snap.json()["version"] == 1 and snap.json()["model_version"] == 1

    pol = c.get("/v1/policies/default", headers=H)
    assert pol.status_code == 200
    info = pol.json()
    assert info["config"]["type"] == "LinTS" and info["model_version"] == 1
    assert info["snapshot_version"] == 1
    assert info["counts"]["decisions"] == 2 and info["counts"]["rewards"] == 2
    assert info["budgets"]["beds"]["quotas"]["north"]["initial"] == 1.0
    assert c.get("/v1/policies/nope", headers=H).status_code == 404

    h = c.get("/v1/health")
    assert h.status_code == 200 and h.json() == {
        "status": "ok",
        "policy": "default",
        "model_version": 1,
        "store": "sqlite",
        "quarantined": 0,
    }
    after = c.post("/v1/decisions", json={"context": [0.5, 1.0], "event_id": "e2"}, headers=H)
    assert after.json()["model_version"] == 1


def test_late_reward_over_http(client, clock):
    c, svc = client
    c.post("/v1/decisions", json={"context": [0.5, 1.0], "event_id": "e1"}, headers=H)
    clock.advance(61)
    r = c.post("/v1/rewards", json={"event_id": "e1", "value": 1.0}, headers=H)
    assert r.json()["status"] == "late"
    c.post("/v1/snapshots", headers=H)
    assert svc.n_learned == 0


def test_batch_decisions_and_limit(client):
    c, _ = client
    reqs = [{"context": [float(i), 1.0], "event_id": f"b{i}"} for i in range(4)]
    r = c.post("/v1/decisions/batch", json={"requests": reqs}, headers=H)
    assert r.status_code == 200 and [d["event_id"] for d in r.json()["decisions"]] == [
        "b0",
        "b1",
        "b2",
        "b3",
    ]
    too_many = c.post("/v1/decisions/batch", json={"requests": reqs + reqs[:1]}, headers=H)
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "requests"


def test_budget_exhaustion_is_409_and_quota_applies(tmp_path, clock):
    c, svc = _client(
        tmp_path,
        clock,
        type="Random",
        budgets={"beds": {"total": 2.0, "costs": [1.0, 1.0, 1.0]}},
        quotas={"beds": {"north": 1.0}},
    )
    ok = c.post("/v1/decisions", json={"context": [1.0, 0.0], "group": "north"}, headers=H)
    assert ok.status_code == 200
    no = c.post("/v1/decisions", json={"context": [1.0, 0.0], "group": "north"}, headers=H)
    assert no.status_code == 409 and "north" in no.json()["detail"]
    assert c.post("/v1/decisions", json={"context": [1.0, 0.0]}, headers=H).status_code == 200
    last = c.post("/v1/decisions", json={"context": [1.0, 0.0]}, headers=H)
    assert last.status_code == 409 and last.json()["errors"][0]["field"] == "budget"
    svc.store.close()


# ---------------------------------------------------------------------- auth
@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"X-Api-Key": KEY + "x"}]
)
def test_auth_required_on_every_endpoint(client, headers):
    c, _ = client
    calls = [
        ("post", "/v1/decisions", {"context": [1.0, 0.0]}),
        ("post", "/v1/decisions/batch", {"requests": [{"context": [1.0, 0.0]}]}),
        ("post", "/v1/rewards", {"event_id": "e", "value": 1.0}),
        ("get", "/v1/policies/default", None),
        ("post", "/v1/snapshots", None),
    ]
    for method, path, body in calls:
        r = getattr(c, method)(path, headers=headers, **({"json": body} if body else {}))
        assert r.status_code == 401, path
        assert "X-API-Key" in r.json()["detail"]
    assert c.get("/v1/health", headers=headers).status_code == 200  # liveness stays open


def test_second_key_works(client):
    c, _ = client
    r = c.post("/v1/decisions", json={"context": [1.0, 0.0]}, headers={"X-API-Key": "other-key"})
    assert r.status_code == 200


def test_key_check_is_constant_time(monkeypatch):
    """Every stored hash is compared with hmac.compare_digest, matched or not (no early exit)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_mod.hmac, "compare_digest", spy)
    v = KeyVerifier([hash_key(k) for k in ("k1", "k2", "k3")])
    for key, ok in (("k1", True), ("k3", True), ("nope", False), ("", False), (None, False)):
        calls.clear()
        assert v.verify(key) is ok
        assert len(calls) == 3  # all hashes compared, whichever matched
        assert all(len(a) == len(b) == 32 for a, b in calls)  # fixed-length digests


def test_keys_hashed_at_rest(tmp_path):
    f = tmp_path / "keys"
    f.write_text(f"# service keys\n{hash_key('alpha')}\n\n")
    assert read_key_file(f) == [hash_key("alpha")]
    assert KEY not in f.read_text()
    hashes = load_key_hashes(f, environ={"SCARCE_API_KEYS": "beta, gamma"})
    assert hashes == [hash_key("beta"), hash_key("gamma"), hash_key("alpha")]
    assert all(h.startswith("sha256:") and "beta" not in h for h in hashes)
    f.write_text("plain-key\n")
    with pytest.raises(ValueError, match="not plain keys"):
        read_key_file(f)
    with pytest.raises(ValueError, match="sha256"):
        KeyVerifier(["md5:abc"])


def test_app_refuses_to_start_without_keys(tmp_path, clock):
    svc = DecisionService(make_config(), EventStore(tmp_path / "k.db"), clock=clock)
    with pytest.raises(ValueError, match="API keys"):
        create_app(svc)
    c = TestClient(create_app(svc, no_auth=True))
    assert c.post("/v1/decisions", json={"context": [1.0, 0.0]}).status_code == 200
    svc.store.close()


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(("body", "field"), BAD_DECISIONS)
def test_bad_decisions_are_4xx_naming_the_field(client, body, field):
    c, svc = client
    r = c.post("/v1/decisions", content=body, headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    out = r.json()
    assert any(e["field"].startswith(field) for e in out["errors"]), out
    assert field in out["detail"]
    assert svc.store.counts()["decisions"] == 0


@pytest.mark.parametrize(("body", "field"), BAD_REWARDS)
def test_bad_rewards_are_4xx_naming_the_field(client, body, field):
    c, _ = client
    c.post("/v1/decisions", json={"context": [1.0, 2.0], "event_id": "e"}, headers=H)
    r = c.post("/v1/rewards", content=body, headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"].startswith(field), r.json()


def test_request_size_limit(client):
    c, _ = client
    big = json.dumps({"context": [1.0, 2.0], "event_id": "x", "group": "g" * 5000}).encode()
    r = c.post("/v1/decisions", content=big, headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 413 and "body" in r.json()["detail"]

    def chunks():  # no Content-Length: the streamed size is counted
        for _ in range(10):
            yield b" " * 1000

    r = c.post("/v1/decisions", content=chunks(), headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 413


# ---------------------------------------------------------------------- fuzzing
schemathesis = pytest.importorskip("schemathesis")


def test_schemathesis_finds_no_server_errors(tmp_path, clock):
    """Fuzz every operation of the published schema: schema-valid requests must be accepted
    with responses matching their declared schemas (schemathesis' checks), and
    schema-violating ones must never get a 5xx."""
    c, svc = _client(
        tmp_path,
        clock,
        type="LinTS",
        budgets={"beds": {"total": 5.0, "costs": [0.0, 1.0, 1.0]}},
        quotas={"beds": {"north": 1.0}},
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", c.app)
    failures: list[tuple[str, object, str]] = []
    negative = {}
    for operation in schema.get_all_operations():
        _fuzz(operation.ok(), failures)
        negative[operation.ok().label] = _fuzz_negative(operation.ok(), failures)
    for label in ("POST /v1/decisions", "POST /v1/rewards", "POST /v1/decisions/batch"):
        assert negative[label] >= 10, negative
    svc.store.close()
    assert failures == []


def _fuzz(op, failures: list) -> None:
    @settings(
        max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=op.as_strategy())
    def check(case):
        case.headers = {**(case.headers or {}), **H}
        try:
            case.call_and_validate()
        except Exception as exc:  # noqa: BLE001 - collect every failing case
            failures.append((op.label, case.body, str(exc)[:2000]))

    check()


def _fuzz_negative(op, failures: list) -> int:
    """Schema-violating requests: none may get a 5xx. Returns how many were sent (operations
    without inputs have no negative cases)."""
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    sent = []

    @settings(
        max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=op.as_strategy(GenerationMode.NEGATIVE))
    def check(case):
        case.headers = {**(case.headers or {}), **H}
        response = case.call()
        sent.append(response.status_code)
        if response.status_code >= 500:
            failures.append((op.label, case.body, response.status_code, response.text[:500]))

    try:
        check()
    except Unsatisfiable:
        pass
    return len(sent)


def test_per_action_features_over_http(tmp_path, clock):
    c, svc = _client(tmp_path, clock, type="LinTS", service={"features": "per_action"})
    schema = c.get("/openapi.json").json()["components"]["schemas"]["DecisionRequest"]
    assert "action_features" in schema["properties"] and "context" not in schema["properties"]
    feats = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    r = c.post("/v1/decisions", json={"action_features": feats, "event_id": "p"}, headers=H)
    assert r.status_code == 200 and len(r.json()["probabilities"]) == 3
    short = c.post("/v1/decisions", json={"action_features": feats[:2]}, headers=H)
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "action_features"
    ctx = c.post("/v1/decisions", json={"action_features": feats, "context": [1.0]}, headers=H)
    assert ctx.status_code == 422 and ctx.json()["errors"][0]["field"] == "context"
    svc.store.close()


def test_health_reports_an_unreachable_store(client, monkeypatch):
    c, svc = client

    def broken(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(svc.store.db, "query", broken)
    r = c.get("/v1/health")
    assert r.status_code == 503 and r.json()["errors"][0]["field"] == "store"


# ---------------------------------------------------------------------- fast path
FAST_PATH_REQUESTS = [
    {"context": [1.0, 0.0], "event_id": "a"},
    {"context": [0.5, -2.0], "event_id": "b", "group": "north"},
    {"context": [0.5, -2.0], "event_id": "c", "group": "north"},  # north's quota is spent
    {"context": [0.2, 0.3], "event_id": "d", "eligible": [1, 2]},
    {"context": [1.0, 0.0], "event_id": "a"},  # a retry: the logged decision
    {"context": [9.0, 0.0], "event_id": "a"},  # a reuse: 409
    {"context": [0.2, 0.3], "event_id": "e", "eligible": [1, 1]},  # repeats: service's 422
    {"context": [0.2, 0.3], "event_id": "f", "eligible": [5]},  # unknown action: model's 422
    {"context": [0.2, 0.3, 0.4], "event_id": "g"},  # wrong dimension
    {"context": [0.1, 0.1]},  # a generated event id
    {"context": [0.1, 0.1], "event_id": "h"},
    {"context": [0.1, 0.1], "event_id": "i"},  # the budget is spent: 409
]


@pytest.mark.parametrize("group_commit", [True, False])
def test_fast_path_answers_as_the_routed_path(tmp_path, clock, monkeypatch, group_commit):
    """The same requests, once with ``Content-Type: application/json`` (answered before the
    router) and once as ``application/vnd.test+json`` (FastAPI's route parses it): identical
    statuses and bodies, and the fast path really served the first run."""
    overrides = {
        "type": "LinTS",
        "budgets": {"beds": {"total": 5.0, "costs": [1.0, 1.0, 1.0]}},
        "quotas": {"beds": {"north": 1.0}},
    }
    apps, calls = [], {"decide": 0, "decide_async": 0}
    for name in ("fast", "routed"):
        store = EventStore(tmp_path / f"{name}.db", group_commit=group_commit)
        svc = DecisionService(make_config(**overrides), store, clock=clock)
        apps.append((TestClient(create_app(svc, keys=KeyVerifier([hash_key(KEY)]))), svc))
    for method in calls:
        original = getattr(DecisionService, method)

        def counted(self, *args, _original=original, _name=method, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(DecisionService, method, counted)
    (fast, fast_svc), (routed, routed_svc) = apps
    answers = {}
    for name, c, content_type in (
        ("fast", fast, {"Content-Type": "application/json"}),
        ("routed", routed, {"Content-Type": "application/vnd.test+json"}),
    ):
        before = dict(calls)
        answers[name] = []
        for body in FAST_PATH_REQUESTS:
            r = c.post("/v1/decisions", content=json.dumps(body), headers={**H, **content_type})
            out = r.json()
            if "event_id" not in body and r.status_code == 200:
                # a fresh random id, hence its own random stream: compare the rest
                assert len(out.pop("event_id")) == 32
                assert out.pop("probability") == out["probabilities"][out.pop("action")]
            answers[name].append((r.status_code, out))
        used = {k: calls[k] - before[k] for k in calls}
        if name == "fast" and group_commit:  # awaited on the event loop
            assert used["decide_async"] == 10 and used["decide"] == 0
        elif name == "fast":  # PostgreSQL-like: the blocking call in a worker thread
            assert used["decide_async"] == 0 and used["decide"] == 10
        else:  # the route: the model rejects the unknown action and the wrong dimension
            assert used["decide_async"] == 0 and used["decide"] == 10
    assert answers["fast"] == answers["routed"]
    statuses = [s for s, _ in answers["fast"]]
    assert statuses == [200, 200, 409, 200, 200, 409, 422, 422, 422, 200, 200, 409]
    assert answers["fast"][4] == answers["fast"][0]
    fields = [out["errors"][0]["field"] for s, out in answers["fast"] if s == 422]
    assert fields == ["eligible", "eligible[0]", "context"]
    # a bad key on the fast path is refused by the route's check
    r = fast.post("/v1/decisions", json={"context": [1.0, 0.0]}, headers={"X-API-Key": "no"})
    assert r.status_code == 401
    assert fast_svc.store.counts() == routed_svc.store.counts()
    for _, svc in apps:
        svc.store.close()
