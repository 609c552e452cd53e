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
from scarce.serve.traits import PolicyTraits
from scarce.serve.validation import event_generator


def event_input(context_json: str) -> np.ndarray:
    """The policy input ``(1, d)`` or ``(1, K, d)`` of a logged context."""
    return np.asarray(json.loads(context_json), dtype=np.float64)[None, ...]


def case_arrays(doc_json: str | None) -> dict[str, np.ndarray]:
    """A logged per-case dict (``Decision.info``, keywords) as arrays with a leading axis 1."""
    if not doc_json:
        return {}
    return {k: np.asarray([v]) for k, v in json.loads(doc_json).items()}


def event_actions(ev: JoinedEvent, traits: PolicyTraits) -> np.ndarray:
    """The logged action as the policy takes it: ``(1,)`` ids, or ``(1, N)`` levels."""
    if ev.action_value is not None:
        return np.asarray([json.loads(ev.action_value)], dtype=np.int64)
    return np.array([ev.action])


def copy_policy(policy: Policy) -> Policy:
    """An independent copy of ``policy`` through its saved state (the persistence round trip
    every policy honours), not ``copy.deepcopy``: a policy may hold views of its own arrays
    (``MixedEffectTS``'s ``W_`` of ``WT_``), which a deep copy turns into separate arrays, so
    the copy would learn differently."""
    state = copy.deepcopy(policy._get_state())
    clone = type(policy)(**policy.get_params())
    clone._set_state(state)
    return clone


def ensure_initialized(policy: Policy, X: np.ndarray) -> None:
    """Initialise a fresh policy on an input like ``X`` (so that its random stream exists
    before a decision swaps it out)."""
    if hasattr(policy, "rng_"):
        return
    try:
        policy.action_probabilities(X)  # read-only; initialises first
    except NotImplementedError:
        pass


class Feedback:
    """How a configured policy learns a joined event (what ``update`` gets).

    Parameters
    ----------
    traits:
        the policy's :class:`~scarce.serve.traits.PolicyTraits`.
    seed:
        the policy seed (a replayed decision draws from the event's own stream).
    """

    def __init__(self, traits: PolicyTraits, seed: int) -> None:
        self.traits = traits
        self.seed = seed
        self._extra = set(traits.update_keywords)

    def learn(self, policy: Policy, ev: JoinedEvent) -> None:
        """Apply ``ev`` to ``policy``: replay its decision first when the policy keeps
        decision-time state (the logged action forced by a one-hot mask, drawing from the
        event's stream), then ``update`` with the reward, ``Decision.info`` and the declared
        feedback keywords."""
        X = event_input(ev.context)
        actions = event_actions(ev, self.traits)
        if self.traits.stateful_decide and self.traits.action_type != "allocation":
            # (an allocation policy's cohorts are replayed whole: scarce.serve.cohorts)
            self.replay_decision(policy, X, actions, ev)
        if self.traits.reward_kind == "vector":
            rewards = np.asarray([json.loads(ev.value or "[]")], dtype=np.float64)
        else:
            rewards = np.array([ev.reward])
        kwargs: dict[str, Any] = {}
        if ev.info:
            kwargs["info"] = case_arrays(ev.info)
        if "costs" in self._extra and ev.cost is not None:
            kwargs["costs"] = np.asarray([json.loads(ev.cost)], dtype=np.float64)
        for key, value in case_arrays(ev.reward_extras).items():
            if key in self._extra:
                kwargs[key] = value
        policy.update(X, actions, rewards, **kwargs)

    def replay_decision(
        self, policy: Policy, X: np.ndarray, actions: np.ndarray, ev: JoinedEvent
    ) -> None:
        """``decide`` with only the logged action eligible, so the policy's decision-time
        bookkeeping (reservations, warm-up counts) happens as it did for this event."""
        if self.traits.action_type != "discrete":
            raise ValueError("a decision can only be replayed for 'discrete' policies")
        mask = np.zeros((1, policy.n_actions), dtype=bool)
        mask[0, int(actions[0])] = True
        ensure_initialized(policy, X)
        saved = policy.rng_
        policy.rng_ = event_generator(self.seed, ev.event_id)
        try:
            policy.decide(X, eligible=mask, **case_arrays(ev.extras))
        finally:
            policy.rng_ = saved


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


