"""The decision service without HTTP: decide, take rewards, join, learn, snapshot, replay.

Determinism: the random stream of a decision is derived from ``(policy seed, event id)``
(the policy's own generator is swapped out for the call), so the same event id at the same
model version and budget state gets the same decision, and the learner's state depends only on
the joined events, in join order. Retries of a logged event id return the logged decision.

Replicas: every process holds a learner and catches up by applying joined events in join order
(after loading the latest snapshot when it is ahead), so all replicas at the same
``model_version`` (= number of joined events applied) hold bit-identical models.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from scarce.core.policy import Policy
from scarce.serve import snapshot as snap
from scarce.serve.config import ServiceConfig
from scarce.serve.store import DecisionRecord, EventStore, UnknownEventError

_MAX_BUDGET_RETRIES = 20
#: largest accepted magnitude of a feature, reward or cost (beyond it squares overflow soon)
MAX_ABS = 1e12


class RequestError(ValueError):
    """Bad request content; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BudgetExhaustedError(RuntimeError):
    """No eligible action is affordable under the remaining budgets and quotas."""


class EventConflictError(RuntimeError):
    """An event id was reused for a different request."""


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


def event_generator(seed: int, event_id: str) -> np.random.Generator:
    """The random stream of one decision: a function of the policy seed and the event id."""
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]
    return np.random.default_rng([int(seed), *words])


class _EventIds:
    """Random 128-bit hex event ids (as ``uuid.uuid4().hex``: 32 hex digits from the OS's
    CSPRNG), drawn 256 at a time: each ``os.urandom`` call releases the GIL, and on a busy
    server getting it back costs far more than the draw."""

    _CHUNK = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[str] = []

    def __call__(self) -> str:
        with self._lock:
            if not self._ids:
                raw = os.urandom(16 * self._CHUNK).hex()
                self._ids = [raw[i : i + 32] for i in range(0, len(raw), 32)]
            return self._ids.pop()


