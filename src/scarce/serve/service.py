"""The decision service without HTTP: decide, take rewards, join, learn, snapshot, replay.

Determinism: the random stream of a decision is derived from ``(policy seed, event id)``
(the policy's own generator is swapped out for the call), so the same event id at the same
model version and budget state gets the same decision, and the learner's state depends only on
the joined events, in join order. Retries of a logged event id return the logged decision.

Replicas: every process holds a learner and catches up by applying joined events in join order
(after loading the latest snapshot when it is ahead), so all replicas at the same
``model_version`` (= number of joined events applied) hold bit-identical models. An event the
model cannot learn is quarantined (see :mod:`scarce.serve.learner`) and the learner goes on.

Batches are all or nothing: the decisions of ``decide_batch`` are logged and charged in one
unit, so a batch that cannot be served whole logs nothing.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scarce.core.policy import Policy
from scarce.serve import snapshot as snap
from scarce.serve.config import MAX_ABS, ServiceConfig
from scarce.serve.health import HealthMonitor
from scarce.serve.learner import learn_events, models_equal, replay, states_equal
from scarce.serve.store import DecisionRecord, EventStore, StoreError, UnknownEventError
from scarce.serve.validation import (
    Case,
    EventIds,
    RequestChecker,
    RequestError,
    event_generator,
    request_fingerprint,
)

_MAX_BUDGET_RETRIES = 20
_LOG = logging.getLogger("scarce.serve")


class BudgetExhaustedError(RuntimeError):
    """No eligible action is affordable under the remaining budgets and quotas. ``field``:
    ``"budget"``, or ``"requests[i]"`` for case ``i`` of a batch."""

    def __init__(self, message: str, field: str = "budget") -> None:
        super().__init__(message)
        self.field = field


class EventConflictError(RuntimeError):
    """An event id was reused for a different request (or by another key)."""

    def __init__(self, message: str, field: str = "event_id") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class DecisionResult:
    """What ``POST /v1/decisions`` returns."""

    event_id: str
    action: int
    probability: float
    probabilities: list[float]
    model_version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "action": self.action,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "model_version": self.model_version,
        }


Steps = Generator[list[tuple[DecisionRecord, list[tuple[str, str, float]]]], str, Any]


def _settle(futures: list[asyncio.Future[str]], results: list[Any]) -> None:
    for fut, result in zip(futures, results, strict=True):
        if fut.done():  # the request was cancelled (client gone)
            continue
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)


class DecisionService:
    """Serve one policy over an :class:`EventStore`.

    Parameters
    ----------
    config:
        the policy and the service rules.
    store:
        the event store (created and tied to ``config`` on construction).
    clock:
        returns the current time in seconds since the epoch (tests inject a fake clock).
    """

    def __init__(
        self,
        config: ServiceConfig,
        store: EventStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        rows: list[tuple[str, str, float]] = []
        for b in config.budgets:
            rows.append((b.resource, "", b.total))
            rows.extend((b.resource, g, q) for g, q in b.quotas.items())
        store.initialize(config.policy_fingerprint(), rows)
        self._policy_lock = threading.RLock()
        self._new_event_id = EventIds()
        # decision units of decide_async waiting for the next event-loop turn (loop thread only)
        self._to_submit: list[tuple[Any, asyncio.Future[str]]] = []
        self._sync_lock = threading.Lock()
        self.policy: Policy = config.make_policy()
        self.checker = RequestChecker(config, self.policy.reward_bounds)
        self.watermark = 0  # joined events applied to self.policy
        self.n_learned = 0
        self.n_quarantined = 0  # quarantined by this process (the store counts every replica's)
        self.snapshot_version: int | None = None
        self._since_snapshot = 0
        self._costs = {b.resource: np.asarray(b.costs, dtype=float) for b in config.budgets}
        self._quota_groups = {b.resource: set(b.quotas) for b in config.budgets}
        self._json_cache: dict[tuple[Any, ...], str] = {}
        self.health = HealthMonitor(
            store.db, config.min_free_disk_mb * 2**20, config.integrity_check_interval
        )
        found = self.health.check_integrity()
        if found:
            raise StoreError(f"the event store failed its integrity check: {found}")
        self.load_latest_snapshot()
        self.catch_up()

    # ------------------------------------------------------------------ validation
    def check_reward(self, value: Any, cost: Any) -> tuple[list[float], list[float] | None]:
        """Validate a reward ``value`` (scalar or ``(reward_dim,)``) and optional ``cost``."""
        return self.checker.reward(value, cost)

    def _case(
        self,
        context: Any,
        action_features: Any,
        eligible: Sequence[int] | None,
        group: str | None,
        event_id: str | None,
        prefix: str = "",
    ) -> Case:
        try:
            X, stored_context = self.checker.model_input(context, action_features)
            mask, eligible_ids = self.checker.eligible_mask(eligible)
            if group is not None and (not isinstance(group, str) or not group):
                raise RequestError("group", "must be a non-empty string")
            if event_id is None:
                event_id = self._new_event_id()
            elif not isinstance(event_id, str) or not event_id:
                raise RequestError("event_id", "must be a non-empty string")
        except RequestError as exc:
            if prefix:
                raise RequestError(prefix + exc.field, exc.message) from None
            raise
        return Case(
            X=X,
            mask=mask,
            context_json=json.dumps(stored_context),
            eligible_json=None if eligible_ids is None else json.dumps(eligible_ids),
            group=group,
            event_id=event_id,
            fingerprint=request_fingerprint(X, eligible_ids, group),
            prefix=prefix,
        )

    # ------------------------------------------------------------------ decisions
    def _affordable(self, group: str | None, remaining: dict[tuple[str, str], float]) -> np.ndarray:
        mask = np.ones(self.config.n_actions, dtype=bool)
        for resource, costs in self._costs.items():
            mask &= costs <= remaining[(resource, "")] + 1e-9
            if group is not None and group in self._quota_groups[resource]:
                mask &= costs <= remaining[(resource, group)] + 1e-9
        return mask

    def _charges(self, action: int, group: str | None) -> list[tuple[str, str, float]]:
        out = []
        for resource, costs in self._costs.items():
            c = float(costs[action])
            if c > 0:
                out.append((resource, "", c))
                if group is not None and group in self._quota_groups[resource]:
                    out.append((resource, group, c))
        return out

    def _charges_json(self, charges: list[tuple[str, str, float]]) -> str | None:
        if not charges:
            return None
        key = tuple(charges)
        text = self._json_cache.get(key)
        if text is None:
            text = json.dumps(charges)
            if len(self._json_cache) < 4096:  # one entry per (action, quota group) in practice
                self._json_cache[key] = text
        return text

    def decide(
        self,
        context: Any = None,
        *,
        action_features: Any = None,
        eligible: Sequence[int] | None = None,
        group: str | None = None,
        event_id: str | None = None,
        key_id: str | None = None,
    ) -> DecisionResult:
        """Choose, log and charge a decision.

        Parameters
        ----------
        context:
            ``(d,)`` numbers (shared-context policies).
        action_features:
            ``(K, d)`` numbers (``features = "per_action"`` policies).
        eligible:
            action ids that may be chosen (default: all; their order does not matter).
        group:
            the case's group (quotas apply per group; exported with the logs).
        event_id:
            caller's id for the case; a new one is generated when absent. A retry with the
            same id and request returns the logged decision.
        key_id:
            the caller's API key id (recorded; a retry by another key is a conflict).

        Raises
        ------
        RequestError, BudgetExhaustedError, EventConflictError
        """
        case = self._case(context, action_features, eligible, group, event_id)
        return self._drive(self._steps([case], key_id))[0]  # type: ignore[no-any-return]

    async def decide_async(
        self,
        context: Any = None,
        *,
        action_features: Any = None,
        eligible: Sequence[int] | None = None,
        group: str | None = None,
        event_id: str | None = None,
        key_id: str | None = None,
    ) -> DecisionResult:
        """:meth:`decide` for an event loop: the same steps, but the wait for the commit is
        awaited instead of blocking a thread (the choice and the budget read run inline; they
        take tens of microseconds). Only for stores with group commit on SQLite, whose reads
        do not wait on the network; elsewhere run :meth:`decide` in a worker thread."""
        case = self._case(context, action_features, eligible, group, event_id)
        return (await self._drive_async(self._steps([case], key_id)))[0]  # type: ignore[no-any-return]

    def decide_batch(
        self, requests: Sequence[dict[str, Any]], *, key_id: str | None = None
    ) -> list[DecisionResult]:
        """Decide several cases, all or nothing: either every case is answered (and logged
        and charged together) or an error is raised and nothing is logged. ``requests``:
        keyword dicts of :meth:`decide`; errors name the case (``requests[i].field``)."""
        cases = self._batch_cases(requests)
        return self._drive(self._steps(cases, key_id))  # type: ignore[no-any-return]

    async def decide_batch_async(
        self, requests: Sequence[dict[str, Any]], *, key_id: str | None = None
    ) -> list[DecisionResult]:
        """:meth:`decide_batch` on an event loop (see :meth:`decide_async`)."""
        cases = self._batch_cases(requests)
        return await self._drive_async(self._steps(cases, key_id))  # type: ignore[no-any-return]

    def _batch_cases(self, requests: Sequence[dict[str, Any]]) -> list[Case]:
        cases, seen = [], {}
        for i, req in enumerate(requests):
            given = req.get("event_id")
            if given is not None and given in seen:
                raise RequestError(f"requests[{i}].event_id", f"repeats requests[{seen[given]}]")
            seen[given] = i
            cases.append(
                self._case(
                    req.get("context"),
                    req.get("action_features"),
                    req.get("eligible"),
                    req.get("group"),
                    given,
                    prefix=f"requests[{i}].",
                )
            )
        return cases

    def _drive(self, steps: Steps) -> Any:
        try:
            unit = next(steps)
            while True:
                unit = steps.send(self.store.insert_unit(unit))
        except StopIteration as done:
            return done.value

    async def _drive_async(self, steps: Steps) -> Any:
        try:
            unit = next(steps)
            while True:
                unit = steps.send(await self._commit(unit))
        except StopIteration as done:
            return done.value

    async def _commit(self, unit: Any) -> str:
        # the units made in one turn of the event loop go to the writer together (one
        # hand-over, one wake-up of its thread) at the start of the next turn, and come back
        # together (one wake-up of the loop per commit)
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._to_submit.append((unit, done))
        if len(self._to_submit) == 1:
            asyncio.get_running_loop().call_soon(self._submit_pending)
        return await done

    def _submit_pending(self) -> None:
        items, self._to_submit = self._to_submit, []
        loop = asyncio.get_running_loop()
        futures = [f for _, f in items]

        def resolve(results: list[Any]) -> None:  # in the writer thread
            loop.call_soon_threadsafe(_settle, futures, results)

        self.store.submit_decisions([u for u, _ in items], resolve)

    def _steps(self, cases: list[Case], key_id: str | None) -> Steps:
        """The logic of a decision unit without I/O to the writer: yields the records and
        charges to log together and receives the unit's result (one logic for the sync and
        async callers, single decisions and batches). Returns the answers in case order."""
        known: dict[int, DecisionResult] = {}  # answered from the log (retries)
        looked_up = False
        for _ in range(_MAX_BUDGET_RETRIES):
            remaining = self.store.remaining_budgets() if self._costs else {}
            unit, answers = [], []
            exhausted = None
            for i, case in enumerate(cases):
                if i in known:
                    answers.append(known[i])
                    continue
                allowed = case.mask & self._affordable(case.group, remaining)
                if not allowed.any():
                    exhausted = case
                    break
                action, probs, version = self._choose(case.X, allowed, case.event_id)
                charges = self._charges(action, case.group)
                for resource, group, amount in charges:  # later cases of the unit see them
                    remaining[(resource, group)] -= amount
                rec = DecisionRecord(
                    event_id=case.event_id,
                    fingerprint=case.fingerprint,
                    context=case.context_json,
                    eligible=case.eligible_json,
                    group=case.group,
                    action=action,
                    probability=probs[action],
                    probabilities=json.dumps(probs),
                    model_version=version,
                    charges=self._charges_json(charges),
                    ts=float(self.clock()),
                    key_id=key_id,
                )
                unit.append((rec, charges))
                answers.append(DecisionResult(case.event_id, action, probs[action], probs, version))
            if exhausted is not None:
                if not looked_up:  # perhaps a retry of logged decisions: answer from the log
                    known.update(self._logged(cases, known, key_id))
                    looked_up = True
                    continue
                where = exhausted.prefix.rstrip(".") or "budget"
                raise BudgetExhaustedError(
                    "no eligible action is affordable under the remaining budgets"
                    + (f" and the quotas of group {exhausted.group!r}" if exhausted.group else ""),
                    field=where,
                )
            if not unit:
                return answers
            result = yield unit
            if result == "inserted":
                return answers
            if result == "exists":
                known.update(self._logged(cases, known, key_id))
                looked_up = True
            # "budget": another request spent it first; look again
        raise BudgetExhaustedError("budgets changed under contention; retry the request")

    def _logged(
        self, cases: list[Case], known: dict[int, DecisionResult], key_id: str | None
    ) -> dict[int, DecisionResult]:
        """The logged decisions of ``cases`` (not in ``known``) by case index; a logged event
        id with another request or key is an :class:`EventConflictError`."""
        todo = {c.event_id: i for i, c in enumerate(cases) if i not in known}
        out = {}
        for event_id, rec in self.store.get_decisions(list(todo)).items():
            case = cases[todo[event_id]]
            if rec.fingerprint != case.fingerprint or (rec.key_id or None) != key_id:
                raise EventConflictError(
                    f"event_id {event_id!r} was already used for a different request",
                    field=case.prefix + "event_id",
                )
            out[todo[event_id]] = DecisionResult(
                rec.event_id,
                rec.action,
                rec.probability,
                json.loads(rec.probabilities),
                rec.model_version,
            )
        return out

    def _choose(
        self, X: np.ndarray, allowed: np.ndarray, event_id: str
    ) -> tuple[int, list[float], int]:
        allowed = allowed[None, :]  # the policy's (n, K) mask form: no broadcast per call
        with self._policy_lock:
            policy = self.policy
            with np.errstate(all="ignore"):
                # the full distribution first: it also initialises the policy without its rng
                probs = policy.action_probabilities(X, eligible=allowed)[0]
                if policy.deterministic:
                    # the rule is the argmax its one-hot distribution reports (ties: lowest id)
                    action = int(np.argmax(np.where(allowed[0], probs, -1.0)))
                else:
                    saved = policy.rng_
                    policy.rng_ = event_generator(self.config.seed, event_id)
                    try:
                        action = int(policy.decide(X, eligible=allowed).actions[0])
                    finally:
                        policy.rng_ = saved
            version = self.watermark
        probs = np.where(allowed[0], probs, 0.0)
        # (a Monte-Carlo propensity, per-action Thompson sampling, can be 0 for a rare action:
        # it is logged as the policy reports it)
        if not np.isfinite(probs).all() or abs(probs.sum() - 1.0) > 1e-6:
            raise RequestError(
                "context", "the model cannot score this context (numerical overflow)"
            )
        return action, probs.tolist(), version

    # ------------------------------------------------------------------ rewards
    def reward(
        self, event_id: str, value: Any, cost: Any = None, *, key_id: str | None = None
    ) -> str:
        """Record a reward for ``event_id``; returns its status (see :meth:`EventStore.add_reward`).

        Raises
        ------
        RequestError
            bad value or cost.
        UnknownEventError
            no decision was logged under ``event_id`` (by the key ``key_id``).
        """
        vals, costs = self.checker.reward(value, cost)
        return self.store.add_reward(
            event_id,
            vals,
            costs,
            now=float(self.clock()),
            window=self.config.reward_window,
            aggregation=self.config.aggregation,
            key_id=key_id,
        )

    # ------------------------------------------------------------------ joiner and learner
    def sync(self) -> int:
        """Run the joiner, apply new joined events to the learner, publish a snapshot when
        ``snapshot_every`` events have been applied since the last. Returns events applied."""
        cfg = self.config
        with self._sync_lock:
            self.health.maybe_check_integrity()
            self.store.join(
                now=float(self.clock()),
                window=cfg.reward_window,
                aggregation=cfg.aggregation,
                default_reward=cfg.default_reward,
                weights=cfg.reward_weights or (1.0,),
            )
            self.load_latest_snapshot()
            applied = self.catch_up()
            if cfg.snapshot_every and self._since_snapshot >= cfg.snapshot_every:
                self.publish_snapshot()
            return applied

    def catch_up(self) -> int:
        """Apply joined events after the current watermark, in join order, one at a time
        (so that live learning and replay give bit-identical models). Updates run on a copy
        that replaces the served model every 64 events; events the model cannot learn are
        quarantined (logged, recorded in the store) and skipped."""
        applied = 0
        while True:
            batch = self.store.joined_since(self.watermark)
            if not batch:
                return applied
            for start in range(0, len(batch), 64):
                chunk = batch[start : start + 64]
                model, bad = learn_events(self._model_copy, chunk)
                with self._policy_lock:
                    self.policy = model
                    self.watermark = chunk[-1].seq
                    learned = sum(ev.reward is not None for ev in chunk) - len(bad)
                    self.n_learned += learned
                    self.n_quarantined += len(bad)
                    self._since_snapshot += len(chunk)
                applied += len(chunk)
                for ev, reason in bad:
                    _LOG.warning(
                        "event %r (join seq %d) quarantined: the model cannot learn it (%s)",
                        ev.event_id,
                        ev.seq,
                        reason,
                    )
                    self.store.quarantine(ev.seq, ev.event_id, reason, float(self.clock()))

    def _model_copy(self) -> Policy:
        with self._policy_lock:  # decisions swap the policy's generator under this lock
            return copy.deepcopy(self.policy)

    def load_latest_snapshot(self) -> bool:
        """Load the latest published snapshot if it is ahead of this learner (checksum,
        class and parameters verified before anything is constructed)."""
        head = self.store.latest_snapshot(with_data=False)
        if head is None or head.watermark <= self.watermark:
            return False
        s = self.store.latest_snapshot()
        assert s is not None
        policy = snap.decode(s.state_json, s.arrays_npz, s.checksum, self.config.make_policy())
        with self._policy_lock:
            self.policy = policy
            self.watermark = s.watermark
            self.n_learned = int(getattr(policy, "n_updates_", 0))
            self.snapshot_version = s.version
            self._since_snapshot = 0
        return True

    def publish_snapshot(self) -> dict[str, Any]:
        """Store the current learner as a snapshot; returns its version, checksum, watermark."""
        with self._policy_lock:
            state_json, arrays_npz, checksum = snap.encode(self.policy)
            watermark = self.watermark
        created = float(self.clock())
        version, checksum = self.store.publish_snapshot(
            watermark=watermark,
            created_at=created,
            checksum=checksum,
            state_json=state_json,
            arrays_npz=arrays_npz,
        )
        self.snapshot_version = version
        self._since_snapshot = 0
        return {"version": version, "model_version": watermark, "checksum": checksum}

    # ------------------------------------------------------------------ reporting
    def describe(self) -> dict[str, Any]:
        """Config, versions, counts and budgets (``GET /v1/policies/{name}``)."""
        budgets: dict[str, Any] = {}
        for resource, group, initial, remaining in self.store.budget_rows():
            entry = budgets.setdefault(resource, {"initial": None, "remaining": None, "quotas": {}})
            if group == "":
                entry["initial"], entry["remaining"] = initial, remaining
            else:
                entry["quotas"][group] = {"initial": initial, "remaining": remaining}
        return {
            "name": self.config.name,
            "config": self.config.to_dict(),
            "model_version": self.watermark,
            "snapshot_version": self.snapshot_version,
            "counts": self.store.counts(),
            "budgets": budgets,
        }


__all__ = [
    "MAX_ABS",
    "BudgetExhaustedError",
    "DecisionResult",
    "DecisionService",
    "EventConflictError",
    "RequestError",
    "UnknownEventError",
    "event_generator",
    "models_equal",
    "replay",
    "states_equal",
]
