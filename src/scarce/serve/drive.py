"""Running a decision unit's logic against the event store, from a thread or an event loop.

The logic of a decision (:meth:`DecisionService._steps <scarce.serve.service.DecisionService>`)
is a generator without I/O: it yields the decision units to log (and receives their result:
``"inserted"``, ``"exists"`` or ``"budget"``) and the reads of the store it needs
(zero-argument callables; it receives what they return). A :class:`UnitDriver` performs them:
:meth:`~UnitDriver.run` blocking, :meth:`~UnitDriver.run_async` on an event loop, where the
units of one loop turn go to the group-commit writer together and PostgreSQL reads run in a
worker thread (SQLite reads are local and short: inline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

from scarce.serve.schema import Unit
from scarce.serve.store import EventStore

#: a decision's logic: yields units to log or reads of the store; returns its answers
Steps = Generator[Unit | Callable[[], Any], Any, Any]


def _settle(futures: list[asyncio.Future[str]], results: list[Any]) -> None:
    for fut, result in zip(futures, results, strict=True):
        if fut.done():  # the request was cancelled (client gone)
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)


class UnitDriver:
    """Performs the steps of decision units on ``store`` (an :class:`EventStore`)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        # units of run_async waiting for the next event-loop turn (loop thread only)
        self._to_submit: list[tuple[Any, asyncio.Future[str]]] = []

    def run(self, steps: Steps) -> Any:
        """Run ``steps`` to the end in this thread; return what it returns."""
        try:
            step = next(steps)
            while True:
                if callable(step):
                    step = steps.send(step())
                else:
                    step = steps.send(self.store.insert_unit(step))
        except StopIteration as done:
            return done.value

    async def run_async(self, steps: Steps) -> Any:
        """Run ``steps`` to the end on the running event loop: commits and PostgreSQL reads
        are awaited, not waited for."""
        try:
            step = next(steps)
            while True:
                if callable(step):  # PostgreSQL reads wait on the network: off the loop
                    result = await asyncio.to_thread(step) if self.store.postgres else step()
                    step = steps.send(result)
                else:
                    step = steps.send(await self._commit(step))
        except StopIteration as finished:
            return finished.value

    def _commit(self, unit: Unit) -> asyncio.Future[str]:
        # the units made in one turn of the event loop go to the writer together (one
        # hand-over, one wake-up of its thread) at the start of the next turn, and come back
        # together (one wake-up of the loop per commit)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        self._to_submit.append((unit, done))
        if len(self._to_submit) == 1:
            loop.call_soon(self._submit_pending)
        return done

    def _submit_pending(self) -> None:
        items, self._to_submit = self._to_submit, []
        loop = asyncio.get_running_loop()
        futures = [f for _, f in items]

        def resolve(results: list[Any]) -> None:  # in the writer thread
            loop.call_soon_threadsafe(_settle, futures, results)

        self.store.submit_decisions([u for u, _ in items], resolve)
