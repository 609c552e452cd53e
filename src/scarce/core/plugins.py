"""Importing the modules through which capabilities plug in (experiments, policies, CLI
commands), when those capabilities are present."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_if_present(module: str) -> ModuleType | None:
    """Import ``module``; None if that module (or a package above it) does not exist.

    Only the absence of the capability itself is skipped: a dependency missing *inside* it
    (e.g. an extra that is not installed) raises, so it is never silently hidden.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            return None
        raise
