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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scarce.serve.db import (
    Database,
    StoreError,
    StoreUnavailableError,
    Tx,
    parse_db_url,
    redact_url,
)
from scarce.serve.schema import (
    DECISION_COLUMNS,
    SCHEMA,
    Charges,
    DecisionRecord,
    JoinedEvent,
    Unit,
    UnknownEventError,
)
from scarce.serve.snapshot import Snapshot
from scarce.serve.writer import Callback, DecisionWriter


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
    create:
        create a missing SQLite database (owner-only file mode); False: refuse it.

    Each thread gets its own connection; a broken one is replaced (see :mod:`scarce.serve.db`).
    """

    def __init__(
        self,
        url: str | Path,
        *,
        sqlite_synchronous: str = "FULL",
        group_commit: bool = True,
        create: bool = True,
    ) -> None:
        self.db = Database(url, sqlite_synchronous=sqlite_synchronous, create=create)
        self.dialect, self.target = self.db.dialect, self.db.target
        self.sqlite_synchronous = self.db.sqlite_synchronous
        self.url = str(url)
        self.group_commit = bool(group_commit)
        self.writer = DecisionWriter(self.db, group_commit=self.group_commit)

    @property
    def postgres(self) -> bool:
        return self.db.postgres

    @property
    def redacted_url(self) -> str:
        """The URL as it may be printed (no password)."""
        return self.db.redacted_url

    def run(self, unit: Any, lock: str | None = None) -> Any:
        """``unit(tx)`` in one transaction (see :meth:`Database.run`)."""
        return self.db.run(unit, lock)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read-only statement (autocommit)."""
        return self.db.query(sql, params)

    def close(self) -> None:
        """Stop the group-commit writer and close every connection this store opened."""
        self.writer.stop()
        self.db.close()

    # ------------------------------------------------------------------ setup
    def initialize(self, fingerprint: str, budgets: Sequence[tuple[str, str, float]]) -> None:
        """Create the schema if needed, tie the database to the policy ``fingerprint`` and
        create budget rows ``(resource, group or "", amount)`` that do not exist yet (a restart
        keeps what is left)."""
        blob = "BYTEA" if self.postgres else "BLOB"

        def unit(tx: Tx) -> None:
            for stmt in SCHEMA.format(blob=blob).split(";"):
                if stmt.strip():
                    tx.execute(stmt)
            columns = (
                [
                    r[0]
                    for r in tx.all(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'decisions' AND table_schema = current_schema()"
                    )
                ]
                if self.postgres
                else [r[1] for r in tx.all("PRAGMA table_info(decisions)")]
            )
            if "key_id" not in columns:  # a log written before keys were recorded
                tx.execute("ALTER TABLE decisions ADD COLUMN key_id TEXT")
            tx.execute(
                "INSERT INTO scarce_meta (key, value) VALUES ('policy', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (fingerprint,),
            )
            self._check_fingerprint(tx, fingerprint)
            for resource, group, amount in budgets:
                tx.execute(
                    "INSERT INTO budgets (resource, grp, initial, remaining) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (resource, grp) DO NOTHING",
                    (resource, group, float(amount), float(amount)),
                )

        self.run(unit, lock="exclusive")

    def verify(self, fingerprint: str) -> None:
        """Check, without writing, that this is an event store of the policy ``fingerprint``
        (for commands that only read a log)."""

        def unit(tx: Tx) -> None:
            self._check_fingerprint(tx, fingerprint)

        try:
            self.run(unit)
        except StoreUnavailableError as exc:
            if "no such table" in str(exc) or "does not exist" in str(exc):
                raise StoreError(f"{self.redacted_url} is not a scarce event store") from None
            raise

    @staticmethod
    def _check_fingerprint(tx: Tx, fingerprint: str) -> None:
        row = tx.one("SELECT value FROM scarce_meta WHERE key = 'policy'")
        if row is None:
            raise StoreError("the database has no policy configuration: not a scarce event store")
        if row[0] != fingerprint:
            raise StoreError(
                "this database logs a different policy configuration (fingerprint "
                f"{row[0][:12]}, configured {fingerprint[:12]}); use another --db"
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

    def insert_decision(self, rec: DecisionRecord, charges: Charges) -> str:
        """Log a decision and charge its costs atomically; return once it is committed.
        The result is that of :meth:`insert_unit` for the unit of this one decision."""
        return self.insert_unit([(rec, charges)])

    def insert_unit(self, unit: Unit) -> str:
        """Log decisions and charge their costs, all or none; return once committed.

        Returns ``"inserted"`` (all were logged and charged), ``"exists"`` (an event id is
        already logged; nothing changed) or ``"budget"`` (a charge would overspend; nothing
        changed). With ``group_commit`` (the default), concurrent units are committed together
        (see :class:`~scarce.serve.writer.DecisionWriter`).
        """
        return self.writer.insert_unit(unit)

    def submit_decisions(self, units: Sequence[Unit], on_done: Callback) -> None:
        """Hand decision units to the writer; ``on_done(results)`` is called once after the
        commit that holds them (see :meth:`DecisionWriter.submit`)."""
        self.writer.submit(units, on_done)

    def get_decisions(self, event_ids: Sequence[str]) -> dict[str, DecisionRecord]:
        """The logged decisions among ``event_ids``, by event id."""
        if not event_ids:
            return {}
        marks = ", ".join("?" * len(event_ids))
        rows = self.query(
            f"SELECT {DECISION_COLUMNS} FROM decisions WHERE event_id IN ({marks})",
            tuple(event_ids),
        )
        out = {}
        for r in rows:
            out[r[0]] = DecisionRecord(
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
                key_id=r[11],
            )
        return out

    def get_decision(self, event_id: str) -> DecisionRecord | None:
        return self.get_decisions([event_id]).get(event_id)

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
        key_id: str | None = None,
    ) -> str:
        """Store a reward. Returns its status:

        ``"duplicate"``: the same value and cost were already stored (no-op);
        ``"late"``: after the event's window, or after the event was joined (stored, not learned);
        ``"ignored"``: a different reward while ``aggregation="earliest"`` already has one
        (stored, not learned); ``"accepted"``: will be learned.

        ``key_id``: the caller's key; a decision made under another key is unknown to it.
        The rewards of one event are serialised by a row lock on its decision (PostgreSQL;
        SQLite write transactions are serial), so concurrent identical rewards are one
        ``accepted`` and the rest ``duplicate``.

        Raises
        ------
        UnknownEventError
            when no decision was logged under ``event_id`` (by this key).
        """
        value_json = json.dumps([float(v) for v in value])
        cost_json = None if cost is None else json.dumps([float(c) for c in cost])
        payload = json.dumps(
            {"value": json.loads(value_json), "cost": cost_json and json.loads(cost_json)}
        )
        lock_row = " FOR UPDATE" if self.postgres else ""

        def unit(tx: Tx) -> str:
            row = tx.one(
                f"SELECT ts, join_seq, key_id FROM decisions WHERE event_id = ?{lock_row}",
                (event_id,),
            )
            if row is None or (key_id is not None and row[2] not in (None, key_id)):
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
                "INSERT INTO rewards (event_id, n, payload, value, cost, received_at, status, "
                "pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

        return str(self.run(unit, lock="shared"))

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

        def unit(tx: Tx) -> int:
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

        return int(self.run(unit, lock="exclusive"))

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

        def unit(tx: Tx) -> tuple[int, str]:
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

        return self.run(unit, lock="exclusive")  # type: ignore[no-any-return]

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

    # ------------------------------------------------------------------ quarantine
    def quarantine(self, seq: int, event_id: str, error: str, at: float) -> None:
        """Record that the joined event ``seq`` could not be learned (every replica and replay
        come to the same verdict; the first record stays)."""
        self.run(
            lambda tx: tx.execute(
                "INSERT INTO quarantined_events (seq, event_id, error, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (seq) DO NOTHING",
                (seq, event_id, error[:1000], at),
            )
        )

    def quarantined(self) -> list[tuple[int, str, str]]:
        """``(seq, event_id, error)`` of the quarantined events, in join order."""
        rows = self.query("SELECT seq, event_id, error FROM quarantined_events ORDER BY seq")
        return [(int(s), e, m) for s, e, m in rows]

    # ------------------------------------------------------------------ reporting
    def counts(self) -> dict[str, int]:
        """Numbers of decisions, rewards by status, joined, learned and quarantined events."""
        out = {
            "decisions": int(self.query("SELECT COUNT(*) FROM decisions")[0][0]),
            "joined": int(self.query("SELECT COUNT(*) FROM joined_events")[0][0]),
            "quarantined": int(self.query("SELECT COUNT(*) FROM quarantined_events")[0][0]),
        }
        with_reward = int(
            self.query("SELECT COUNT(*) FROM joined_events WHERE reward IS NOT NULL")[0][0]
        )
        out["learned"] = with_reward - out["quarantined"]
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


__all__ = [
    "DecisionRecord",
    "EventStore",
    "JoinedEvent",
    "StoreError",
    "StoreUnavailableError",
    "UnknownEventError",
    "parse_db_url",
    "redact_url",
]
