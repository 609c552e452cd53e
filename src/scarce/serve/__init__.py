"""The decision service: HTTP API, durable event log, reward join, budgets, model snapshots.

* :class:`DecisionService` decides, logs, charges budgets, takes rewards, joins and learns;
  an ``"allocation"`` policy decides whole cohorts (:meth:`DecisionService.allocate`,
  :class:`CohortResult`; :mod:`scarce.serve.cohorts`);
* :class:`EventStore` is the SQL log (SQLite in WAL mode, or PostgreSQL);
* :func:`create_app` wraps a service in a FastAPI app (needs the ``serve`` extra);
* :func:`export_logs` writes the log as Parquet logged bandit data; :func:`replay` rebuilds
  the model from the log;
* :func:`promote` serves another policy version (a candidate, a shadow, or a rollback);
  :mod:`scarce.serve.evaluate` judges candidates on the logs (``scarce evaluate``);
  :mod:`scarce.serve.example` runs the whole loop.
"""

from scarce.serve.cohorts import CohortResult
from scarce.serve.config import Budget, ConfigError, ServiceConfig, config_from_dict, load_config
from scarce.serve.promotion import PromotionError, promote
from scarce.serve.service import (
    BudgetExhaustedError,
    DecisionResult,
    DecisionService,
    EventConflictError,
    RequestError,
    models_equal,
    replay,
)
from scarce.serve.store import EventStore, StoreError, StoreUnavailableError, UnknownEventError


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`scarce.serve.app.create_app` (imported lazily: FastAPI is an extra)."""
    from scarce.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)


def export_logs(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`scarce.serve.export.export_logs`."""
    from scarce.serve.export import export_logs as _export_logs

    return _export_logs(*args, **kwargs)


__all__ = [
    "Budget",
    "BudgetExhaustedError",
    "CohortResult",
    "ConfigError",
    "DecisionResult",
    "DecisionService",
    "EventConflictError",
    "EventStore",
    "PromotionError",
    "RequestError",
    "ServiceConfig",
    "StoreError",
    "StoreUnavailableError",
    "UnknownEventError",
    "config_from_dict",
    "create_app",
    "export_logs",
    "load_config",
    "models_equal",
    "promote",
    "replay",
]
