"""``scarce serve``'s HTTP protocol sends each response in one write (head and body together),
passes an interim ``100 Continue`` at once, and still answers ``HEAD`` and streamed bodies.

A real uvicorn server on a loopback port, with the protocol's transport wrapped in a recorder
of every ``write`` it receives."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed")

import uvicorn  # noqa: E402

from scarce.serve.server import GuardedHttpToolsProtocol  # noqa: E402

WRITES: list[bytes] = []


class _Recorder:
    """The socket transport, recording what is written to it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Recorded(GuardedHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recorder(transport))  # type: ignore[arg-type]


async def _app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/stream":  # a head, then three body parts
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    answer = b'{"echo":%d}' % len(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = int(s.getsockname()[1])
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=free, log_level="warning", http=_Recorded, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield free
    server.should_exit = True
    thread.join(timeout=30)


def _exchange(port: int, requests: list[bytes], answers: int, *, pause: float = 0.0) -> bytes:
    """Send ``requests`` on one connection (``pause`` seconds apart) and read until
    ``answers`` responses are complete (the connection stays open)."""
    WRITES.clear()
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for i, req in enumerate(requests):
            if i and pause:
                time.sleep(pause)
            s.sendall(req)
        deadline = time.monotonic() + 10
        while got.count(b"HTTP/1.1 ") < answers or not got.endswith((b"}", b"0\r\n\r\n")):
            assert time.monotonic() < deadline, got
            got += s.recv(65536)
    return got


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n" % (len(body), extra)
    ) + body


def test_each_response_is_one_write(port):
    got = _exchange(port, [_post(b"[1,2,3]"), _post(b"[1]")], 2)
    assert got.count(b"HTTP/1.1 200") == 2
    assert len(WRITES) == 2  # two writes for two answers (uvicorn alone makes four)
    for write, n in zip(WRITES, (7, 3), strict=True):
        assert write.startswith(b"HTTP/1.1 200") and write.endswith(b'{"echo":%d}' % n)


def test_interim_continue_is_sent_at_once(port):
    head = _post(b"[1,2,3]", b"Expect: 100-continue\r\n")
    got = _exchange(port, [head[: -len(b"[1,2,3]")], b"[1,2,3]"], 2, pause=0.2)
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert WRITES[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(WRITES) == 2 and WRITES[1].endswith(b'{"echo":7}')


def test_head_and_streamed_answers_are_complete(port):
    WRITES.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while not got.endswith(b"\r\n\r\n"):
            got += s.recv(65536)
    # a head without a body write is flushed when the response completes
    assert got.startswith(b"HTTP/1.1 200") and b"content-length: 10" in got
    got = _exchange(port, [b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"], 1)
    assert got.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in got
    assert got.endswith(b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n")
    assert WRITES[0].startswith(b"HTTP/1.1 200") and WRITES[0].endswith(b"1\r\na\r\n")
