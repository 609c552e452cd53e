"""The decision service's own CPU per decision, without HTTP and without a load generator on
the same CPUs: ``clients`` concurrent ``POST /v1/decisions`` driven straight through the ASGI
app (the guard, the fast path, the service, the writer) on uvloop, on a fresh SQLite file, as
``scarce serve`` runs it (group-commit writer thread, or ``--commit-in-loop``). The policy and
the request bodies are ``bench_serve.py``'s (LinUCB K = 5, d = 8, every decision charged and
logged). Reports process CPU per decision, the event loop thread's share, and decisions/s.

``--prefill N`` logs ``N`` decisions first (ids from the build's own generator): the cost of
a decision on a grown log.

``--src`` takes one or more source trees (the server's ``PYTHONPATH``), measured in turn,
``--repeats`` times, alternated: a before/after comparison in the same minutes. Each run is a
fresh process.

Usage::

    python benchmarks/serve_inprocess.py --src /path/before/src,/path/after/src --sync FULL,NORMAL
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _prefill(path: Path, rows: int) -> None:
    """``rows`` logged decisions in the store at ``path`` (ids from the tree under test's own
    generator, as a log this build made would hold), checkpointed, before the measurement."""
    import json
    import sqlite3

    from scarce.serve.schema import INSERT_DECISION
    from scarce.serve.validation import EventIds

    new_id = EventIds()
    context = json.dumps([0.5] * 8)
    con = sqlite3.connect(path)
    con.executemany(
        INSERT_DECISION,
        (
            (new_id(), "0" * 64, context, None, None, 1, 1.0, "[0,1,0,0,0]", 0, None, 1e9 + i)
            + (None,) * 4
            + (1, None)
            for i in range(rows)
        ),
    )
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def _run(sync: str, mode: str, clients: int, decisions: int, prefill: int = 0) -> str:
    """One measurement in this process (the child side)."""
    import numpy as np
    import uvloop
    from bench_serve import KEY, POLICY

    from scarce.serve.app import create_app
    from scarce.serve.auth import KeyVerifier, hash_key
    from scarce.serve.config import load_config
    from scarce.serve.service import DecisionService
    from scarce.serve.store import EventStore

    tmp = Path(tempfile.mkdtemp(prefix="scarce-inprocess-"))
    (tmp / "policy.toml").write_text(POLICY)
    store = EventStore(
        f"sqlite:///{tmp / 'events.db'}", sqlite_synchronous=sync, commit_in_caller=mode == "loop"
    )
    app = create_app(
        DecisionService(load_config(tmp / "policy.toml"), store),
        keys=KeyVerifier([hash_key(KEY)]),
    )
    if prefill:  # (the service made the tables)
        _prefill(tmp / "events.db", prefill)
    rng = np.random.default_rng(0)
    bodies = [
        ('{"context":[' + ",".join(f"{v:.6f}" for v in rng.uniform(-2, 2, 8)) + "]}").encode()
        for _ in range(1000)
    ]

    async def one(i: int) -> None:
        body = bodies[i % len(bodies)]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/decisions",
            "raw_path": b"/v1/decisions",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"bench"),
                (b"content-type", b"application/json"),
                (b"x-api-key", KEY.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"answer {sent[0]['status']}: {sent[1].get('body')!r}")

    async def client(c: int, n: int) -> None:
        for i in range(n):
            await one(c * 1_000_003 + i)

    async def main() -> str:
        await asyncio.gather(*(client(c, 300) for c in range(clients)))  # warm-up
        per = decisions // clients
        cpu, wall, loop = time.process_time(), time.perf_counter(), time.thread_time()
        await asyncio.gather(*(client(c, per) for c in range(clients)))
        n = per * clients
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        loop = time.thread_time() - loop
        return f"{cpu / n * 1e3:.3f} {loop / n * 1e3:.3f} {n / wall:.0f}"

    uvloop.install()
    try:
        return asyncio.run(main())
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(_HERE.parent / "src"))
    ap.add_argument("--sync", default="FULL,NORMAL", help="SQLite synchronous modes")
    ap.add_argument("--mode", default="thread", help="thread (served default), loop, or both")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument(
        "--prefill", type=int, default=0, help="decisions logged before the measurement"
    )
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(_run(args.child[0], args.child[1], args.clients, args.decisions, args.prefill))
        return
    modes = ["thread", "loop"] if args.mode == "both" else [args.mode]
    print("src, sync, mode: ms CPU/decision (process, event loop thread), decisions/s")
    for _ in range(args.repeats):
        for sync in args.sync.split(","):
            for mode in modes:
                for src in args.src.split(","):
                    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{_HERE}"}
                    env["OMP_NUM_THREADS"] = "1"
                    cmd = [sys.executable, __file__, "--child", sync, mode]
                    cmd += ["--clients", str(args.clients), "--decisions", str(args.decisions)]
                    cmd += ["--prefill", str(args.prefill)]
                    out = subprocess.run(
                        cmd, env=env, capture_output=True, text=True, check=True
                    ).stdout.split()
                    print(f"{src} {sync:6} {mode:6}: {out[0]} ({out[1]} loop), {out[2]}/s")


if __name__ == "__main__":
    main()
