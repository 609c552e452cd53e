"""The budget view: what the group commit read back of the budget rows stands in for a read of
the request path while every action is affordable in it. Budgets are never overspent with
it (two replicas, one spending under the other's stale view), it never changes a decision of
a single process (against a service that reads every time), refunds by others are seen when
they matter, and PostgreSQL reads of the event-loop path run off the loop."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from servetools import FakeClock, make_config

from scarce.serve import BudgetExhaustedError, DecisionService, EventStore
from scarce.serve.writer import BudgetView

ALL_COST_ONE = {"beds": {"total": 3.0, "costs": [1.0, 1.0, 1.0]}}


def _service(url, clock, max_age=3600.0, **overrides):
    store = EventStore(url, budget_view_max_age=max_age)
    return DecisionService(make_config(**overrides), store, clock=clock)


def _count_reads(monkeypatch, store: EventStore) -> list[str]:
    """Record the thread of every fresh read of the budget rows."""
    reads: list[str] = []
    read = store.remaining_budgets

    def counted():
        reads.append(threading.current_thread().name)
        return read()

    monkeypatch.setattr(store, "remaining_budgets", counted)
    return reads


def test_view_keeps_the_latest_read_and_expires():
    view = BudgetView(max_age=60.0)
    assert view.get() is None
    older, newer = view.ticket(), view.ticket()
    view.publish(newer, [("r", "", 5.0)])
    view.publish(older, [("r", "", 9.0)])  # started before the one on show: dropped
    assert view.get() == {("r", ""): 5.0}
    under_way = view.ticket()
    view.clear()
    view.publish(under_way, [("r", "", 7.0)])  # started before the clear: dropped
    assert view.get() is None
    view.publish(view.ticket(), [("r", "g", 2.0)])
    got = view.get()
    got[("r", "g")] = -1.0  # a copy: the caller may spend from it
    assert view.get() == {("r", "g"): 2.0}
    assert BudgetView(max_age=0.0).get() is None
    short = BudgetView(max_age=0.05)
    short.publish(short.ticket(), [("r", "", 1.0)])
    time.sleep(0.1)
    assert short.get() is None
    with pytest.raises(ValueError, match="max_age"):
        BudgetView(max_age=-1.0)


def test_group_commit_publishes_what_is_left(db_url, clock, monkeypatch):
    """Each decision's commit reads the budget rows back, so the next decision reads nothing
    itself (one read in all: the first decision's), on both engines."""
    budgets = {"beds": {"total": 10.0, "costs": [1.0, 2.0, 1.0]}}
    svc = _service(db_url, clock, type="Random", budgets=budgets, quotas={"beds": {"g": 5.0}})
    reads = _count_reads(monkeypatch, svc.store)
    spent = {"": 0.0, "g": 0.0}
    for i in range(4):
        r = svc.decide([float(i), 1.0], event_id=f"e{i}", group="g" if i % 2 else None)
        cost = budgets["beds"]["costs"][r.action]
        spent[""] += cost
        spent["g"] += cost if i % 2 else 0.0
        want = {("beds", ""): 10.0 - spent[""], ("beds", "g"): 5.0 - spent["g"]}
        assert svc.store.budget_view() == pytest.approx(want)
    assert len(reads) == 1
    svc.store.close()


def test_view_off_reads_every_time(tmp_path, clock, monkeypatch):
    svc = _service(tmp_path / "a.db", clock, max_age=0.0, type="Random", budgets=ALL_COST_ONE)
    reads = _count_reads(monkeypatch, svc.store)
    for i in range(3):
        svc.decide([float(i), 1.0], event_id=f"e{i}")
    assert len(reads) == 3
    svc.store.close()


def test_spending_by_another_replica_under_a_stale_view_never_overspends(db_url, clock):
    """Replica A's view says 2 left after its decision; replica B then spends both. A's next
    decision (its view still says 2) is refused by the conditional charge, read again and
    answered 409; nothing is overspent."""
    a = _service(db_url, clock, type="Random", budgets=ALL_COST_ONE)
    b = _service(db_url, clock, type="Random", budgets=ALL_COST_ONE)
    a.decide([0.0, 1.0], event_id="a0")
    b.decide([1.0, 1.0], event_id="b0")
    b.decide([2.0, 1.0], event_id="b1")
    assert a.store.budget_view() == {("beds", ""): 2.0}  # stale: B spent it
    with pytest.raises(BudgetExhaustedError):
        a.decide([3.0, 1.0], event_id="a1")
    assert [row[3] for row in a.store.budget_rows()] == [0.0]
    assert a.store.counts()["decisions"] == 3
    assert a.store.budget_view() == {("beds", ""): 0.0}  # the refused charge read it again
    a.store.close()
    b.store.close()


def test_stale_view_with_budget_left_still_decides(db_url, clock):
    budgets = {"beds": {"total": 4.0, "costs": [1.0, 1.0, 1.0]}}
    a = _service(db_url, clock, type="Random", budgets=budgets)
    b = _service(db_url, clock, type="Random", budgets=budgets)
    a.decide([0.0, 1.0], event_id="a0")  # A's view: 3 left
    b.decide([1.0, 1.0], event_id="b0")
    b.decide([2.0, 1.0], event_id="b1")  # 1 left
    a.decide([3.0, 1.0], event_id="a1")  # A's stale view said 3: the charge of 1 fits
    with pytest.raises(BudgetExhaustedError):
        a.decide([4.0, 1.0], event_id="a2")
    assert [row[3] for row in a.store.budget_rows()] == [0.0]
    a.store.close()
    b.store.close()


def test_a_refund_by_another_process_is_seen_when_it_matters(db_url, clock):
    """A view that shows too little (another replica refunded since) is never trusted to
    refuse: the service reads again."""
    budgets = {"beds": {"total": 1.0, "costs": [1.0, 1.0, 1.0]}}
    a = _service(db_url, clock, type="Random", budgets=budgets)
    a.decide([0.0, 1.0], event_id="a0")
    assert a.store.budget_view() == {("beds", ""): 0.0}
    other = EventStore(db_url)  # a refund of another replica
    other.run(lambda tx: tx.execute("UPDATE budgets SET remaining = remaining + 1"))
    other.close()
    a.decide([1.0, 1.0], event_id="a1")
    assert [row[3] for row in a.store.budget_rows()] == [0.0]
    a.store.close()


@settings(max_examples=12, deadline=None)
@given(
    costs=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5]), min_size=3, max_size=3),
    total=st.sampled_from([0.0, 1.0, 3.0, 7.5]),
    quota=st.sampled_from([0.0, 1.0, 2.0]),
    groups=st.lists(st.sampled_from(["q", "free", None]), min_size=1, max_size=20),
    batch=st.integers(1, 3),
)
def test_the_view_never_changes_a_decision(costs, total, quota, groups, batch):
    """One process: the same answers, log and budgets with the view as with a read of the
    database for every request (singles and batches, budgets running out, quotas)."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            "type": "EpsilonGreedy",
            "epsilon": 0.5,
            "budgets": {"r": {"total": total, "costs": costs}},
            "quotas": {"r": {"q": quota}},
        }
        out = []
        for max_age in (3600.0, 0.0):
            svc = _service(Path(tmp) / f"{max_age}.db", FakeClock(), max_age, **overrides)
            answers = []
            for i in range(0, len(groups), batch):
                reqs = [
                    {"context": [float(j), 1.0], "group": g, "event_id": f"e{j}"}
                    for j, g in enumerate(groups[i : i + batch], start=i)
                ]
                try:
                    answers.append(svc.decide_batch(reqs))
                except BudgetExhaustedError as exc:
                    answers.append(exc.field)
            log = svc.store.query("SELECT event_id, action, probabilities, charges FROM decisions")
            out.append((answers, sorted(log), svc.store.budget_rows()))
            svc.store.close()
        assert out[0] == out[1]


def test_decide_async_reads_postgres_off_the_loop_and_never_overspends(db_url, clock, monkeypatch):
    """Many concurrent ``decide_async`` calls against a small budget: at most the budget is
    spent, the refusals come only once nothing affordable is left, and on PostgreSQL every
    read of the budget rows ran in a worker thread, not on the event loop."""
    budgets = {"beds": {"total": 10.0, "costs": [1.0, 2.0, 1.0]}}
    svc = _service(db_url, clock, type="Random", budgets=budgets)
    reads = _count_reads(monkeypatch, svc.store)
    X = np.random.default_rng(0).normal(size=(40, 2))

    async def many() -> list:
        async def one(i: int):
            try:
                return (await svc.decide_async(X[i].tolist(), event_id=f"e{i}")).action
            except BudgetExhaustedError:
                return None

        return await asyncio.gather(*(one(i) for i in range(len(X))))

    loop_thread = threading.current_thread().name
    actions = asyncio.run(many())
    spent = sum(budgets["beds"]["costs"][a] for a in actions if a is not None)
    (_, _, _, remaining) = svc.store.budget_rows()[0]
    assert spent <= 10.0 and remaining == pytest.approx(10.0 - spent)
    assert remaining < 1.0 and None in actions
    charges = svc.store.query("SELECT charges FROM decisions")
    assert sum(c for (ch,) in charges for _, _, c in json.loads(ch)) == pytest.approx(spent)
    assert reads
    if svc.store.postgres:
        assert loop_thread not in reads
    svc.store.close()


def test_synchronous_commit_can_be_set_through_the_url(pg_server, clock):
    """The trade-off of the deployment page: ``options=-c synchronous_commit=off`` in the URL
    reaches the store's connections, and decisions are logged and charged as before."""
    url = pg_server.new_database() + "?options=-c%20synchronous_commit%3Doff"
    svc = _service(url, clock, type="Random", budgets=ALL_COST_ONE)
    svc.decide([0.0, 1.0], event_id="e0")
    assert svc.store.query("SHOW synchronous_commit") == [("off",)]
    assert [row[3] for row in svc.store.budget_rows()] == [2.0]
    svc.store.close()
