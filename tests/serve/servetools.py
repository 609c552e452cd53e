"""Helpers shared by the service tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scarce.serve import config_from_dict


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


BASE: dict[str, Any] = {"type": "LinUCB", "n_actions": 3, "n_features": 2, "seed": 0}


def make_config(**overrides: Any) -> Any:
    doc: dict[str, Any] = {**BASE}
    service = overrides.pop("service", {})
    budgets = overrides.pop("budgets", None)
    quotas = overrides.pop("quotas", None)
    doc.update(overrides)
    doc["service"] = {"sync_interval": 0.0, **service}
    if budgets:
        doc["budgets"] = budgets
    if quotas:
        doc["quotas"] = quotas
    return config_from_dict(doc)


class ServerProcess:
    """``scarce serve`` in a subprocess on a loopback port (the real HTTP stack).

    ``key``: the value of ``SCARCE_API_KEYS``; ``env``: more environment variables; what the
    process writes to stderr is kept in :attr:`stderr_path` (read it with :meth:`stderr`)."""

    def __init__(
        self, db_url: str, policy: Path, key: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.db_url, self.policy, self.key, self.extra = db_url, policy, key, extra
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        fd, name = tempfile.mkstemp(prefix="scarce-serve-", suffix=".stderr")
        os.close(fd)
        self.stderr_path = Path(name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def start(self, timeout: float = 60.0) -> ServerProcess:
        import httpx

        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = int(s.getsockname()[1])
        env = {**os.environ, "SCARCE_API_KEYS": self.key, "OMP_NUM_THREADS": "1", **self.env}
        cmd = [sys.executable, "-m", "scarce.serve", "serve", "--db", self.db_url]
        cmd += ["--policy", str(self.policy), "--port", str(self.port), *self.extra]
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"scarce serve exited with {self.proc.returncode}: {self.stderr()}"
                )
            try:
                if httpx.get(self.url + "/v1/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("scarce serve did not become healthy")

    def kill(self) -> None:
        """``kill -9``: no shutdown handlers run."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")


def run_serve(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    """``python -m scarce.serve ARGS`` to completion: the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "scarce.serve", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_policy(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


#: malformed decision bodies and the field the 422 must name (config: d=2, K=3)
BAD_DECISIONS = [
    (b'{"context": [1.0]}', "context"),
    (b'{"context": [1.0, 2.0, 3.0]}', "context"),
    (b'{"context": [1.0, NaN]}', "context[1]"),
    (b'{"context": [1.0, Infinity]}', "context[1]"),
    (b'{"context": [1.0, "2"]}', "context[1]"),
    (b'{"context": [1.0, true]}', "context[1]"),
    (b'{"context": "1,2"}', "context"),
    (b'{"context": [1.0, 2.0], "eligible": [7]}', "eligible"),
    (b'{"context": [1.0, 2.0], "eligible": [-1]}', "eligible"),
    (b'{"context": [1.0, 2.0], "eligible": []}', "eligible"),
    (b'{"context": [1.0, 2.0], "eligible": [0.5]}', "eligible[0]"),
    (b'{"context": [1.0, 2.0], "event_id": ""}', "event_id"),
    (b'{"context": [1.0, 2.0], "event_id": "a b"}', "event_id"),
    (b'{"context": [1.0, 2.0], "group": ""}', "group"),
    (b'{"context": [1.0, 2.0], "colour": "red"}', "colour"),
    (b'{"action_features": [[1.0, 2.0]]}', "action_features"),
    (b'{"context": [1.0, 2.0]', "body"),
    (b"[]", "body"),
]

#: malformed reward bodies (for a logged event "e") and the field named
BAD_REWARDS = [
    (b'{"event_id": "e", "value": NaN}', "value"),
    (b'{"event_id": "e", "value": [1.0, 2.0]}', "value"),
    (b'{"event_id": "e", "value": "1"}', "value"),
    (b'{"event_id": "e", "value": 1.0, "cost": -0.5}', "cost"),
    (b'{"event_id": "e", "value": 1.0, "cost": [0.5, -1]}', "cost[1]"),
    (b'{"event_id": "e", "value": 1.0, "cost": Infinity}', "cost"),
    (b'{"value": 1.0}', "event_id"),
    (b'{"event_id": "e"}', "value"),
]


def toml_text(doc: dict[str, Any]) -> str:
    """A TOML document of the simple configs the tests write: scalars, lists and inline
    tables at the top level, then one ``[table]`` per nested dict (``[budgets.x]`` for a
    dict of dicts). JSON's strings, numbers, booleans and arrays are TOML's too."""
    import json

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    top = [f"{k} = {value(v)}" for k, v in doc.items() if k not in TABLES]
    lines = top
    for table in TABLES:
        if table not in doc:
            continue
        inner = doc[table]
        if inner and all(isinstance(x, dict) for x in inner.values()) and table != "service":
            for name, body in inner.items():
                lines.append(f"\n[{table}.{name}]")
                lines.extend(f"{k} = {value(x)}" for k, x in body.items())
        else:
            lines.append(f"\n[{table}]")
            lines.extend(f"{k} = {value(x)}" for k, x in inner.items())
    return "\n".join(lines) + "\n"


TABLES = ("service", "budgets", "quotas")


class ThreadServer:
    """An app under a real uvicorn server (HTTP on a loopback port) in a thread of this
    process (so test-only policies registered here are served)."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
