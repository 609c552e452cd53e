"""The decision writer on both backends: a group of units gives the same answers and leaves
the same log and budgets on SQLite and PostgreSQL, where a group of units of one decision
and at most one charge each is one statement (one round trip, committed by itself)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from scarce.serve.db import Tx
from scarce.serve.schema import DecisionRecord
from scarce.serve.store import EventStore

pytest.importorskip("psycopg")


def _rec(event_id: str) -> DecisionRecord:
    return DecisionRecord(
        event_id=event_id,
        fingerprint="f",
        context="[1.0, 2.0]",
        eligible=None,
        group=None,
        action=1,
        probability=0.25,
        probabilities="[0.75, 0.25]",
        model_version=3,
        charges=None,
        ts=1234567890.123456,
        info='{"note": "é\\u00e9\\"x"}',
    )


def _submit(store: EventStore, units: list[Any]) -> list[Any]:
    """``units`` handed to the writer at once (one group); their results once committed."""
    done = threading.Event()
    out: list[Any] = []

    def on_done(results: list[Any]) -> None:
        out.extend(results)
        done.set()

    store.submit_decisions(units, on_done)
    assert done.wait(30)
    return out


def _open(url: str, *, group_commit: bool = True) -> EventStore:
    store = EventStore(url, group_commit=group_commit)
    store.initialize("f", [("slots", "", 3.0), ("slots", "vip", 1.0)])
    return store


SIMPLE = [
    [(_rec("a"), [("slots", "", 2.0)])],  # inserted, 1 left
    [(_rec("a"), [("slots", "", 1.0)])],  # logged already: nothing charged
    [(_rec("b"), [("slots", "", 2.0)])],  # short: not logged
    [(_rec("c"), [])],  # no charge
    [(_rec("d"), [("slots", "", 1.0)])],  # fits after b was refused: 0 left
    [(_rec("e"), [("slots", "vip", 0.5)])],  # another row
]
SIMPLE_RESULTS = ["inserted", "exists", "budget", "inserted", "inserted", "inserted"]


@pytest.mark.parametrize("group_commit", [True, False])
def test_a_group_of_simple_units_in_order(db_url: str, group_commit: bool):
    store = _open(db_url, group_commit=group_commit)
    try:
        assert _submit(store, SIMPLE) == SIMPLE_RESULTS
        rows = store.query("SELECT event_id, context, probability, ts, info FROM decisions")
        assert sorted(r[0] for r in rows) == ["a", "c", "d", "e"]
        rec = _rec("x")
        assert all(tuple(r[1:]) == (rec.context, rec.probability, rec.ts, rec.info) for r in rows)
        left = {(r, g): v for r, g, _, v in store.budget_rows()}
        assert left == {("slots", ""): 0.0, ("slots", "vip"): 0.5}
        if group_commit:  # the group read the budget rows back with its charges
            assert store.writer.view.get() == left
    finally:
        store.close()


def test_a_group_with_a_batch_keeps_each_unit_all_or_none(db_url: str):
    store = _open(db_url)
    try:
        batch = [(_rec("p"), [("slots", "", 1.0)]), (_rec("q"), [("slots", "", 5.0)])]
        pair = [(_rec("r"), [("slots", "", 1.0)]), (_rec("s"), [("slots", "vip", 1.0)])]
        results = _submit(store, [SIMPLE[0], batch, SIMPLE[3], pair, SIMPLE[1]])
        assert results == ["inserted", "budget", "inserted", "inserted", "exists"]
        logged = sorted(r[0] for r in store.query("SELECT event_id FROM decisions"))
        assert logged == ["a", "c", "r", "s"]
        left = {(r, g): v for r, g, _, v in store.budget_rows()}
        assert left == {("slots", ""): 0.0, ("slots", "vip"): 0.0}
    finally:
        store.close()


def test_numpy_numbers_in_a_record_are_logged_as_numbers_on_postgres(pg_server):
    """psycopg adapts numpy scalars; the JSON document of a group must take them too."""
    store = _open(pg_server.new_database())
    try:
        rec = _rec("n")._replace(action=np.int64(2), probability=np.float32(0.5))
        assert _submit(store, [[(rec, [("slots", "", np.float64(1.0))])]]) == ["inserted"]
        assert store.query("SELECT action, probability FROM decisions") == [(2, 0.5)]
    finally:
        store.close()


def test_postgres_group_is_one_statement(pg_server, monkeypatch: pytest.MonkeyPatch):
    store = _open(pg_server.new_database())
    try:
        _submit(store, SIMPLE[:1])  # connect and warm up
        statements: list[str] = []
        runs: list[dict[str, Any]] = []
        execute, run = Tx.execute, store.db.run

        def counted_execute(self: Tx, sql: str, params: Any = ()) -> Any:
            statements.append(sql)
            return execute(self, sql, params)

        def counted_run(*args: Any, **kwargs: Any) -> Any:
            runs.append(kwargs)
            return run(*args, **kwargs)

        monkeypatch.setattr(Tx, "execute", counted_execute)
        monkeypatch.setattr(store.db, "run", counted_run)
        assert _submit(store, SIMPLE[1:]) == SIMPLE_RESULTS[1:]
        assert len(statements) == 1 and runs == [{"transaction": False}]
    finally:
        store.close()


def test_commit_in_caller_gives_the_same_answers_and_log(tmp_path):
    """SQLite ``commit_in_caller``: the group is committed in the submitting thread (no writer
    thread), with the answers, log and budgets of the writer thread's commit."""
    store = EventStore(tmp_path / "inline.db", commit_in_caller=True)
    store.initialize("f", [("slots", "", 3.0), ("slots", "vip", 1.0)])
    try:
        out: list[Any] = []
        store.submit_decisions(SIMPLE, out.extend)  # answered before it returns
        assert out == SIMPLE_RESULTS
        assert store.writer._thread is None
        logged = sorted(r[0] for r in store.query("SELECT event_id FROM decisions"))
        assert logged == ["a", "c", "d", "e"]
        left = {(r, g): v for r, g, _, v in store.budget_rows()}
        assert left == {("slots", ""): 0.0, ("slots", "vip"): 0.5}
        assert store.writer.view.get() == left
        assert store.insert_unit([(_rec("f"), [("slots", "vip", 1.0)])]) == "budget"
        assert store.insert_unit([(_rec("f"), [("slots", "vip", 0.5)])]) == "inserted"
    finally:
        store.close()


def test_commit_in_caller_is_refused_on_postgres(pg_server):
    with pytest.raises(ValueError, match="SQLite"):
        EventStore(pg_server.new_database(), commit_in_caller=True)
