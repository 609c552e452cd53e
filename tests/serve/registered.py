"""Drive any registered policy through the service with its own contract hooks (shared by the
tests of "served means registered")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from servetools import toml_text

from scarce.checks import D, K
from scarce.core.decision import Decision
from scarce.core.policy import SHARED_CONTEXT
from scarce.serve import load_config


def config_doc(cls: type, **service: Any) -> dict[str, Any]:
    """The TOML document of ``cls`` with its first contract configuration (the contract
    suite's sizes, which that configuration may rely on: a catalog of ``K`` action vectors)."""
    params = {"n_actions": K, "n_features": D, "seed": 0, **cls._unit_test_params()[0]}
    features = "shared" if SHARED_CONTEXT in cls.layouts else "per_action"
    return {
        "type": cls.__name__,
        **params,
        "service": {"features": features, "sync_interval": 0.0, **service},
    }


def write_config(tmp_path: Path, cls: type, **service: Any) -> Any:
    """``(path, ServiceConfig)`` of :func:`config_doc` written as TOML and read back."""
    path = tmp_path / f"{cls.__name__}.toml"
    path.write_text(toml_text(config_doc(cls, **service)))
    return path, load_config(path)


def case(cls: type, config: Any, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """``(X (1, ...), decide kwargs)`` of one case from the class's contract hook."""
    layout = SHARED_CONTEXT if config.features == "shared" else "action_features"
    X = cls._unit_test_contexts(rng, 1, layout, config.policy_params)
    key = "context" if config.features == "shared" else "action_features"
    return X, {key: X[0].tolist()}


def reward_of(
    cls: type, config: Any, rng: np.random.Generator, X: np.ndarray, answer: dict[str, Any]
) -> dict[str, Any]:
    """``reward`` keyword arguments (value, cost, extras) from the class's feedback hook for
    the service's ``answer``."""
    action = answer["action"]
    actions = np.asarray([action], dtype=np.int64)
    decision = Decision(actions, np.ones(1), np.zeros((1, config.n_actions)))
    fb = cls._unit_test_feedback(rng, X, decision, config.policy_params)
    rewards = np.asarray(fb["rewards"], dtype=float)
    value = rewards[0].tolist()
    cost = None
    if "costs" in fb and fb["costs"] is not None:
        c = np.asarray(fb["costs"], dtype=float)
        c = c[0, int(action)] if c.ndim == 3 else c[0]
        cost = np.atleast_1d(c).tolist()
    extras = {
        k: np.asarray(v)[0].tolist()
        for k, v in fb.items()
        if k not in ("actions", "rewards", "costs", "info", "full_rewards")
    }
    return {"value": value, "cost": cost, "extras": extras or None}


def cohort(
    cls: type, config: Any, rng: np.random.Generator, n: int, units: list[int] | None = None
) -> tuple[np.ndarray, list[dict[str, Any]], list[int]]:
    """``(X (n, d), cases, capacities)`` of one cohort from the class's contract hook (an
    ``"allocation"`` policy): two fairness groups, one unit of each resource."""
    X = cls._unit_test_contexts(rng, n, SHARED_CONTEXT, config.policy_params)
    cases = [{"context": X[i].tolist(), "groups": i % 2} for i in range(n)]
    if units is not None:
        for c, u in zip(cases, units, strict=True):
            c["units"] = u
    return X, cases, [1] * (config.n_actions - 1)


def cohort_rewards(
    cls: type, config: Any, rng: np.random.Generator, X: np.ndarray, result: Any
) -> list[dict[str, Any]]:
    """``reward`` keyword arguments per case of an allocated cohort, from the class's
    feedback hook (its reward, the round's total, whether it is the case's own)."""
    answers = result.to_dict()["allocations"]
    actions = np.asarray([a["action"] for a in answers], dtype=np.int64)
    decision = Decision(actions, np.ones(len(actions)), np.zeros((len(actions), config.n_actions)))
    fb = cls._unit_test_feedback(rng, X, decision, config.policy_params)
    out = []
    for i, a in enumerate(answers):
        extras = {}
        if "round_outcome" in fb:
            extras["round_outcome"] = float(np.asarray(fb["round_outcome"])[i])
        if "individual" in fb:
            extras["individual"] = bool(np.asarray(fb["individual"])[i])
        out.append({"event_id": a["event_id"], "value": float(fb["rewards"][i]), "extras": extras})
    return out
