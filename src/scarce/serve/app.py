"""The HTTP API (FastAPI). The OpenAPI schema is served at ``/openapi.json``.

Every endpoint except ``GET /v1/health`` needs an ``X-API-Key`` header. Bodies are JSON only,
validated strictly (unknown fields, NaN/inf, wrong types and shapes are rejected) and capped at
``max_body_bytes``. Errors are ``{"detail": "<field>: <message>", "errors": [{"field", "message"}]}``.
Nothing received is executed or unpickled: requests are JSON, snapshots are JSON + npz loaded
with ``allow_pickle=False``.
"""

import json
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, Security, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)
from starlette.concurrency import run_in_threadpool

from scarce.serve.auth import KeyVerifier
from scarce.serve.config import ServiceConfig
from scarce.serve.service import (
    MAX_ABS,
    BudgetExhaustedError,
    DecisionService,
    EventConflictError,
    RequestError,
    UnknownEventError,
)

ID_PATTERN = r"^[A-Za-z0-9._:@/+=-]{1,128}$"
GROUP_PATTERN = r"^[A-Za-z0-9._:@/+= -]{1,100}$"
_MAX_VECTOR = 4096

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS, le=MAX_ABS)]
NonNegative = Annotated[float, Field(allow_inf_nan=False, ge=0.0, le=MAX_ABS)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DecisionResponse(BaseModel):
    event_id: str
    action: int = Field(ge=0)
    probability: Probability
    probabilities: list[Probability]
    model_version: int = Field(ge=0)


class RewardResponse(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate", "ignored", "late"]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    policy: str
    model_version: int
    store: str


class SnapshotResponse(BaseModel):
    version: int
    model_version: int
    checksum: str


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[ErrorItem] = []


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid X-API-Key"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"model": ErrorResponse, "description": "invalid request (the message names the field)"},
}


def _field_name(loc: tuple[Any, ...]) -> str:
    # drop "body" and pydantic's union-member tags ("constrained-float", "list[float]", ...)
    parts = [p for p in loc if p != "body" and not (isinstance(p, str) and _is_union_tag(p))]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def _is_union_tag(part: str) -> bool:
    return "[" in part or "-" in part or part in ("float", "int", "str", "bool")


def _validation_items(errors: Sequence[Any]) -> list[tuple[str, str]]:
    """One message per field; for union fields (scalar or list) keep the informative branch."""
    by_field: dict[str, list[str]] = {}
    if len(errors) > 1:
        # a list sent to a "number or list" field also fails the number branch: drop that noise
        errors = [
            e
            for e in errors
            if not (str(e.get("type", "")).endswith("_type") and isinstance(e.get("input"), list))
        ] or list(errors)
    for e in errors:
        if e.get("type") == "json_invalid":
            loc = tuple(e.get("loc", ()))
            where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            reason = (e.get("ctx") or {}).get("error", "")
            by_field.setdefault("body", []).append(f"invalid JSON{where}: {reason}".rstrip(": "))
            continue
        by_field.setdefault(_field_name(tuple(e.get("loc", ()))), []).append(
            str(e.get("msg", "invalid"))
        )
    items = []
    for field, msgs in by_field.items():
        useful = [m for m in msgs if "valid list" not in m] or msgs
        items.append((field, "; ".join(dict.fromkeys(useful))))
    return items


def _error_content(items: list[tuple[str, str]]) -> dict[str, Any]:
    detail = "; ".join(f"{f}: {m}" for f, m in items)
    return {"detail": detail, "errors": [{"field": f, "message": m} for f, m in items]}


def _error(status_code: int, items: list[tuple[str, str]]) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=_error_content(items))


def _service_error(exc: Exception) -> tuple[int, list[tuple[str, str]]]:
    """Status and error items of the service's exceptions (one mapping for every path)."""
    if isinstance(exc, RequestError):
        return 422, [(exc.field, exc.message)]
    if isinstance(exc, UnknownEventError):
        return 404, [("event_id", f"no decision was logged under {exc.args[0]!r}")]
    if isinstance(exc, BudgetExhaustedError):
        return 409, [("budget", str(exc))]
    if isinstance(exc, EventConflictError):
        return 409, [("event_id", str(exc))]
    raise TypeError(f"not a service error: {exc!r}")


