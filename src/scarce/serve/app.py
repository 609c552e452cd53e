"""The HTTP API (FastAPI). The OpenAPI schema is served at ``/openapi.json``; the interactive
``/docs`` pages (which load scripts from a CDN) are not served.

Every endpoint except ``GET /v1/health`` and ``GET /openapi.json`` needs an ``X-API-Key``
header whose key has the endpoint's scope (``decide``, ``reward`` or ``admin``); the key is
checked before the body is read. Bodies are JSON only, validated strictly (unknown fields,
NaN/inf, wrong types and shapes are rejected) and capped at ``max_body_bytes``. Errors are
``{"detail": "<field>: <message>", "errors": [{"field", "message"}]}``. Nothing received is
executed or unpickled: requests are JSON, snapshots are JSON + npz loaded with
``allow_pickle=False``.
"""

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from scarce.serve.asgi import KEY_SCOPE, GuardMiddleware, Scope, dumps, error_content
from scarce.serve.auth import KeyInfo, KeyVerifier
from scarce.serve.config import ConfigError
from scarce.serve.metrics import CONTENT_TYPE, ServiceMetrics
from scarce.serve.models import (
    DecisionResponse,
    ErrorResponse,
    HealthResponse,
    PromotionRequest,
    PromotionResponse,
    RewardResponse,
    SnapshotResponse,
    Strict,
    request_models,
    validation_items,
)
from scarce.serve.promotion import PromotionError, promote
from scarce.serve.service import (
    BudgetExhaustedError,
    DecisionService,
    EventConflictError,
    RequestError,
    UnknownEventError,
)
from scarce.serve.store import StoreUnavailableError

_LOG = logging.getLogger("scarce.serve")
_SERVICE_ERRORS = (
    RequestError,
    UnknownEventError,
    BudgetExhaustedError,
    EventConflictError,
    StoreUnavailableError,
    PromotionError,
    ConfigError,
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid X-API-Key"},
    403: {"model": ErrorResponse, "description": "the key lacks this endpoint's scope"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"model": ErrorResponse, "description": "invalid request (the message names the field)"},
    503: {"model": ErrorResponse, "description": "event store unavailable"},
}


def _error(status_code: int, items: list[tuple[str, str]]) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=error_content(items))


def _service_error(exc: Exception) -> tuple[int, list[tuple[str, str]]]:
    """Status and error items of the service's exceptions (one mapping for every path)."""
    if isinstance(exc, RequestError):
        return 422, [(exc.field, exc.message)]
    if isinstance(exc, UnknownEventError):
        return 404, [("event_id", f"no decision was logged under {exc.args[0]!r}")]
    if isinstance(exc, (BudgetExhaustedError, EventConflictError)):
        return 409, [(exc.field, str(exc))]
    if isinstance(exc, StoreUnavailableError):
        return 503, [("store", str(exc))]
    if isinstance(exc, PromotionError):
        return 409, [(exc.field, str(exc))]
    if isinstance(exc, ConfigError):
        return 422, [("config", str(exc))]
    raise TypeError(f"not a service error: {exc!r}")


def _key(request: Request) -> KeyInfo:
    return request.scope[KEY_SCOPE]  # type: ignore[no-any-return]


def _key_id(key: KeyInfo, keys: KeyVerifier | None) -> str | None:
    # without keys nothing is recorded (so a log can later be served with keys and still be
    # rewarded by any of them)
    return key.id if keys is not None else None


