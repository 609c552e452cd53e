"""The event store: decisions, rewards, joined events, budgets and model snapshots in one SQL
schema, on SQLite (WAL mode; the embedded default) or PostgreSQL (psycopg; for several service
replicas sharing one database).

One schema and one code path: the statements are plain SQL that both engines accept
(``INSERT ... ON CONFLICT``, partial indexes); the only dialect differences are the parameter
marker, the blob type, and how a transaction is serialised (SQLite: ``BEGIN IMMEDIATE`` takes
the database write lock; PostgreSQL: a transaction-scoped advisory lock, exclusive for the
joiner and shared for reward writers, so a reward and the join of its event never interleave).
Budgets are decremented by a conditional ``UPDATE ... WHERE remaining >= cost`` in the same
transaction that logs the decision, so concurrent requests can never overspend. What is left is
kept in a :class:`~scarce.serve.writer.BudgetView` by the writer's own reads, so a decision
need not read the budgets itself while they are plentiful.
"""

from __future__ import annotations

import re
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
from scarce.serve.joiner import add_reward, join, joined_since
from scarce.serve.schema import (
    ADDED_COLUMNS,
    DECISION_COLUMNS,
    LOG_DECISIONS_PG,
    SCHEMA,
    SNAPSHOTS_MIGRATION,
    Charges,
    DecisionRecord,
    JoinedEvent,
    Unit,
    UnknownEventError,
)
from scarce.serve.snapshot import Snapshot
from scarce.serve.writer import BUDGET_ROWS, BudgetView, Callback, DecisionWriter, Remaining


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
    budget_view_max_age:
        seconds for which the budget rows read by the writer (or by a fresh read) may stand
        in for a read of the request path (:meth:`budget_view`); 0: never.
    commit_in_caller:
        SQLite with ``group_commit``: commit each submitted group in the submitting thread
        instead of a writer thread (``scarce serve --commit-in-loop``: on the event loop; see
        :class:`~scarce.serve.writer.DecisionWriter`'s ``in_caller``).

    Notes
    -----
    Each thread gets its own connection; a broken one is replaced (see :mod:`scarce.serve.db`).
    """

    def __init__(
        self,
        url: str | Path,
        *,
        sqlite_synchronous: str = "FULL",
        group_commit: bool = True,
        create: bool = True,
        budget_view_max_age: float = 1.0,
        commit_in_caller: bool = False,
    ) -> None:
        self.db = Database(url, sqlite_synchronous=sqlite_synchronous, create=create)
        self.dialect, self.target = self.db.dialect, self.db.target
        self.sqlite_synchronous = self.db.sqlite_synchronous
        self.url = str(url)
        self.group_commit = bool(group_commit)
        self.budgets = BudgetView(budget_view_max_age)
        self.writer = DecisionWriter(
            self.db, group_commit=self.group_commit, view=self.budgets, in_caller=commit_in_caller
        )
        self._missing: frozenset[str] | None = None

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
    def initialize(
        self,
        fingerprint: str,
        budgets: Sequence[tuple[str, str, float]],
        *,
        config_doc: str | None = None,
        name: str = "default",
        now: float = 0.0,
    ) -> int:
        """Create the schema if needed (adding the columns of newer versions to an older log),
        tie the database to the policy ``fingerprint`` and create budget rows ``(resource,
        group or "", amount)`` that do not exist yet (a restart keeps what is left).

        The first configuration becomes policy version 1 (``config_doc``: its JSON document,
        ``name`` its name); later ones come only through promotions
        (:mod:`scarce.serve.versions`). Returns the active policy version, which must be the
        one of ``fingerprint``."""
        blob = "BYTEA" if self.postgres else "BLOB"

        def unit(tx: Tx) -> int:
            for stmt in SCHEMA.format(blob=blob).split(";"):
                if stmt.strip():
                    tx.execute(stmt)
            for table, added in ADDED_COLUMNS.items():
                columns = self._columns(tx, table)
                for column, kind in added:
                    if column not in columns:  # a log written by an earlier version
                        tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            if "policy_version" not in self._columns(tx, "snapshots"):
                for stmt in SNAPSHOTS_MIGRATION.format(blob=blob).split(";"):
                    tx.execute(stmt)
            if self.postgres:  # the decision writer's one statement per group
                tx.execute(LOG_DECISIONS_PG)
            tx.execute(
                "INSERT INTO scarce_meta (key, value) VALUES ('policy', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (fingerprint,),
            )
            first = tx.one("SELECT value FROM scarce_meta WHERE key = 'policy'")[0]
            if tx.one("SELECT COUNT(*) FROM policy_versions")[0] == 0 and first == fingerprint:
                tx.execute(
                    "INSERT INTO policy_versions (version, name, fingerprint, config, created_at) "
                    "VALUES (1, ?, ?, ?, ?)",
                    (name, fingerprint, config_doc or "{}", now),
                )
            active = self._check_fingerprint(tx, fingerprint)
            for resource, group, amount in budgets:
                tx.execute(
                    "INSERT INTO budgets (resource, grp, initial, remaining) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (resource, grp) DO NOTHING",
                    (resource, group, float(amount), float(amount)),
                )
            return active

        active = int(self.run(unit, lock="exclusive"))
        self._missing = frozenset()  # the schema is complete now
        return active

    def missing_columns(self) -> frozenset[str]:
        """``table.column`` names of the current schema that this log lacks (a log written by
        an earlier version, opened by a command that only reads it: nothing is upgraded, the
        reads see NULL in those columns)."""
        if self._missing is None:
            out = set()
            for table, added in (*ADDED_COLUMNS.items(), ("snapshots", (("policy_version", ""),))):
                if self.postgres:
                    rows = self.query(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = ? AND table_schema = current_schema()",
                        (table,),
                    )
                    have = {r[0] for r in rows}
                else:
                    have = {r[1] for r in self.query(f"PRAGMA table_info({table})")}
                out |= {f"{table}.{c}" for c, _ in added if c not in have}
            self._missing = frozenset(out)
        return self._missing

    def legacy_sql(self, sql: str) -> str:
        """``sql`` with the columns this log lacks (``d.`` decisions, ``j.`` joined events)
        read as NULL."""
        missing = self.missing_columns()
        if not missing:
            return sql
        alias = {"decisions": "d", "joined_events": "j"}
        for name in missing:
            table, column = name.split(".")
            if table in alias:
                sql = re.sub(rf"\b{alias[table]}\.{column}\b", "NULL", sql)
        return sql

    def _columns(self, tx: Tx, table: str) -> set[str]:
        if self.postgres:
            return {
                r[0]
                for r in tx.all(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = ? AND table_schema = current_schema()",
                    (table,),
                )
            }
        return {r[1] for r in tx.all(f"PRAGMA table_info({table})")}

    def verify(self, fingerprint: str) -> None:
        """Check, without writing, that this is an event store of the policy ``fingerprint``
        (for commands that only read a log)."""

        def unit(tx: Tx) -> None:
            self._check_fingerprint(tx, fingerprint, active_only=False)

        try:
            self.run(unit)
        except StoreUnavailableError as exc:
            if "no such table" in str(exc) or "does not exist" in str(exc):
                raise StoreError(f"{self.redacted_url} is not a scarce event store") from None
            raise

    def _check_fingerprint(self, tx: Tx, fingerprint: str, *, active_only: bool = True) -> int:
        """The active policy version (or, with ``active_only=False``, the version of
        ``fingerprint``); a :class:`StoreError` when ``fingerprint`` is not that version's."""
        row = tx.one("SELECT value FROM scarce_meta WHERE key = 'policy'")
        if row is None:
            raise StoreError("the database has no policy configuration: not a scarce event store")
        versions = {}
        if self._columns(tx, "policy_versions"):  # (absent in logs of earlier versions)
            rows = tx.all("SELECT version, name, fingerprint FROM policy_versions")
            versions = {fp: (int(v), n) for v, n, fp in rows}
        if not versions:  # written before policy versions: the first configuration only
            if row[0] != fingerprint:
                raise StoreError(
                    "this database logs a different policy configuration (fingerprint "
                    f"{row[0][:12]}, configured {fingerprint[:12]}); use another --db"
                )
            return 1
        last = tx.one("SELECT version FROM promotions ORDER BY seq DESC LIMIT 1")
        active = 1 if last is None else int(last[0])
        mine = versions.get(fingerprint)
        if mine is None:
            raise StoreError(
                "this database logs a different policy configuration (fingerprint "
                f"{row[0][:12]}, configured {fingerprint[:12]}); use another --db, or make it a "
                "new version with `scarce promote`"
            )
        if active_only and mine[0] != active:
            name = next(n for v, n in versions.values() if v == active)
            raise StoreError(
                f"this database serves policy version {active} ({name!r}) since a promotion; "
                f"the configuration given is version {mine[0]}: start without --policy (the "
                f"active version is served), or roll back with `scarce promote --version {mine[0]}`"
            )
        return mine[0] if not active_only else active

    # ------------------------------------------------------------------ decisions
    def remaining_budgets(self) -> Remaining:
        """``{(resource, group or ""): remaining}``, read now (and shown in the view)."""
        ticket = self.budgets.ticket()
        rows = self.query(BUDGET_ROWS)
        self.budgets.publish(ticket, rows)
        return {(str(r), str(g)): float(v) for r, g, v in rows}

    def budget_view(self) -> Remaining | None:
        """What was left of every budget at this process's last read of them (by a group
        commit that charged a budget, or :meth:`remaining_budgets`), if younger than
        ``budget_view_max_age``; else None. Spending by other processes since that read is
        not in it: use it only where a higher figure cannot change an answer (see
        :class:`~scarce.serve.writer.BudgetView`)."""
        return self.budgets.get()

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
            rec = DecisionRecord(*r)
            out[rec.event_id] = DecisionRecord(
                *r[:5],
                action=int(rec.action),
                probability=float(rec.probability),
                probabilities=rec.probabilities,
                model_version=int(rec.model_version),
                charges=rec.charges,
                ts=float(rec.ts),
                key_id=rec.key_id,
                info=rec.info,
                extras=rec.extras,
                action_value=rec.action_value,
                policy_version=None if rec.policy_version is None else int(rec.policy_version),
                shadow=rec.shadow,
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
        extras: dict[str, Any] | None = None,
        *,
        now: float,
        window: float,
        aggregation: str,
        key_id: str | None = None,
    ) -> str:
        """Store a reward. Returns its status:

        ``"duplicate"``: the same value, cost and extras were already stored (no-op);
        ``"late"``: after the event's window, or after the event was joined (stored, not learned);
        ``"ignored"``: a different reward while ``aggregation="earliest"`` already has one
        (stored, not learned); ``"accepted"``: will be learned.

        ``extras``: the feedback keywords of the policy (``{"model_rewards": 0.4}``, ...).
        ``key_id``: the caller's key; a decision made under another key is unknown to it.
        The rewards of one event are serialised by a row lock on its decision (PostgreSQL;
        SQLite write transactions are serial), so concurrent identical rewards are one
        ``accepted`` and the rest ``duplicate``. A decision that reserved part of a policy's
        own budget is settled by its reward (:mod:`scarce.serve.budgets`).

        Raises
        ------
        UnknownEventError
            when no decision was logged under ``event_id`` (by this key).
        RequestError
            when ``cost`` cannot settle the decision's reservation (field ``cost``).
        """
        return add_reward(
            self.db,
            event_id,
            value,
            cost,
            extras,
            now=now,
            window=window,
            aggregation=aggregation,
            key_id=key_id,
        )

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
        return join(
            self.db,
            now=now,
            window=window,
            aggregation=aggregation,
            default_reward=default_reward,
            weights=weights,
            limit=limit,
        )

    def joined_since(self, after_seq: int, limit: int = 10_000) -> list[JoinedEvent]:
        """Joined events with ``seq > after_seq`` in join order."""
        return joined_since(self.db, after_seq, limit, fix_sql=self.legacy_sql)

    # ------------------------------------------------------------------ snapshots
    def publish_snapshot(
        self,
        *,
        watermark: int,
        created_at: float,
        checksum: str,
        state_json: bytes,
        arrays_npz: bytes,
        policy_version: int = 1,
    ) -> tuple[int, str]:
        """Store a snapshot of policy version ``policy_version``; returns ``(version,
        checksum)`` (of the existing snapshot if that policy version has one at this
        watermark: replicas at the same watermark hold the same model)."""

        def unit(tx: Tx) -> tuple[int, str]:
            row = tx.one(
                "SELECT version, checksum FROM snapshots WHERE watermark = ? AND policy_version = ?",
                (watermark, policy_version),
            )
            if row is not None:
                return int(row[0]), str(row[1])
            version = int(tx.one("SELECT COALESCE(MAX(version), 0) FROM snapshots")[0]) + 1
            tx.execute(
                "INSERT INTO snapshots (version, watermark, created_at, checksum, state_json, "
                "arrays_npz, policy_version) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (version, watermark, created_at, checksum, state_json, arrays_npz, policy_version),
            )
            return version, checksum

        return self.run(unit, lock="exclusive")  # type: ignore[no-any-return]

    def latest_snapshot(
        self, *, with_data: bool = True, policy_version: int = 1
    ) -> Snapshot | None:
        """The snapshot of ``policy_version`` with the highest watermark, or None."""
        cols = "version, watermark, created_at, checksum" + (
            ", state_json, arrays_npz" if with_data else ""
        )
        if "snapshots.policy_version" in self.missing_columns():  # one policy's log
            if policy_version != 1:
                return None
            rows = self.query(f"SELECT {cols} FROM snapshots ORDER BY watermark DESC LIMIT 1")
        else:
            rows = self.query(
                f"SELECT {cols} FROM snapshots WHERE policy_version = ? "
                "ORDER BY watermark DESC LIMIT 1",
                (policy_version,),
            )
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

    def logged_rows(self, *, with_reward: bool = True) -> list[tuple[Any, ...]]:
        """Joined events in join order, as :data:`LOG_COLUMNS` tuples (the logged-bandit-data
        view that export and evaluation read); ``with_reward``: only the learned ones."""
        where = " WHERE j.reward IS NOT NULL" if with_reward else ""
        return self.query(
            self.legacy_sql(
                f"SELECT {LOG_SELECT} FROM joined_events j "
                f"JOIN decisions d ON d.event_id = j.event_id{where} ORDER BY j.seq"
            )
        )


#: the columns of :meth:`EventStore.logged_rows`
LOG_COLUMNS = (
    "event_id",
    "context",
    "action",
    "reward",
    "propensity",
    "timestamp",
    "group",
    "probabilities",
    "eligible",
    "policy_version",
    "joined_at",
    "seq",
    "value",
    "cost",
    "reward_extras",
    "extras",
    "info",
    "action_value",
    "shadow",
    "source",
    "model_version",
)
LOG_SELECT = (
    "d.event_id, d.context, d.action, j.reward, d.probability, d.ts, d.grp, d.probabilities, "
    "d.eligible, d.policy_version, j.joined_at, j.seq, j.value, j.cost, j.extras, d.extras, "
    "d.info, d.action_value, d.shadow, j.source, d.model_version"
)


__all__ = [
    "LOG_COLUMNS",
    "DecisionRecord",
    "EventStore",
    "JoinedEvent",
    "StoreError",
    "StoreUnavailableError",
    "UnknownEventError",
    "parse_db_url",
    "redact_url",
]
