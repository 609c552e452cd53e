"""LoggedData: validation with the first bad row named, Parquet round trip and schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scarce.ope import LoggedData


def make(n=5, K=3, **kw):
    rng = np.random.default_rng(0)
    args = dict(
        contexts=rng.normal(size=(n, 2)),
        actions=rng.integers(0, K, n),
        rewards=rng.random(n),
        propensities=np.full(n, 1 / K),
        n_actions=K,
    )
    args.update(kw)
    return LoggedData(**args)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, np.nan, np.inf])
def test_bad_propensities_rejected_naming_the_first_bad_row(bad):
    p = np.full(5, 0.5)
    p[3] = bad
    p[4] = bad
    with pytest.raises(ValueError, match=r"propensities .*\(0, 1\]; row 3"):
        make(propensities=p)


def test_other_bad_inputs_rejected():
    with pytest.raises(ValueError, match=r"actions must be < n_actions = 3; row 2"):
        make(actions=[0, 1, 3, 0, 5])
    with pytest.raises(ValueError, match=r"actions must have shape \(5,\)"):
        make(actions=[0, 1])
    with pytest.raises(ValueError, match="rewards must be finite; row 1"):
        make(rewards=[0, np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="contexts must be finite; row 4"):
        X = np.zeros((5, 2))
        X[4, 1] = np.inf
        make(contexts=X)
    with pytest.raises(ValueError, match="contexts must have shape"):
        make(contexts=np.zeros(5))
    with pytest.raises(ValueError, match="positions"):
        make(positions=[0, 1, -1, 0, 0])
    with pytest.raises(ValueError, match="n_actions"):
        make(n_actions=0)
    with pytest.raises(ValueError, match="integer"):
        make(actions=[0, 1.5, 0, 0, 0])


def test_defaults_and_subset():
    d = LoggedData(np.zeros((3, 1)), [0, 2, 1], [1, 0, 1], [1, 1, 1])
    assert d.n_actions == 3 and d.n == 3 and d.n_positions == 1
    s = make(groups=list("abcab")).subset([0, 2])
    assert s.n == 2 and list(s.groups) == ["a", "c"]


def test_parquet_round_trip_with_every_column(tmp_path):
    d = make(
        n=6,
        positions=[0, 1, 2, 0, 1, 2],
        timestamps=np.arange(6) * 1.5 + 1.7e9,
        groups=list("aabbcc"),
        event_ids=[f"e{i}" for i in range(6)],
    )
    path = d.to_parquet(tmp_path / "logs.parquet")
    back = LoggedData.from_parquet(path)
    for name in ("contexts", "actions", "rewards", "propensities", "positions", "timestamps"):
        np.testing.assert_array_equal(getattr(back, name), getattr(d, name))
    assert list(back.groups) == list(d.groups) and list(back.event_ids) == list(d.event_ids)
    assert back.n_actions == d.n_actions
    table = pq.read_table(path)
    assert table.schema.field("context").type == pa.list_(pa.float64())
    assert table.schema.field("action").type == pa.int64()
    assert table.schema.field("position").type == pa.int64()
    assert table.schema.field("group").type == pa.string()
    assert table.schema.metadata[b"scarce.n_actions"] == b"3"


def test_parquet_round_trip_minimal_and_per_action_features(tmp_path):
    d = make()
    back = LoggedData.from_parquet(d.to_parquet(tmp_path / "a.parquet"))
    assert back.positions is None and back.groups is None and back.timestamps is None
    np.testing.assert_array_equal(back.contexts, d.contexts)
    rng = np.random.default_rng(1)
    f = LoggedData(rng.normal(size=(4, 3, 2)), [0, 1, 2, 1], [1, 0, 0, 1], [0.5] * 4)
    back = LoggedData.from_parquet(f.to_parquet(tmp_path / "f.parquet"))
    assert back.contexts.shape == (4, 3, 2) and back.n_actions == 3
    np.testing.assert_array_equal(back.contexts, f.contexts)


def test_parquet_written_by_another_tool(tmp_path):
    """The decision service's export: timestamp as a Parquet timestamp, no n_actions key."""
    table = pa.table(
        {
            "event_id": ["a", "b"],
            "context": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64())),
            "action": pa.array([0, 4], pa.int64()),
            "reward": [1.0, 0.0],
            "propensity": [0.2, 0.9],
            "timestamp": pa.array([0, 2_500_000], pa.timestamp("us", tz="UTC")),
            "group": ["x", "y"],
        }
    )
    pq.write_table(table, tmp_path / "svc.parquet")
    d = LoggedData.from_parquet(tmp_path / "svc.parquet")
    assert d.n_actions == 5
    np.testing.assert_allclose(d.timestamps, [0.0, 2.5])
    bad = table.set_column(4, "propensity", pa.array([0.2, 0.0]))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="row 1"):
        LoggedData.from_parquet(tmp_path / "bad.parquet")
    pq.write_table(table.drop_columns(["propensity"]), tmp_path / "np.parquet")
    with pytest.raises(ValueError, match="propensity"):
        LoggedData.from_parquet(tmp_path / "np.parquet")


def test_reads_the_decision_service_export_schema(tmp_path):
    """The schema and metadata ``scarce.serve.export`` writes (shared contexts: shape "d")."""
    export = pytest.importorskip("scarce.serve.export")
    schema = export.LOGGED_SCHEMA.with_metadata(
        {"scarce.n_actions": "4", "scarce.context_shape": "2", "scarce.policy": "LinUCB"}
    )
    cols = {
        "event_id": ["a", "b", "c"],
        "context": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
        "action": [0, 3, 1],
        "reward": [1.0, 0.0, 0.5],
        "propensity": [1.0, 0.25, 0.5],
        "timestamp": [1.0, 2.0, 3.0],
        "group": ["g1", None, "g2"],
    }
    # the service's other columns (what it knew and did) are read past
    for f in schema:
        if f.name not in cols:
            cols[f.name] = [None] * 3 if f.nullable else [1, 2, 3]
    pq.write_table(pa.Table.from_pydict(cols, schema=schema), tmp_path / "svc.parquet")
    d = LoggedData.from_parquet(tmp_path / "svc.parquet")
    assert d.n_actions == 4 and d.contexts.shape == (3, 2)
    assert list(d.groups) == ["g1", None, "g2"]
    np.testing.assert_allclose(d.timestamps, [1.0, 2.0, 3.0])
    back = LoggedData.from_parquet(d.to_parquet(tmp_path / "again.parquet"))
    assert list(back.groups) == ["g1", None, "g2"]
    # per-action features: "K,d"
    feats = export.LOGGED_SCHEMA.with_metadata(
        {"scarce.n_actions": "2", "scarce.context_shape": "2,2"}
    )
    cols["context"] = [[0.0, 1.0, 2.0, 3.0]] * 3
    cols["action"] = [0, 1, 1]
    pq.write_table(pa.Table.from_pydict(cols, schema=feats), tmp_path / "f.parquet")
    assert LoggedData.from_parquet(tmp_path / "f.parquet").contexts.shape == (3, 2, 2)
