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

Shadows: candidate policies that learn from the same join log and choose for every case
beside the served policy; their choices are logged with the decision and never change it.
Promotions (:mod:`scarce.serve.promotion`) swap the served policy for another version.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from scarce.core.policy import Policy
from scarce.serve.active import (
    Active,
    BudgetExhaustedError,
    DecisionResult,
    EventConflictError,
    budget_rules,
    make_active,
)
from scarce.serve.budgets import spent
from scarce.serve.cohorts import CohortDecisions, served_policy
from scarce.serve.config import MAX_ABS, ServiceConfig
from scarce.serve.drive import Steps, UnitDriver
from scarce.serve.health import HealthMonitor
from scarce.serve.learner import models_equal, replay, states_equal
from scarce.serve.served import Choice, ServedPolicy, read_distribution, shadow_record
from scarce.serve.store import DecisionRecord, EventStore, StoreError, UnknownEventError
from scarce.serve.validation import (
    Case,
    EventIds,
    RequestChecker,
    RequestError,
    event_generator,
    json_text,
    request_fingerprint,
)

_MAX_BUDGET_RETRIES = 20
_LOG = logging.getLogger("scarce.serve")


class DecisionService(CohortDecisions):
    """Serve one policy over an :class:`EventStore`.

    Parameters
    ----------
    config:
        the policy and the service rules; on a store that has served other versions it must
        be the active one (see :mod:`scarce.serve.versions`).
    store:
        the event store (created and tied to ``config`` on construction).
    clock:
        returns the current time in seconds since the epoch (tests inject a fake clock).
    shadows:
        ``(name, config)`` of candidate policies run beside the served one (their choices are
        logged with every decision; see :func:`scarce.serve.versions.candidate_config` for
        building them on the served configuration).
    """

    def __init__(
        self,
        config: ServiceConfig,
        store: EventStore,
        *,
        clock: Callable[[], float] = time.time,
        shadows: Sequence[tuple[str, ServiceConfig]] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.health = HealthMonitor(
            store.db, config.min_free_disk_mb * 2**20, config.integrity_check_interval
        )
        rules = budget_rules(config)
        try:
            version = store.initialize(
                config.policy_fingerprint(),
                rules.rows(),
                config_doc=json.dumps(config.to_doc(), sort_keys=True),
                name=config.name,
                now=float(clock()),
            )
        except (TypeError, ValueError):  # rows that make no sense: look at the file
            version = -1
        found = self.health.check_integrity()
        if found or version < 0:
            raise StoreError(f"the event store failed its integrity check: {found}")
        self._new_event_id = EventIds(clock)
        self._driver = UnitDriver(store)
        self._sync_lock = threading.Lock()
        served = served_policy(config, version)
        self.active = Active(served, rules, RequestChecker(config, served.policy.reward_bounds))
        self.shadows: dict[str, ServedPolicy] = {}
        for name, cfg in shadows:
            if name in self.shadows:
                raise ValueError(f"shadow {name!r} is given twice")
            self.shadows[name] = ServedPolicy(cfg, 0, name)
        self.load_latest_snapshot()
        self.catch_up()

    # ------------------------------------------------------------------ the active policy
    @property
    def config(self) -> ServiceConfig:
        return self.active.served.config

    @property
    def policy(self) -> Policy:
        """The served model."""
        return self.active.served.policy

    @property
    def policy_version(self) -> int:
        return self.active.served.version

    @property
    def watermark(self) -> int:
        """Joined events applied to the served model (its ``model_version``)."""
        return self.active.served.watermark

    @property
    def n_learned(self) -> int:
        return self.active.served.n_learned

    @property
    def n_quarantined(self) -> int:
        """Events this process quarantined (the store counts every replica's)."""
        return self.active.served.n_quarantined

    @property
    def snapshot_version(self) -> int | None:
        return self.active.served.snapshot_version

    @property
    def checker(self) -> RequestChecker:
        return self.active.checker

    # ------------------------------------------------------------------ validation
    def check_reward(self, value: Any, cost: Any) -> tuple[list[float], list[float] | None]:
        """Validate a reward ``value`` (scalar or ``(reward_dim,)``) and optional ``cost``."""
        return self.active.checker.reward(value, cost)

    def _case(
        self,
        checker: RequestChecker,
        context: Any,
        action_features: Any,
        eligible: Sequence[int] | None,
        group: str | None,
        event_id: str | None,
        keywords: dict[str, Any] | None,
        prefix: str = "",
    ) -> Case:
        try:
            X, stored_context = checker.model_input(context, action_features)
            mask, eligible_ids = checker.eligible_mask(eligible)
            if group is not None and (not isinstance(group, str) or not group):
                raise RequestError("group", "must be a non-empty string")
            ctx, extras_json = checker.context_keywords(keywords) if keywords else ({}, None)
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
            context_json=json_text(stored_context),
            eligible_json=None if eligible_ids is None else json.dumps(eligible_ids),
            group=group,
            event_id=event_id,
            fingerprint=request_fingerprint(X, eligible_ids, group, extras_json),
            prefix=prefix,
            context=ctx,
            extras_json=extras_json,
        )

    # ------------------------------------------------------------------ decisions
    def decide(
        self,
        context: Any = None,
        *,
        action_features: Any = None,
        eligible: Sequence[int] | None = None,
        group: str | None = None,
        event_id: str | None = None,
        key_id: str | None = None,
        keywords: dict[str, Any] | None = None,
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
        keywords:
            decision-time context the policy declares (``{"groups": 2}``, ...), per case.

        Raises
        ------
        RequestError, BudgetExhaustedError, EventConflictError
        """
        active = self.active
        case = self._case(
            active.checker, context, action_features, eligible, group, event_id, keywords
        )
        return self._driver.run(self._steps(active, [case], key_id))[0]  # type: ignore[no-any-return]

    async def decide_async(
        self,
        context: Any = None,
        *,
        action_features: Any = None,
        eligible: Sequence[int] | None = None,
        group: str | None = None,
        event_id: str | None = None,
        key_id: str | None = None,
        keywords: dict[str, Any] | None = None,
    ) -> DecisionResult:
        """:meth:`decide` for an event loop: the same steps, but the wait for the commit is
        awaited instead of blocking a thread (the choice and the budget read run inline; they
        take tens of microseconds; a read of the store that it needs, PostgreSQL's in a worker
        thread). Only for stores with group commit; elsewhere run :meth:`decide` in a worker
        thread."""
        active = self.active
        case = self._case(
            active.checker, context, action_features, eligible, group, event_id, keywords
        )
        return (await self._driver.run_async(self._steps(active, [case], key_id)))[0]  # type: ignore[no-any-return]

    def decide_batch(
        self, requests: Sequence[dict[str, Any]], *, key_id: str | None = None
    ) -> list[DecisionResult]:
        """Decide several cases, all or nothing: either every case is answered (and logged
        and charged together) or an error is raised and nothing is logged. ``requests``:
        keyword dicts of :meth:`decide` (decision-time keywords of the policy at the top
        level); errors name the case (``requests[i].field``)."""
        active = self.active
        cases = self._batch_cases(active, requests)
        return self._driver.run(self._steps(active, cases, key_id))  # type: ignore[no-any-return]

    async def decide_batch_async(
        self, requests: Sequence[dict[str, Any]], *, key_id: str | None = None
    ) -> list[DecisionResult]:
        """:meth:`decide_batch` on an event loop (see :meth:`decide_async`)."""
        active = self.active
        cases = self._batch_cases(active, requests)
        return await self._driver.run_async(self._steps(active, cases, key_id))  # type: ignore[no-any-return]

    def _batch_cases(self, active: Active, requests: Sequence[dict[str, Any]]) -> list[Case]:
        cases, seen = [], {}
        declared = active.served.traits.decide_keywords
        for i, req in enumerate(requests):
            given = req.get("event_id")
            if given is not None and given in seen:
                raise RequestError(f"requests[{i}].event_id", f"repeats requests[{seen[given]}]")
            seen[given] = i
            keywords = {k: req[k] for k in declared if req.get(k) is not None}
            cases.append(
                self._case(
                    active.checker,
                    req.get("context"),
                    req.get("action_features"),
                    req.get("eligible"),
                    req.get("group"),
                    given,
                    keywords,
                    prefix=f"requests[{i}].",
                )
            )
        return cases

    def _shadow_choices(self, case: Case, allowed: Any) -> str | None:
        """Every shadow's choice for ``case`` (an error is recorded, never raised)."""
        if not self.shadows:
            return None
        choices: dict[str, Choice | str] = {}
        for name, shadow in self.shadows.items():
            try:
                choices[name] = shadow.choose(case.X, allowed, case.event_id, case.context or {})
            except Exception as exc:  # noqa: BLE001 - a shadow never fails a decision
                choices[name] = f"{type(exc).__name__}: {exc}"
        return shadow_record(choices)

    def _steps(self, active: Active, cases: list[Case], key_id: str | None) -> Steps:
        """The logic of a decision unit without I/O to the writer: yields the records and
        charges to log together and receives the unit's result (one logic for the sync and
        async callers, single decisions and batches). Returns the answers in case order."""
        served, rules = active.served, active.rules
        discrete = served.traits.action_type == "discrete"
        known: dict[int, DecisionResult] = {}  # answered from the log (retries)
        looked_up = False
        fresh = False  # the budget view may stand in for a read
        for _ in range(_MAX_BUDGET_RETRIES):
            remaining: dict[tuple[str, str], float] = {}
            view = None
            if rules.active:
                view = None if fresh else self.store.budget_view()
                remaining = view if view is not None else (yield self.store.remaining_budgets)
            unit, answers = [], []
            exhausted = None
            stale = False
            for i, case in enumerate(cases):
                if i in known:
                    answers.append(known[i])
                    continue
                allowed = case.mask
                everything = case.eligible_json is None  # every action may be chosen
                if rules.active:
                    # (all_actions exactly when every action fits: rules.plenty)
                    try:
                        affordable = rules.allowed(case.group, remaining)
                    except KeyError:  # a row the view lacks (a fresh read has them all)
                        if view is None:
                            raise
                        affordable = None
                    if view is not None and affordable is not rules.all_actions:
                        stale = True  # the view decides only while every action fits
                        break
                    if affordable is not rules.all_actions:
                        everything = False
                        allowed = allowed & affordable
                        if not allowed.any():
                            exhausted = case
                            break
                # (no mask where nothing is excluded: the policy skips its eligibility checks)
                allowed = None if everything or not discrete else allowed
                choice = served.choose(case.X, allowed, case.event_id, case.context or {})
                charges = rules.charges(choice.action, case.group) if rules.active else []
                for resource, group, amount in charges:  # later cases of the unit see them
                    remaining[(resource, group)] -= amount
                rec = DecisionRecord(
                    event_id=case.event_id,
                    fingerprint=case.fingerprint,
                    context=case.context_json,
                    eligible=case.eligible_json,
                    group=case.group,
                    action=choice.action,
                    probability=-1.0 if choice.probability is None else choice.probability,
                    probabilities=choice.distribution_json(),
                    model_version=choice.model_version,
                    charges=rules.charges_json(charges),
                    ts=float(self.clock()),
                    key_id=key_id,
                    info=None if choice.info is None else json.dumps(choice.info),
                    extras=case.extras_json,
                    action_value=(
                        None if choice.action_value is None else json.dumps(choice.action_value)
                    ),
                    policy_version=served.version,
                    shadow=self._shadow_choices(case, allowed),
                )
                unit.append((rec, spent(charges)))
                answers.append(self._result(rec, choice))
            if stale:
                fresh = True
                continue
            if exhausted is not None:
                if not looked_up:  # perhaps a retry of logged decisions: answer from the log
                    known.update((yield partial(self._logged, cases, known, key_id)))
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
                known.update((yield partial(self._logged, cases, known, key_id)))
                looked_up = True
            # "budget": another request (or replica) spent it first; read again
            fresh = fresh or result == "budget"
        raise BudgetExhaustedError("budgets changed under contention; retry the request")

    @staticmethod
    def _result(rec: DecisionRecord, choice: Choice | None = None) -> DecisionResult:
        if choice is not None:
            action: Any = choice.action if choice.action_value is None else choice.action_value
            return DecisionResult(
                rec.event_id,
                action,
                choice.probability,
                choice.probabilities,
                rec.model_version,
                rec.policy_version or 1,
                choice.support,
            )
        action = rec.action if rec.action_value is None else json.loads(rec.action_value)
        probabilities, support = read_distribution(rec.probabilities)
        return DecisionResult(
            rec.event_id,
            action,
            None if rec.probability < 0 else rec.probability,
            probabilities,
            rec.model_version,
            rec.policy_version or 1,
            support,
        )

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
            out[todo[event_id]] = self._result(rec)
        return out

    # ------------------------------------------------------------------ rewards
    def reward(
        self,
        event_id: str,
        value: Any,
        cost: Any = None,
        *,
        key_id: str | None = None,
        extras: dict[str, Any] | None = None,
    ) -> str:
        """Record a reward for ``event_id``; returns its status (see :meth:`EventStore.add_reward`).

        ``extras``: feedback keywords the policy declares (``{"model_rewards": 0.3}``, ...).

        Raises
        ------
        RequestError
            bad value, cost or feedback keyword (also a cost that cannot settle the
            decision's reservation of the policy's budget).
        UnknownEventError
            no decision was logged under ``event_id`` (by the key ``key_id``).
        """
        checker = self.active.checker
        vals, costs = checker.reward(value, cost)
        return self.store.add_reward(
            event_id,
            vals,
            costs,
            checker.reward_extras(extras),
            now=float(self.clock()),
            window=self.config.reward_window,
            aggregation=self.config.aggregation,
            key_id=key_id,
        )

    # ------------------------------------------------------------------ joiner and learner
    def sync(self) -> int:
        """Run the joiner, follow a promotion made elsewhere, apply new joined events to the
        learners, publish a snapshot when ``snapshot_every`` events have been applied since
        the last. Returns events applied to the served model."""
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
            from scarce.serve.promotion import follow_promotions

            follow_promotions(self)
            self.load_latest_snapshot()
            applied = self.catch_up()
            served = self.active.served
            if cfg.snapshot_every and served.since_snapshot >= cfg.snapshot_every:
                self.publish_snapshot()
            return applied

    def _quarantine(self, ev: Any, reason: str) -> None:
        self.store.quarantine(ev.seq, ev.event_id, reason, float(self.clock()))

    def catch_up(self) -> int:
        """Apply joined events after the current watermark to the served model and to every
        shadow, in join order, one at a time (so that live learning and replay give
        bit-identical models). Events the served model cannot learn are quarantined (logged,
        recorded in the store) and skipped."""
        applied = self.active.served.catch_up(self.store, self._quarantine)
        for shadow in self.shadows.values():
            shadow.catch_up(self.store)
        return applied

    def load_latest_snapshot(self) -> bool:
        """Load the served version's latest published snapshot if it is ahead of this
        learner (checksum, class and parameters verified before anything is constructed)."""
        return self.active.served.load_latest_snapshot(self.store)

    def publish_snapshot(self) -> dict[str, Any]:
        """Store the current learner as a snapshot; returns its version, checksum, watermark."""
        return self.active.served.publish_snapshot(self.store, float(self.clock()))

    # ------------------------------------------------------------------ reporting
    def describe(self) -> dict[str, Any]:
        """Config, versions, counts, budgets and shadows (``GET /v1/policies/{name}``)."""
        budgets: dict[str, Any] = {}
        for resource, group, initial, remaining in self.store.budget_rows():
            entry = budgets.setdefault(resource, {"initial": None, "remaining": None, "quotas": {}})
            if group == "":
                entry["initial"], entry["remaining"] = initial, remaining
            else:
                entry["quotas"][group] = {"initial": initial, "remaining": remaining}
        served = self.active.served
        return {
            "name": self.config.name,
            "config": self.config.to_dict(),
            "policy_version": served.version,
            "model_version": served.watermark,
            "snapshot_version": served.snapshot_version,
            "counts": self.store.counts(),
            "budgets": budgets,
            "shadows": {
                name: {"type": s.config.policy_type, "model_version": s.watermark}
                for name, s in self.shadows.items()
            },
        }


__all__ = [
    "MAX_ABS",
    "Active",
    "budget_rules",
    "make_active",
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
