"""The decision writer of the event store: decision units (one decision, or a batch) logged and
charged all or none, concurrent units committed together by one thread (group commit).

Each unit runs in its own savepoint, so one that fails changes nothing, and a group shares one
commit, i.e. one fsync; every caller is answered only after the commit that holds its unit.
On PostgreSQL a group of units of one decision and at most one charge each (the common case)
is one statement, the call of a function that logs them in order (see
:data:`~scarce.serve.schema.LOG_DECISIONS_PG`), which PostgreSQL commits by itself: one round
trip per group, and nothing to encode but one JSON document.

A group that charges a budget also reads every budget row back before its commit (in the same
statement on PostgreSQL) and publishes what it read to a :class:`BudgetView` once committed,
so the request path can decide without a read of its own (see :class:`BudgetView` for when it
may).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from scarce.serve.db import Database, Tx
from scarce.serve.schema import (
    BUDGET_EPS,
    CHARGE,
    INSERT_DECISION,
    LOG_DECISIONS_CALL,
    Unit,
)

_MAX_GROUP = 256  # most decision units committed together
BUDGET_ROWS = "SELECT resource, grp, remaining FROM budgets"

Remaining = dict[tuple[str, str], float]


class BudgetView:
    """What was left of every budget row at the last read of this process: the read of a
    group commit (after its charges) or a fresh read of the request path.

    A read takes a ticket and publishes with it; a read whose ticket is older than the one on
    show is dropped. A fresh read takes its ticket before it starts; a group commit takes its
    ticket once committed (its read holds its own charges, which no other read sees before
    the commit). So the view never goes back to an older state of this process's own
    charges. What other processes (replicas) spent since the read is not in
    it, and what was refunded since is not either: the view may be high by the first and
    low by the second. Its users rely on it only where that cannot change an answer (the
    service: while every action is affordable in it; a charge is a conditional ``UPDATE``
    anyway, so a budget is never overspent) and for ``max_age`` seconds at most.

    Parameters
    ----------
    max_age:
        seconds a read is used for (0: never; every request reads the database).
    """

    def __init__(self, max_age: float = 1.0) -> None:
        if not max_age >= 0:
            raise ValueError(f"max_age must be a number of seconds >= 0; got {max_age!r}")
        self.max_age = float(max_age)
        self._lock = threading.Lock()
        self._issued = 0
        self._shown = 0
        self._values: Remaining | None = None
        self._at = 0.0

    def ticket(self) -> tuple[int, float]:
        """``(order, monotonic time)`` of a read of the budget rows (see above for when)."""
        with self._lock:
            self._issued += 1
            return self._issued, time.monotonic()

    def publish(self, ticket: tuple[int, float], rows: Sequence[Any]) -> None:
        """Show the ``(resource, group, remaining)`` ``rows`` of the read that took ``ticket``
        (unless a later read is on show already)."""
        values = {(str(r), str(g)): float(v) for r, g, v in rows}
        with self._lock:
            if ticket[0] > self._shown:
                self._shown, self._at, self._values = ticket[0], ticket[1], values

    def get(self) -> Remaining | None:
        """A copy of the rows on show, or None when there are none younger than ``max_age``."""
        with self._lock:  # the rows and their time as one pair (publish sets both)
            values, at = self._values, self._at
        if values is None or not self.max_age or time.monotonic() - at > self.max_age:
            return None
        return dict(values)

    def clear(self) -> None:
        """Drop the rows on show, and the results of every read under way."""
        with self._lock:
            self._shown, self._values = self._issued, None


#: called with the results of submitted units (see :meth:`EventStore.submit_decisions`)
Callback = Callable[[list[Any]], None]


def _single_charge(unit: Unit) -> bool:
    return len(unit) == 1 and len(unit[0][1]) == 1


def _simple(unit: Unit) -> bool:
    """One decision with at most one charge (the units of one PostgreSQL function call)."""
    return len(unit) == 1 and len(unit[0][1]) <= 1


_CODES = ("inserted", "exists", "budget")  # of the PostgreSQL function's results


def _plain(value: Any) -> Any:
    """A numpy scalar in a record as the Python number it holds (for ``json.dumps``)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"a decision record holds a {type(value).__name__}, not a JSON value")


