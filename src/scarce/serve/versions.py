"""Policy versions and promotions: which configuration the service serves, and since when.

Every configuration a database has served is a *policy version* (table ``policy_versions``:
number, name, fingerprint, the configuration as JSON); the first one is version 1. A
*promotion* (table ``promotions``) makes another version the served one; the latest promotion
says which is active, so a rollback is a promotion back to an earlier version. Every decision
records the version that made it (``decisions.policy_version``).

All versions learn from the same join log, so the join rules (``[service]``: features, reward
window, aggregation, default reward, reward dimension and weights) and the budgets
(``[budgets]``, ``[quotas]``) belong to the service, not to a version: a candidate's TOML may
leave them out (it inherits the served ones) and may not change them. A promoted version's
model is its configuration fed the whole join log, as a shadow of it would have learned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scarce.serve.config import ConfigError, ServiceConfig, config_from_dict
from scarce.serve.db import Tx
from scarce.serve.store import EventStore, StoreError

#: ``[service]`` keys a candidate may differ in (they do not change the join or the API)
FREE_SERVICE_KEYS = {"name", "snapshot_every", "sync_interval"}


@dataclass(frozen=True)
class PolicyVersion:
    """A configuration a database has (or had) served."""

    version: int
    name: str
    fingerprint: str
    config: ServiceConfig
    created_at: float


def candidate_config(served: ServiceConfig, doc: dict[str, Any]) -> ServiceConfig:
    """A candidate configuration on the served one's service: ``doc`` (a parsed policy TOML)
    with the served ``[service]``, ``[budgets]`` and ``[quotas]`` where it has none.

    Raises
    ------
    ConfigError
        when the candidate changes the join rules, the budgets or the shape of requests and
        rewards (the message names the key).
    """
    base = served.to_doc()
    doc = dict(doc)
    mine = dict(doc.pop("service", {}) or {})
    for key, value in mine.items():
        if key in FREE_SERVICE_KEYS or key not in base["service"]:
            continue
        want = base["service"][key]
        if key == "reward_weights":
            value, want = [float(v) for v in value], [float(v) for v in want]
        if value != want:
            raise ConfigError(
                f"service.{key} = {value!r} differs from the served {want!r}: a candidate "
                "shares the service's join rules; leave it out"
            )
    for table in ("budgets", "quotas"):
        if table in doc and doc[table] != base.get(table, {}):
            raise ConfigError(
                f"[{table}] differ from the served ones: a candidate shares the service's "
                "budgets; leave them out"
            )
        doc.pop(table, None)
    service = {k: v for k, v in base["service"].items() if k not in FREE_SERVICE_KEYS}
    service["name"] = served.name
    doc["service"] = service
    for table in ("budgets", "quotas"):
        if table in base:
            doc[table] = base[table]
    cfg = config_from_dict(doc)
    check_compatible(served, cfg)
    return cfg


def check_compatible(served: ServiceConfig, cand: ServiceConfig) -> None:
    """A :class:`ConfigError` when ``cand`` cannot take over from ``served``: other shapes
    of contexts, actions or rewards, or other request fields."""
    a, b = served.traits, cand.traits
    if "allocation" in (a.action_type, b.action_type):
        raise ConfigError(
            "allocation policies cannot be candidates, shadows or promoted yet: a candidate "
            "would have to replay the served policy's cohorts, whose decisions are coupled"
        )
    for what, x, y in (
        ("n_actions", served.n_actions, cand.n_actions),
        ("n_features", served.n_features, cand.n_features),
        ("service.features", served.features, cand.features),
        ("service.reward_dim", served.reward_dim, cand.reward_dim),
        ("action_type", a.action_type, b.action_type),
        ("decide keywords", a.decide_keywords, b.decide_keywords),
        (
            "feedback keywords",
            tuple(k for k in a.update_keywords if k != "costs"),
            tuple(k for k in b.update_keywords if k != "costs"),
        ),
    ):
        if x != y:
            raise ConfigError(f"{what} differ: served {x!r}, candidate {y!r}")


def _config(doc_json: str) -> ServiceConfig:
    return config_from_dict(json.loads(doc_json))


def list_versions(store: EventStore) -> list[PolicyVersion]:
    """Every policy version of the store, oldest first."""
    rows = store.query(
        "SELECT version, name, fingerprint, config, created_at FROM policy_versions ORDER BY version"
    )
    return [PolicyVersion(int(v), n, fp, _config(c), float(t)) for v, n, fp, c, t in rows]


def active_version(store: EventStore) -> int:
    """The version the latest promotion made active (1 without promotions)."""
    rows = store.query("SELECT version FROM promotions ORDER BY seq DESC LIMIT 1")
    return 1 if not rows else int(rows[0][0])


def get_version(store: EventStore, version: int) -> PolicyVersion:
    """Policy version ``version``; a :class:`StoreError` when there is none."""
    for v in list_versions(store):
        if v.version == version:
            return v
    raise StoreError(f"there is no policy version {version}")


def version_of(store: EventStore, config: ServiceConfig) -> int:
    """The policy version of ``config`` in the store (1 for a store without versions)."""
    rows = (
        store.query(
            "SELECT version FROM policy_versions WHERE fingerprint = ?",
            (config.policy_fingerprint(),),
        )
        if _has_versions(store)
        else []
    )
    return int(rows[0][0]) if rows else 1


def _has_versions(store: EventStore) -> bool:
    try:
        store.query("SELECT 1 FROM policy_versions LIMIT 1")
    except StoreError:
        return False
    return True


def promotions(store: EventStore) -> list[dict[str, Any]]:
    """The promotions, oldest first: ``seq``, ``version``, ``previous``, ``at``, ``key_id``,
    ``note``."""
    rows = store.query(
        "SELECT seq, version, previous, at, key_id, note FROM promotions ORDER BY seq"
    )
    keys = ("seq", "version", "previous", "at", "key_id", "note")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def register_version(store: EventStore, config: ServiceConfig, name: str, now: float) -> int:
    """The version of ``config`` (registered as a new one if the store has not seen it)."""
    fingerprint = config.policy_fingerprint()
    doc = json.dumps(config.to_doc(), sort_keys=True)

    def unit(tx: Tx) -> int:
        row = tx.one("SELECT version FROM policy_versions WHERE fingerprint = ?", (fingerprint,))
        if row is not None:
            return int(row[0])
        version = int(tx.one("SELECT COALESCE(MAX(version), 0) FROM policy_versions")[0]) + 1
        tx.execute(
            "INSERT INTO policy_versions (version, name, fingerprint, config, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (version, name, fingerprint, doc, now),
        )
        return version

    return int(store.run(unit, lock="exclusive"))


def record_promotion(
    store: EventStore,
    version: int,
    *,
    now: float,
    key_id: str | None = None,
    note: str | None = None,
    budgets: Sequence[tuple[str, str, float]] = (),
) -> int:
    """Make ``version`` the active one (a new promotion row); create the budget rows it needs
    that do not exist yet. Returns the previous active version."""

    def unit(tx: Tx) -> int:
        last = tx.one("SELECT seq, version FROM promotions ORDER BY seq DESC LIMIT 1")
        previous = 1 if last is None else int(last[1])
        seq = 1 if last is None else int(last[0]) + 1
        for resource, group, amount in budgets:
            row = tx.one(
                "SELECT initial FROM budgets WHERE resource = ? AND grp = ?", (resource, group)
            )
            if row is not None and abs(float(row[0]) - float(amount)) > 1e-9:
                raise ConfigError(
                    f"budget {resource!r} is {float(row[0])} in the store and {amount} in the "
                    "candidate: a promoted policy keeps the service's budgets"
                )
            tx.execute(
                "INSERT INTO budgets (resource, grp, initial, remaining) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (resource, grp) DO NOTHING",
                (resource, group, float(amount), float(amount)),
            )
        tx.execute(
            "INSERT INTO promotions (seq, version, previous, at, key_id, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (seq, version, previous, now, key_id, note),
        )
        return previous

    return int(store.run(unit, lock="exclusive"))


def stored_config(store: EventStore) -> ServiceConfig | None:
    """The active version's configuration, or None for a store without versions (for
    commands started without ``--policy``)."""
    try:
        versions = {v.version: v for v in list_versions(store)}
    except StoreError:
        return None
    if not versions:
        return None
    return versions[active_version(store)].config
