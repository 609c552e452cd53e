"""The service commands: ``scarce api-key``, ``scarce export-logs``, ``scarce replay`` (and that
``scarce serve`` is registered on the main CLI)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import typer
from servetools import FakeClock
from typer.testing import CliRunner

from scarce.serve import DecisionService, EventStore, load_config, models_equal
from scarce.serve.auth import KeyVerifier, read_key_file
from scarce.serve.commands import register

runner = CliRunner()

POLICY = """
type = "LinTS"
n_actions = 2
n_features = 3
seed = 3

[service]
reward_window = 10.0
default_reward = 0.0
"""


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_commands_registered_on_main_cli():
    from scarce.cli import app

    names = {c.name for c in app.registered_commands}
    assert {"serve", "export-logs", "replay", "api-key"} <= names


def test_api_key_appends_only_the_hash(tmp_path: Path):
    keys = tmp_path / "keys"
    out = runner.invoke(_app(), ["api-key", "--key-file", str(keys)])
    assert out.exit_code == 0, out.output
    key = out.output.split("key:")[1].split()[0]
    assert key not in keys.read_text()
    assert KeyVerifier(read_key_file(keys)).verify(key)


def _filled_db(tmp_path: Path) -> tuple[str, Path]:
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    db = str(tmp_path / "log.db")
    clock = FakeClock()
    svc = DecisionService(load_config(policy), EventStore(db), clock=clock)
    for i in range(25):
        r = svc.decide([i / 25, 1.0, -i / 50], event_id=f"e{i}")
        if i % 5:
            svc.reward(f"e{i}", float(r.action))
        clock.advance(1.0)
        if i % 10 == 9:
            svc.sync()
    svc.publish_snapshot()
    clock.advance(100)
    svc.sync()  # joins the rest with the default reward; the snapshot is now behind
    svc.store.close()
    return db, policy


def test_export_logs_command(tmp_path: Path):
    db, policy = _filled_db(tmp_path)
    out = tmp_path / "logs.parquet"
    res = runner.invoke(
        _app(), ["export-logs", "--db", db, "--policy", str(policy), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "25 events" in res.output
    table = pq.read_table(out)
    assert table.num_rows == 25 and table.schema.metadata[b"scarce.n_actions"] == b"2"
    assert sorted(table.column("reward").to_pylist()).count(0.0) >= 5  # default rewards


def test_replay_command_reproduces_snapshot(tmp_path: Path):
    db, policy = _filled_db(tmp_path)
    out = tmp_path / "model"
    res = runner.invoke(_app(), ["replay", "--db", db, "--policy", str(policy), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "reproduced exactly" in res.output
    from scarce import load
    from scarce.serve import replay

    store = EventStore(db)
    try:
        assert models_equal(load(out), replay(load_config(policy), store))
    finally:
        store.close()


def test_replay_refuses_another_policy(tmp_path: Path):
    db, _ = _filled_db(tmp_path)
    other = tmp_path / "o.toml"
    other.write_text(POLICY.replace("seed = 3", "seed = 4"))
    res = runner.invoke(_app(), ["replay", "--db", db, "--policy", str(other)])
    assert res.exit_code == 2 and "different policy" in res.output
