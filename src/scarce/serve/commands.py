"""``scarce serve``, ``scarce export-logs``, ``scarce replay`` and ``scarce api-key``
(``scarce evaluate`` and ``scarce promote``: :mod:`scarce.serve.loop_commands`).

FastAPI and uvicorn are imported inside the commands so that ``scarce --help`` stays fast and
works without the ``serve`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DB = "./scarce.db"

DbOption = Annotated[
    str,
    typer.Option("--db", help="sqlite:///PATH, a file path (SQLite, WAL) or postgresql://... URL."),
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help='Policy config TOML (type = "LinUCB", n_actions, n_features, ...; '
        "tables service, budgets.RESOURCE, quotas.RESOURCE). Default: LinUCB, 3 actions, 4 features, seed 0.",
    ),
]


def _fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code=2)


def _require_extra() -> None:
    """Fail with the install command when the ``serve`` extra is missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        _fail(f"the decision service needs {', '.join(missing)}: pip install 'scarce[serve]'")


def _load(  # type: ignore[no-untyped-def]
    db: str,
    policy: Path | None,
    *,
    sqlite_sync: str = "FULL",
    create: bool = True,
    commit_in_loop: bool = False,
):
    """``(config, store)``: without ``--policy``, the configuration the store serves (its
    active policy version), or the default for a new store."""
    from scarce.serve.config import ConfigError, load_config
    from scarce.serve.store import EventStore, StoreError
    from scarce.serve.versions import stored_config

    try:
        config = None if policy is None else load_config(policy)
        store = EventStore(
            db, sqlite_synchronous=sqlite_sync, create=create, commit_in_caller=commit_in_loop
        )
        if config is None:
            try:
                config = stored_config(store)
            except (StoreError, ConfigError):
                config = None
        if config is None:
            config = load_config(None)
    except (ConfigError, StoreError, OSError, ValueError) as exc:
        _fail(_one_line(exc))
        raise  # unreachable; for type checkers
    return config, store


def _shadow_configs(paths: list[Path] | None, served):  # type: ignore[no-untyped-def]
    """``(name, config)`` of ``--shadow`` files (named by their stem) on the served config."""
    import tomllib

    from scarce.serve.config import ConfigError
    from scarce.serve.versions import candidate_config

    out = []
    for path in paths or []:
        try:
            doc = tomllib.loads(Path(path).read_text())
            out.append((Path(path).stem, candidate_config(served, doc)))
        except (ConfigError, OSError, ValueError) as exc:
            _fail(f"--shadow {path}: {_one_line(exc)}")
    return out


def _one_line(exc: BaseException) -> str:
    """An exception as one line without credentials (start-up errors print only this)."""
    from scarce.serve.db import redact_url

    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact_url(text) if "://" in text else text


def _startup_errors() -> tuple[type[BaseException], ...]:
    """What a service start can fail with that is the operator's to fix (not a bug)."""
    import sqlite3

    from scarce.serve.config import ConfigError
    from scarce.serve.snapshot import SnapshotError
    from scarce.serve.store import StoreError

    errors: list[type[BaseException]] = [
        ConfigError,
        StoreError,
        SnapshotError,
        OSError,
        sqlite3.Error,
    ]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:  # pragma: no cover - the serve extra brings it
        pass
    return tuple(errors)


def _configure_logging(level: str) -> None:
    import logging

    log = logging.getLogger("scarce.serve")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO if level.lower() in ("info", "debug", "trace") else logging.WARNING)


