"""The event store: decisions, rewards, joined events, budgets and model snapshots in one SQL
schema, on SQLite (WAL mode; the embedded default) or PostgreSQL (psycopg; for several service
replicas sharing one database).

One schema and one code path: the statements are plain SQL that both engines accept
(``INSERT ... ON CONFLICT``, partial indexes); the only dialect differences are the parameter
marker, the blob type, and how a transaction is serialised (SQLite: ``BEGIN IMMEDIATE`` takes
the database write lock; PostgreSQL: a transaction-scoped advisory lock, exclusive for the
joiner and shared for reward writers, so a reward and the join of its event never interleave).
Budgets are decremented by a conditional ``UPDATE ... WHERE remaining >= cost`` in the same
transaction that logs the decision, so concurrent requests can never overspend.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scarce.serve.snapshot import Snapshot

#: slack for float budget comparisons (costs are sums of config numbers)
BUDGET_EPS = 1e-9
_LOCK_KEY = 0x5CA3CE  # advisory-lock id of the joiner (PostgreSQL)
_MAX_GROUP = 256  # most decisions committed together

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scarce_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    event_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    context TEXT NOT NULL,
    eligible TEXT,
    grp TEXT,
    action BIGINT NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    probabilities TEXT NOT NULL,
    model_version BIGINT NOT NULL,
    charges TEXT,
    ts DOUBLE PRECISION NOT NULL,
    join_seq BIGINT
);
CREATE INDEX IF NOT EXISTS decisions_unjoined ON decisions (ts) WHERE join_seq IS NULL;
CREATE TABLE IF NOT EXISTS rewards (
    event_id TEXT NOT NULL REFERENCES decisions (event_id),
    n BIGINT NOT NULL,
    payload TEXT NOT NULL,
    value TEXT NOT NULL,
    cost TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    pending BIGINT NOT NULL,
    PRIMARY KEY (event_id, n),
    UNIQUE (event_id, payload)
);
CREATE INDEX IF NOT EXISTS rewards_pending ON rewards (event_id) WHERE pending = 1;
CREATE TABLE IF NOT EXISTS joined_events (
    seq BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE REFERENCES decisions (event_id),
    reward DOUBLE PRECISION,
    value TEXT,
    cost TEXT,
    source TEXT NOT NULL,
    joined_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS budgets (
    resource TEXT NOT NULL,
    grp TEXT NOT NULL,
    initial DOUBLE PRECISION NOT NULL,
    remaining DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (resource, grp)
);
CREATE TABLE IF NOT EXISTS snapshots (
    version BIGINT PRIMARY KEY,
    watermark BIGINT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    checksum TEXT NOT NULL,
    state_json {blob} NOT NULL,
    arrays_npz {blob} NOT NULL
);
"""


class StoreError(RuntimeError):
    """The database cannot be used as asked (wrong policy, bad URL)."""


class UnknownEventError(KeyError):
    """No decision was logged under this event id."""


@dataclass(frozen=True)
class DecisionRecord:
    """One logged decision (JSON-encoded fields are kept as text)."""

    event_id: str
    fingerprint: str
    context: str
    eligible: str | None
    group: str | None
    action: int
    probability: float
    probabilities: str
    model_version: int
    charges: str | None
    ts: float


@dataclass(frozen=True)
class JoinedEvent:
    """A decision joined with its (aggregated) reward, in join order ``seq``."""

    seq: int
    event_id: str
    context: str
    action: int
    reward: float | None


class _Abort(Exception):
    def __init__(self, result: str) -> None:
        self.result = result


class _Tx:
    """Executes statements inside one transaction, translating ``?`` markers."""

    def __init__(self, cursor: Any, postgres: bool) -> None:
        self.cursor = cursor
        self.postgres = postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.postgres:
            sql = sql.replace("?", "%s")
        self.cursor.execute(sql, tuple(params))
        return self.cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())


def parse_db_url(url: str | Path) -> tuple[str, str]:
    """``(dialect, target)`` from ``sqlite:///path``, a plain file path, or ``postgresql://...``."""
    s = str(url)
    if s.startswith(("postgresql://", "postgres://")):
        return "postgres", s
    if s.startswith("sqlite:///"):
        return "sqlite", s[len("sqlite:///") :]
    if s.startswith("sqlite://"):
        raise StoreError(f"db URL {s!r}: use sqlite:///PATH (three slashes) or a plain path")
    if "://" in s:
        raise StoreError(f"db URL {s!r}: expected sqlite:///PATH, a path, or postgresql://...")
    return "sqlite", s


