"""The cohort request of ``POST /v1/allocations`` checked (:func:`check_cohort`: shapes,
bounds and consistency, each error a :class:`~scarce.serve.validation.RequestError` naming the
field) and turned into an allocation policy's ``decide`` keywords (:func:`policy_keywords`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scarce.serve.validation import RequestChecker, RequestError, keyword_value

#: fields of one case of a cohort
CASE_FIELDS = ("context", "eligible", "group", "event_id", "groups", "units")
_MAX_COUNT = 1_000_000_000


@dataclass(frozen=True)
class Cohort:
    """A checked cohort request (``n`` cases).

    ``X`` ``(n, d)``; ``eligible`` ``(n, K)`` or None; ``contexts``, ``eligible_ids``,
    ``case_groups`` and ``event_ids`` per case, as logged (``event_ids``: as given, None where
    the service makes one); ``keywords``: ``groups`` and ``units`` (``n`` ints each),
    ``capacities`` and ``cooldowns`` (``R`` ints each), those given; ``fingerprint``: the
    request's identity (a retry with the same ``cohort_id`` must have it)."""

    X: np.ndarray
    eligible: np.ndarray | None
    contexts: list[str]
    eligible_ids: list[list[int] | None]
    case_groups: list[str | None]
    event_ids: list[str | None]
    keywords: dict[str, list[int]]
    fingerprint: str


def _counts(value: Any, field: str, R: int) -> list[int] | None:
    """``R`` non-negative integers (one per resource), or None."""
    if value is None:
        return None
    what = f"must be {R} non-negative integers (one per resource: actions 1..{R})"
    if not isinstance(value, (list, tuple)):
        raise RequestError(field, f"{what}; got {value!r}")
    if len(value) != R:
        raise RequestError(field, f"{what}; got {len(value)} number(s)")
    out = []
    for v in value:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= _MAX_COUNT:
            raise RequestError(field, f"{what}; got {v!r}")
        out.append(int(v))
    return out


def check_cohort(
    checker: RequestChecker,
    cases: Sequence[dict[str, Any]],
    capacities: Any = None,
    cooldowns: Any = None,
) -> Cohort:
    """Check a cohort request; errors name the field (``cases[3].units``, ``capacities``).

    Parameters
    ----------
    checker:
        the service's request checks (shapes, bounds).
    cases:
        per case a dict of :data:`CASE_FIELDS` (``context`` required).
    capacities, cooldowns:
        ``(R,)`` non-negative integers, or None (no capacities: nothing couples the cases,
        each takes its best eligible action).
    """
    cfg = checker.config
    K = cfg.n_actions
    if not isinstance(cases, (list, tuple)) or not cases:
        raise RequestError("cases", "must list at least one case")
    if len(cases) > cfg.max_batch:
        raise RequestError("cases", f"at most max_batch = {cfg.max_batch} cases; got {len(cases)}")
    caps = _counts(capacities, "capacities", K - 1)
    cool = _counts(cooldowns, "cooldowns", K - 1)
    declared = set(cfg.traits.decide_keywords)
    rows, contexts, elig_ids, masks, case_groups, ids = [], [], [], [], [], []
    per_case: dict[str, list[int | None]] = {"groups": [], "units": []}
    seen: dict[Any, int] = {}
    for i, case in enumerate(cases):
        p = f"cases[{i}]."
        if not isinstance(case, dict):
            raise RequestError(f"cases[{i}]", "must be an object")
        for key in case:
            if key not in CASE_FIELDS or (key in per_case and key not in declared):
                raise RequestError(p + str(key), "unknown field")
        try:
            X, stored = checker.model_input(case.get("context"), None, cohort=True)
            mask, eligible = checker.eligible_mask(case.get("eligible"))
        except RequestError as exc:
            raise RequestError(p + exc.field, exc.message) from None
        if caps is not None and not mask[0]:
            raise RequestError(
                p + "eligible",
                "must include action 0 (nothing) when capacities are given: a case that gets "
                "no resource takes action 0",
            )
        group = case.get("group")
        if group is not None and (not isinstance(group, str) or not group):
            raise RequestError(p + "group", "must be a non-empty string")
        event_id = case.get("event_id")
        if event_id is not None:
            if not isinstance(event_id, str) or not event_id:
                raise RequestError(p + "event_id", "must be a non-empty string")
            if ("id", event_id) in seen:
                raise RequestError(p + "event_id", f"repeats cases[{seen['id', event_id]}]")
            seen["id", event_id] = i
        for key, values in per_case.items():
            v = case.get(key)
            if v is not None:
                try:
                    v = keyword_value(v, "groups", K)  # an id >= 0
                except RequestError as exc:
                    raise RequestError(p + key, exc.message) from None
                if key == "units":
                    if ("unit", v) in seen:
                        raise RequestError(p + key, f"repeats cases[{seen['unit', v]}]")
                    seen["unit", v] = i
            values.append(v)
        rows.append(X[0])
        contexts.append(json.dumps(stored))
        elig_ids.append(eligible)
        masks.append(mask)
        case_groups.append(group)
        ids.append(event_id)
    keywords: dict[str, list[int]] = {}
    for key, values in per_case.items():
        given = [v for v in values if v is not None]
        if given and len(given) != len(values):
            first = values.index(None)
            raise RequestError(
                f"cases[{first}].{key}", "must be given for every case of the cohort or for none"
            )
        if given:
            keywords[key] = given  # type: ignore[assignment]
    if caps is not None:
        keywords["capacities"] = caps
    if cool is not None:
        keywords["cooldowns"] = cool
    Xs = np.asarray(rows, dtype=np.float64)
    eligible_arr = None if all(e is None for e in elig_ids) else np.asarray(masks, dtype=bool)
    h = hashlib.sha256(np.ascontiguousarray(Xs, dtype="<f8").tobytes())
    h.update(json.dumps([elig_ids, case_groups, ids, keywords], sort_keys=True).encode())
    return Cohort(Xs, eligible_arr, contexts, elig_ids, case_groups, ids, keywords, h.hexdigest())


def policy_keywords(keywords: dict[str, list[int]], n: int) -> dict[str, np.ndarray]:
    """The ``decide`` keywords of a cohort of ``n`` cases (capacities and cooldowns become
    ``(K,)`` rules: nothing is not limited and has no cooldown)."""
    out = {k: np.asarray(keywords[k], dtype=np.int64) for k in ("groups", "units") if k in keywords}
    if "capacities" in keywords:
        out["capacities"] = np.asarray([n, *keywords["capacities"]], dtype=np.int64)
    if "cooldowns" in keywords:
        out["cooldowns"] = np.asarray([0, *keywords["cooldowns"]], dtype=np.int64)
    return out