def serve_command(
    db: DbOption = DEFAULT_DB,
    policy: PolicyOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="File of hashed API keys (sha256:<hex> [id=NAME] [scopes=...] per line)."
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without API keys (local use only).")
    ] = False,
    sqlite_sync: Annotated[
        str, typer.Option(help="SQLite synchronous mode: FULL (fsync per commit) or NORMAL.")
    ] = "FULL",
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Service processes sharing the port and the database (each learns from the "
            "join log; budgets are enforced in the database).",
        ),
    ] = 1,
    timeout_keep_alive: Annotated[
        float, typer.Option(min=0.1, help="Close a keep-alive connection idle this many seconds.")
    ] = 5.0,
    timeout_request: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a connection has to deliver a whole request (headers and body) from "
            "its start or its first byte; else 408 and closed (0: no limit).",
        ),
    ] = 30.0,
    limit_concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Most connections and tasks at once per process; beyond: 503."),
    ] = None,
    open_metrics: Annotated[
        bool, typer.Option("--open-metrics", help="Serve GET /metrics without a key.")
    ] = False,
    commit_in_loop: Annotated[
        bool,
        typer.Option(
            "--commit-in-loop",
            help="SQLite, one process: commit each event-loop turn's decisions on the loop "
            "itself, not in a writer thread (less CPU per decision; the loop waits for each "
            "commit and its fsync).",
        ),
    ] = False,
    shadow: Annotated[
        list[Path] | None,
        typer.Option(
            "--shadow",
            help="A candidate policy TOML to run beside the served one (repeatable; named by "
            "the file's stem): it learns from the same log and its choice for every request "
            "is logged, never answered.",
        ),
    ] = None,
) -> None:
    """Run the decision service (HTTP API, event store, joiner) until interrupted.

    API keys come from SCARCE_API_KEYS (comma-separated) and/or --key-file; without any the
    service refuses to start unless --no-auth is given. Start-up failures print one line.
    """
    _require_extra()
    import uvicorn

    from scarce.serve.app import create_app
    from scarce.serve.auth import KeyVerifier, load_key_hashes
    from scarce.serve.server import ENV_TIMEOUT, GuardedHttpToolsProtocol
    from scarce.serve.service import DecisionService

    _configure_logging(log_level)
    try:
        hashes = load_key_hashes(key_file)
    except (OSError, ValueError) as exc:
        _fail(_one_line(exc))
        return
    if not hashes and not no_auth:
        _fail(
            "no API keys: set SCARCE_API_KEYS or pass --key-file (make one with "
            "`scarce api-key`), or pass --no-auth to serve without keys"
        )
        return
    if commit_in_loop and workers > 1:
        _fail("--commit-in-loop is for one process (--workers 1)")
        return
    config, store = _load(db, policy, sqlite_sync=sqlite_sync, commit_in_loop=commit_in_loop)
    shadows = _shadow_configs(shadow, config)
    try:
        service = DecisionService(config, store, shadows=shadows)
    except _startup_errors() as exc:
        store.close()
        _fail(_one_line(exc))
        return
    typer.echo(
        f"scarce serve: policy {config.name!r} ({config.policy_type}) on {store.dialect} "
        f"{store.redacted_url}, model_version {service.watermark}, {workers} process(es), "
        f"http://{host}:{port}",
        err=True,
    )
    os.environ[ENV_TIMEOUT] = str(timeout_request)
    server_options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "http": GuardedHttpToolsProtocol,
        "timeout_keep_alive": timeout_keep_alive,
        "server_header": False,  # no "server: uvicorn" (one header less to build per answer)
        "limit_concurrency": limit_concurrency,
    }
    if workers > 1:
        import tempfile

        # each worker process builds its own service from these (hashed keys only)
        store.close()
        os.environ.update(
            {
                "SCARCE_SERVE_DB": db,
                "SCARCE_SERVE_POLICY": "" if policy is None else str(policy.resolve()),
                "SCARCE_SERVE_SQLITE_SYNC": sqlite_sync,
                "SCARCE_SERVE_KEY_HASHES": "\n".join(hashes),
                "SCARCE_SERVE_NO_AUTH": "1" if not hashes else "0",
                "SCARCE_SERVE_OPEN_METRICS": "1" if open_metrics else "0",
                "SCARCE_SERVE_SHADOWS": "\n".join(str(Path(p).resolve()) for p in shadow or []),
            }
        )
        with tempfile.TemporaryDirectory(prefix="scarce-metrics-") as metrics_dir:
            # the workers' counters are summed through this directory (prometheus_client)
            os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
            uvicorn.run(
                "scarce.serve.app:app_from_env", factory=True, workers=workers, **server_options
            )
        return
    app = create_app(
        service,
        keys=KeyVerifier(hashes) if hashes else None,
        no_auth=not hashes,
        background_sync=True,
        open_metrics=open_metrics,
    )
    uvicorn.run(app, **server_options)  # type: ignore[arg-type]