class _Abort(Exception):
    def __init__(self, result: str) -> None:
        self.result = result


class DecisionWriter:
    """Writes decision units to ``db``.

    Parameters
    ----------
    db:
        the database.
    group_commit:
        commit concurrent units together in a writer thread; False: each unit is committed
        on its own, in the caller's thread.
    view:
        where a group that charged a budget publishes the budget rows it read back (without
        group commit the view is cleared after each charge instead).
    in_caller:
        with ``group_commit``, commit each submitted group in the caller's thread instead of
        handing it to the writer thread: on an event loop, the units of one loop turn are one
        commit made on the loop itself (no thread hand-over and its wake-ups; the loop waits
        for the commit, with its fsync under ``synchronous=FULL``). SQLite only.
    """

    def __init__(
        self,
        db: Database,
        *,
        group_commit: bool = True,
        view: BudgetView | None = None,
        in_caller: bool = False,
    ) -> None:
        if in_caller and db.postgres:
            raise ValueError("in_caller commits are for SQLite (PostgreSQL waits on the network)")
        self.db = db
        self.group_commit = group_commit
        self.in_caller = bool(in_caller)
        self.view = view if view is not None else BudgetView()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Finish what is queued, then stop the writer thread."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=30)
            self._thread = None

    def insert_unit(self, unit: Unit) -> str:
        """Log decisions and charge their costs, all or none; return once committed.

        Returns ``"inserted"`` (all were logged and charged), ``"exists"`` (an event id is
        already logged; nothing changed) or ``"budget"`` (a charge would overspend; nothing
        changed).

        With ``group_commit`` (the default), concurrent units are committed together by one
        writer thread: each runs in its own savepoint (so one that fails changes nothing), and
        the batch shares one commit, i.e. one fsync.
        """
        done: Future[str] = Future()

        def resolve(results: list[str | BaseException]) -> None:
            if isinstance(results[0], BaseException):
                done.set_exception(results[0])
            else:
                done.set_result(results[0])

        self.submit([unit], resolve)
        return done.result()

    def submit(self, units: Sequence[Unit], on_done: Callback) -> None:
        """Hand decision units to the group-commit writer (one wake-up of its thread).
        ``on_done(results)`` is called once, from the writer thread, after the commit that
        holds them: ``results[i]`` is what :meth:`insert_unit` returns for ``units[i]``, or
        the exception that failed the commit (without ``group_commit`` each unit is
        committed here, in turn, and ``on_done`` is called before this returns)."""
        if not self.group_commit:
            results: list[str | BaseException] = []
            for unit in units:
                try:
                    results.append(
                        self.db.run(
                            lambda tx, unit=unit: self._insert_unit(tx, unit),
                            transaction=not (self.db.postgres and _simple(unit)),
                        )
                    )
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    results.append(exc)
                if any(charges for _, charges in unit):
                    self.view.clear()
            on_done(results)
            return
        if self.in_caller:
            self._commit_batch([(list(units), on_done)])
            return
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._write_loop, name="scarce-group-commit", daemon=True
                    )
                    self._thread.start()
        self._queue.put((list(units), on_done))

    @staticmethod
    def _insert_unit(tx: Tx, unit: Unit) -> str:
        if len(unit) == 1 and not unit[0][1]:
            # one uncharged decision: a single statement is atomic by itself, no savepoint
            return (
                "inserted" if tx.execute(INSERT_DECISION, unit[0][0].row()).rowcount else "exists"
            )
        if tx.postgres and _simple(unit):
            return DecisionWriter._log_simple(tx, [unit], False)[0][0]
        if _single_charge(unit):
            # one decision, one charge: two statements instead of four (no savepoint); a
            # short budget is undone by deleting the new row again, as on PostgreSQL
            rec, ((resource, group, amount),) = unit[0]
            if tx.execute(INSERT_DECISION, rec.row()).rowcount == 0:
                return "exists"
            if tx.execute(CHARGE, (amount, resource, group, amount - BUDGET_EPS)).rowcount != 1:
                tx.execute("DELETE FROM decisions WHERE event_id = ?", (rec.event_id,))
                return "budget"
            return "inserted"
        tx.execute("SAVEPOINT unit")
        try:
            for rec, charges in unit:
                if tx.execute(INSERT_DECISION, rec.row()).rowcount == 0:
                    raise _Abort("exists")
                for resource, group, amount in charges:
                    cur = tx.execute(CHARGE, (amount, resource, group, amount - BUDGET_EPS))
                    if cur.rowcount != 1:
                        raise _Abort("budget")
        except _Abort as abort:
            tx.execute("ROLLBACK TO SAVEPOINT unit")
            tx.execute("RELEASE SAVEPOINT unit")
            return abort.result
        tx.execute("RELEASE SAVEPOINT unit")
        return "inserted"

    @staticmethod
    def _log_simple(
        tx: Tx, units: Sequence[Unit], read_budgets: bool
    ) -> tuple[list[str], list[Any] | None]:
        """PostgreSQL: units of one decision and at most one charge each, in one statement
        (a call of :data:`~scarce.serve.schema.LOG_DECISIONS_PG`). Returns the results and,
        with ``read_budgets``, the budget rows ``(resource, group, remaining)`` read after
        the charges, in the same statement."""
        rows = []
        for unit in units:
            rec, charges = unit[0]
            if charges:
                ((resource, group, amount),) = charges
                rows.append((*rec.row(), resource, group, amount, amount - BUDGET_EPS))
            else:
                rows.append(rec.row())
        codes, resources, groups, remaining = tx.one(
            LOG_DECISIONS_CALL, (json.dumps(rows, default=_plain), read_budgets)
        )
        results = [_CODES[c] for c in codes]
        if not read_budgets:
            return results, None
        return results, list(zip(resources or (), groups or (), remaining or (), strict=True))

    def _write_group(
        self, tx: Tx, units: Sequence[Unit], read_budgets: bool
    ) -> tuple[list[str], list[Any] | None]:
        """Every unit of a group, and with ``read_budgets`` the budget rows after them."""
        if tx.postgres and units and all(_simple(u) for u in units):
            return self._log_simple(tx, units, read_budgets)
        results = self._insert_units(tx, units)
        return results, (tx.all(BUDGET_ROWS) if read_budgets else None)

    def _insert_units(self, tx: Tx, units: Sequence[Unit]) -> list[str]:
        """Every unit of a group in order (on PostgreSQL, runs of units of one decision and
        at most one charge in one statement each)."""
        results: list[str] = []
        i = 0
        while i < len(units):
            j = i
            while tx.postgres and j < len(units) and _simple(units[j]):
                j += 1
            if j > i:
                results.extend(self._log_simple(tx, units[i:j], False)[0])
                i = j
            else:
                results.append(self._insert_unit(tx, units[i]))
                i += 1
        return results

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:  # close()
                return
            batch = [first]
            size = len(first[0])
            while size < _MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
                size += len(item[0])
            self._commit_batch(batch)

    def _commit_batch(self, batch: list[tuple[list[Unit], Callback]]) -> None:
        """One commit of every unit of ``batch`` (``(units, on_done)`` pairs, in order), then
        each ``on_done`` with its units' results."""
        units = [u for units, _ in batch for u in units]
        charged = any(charges for unit in units for _, charges in unit)
        try:
            # on PostgreSQL a group of simple units (the common case) is one statement,
            # committed by itself: no BEGIN and COMMIT round trips
            results, rows = self.db.run(
                lambda tx, units=units, charged=charged: self._write_group(tx, units, charged),
                transaction=not (self.db.postgres and all(_simple(u) for u in units)),
            )
        except BaseException as exc:  # noqa: BLE001 - hand the failure to every waiter
            results, rows = [exc] * len(units), None
        if rows is not None:  # committed: newer than any read that started before
            self.view.publish(self.view.ticket(), rows)
        start = 0
        for submitted, on_done in batch:
            on_done(results[start : start + len(submitted)])
            start += len(submitted)
