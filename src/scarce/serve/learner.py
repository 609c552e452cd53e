"""The log-ordered learner: joined events applied one at a time, in join order, with a
quarantine for the events a model cannot learn.

An event is *quarantined* when its update raises or leaves the model with a non-finite number
(or with numbers so large that their sum overflows):
the model goes on from its state before that event, as if it had not been joined. The verdict
depends only on the model's state and the event, so every replica and ``scarce replay`` reach
the same one, and models stay bit-identical across them. Updates run on a copy of the model,
so the model that serves decisions is never seen half-updated.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scarce.core.policy import Policy
from scarce.serve.config import ServiceConfig
from scarce.serve.schema import JoinedEvent
from scarce.serve.store import EventStore


def event_input(context_json: str) -> np.ndarray:
    """The policy input ``(1, d)`` or ``(1, K, d)`` of a logged context."""
    return np.asarray(json.loads(context_json), dtype=np.float64)[None, ...]


def _finite(state: Any) -> bool:
    """Whether every number in a saved-state tree is finite. (An array's sum is finite iff
    its entries are, short of an overflow of the sum itself, which is as bad a sign; one sum
    costs less than an elementwise test.)"""
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            if item.dtype.kind in "fc" and not math.isfinite(abs(item.sum())):
                return False
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return False
    return True


def _learn_one(policy: Policy, ev: JoinedEvent) -> None:
    policy.update(event_input(ev.context), np.array([ev.action]), np.array([ev.reward]))
    if not _finite(policy._get_state()):
        raise FloatingPointError("the update left a non-finite number in the model")


def learn_events(
    copy_of_model: Callable[[], Policy], events: Sequence[JoinedEvent]
) -> tuple[Policy, list[tuple[JoinedEvent, str]]]:
    """The model after learning ``events`` (in order), and the events it could not learn.

    Parameters
    ----------
    copy_of_model:
        returns a fresh copy of the model before ``events`` (it is called once, and once more
        after each quarantined event); the caller's model is never modified.
    events:
        joined events in join order; those without a reward are skipped.

    Returns
    -------
    (model, quarantined):
        the new model and ``(event, reason)`` of each quarantined event.
    """
    with np.errstate(all="ignore"):  # overflow is judged on the result, not warned about
        return _learn_events(copy_of_model, events)


def _learn_events(
    copy_of_model: Callable[[], Policy], events: Sequence[JoinedEvent]
) -> tuple[Policy, list[tuple[JoinedEvent, str]]]:
    work = copy_of_model()
    good: list[JoinedEvent] = []
    quarantined: list[tuple[JoinedEvent, str]] = []
    for ev in events:
        if ev.reward is None:
            continue
        try:
            _learn_one(work, ev)
        except Exception as exc:  # noqa: BLE001 - any failure of the model quarantines the event
            quarantined.append((ev, f"{type(exc).__name__}: {exc}"))
            # the model before this event: a fresh copy with the good events applied again
            # (updates are deterministic, so this is the state before the failed update)
            work = copy_of_model()
            for g in good:
                _learn_one(work, g)
            continue
        good.append(ev)
    return work, quarantined


def replay(
    config: ServiceConfig,
    store: EventStore,
    *,
    until: int | None = None,
    quarantined: list[tuple[JoinedEvent, str]] | None = None,
) -> Policy:
    """Rebuild the model from the log: a fresh policy fed every joined event in join order
    (up to join sequence number ``until`` when given), with the same quarantine as the
    service. ``quarantined``: a list that receives the quarantined events."""
    policy = config.make_policy()
    after = 0
    while True:
        batch = store.joined_since(after)
        if until is not None:
            batch = [ev for ev in batch if ev.seq <= until]
        if not batch:
            return policy
        policy, bad = learn_events(lambda p=policy: copy.deepcopy(p), batch)
        if quarantined is not None:
            quarantined.extend(bad)
        after = batch[-1].seq
        if until is not None and after >= until:
            return policy


def states_equal(a: Any, b: Any) -> bool:
    """Whether two saved-state trees (``policy._get_state()``) are identical, arrays bitwise."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def models_equal(p: Policy, q: Policy) -> bool:
    """Whether two policies have the same class, parameters and bit-identical learned state."""
    return (
        type(p) is type(q)
        and p.get_params() == q.get_params()
        and states_equal(p._get_state(), q._get_state())
    )