class EventStore:
    """SQL event store shared by the API, the joiner, replay and export.

    Parameters
    ----------
    url:
        ``sqlite:///PATH`` or a file path (SQLite, WAL mode), or ``postgresql://...``.
    sqlite_synchronous:
        SQLite ``PRAGMA synchronous``: ``"FULL"`` (default; every commit is fsynced, durable
        across power loss) or ``"NORMAL"`` (durable across process crashes, not power loss).
    group_commit:
        commit concurrent decisions together (one commit per batch, each still acknowledged
        only after its commit); False commits each decision on its own.

    Each thread gets its own connection.
    """

    def __init__(
        self, url: str | Path, *, sqlite_synchronous: str = "FULL", group_commit: bool = True
    ) -> None:
        self.dialect, self.target = parse_db_url(url)
        if sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError(
                f"sqlite_synchronous must be 'FULL' or 'NORMAL'; got {sqlite_synchronous!r}"
            )
        self.sqlite_synchronous = sqlite_synchronous.upper()
        self.url = str(url)
        self.group_commit = bool(group_commit)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        if self.dialect == "postgres":
            import psycopg  # noqa: F401  (fail early with a clear ImportError)
        else:
            Path(self.target).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgres"

    # ------------------------------------------------------------------ connections
    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.target, autocommit=True)
        conn = sqlite3.connect(
            self.target, isolation_level=None, timeout=60.0, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.sqlite_synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Stop the group-commit writer and close every connection this store opened."""
        with self._writer_lock:
            if self._writer is not None and self._writer.is_alive():
                self._queue.put(None)
                self._writer.join(timeout=30)
            self._writer = None
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._conns.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[_Tx]:
        """A serialisable unit of work. ``lock``: None, ``"shared"`` or ``"exclusive"`` (the
        joiner's advisory lock on PostgreSQL; SQLite write transactions are serial anyway)."""
        conn = self._conn()
        if self.postgres:
            with conn.transaction():
                tx = _Tx(conn.cursor(), True)
                if lock == "exclusive":
                    tx.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
                elif lock == "shared":
                    tx.execute("SELECT pg_advisory_xact_lock_shared(?)", (_LOCK_KEY,))
                yield tx
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _Tx(conn.cursor(), False)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read-only statement (autocommit)."""
        conn = self._conn()
        cur = conn.cursor()
        cur.execute(sql.replace("?", "%s") if self.postgres else sql, tuple(params))
        return list(cur.fetchall())

    # ------------------------------------------------------------------ setup
    def initialize(self, fingerprint: str, budgets: Sequence[tuple[str, str, float]]) -> None:
        """Create the schema if needed, tie the database to the policy ``fingerprint`` and
        create budget rows ``(resource, group or "", amount)`` that do not exist yet (a restart
        keeps what is left)."""
        blob = "BYTEA" if self.postgres else "BLOB"
        with self.transaction(lock="exclusive") as tx:
            for stmt in _SCHEMA.format(blob=blob).split(";"):
                if stmt.strip():
                    tx.execute(stmt)
            tx.execute(
                "INSERT INTO scarce_meta (key, value) VALUES ('policy', ?) ON CONFLICT (key) DO NOTHING",
                (fingerprint,),
            )
            stored = tx.one("SELECT value FROM scarce_meta WHERE key = 'policy'")[0]
            if stored != fingerprint:
                raise StoreError(
                    "this database logs a different policy configuration (fingerprint "
                    f"{stored[:12]}, configured {fingerprint[:12]}); use another --db"
                )
            for resource, group, amount in budgets:
                tx.execute(
                    "INSERT INTO budgets (resource, grp, initial, remaining) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (resource, grp) DO NOTHING",
                    (resource, group, float(amount), float(amount)),
                )

    # ------------------------------------------------------------------ decisions
    def remaining_budgets(self) -> dict[tuple[str, str], float]:
        """``{(resource, group or ""): remaining}``."""
        return {
            (r, g): float(v)
            for r, g, v in self.query("SELECT resource, grp, remaining FROM budgets")
        }

    def budget_rows(self) -> list[tuple[str, str, float, float]]:
        """``(resource, group, initial, remaining)`` rows."""
        rows = self.query(
            "SELECT resource, grp, initial, remaining FROM budgets ORDER BY resource, grp"
        )
        return [(r, g, float(i), float(v)) for r, g, i, v in rows]

    def insert_decision(
        self, rec: DecisionRecord, charges: Sequence[tuple[str, str, float]]
    ) -> str:
        """Log a decision and charge its costs atomically; return once it is committed.

        Returns ``"inserted"``, ``"exists"`` (the event id is already logged; nothing
        changed) or ``"budget"`` (a charge would overspend; nothing changed).

        With ``group_commit`` (the default), concurrent calls are committed together by one
        writer thread: each decision runs in its own savepoint (so one that fails changes
        nothing), and the batch shares one commit, i.e. one fsync.
        """
        if not self.group_commit:
            with self.transaction() as tx:
                return self._insert_one(tx, rec, charges)
        return self.submit_decision(rec, charges).result()

    def submit_decision(
        self, rec: DecisionRecord, charges: Sequence[tuple[str, str, float]]
    ) -> Future[str]:
        """Queue a decision for the group-commit writer; the future's result is what
        :meth:`insert_decision` returns, set only after the batch's commit (without
        ``group_commit`` the insert is committed here and the future is already done)."""
        done: Future[str] = Future()
        self.submit_decisions([(rec, charges, done)])
        return done

    def submit_decisions(
        self, items: Sequence[tuple[DecisionRecord, Sequence[tuple[str, str, float]], Future[str]]]
    ) -> None:
        """:meth:`submit_decision` for several decisions at once: ``(record, charges, future)``
        triples, handed to the writer in one go (one wake-up of the writer thread)."""
        if not self.group_commit:
            for rec, charges, done in items:
                try:
                    with self.transaction() as tx:
                        done.set_result(self._insert_one(tx, rec, charges))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller via the future
                    done.set_exception(exc)
            return
        writer = self._writer
        if writer is None or not writer.is_alive():
            with self._writer_lock:
                if self._writer is None or not self._writer.is_alive():
                    self._writer = threading.Thread(
                        target=self._write_loop, name="scarce-group-commit", daemon=True
                    )
                    self._writer.start()
        self._queue.put(list(items))

    def _insert_one(
        self, tx: _Tx, rec: DecisionRecord, charges: Sequence[tuple[str, str, float]]
    ) -> str:
        insert = (
            "INSERT INTO decisions (event_id, fingerprint, context, eligible, grp, action, "
            "probability, probabilities, model_version, charges, ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
        )
        params = (
            rec.event_id,
            rec.fingerprint,
            rec.context,
            rec.eligible,
            rec.group,
            rec.action,
            rec.probability,
            rec.probabilities,
            rec.model_version,
            rec.charges,
            rec.ts,
        )
        if not charges:  # one statement is atomic by itself: no savepoint needed
            return "inserted" if tx.execute(insert, params).rowcount == 1 else "exists"
        tx.execute("SAVEPOINT decision")
        try:
            cur = tx.execute(insert, params)
            if cur.rowcount == 0:
                raise _Abort("exists")
            for resource, group, amount in charges:
                cur = tx.execute(
                    "UPDATE budgets SET remaining = remaining - ? "
                    "WHERE resource = ? AND grp = ? AND remaining >= ?",
                    (amount, resource, group, amount - BUDGET_EPS),
                )
                if cur.rowcount != 1:
                    raise _Abort("budget")
        except _Abort as abort:
            tx.execute("ROLLBACK TO SAVEPOINT decision")
            tx.execute("RELEASE SAVEPOINT decision")
            return abort.result
        tx.execute("RELEASE SAVEPOINT decision")
        return "inserted"

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:  # close()
                return
            batch = list(first)
            while len(batch) < _MAX_GROUP:
                try:
                    items = self._queue.get_nowait()
                except queue.Empty:
                    break
                if items is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.extend(items)
            try:
                with self.transaction() as tx:
                    results = [self._insert_one(tx, rec, ch) for rec, ch, _ in batch]
            except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiter
                for _, _, done in batch:
                    done.set_exception(exc)
                continue
            for (_, _, done), result in zip(batch, results, strict=True):
                done.set_result(result)

    def get_decision(self, event_id: str) -> DecisionRecord | None:
        rows = self.query(
            "SELECT event_id, fingerprint, context, eligible, grp, action, probability, "
            "probabilities, model_version, charges, ts FROM decisions WHERE event_id = ?",
            (event_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return DecisionRecord(
            event_id=r[0],
            fingerprint=r[1],
            context=r[2],
            eligible=r[3],
            group=r[4],
            action=int(r[5]),
            probability=float(r[6]),
            probabilities=r[7],
            model_version=int(r[8]),
            charges=r[9],
            ts=float(r[10]),
        )

    # ------------------------------------------------------------------ rewards
    def add_reward(
        self,
        event_id: str,
        value: Sequence[float],
        cost: Sequence[float] | None,
        *,
        now: float,
        window: float,
        aggregation: str,
    ) -> str:
        """Store a reward. Returns its status:

        ``"duplicate"``: the same value and cost were already stored (no-op);
        ``"late"``: after the event's window, or after the event was joined (stored, not learned);
        ``"ignored"``: a different reward while ``aggregation="earliest"`` already has one
        (stored, not learned); ``"accepted"``: will be learned.

        Raises
        ------
        UnknownEventError
            when no decision was logged under ``event_id``.
        """
        value_json = json.dumps([float(v) for v in value])
        cost_json = None if cost is None else json.dumps([float(c) for c in cost])
        payload = json.dumps(
            {"value": json.loads(value_json), "cost": cost_json and json.loads(cost_json)}
        )
        with self.transaction(lock="shared") as tx:
            row = tx.one("SELECT ts, join_seq FROM decisions WHERE event_id = ?", (event_id,))
            if row is None:
                raise UnknownEventError(event_id)
            ts, join_seq = float(row[0]), row[1]
            existing = tx.all("SELECT payload, status FROM rewards WHERE event_id = ?", (event_id,))
            if any(p == payload for p, _ in existing):
                return "duplicate"
            if now > ts + window or (join_seq is not None and aggregation == "sum"):
                status = "late"
            elif join_seq is not None or (
                aggregation == "earliest" and any(s == "accepted" for _, s in existing)
            ):
                status = "ignored"
            else:
                status = "accepted"
            tx.execute(
                "INSERT INTO rewards (event_id, n, payload, value, cost, received_at, status, pending) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_id,
                    len(existing) + 1,
                    payload,
                    value_json,
                    cost_json,
                    now,
                    status,
                    1 if status == "accepted" else 0,
                ),
            )
        return status

    # ------------------------------------------------------------------ join
    def join(
        self,
        *,
        now: float,
        window: float,
        aggregation: str,
        default_reward: float | None,
        weights: Sequence[float],
        limit: int = 10_000,
    ) -> int:
        """Join decisions with their rewards; returns how many events were joined.

        An event is joined when its window has closed (``ts + window < now``), or, with
        ``aggregation="earliest"``, as soon as it has an accepted reward. The learned scalar
        is ``weights @ value`` of the earliest accepted reward (``"earliest"``) or of the sum
        of accepted rewards (``"sum"``), else ``default_reward`` (None: the event is joined
        without a reward and not learned). Join order (``seq``) is the learning order.
        """
        with self.transaction(lock="exclusive") as tx:
            last = tx.one("SELECT COALESCE(MAX(seq), 0) FROM joined_events")[0]
            cands = {
                eid: float(ts)
                for eid, ts in tx.all(
                    "SELECT event_id, ts FROM decisions WHERE join_seq IS NULL AND ts < ? "
                    "ORDER BY ts, event_id LIMIT ?",
                    (now - window, limit),
                )
            }
            if aggregation == "earliest":
                for eid, ts in tx.all(
                    "SELECT d.event_id, d.ts FROM rewards r JOIN decisions d ON d.event_id = r.event_id "
                    "WHERE r.pending = 1 AND d.join_seq IS NULL ORDER BY d.ts, d.event_id LIMIT ?",
                    (limit,),
                ):
                    cands[eid] = float(ts)
            order = sorted(cands, key=lambda e: (cands[e], e))[:limit]
            seq = int(last)
            for eid in order:
                rows = tx.all(
                    "SELECT value, cost FROM rewards WHERE event_id = ? AND status = 'accepted' "
                    "ORDER BY n",
                    (eid,),
                )
                value, cost, reward, source = None, None, None, "none"
                if rows:
                    vecs = [json.loads(v) for v, _ in rows]
                    costs = [json.loads(c) if c is not None else None for _, c in rows]
                    if aggregation == "earliest":
                        agg, agg_cost = vecs[0], costs[0]
                    else:
                        agg = [sum(col) for col in zip(*vecs, strict=True)]
                        present = [c for c in costs if c is not None]
                        agg_cost = (
                            [sum(col) for col in zip(*present, strict=True)] if present else None
                        )
                    value = json.dumps(agg)
                    cost = None if agg_cost is None else json.dumps(agg_cost)
                    reward = float(sum(w * v for w, v in zip(weights, agg, strict=True)))
                    source = "reward"
                elif default_reward is not None:
                    reward, source = float(default_reward), "default"
                seq += 1
                tx.execute(
                    "INSERT INTO joined_events (seq, event_id, reward, value, cost, source, joined_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (seq, eid, reward, value, cost, source, now),
                )
                tx.execute("UPDATE decisions SET join_seq = ? WHERE event_id = ?", (seq, eid))
                tx.execute(
                    "UPDATE rewards SET pending = 0 WHERE event_id = ? AND pending = 1", (eid,)
                )
            return len(order)

    def joined_since(self, after_seq: int, limit: int = 10_000) -> list[JoinedEvent]:
        """Joined events with ``seq > after_seq`` in join order."""
        rows = self.query(
            "SELECT j.seq, j.event_id, d.context, d.action, j.reward FROM joined_events j "
            "JOIN decisions d ON d.event_id = j.event_id WHERE j.seq > ? ORDER BY j.seq LIMIT ?",
            (after_seq, limit),
        )
        return [
            JoinedEvent(int(s), e, c, int(a), None if r is None else float(r))
            for s, e, c, a, r in rows
        ]

    # ------------------------------------------------------------------ snapshots
    def publish_snapshot(
        self,
        *,
        watermark: int,
        created_at: float,
        checksum: str,
        state_json: bytes,
        arrays_npz: bytes,
    ) -> tuple[int, str]:
        """Store a snapshot; returns ``(version, checksum)`` (of the existing snapshot if this
        watermark has one: replicas at the same watermark hold the same model)."""
        with self.transaction(lock="exclusive") as tx:
            row = tx.one(
                "SELECT version, checksum FROM snapshots WHERE watermark = ?", (watermark,)
            )
            if row is not None:
                return int(row[0]), str(row[1])
            version = int(tx.one("SELECT COALESCE(MAX(version), 0) FROM snapshots")[0]) + 1
            tx.execute(
                "INSERT INTO snapshots (version, watermark, created_at, checksum, state_json, arrays_npz) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (version, watermark, created_at, checksum, state_json, arrays_npz),
            )
            return version, checksum

    def latest_snapshot(self, *, with_data: bool = True) -> Snapshot | None:
        """The snapshot with the highest watermark, or None."""
        cols = "version, watermark, created_at, checksum" + (
            ", state_json, arrays_npz" if with_data else ""
        )
        rows = self.query(f"SELECT {cols} FROM snapshots ORDER BY watermark DESC LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return Snapshot(
            version=int(r[0]),
            watermark=int(r[1]),
            created_at=float(r[2]),
            checksum=r[3],
            state_json=bytes(r[4]) if with_data else b"",
            arrays_npz=bytes(r[5]) if with_data else b"",
        )

    # ------------------------------------------------------------------ reporting
    def counts(self) -> dict[str, int]:
        """Numbers of decisions, rewards by status, joined and learned events."""
        out = {
            "decisions": int(self.query("SELECT COUNT(*) FROM decisions")[0][0]),
            "joined": int(self.query("SELECT COUNT(*) FROM joined_events")[0][0]),
            "learned": int(
                self.query("SELECT COUNT(*) FROM joined_events WHERE reward IS NOT NULL")[0][0]
            ),
        }
        by_status = dict(self.query("SELECT status, COUNT(*) FROM rewards GROUP BY status"))
        out["rewards"] = int(sum(by_status.values()))
        for status in ("accepted", "ignored", "late"):
            out[f"rewards_{status}"] = int(by_status.get(status, 0))
        return out

    def logged_rows(self) -> list[tuple[Any, ...]]:
        """``(event_id, context, action, reward, probability, ts, group)`` of learned events in
        join order (the logged-bandit-data view that export writes)."""
        return self.query(
            "SELECT d.event_id, d.context, d.action, j.reward, d.probability, d.ts, d.grp "
            "FROM joined_events j JOIN decisions d ON d.event_id = j.event_id "
            "WHERE j.reward IS NOT NULL ORDER BY j.seq"
        )