def export_logs_command(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    db: DbOption = DEFAULT_DB,
    policy: PolicyOption = None,
) -> None:
    """Write joined decisions with rewards as logged bandit data (Parquet) for OPE."""
    from scarce.serve.export import export_logs

    config, store = _load(db, policy, create=False)
    try:
        store.verify(config.policy_fingerprint())
        path, n = export_logs(store, config, out)
    except Exception as exc:  # noqa: BLE001 - report store errors as a usage error
        _fail(_one_line(exc))
        return
    finally:
        store.close()
    typer.echo(f"{n} events -> {path}")


def replay_command(
    db: DbOption = DEFAULT_DB,
    policy: PolicyOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Save the rebuilt model to this directory.")
    ] = None,
) -> None:
    """Rebuild the model from the log (with the service's quarantine of events a model
    cannot learn) and check it against the latest snapshot."""
    from scarce.serve import snapshot as snap
    from scarce.serve.service import models_equal, replay

    config, store = _load(db, policy, create=False)
    try:
        store.verify(config.policy_fingerprint())
        quarantined: list = []
        model = replay(config, store, quarantined=quarantined)
        n = store.counts()["joined"]
        typer.echo(
            f"replayed {n} joined events into a fresh {config.policy_type} "
            f"({len(quarantined)} quarantined)"
        )
        for ev, reason in quarantined:
            typer.echo(f"  quarantined: event {ev.event_id!r} (join seq {ev.seq}): {reason}")
        from scarce.serve.versions import version_of

        latest = store.latest_snapshot(policy_version=version_of(store, config))
        if latest is not None:
            saved = snap.decode(
                latest.state_json, latest.arrays_npz, latest.checksum, config.make_policy()
            )
            rounds = getattr(saved, "rounds_", None)  # (an allocation policy's cohorts)
            rebuilt = replay(config, store, until=latest.watermark, rounds=rounds)
            same = models_equal(rebuilt, saved)
            typer.echo(
                f"snapshot v{latest.version} (model_version {latest.watermark}): "
                + ("reproduced exactly" if same else "DIFFERS from the replayed model")
            )
            if not same:
                raise typer.Exit(code=1)
        if out is not None:
            model.save(out)
            typer.echo(f"model -> {out}")
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001
        _fail(_one_line(exc))
    finally:
        store.close()


def api_key_command(
    key_file: Annotated[
        Path | None, typer.Option(help="Append the new key's hash to this file (mode 0600).")
    ] = None,
    key_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="The key's id: decisions are recorded with it and only keys with the same id "
            "can reward or retry them (give a replacement key the id of the key it replaces).",
        ),
    ] = None,
    scopes: Annotated[
        str | None,
        typer.Option(help="Comma-separated scopes: decide, reward, admin (default: all)."),
    ] = None,
) -> None:
    """Make a new API key: print it once, and its hash (the only form a key file stores)."""
    from scarce.serve.auth import hash_key, key_line, new_key

    key = new_key()
    try:
        line = key_line(
            hash_key(key), key_id=key_id, scopes=None if scopes is None else scopes.split(",")
        )
    except ValueError as exc:
        _fail(str(exc))
        return
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line + "\n")
    typer.echo(f"key:  {key}")
    typer.echo(f"hash: {line}" + (f"  (appended to {key_file})" if key_file else ""))


def register(app: typer.Typer) -> None:
    """Add the service commands to the ``scarce`` CLI."""
    app.command("serve")(serve_command)
    app.command("export-logs")(export_logs_command)
    app.command("replay")(replay_command)
    app.command("api-key")(api_key_command)
    from scarce.serve.loop_commands import evaluate_command, promote_command

    app.command("evaluate")(evaluate_command)
    app.command("promote")(promote_command)
