"""Database access under the event store: URL parsing (and redaction for printing), one
connection per thread, and units of work that survive a lost connection.

A unit of work is a function of a transaction (:meth:`Database.run`): when its connection turns
out to be broken (PostgreSQL restarted, network cut), the connection is dropped and the unit is
run again once on a new one. Every unit of the event store is safe to run again: decisions are
``INSERT ... ON CONFLICT DO NOTHING`` with a request fingerprint, rewards are idempotent, the
joiner and snapshots re-read what is there. When the database cannot be reached at all the
unit raises :class:`StoreUnavailableError` (the API answers 503).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

T = TypeVar("T")
_LOCK_KEY = 0x5CA3CE  # advisory-lock id of the joiner (PostgreSQL)


class StoreError(RuntimeError):
    """The database cannot be used as asked (wrong policy, bad URL, missing file)."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or refused to write (down, disk full, corrupt)."""


def parse_db_url(url: str | Path) -> tuple[str, str]:
    """``(dialect, target)`` from ``sqlite:///path``, a plain file path, or ``postgresql://...``."""
    s = str(url)
    if s.startswith(("postgresql://", "postgres://")):
        return "postgres", s
    if s.startswith("sqlite:///"):
        return "sqlite", s[len("sqlite:///") :]
    if s.startswith("sqlite://"):
        raise StoreError(f"db URL {redact_url(s)!r}: use sqlite:///PATH (three slashes) or a path")
    if "://" in s:
        raise StoreError(
            f"db URL {redact_url(s)!r}: expected sqlite:///PATH, a path, or postgresql://..."
        )
    return "sqlite", s


