"""Export the decision log as logged bandit data (Parquet) for off-policy evaluation.

Schema (read by ``scarce.ope``): ``event_id`` string, ``context`` list<float64>, ``action``
int64, ``reward`` float64, ``propensity`` float64, ``timestamp`` float64 (seconds since the
epoch), ``group`` string (nullable); file metadata ``scarce.n_actions`` (int as string). Only
joined events with a learned reward are exported, in join order. Per-action features are
flattened row-major to ``K * d`` values; ``scarce.context_shape`` records ``K,d``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scarce.serve.config import ServiceConfig
from scarce.serve.store import EventStore

LOGGED_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("context", pa.list_(pa.float64()), nullable=False),
        pa.field("action", pa.int64(), nullable=False),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("propensity", pa.float64(), nullable=False),
        pa.field("timestamp", pa.float64(), nullable=False),
        pa.field("group", pa.string(), nullable=True),
    ]
)


def _flatten(value: object) -> list[float]:
    if isinstance(value, list):
        out: list[float] = []
        for v in value:
            out.extend(_flatten(v))
        return out
    return [float(value)]  # type: ignore[arg-type]


def export_logs(store: EventStore, config: ServiceConfig, path: str | Path) -> tuple[Path, int]:
    """Write the logged data of ``store`` to the Parquet file ``path``.

    Returns ``(path, number of rows)``.
    """
    rows = store.logged_rows()
    cols: dict[str, list] = {name: [] for name in LOGGED_SCHEMA.names}
    for event_id, context, action, reward, probability, ts, group in rows:
        cols["event_id"].append(event_id)
        cols["context"].append(_flatten(json.loads(context)))
        cols["action"].append(int(action))
        cols["reward"].append(float(reward))
        cols["propensity"].append(float(probability))
        cols["timestamp"].append(float(ts))
        cols["group"].append(group)
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
        }
    )
    table = pa.Table.from_pydict(cols, schema=schema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path, table.num_rows
