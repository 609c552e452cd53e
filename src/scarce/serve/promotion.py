"""Promotions of a running service: replace the served policy by another version (a candidate
configuration, a shadow, or an earlier version: a rollback), optionally guarded by the
counterfactual evaluation of :mod:`scarce.serve.evaluate`.

A promotion never stops decisions: the new version's model is built first (a shadow's model,
or the version's latest snapshot caught up with the join log), the promotion is recorded in
the store, and only then is the served policy swapped, in one assignment; every decision is
logged with the version that made it. Other replicas follow at their next joiner run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scarce.serve.config import ConfigError, ServiceConfig
from scarce.serve.learner import copy_policy
from scarce.serve.served import ServedPolicy
from scarce.serve.versions import (
    active_version,
    candidate_config,
    get_version,
    record_promotion,
    register_version,
)

if TYPE_CHECKING:  # pragma: no cover
    from scarce.serve.service import DecisionService


class PromotionError(RuntimeError):
    """A promotion was refused (the message says why; ``field`` names the request field)."""

    def __init__(self, message: str, field: str = "version", details: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.details = details


def prepare(
    service: DecisionService, config: ServiceConfig, version: int, name: str
) -> ServedPolicy:
    """A :class:`ServedPolicy` of ``version`` that has learned the whole join log: a copy of a
    shadow with the same configuration, or the version's latest snapshot caught up."""
    fingerprint = config.policy_fingerprint()
    served = ServedPolicy(config, version, name)
    for shadow in service.shadows.values():
        if shadow.config.policy_fingerprint() == fingerprint:
            with shadow.lock:
                served.policy = copy_policy(shadow.policy)
                served.watermark = shadow.watermark
                served.n_learned = shadow.n_learned
            break
    else:
        served.load_latest_snapshot(service.store)
    served.catch_up(service.store)
    return served


def _swap(service: DecisionService, served: ServedPolicy) -> None:
    from scarce.serve.active import make_active

    # one assignment: a decision uses either the old or the new version, whole
    service.active = make_active(served.config, served)


def promote(
    service: DecisionService,
    *,
    doc: dict[str, Any] | None = None,
    name: str | None = None,
    version: int | None = None,
    shadow: str | None = None,
    guard: dict[str, Any] | None = None,
    key_id: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Serve another policy version; returns ``version``, ``previous``, ``model_version``
    and, when guarded, ``guard`` (the evaluation's figures).

    Exactly one of: ``doc`` (a candidate's parsed TOML, inheriting the served ``[service]``
    and budgets; ``name`` names it), ``version`` (an earlier version: a rollback) or
    ``shadow`` (a shadow's configuration, whose model is already warm).

    ``guard``: ``{"estimator": "snips", "alpha": 0.05}`` -- evaluate the candidate and the
    served configuration on the logs (:func:`scarce.serve.evaluate.guard_check`) and promote
    only if the candidate's lower confidence bound beats the served policy's estimate.

    Raises
    ------
    PromotionError
        the target is unknown, already served, or fails the guard.
        Also when the candidate cannot take over (other shapes, join rules or budgets:
        field ``config``).
    """
    given = [x is not None for x in (doc, version, shadow)]
    if sum(given) != 1:
        raise PromotionError("give exactly one of config, version or shadow", field="body")
    store, now = service.store, float(service.clock())
    with service._sync_lock:
        current = service.active.served
        if shadow is not None:
            if shadow not in service.shadows:
                raise PromotionError(
                    f"no shadow named {shadow!r} (running: {sorted(service.shadows)})", "shadow"
                )
            config, name = service.shadows[shadow].config, shadow
            target = register_version(store, config, name, now)
        elif doc is not None:
            try:
                config = candidate_config(current.config, doc)
            except ConfigError as exc:
                raise PromotionError(
                    f"the candidate cannot be served here: {exc}", "config"
                ) from None
            except Exception as exc:  # noqa: BLE001 - whatever a bad document breaks
                raise PromotionError(
                    f"the candidate cannot be served here: {type(exc).__name__}: {exc}", "config"
                ) from None
            name = name or config.policy_type
            target = register_version(store, config, name, now)
        else:
            assert version is not None
            try:
                found = get_version(store, version)
            except Exception as exc:  # noqa: BLE001 - a missing version is the caller's error
                raise PromotionError(str(exc), "version") from None
            config, name, target = found.config, found.name, found.version
        if target == current.version:
            raise PromotionError(f"policy version {target} ({name!r}) is already served")
        served = prepare(service, config, target, name)
        verdict = None
        if guard is not None:
            from scarce.serve.evaluate import guard_check

            verdict = guard_check(store, current.config, config, **guard)
            if not verdict["passed"]:
                raise PromotionError(
                    f"the guard refused version {target} ({name!r}): {verdict['reason']}",
                    "guard",
                    verdict,
                )
        from scarce.serve.active import budget_rules

        try:
            previous = record_promotion(
                store,
                target,
                now=now,
                key_id=key_id,
                note=note,
                budgets=budget_rules(config).rows(),
            )
        except ConfigError as exc:
            raise PromotionError(str(exc), "config") from None
        _swap(service, served)
    out: dict[str, Any] = {
        "version": target,
        "name": name,
        "previous": previous,
        "model_version": served.watermark,
    }
    if verdict is not None:
        out["guard"] = verdict
    return out


def follow_promotions(service: DecisionService) -> bool:
    """Serve the store's active version if a promotion elsewhere (another replica, ``scarce
    promote``) changed it; returns whether it did. Called by the joiner (``sync``)."""
    active = active_version(service.store)
    if active == service.active.served.version:
        return False
    found = get_version(service.store, active)
    _swap(service, prepare(service, found.config, found.version, found.name))
    return True


__all__ = ["ConfigError", "PromotionError", "follow_promotions", "prepare", "promote"]
