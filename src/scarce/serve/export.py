"""Export the decision log as logged bandit data (Parquet) for off-policy evaluation.

Schema (the first seven columns are what ``scarce.ope.LoggedData.from_parquet`` reads):
``event_id`` string, ``context`` list<float64>, ``action`` int64, ``reward`` float64,
``propensity`` float64, ``timestamp`` float64 (seconds since the epoch), ``group`` string
(nullable); then what the service knew and did: ``probabilities`` list<float64> (the logged
distribution; null for structured actions, the cases of a cohort and policies that log a sparse
support), ``support`` list<int64> and ``support_probabilities`` list<float64> (the actions with
positive probability, ascending, and their probabilities: the logged support of a catalog
policy, or the nonzero entries of ``probabilities``; null where no distribution was logged),
``eligible`` list<int64> (the request's eligible
ids; null: all), ``policy_version`` int64 (the version that decided), ``model_version`` int64
(the joined events that version had learned when it decided), ``joined_at`` float64 (when the
event was joined),
``seq`` int64 (join order), ``cost`` list<float64> (realised cost; nullable),
``reward_vector`` list<float64> (the reward as given: one number, or one per objective),
``keywords`` and ``feedback`` strings (JSON: the decision-time and feedback keywords of the
policy; nullable), ``info`` string (JSON ``Decision.info``; nullable), ``action_value``
list<int64> (structured actions; nullable), ``shadow`` string (JSON: every shadow's choice;
nullable). File metadata: ``scarce.n_actions`` (int as string), ``scarce.context_shape``
(``d``, or ``K,d`` for per-action features, flattened row-major), ``scarce.policy`` (the
served class) and ``scarce.config`` (the served configuration as JSON). Only joined events
with a learned reward are exported, in join order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from scarce.serve.config import ServiceConfig
from scarce.serve.served import read_distribution
from scarce.serve.store import LOG_COLUMNS, EventStore

_FLOATS = pa.list_(pa.float64())
_INTS = pa.list_(pa.int64())
LOGGED_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("context", _FLOATS, nullable=False),
        pa.field("action", pa.int64(), nullable=False),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("propensity", pa.float64(), nullable=False),
        pa.field("timestamp", pa.float64(), nullable=False),
        pa.field("group", pa.string(), nullable=True),
        pa.field("probabilities", _FLOATS, nullable=True),
        pa.field("eligible", _INTS, nullable=True),
        pa.field("policy_version", pa.int64(), nullable=False),
        pa.field("model_version", pa.int64(), nullable=False),
        pa.field("joined_at", pa.float64(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("cost", _FLOATS, nullable=True),
        pa.field("reward_vector", _FLOATS, nullable=True),
        pa.field("keywords", pa.string(), nullable=True),
        pa.field("feedback", pa.string(), nullable=True),
        pa.field("info", pa.string(), nullable=True),
        pa.field("action_value", _INTS, nullable=True),
        pa.field("shadow", pa.string(), nullable=True),
        pa.field("support", _INTS, nullable=True),
        pa.field("support_probabilities", _FLOATS, nullable=True),
    ]
)


def _flatten(value: object) -> list[float]:
    if isinstance(value, list):
        out: list[float] = []
        for v in value:
            out.extend(_flatten(v))
        return out
    return [float(value)]  # type: ignore[arg-type]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def export_logs(store: EventStore, config: ServiceConfig, path: str | Path) -> tuple[Path, int]:
    """Write the logged data of ``store`` to the Parquet file ``path``.

    Returns ``(path, number of rows)``.
    """
    cols: dict[str, list[Any]] = {name: [] for name in LOGGED_SCHEMA.names}
    for row in store.logged_rows():
        r = dict(zip(LOG_COLUMNS, row, strict=True))
        cols["event_id"].append(r["event_id"])
        cols["context"].append(_flatten(json.loads(r["context"])))
        cols["action"].append(int(r["action"]))
        cols["reward"].append(float(r["reward"]))
        cols["propensity"].append(float(r["propensity"]))
        cols["timestamp"].append(float(r["timestamp"]))
        cols["group"].append(r["group"])
        probs, support = read_distribution(r["probabilities"])
        if support is None and probs is not None:
            support = ([a for a, p in enumerate(probs) if p > 0], [p for p in probs if p > 0])
        cols["probabilities"].append(probs)
        cols["support"].append(None if support is None else support[0])
        cols["support_probabilities"].append(None if support is None else support[1])
        cols["eligible"].append(_loads(r["eligible"]))
        cols["policy_version"].append(int(r["policy_version"] or 1))
        cols["model_version"].append(int(r["model_version"]))
        cols["joined_at"].append(float(r["joined_at"]))
        cols["seq"].append(int(r["seq"]))
        cols["cost"].append(_loads(r["cost"]))
        cols["reward_vector"].append(_loads(r["value"]))
        cols["keywords"].append(r["extras"])
        cols["feedback"].append(r["reward_extras"])
        cols["info"].append(r["info"])
        cols["action_value"].append(_loads(r["action_value"]))
        cols["shadow"].append(r["shadow"])
    shape = (
        f"{config.n_features}"
        if config.features == "shared"
        else f"{config.n_actions},{config.n_features}"
    )
    schema = LOGGED_SCHEMA.with_metadata(
        {
            "scarce.n_actions": str(config.n_actions),
            "scarce.context_shape": shape,
            "scarce.policy": config.policy_type,
            "scarce.config": json.dumps(config.to_doc(), sort_keys=True),
        }
    )
    table = pa.Table.from_pydict(cols, schema=schema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path, table.num_rows
