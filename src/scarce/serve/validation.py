"""Checks of what a request asks the service (beyond the HTTP schema, for direct Python
callers too): shapes, finiteness and bounds of features, action ids, rewards and costs. Each
failure is a :class:`RequestError` naming the field."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from scarce.serve.config import MAX_ABS, ServiceConfig


class RequestError(ValueError):
    """Bad request content; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Case(NamedTuple):
    """One checked decision request; ``prefix`` names it in errors (``""`` or
    ``"requests[i]."``)."""

    X: np.ndarray
    mask: np.ndarray
    context_json: str
    eligible_json: str | None
    group: str | None
    event_id: str
    fingerprint: str
    prefix: str = ""
    #: the decision-time keywords of the policy (``groups``, ...), each with a leading axis 1
    context: dict[str, np.ndarray] | None = None
    extras_json: str | None = None


def event_generator(seed: int, event_id: str) -> np.random.Generator:
    """The random stream of one decision: a function of the policy seed and the event id."""
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]
    return np.random.default_rng([int(seed), *words])


#: lists of at most this many numbers are range-checked on Python floats
_FLOAT_CHECKS = 64


class EventIds:
    """Event ids made by the service: UUID version 7 (RFC 9562) as 32 hex digits, that is the
    Unix time in milliseconds (48 bits) followed by 74 random bits from the OS's CSPRNG.

    Ids made later sort after ids made earlier (to the millisecond), so the event log's
    index on ``event_id`` grows at its end instead of at a random page per decision: on a
    log of a million decisions, random ids cost about a fifth more CPU per decision (see
    ``docs/serve.md``, "The request path"). The random bits are drawn 256 ids at a time:
    each ``os.urandom`` call releases the GIL, and on a busy server getting it back costs
    far more than the draw. ``clock``: seconds since the epoch (``time.time``).
    """

    _CHUNK = 256
    _RANDOM_BYTES = 10  # 80 bits drawn, 74 used
    _MS_MASK = (1 << 48) - 1
    _RAND_B_MASK = (1 << 62) - 1

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._random: list[int] = []

    def __call__(self) -> str:
        with self._lock:
            if not self._random:
                raw = os.urandom(self._RANDOM_BYTES * self._CHUNK)
                size = self._RANDOM_BYTES
                self._random = [
                    int.from_bytes(raw[i : i + size], "big") for i in range(0, len(raw), size)
                ]
            bits = self._random.pop()
        ms = int(self._clock() * 1000) & self._MS_MASK
        value = (
            ms << 80
            | 0x7 << 76  # version 7
            | (bits >> 68 & 0xFFF) << 64  # rand_a, 12 bits
            | 0b10 << 62  # the RFC 9562 variant
            | bits & self._RAND_B_MASK  # rand_b, 62 bits
        )
        return f"{value:032x}"


_NO_OPTIONS = json.dumps([None, None]).encode()

try:  # a fifth of the time of json.dumps for the lists of numbers logged with each decision
    import orjson

    def json_text(value: Any) -> str:
        """JSON of a list of finite numbers (or ints, strings, None) as logged: the text may
        differ from ``json.dumps``'s (no spaces), the values read back are the same."""
        return orjson.dumps(value).decode()

except ImportError:  # the service without the ``serve`` extra

    def json_text(value: Any) -> str:
        """JSON of a list of finite numbers (or ints, strings, None) as logged."""
        return json.dumps(value)


def request_fingerprint(
    X: np.ndarray,
    eligible: list[int] | None,
    group: str | None,
    extras_json: str | None = None,
) -> str:
    """Identity of a request (to tell a retry from a reuse of its event id); ``eligible`` is
    sorted, so its order does not matter; ``extras_json``: the decision-time keywords."""
    h = hashlib.sha256(np.ascontiguousarray(X, dtype="<f8").tobytes())
    h.update(
        _NO_OPTIONS
        if eligible is None and group is None
        else json.dumps([eligible, group]).encode()
    )
    if extras_json is not None:
        h.update(extras_json.encode())
    return h.hexdigest()


#: per-case shapes of the keywords the service knows: ``"int"`` (an id), ``"number"``,
#: ``"bool"`` or ``"items"`` (one number per action / item); other declared keywords take a
#: number or a (nested) list of numbers
KEYWORD_SHAPES = {
    "groups": "int",
    "model_rewards": "number",
    "item_rewards": "items",
    "round_outcome": "number",
    "individual": "bool",
}