def _nonfinite(state: Any) -> int:
    """How many numbers of a saved-state tree are not finite (an array of finite numbers
    whose sum overflows counts once). Some policies keep NaN for "not known yet" (a noise
    variance before it is estimated), so the learner judges an update by whether it adds
    non-finite numbers, not by whether there are any."""
    n = 0
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            if item.dtype.kind in "fc" and not math.isfinite(abs(item.sum())):
                bad = int(np.count_nonzero(~np.isfinite(item)))
                n += bad if bad else 1
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            n += 1
    return n


def _learn_one(policy: Policy, ev: JoinedEvent, feedback: Feedback, baseline: int) -> int:
    """Learn ``ev``; returns the model's count of non-finite numbers (0 in the common case,
    found by one sum per array), refusing an update that adds to ``baseline``."""
    if not hasattr(policy, "rng_"):  # a fresh model: count what its initial state holds
        ensure_initialized(policy, event_input(ev.context))
        baseline = _baseline(policy)
    feedback.learn(policy, ev)
    state = policy._get_state()
    if _finite(state):
        return 0
    count = _nonfinite(state)
    if count > baseline:
        raise FloatingPointError("the update left a non-finite number in the model")
    return count


def _baseline(policy: Policy) -> int:
    state = policy._get_state()
    return 0 if _finite(state) else _nonfinite(state)


def learn_events(
    copy_of_model: Callable[[], Policy], events: Sequence[JoinedEvent], feedback: Feedback
) -> tuple[Policy, list[tuple[JoinedEvent, str]]]:
    """The model after learning ``events`` (in order), and the events it could not learn.

    Parameters
    ----------
    copy_of_model:
        returns a fresh copy of the model before ``events`` (it is called once, and once more
        after each quarantined event); the caller's model is never modified.
    events:
        joined events in join order; those without a reward are skipped.
    feedback:
        how the configured policy learns an event.

    Returns
    -------
    (model, quarantined):
        the new model and ``(event, reason)`` of each quarantined event.
    """
    with np.errstate(all="ignore"):  # overflow is judged on the result, not warned about
        return _learn_events(copy_of_model, events, feedback)


def _learn_events(
    copy_of_model: Callable[[], Policy], events: Sequence[JoinedEvent], feedback: Feedback
) -> tuple[Policy, list[tuple[JoinedEvent, str]]]:
    work = copy_of_model()
    baseline = _baseline(work)
    good: list[JoinedEvent] = []
    quarantined: list[tuple[JoinedEvent, str]] = []
    for ev in events:
        if ev.reward is None:
            continue
        try:
            baseline = _learn_one(work, ev, feedback, baseline)
        except Exception as exc:  # noqa: BLE001 - any failure of the model quarantines the event
            quarantined.append((ev, f"{type(exc).__name__}: {exc}"))
            # the model before this event: a fresh copy with the good events applied again
            # (updates are deterministic, so this is the state before the failed update)
            work = copy_of_model()
            baseline = _baseline(work)
            for g in good:
                baseline = _learn_one(work, g, feedback, baseline)
            continue
        good.append(ev)
    return work, quarantined


def replay(
    config: ServiceConfig,
    store: EventStore,
    *,
    until: int | None = None,
    quarantined: list[tuple[JoinedEvent, str]] | None = None,
    rounds: int | None = None,
) -> Policy:
    """Rebuild the model from the log: a fresh policy fed every joined event in join order
    (up to join sequence number ``until`` when given), with the same quarantine as the
    service. ``quarantined``: a list that receives the quarantined events. An
    ``"allocation"`` policy also replays its logged cohorts in log order (before round
    ``rounds`` when given; see :mod:`scarce.serve.cohorts`)."""
    if config.traits.action_type == "allocation":
        from scarce.serve.cohorts import replay_cohorts

        return replay_cohorts(config, store, until=until, rounds=rounds, quarantined=quarantined)
    policy = config.make_policy()
    feedback = Feedback(config.traits, config.seed)
    after = 0
    while True:
        batch = store.joined_since(after)
        if until is not None:
            batch = [ev for ev in batch if ev.seq <= until]
        if not batch:
            return policy
        policy, bad = learn_events(lambda p=policy: copy_policy(p), batch, feedback)
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
