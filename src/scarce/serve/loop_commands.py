"""``scarce evaluate`` (judge candidate configurations on the service's logs) and ``scarce
promote`` (serve another policy version, optionally guarded by that evaluation; a rollback is
a promotion back to an earlier version)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scarce.serve.commands import DEFAULT_DB, _fail, _one_line


def evaluate_command(
    candidate: Annotated[
        list[Path],
        typer.Option(
            "--candidate",
            help="A candidate policy TOML (repeatable; named by the file's stem). [service] "
            "and budgets are inherited from the served configuration.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for evaluation.csv and the plot.")],
    db: Annotated[
        str | None, typer.Option("--db", help="The service's event store (URL or path).")
    ] = None,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Or: a Parquet file of `scarce export-logs`.")
    ] = None,
    estimator: Annotated[
        list[str] | None,
        typer.Option("--estimator", help="ips, snips, dr (repeatable; default all three)."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Intervals at 1 - alpha.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of DR's cross-fitting folds.")] = 0,
) -> None:
    """Counterfactual, progressive evaluation of candidate configurations on the logged
    events: each learns what the served model had learned at every decision (delayed rewards
    joined as the service joined them), under its own budget; IPS, SNIPS and DR with
    intervals. Writes OUT/evaluation.csv (candidate, estimator, value, ci_low, ci_high,
    n_events), OUT/curves.csv and OUT/evaluation.png."""
    from scarce.serve.evaluate import (
        ESTIMATORS,
        candidates_from_files,
        evaluate_candidates,
        read_parquet,
        read_store,
        write_evaluation,
    )

    if (db is None) == (logs is None):
        _fail("give exactly one of --db and --logs")
    ests = tuple(estimator or ESTIMATORS)
    bad = [e for e in ests if e not in ESTIMATORS]
    if bad:
        _fail(f"--estimator must be among {list(ESTIMATORS)}; got {bad}")
    store = None
    try:
        if db is not None:
            from scarce.serve.store import EventStore

            store = EventStore(db, create=False)
            data = read_store(store)
        else:
            assert logs is not None
            if not logs.exists():
                _fail(f"no file at {str(logs)!r}")
            data = read_parquet(logs)
        cands = candidates_from_files(candidate, data.config)
        result = evaluate_candidates(data, cands, estimators=ests, alpha=alpha, seed=seed)
        paths = write_evaluation(result, out)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - bad logs, configs, stores: one line
        _fail(_one_line(exc))
        return
    finally:
        if store is not None:
            store.close()
    table = result.table.copy()
    for col in ("value", "ci_low", "ci_high"):
        table[col] = table[col].map(lambda v: f"{v:.4f}")
    typer.echo(table.to_string(index=False))
    for name, note in result.notes.items():
        if note.get("failed_to_learn"):
            typer.echo(f"note: {name} could not learn {note['failed_to_learn']} event(s)")
    typer.echo(f"-> {paths['evaluation']}, {paths['plot']}")


def promote_command(
    db: Annotated[str, typer.Option("--db", help="The service's event store.")] = DEFAULT_DB,
    candidate: Annotated[
        Path | None,
        typer.Option("--candidate", help="Serve this policy TOML (a new version if unseen)."),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, help="Serve this earlier version (a rollback)."),
    ] = None,
    guard: Annotated[
        bool,
        typer.Option(
            "--guard",
            help="Promote only if the candidate's lower confidence bound on the logs beats the "
            "served policy's estimate.",
        ),
    ] = False,
    estimator: Annotated[
        str, typer.Option(help="The guard's estimator: ips, snips, dr.")
    ] = "snips",
    alpha: Annotated[float, typer.Option(help="The guard's intervals at 1 - alpha.")] = 0.05,
    min_events: Annotated[int, typer.Option(help="The guard needs this many events.")] = 30,
    note: Annotated[str | None, typer.Option(help="Recorded with the promotion.")] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the versions and promotions; change nothing.")
    ] = False,
) -> None:
    """Make another policy version the served one, in the store: running services (every
    replica) switch at their next joiner run, and each decision records the version that made
    it. A promotion is reversible: `scarce promote --version N` serves version N again."""
    import time
    import tomllib

    from scarce.serve.active import budget_rules
    from scarce.serve.config import ConfigError
    from scarce.serve.evaluate import guard_check
    from scarce.serve.store import EventStore, StoreError
    from scarce.serve.versions import (
        active_version,
        candidate_config,
        get_version,
        list_versions,
        promotions,
        record_promotion,
        register_version,
    )

    try:
        store = EventStore(db, create=False)
    except (StoreError, OSError, ValueError) as exc:
        _fail(_one_line(exc))
        return
    try:
        current = active_version(store)
        if list_:
            for v in list_versions(store):
                mark = "*" if v.version == current else " "
                typer.echo(f"{mark} v{v.version} {v.name} ({v.config.policy_type})")
            for p in promotions(store):
                typer.echo(f"  promotion {p['seq']}: v{p['previous']} -> v{p['version']}")
            return
        if (candidate is None) == (version is None):
            _fail("give exactly one of --candidate and --version (or --list)")
        served = get_version(store, current)
        if candidate is not None:
            doc = tomllib.loads(candidate.read_text())
            config = candidate_config(served.config, doc)
            target = register_version(store, config, candidate.stem, time.time())
            name = candidate.stem
        else:
            assert version is not None
            found = get_version(store, version)
            config, target, name = found.config, found.version, found.name
        if target == current:
            _fail(f"policy version {target} ({name!r}) is already served")
        if guard:
            verdict = guard_check(
                store,
                served.config,
                config,
                estimator=estimator,
                alpha=alpha,
                min_events=min_events,
            )
            typer.echo(f"guard: {verdict['reason']}")
            if not verdict["passed"]:
                typer.echo(f"not promoted: version {target} ({name!r})", err=True)
                raise typer.Exit(code=1)
        previous = record_promotion(
            store, target, now=time.time(), note=note, budgets=budget_rules(config).rows()
        )
        typer.echo(f"promoted: v{previous} -> v{target} ({name!r}, {config.policy_type})")
    except typer.Exit:
        raise
    except (ConfigError, StoreError, OSError, ValueError) as exc:
        _fail(_one_line(exc))
    finally:
        store.close()
