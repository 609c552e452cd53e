"""Helpers shared by the service tests."""

from __future__ import annotations

from typing import Any

from scarce.serve import config_from_dict


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


BASE: dict[str, Any] = {"type": "LinUCB", "n_actions": 3, "n_features": 2, "seed": 0}


def make_config(**overrides: Any) -> Any:
    doc: dict[str, Any] = {**BASE}
    service = overrides.pop("service", {})
    budgets = overrides.pop("budgets", None)
    quotas = overrides.pop("quotas", None)
    doc.update(overrides)
    doc["service"] = {"sync_interval": 0.0, **service}
    if budgets:
        doc["budgets"] = budgets
    if quotas:
        doc["quotas"] = quotas
    return config_from_dict(doc)
