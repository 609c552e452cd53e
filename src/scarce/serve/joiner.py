"""Rewards and the join: the units of work of the event store that take outcomes in and turn
decisions into joined events, in join order (the learning order).

A reward carries its value (a number or a vector), optionally the realised cost, and the
feedback keywords the policy declares (``model_rewards``, ``item_rewards``, ...: ``extras``).
A policy-ledger reservation (:mod:`scarce.serve.budgets`) is settled here: the cost is checked
against the decision's reservation and the rest is refunded, in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from scarce.serve.budgets import check_settlement, refunds
from scarce.serve.db import Database, Tx
from scarce.serve.schema import JoinedEvent, UnknownEventError
from scarce.serve.validation import RequestError

_REFUND = "UPDATE budgets SET remaining = remaining + ? WHERE resource = ? AND grp = ?"


def add_reward(
    db: Database,
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
    """Store a reward (see :meth:`scarce.serve.store.EventStore.add_reward`)."""
    value_json = json.dumps([float(v) for v in value])
    cost_json = None if cost is None else json.dumps([float(c) for c in cost])
    extras_json = json.dumps(extras, sort_keys=True) if extras else None
    doc: dict[str, Any] = {
        "value": json.loads(value_json),
        "cost": cost_json and json.loads(cost_json),
    }
    if extras:
        doc["extras"] = json.loads(extras_json)  # type: ignore[arg-type]
    payload = json.dumps(doc)
    lock_row = " FOR UPDATE" if db.postgres else ""

    def unit(tx: Tx) -> str:
        row = tx.one(
            f"SELECT ts, join_seq, key_id, charges FROM decisions WHERE event_id = ?{lock_row}",
            (event_id,),
        )
        if row is None or (key_id is not None and row[2] not in (None, key_id)):
            raise UnknownEventError(event_id)
        ts, join_seq, charges = float(row[0]), row[1], row[3]
        existing = tx.all(
            "SELECT payload, status, cost FROM rewards WHERE event_id = ?", (event_id,)
        )
        if any(p == payload for p, _, _ in existing):
            return "duplicate"
        if now > ts + window or (join_seq is not None and aggregation == "sum"):
            status = "late"
        elif join_seq is not None or (
            aggregation == "earliest" and any(s == "accepted" for _, s, _ in existing)
        ):
            status = "ignored"
        else:
            status = "accepted"
        settled = None
        if aggregation == "sum" and status == "accepted":
            costs = [json.loads(c) for _, s, c in existing if s == "accepted" and c is not None]
            settled = [sum(col) for col in zip(*costs, strict=True)] if costs else None
        try:
            check_settlement(charges, cost, settled)
        except ValueError as exc:
            raise RequestError("cost", str(exc)) from None
        tx.execute(
            "INSERT INTO rewards (event_id, n, payload, value, cost, received_at, status, "
            "pending, extras) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                len(existing) + 1,
                payload,
                value_json,
                cost_json,
                now,
                status,
                1 if status == "accepted" else 0,
                extras_json,
            ),
        )
        if status == "accepted" and aggregation == "earliest":
            # the cost of the event is final: settle its reservation now
            for resource, group, amount in refunds(charges, cost):
                tx.execute(_REFUND, (amount, resource, group))
        return status

    return str(db.run(unit, lock="shared"))


def _sum_extras(docs: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Feedback keywords of several rewards added up (numbers and equal-length lists), the
    first reward's where they cannot be."""
    present = [d for d in docs if d]
    if not present:
        return None
    out = dict(present[0])
    for key in out:
        vals = [d.get(key) for d in present]
        try:
            if all(isinstance(v, (int, float)) for v in vals):
                out[key] = float(sum(vals))  # type: ignore[arg-type]
            elif all(isinstance(v, list) for v in vals):
                out[key] = [float(sum(col)) for col in zip(*vals, strict=True)]
        except (TypeError, ValueError):
            pass
    return out


def join(
    db: Database,
    *,
    now: float,
    window: float,
    aggregation: str,
    default_reward: float | None,
    weights: Sequence[float],
    limit: int = 10_000,
) -> int:
    """Join decisions with their rewards (see :meth:`scarce.serve.store.EventStore.join`)."""

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
                "SELECT value, cost, extras FROM rewards WHERE event_id = ? AND status = 'accepted' "
                "ORDER BY n",
                (eid,),
            )
            value, cost, extras, reward, source = None, None, None, None, "none"
            if rows:
                vecs = [json.loads(v) for v, _, _ in rows]
                costs = [json.loads(c) if c is not None else None for _, c, _ in rows]
                docs = [json.loads(x) if x is not None else None for _, _, x in rows]
                if aggregation == "earliest":
                    agg, agg_cost, agg_extras = vecs[0], costs[0], docs[0]
                else:
                    agg = [sum(col) for col in zip(*vecs, strict=True)]
                    present = [c for c in costs if c is not None]
                    agg_cost = [sum(col) for col in zip(*present, strict=True)] if present else None
                    agg_extras = _sum_extras(docs)
                value = json.dumps(agg)
                cost = None if agg_cost is None else json.dumps(agg_cost)
                extras = None if not agg_extras else json.dumps(agg_extras, sort_keys=True)
                reward = float(sum(w * v for w, v in zip(weights, agg, strict=True)))
                source = "reward"
                if aggregation == "sum" and agg_cost is not None:
                    charges = tx.one("SELECT charges FROM decisions WHERE event_id = ?", (eid,))[0]
                    for resource, group, amount in refunds(charges, agg_cost):
                        tx.execute(_REFUND, (amount, resource, group))
            elif default_reward is not None:
                reward, source = float(default_reward), "default"
            seq += 1
            tx.execute(
                "INSERT INTO joined_events (seq, event_id, reward, value, cost, source, joined_at, "
                "extras) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, eid, reward, value, cost, source, now, extras),
            )
            tx.execute("UPDATE decisions SET join_seq = ? WHERE event_id = ?", (seq, eid))
            tx.execute("UPDATE rewards SET pending = 0 WHERE event_id = ? AND pending = 1", (eid,))
        return len(order)

    return int(db.run(unit, lock="exclusive"))


def joined_since(
    db: Database,
    after_seq: int,
    limit: int = 10_000,
    fix_sql: Callable[[str], str] | None = None,
) -> list[JoinedEvent]:
    """Joined events with ``seq > after_seq`` in join order, with what their decision knew
    and what came with their reward (``fix_sql``: adapts the statement to an older log)."""
    sql = (
        "SELECT j.seq, j.event_id, d.context, d.action, j.reward, j.value, j.cost, d.info, "
        "d.extras, d.action_value, j.extras FROM joined_events j "
        "JOIN decisions d ON d.event_id = j.event_id WHERE j.seq > ? ORDER BY j.seq LIMIT ?"
    )
    rows = db.query(sql if fix_sql is None else fix_sql(sql), (after_seq, limit))
    return [
        JoinedEvent(
            int(r[0]),
            r[1],
            r[2],
            int(r[3]),
            None if r[4] is None else float(r[4]),
            value=r[5],
            cost=r[6],
            info=r[7],
            extras=r[8],
            action_value=r[9],
            reward_extras=r[10],
        )
        for r in rows
    ]
