"""Serving the ``"allocation"`` variant of the protocol (the fair allocators,
:class:`scarce.fair.policy.CohortPolicy`): one decision allocates scarce resources over a whole
cohort, so it is one request, ``POST /v1/allocations`` (:meth:`CohortDecisions.allocate`).

* **A cohort** is a list of cases (each a context, optional ``eligible``, ``group``,
  ``event_id`` and the policy's per-case keywords ``groups``, the fairness group id, and
  ``units``, who the case is across rounds) and the round's rules: ``capacities`` (one per
  resource, actions ``1..R``: how many cases may get it) and ``cooldowns`` (rounds before a
  resource can be given again; they shape MetaCUB's plan). Each case is logged as a decision
  of its own (event id, action, probability, ``Decision.info``, the cohort's keywords in
  ``extras``), rewarded through ``POST /v1/rewards`` like any decision and learned when it is
  joined, with its ``Decision.info`` (unit, round, group) and feedback keywords
  (``round_outcome``, ``individual``).
* **The round clock** is the policy's own round counter (``rounds_``): cohort ``c`` is the
  ``c``-th decision of the served model; the table ``cohorts`` holds, per round, the cohort
  id, its event ids, its keywords and the ``model_version`` (joined events learned) of the
  model that decided.
* **The learning order** merges the join log and the cohort log: cohort ``c`` comes after
  joined event ``model_version_c`` and before the next one. The learner (every replica, and
  ``scarce replay``) applies events one at a time and *replays* each cohort at its place: the
  same ``decide`` on the logged inputs with the cohort's own random stream (derived from the
  seed and the cohort id), which must give the logged actions (checked). So the model, with
  its decision-time state (the round counter, the current cohort, MetaCUB's plan and carries,
  EXP3's draw probabilities), is a function of the two logs, and replay reproduces it bit for
  bit.
* **Consistency.** A cohort is decided by a model caught up with both logs, and logged in one
  transaction that holds the joiner's lock and checks that no event was joined and no cohort
  logged since (else the service catches up and decides again): so cohorts are decided one
  after the other, each by the model the logs say, on any number of replicas.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from scarce.core.decision import Decision
from scarce.core.policy import Policy
from scarce.serve.active import EventConflictError
from scarce.serve.cohort_requests import Cohort, check_cohort, policy_keywords
from scarce.serve.config import ServiceConfig
from scarce.serve.db import Tx
from scarce.serve.learner import copy_policy, ensure_initialized
from scarce.serve.schema import INSERT_DECISION, DecisionRecord
from scarce.serve.served import ServedPolicy
from scarce.serve.store import EventStore
from scarce.serve.validation import RequestError, event_generator

_MAX_TRIES = 20


@dataclass(frozen=True)
class CohortResult:
    """What ``POST /v1/allocations`` returns: the cohort's id and round, the model and policy
    versions that decided, and per case (in request order) its event id, action (0: nothing,
    ``r + 1``: resource ``r``) and the probability of that action."""

    cohort_id: str
    round: int
    model_version: int
    policy_version: int
    allocations: list[tuple[str, int, float | None]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cohort_id": self.cohort_id,
            "round": self.round,
            "model_version": self.model_version,
            "policy_version": self.policy_version,
            "allocations": [
                {"event_id": e, "action": a, "probability": p} for e, a, p in self.allocations
            ],
        }


@dataclass(frozen=True)
class LoggedCohort:
    """A row of the ``cohorts`` table."""

    round: int
    cohort_id: str
    fingerprint: str
    event_ids: list[str]
    keywords: dict[str, list[int]]
    model_version: int
    policy_version: int
    key_id: str | None


def _stream_key(cohort_id: str) -> str:
    return f"cohort:{cohort_id}"


# ---------------------------------------------------------------------- the cohort log
_COHORT_COLUMNS = (
    "round, cohort_id, fingerprint, event_ids, keywords, model_version, policy_version, key_id"
)


def _cohort(row: Sequence[Any]) -> LoggedCohort:
    return LoggedCohort(
        round=int(row[0]),
        cohort_id=row[1],
        fingerprint=row[2],
        event_ids=json.loads(row[3]),
        keywords=json.loads(row[4] or "{}"),
        model_version=int(row[5]),
        policy_version=int(row[6]),
        key_id=row[7],
    )


def logged_cohorts(store: EventStore, first_round: int) -> list[LoggedCohort]:
    """The logged cohorts from round ``first_round`` on, in round order."""
    rows = store.query(
        f"SELECT {_COHORT_COLUMNS} FROM cohorts WHERE round >= ? ORDER BY round", (first_round,)
    )
    return [_cohort(r) for r in rows]


def cohort_by_id(store: EventStore, cohort_id: str) -> LoggedCohort | None:
    rows = store.query(f"SELECT {_COHORT_COLUMNS} FROM cohorts WHERE cohort_id = ?", (cohort_id,))
    return _cohort(rows[0]) if rows else None


def _insert(
    tx: Tx, row: tuple[Any, ...], records: list[DecisionRecord], watermark: int, round_: int
) -> str:
    """Log a cohort and its cases, if nothing was joined or logged since the model that
    decided caught up (``"stale"`` otherwise: nothing is written)."""
    if int(tx.one("SELECT COALESCE(MAX(seq), 0) FROM joined_events")[0]) != watermark:
        return "stale"
    if int(tx.one("SELECT COALESCE(MAX(round), -1) FROM cohorts")[0]) != round_ - 1:
        return "stale"
    marks = ", ".join("?" * len(row))
    sql = f"INSERT INTO cohorts ({_COHORT_COLUMNS}, ts) VALUES ({marks}) ON CONFLICT DO NOTHING"
    if tx.execute(sql, row).rowcount != 1:
        return "stale"  # the cohort id was taken meanwhile: answered from the log next time
    for i, rec in enumerate(records):
        if tx.execute(INSERT_DECISION, rec.row()).rowcount != 1:
            raise EventConflictError(
                f"event_id {rec.event_id!r} was already used for another decision",
                field=f"cases[{i}].event_id",
            )
    return "inserted"


# ---------------------------------------------------------------------- the served model
class CohortServed(ServedPolicy):
    """A served allocation policy: learns the join log merged with the cohort log (module
    docstring) and decides cohorts (:meth:`allocate`)."""

    def __init__(self, config: ServiceConfig, version: int = 1, name: str | None = None) -> None:
        super().__init__(config, version, name)
        self.cohort_lock = threading.RLock()  # cohort decisions and learning, one at a time

    @property
    def rounds(self) -> int:
        """Cohorts the model has decided (its round counter)."""
        return int(getattr(self.policy, "rounds_", 0))

    def catch_up(
        self, store: EventStore, on_quarantine: Callable[[Any, str], None] | None = None
    ) -> int:
        """Learn the joined events and replay the logged cohorts, merged in log order."""
        return self.advance(store, on_quarantine)

    def load_latest_snapshot(self, store: EventStore) -> bool:
        """As :meth:`ServedPolicy.load_latest_snapshot`, never in the middle of a cohort
        decision or of learning (a snapshot holds its rounds: the policy's counter)."""
        with self.cohort_lock:
            return super().load_latest_snapshot(store)

    def advance(
        self,
        store: EventStore,
        on_quarantine: Callable[[Any, str], None] | None = None,
        *,
        until: int | None = None,
        rounds: int | None = None,
    ) -> int:
        """Apply the joined events after the watermark (up to join seq ``until``) and replay
        the logged cohorts after the model's round (before round ``rounds``), each cohort
        after the event it was decided at. Returns the events applied."""
        applied = 0
        with self.cohort_lock:
            while True:
                events = store.joined_since(self.watermark)  # events first, then cohorts:
                if until is not None:  # a cohort logged before an event is then seen with it
                    events = [ev for ev in events if ev.seq <= until]
                cohorts = logged_cohorts(store, self.rounds)
                if rounds is not None:
                    cohorts = [c for c in cohorts if c.round < rounds]
                top = events[-1].seq if events else self.watermark
                replayed, i = 0, 0
                for c in cohorts:
                    if c.model_version > top:
                        break
                    if c.round != self.rounds or c.model_version < self.watermark:
                        raise RuntimeError(
                            f"cohort {c.cohort_id!r} (round {c.round}, model_version "
                            f"{c.model_version}) is out of order for a model at round "
                            f"{self.rounds}, model_version {self.watermark}"
                        )
                    j = i
                    while j < len(events) and events[j].seq <= c.model_version:
                        j += 1
                    applied += self.apply_events(events[i:j], on_quarantine)
                    i = j
                    self._replay(store, c)
                    replayed += 1
                applied += self.apply_events(events[i:], on_quarantine)
                if not events and not replayed:
                    return applied

    def _replay(self, store: EventStore, c: LoggedCohort) -> None:
        recs = store.get_decisions(c.event_ids)
        X = np.asarray([json.loads(recs[e].context) for e in c.event_ids], dtype=np.float64)
        eligible = None
        if any(recs[e].eligible is not None for e in c.event_ids):
            eligible = np.zeros((len(c.event_ids), self.config.n_actions), dtype=bool)
            for i, e in enumerate(c.event_ids):
                ids = recs[e].eligible
                eligible[i, json.loads(ids) if ids is not None else slice(None)] = True
        work = self._model_copy()
        decision = self._decide_cohort(work, X, eligible, c.keywords, c.cohort_id)
        logged = [recs[e].action for e in c.event_ids]
        if decision.actions.tolist() != logged:
            raise RuntimeError(
                f"replaying cohort {c.cohort_id!r} (round {c.round}) gave other actions than "
                "the logged ones: the model is not what the logs say"
            )
        with self.lock:
            self.policy = work

    def _decide_cohort(
        self,
        policy: Policy,
        X: np.ndarray,
        eligible: np.ndarray | None,
        keywords: dict[str, list[int]],
        cohort_id: str,
    ) -> Decision:
        """``decide`` on ``policy`` (which it changes: the round's bookkeeping) drawing from
        the cohort's own stream; the policy's generator does not move."""
        ensure_initialized(policy, X)
        saved = policy.rng_
        policy.rng_ = event_generator(self.config.seed, _stream_key(cohort_id))
        try:
            with np.errstate(all="ignore"):
                return policy.decide(X, eligible=eligible, **policy_keywords(keywords, X.shape[0]))
        finally:
            policy.rng_ = saved

    def allocate(
        self,
        store: EventStore,
        cohort: Cohort,
        cohort_id: str,
        new_id: Callable[[], str],
        *,
        key_id: str | None,
        now: float,
        on_quarantine: Callable[[Any, str], None] | None = None,
    ) -> CohortResult:
        """Decide ``cohort`` with the model the logs say, log it and its cases in one
        transaction (module docstring); a retry of a logged cohort id gets its answer."""
        event_ids = [e if e is not None else new_id() for e in cohort.event_ids]
        with self.cohort_lock:
            for _ in range(_MAX_TRIES):
                logged = self._logged(store, cohort, cohort_id, key_id)
                if logged is not None:
                    return logged
                self.advance(store, on_quarantine)
                with self.lock:
                    base, watermark = self.policy, self.watermark
                work = copy_policy(base)
                round_ = int(getattr(work, "rounds_", 0))
                try:
                    d = self._decide_cohort(
                        work, cohort.X, cohort.eligible, cohort.keywords, cohort_id
                    )
                    probs = np.asarray(d.probabilities, dtype=np.float64)
                except ValueError as exc:  # what the checks could not see
                    raise RequestError("cases", str(exc)) from None
                extras = {"cohort": cohort_id, "round": round_, **cohort.keywords}
                records = []
                for i, event_id in enumerate(event_ids):
                    case_extras = dict(extras, position=i)
                    for key in ("groups", "units"):
                        if key in cohort.keywords:
                            case_extras[key] = cohort.keywords[key][i]
                    p = float(probs[i])
                    records.append(
                        DecisionRecord(
                            event_id=event_id,
                            fingerprint=cohort.fingerprint,
                            context=cohort.contexts[i],
                            eligible=None
                            if cohort.eligible_ids[i] is None
                            else json.dumps(cohort.eligible_ids[i]),
                            group=cohort.case_groups[i],
                            action=int(d.actions[i]),
                            probability=p if np.isfinite(p) else -1.0,
                            probabilities=json.dumps(None),
                            model_version=watermark,
                            charges=None,
                            ts=now,
                            key_id=key_id,
                            info=json.dumps(d.case_info(i)) if d.info else None,
                            extras=json.dumps(case_extras, sort_keys=True),
                            policy_version=self.version,
                        )
                    )
                row = (
                    round_,
                    cohort_id,
                    cohort.fingerprint,
                    json.dumps(event_ids),
                    json.dumps(cohort.keywords, sort_keys=True),
                    watermark,
                    self.version,
                    key_id,
                    now,
                )
                status = store.run(
                    partial(_insert, row=row, records=records, watermark=watermark, round_=round_),
                    "exclusive",
                )
                if status == "inserted":
                    with self.lock:
                        self.policy = work  # the cohort is replayed: what the logs now say
                    return _result(cohort_id, round_, records, self.version)
            raise EventConflictError(
                "cohorts and joins kept changing while this cohort was decided; retry",
                field="cohort_id",
            )

    def _logged(
        self, store: EventStore, cohort: Cohort, cohort_id: str, key_id: str | None
    ) -> CohortResult | None:
        c = cohort_by_id(store, cohort_id)
        if c is None:
            return None
        if c.fingerprint != cohort.fingerprint or (c.key_id or None) != key_id:
            raise EventConflictError(
                f"cohort_id {cohort_id!r} was already used for a different request",
                field="cohort_id",
            )
        recs = store.get_decisions(c.event_ids)
        return _result(cohort_id, c.round, [recs[e] for e in c.event_ids], c.policy_version)


def _result(
    cohort_id: str, round_: int, records: Sequence[DecisionRecord], version: int
) -> CohortResult:
    return CohortResult(
        cohort_id,
        round_,
        records[0].model_version,
        version,
        [(r.event_id, r.action, None if r.probability < 0 else r.probability) for r in records],
    )


def served_policy(config: ServiceConfig, version: int = 1, name: str | None = None) -> ServedPolicy:
    """The :class:`ServedPolicy` of a configuration (:class:`CohortServed` for allocation
    policies)."""
    cls = CohortServed if config.traits.action_type == "allocation" else ServedPolicy
    return cls(config, version, name)


def replay_cohorts(
    config: ServiceConfig,
    store: EventStore,
    *,
    until: int | None = None,
    rounds: int | None = None,
    quarantined: list[Any] | None = None,
) -> Policy:
    """Rebuild an allocation policy's model from the logs: a fresh policy fed the joined
    events (through join seq ``until``) and the cohorts (before round ``rounds``; default:
    every cohort decided at or before ``until``) in log order."""
    served = CohortServed(config)
    bad: list[Any] = [] if quarantined is None else quarantined
    served.advance(store, lambda ev, reason: bad.append((ev, reason)), until=until, rounds=rounds)
    return served.policy


class CohortDecisions:
    """``DecisionService.allocate``: the cohort endpoint's Python API."""

    def allocate(
        self,
        cases: Sequence[dict[str, Any]],
        *,
        capacities: Sequence[int] | None = None,
        cooldowns: Sequence[int] | None = None,
        cohort_id: str | None = None,
        key_id: str | None = None,
    ) -> CohortResult:
        """Allocate resources over a cohort (an ``"allocation"`` policy), log each case as a
        decision and return the allocations (see :mod:`scarce.serve.cohorts`).

        Parameters
        ----------
        cases:
            per case a dict: ``context`` (``d`` numbers), optional ``eligible`` (action ids),
            ``group`` (a string: exports), ``event_id``, ``groups`` (the fairness group id,
            an int >= 0) and ``units`` (who the case is across rounds, an int >= 0; give
            both for every case or for none).
        capacities:
            ``(R,)`` how many cases may get each resource (actions ``1..R``); None: nothing
            couples the cases (each takes its best eligible action).
        cooldowns:
            ``(R,)`` rounds after receiving a resource before it can be given again.
        cohort_id:
            the caller's id of the cohort: a retry with the same id and request returns the
            logged allocations; made by the service when absent.
        key_id:
            the caller's API key id (recorded with each case).

        Raises
        ------
        RequestError, EventConflictError
        """
        svc: Any = self
        served = svc.active.served
        if not isinstance(served, CohortServed):
            raise RequestError(
                "cases",
                f"{svc.config.policy_type} is a {served.traits.action_type!r} policy; decide its "
                "cases with POST /v1/decisions",
            )
        cohort = check_cohort(svc.active.checker, cases, capacities, cooldowns)
        if cohort_id is None:
            cohort_id = svc._new_event_id()
        elif not isinstance(cohort_id, str) or not cohort_id:
            raise RequestError("cohort_id", "must be a non-empty string")
        return served.allocate(
            svc.store,
            cohort,
            cohort_id,
            svc._new_event_id,
            key_id=key_id,
            now=float(svc.clock()),
            on_quarantine=svc._quarantine,
        )