class ServiceApp(FastAPI):
    """The FastAPI app with :class:`GuardMiddleware` in front of everything: the key check and
    the fast path run before FastAPI's own layers (telemetry, error and body-limit
    middleware), so a decision answered by the fast path never enters them."""

    guard: GuardMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.guard is not None and scope["type"] == "http":
            await self.guard(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    service: DecisionService,
    *,
    keys: KeyVerifier | None = None,
    no_auth: bool = False,
    background_sync: bool = False,
    open_metrics: bool = False,
) -> FastAPI:
    """The FastAPI application for ``service``.

    Parameters
    ----------
    service:
        the decision service (policy + event store).
    keys:
        allowed API keys; required unless ``no_auth=True``.
    no_auth:
        serve without API keys (explicit opt-out, for local experiments).
    background_sync:
        run the joiner/learner every ``config.sync_interval`` seconds while the app runs.
    open_metrics:
        serve ``GET /metrics`` without a key (else it needs the ``admin`` scope).
    """
    if keys is None and not no_auth:
        raise ValueError("create_app needs API keys (keys=KeyVerifier(...)) or no_auth=True")
    cfg = service.config
    stop = threading.Event()
    metrics = ServiceMetrics(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        thread = None
        if background_sync and cfg.sync_interval > 0:
            thread = threading.Thread(target=_sync_loop, name="scarce-joiner", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)

    def _sync_loop() -> None:
        while not stop.wait(cfg.sync_interval):
            try:
                service.sync()
            except Exception:  # noqa: BLE001 - keep the joiner alive; the error is logged
                _LOG.exception("joiner run failed")

    app = ServiceApp(
        title="scarce decision service",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        responses=_ERRORS,
        docs_url=None,
        redoc_url=None,
    )
    # the key is checked by GuardMiddleware before the body is read; this dependency only
    # declares the header in the OpenAPI schema
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")

    async def declare_key(key: Annotated[str | None, Security(header)]) -> None:
        return None

    auth = [Depends(declare_key)]

    DecisionRequest, RewardRequest = request_models(cfg)
    validate_decision = DecisionRequest.model_validate_json
    decide_keys = cfg.traits.decide_keywords
    feedback_keys = tuple(k for k in cfg.traits.update_keywords if k != "costs")

    def keywords(req: Any, names: tuple[str, ...]) -> dict[str, Any] | None:
        if not names:
            return None
        return {k: getattr(req, k) for k in names if getattr(req, k) is not None} or None

    # with group commit the event loop awaits the commit itself instead of parking a worker
    # thread on it (PostgreSQL reads, when a decision needs one, run in a worker thread)
    inline = service.store.group_commit

    async def run_service(
        sync: Callable[..., Any], async_: Callable[..., Awaitable[Any]], *a: Any, **kw: Any
    ) -> Any:
        if inline:
            return await async_(*a, **kw)
        return await run_in_threadpool(partial(sync, *a, **kw))

    async def decide_in_thread(*a: Any, **kw: Any) -> Any:
        return await run_in_threadpool(partial(service.decide, *a, **kw))

    async def fast_decision(scope: Scope, body: bytes) -> tuple[int, bytes] | None:
        """``POST /v1/decisions`` without the router: the same request model (validated from
        the JSON bytes), the same service call and the same error mapping as the route (the
        key was checked before). Anything else (another route, a body that does not
        validate, a non-JSON content type) returns None and takes the full FastAPI path,
        which produces the canonical 422 answers; so this path only answers requests that the
        route would accept too."""
        if scope["path"] != "/v1/decisions" or scope["method"] != "POST":
            return None
        t0 = time.perf_counter()
        content_type = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
                break
        if content_type != b"application/json" and (
            content_type is None or content_type.split(b";")[0].strip() != b"application/json"
        ):
            return None
        try:
            req = validate_decision(body)
        except ValidationError:
            return None
        fields = req.__dict__  # the model's fields (getattr of an absent one costs ~5 us)
        try:
            r = await (service.decide_async if inline else decide_in_thread)(
                fields.get("context"),
                action_features=fields.get("action_features"),
                eligible=fields["eligible"],
                group=fields["group"],
                event_id=fields["event_id"],
                key_id=_key_id(scope[KEY_SCOPE], keys),
                keywords=keywords(req, decide_keys) if decide_keys else None,
            )
        except _SERVICE_ERRORS as exc:
            code, items = _service_error(exc)
            metrics.decided(code)
            return code, dumps(error_content(items))
        metrics.decision_answered(time.perf_counter() - t0)
        # (every number of the answer is finite: the service checked the distribution)
        return 200, orjson.dumps(r.to_dict())

    open_paths = {"/v1/health", "/openapi.json"} | ({"/metrics"} if open_metrics else set())
    app.guard = GuardMiddleware(
        partial(FastAPI.__call__, app),
        keys=keys,
        max_bytes=cfg.max_body_bytes,
        open_paths=frozenset(open_paths),
        fast=fast_decision,
    )

    class DecisionBatchRequest(Strict):
        requests: list[DecisionRequest] = Field(  # type: ignore[valid-type]
            min_length=1, max_length=cfg.max_batch
        )

    class DecisionBatchResponse(Strict):
        decisions: list[DecisionResponse]

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith(("/v1/decisions", "/v1/allocations")):
            metrics.decided(422)
        items = validation_items(exc.errors())
        return _error(422, items or [("body", "invalid request")])

    async def _service_failure(request: Request, exc: Exception) -> JSONResponse:
        code, items = _service_error(exc)
        if request.url.path.startswith(("/v1/decisions", "/v1/allocations")):
            metrics.decided(code)
        return _error(code, items)

    for error in _SERVICE_ERRORS:
        app.add_exception_handler(error, _service_failure)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        field, _, message = detail.partition(": ")
        if not message:
            field, message = ("path" if exc.status_code in (404, 405) else "request"), detail
        response = _error(exc.status_code, [(field, message)])
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    conflict = {409: {"model": ErrorResponse, "description": "budget exhausted or event id reused"}}

    @app.post(
        "/v1/decisions", dependencies=auth, responses=conflict, response_model=DecisionResponse
    )
    def post_decision(req: DecisionRequest, request: Request) -> JSONResponse:  # type: ignore[valid-type]
        """Choose an action for one case; log it and charge its budgets atomically."""
        # (requests the fast path answers never get here: this is the route of the other
        # content types and of bodies that fail validation)
        r = service.decide(
            getattr(req, "context", None),
            action_features=getattr(req, "action_features", None),
            eligible=req.eligible,
            group=req.group,
            event_id=req.event_id,
            key_id=_key_id(_key(request), keys),
            keywords=keywords(req, decide_keys),
        )
        metrics.decided(200)
        return JSONResponse(r.to_dict())

    @app.post(
        "/v1/decisions/batch",
        dependencies=auth,
        responses=conflict,
        response_model=DecisionBatchResponse,
    )
    async def post_decisions(req: DecisionBatchRequest, request: Request) -> JSONResponse:
        """Several cases at once (at most ``max_batch``), all or nothing: every case is
        decided, logged and charged in one unit, or the request fails (the error names the
        case, ``requests[i]...``) and nothing is logged."""
        t0 = time.perf_counter()
        cases = [r.model_dump() for r in req.requests]
        out = await run_service(
            service.decide_batch,
            service.decide_batch_async,
            cases,
            key_id=_key_id(_key(request), keys),
        )
        metrics.decided(200, len(out))
        metrics.observe("batch", time.perf_counter() - t0)
        return JSONResponse({"decisions": [r.to_dict() for r in out]})

    if cfg.traits.action_type == "allocation":
        from scarce.serve.cohort_api import add_allocation_route

        def allocated(n: int, seconds: float) -> None:
            metrics.decided(200, n)
            metrics.observe("batch", seconds)

        add_allocation_route(
            app,
            service,
            dependencies=auth,
            key_id=lambda request: _key_id(_key(request), keys),
            on_done=allocated,
        )

    @app.post(
        "/v1/rewards",
        dependencies=auth,
        responses={404: {"model": ErrorResponse, "description": "unknown event id"}},
    )
    def post_reward(req: RewardRequest, request: Request) -> RewardResponse:  # type: ignore[valid-type]
        """Record an outcome. Idempotent: an identical repeat is a no-op (status "duplicate")."""
        t0 = time.perf_counter()
        try:
            st = service.reward(
                req.event_id,
                req.value,
                req.cost,
                key_id=_key_id(_key(request), keys),
                extras=keywords(req, feedback_keys),
            )
        except _SERVICE_ERRORS as exc:
            metrics.rewards.labels(str(_service_error(exc)[0])).inc()
            raise
        metrics.rewards.labels(st).inc()
        metrics.observe("rewards", time.perf_counter() - t0)
        return RewardResponse(event_id=req.event_id, status=st)  # type: ignore[arg-type]

    @app.get(
        "/v1/health",
        response_model=HealthResponse,
        responses={503: {"model": ErrorResponse, "description": "the service is not healthy"}},
    )
    def health() -> Any:
        """Liveness and the model version (no key needed; reveals nothing else). 503 when the
        event store cannot be reached or failed a write in the last minute, the SQLite disk is
        nearly full, or the last integrity check of the file failed."""
        problems = service.health.problems()
        if problems:
            return _error(503, problems)
        quarantined = service.store.query("SELECT COUNT(*) FROM quarantined_events")[0][0]
        return HealthResponse(
            status="ok",
            policy=cfg.name,
            model_version=service.watermark,
            store=service.store.dialect,
            quarantined=int(quarantined),
        )

    @app.get(
        "/v1/policies/{name}",
        dependencies=auth,
        responses={404: {"model": ErrorResponse, "description": "unknown policy"}},
    )
    def get_policy(name: Annotated[str, PathParam(max_length=100)]) -> dict[str, Any]:
        """Config, model and snapshot versions, event counts and remaining budgets."""
        if name != cfg.name:
            raise StarletteHTTPException(status_code=404, detail=f"name: no policy named {name!r}")
        return service.describe()

    @app.post("/v1/snapshots", dependencies=auth, status_code=201)
    def post_snapshot() -> SnapshotResponse:
        """Join and learn what is pending, then publish the model as a snapshot."""
        service.sync()
        return SnapshotResponse(**service.publish_snapshot())

    @app.post(
        "/v1/promotions",
        dependencies=auth,
        status_code=201,
        responses={409: {"model": ErrorResponse, "description": "refused (the guard, ...)"}},
    )
    def post_promotion(req: PromotionRequest, request: Request) -> PromotionResponse:
        """Serve another policy version: a candidate ``config`` (it inherits the served
        ``[service]`` and budgets), an earlier ``version`` (a rollback) or a ``shadow``;
        with ``guard``, only if the candidate's lower confidence bound on the logs beats the
        served policy's estimate. Decisions go on throughout; each is logged with the version
        that made it."""
        out = promote(
            service,
            doc=req.config,
            name=req.name,
            version=req.version,
            shadow=req.shadow,
            guard=None if req.guard is None else req.guard.model_dump(),
            key_id=_key_id(_key(request), keys),
            note=req.note,
        )
        return PromotionResponse(**out)

    @app.get("/v1/promotions", dependencies=auth)
    def get_promotions() -> dict[str, Any]:
        """The policy versions of the store, the promotions and the served version."""
        from scarce.serve.versions import list_versions, promotions

        return {
            "served": service.policy_version,
            "versions": [
                {
                    "version": v.version,
                    "name": v.name,
                    "type": v.config.policy_type,
                    "created_at": v.created_at,
                }
                for v in list_versions(service.store)
            ],
            "promotions": promotions(service.store),
        }

    @app.get("/metrics", dependencies=auth, include_in_schema=False)
    def get_metrics() -> Response:
        """Prometheus metrics (see :mod:`scarce.serve.metrics`)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


def app_from_env() -> FastAPI:
    """App factory for ``scarce serve --workers N``: every worker process builds its own
    service from ``SCARCE_SERVE_DB``, ``SCARCE_SERVE_POLICY``, ``SCARCE_SERVE_SQLITE_SYNC``,
    ``SCARCE_SERVE_KEY_HASHES`` (key entries, one per line), ``SCARCE_SERVE_NO_AUTH``,
    ``SCARCE_SERVE_OPEN_METRICS`` and ``SCARCE_SERVE_SHADOWS`` (shadow TOML paths, one per line).
    """
    import tomllib
    from pathlib import Path

    from scarce.serve.config import load_config
    from scarce.serve.store import EventStore
    from scarce.serve.versions import candidate_config, stored_config

    env = os.environ
    store = EventStore(
        env["SCARCE_SERVE_DB"], sqlite_synchronous=env.get("SCARCE_SERVE_SQLITE_SYNC", "FULL")
    )
    policy = env.get("SCARCE_SERVE_POLICY") or None
    config = (stored_config(store) if policy is None else None) or load_config(policy)
    shadows = [
        (Path(p).stem, candidate_config(config, tomllib.loads(Path(p).read_text())))
        for p in env.get("SCARCE_SERVE_SHADOWS", "").split("\n")
        if p.strip()
    ]
    entries = [h for h in env.get("SCARCE_SERVE_KEY_HASHES", "").split("\n") if h.strip()]
    return create_app(
        DecisionService(config, store, shadows=shadows),
        keys=KeyVerifier(entries) if entries else None,
        no_auth=env.get("SCARCE_SERVE_NO_AUTH") == "1" and not entries,
        background_sync=True,
        open_metrics=env.get("SCARCE_SERVE_OPEN_METRICS") == "1",
    )
