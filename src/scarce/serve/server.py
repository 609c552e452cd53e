"""Connection limits of ``scarce serve``: uvicorn's HTTP protocol (httptools) with a deadline
for receiving each request, and JSON bodies for the 400s it answers itself.

uvicorn closes a keep-alive connection that stays idle after a response
(``--timeout-keep-alive``), but it has no deadline for a connection that never sends a
request, stalls in the headers or stalls in the body. :class:`GuardedHttpToolsProtocol` gives
every request ``SCARCE_SERVE_TIMEOUT_REQUEST`` seconds (default 30), counted from the
connection's start or from the first byte of the request after a keep-alive pause; a request
not complete by then is answered 408 (if nothing was answered yet) and its connection closed.
The request's processing is not limited: the deadline ends when the last body byte arrives.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from scarce.serve.asgi import dumps, error_content

ENV_TIMEOUT = "SCARCE_SERVE_TIMEOUT_REQUEST"
DEFAULT_TIMEOUT_REQUEST = 30.0


def _response(status: str, items: list[tuple[str, str]]) -> bytes:
    body = dumps(error_content(items))
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class _OneWritePerResponse:
    """The connection's transport as uvicorn's request cycles see it: the head of a response
    (status line and headers, one ``write``) is held back and sent with the first body
    ``write`` that follows, so a small answer leaves in one ``send`` and one TCP segment
    instead of two. Everything else is passed through; :meth:`flush` sends a held head (the
    protocol calls it when a response completes without a body write, e.g. ``HEAD``)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif data[-4:] == b"\r\n\r\n" and data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":
            self._head = data  # a final response's head (an interim 1xx goes out at once)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            data, self._head = self._head, None
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline per request (see the module doc), whose
    responses leave in one write each (:class:`_OneWritePerResponse`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_timeout = float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_REQUEST))
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWritePerResponse(transport)  # type: ignore[assignment]
        self._arm()

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self) -> None:
        if self._deadline is None and self._request_timeout > 0:
            self._deadline = self.loop.call_later(self._request_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            message = f"the request was not received within {self._request_timeout:g} s"
            self.transport.write(_response("408 Request Timeout", [("request", message)]))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_response("400 Bad Request", [("request", msg)]))
        self.transport.close()