def _fingerprint(X: np.ndarray, eligible: Any, group: str | None) -> str:
    """Identity of a request (to tell a retry from a reuse of its event id)."""
    h = hashlib.sha256(np.ascontiguousarray(X, dtype="<f8").tobytes())
    h.update(json.dumps([eligible, group]).encode())
    return h.hexdigest()


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
        self._new_event_id = _EventIds()
        # decisions of decide_async waiting for the next event-loop turn (loop thread only)
        self._to_submit: list[tuple[DecisionRecord, Any, Future[str]]] = []
        self._sync_lock = threading.Lock()
        self.policy: Policy = config.make_policy()
        self.watermark = 0  # joined events applied to self.policy
        self.n_learned = 0
        self.snapshot_version: int | None = None
        self._since_snapshot = 0
        self._costs = {b.resource: np.asarray(b.costs, dtype=float) for b in config.budgets}
        self._quota_groups = {b.resource: set(b.quotas) for b in config.budgets}
        self.load_latest_snapshot()
        self.catch_up()

    # ------------------------------------------------------------------ validation
    def _model_input(self, context: Any, action_features: Any) -> tuple[np.ndarray, Any]:
        """``(X, stored_context)``: the policy input ``(1, d)`` or ``(1, K, d)`` and what is logged."""
        cfg = self.config
        d, K = cfg.n_features, cfg.n_actions
        if cfg.features == "shared":
            if action_features is not None:
                raise RequestError(
                    "action_features", "not accepted: this policy uses a shared context"
                )
            if context is None:
                raise RequestError("context", f"required: a list of {d} numbers")
            X = self._float_array(context, "context", (d,))
            return X[None, :], [float(v) for v in X]
        if action_features is None:
            raise RequestError("action_features", f"required: {K} lists of {d} numbers")
        X = self._float_array(action_features, "action_features", (K, d))
        return X[None, :, :], X.tolist()

    @staticmethod
    def _float_array(value: Any, field: str, shape: tuple[int, ...]) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise RequestError(field, f"must be numbers with shape {list(shape)}") from None
        if arr.shape != shape:
            raise RequestError(field, f"must have shape {list(shape)}; got {list(arr.shape)}")
        if not np.isfinite(arr).all():
            raise RequestError(field, "must be finite (no NaN or infinity)")
        if np.abs(arr).max() > MAX_ABS:
            raise RequestError(field, f"values must be within +-{MAX_ABS:g}; rescale the features")
        return arr

    def _eligible_mask(self, eligible: Sequence[int] | None) -> np.ndarray:
        K = self.config.n_actions
        mask = np.ones(K, dtype=bool)
        if eligible is None:
            return mask
        if len(eligible) == 0:
            raise RequestError("eligible", "must list at least one action id")
        ids = list(eligible)
        for a in ids:
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 0 <= a < K:
                raise RequestError("eligible", f"action ids must be ints in [0, {K}); got {a!r}")
        if len(set(ids)) != len(ids):
            raise RequestError("eligible", "action ids must not repeat")
        mask[:] = False
        mask[ids] = True
        return mask

    def check_reward(self, value: Any, cost: Any) -> tuple[list[float], list[float] | None]:
        """Validate a reward ``value`` (scalar or ``(reward_dim,)``) and optional ``cost``."""
        dim = self.config.reward_dim
        vals = value if isinstance(value, (list, tuple)) else [value]
        if len(vals) != dim:
            raise RequestError("value", f"must have {dim} component(s); got {len(vals)}")
        out = []
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RequestError("value", f"must be finite numbers; got {v!r}")
            if abs(v) > MAX_ABS:
                raise RequestError("value", f"must be within +-{MAX_ABS:g}; got {v!r}")
            out.append(float(v))
        bounds = self.policy.reward_bounds
        if bounds is not None:
            r = float(np.dot(self.config.reward_weights, out))
            if not bounds[0] <= r <= bounds[1]:
                raise RequestError(
                    "value",
                    f"{self.config.policy_type} learns rewards in [{bounds[0]}, {bounds[1]}]; got {r}",
                )
        costs = None
        if cost is not None:
            cs = cost if isinstance(cost, (list, tuple)) else [cost]
            if len(cs) == 0:
                raise RequestError("cost", "must not be empty")
            costs = []
            for c in cs:
                if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
                    raise RequestError("cost", f"must be finite numbers; got {c!r}")
                if c < 0 or c > MAX_ABS:
                    raise RequestError("cost", f"must be in [0, {MAX_ABS:g}]; got {c!r}")
                costs.append(float(c))
        return out, costs

    # ------------------------------------------------------------------ decisions
    def _affordable(self, group: str | None) -> np.ndarray:
        mask = np.ones(self.config.n_actions, dtype=bool)
        if not self._costs:
            return mask
        remaining = self.store.remaining_budgets()
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

    def decide(
        self,
        context: Any = None,
        *,
        action_features: Any = None,
        eligible: Sequence[int] | None = None,
        group: str | None = None,
        event_id: str | None = None,
    ) -> DecisionResult:
        """Choose, log and charge a decision.

        Parameters
        ----------
        context:
            ``(d,)`` numbers (shared-context policies).
        action_features:
            ``(K, d)`` numbers (``features = "per_action"`` policies).
        eligible:
            action ids that may be chosen (default: all).
        group:
            the case's group (quotas apply per group; exported with the logs).
        event_id:
            caller's id for the case; a new one is generated when absent. A retry with the
            same id and request returns the logged decision.

        Raises
        ------
        RequestError, BudgetExhaustedError, EventConflictError
        """
        steps = self._decide_steps(context, action_features, eligible, group, event_id)
        try:
            step = next(steps)
            while True:
                step = steps.send(self.store.insert_decision(*step))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def decide_async(
        self,
        context: Any = None,
        *,
        action_features: Any = None,
        eligible: Sequence[int] | None = None,
        group: str | None = None,
        event_id: str | None = None,
    ) -> DecisionResult:
        """:meth:`decide` for an event loop: the same steps, but the wait for the commit is
        awaited instead of blocking a thread (the choice and the budget read run inline; they
        take tens of microseconds). Only for stores with group commit on SQLite, whose reads
        do not wait on the network; elsewhere run :meth:`decide` in a worker thread."""
        steps = self._decide_steps(context, action_features, eligible, group, event_id)
        try:
            step = next(steps)
            while True:
                result = await self._commit(*step)
                step = steps.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _commit(self, rec: DecisionRecord, charges: list[tuple[str, str, float]]) -> str:
        # the decisions made in one turn of the event loop go to the writer together (one
        # hand-over, one wake-up of its thread) at the start of the next turn
        done: Future[str] = Future()
        self._to_submit.append((rec, charges, done))
        if len(self._to_submit) == 1:
            asyncio.get_running_loop().call_soon(self._submit_pending)
        return await asyncio.wrap_future(done)

    def _submit_pending(self) -> None:
        items, self._to_submit = self._to_submit, []
        self.store.submit_decisions(items)

    def _decide_steps(
        self,
        context: Any,
        action_features: Any,
        eligible: Sequence[int] | None,
        group: str | None,
        event_id: str | None,
    ) -> Generator[tuple[DecisionRecord, list[tuple[str, str, float]]], str, DecisionResult]:
        """The logic of :meth:`decide` without I/O to the writer: yields ``(record, charges)``
        to be inserted and receives the insert's result (one logic for the sync and async
        callers)."""
        X, stored_context = self._model_input(context, action_features)
        mask = self._eligible_mask(eligible)
        if group is not None and (not isinstance(group, str) or not group):
            raise RequestError("group", "must be a non-empty string")
        if event_id is None:
            event_id = self._new_event_id()
        elif not isinstance(event_id, str) or not event_id:
            raise RequestError("event_id", "must be a non-empty string")
        eligible_ids = None if eligible is None else [int(a) for a in eligible]
        fp = _fingerprint(X, eligible_ids, group)
        context_json = json.dumps(stored_context)
        eligible_json = None if eligible_ids is None else json.dumps(eligible_ids)
        for _ in range(_MAX_BUDGET_RETRIES):
            allowed = mask & self._affordable(group) if self._costs else mask
            if not allowed.any():
                prior = self._logged(event_id, fp)
                if prior is not None:
                    return prior
                raise BudgetExhaustedError(
                    "no eligible action is affordable under the remaining budgets"
                    + (f" and the quotas of group {group!r}" if group is not None else "")
                )
            action, probs, version = self._choose(X, allowed, event_id)
            charges = self._charges(action, group)
            rec = DecisionRecord(
                event_id=event_id,
                fingerprint=fp,
                context=context_json,
                eligible=eligible_json,
                group=group,
                action=action,
                probability=probs[action],
                probabilities=json.dumps(probs),
                model_version=version,
                charges=json.dumps(charges) if charges else None,
                ts=float(self.clock()),
            )
            result = yield rec, charges
            if result == "inserted":
                return DecisionResult(event_id, action, probs[action], probs, version)
            if result == "exists":
                prior = self._logged(event_id, fp)
                assert prior is not None
                return prior
            # "budget": another request spent it first; look again
        raise BudgetExhaustedError("budgets changed under contention; retry the request")

    def _logged(self, event_id: str, fingerprint: str) -> DecisionResult | None:
        rec = self.store.get_decision(event_id)
        if rec is None:
            return None
        if rec.fingerprint != fingerprint:
            raise EventConflictError(
                f"event_id {event_id!r} was already used for a different request"
            )
        return DecisionResult(
            rec.event_id,
            rec.action,
            rec.probability,
            json.loads(rec.probabilities),
            rec.model_version,
        )

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
    def reward(self, event_id: str, value: Any, cost: Any = None) -> str:
        """Record a reward for ``event_id``; returns its status (see :meth:`EventStore.add_reward`).

        Raises
        ------
        RequestError
            bad value or cost.
        UnknownEventError
            no decision was logged under ``event_id``.
        """
        vals, costs = self.check_reward(value, cost)
        return self.store.add_reward(
            event_id,
            vals,
            costs,
            now=float(self.clock()),
            window=self.config.reward_window,
            aggregation=self.config.aggregation,
        )

    # ------------------------------------------------------------------ joiner and learner
    def sync(self) -> int:
        """Run the joiner, apply new joined events to the learner, publish a snapshot when
        ``snapshot_every`` events have been applied since the last. Returns events applied."""
        cfg = self.config
        with self._sync_lock:
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
        (so that live learning and replay give bit-identical models)."""
        applied = 0
        while True:
            batch = self.store.joined_since(self.watermark)
            if not batch:
                return applied
            for start in range(0, len(batch), 64):  # let decisions in between chunks
                with self._policy_lock:
                    for ev in batch[start : start + 64]:
                        if ev.reward is not None:
                            X = self._event_input(ev.context)
                            self.policy.update(X, np.array([ev.action]), np.array([ev.reward]))
                            self.n_learned += 1
                        self.watermark = ev.seq
                        self._since_snapshot += 1
                        applied += 1

    def _event_input(self, context_json: str) -> np.ndarray:
        return np.asarray(json.loads(context_json), dtype=np.float64)[None, ...]

    def load_latest_snapshot(self) -> bool:
        """Load the latest published snapshot if it is ahead of this learner (checksum verified)."""
        head = self.store.latest_snapshot(with_data=False)
        if head is None or head.watermark <= self.watermark:
            return False
        s = self.store.latest_snapshot()
        assert s is not None
        policy = snap.decode(s.state_json, s.arrays_npz, s.checksum, self.config.policy_type)
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


def replay(config: ServiceConfig, store: EventStore, *, until: int | None = None) -> Policy:
    """Rebuild the model from the log: a fresh policy fed every joined event in join order
    (up to join sequence number ``until`` when given)."""
    policy = config.make_policy()
    after = 0
    while True:
        batch = store.joined_since(after)
        for ev in batch:
            if until is not None and ev.seq > until:
                return policy
            if ev.reward is not None:
                X = np.asarray(json.loads(ev.context), dtype=np.float64)[None, ...]
                policy.update(X, np.array([ev.action]), np.array([ev.reward]))
            after = ev.seq
        if not batch:
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


__all__ = [
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