def _dumps(content: Any) -> bytes:
    # the encoding JSONResponse uses
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


FastPath = Callable[[Scope, bytes], Awaitable["tuple[int, bytes] | None"]]


class BodyLimitMiddleware:
    """Reject request bodies over ``max_bytes`` with 413 (declared or streamed length).

    ``fast``: an optional handler given the scope and the whole body before routing; it returns
    ``(status, JSON bytes)`` to answer directly, or None to hand the request to the app.
    """

    def __init__(self, app: Any, max_bytes: int, fast: FastPath | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if self.fast is not None:
            answer = await self.fast(scope, body)
            if answer is not None:
                status_code, content = answer
                await send(
                    {
                        "type": "http.response.start",
                        "status": status_code,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(content)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": content})
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(413, [("body", f"request body larger than {self.max_bytes} bytes")])
        await response(scope, receive, send)


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 2.0; bools are not numbers here
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def request_models(cfg: ServiceConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """``(DecisionRequest, RewardRequest)`` for this service: the OpenAPI schema states the exact
    shapes (``d`` features, ``K`` actions, ``reward_dim``), so clients and fuzzers see them."""
    d, K, dim = cfg.n_features, cfg.n_actions, cfg.reward_dim
    ActionId = Annotated[int, Field(ge=0, lt=K), BeforeValidator(_integral)]
    common: dict[str, Any] = {
        "eligible": (
            list[ActionId] | None,
            Field(
                None,
                min_length=1,
                max_length=K,
                description="ids of the actions that may be chosen (default: all), no repeats",
                json_schema_extra={"uniqueItems": True},
            ),
        ),
        "group": (
            str | None,
            Field(None, pattern=GROUP_PATTERN, description="the case's group (quotas, export)"),
        ),
        "event_id": (
            str | None,
            Field(
                None,
                pattern=ID_PATTERN,
                description="caller's id of the case; a retry with the same id is safe",
            ),
        ),
    }
    if cfg.features == "shared":
        features: dict[str, Any] = {
            "context": (
                list[Finite],
                Field(min_length=d, max_length=d, description=f"the case's {d} features"),
            )
        }
    else:
        Row = Annotated[list[Finite], Field(min_length=d, max_length=d)]
        features = {
            "action_features": (
                list[Row],
                Field(min_length=K, max_length=K, description=f"({K}, {d}) features per action"),
            )
        }
    decision = create_model(
        "DecisionRequest", __base__=_Strict, __doc__="One case to decide.", **features, **common
    )
    lo, hi = (None, None)
    if dim == 1 and cfg.make_policy().reward_bounds is not None:
        lo, hi = cfg.make_policy().reward_bounds  # type: ignore[misc]
    lo = -MAX_ABS if lo is None else lo
    hi = MAX_ABS if hi is None else hi
    Value = Annotated[float, Field(allow_inf_nan=False, ge=lo, le=hi)]
    value_type: Any = Value | Annotated[list[Value], Field(min_length=1, max_length=1)]
    if dim > 1:
        value_type = Annotated[list[Finite], Field(min_length=dim, max_length=dim)]
    reward = create_model(
        "RewardRequest",
        __base__=_Strict,
        __doc__="An outcome for a logged decision.",
        event_id=(str, Field(pattern=ID_PATTERN, description="the decision's event id")),
        value=(value_type, Field(description=f"reward: a number or {dim} numbers")),
        cost=(
            NonNegative
            | Annotated[list[NonNegative], Field(min_length=1, max_length=_MAX_VECTOR)]
            | None,
            Field(None, description="realised cost, >= 0"),
        ),
    )
    return decision, reward


def create_app(
    service: DecisionService,
    *,
    keys: KeyVerifier | None = None,
    no_auth: bool = False,
    background_sync: bool = False,
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
    """
    if keys is None and not no_auth:
        raise ValueError("create_app needs API keys (keys=KeyVerifier(...)) or no_auth=True")
    cfg = service.config
    stop = threading.Event()

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
        import logging

        log = logging.getLogger("scarce.serve")
        while not stop.wait(cfg.sync_interval):
            try:
                service.sync()
            except Exception:  # noqa: BLE001 - keep the joiner alive; the error is logged
                log.exception("joiner run failed")

    app = FastAPI(
        title="scarce decision service",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        responses=_ERRORS,
    )
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")

    # async: a hash and a comparison, cheaper on the event loop than a threadpool hop
    async def require_key(key: Annotated[str | None, Security(header)]) -> None:
        if keys is not None and not keys.verify(key):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="X-API-Key: missing or invalid API key",
                headers={"WWW-Authenticate": "APIKey"},
            )

    auth = [Depends(require_key)]

    DecisionRequest, RewardRequest = request_models(cfg)
    validate_decision = DecisionRequest.model_validate_json
    # SQLite reads are local and short: the event loop awaits the group commit itself instead
    # of parking a worker thread on it; PostgreSQL round trips stay off the event loop
    inline = service.store.dialect == "sqlite" and service.store.group_commit

    async def fast_decision(scope: Scope, body: bytes) -> tuple[int, bytes] | None:
        """``POST /v1/decisions`` without the router: the same key check, the same request
        model (validated from the JSON bytes) and the same service call and error mapping.
        Anything else (another route, a missing or wrong key, a body that does not validate,
        a non-JSON content type) returns None and takes the full FastAPI path, which produces
        the canonical 401/422 answers; so this path only answers requests that the route
        would accept too."""
        if scope["path"] != "/v1/decisions" or scope["method"] != "POST":
            return None
        key = content_type = None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and key is None:
                key = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
        if content_type is None or content_type.split(b";")[0].strip() != b"application/json":
            return None
        if keys is not None and not keys.verify(key):
            return None
        try:
            req = validate_decision(body)
        except ValidationError:
            return None
        context = getattr(req, "context", None)
        kwargs = {
            "action_features": getattr(req, "action_features", None),
            "eligible": req.eligible,
            "group": req.group,
            "event_id": req.event_id,
        }
        try:
            if inline:
                r = await service.decide_async(context, **kwargs)
            else:
                r = await run_in_threadpool(partial(service.decide, context, **kwargs))
        except (RequestError, BudgetExhaustedError, EventConflictError) as exc:
            code, items = _service_error(exc)
            return code, _dumps(_error_content(items))
        return 200, _dumps(r.to_dict())

    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes, fast=fast_decision)

    class DecisionBatchRequest(_Strict):
        requests: list[DecisionRequest] = Field(  # type: ignore[valid-type]
            min_length=1, max_length=cfg.max_batch
        )

    class DecisionBatchResponse(BaseModel):
        decisions: list[DecisionResponse]

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = _validation_items(exc.errors())
        return _error(422, items or [("body", "invalid request")])

    async def _service_failure(request: Request, exc: Exception) -> JSONResponse:
        return _error(*_service_error(exc))

    for error in (RequestError, UnknownEventError, BudgetExhaustedError, EventConflictError):
        app.add_exception_handler(error, _service_failure)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = str(exc.detail)
        field, _, message = detail.partition(": ")
        response = _error(exc.status_code, [(field, message)] if message else [("request", detail)])
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    def _decide(req: Any) -> DecisionResponse:
        eligible = getattr(req, "eligible", None)
        r = service.decide(
            getattr(req, "context", None),
            action_features=getattr(req, "action_features", None),
            eligible=eligible,
            group=req.group,
            event_id=req.event_id,
        )
        return DecisionResponse(**r.to_dict())

    conflict = {409: {"model": ErrorResponse, "description": "budget exhausted or event id reused"}}

    @app.post(
        "/v1/decisions", dependencies=auth, responses=conflict, response_model=DecisionResponse
    )
    def post_decision(req: DecisionRequest) -> JSONResponse:  # type: ignore[valid-type]
        """Choose an action for one case; log it and charge its budgets atomically."""
        # the service's result is already checked; skip re-validating it as a response model
        eligible = getattr(req, "eligible", None)
        r = service.decide(
            getattr(req, "context", None),
            action_features=getattr(req, "action_features", None),
            eligible=eligible,
            group=req.group,
            event_id=req.event_id,
        )
        return JSONResponse(r.to_dict())

    @app.post("/v1/decisions/batch", dependencies=auth, responses=conflict)
    def post_decisions(req: DecisionBatchRequest) -> DecisionBatchResponse:
        """Several cases at once (at most ``max_batch``); each is decided and logged as above."""
        return DecisionBatchResponse(decisions=[_decide(r) for r in req.requests])

    @app.post(
        "/v1/rewards",
        dependencies=auth,
        responses={404: {"model": ErrorResponse, "description": "unknown event id"}},
    )
    def post_reward(req: RewardRequest) -> RewardResponse:  # type: ignore[valid-type]
        """Record an outcome. Idempotent: an identical repeat is a no-op (status "duplicate")."""
        st = service.reward(req.event_id, req.value, req.cost)
        return RewardResponse(event_id=req.event_id, status=st)  # type: ignore[arg-type]

    @app.get(
        "/v1/health",
        response_model=HealthResponse,
        responses={503: {"model": ErrorResponse, "description": "event store unavailable"}},
    )
    def health() -> HealthResponse:
        """Liveness and the model version (no key needed; reveals nothing else). 503 when the
        event store cannot be reached."""
        try:
            service.store.query("SELECT 1")
        except Exception:  # noqa: BLE001 - any store failure means "not ready"
            raise HTTPException(status_code=503, detail="store: unavailable") from None
        return HealthResponse(
            status="ok",
            policy=cfg.name,
            model_version=service.watermark,
            store=service.store.dialect,
        )

    @app.get(
        "/v1/policies/{name}",
        dependencies=auth,
        responses={404: {"model": ErrorResponse, "description": "unknown policy"}},
    )
    def get_policy(name: Annotated[str, PathParam(max_length=100)]) -> dict[str, Any]:
        """Config, model and snapshot versions, event counts and remaining budgets."""
        if name != cfg.name:
            raise HTTPException(status_code=404, detail=f"name: no policy named {name!r}")
        return service.describe()

    @app.post("/v1/snapshots", dependencies=auth, status_code=201)
    def post_snapshot() -> SnapshotResponse:
        """Join and learn what is pending, then publish the model as a snapshot."""
        service.sync()
        return SnapshotResponse(**service.publish_snapshot())

    return app


def app_from_env() -> FastAPI:
    """App factory for ``scarce serve --workers N``: every worker process builds its own
    service from ``SCARCE_SERVE_DB``, ``SCARCE_SERVE_POLICY``, ``SCARCE_SERVE_SQLITE_SYNC``,
    ``SCARCE_SERVE_KEY_HASHES`` (comma-separated ``sha256:`` hashes) and ``SCARCE_SERVE_NO_AUTH``.
    """
    from scarce.serve.config import load_config
    from scarce.serve.store import EventStore

    env = os.environ
    config = load_config(env.get("SCARCE_SERVE_POLICY") or None)
    store = EventStore(
        env["SCARCE_SERVE_DB"], sqlite_synchronous=env.get("SCARCE_SERVE_SQLITE_SYNC", "FULL")
    )
    hashes = [h for h in env.get("SCARCE_SERVE_KEY_HASHES", "").split(",") if h]
    return create_app(
        DecisionService(config, store),
        keys=KeyVerifier(hashes) if hashes else None,
        no_auth=env.get("SCARCE_SERVE_NO_AUTH") == "1" and not hashes,
        background_sync=True,
    )
