"""Service configuration: which policy to serve and the rules around it (reward window,
default reward, aggregation of repeated rewards, budgets, group quotas, limits).

A configuration is a TOML file. Top-level keys name the policy class (``type``) and its
constructor keywords; tables ``[service]``, ``[budgets.RESOURCE]`` and ``[quotas.RESOURCE]``
add the service rules::

    type = "LinUCB"          # any class in scarce.policies.get_policies()
    n_actions = 3
    n_features = 4
    alpha = 1.0
    seed = 0

    [service]
    name = "default"         # the policy's name in /v1/policies/{name}
    reward_window = 86400.0  # seconds after a decision during which its reward is learned
    default_reward = 0.0     # learned when no reward came in the window (omit: learn nothing)
    aggregation = "earliest" # repeated, different rewards: keep the "earliest" or "sum" them

    [budgets.beds]           # a resource: total units, and the cost of each action
    total = 100.0
    costs = [0.0, 1.0, 1.0]

    [quotas.beds]            # per-group caps on the same resource (groups not listed: no cap)
    north = 60.0
    south = 60.0
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scarce.core.policy import Policy
from scarce.serve.traits import PolicyTraits, probe_traits

AGGREGATIONS = ("earliest", "sum")
#: largest magnitude any number in a request or config may have (beyond it squares overflow)
MAX_ABS = 1e12
FEATURE_MODES = ("shared", "per_action")

#: the policy served when ``scarce serve`` gets no ``--policy``: LinUCB on 4 features, 3 actions
DEFAULT_POLICY: dict[str, Any] = {
    "type": "LinUCB",
    "n_actions": 3,
    "n_features": 4,
    "alpha": 1.0,
    "seed": 0,
}


class ConfigError(ValueError):
    """A service configuration is invalid (the message names the key)."""


@dataclass(frozen=True)
class Budget:
    """One resource: ``total`` units, action ``a`` costs ``costs[a]``; optional per-group caps."""

    resource: str
    total: float
    costs: tuple[float, ...]
    quotas: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``scarce serve`` needs besides the database and the keys.

    Attributes
    ----------
    policy_type:
        class name in ``scarce.policies.POLICIES``.
    policy_params:
        constructor keywords of that class (must include ``n_actions`` and ``n_features``;
        ``seed`` defaults to 0 because decisions are derived from it).
    name:
        the policy's name in the API.
    features:
        ``"shared"``: a request's ``context`` is one ``(d,)`` vector; ``"per_action"``: a
        request carries ``action_features`` ``(K, d)``.
    reward_window:
        seconds after a decision during which rewards are learned; later ones are stored only.
    default_reward:
        learned for a decision whose window closed without a reward; None: learn nothing.
    aggregation:
        ``"earliest"`` (the first reward counts; learned as soon as it arrives) or ``"sum"``
        (different rewards within the window add up; learned when the window closes).
    reward_dim:
        length of a reward vector (1: scalar rewards). Default: ``n_objectives`` for a
        vector-reward policy (``reward_kind = "vector"``), else 1.
    reward_weights:
        ``(reward_dim,)`` weights that turn a reward vector into the scalar the policy learns
        (scalar policies), or into the scalar summary that exports and evaluations use
        (vector policies, which learn the vector; default: the mean of the objectives).
    budgets:
        the resources whose remaining amount is enforced at decision time.
    max_batch:
        most decisions in one ``/v1/decisions/batch`` request.
    max_body_bytes:
        largest accepted request body.
    max_abs_feature:
        largest accepted magnitude of a context or action feature (a 422 beyond it): one
        extreme event can make a model's matrices singular (GLM policies fail beyond about
        1e9); rescale features rather than raise it.
    min_free_disk_mb:
        ``GET /v1/health`` is 503 when the SQLite database's file system has less free space.
    integrity_check_interval:
        seconds between SQLite integrity checks (``PRAGMA quick_check``, run at start and then
        by the background joiner; 0: only at start). A failed check makes health 503.
    snapshot_every:
        publish a model snapshot after this many newly joined events (0: only on request).
    sync_interval:
        seconds between background joiner runs in ``scarce serve`` (0: no background joiner).
    traits:
        (derived) what the service knows about the configured policy
        (:class:`~scarce.serve.traits.PolicyTraits`).
    """

    policy_type: str = DEFAULT_POLICY["type"]
    policy_params: dict[str, Any] = field(
        default_factory=lambda: {k: v for k, v in DEFAULT_POLICY.items() if k != "type"}
    )
    name: str = "default"
    features: str = "shared"
    reward_window: float = 86400.0
    default_reward: float | None = None
    aggregation: str = "earliest"
    reward_dim: int | None = None
    reward_weights: tuple[float, ...] | None = None
    budgets: tuple[Budget, ...] = ()
    max_batch: int = 100
    max_body_bytes: int = 1 << 20
    max_abs_feature: float = 1e6
    min_free_disk_mb: float = 64.0
    integrity_check_interval: float = 3600.0
    snapshot_every: int = 1000
    sync_interval: float = 1.0
    traits: PolicyTraits = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from scarce.policies import get_policies

        POLICIES = get_policies()

        if self.policy_type not in POLICIES:
            raise ConfigError(f"type must be one of {sorted(POLICIES)}; got {self.policy_type!r}")
        params = dict(self.policy_params)
        for key in ("n_actions", "n_features"):
            v = params.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{key} must be an int >= 1; got {v!r}")
        seed = params.setdefault("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative int; got {seed!r}")
        object.__setattr__(self, "policy_params", params)
        cls = POLICIES[self.policy_type]
        try:
            probe = cls(**params)
            probe._check_params()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"policy {self.policy_type}: {exc}") from None
        if self.features not in FEATURE_MODES:
            raise ConfigError(
                f"service.features must be one of {FEATURE_MODES}; got {self.features!r}"
            )
        try:
            traits = probe_traits(cls, params, self.features)
        except ValueError as exc:
            raise ConfigError(f"policy {self.policy_type}: {exc}") from None
        object.__setattr__(self, "traits", traits)
        self._check_reward_rules(traits)
        if not isinstance(self.name, str) or not self.name or len(self.name) > 100:
            raise ConfigError(
                f"service.name must be a non-empty string (<= 100 chars); got {self.name!r}"
            )
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(
                f"service.aggregation must be one of {AGGREGATIONS}; got {self.aggregation!r}"
            )
        _check_number(self.reward_window, "service.reward_window", low=0.0)
        if self.default_reward is not None:
            _check_number(self.default_reward, "service.default_reward")
            bounds = probe.reward_bounds
            if bounds is not None and not bounds[0] <= self.default_reward <= bounds[1]:
                raise ConfigError(
                    f"service.default_reward must be in {list(bounds)} for {self.policy_type}; "
                    f"got {self.default_reward!r}"
                )
        for key in ("max_batch", "max_body_bytes"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"service.{key} must be an int >= 1; got {v!r}")
        if (
            isinstance(self.snapshot_every, bool)
            or not isinstance(self.snapshot_every, int)
            or (self.snapshot_every < 0)
        ):
            raise ConfigError(
                f"service.snapshot_every must be an int >= 0; got {self.snapshot_every!r}"
            )
        _check_number(self.sync_interval, "service.sync_interval", low=0.0)
        _check_number(self.min_free_disk_mb, "service.min_free_disk_mb", low=0.0)
        _check_number(self.integrity_check_interval, "service.integrity_check_interval", low=0.0)
        _check_number(self.max_abs_feature, "service.max_abs_feature")
        if not 0 < self.max_abs_feature <= MAX_ABS:
            raise ConfigError(
                f"service.max_abs_feature must be in (0, {MAX_ABS:g}]; got {self.max_abs_feature!r}"
            )
        K = self.n_actions
        if self.budgets and traits.action_type != "discrete":
            raise ConfigError(
                f"[budgets] give a cost per action; {self.policy_type} is a "
                f"{traits.action_type!r} policy (its own parameters hold its costs)"
            )
        names = set()
        for b in self.budgets:
            if b.resource.startswith("ledger:"):
                raise ConfigError(
                    f"budgets.{b.resource}: names starting with 'ledger:' are the policy's own budget"
                )
            if b.resource in names:
                raise ConfigError(f"budgets.{b.resource} is defined twice")
            names.add(b.resource)
            _check_number(b.total, f"budgets.{b.resource}.total", low=0.0)
            if len(b.costs) != K:
                raise ConfigError(
                    f"budgets.{b.resource}.costs must have one entry per action ({K}); got {len(b.costs)}"
                )
            for c in b.costs:
                _check_number(c, f"budgets.{b.resource}.costs", low=0.0)
            for g, q in b.quotas.items():
                if not isinstance(g, str) or not g:
                    raise ConfigError(f"quotas.{b.resource}: group names must be non-empty strings")
                _check_number(q, f"quotas.{b.resource}.{g}", low=0.0)

    def _check_reward_rules(self, traits: PolicyTraits) -> None:
        """Resolve ``reward_dim`` and ``reward_weights`` (vector policies learn the vector)."""
        dim = self.reward_dim
        if traits.reward_kind == "vector":
            m = traits.n_objectives or 1
            if dim is None:
                dim = m
            if dim != m:
                raise ConfigError(
                    f"service.reward_dim must be n_objectives = {m} for {self.policy_type} "
                    f"(it learns vector rewards); got {dim!r}"
                )
        elif dim is None:
            dim = 1
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"service.reward_dim must be an int >= 1; got {dim!r}")
        object.__setattr__(self, "reward_dim", dim)
        if self.reward_weights is None:
            if traits.reward_kind == "vector":
                object.__setattr__(self, "reward_weights", tuple([1.0 / dim] * dim))
            elif dim != 1:
                raise ConfigError("service.reward_weights is required when service.reward_dim > 1")
            else:
                object.__setattr__(self, "reward_weights", (1.0,))
        else:
            w = tuple(
                float(_check_number(x, "service.reward_weights")) for x in self.reward_weights
            )
            if len(w) != dim:
                raise ConfigError(
                    f"service.reward_weights must have length reward_dim={dim}; got {len(w)}"
                )
            object.__setattr__(self, "reward_weights", w)
        if self.default_reward is not None and traits.budget is not None and traits.learns_costs:
            raise ConfigError(
                f"service.default_reward cannot be used with {self.policy_type}: it learns the "
                "realised cost of each decision, and an event without a reward has none"
            )
        if self.default_reward is not None and traits.reward_kind == "vector":
            raise ConfigError(
                f"service.default_reward is a number; {self.policy_type} learns vector rewards"
            )

    @property
    def n_actions(self) -> int:
        return int(self.policy_params["n_actions"])

    @property
    def n_features(self) -> int:
        return int(self.policy_params["n_features"])

    @property
    def seed(self) -> int:
        return int(self.policy_params["seed"])

    def make_policy(self) -> Policy:
        """A fresh, untrained instance of the configured policy."""
        from scarce.policies import get_policies

        POLICIES = get_policies()

        return POLICIES[self.policy_type](**self.policy_params)

    def policy_fingerprint(self) -> str:
        """Hash of what determines the learner (class, parameters, feature layout, reward
        rules): a database is tied to one, so a log is never replayed into another model."""
        doc = {
            "type": self.policy_type,
            "params": self.policy_params,
            "features": self.features,
            "reward_weights": list(self.reward_weights or ()),
            "default_reward": self.default_reward,
            "reward_window": self.reward_window,
            "aggregation": self.aggregation,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def to_doc(self) -> dict[str, Any]:
        """The TOML document of this configuration (as parsed; :func:`config_from_dict`
        gives it back)."""
        service = {key: getattr(self, key) for key in sorted(_SERVICE_KEYS)}
        service["reward_weights"] = list(self.reward_weights or ())
        if service["default_reward"] is None:
            del service["default_reward"]
        doc: dict[str, Any] = {"type": self.policy_type, **self.policy_params, "service": service}
        if self.budgets:
            doc["budgets"] = {
                b.resource: {"total": b.total, "costs": list(b.costs)} for b in self.budgets
            }
            quotas = {b.resource: dict(b.quotas) for b in self.budgets if b.quotas}
            if quotas:
                doc["quotas"] = quotas
        return doc

    def to_dict(self) -> dict[str, Any]:
        """Plain form (for ``GET /v1/policies/{name}``)."""
        return {
            "type": self.policy_type,
            "params": dict(self.policy_params),
            "features": self.features,
            "reward_window": self.reward_window,
            "default_reward": self.default_reward,
            "aggregation": self.aggregation,
            "reward_dim": self.reward_dim,
            "reward_weights": list(self.reward_weights or ()),
            "budgets": {
                b.resource: {"total": b.total, "costs": list(b.costs), "quotas": dict(b.quotas)}
                for b in self.budgets
            },
        }


def _check_number(value: Any, name: str, *, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number; got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be >= {low}; got {value!r}")
    return float(value)


_SERVICE_KEYS = {
    "name",
    "features",
    "reward_window",
    "default_reward",
    "aggregation",
    "reward_dim",
    "reward_weights",
    "max_batch",
    "max_body_bytes",
    "max_abs_feature",
    "min_free_disk_mb",
    "integrity_check_interval",
    "snapshot_every",
    "sync_interval",
}


def config_from_dict(doc: dict[str, Any]) -> ServiceConfig:
    """Build a :class:`ServiceConfig` from the parsed TOML layout described in the module doc."""
    doc = dict(doc)
    service = doc.pop("service", {}) or {}
    budgets_doc = doc.pop("budgets", {}) or {}
    quotas_doc = doc.pop("quotas", {}) or {}
    if "type" not in doc:
        raise ConfigError('the policy config needs a top-level "type" (e.g. type = "LinUCB")')
    policy_type = doc.pop("type")
    from scarce.policies import get_policies

    cls = get_policies().get(policy_type) if isinstance(policy_type, str) else None
    accepted = set(cls.param_names()) if cls is not None else set()
    for key, value in doc.items():
        # a table is a policy parameter (e.g. KnapsackBandit's [dual]) or a mistake
        if isinstance(value, dict) and key not in accepted:
            raise ConfigError(
                f"unknown table [{key}]; expected [service], [budgets.*], [quotas.*] or a "
                "table-valued parameter of the policy"
            )
    unknown = set(service) - _SERVICE_KEYS
    if unknown:
        raise ConfigError(
            f"unknown [service] key(s) {sorted(unknown)}; known: {sorted(_SERVICE_KEYS)}"
        )
    for resource in quotas_doc:
        if resource not in budgets_doc:
            raise ConfigError(f"quotas.{resource} needs a matching [budgets.{resource}]")
    budgets = []
    for resource, b in budgets_doc.items():
        if (
            not isinstance(b, dict)
            or set(b) - {"total", "costs"}
            or not {"total", "costs"} <= set(b)
        ):
            raise ConfigError(f"budgets.{resource} needs exactly the keys total and costs")
        quotas = quotas_doc.get(resource, {})
        if not isinstance(quotas, dict):
            raise ConfigError(f"quotas.{resource} must be a table of group = cap")
        budgets.append(
            Budget(
                resource=str(resource),
                total=b["total"],
                costs=tuple(b["costs"]),
                quotas={str(g): q for g, q in quotas.items()},
            )
        )
    kwargs = dict(service)
    if "reward_weights" in kwargs:
        kwargs["reward_weights"] = tuple(kwargs["reward_weights"])
    return ServiceConfig(
        policy_type=policy_type, policy_params=doc, budgets=tuple(budgets), **kwargs
    )


def load_config(path: str | Path | None) -> ServiceConfig:
    """Read a policy config TOML file; None gives the default (:data:`DEFAULT_POLICY`)."""
    if path is None:
        return ServiceConfig()
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_dict(doc)
