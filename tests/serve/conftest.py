"""Fixtures of the service tests: stores on SQLite and on a throw-away PostgreSQL cluster.

The PostgreSQL cluster is started by the ``pg_server`` fixture from the Debian server binaries
(``/usr/lib/postgresql/*/bin``); where they are absent the PostgreSQL tests skip with a reason.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from servetools import FakeClock, make_config  # noqa: E402

from scarce.serve import DecisionService, EventStore  # noqa: E402


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A temporary PostgreSQL cluster on loopback (trust auth) that can be stopped and
    started again on the same port and data directory (to test reconnects)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="scarce-pg-"))
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as 'postgres'
            shutil.chown(self.root, user="postgres")
            self.prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        self.data = self.root / "data"
        subprocess.run(
            [
                *self.prefix,
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "scarce",
                "-A",
                "trust",
            ],
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._n = itertools.count()

    def start(self) -> PgServer:
        import psycopg

        self.proc = subprocess.Popen(
            [
                *self.prefix,
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                # the tests kill service processes, not machines: skip fsync to keep them fast
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(self.admin_url()).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    pytest.fail("the temporary PostgreSQL server did not start")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: does not wait for clients
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def admin_url(self) -> str:
        return f"postgresql://scarce@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._n)}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://scarce@127.0.0.1:{self.port}/{name}"


def _new_pg_server() -> PgServer:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found; install postgresql")
    pytest.importorskip("psycopg")
    return PgServer(bindir).start()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A temporary PostgreSQL cluster on loopback (trust auth), stopped after the session."""
    server = _new_pg_server()
    yield server
    server.remove()


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A cluster of this test's own (the test may stop and restart it)."""
    server = _new_pg_server()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return request.getfixturevalue("pg_server").new_database()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_service(clock: FakeClock, tmp_path: Path) -> Iterator[Callable[..., DecisionService]]:
    """``make_service(url=None, **config_overrides)`` -> a service on a fresh (or given) DB."""
    stores: list[EventStore] = []

    def make(url: str | None = None, **overrides: Any) -> DecisionService:
        store = EventStore(url or f"sqlite:///{tmp_path / 'svc.db'}")
        stores.append(store)
        return DecisionService(make_config(**overrides), store, clock=clock)

    yield make
    for s in stores:
        s.close()


@pytest.fixture
def protocol_policies() -> Iterator[None]:
    """Register the test policies of :mod:`protocol_policies` while the test runs."""
    from protocol_policies import TEST_POLICIES

    from scarce.policies import POLICIES, register_policy

    for cls in TEST_POLICIES:
        register_policy(cls)
    yield
    for cls in TEST_POLICIES:
        POLICIES.pop(cls.__name__, None)
