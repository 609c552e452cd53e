"""Shared vocabulary: decisions, the policy base class, validation, seeding, persistence."""

from scarce.core.decision import Decision
from scarce.core.persist import load, save
from scarce.core.policy import ACTION_FEATURES, SHARED_CONTEXT, Policy
from scarce.core.random import SeedLike, as_generator, spawn, spawn_seeds

__all__ = [
    "ACTION_FEATURES",
    "SHARED_CONTEXT",
    "Decision",
    "Policy",
    "SeedLike",
    "as_generator",
    "load",
    "save",
    "spawn",
    "spawn_seeds",
]
