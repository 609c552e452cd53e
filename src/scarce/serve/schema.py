"""The event store's tables and the records read from and written to them (one schema for
SQLite and PostgreSQL: plain SQL that both accept)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

#: slack for float budget comparisons (costs are sums of config numbers)
BUDGET_EPS = 1e-9

SCHEMA = """
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
    join_seq BIGINT,
    key_id TEXT,
    info TEXT,
    extras TEXT,
    action_value TEXT,
    policy_version BIGINT,
    shadow TEXT
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
    extras TEXT,
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
    joined_at DOUBLE PRECISION NOT NULL,
    extras TEXT
);
CREATE TABLE IF NOT EXISTS cohorts (
    round BIGINT PRIMARY KEY,
    cohort_id TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    keywords TEXT,
    model_version BIGINT NOT NULL,
    policy_version BIGINT NOT NULL,
    key_id TEXT,
    ts DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantined_events (
    seq BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL,
    error TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
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
    watermark BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    checksum TEXT NOT NULL,
    state_json {blob} NOT NULL,
    arrays_npz {blob} NOT NULL,
    policy_version BIGINT NOT NULL DEFAULT 1,
    UNIQUE (policy_version, watermark)
);
CREATE TABLE IF NOT EXISTS policy_versions (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS promotions (
    seq BIGINT PRIMARY KEY,
    version BIGINT NOT NULL REFERENCES policy_versions (version),
    previous BIGINT,
    at DOUBLE PRECISION NOT NULL,
    key_id TEXT,
    note TEXT
)
"""

#: columns added to tables of logs written by earlier versions (``ALTER TABLE ... ADD COLUMN``)
ADDED_COLUMNS = {
    "decisions": (
        ("key_id", "TEXT"),
        ("info", "TEXT"),
        ("extras", "TEXT"),
        ("action_value", "TEXT"),
        ("policy_version", "BIGINT"),
        ("shadow", "TEXT"),
    ),
    "rewards": (("extras", "TEXT"),),
    "joined_events": (("extras", "TEXT"),),
}
#: a snapshot table of an earlier version (one policy, unique watermarks) is rebuilt into this
SNAPSHOTS_MIGRATION = (
    "CREATE TABLE snapshots_v2 (version BIGINT PRIMARY KEY, watermark BIGINT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, checksum TEXT NOT NULL, state_json {blob} NOT NULL, "
    "arrays_npz {blob} NOT NULL, policy_version BIGINT NOT NULL DEFAULT 1, "
    "UNIQUE (policy_version, watermark));"
    "INSERT INTO snapshots_v2 (version, watermark, created_at, checksum, state_json, arrays_npz, "
    "policy_version) SELECT version, watermark, created_at, checksum, state_json, arrays_npz, 1 "
    "FROM snapshots;"
    "DROP TABLE snapshots;"
    "ALTER TABLE snapshots_v2 RENAME TO snapshots"
)

DECISION_COLUMNS = (
    "event_id, fingerprint, context, eligible, grp, action, probability, probabilities, "
    "model_version, charges, ts, key_id, info, extras, action_value, policy_version, shadow"
)
_N_DECISION_COLUMNS = DECISION_COLUMNS.count(",") + 1
INSERT_DECISION = (
    f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES "
    f"({', '.join(['?'] * _N_DECISION_COLUMNS)}) ON CONFLICT (event_id) DO NOTHING"
)
#: PostgreSQL: a function that logs a group of units of one decision and at most one charge
#: each, in order, as :class:`~scarce.serve.writer.DecisionWriter` does statement by statement
#: (a unit whose event id is logged already changes nothing; a short budget deletes the new row
#: again), so that a group is one statement, i.e. one round trip, committed by itself.
#: ``units``: a JSON array of ``[*DecisionRecord.row(), resource, grp, amount, amount - eps]``
#: (the charge fields null for a unit without a charge). Returns a code per unit (0 inserted,
#: 1 exists, 2 budget) and, with ``read_budgets``, every budget row after the charges.
#: The name carries a version: a changed body gets a new name, so that services of two
#: versions can share one database while they are rolled over.
LOG_DECISIONS_FUNCTION = "scarce_log_decisions_v1"
_CASTS = (
    "text", "text", "text", "text", "text", "bigint", "double precision", "text", "bigint",
    "text", "double precision", "text", "text", "text", "text", "bigint", "text",
)  # fmt: skip
LOG_DECISIONS_PG = f"""
CREATE OR REPLACE FUNCTION {LOG_DECISIONS_FUNCTION}(
    units jsonb, read_budgets boolean, OUT codes smallint[], OUT budget_resources text[],
    OUT budget_groups text[], OUT budget_remaining double precision[]
) LANGUAGE plpgsql AS $body$
DECLARE
    u jsonb;
    n bigint;
BEGIN
    codes := '{{}}';
    FOR u IN SELECT jsonb_array_elements(units) LOOP
        INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (
            {", ".join(f"(u->>{i})::{c}" for i, c in enumerate(_CASTS))}
        ) ON CONFLICT (event_id) DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            codes := codes || 1::smallint;
            CONTINUE;
        END IF;
        IF u->>{len(_CASTS)} IS NOT NULL THEN
            UPDATE budgets SET remaining = remaining - (u->>{len(_CASTS) + 2})::double precision
            WHERE resource = u->>{len(_CASTS)} AND grp = u->>{len(_CASTS) + 1}
                AND remaining >= (u->>{len(_CASTS) + 3})::double precision;
            IF NOT FOUND THEN
                DELETE FROM decisions WHERE event_id = u->>0;
                codes := codes || 2::smallint;
                CONTINUE;
            END IF;
        END IF;
        codes := codes || 0::smallint;
    END LOOP;
    IF read_budgets THEN
        SELECT array_agg(b.resource), array_agg(b.grp), array_agg(b.remaining)
        INTO budget_resources, budget_groups, budget_remaining FROM budgets b;
    END IF;
END
$body$"""
#: the call of :data:`LOG_DECISIONS_PG`: ``(units JSON, read_budgets)``
LOG_DECISIONS_CALL = f"SELECT * FROM {LOG_DECISIONS_FUNCTION}(%s::jsonb, %s)"
CHARGE = (
    "UPDATE budgets SET remaining = remaining - ? WHERE resource = ? AND grp = ? AND remaining >= ?"
)

Charges = Sequence[tuple[str, str, float]]


class UnknownEventError(KeyError):
    """No decision was logged under this event id (for this key)."""


class DecisionRecord(NamedTuple):
    """One logged decision (JSON-encoded fields are kept as text). ``key_id``: the API key
    (tenant) that made it; None when the service runs without keys. ``info``: the policy's
    ``Decision.info`` of the case; ``extras``: the decision-time keywords of the request
    (``groups``, ...); ``action_value``: a structured action (``"levels"`` policies; their
    ``action`` is -1); ``policy_version``: the policy version that decided; ``shadow``: every
    shadow policy's choice."""

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
    key_id: str | None = None
    info: str | None = None
    extras: str | None = None
    action_value: str | None = None
    policy_version: int | None = None
    shadow: str | None = None

    def row(self) -> tuple[Any, ...]:
        """The record's values in :data:`DECISION_COLUMNS` order (the fields' order)."""
        return tuple(self)


#: decisions logged together, all or none: ``(record, charges)`` pairs
Unit = Sequence[tuple[DecisionRecord, Charges]]


@dataclass(frozen=True)
class JoinedEvent:
    """A decision joined with its (aggregated) reward, in join order ``seq``.

    ``reward``: the learned scalar (None: nothing to learn); ``value``: the aggregated reward
    as given (JSON list; a vector policy learns it); ``cost``: the realised cost (JSON list);
    ``info``, ``extras``, ``action_value``: the decision's (see :class:`DecisionRecord`);
    ``reward_extras``: the feedback keywords that came with the reward (JSON object)."""

    seq: int
    event_id: str
    context: str
    action: int
    reward: float | None
    value: str | None = None
    cost: str | None = None
    info: str | None = None
    extras: str | None = None
    action_value: str | None = None
    reward_extras: str | None = None
