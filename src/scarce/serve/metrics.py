"""Prometheus metrics of the service (``GET /metrics``, ``prometheus_client``).

Counted as requests are answered (per process; with ``--workers N`` the processes share
``PROMETHEUS_MULTIPROC_DIR`` and every scrape sums them):

* ``scarce_decisions_total{status}``: decisions by HTTP status (a batch counts its cases);
* ``scarce_rewards_total{status}``: rewards by outcome (``accepted``, ``duplicate``,
  ``ignored``, ``late``, or the HTTP status of a refusal);
* ``scarce_request_duration_seconds{endpoint}``: latency histogram per endpoint.

Read from the service and the store at scrape time:

* ``scarce_budget_remaining{resource, group}`` and ``scarce_budget_initial{...}``;
* ``scarce_unjoined_decisions`` (decisions waiting for their reward window or a reward) and
  ``scarce_learner_lag_events`` (joined events this process has not learned yet);
* ``scarce_quarantined_events`` (joined events no model could learn);
* ``scarce_model_version``, ``scarce_policy_version`` and ``scarce_snapshot_version`` of this
  process's model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StoreCollector(Collector):
    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        svc, store = self.service, self.service.store
        remaining = GaugeMetricFamily(
            "scarce_budget_remaining", "Budget left", labels=["resource", "group"]
        )
        initial = GaugeMetricFamily(
            "scarce_budget_initial", "Budget at the start", labels=["resource", "group"]
        )
        for resource, group, first, left in store.budget_rows():
            remaining.add_metric([resource, group], left)
            initial.add_metric([resource, group], first)
        yield remaining
        yield initial
        unjoined = store.query("SELECT COUNT(*) FROM decisions WHERE join_seq IS NULL")[0][0]
        yield GaugeMetricFamily(
            "scarce_unjoined_decisions", "Decisions not joined yet", value=float(unjoined)
        )
        last = store.query("SELECT COALESCE(MAX(seq), 0) FROM joined_events")[0][0]
        yield GaugeMetricFamily(
            "scarce_learner_lag_events",
            "Joined events this process has not learned yet",
            value=float(max(0, int(last) - svc.watermark)),
        )
        quarantined = store.query("SELECT COUNT(*) FROM quarantined_events")[0][0]
        yield GaugeMetricFamily(
            "scarce_quarantined_events",
            "Joined events the model could not learn",
            value=float(quarantined),
        )
        yield GaugeMetricFamily(
            "scarce_model_version", "Joined events applied to the model", value=svc.watermark
        )
        yield GaugeMetricFamily(
            "scarce_policy_version",
            "The policy version this process serves (changed by promotions)",
            value=float(svc.policy_version),
        )
        yield GaugeMetricFamily(
            "scarce_snapshot_version",
            "Latest snapshot loaded or published by this process (0: none)",
            value=float(svc.snapshot_version or 0),
        )


class ServiceMetrics:
    """The metrics of one app (its own registry, so several apps can live in one process)."""

    def __init__(self, service: Any) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "scarce_decisions_total", "Decisions by HTTP status", ["status"], registry=self.registry
        )
        self.rewards = Counter(
            "scarce_rewards_total", "Rewards by outcome", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "scarce_request_duration_seconds",
            "Time to answer a request",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._store = _StoreCollector(service)
        self.registry.register(self._store)
        # pre-bound children: a label lookup per request costs more than the increment
        self._decided = {s: self.decisions.labels(s) for s in ("200", "409", "422", "503")}
        self._timers = {
            e: self.latency.labels(e) for e in ("decisions", "batch", "rewards", "other")
        }
        self._ok, self._decision_timer = self._decided["200"], self._timers["decisions"]

    def decided(self, status: int, n: int = 1) -> None:
        child = self._decided.get(str(status)) or self.decisions.labels(str(status))
        child.inc(n)

    def decision_answered(self, seconds: float) -> None:
        """One decision answered 200 in ``seconds`` (the fast path's pre-bound children)."""
        self._ok.inc()
        self._decision_timer.observe(seconds)

    def observe(self, endpoint: str, seconds: float) -> None:
        self._timers.get(endpoint, self._timers["other"]).observe(seconds)

    def render(self) -> bytes:
        """The text exposition format of every metric (every worker's with multiprocess)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            merged.register(self._store)
            return generate_latest(merged)
        return generate_latest(self.registry)