def redact_url(url: str | Path) -> str:
    """``url`` with its password (``user:PASSWORD@`` and ``?password=``) replaced by ``***``:
    the only form of a database URL that is printed or logged."""
    s = str(url)
    if "://" not in s:
        return s
    try:
        parts = urlsplit(s)
    except ValueError:
        return s.split("://", 1)[0] + "://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() in ("password", "sslpassword") else v) for k, v in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Tx:
    """Executes statements inside one transaction, translating ``?`` markers for PostgreSQL."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.cursor = cursor
        self.postgres = postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.postgres:
            sql = sql.replace("?", "%s")
        self.cursor.execute(sql, params)
        return self.cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())


class Database:
    """Connections to one database (each thread its own) and units of work on them.

    Parameters
    ----------
    url:
        ``sqlite:///PATH`` or a file path (SQLite, WAL mode), or ``postgresql://...``.
    sqlite_synchronous:
        SQLite ``PRAGMA synchronous``: ``"FULL"`` or ``"NORMAL"``.
    create:
        create a missing SQLite file (mode 0600); False: a missing file is a
        :class:`StoreError` (for commands that only read a log).
    """

    def __init__(
        self, url: str | Path, *, sqlite_synchronous: str = "FULL", create: bool = True
    ) -> None:
        self.dialect, self.target = parse_db_url(url)
        if sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError(
                f"sqlite_synchronous must be 'FULL' or 'NORMAL'; got {sqlite_synchronous!r}"
            )
        self.sqlite_synchronous = sqlite_synchronous.upper()
        self.url = str(url)
        self.postgres = self.dialect == "postgres"
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        #: ``(time.time(), message)`` of the last failed write (health reports it)
        self.last_write_error: tuple[float, str] | None = None
        if self.postgres:
            import psycopg

            self._lost = (psycopg.OperationalError, psycopg.InterfaceError)
            self._db_errors: tuple[type[BaseException], ...] = (psycopg.OperationalError,)
        else:
            self._lost = ()
            self._db_errors = (sqlite3.OperationalError, sqlite3.DatabaseError)
            self._prepare_sqlite_file(create)

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    def _prepare_sqlite_file(self, create: bool) -> None:
        path = Path(self.target).expanduser()
        if path.exists():
            return
        if not create:
            raise StoreError(f"no database at {str(path)!r}")
        try:
            path.resolve().parent.mkdir(parents=True, exist_ok=True)
            # owner-only from the start (SQLite gives its -wal and -shm files the same mode)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot create the database {str(path)!r}: {exc.strerror}") from None

    # ------------------------------------------------------------------ connections
    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            try:
                return psycopg.connect(self.target, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                raise StoreUnavailableError(
                    f"cannot connect to {self.redacted_url}: {_first_line(exc)}"
                ) from None
        try:
            conn = sqlite3.connect(
                self.target, isolation_level=None, timeout=60.0, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.sqlite_synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=60000")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open {self.target!r}: {exc}") from None
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _drop(self, conn: Any) -> None:
        """Forget a broken connection of this thread (the next call opens a new one)."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._conns_lock:
            if conn in self._conns:
                self._conns.remove(conn)
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - it is broken already
            pass

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._conns.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ units of work
    def run(
        self, unit: Callable[[Tx], T], lock: str | None = None, *, transaction: bool = True
    ) -> T:
        """Run ``unit(tx)`` in one transaction and commit; on a lost connection, once more on
        a new one. ``lock``: None, ``"shared"`` or ``"exclusive"`` (the joiner's advisory lock
        on PostgreSQL; SQLite write transactions are serial anyway). ``transaction=False``
        (PostgreSQL; ignored on SQLite): no ``BEGIN`` and ``COMMIT`` around the unit, for a
        unit of one statement, which PostgreSQL commits by itself before it answers."""
        if lock is not None and not transaction:
            raise ValueError("a lock is held by a transaction: lock needs transaction=True")
        for attempt in (0, 1):
            conn = self._conn()
            try:
                if not transaction and self.postgres:
                    return unit(Tx(conn.cursor(), True))
                return self._run_once(conn, unit, lock)
            except self._lost as exc:
                if _is_broken(conn):
                    self._drop(conn)
                elif not self._rolled_back(exc):
                    raise self._unavailable(exc) from None
                if attempt:
                    raise self._unavailable(exc) from None
            except self._db_errors as exc:
                if _is_bug(exc):
                    raise
                raise self._unavailable(exc) from None
        raise AssertionError("unreachable")

    def _rolled_back(self, exc: BaseException) -> bool:
        """PostgreSQL rolled the transaction back to resolve a deadlock or a serialisation
        conflict between replicas: the unit can run again as it is."""
        import psycopg

        return isinstance(exc, psycopg.errors.TransactionRollback)

    def _run_once(self, conn: Any, unit: Callable[[Tx], T], lock: str | None) -> T:
        if self.postgres:
            with conn.transaction():
                tx = Tx(conn.cursor(), True)
                if lock == "exclusive":
                    tx.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
                elif lock == "shared":
                    tx.execute("SELECT pg_advisory_xact_lock_shared(?)", (_LOCK_KEY,))
                return unit(tx)
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = unit(Tx(conn.cursor(), False))
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read-only statement (autocommit), retried once on a lost connection."""
        if self.postgres:
            sql = sql.replace("?", "%s")
        for attempt in (0, 1):
            conn = self._conn()
            try:
                cur = conn.cursor()
                cur.execute(sql, params)
                return list(cur.fetchall())
            except self._lost as exc:
                if not _is_broken(conn):
                    raise self._unavailable(exc) from None
                self._drop(conn)
                if attempt:
                    raise self._unavailable(exc) from None
            except self._db_errors as exc:
                if _is_bug(exc):
                    raise
                raise self._unavailable(exc, write=False) from None
        raise AssertionError("unreachable")

    def integrity_problem(self) -> str | None:
        """What SQLite's ``PRAGMA quick_check`` finds wrong with the file (None: nothing, or
        PostgreSQL, which checks its own pages). Reads the whole file: run it rarely."""
        if self.postgres:
            return None
        # a connection of its own: the pages come from the file, not from a connection's cache
        conn = sqlite3.connect(f"file:{self.target}?mode=ro", uri=True, timeout=60.0)
        try:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        finally:
            conn.close()
        problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
        return "; ".join(problems) or None

    def free_bytes(self) -> int | None:
        """Bytes free for the database file's directory (SQLite; None for PostgreSQL)."""
        if self.postgres:
            return None
        st = os.statvfs(Path(self.target).expanduser().resolve().parent)
        return int(st.f_bavail * st.f_frsize)

    def _unavailable(self, exc: BaseException, *, write: bool = True) -> StoreUnavailableError:
        message = f"{self.dialect} store unavailable: {_first_line(exc)}"
        if write:
            self.last_write_error = (time.time(), message)
        return StoreUnavailableError(message)


def _is_broken(conn: Any) -> bool:
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))


def _is_bug(exc: BaseException) -> bool:
    """Errors of the statements themselves (constraint, syntax), not of the database."""
    return isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact_url(text[0]) if text else type(exc).__name__
