"""Environments by name: what TOML configs, sweeps, ``scarce list`` and the contract tests use.

The core registers the synthetic problems and the bundled data sets; each capability registers
its own environments with :func:`register_env` when its module is imported, and
:func:`get_envs` imports every module of :data:`CAPABILITY_ENV_MODULES` first (skipping a
capability that is absent), so no facade is edited for a new environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scarce.core.plugins import import_if_present
from scarce.core.random import SeedLike
from scarce.envs.base import Environment


@dataclass(frozen=True)
class EnvEntry:
    """A registered environment.

    Attributes
    ----------
    factory:
        ``factory(seed=..., **kwargs) -> Environment``.
    description:
        one line for ``scarce list``.
    fixed:
        keywords the name fixes (``"linear-features"`` is ``linear`` with per-action features);
        passing them again is an error.
    needs_extra:
        the optional install the environment needs (``"data"`` for ``pip install 'scarce[data]'``).
    """

    factory: Callable[..., Environment]
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    needs_extra: str | None = None

    def line(self) -> str:
        """The description, with the install command when an extra is needed."""
        if self.needs_extra is None:
            return self.description
        return f"{self.description} (needs: pip install 'scarce[{self.needs_extra}]')"


#: every registered environment by name (call :func:`get_envs` to see the capabilities' too)
ENV_REGISTRY: dict[str, EnvEntry] = {}

#: name -> one-line description of every registered environment (kept in step with the registry)
ENVIRONMENTS: dict[str, str] = {}

#: modules whose import registers more environments; skipped when the capability is absent
CAPABILITY_ENV_MODULES: tuple[str, ...] = (
    "scarce.envs.catalog",
    "scarce.budget.envs",
    "scarce.structured.envs",
    "scarce.fair.envs",
    "scarce.pareto.envs",
    "scarce.drift.envs",
    "scarce.combinatorial.envs",
)


def register_env(
    name: str,
    factory: Callable[..., Environment],
    description: str,
    *,
    fixed: Mapping[str, Any] | None = None,
    needs_extra: str | None = None,
) -> EnvEntry:
    """Register ``factory`` under ``name`` (replacing an entry of the same name)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable; got {factory!r}")
    entry = EnvEntry(factory, description, dict(fixed or {}), needs_extra)
    ENV_REGISTRY[name] = entry
    ENVIRONMENTS[name] = entry.line()
    return entry


def get_envs() -> dict[str, EnvEntry]:
    """:data:`ENV_REGISTRY` after importing :data:`CAPABILITY_ENV_MODULES`."""
    for module in CAPABILITY_ENV_MODULES:
        import_if_present(module)
    return ENV_REGISTRY


def make_env(name: str, /, seed: SeedLike = None, **kwargs: Any) -> Environment:
    """Build a registered environment by name.

    Parameters
    ----------
    name:
        a key of :func:`get_envs` (``scarce list`` shows them): a synthetic problem
        (``"linear"``, ``"logistic-features"``, ...), a bundled data set (``"digits"``, ...) or a
        capability's environment (``"deferral-synthetic"``, ``"peaks-shift"``, ...).
    seed:
        seed or generator of the environment.
    **kwargs:
        keywords of the environment's constructor (e.g. ``n_actions``, ``noise_std``).
    """
    envs = get_envs()
    if name not in envs:
        raise ValueError(f"name must be one of {sorted(envs)}; got {name!r}")
    entry = envs[name]
    clash = sorted(set(entry.fixed) & set(kwargs))
    if clash:
        raise ValueError(f"{clash[0]} is fixed by the environment name {name!r}; do not pass it")
    return entry.factory(seed=seed, **entry.fixed, **kwargs)
