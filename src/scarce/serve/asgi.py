"""The ASGI layer in front of the FastAPI routes: the key check before anything is read,
scopes, the body limit, error bodies, and the fast path of ``POST /v1/decisions``.

Order of work for every request: (1) the ``X-API-Key`` header is checked (hash of its raw
bytes) and the key's scope for the path is checked -- a missing or wrong key is answered 401
(403: a key without the scope) *before a byte of the body is read*, and the connection is
closed, so bodies sent without a valid key are never buffered; (2) a declared
``Content-Length`` over the limit is a 413, also before reading; (3) the body is read up to
the limit; (4) the fast path may answer; else the request goes to the router.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from scarce.serve.auth import KeyInfo, KeyVerifier

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
FastPath = Callable[[Scope, bytes], Awaitable["tuple[int, bytes] | None"]]

#: the scope key under which the caller's :class:`KeyInfo` is passed to the routes
KEY_SCOPE = "scarce.key"
#: the key of a service running without keys (``--no-auth``)
ANONYMOUS = KeyInfo("default", frozenset({"decide", "reward", "admin"}))
_NEEDS = {
    ("POST", "/v1/decisions"): "decide",
    ("POST", "/v1/decisions/batch"): "decide",
    ("POST", "/v1/allocations"): "decide",
    ("POST", "/v1/rewards"): "reward",
}


def dumps(content: Any) -> bytes:
    """JSON bytes as ``JSONResponse`` encodes them."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def error_content(items: list[tuple[str, str]]) -> dict[str, Any]:
    """The error body: ``{"detail": "f: m; ...", "errors": [{"field", "message"}, ...]}``."""
    detail = "; ".join(f"{f}: {m}" for f, m in items)
    return {"detail": detail, "errors": [{"field": f, "message": m} for f, m in items]}


def required_scope(method: str, path: str) -> str:
    """The scope a key needs for a request (anything not listed is ``admin``)."""
    return _NEEDS.get((method, path), "admin")


async def send_json(
    send: Send, status: int, body: bytes, *, close: bool = False, extra: list | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Key check, scopes and body limit before the app (see the module doc).

    Parameters
    ----------
    app:
        the ASGI app behind it.
    keys:
        allowed keys; None: no keys (every caller is :data:`ANONYMOUS`).
    max_bytes:
        largest accepted request body.
    open_paths:
        paths served without a key (health, the OpenAPI schema, ...).
    fast:
        an optional handler given the scope (with the caller's key) and the whole body before
        routing; it returns ``(status, JSON bytes)`` to answer directly, or None.
    """

    def __init__(
        self,
        app: Any,
        *,
        keys: KeyVerifier | None,
        max_bytes: int,
        open_paths: frozenset[str],
        fast: FastPath | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.max_bytes = max_bytes
        self.open_paths = open_paths
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        key = ANONYMOUS
        declared = None
        raw_key = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                if raw_key is None:
                    raw_key = value
            elif name == b"content-length":
                declared = value
        if self.keys is not None and path not in self.open_paths:
            found = self.keys.identify(raw_key)
            if found is None:
                body = dumps(error_content([("X-API-Key", "missing or invalid API key")]))
                await send_json(
                    send, 401, body, close=True, extra=[(b"www-authenticate", b"APIKey")]
                )
                return
            need = required_scope(scope["method"], path)
            if need not in found.scopes:
                message = f"this key lacks the scope {need!r} (it has {sorted(found.scopes)})"
                await send_json(
                    send, 403, dumps(error_content([("X-API-Key", message)])), close=True
                )
                return
            key = found
        scope[KEY_SCOPE] = key
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                await self._too_big(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or a timeout closed the connection)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_big(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.fast is not None:
            answer = await self.fast(scope, body)
            if answer is not None:
                await send_json(send, answer[0], answer[1])
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_big(self, send: Send) -> None:
        body = dumps(error_content([("body", f"request body larger than {self.max_bytes} bytes")]))
        await send_json(send, 413, body, close=True)
