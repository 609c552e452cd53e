"""Logged bandit data: what a deployed policy saw, did, got, and with which probability.

The Parquet layout (shared with the decision service's export) is one row per logged decision:

==============  ======================  =====================================================
column          type                    meaning
==============  ======================  =====================================================
``event_id``    string (optional)       identifier of the decision
``context``     list<float64>           the context ``x`` (``d`` values; ``K * d`` values,
                                        row-major, for per-action features, with the file
                                        metadata key ``scarce.context_shape`` = ``"K,d"``)
``action``      int64                   chosen action id in ``[0, n_actions)``
``reward``      float64                 observed reward of the chosen action
``propensity``  float64                 probability with which the logging policy chose it
``position``    int64 (optional)        0-based slot the action was shown in (ranking logs)
``timestamp``   float64 s or timestamp  when the decision was made (optional)
``group``       string (optional)       group label of the case (optional)
==============  ======================  =====================================================

File metadata: ``scarce.n_actions`` (the number of actions, an int written as a string).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scarce.core.validation import check_positive_int

#: file metadata key holding the number of actions
N_ACTIONS_KEY = b"scarce.n_actions"
#: file metadata key holding ``"K,d"`` for per-action feature contexts
CONTEXT_SHAPE_KEY = b"scarce.context_shape"


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


@dataclass(frozen=True, eq=False)
class LoggedData:
    """Logged decisions of a (possibly randomised) logging policy.

    Parameters
    ----------
    contexts:
        ``(n, d)`` contexts, or ``(n, K, d)`` per-action features.
    actions:
        ``(n,)`` int, the logged actions in ``[0, n_actions)``.
    rewards:
        ``(n,)`` float, the observed rewards of the logged actions (finite).
    propensities:
        ``(n,)`` float, the logging policy's probability of the logged action, in ``(0, 1]``.
    n_actions:
        number of actions ``K``; default ``max(actions) + 1`` (or ``contexts.shape[1]`` for
        per-action features).
    positions:
        optional ``(n,)`` int >= 0, the 0-based slot of the logged action (ranking logs; the
        propensity is then the probability of that action *at that slot*).
    timestamps:
        optional ``(n,)`` float seconds (e.g. since the Unix epoch).
    groups:
        optional ``(n,)`` group labels (strings; None where a label is missing).
    event_ids:
        optional ``(n,)`` string identifiers.

    Notes
    -----
    Every array is validated at construction; a bad propensity raises a ``ValueError`` naming
    the first bad row.
    """

    contexts: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    n_actions: int | None = None
    positions: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    groups: np.ndarray | None = None
    event_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        X = np.asarray(self.contexts, dtype=np.float64)
        if X.ndim not in (2, 3):
            raise ValueError(
                f"contexts must have shape (n, d) or (n, K, d); got {X.ndim}-D shape {X.shape}"
            )
        n = X.shape[0]
        if n == 0:
            raise ValueError("contexts must contain at least one logged decision; got n = 0")
        if not np.isfinite(X).all():
            row = _first_bad(~np.isfinite(X.reshape(n, -1)).all(axis=1))
            raise ValueError(f"contexts must be finite; row {row} has NaN or inf")

        actions = np.asarray(self.actions)
        if actions.shape != (n,):
            raise ValueError(f"actions must have shape ({n},); got {actions.shape}")
        if actions.dtype.kind == "f":
            bad = ~np.isfinite(actions) | (actions != np.round(actions))
            if bad.any():
                raise ValueError(
                    f"actions must be integer ids; row {_first_bad(bad)} is {actions[bad][0]!r}"
                )
        elif actions.dtype.kind not in "iu":
            raise ValueError(f"actions must be integer ids; got dtype {actions.dtype}")
        actions = actions.astype(np.int64)
        if (actions < 0).any():
            raise ValueError(
                f"actions must be >= 0; row {_first_bad(actions < 0)} is {actions[actions < 0][0]}"
            )
        K = self.n_actions
        if K is None:
            K = X.shape[1] if X.ndim == 3 else int(actions.max()) + 1
        K = check_positive_int(K, "n_actions")
        if X.ndim == 3 and X.shape[1] != K:
            raise ValueError(
                f"contexts with per-action features must have shape (n, {K}, d); got {X.shape}"
            )
        if (actions >= K).any():
            row = _first_bad(actions >= K)
            raise ValueError(f"actions must be < n_actions = {K}; row {row} is {actions[row]}")

        rewards = np.asarray(self.rewards, dtype=np.float64)
        if rewards.shape != (n,):
            raise ValueError(f"rewards must have shape ({n},); got {rewards.shape}")
        if not np.isfinite(rewards).all():
            raise ValueError(f"rewards must be finite; row {_first_bad(~np.isfinite(rewards))}")

        p = np.asarray(self.propensities, dtype=np.float64)
        if p.shape != (n,):
            raise ValueError(f"propensities must have shape ({n},); got {p.shape}")
        bad = ~(np.isfinite(p) & (p > 0) & (p <= 1))
        if bad.any():
            row = _first_bad(bad)
            raise ValueError(f"propensities must be finite and in (0, 1]; row {row} has {p[row]!r}")

        positions = self.positions
        if positions is not None:
            positions = np.asarray(positions)
            if positions.shape != (n,) or positions.dtype.kind not in "iu":
                raise ValueError(
                    f"positions must be ({n},) integers; got shape {positions.shape}, "
                    f"dtype {positions.dtype}"
                )
            positions = positions.astype(np.int64)
            if (positions < 0).any():
                raise ValueError(f"positions must be >= 0; row {_first_bad(positions < 0)}")
        timestamps = self.timestamps
        if timestamps is not None:
            timestamps = np.asarray(timestamps, dtype=np.float64)
            if timestamps.shape != (n,):
                raise ValueError(f"timestamps must have shape ({n},); got {timestamps.shape}")
        groups = self.groups
        if groups is not None:
            # labels as str; a missing label (None, e.g. a null in Parquet) stays None
            groups = np.array(
                [None if g is None else str(g) for g in np.asarray(groups, dtype=object)],
                dtype=object,
            )
            if groups.shape != (n,):
                raise ValueError(f"groups must have shape ({n},); got {groups.shape}")
        event_ids = self.event_ids
        if event_ids is not None:
            event_ids = np.asarray(event_ids, dtype=object).astype(str)
            if event_ids.shape != (n,):
                raise ValueError(f"event_ids must have shape ({n},); got {event_ids.shape}")

        for name, value in (
            ("contexts", X),
            ("actions", actions),
            ("rewards", rewards),
            ("propensities", p),
            ("n_actions", K),
            ("positions", positions),
            ("timestamps", timestamps),
            ("groups", groups),
            ("event_ids", event_ids),
        ):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ basics
    @property
    def n(self) -> int:
        """Number of logged decisions."""
        return int(self.actions.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def n_features(self) -> int:
        """Context dimension ``d``."""
        return int(self.contexts.shape[-1])

    @property
    def n_positions(self) -> int:
        """Number of slots (1 without positions)."""
        return 1 if self.positions is None else int(self.positions.max()) + 1

    def subset(self, rows: Any) -> LoggedData:
        """The logs restricted to ``rows`` (an index array or boolean mask)."""
        idx = np.arange(self.n)[rows]

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return LoggedData(
            contexts=self.contexts[idx],
            actions=self.actions[idx],
            rewards=self.rewards[idx],
            propensities=self.propensities[idx],
            n_actions=self.n_actions,
            positions=take(self.positions),
            timestamps=take(self.timestamps),
            groups=take(self.groups),
            event_ids=take(self.event_ids),
        )

    def __repr__(self) -> str:
        extras = [
            name
            for name in ("positions", "timestamps", "groups", "event_ids")
            if getattr(self, name) is not None
        ]
        return (
            f"LoggedData(n={self.n}, n_actions={self.n_actions}, contexts={self.contexts.shape}"
            + (f", with {', '.join(extras)}" if extras else "")
            + ")"
        )

    # ------------------------------------------------------------------ Parquet
    def to_frame(self) -> pd.DataFrame:
        """One row per decision in the Parquet column layout (``context`` as lists)."""
        cols: dict[str, Any] = {}
        if self.event_ids is not None:
            cols["event_id"] = self.event_ids
        cols["context"] = list(self.contexts.reshape(self.n, -1))
        cols["action"] = self.actions
        cols["reward"] = self.rewards
        cols["propensity"] = self.propensities
        if self.positions is not None:
            cols["position"] = self.positions
        if self.timestamps is not None:
            cols["timestamp"] = self.timestamps
        if self.groups is not None:
            cols["group"] = self.groups
        return pd.DataFrame(cols)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the logs to ``path`` (schema in the module docstring)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays: dict[str, pa.Array] = {}
        if self.event_ids is not None:
            arrays["event_id"] = pa.array(self.event_ids.tolist(), pa.string())
        flat = self.contexts.reshape(self.n, -1)
        arrays["context"] = pa.ListArray.from_arrays(
            pa.array(np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32)),
            pa.array(flat.ravel(), pa.float64()),
        )
        arrays["action"] = pa.array(self.actions, pa.int64())
        arrays["reward"] = pa.array(self.rewards, pa.float64())
        arrays["propensity"] = pa.array(self.propensities, pa.float64())
        if self.positions is not None:
            arrays["position"] = pa.array(self.positions, pa.int64())
        if self.timestamps is not None:
            arrays["timestamp"] = pa.array(self.timestamps, pa.float64())
        if self.groups is not None:
            arrays["group"] = pa.array(list(self.groups), pa.string())
        meta = {N_ACTIONS_KEY: str(self.n_actions).encode()}
        if self.contexts.ndim == 3:
            meta[CONTEXT_SHAPE_KEY] = f"{self.contexts.shape[1]},{self.contexts.shape[2]}".encode()
        table = pa.table(arrays).replace_schema_metadata(meta)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> LoggedData:
        """Read logs written by :meth:`to_parquet` (or by the decision service's export).

        ``timestamp`` may be float seconds or a Parquet timestamp (converted to seconds since
        the Unix epoch). Without the ``scarce.n_actions`` metadata, ``n_actions`` is
        ``max(action) + 1``.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        names = set(table.column_names)
        missing = {"context", "action", "reward", "propensity"} - names
        if missing:
            raise ValueError(
                f"{os.fspath(path)!r} lacks required column(s) {sorted(missing)}; "
                "expected event_id?, context, action, reward, propensity, position?, "
                "timestamp?, group?"
            )
        meta = table.schema.metadata or {}
        n = table.num_rows
        ctx = table.column("context").combine_chunks()
        lengths = pc.list_value_length(ctx).to_numpy(zero_copy_only=False)
        if n and (lengths != lengths[0]).any():
            row = _first_bad(lengths != lengths[0])
            raise ValueError(
                f"context lists must all have the same length; row {row} has {lengths[row]}, "
                f"row 0 has {lengths[0]}"
            )
        values = ctx.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        X = values.reshape(n, -1)
        if CONTEXT_SHAPE_KEY in meta:
            # "d" (shared contexts) or "K,d" (per-action features)
            shape = tuple(int(v) for v in meta[CONTEXT_SHAPE_KEY].decode().split(","))
            if int(np.prod(shape)) != X.shape[1]:
                raise ValueError(
                    f"context lists have {X.shape[1]} values but the file metadata "
                    f"scarce.context_shape says {shape}"
                )
            X = X.reshape(n, *shape)

        def col(name: str) -> np.ndarray | None:
            if name not in names:
                return None
            return table.column(name).to_numpy(zero_copy_only=False)

        groups = col("group")
        if groups is not None and all(g is None for g in groups):
            groups = None
        ts = None
        if "timestamp" in names:
            tcol = table.column("timestamp")
            if pa.types.is_timestamp(tcol.type):
                ts = pc.cast(tcol, pa.timestamp("us", tz=tcol.type.tz)).cast(pa.int64())
                ts = ts.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
            else:
                ts = tcol.to_numpy(zero_copy_only=False).astype(np.float64)
        n_actions = int(meta[N_ACTIONS_KEY].decode()) if N_ACTIONS_KEY in meta else None
        return cls(
            contexts=X,
            actions=col("action"),
            rewards=col("reward"),
            propensities=col("propensity"),
            n_actions=n_actions,
            positions=col("position"),
            timestamps=ts,
            groups=groups,
            event_ids=col("event_id"),
        )


def check_logged_data(data: Any) -> LoggedData:
    """``data`` if it is a :class:`LoggedData`, else a ``TypeError`` naming it."""
    if not isinstance(data, LoggedData):
        raise TypeError(f"data must be a scarce.ope.LoggedData; got {type(data).__name__}")
    return data