def keyword_value(value: Any, field: str, n_actions: int) -> Any:
    """A keyword's per-case value checked against :data:`KEYWORD_SHAPES` (finite numbers
    within +-MAX_ABS); returns it as plain Python."""
    kind = KEYWORD_SHAPES.get(field)
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise RequestError(field, f"must be true or false; got {value!r}")
        return bool(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise RequestError(field, f"must be an int >= 0; got {value!r}")
        return int(value)
    if kind == "number" and isinstance(value, (list, tuple)):
        raise RequestError(field, "must be one number")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RequestError(field, "must be a number or a list of numbers") from None
    if kind == "items" and arr.shape != (n_actions,):
        raise RequestError(
            field, f"must be {n_actions} numbers (one per item); got {list(arr.shape)}"
        )
    if not np.isfinite(arr).all() or (arr.size and np.abs(arr).max() > MAX_ABS):
        raise RequestError(field, f"must be finite numbers within +-{MAX_ABS:g}")
    return arr.tolist()


class RequestChecker:
    """Validates requests for one service configuration.

    Parameters
    ----------
    config:
        the service configuration (shapes, ``max_abs_feature``, reward dimension and weights).
    reward_bounds:
        ``(low, high)`` of the scalar reward the policy learns, or None.
    """

    def __init__(self, config: ServiceConfig, reward_bounds: tuple[float, float] | None) -> None:
        self.config = config
        self.reward_bounds = reward_bounds
        self._all_actions = np.ones(config.n_actions, dtype=bool)
        self._all_actions.setflags(write=False)  # shared by every request without eligible

    def model_input(
        self, context: Any, action_features: Any, *, cohort: bool = False
    ) -> tuple[np.ndarray, Any]:
        """``(X, stored_context)``: the policy input ``(1, d)`` or ``(1, K, d)`` and what is
        logged. ``cohort``: a case of a cohort (``POST /v1/allocations``), the only way an
        ``"allocation"`` policy decides."""
        cfg = self.config
        if cfg.traits.action_type == "allocation" and not cohort:
            raise RequestError(
                "body",
                f"{cfg.policy_type} is an 'allocation' policy: its decisions are coupled across "
                "a cohort; send the cohort's cases to POST /v1/allocations",
            )
        d, K = cfg.n_features, cfg.n_actions
        if cfg.features == "shared":
            if action_features is not None:
                raise RequestError(
                    "action_features", "not accepted: this policy uses a shared context"
                )
            if context is None:
                raise RequestError("context", f"required: a list of {d} numbers")
            X = self.float_array(context, "context", (d,))
            return X[None, :], X.tolist()
        if action_features is None:
            raise RequestError("action_features", f"required: {K} lists of {d} numbers")
        X = self.float_array(action_features, "action_features", (K, d))
        return X[None, :, :], X.tolist()

    def float_array(self, value: Any, field: str, shape: tuple[int, ...]) -> np.ndarray:
        bound = self.config.max_abs_feature
        if type(value) is list and len(shape) == 1 and len(value) == shape[0] <= _FLOAT_CHECKS:
            # a short list of numbers (what the JSON body gives): its bound checked on Python
            # floats, which costs less than NumPy's reduction at this size (anything else,
            # including NaN, a nested list or a string, takes the general checks below)
            try:
                if all(-bound <= v <= bound for v in value):
                    arr = np.array(value, dtype=np.float64)
                    if arr.shape == shape:
                        return arr
            except (TypeError, ValueError):
                pass
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise RequestError(field, f"must be numbers with shape {list(shape)}") from None
        if arr.shape != shape:
            raise RequestError(field, f"must have shape {list(shape)}; got {list(arr.shape)}")
        if not np.abs(arr).max() <= bound:  # one reduction: also False for NaN
            if not np.isfinite(arr).all():
                raise RequestError(field, "must be finite (no NaN or infinity)")
            raise RequestError(field, f"values must be within +-{bound:g}; rescale the features")
        return arr

    def eligible_mask(self, eligible: Sequence[int] | None) -> tuple[np.ndarray, list[int] | None]:
        """``(mask (K,), sorted ids or None)``: the order of ``eligible`` does not matter."""
        K = self.config.n_actions
        if eligible is None:
            return self._all_actions, None
        if self.config.traits.action_type not in ("discrete", "allocation"):
            raise RequestError(
                "eligible", f"not accepted by a {self.config.traits.action_type!r} policy"
            )
        mask = np.ones(K, dtype=bool)
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
        return mask, sorted(int(a) for a in ids)

    def context_keywords(self, given: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
        """``(values, JSON)`` of the decision-time keywords of a request (those the policy
        declares; others are a :class:`RequestError`)."""
        if not given:
            return {}, None
        declared = self.config.traits.decide_keywords
        out = {}
        for key, value in given.items():
            if value is None:
                continue
            if key not in declared:
                raise RequestError(key, f"not accepted by {self.config.policy_type}")
            out[key] = keyword_value(value, key, self.config.n_actions)
        return out, (json.dumps(out, sort_keys=True) if out else None)

    def reward_extras(self, given: dict[str, Any] | None) -> dict[str, Any] | None:
        """The feedback keywords of a reward (those the policy declares besides ``costs``,
        which is the reward's ``cost``)."""
        if not given:
            return None
        declared = set(self.config.traits.update_keywords) - {"costs"}
        out = {}
        for key, value in given.items():
            if value is None:
                continue
            if key not in declared:
                raise RequestError(key, f"not accepted by {self.config.policy_type}")
            out[key] = keyword_value(value, key, self.config.n_actions)
        return out or None

    def reward(self, value: Any, cost: Any) -> tuple[list[float], list[float] | None]:
        """Validate a reward ``value`` (scalar or ``(reward_dim,)``) and optional ``cost``."""
        dim = self.config.reward_dim or 1
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
        bounds = self.reward_bounds
        if bounds is not None and self.config.traits.reward_kind != "vector":
            r = float(np.dot(self.config.reward_weights, out))
            if not bounds[0] <= r <= bounds[1]:
                raise RequestError(
                    "value",
                    f"{self.config.policy_type} learns rewards in [{bounds[0]}, {bounds[1]}]; "
                    f"got {r}",
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
            m = self.config.traits.n_resources
            if m and len(costs) != m:
                raise RequestError(
                    "cost", f"must have {m} number(s), one per resource of the policy's budget"
                )
        return out, costs
