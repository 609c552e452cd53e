"""Decision-service throughput, latency and server CPU per decision, with a client that can
saturate a bare server: decisions/s, p50/p99 latency and the service process's CPU time per
decision at 1, 8 and 32 keep-alive connections, every decision durably logged.

Client (``--client``):

* ``wrk``: `wrk <https://github.com/wg/wrk>`_ (C, epoll; Debian package ``wrk``) with a Lua
  script that sends a fresh random context in every request; latency percentiles from wrk's
  ``--latency`` output; non-2xx answers are counted and fail the run;
* ``raw``: a Python client on raw keep-alive sockets (``selectors``), in ``--client-procs``
  processes, each request built from pre-encoded bytes; per-request latencies;
* ``auto`` (default): ``wrk`` when it is installed, else ``raw``.

Targets: ``python -m scarce.serve serve`` (uvicorn) on SQLite (WAL; ``synchronous=FULL``, an
fsync per commit, and ``NORMAL``) and PostgreSQL (a temporary cluster from
``/usr/lib/postgresql/*/bin`` or ``--pg-url``; ``postgres`` commits synchronously, as
PostgreSQL does by default, ``postgres-async`` with ``synchronous_commit=off`` set through the
URL's ``options``); peers on the same loopback: ``bare-asgi``, uvicorn (httptools, uvloop)
serving a fixed JSON answer from a three-line ASGI app (the HTTP floor of the service's
stack), and ``http.server`` (stdlib, threaded). ``STORE+numba`` (e.g. ``sqlite-full+numba``)
serves the same policy with ``backend = "numba"`` (compiled one-case scores; needs numba).

``--budget yes,no``: the service's policy with a budget (every action costs 1: every decision
is charged in the transaction that logs it) and without one.

Server CPU ms/decision: user + system CPU time the service process(es) spent in the measured
window divided by the decisions answered (the client and PostgreSQL run in other processes);
database CPU ms/decision: the same for the PostgreSQL server's processes.

``--repeats N`` runs every cell N times, interleaved (cell 1, 2, ..., then again), and
reports medians with their range; the 1-minute load average is read after every cell.

Usage::

    python benchmarks/bench_serve.py                           # everything, 5 s per cell
    python benchmarks/bench_serve.py --quick                   # 2 s per cell
    python benchmarks/bench_serve.py --targets sqlite-full,postgres --clients 8
    python benchmarks/bench_serve.py --targets postgres,bare-asgi --clients 8 --budget yes,no \
        --repeats 3
    python benchmarks/bench_serve.py --targets sqlite-full --clients 8 --sqlite-args=--commit-in-loop
    python benchmarks/bench_serve.py --targets sqlite-full,sqlite-full+numba --clients 8
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from multiprocessing import get_context
from pathlib import Path

import numpy as np

KEY = "bench-key"
POLICY = """
type = "LinUCB"
n_actions = 5
n_features = 8
alpha = 1.0
seed = 0

[service]
reward_window = 3600.0
sync_interval = 1.0
snapshot_every = 0

[budgets.slots]
total = 1e12
costs = [1.0, 1.0, 1.0, 1.0, 1.0]
"""
POLICY_FREE = POLICY.split("[budgets.slots]")[0]
PG_ASYNC = "options=-c%20synchronous_commit%3Doff"
# every action costs 1: every decision reads the budget, is charged and logged in one
# transaction (an untrained LinUCB breaks its ties towards action 0, so a free action 0 would
# leave the budget path unmeasured)
PEER_ANSWER = json.dumps(
    {"event_id": "0" * 32, "action": 0, "probability": 1.0, "probabilities": [1.0, 0, 0, 0, 0]}
).encode()
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%s"
math.randomseed(%d)
request = function()
  local x = {}
  for i = 1, 8 do x[i] = string.format("%%.6f", math.random() * 4 - 2) end
  return wrk.format(nil, nil, nil, '{"context":[' .. table.concat(x, ",") .. ']}')
end
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request_bytes(rng: np.random.Generator, port: int, path: str) -> bytes:
    body = json.dumps({"context": rng.normal(size=8).round(6).tolist()}).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# ---------------------------------------------------------------------- raw-socket client
def _raw_worker(port: int, path: str, conns: int, seconds: float, seed: int, out) -> None:  # type: ignore[no-untyped-def]
    """One client process: ``conns`` keep-alive connections, one request in flight on each."""
    rng = np.random.default_rng(seed)
    requests = [_request_bytes(rng, port, path) for _ in range(512)]
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        state[s] = [b"", 0.0, i]
        sel.register(s, selectors.EVENT_READ)
    lat: list[float] = []
    bad = 0
    n = 0
    end = time.perf_counter() + seconds
    for s in state:
        state[s][1] = time.perf_counter()
        s.sendall(requests[n % 512])
        n += 1
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(timeout=end - now):
            s = key.fileobj
            st = state[s]
            data = s.recv(65536)
            if not data:
                raise RuntimeError("the server closed a connection")
            st[0] += data
            head, sep, rest = st[0].partition(b"\r\n\r\n")
            if not sep:
                continue
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            length = int(m.group(1)) if m else 0
            if len(rest) < length:
                continue
            t = time.perf_counter()
            lat.append(t - st[1])
            if not head.startswith(b"HTTP/1.1 200"):
                bad += 1
            st[0] = rest[length:]
            st[1] = t
            s.sendall(requests[n % 512])
            n += 1
    for s in state:
        s.close()
    out.put((lat, bad))


def run_raw(port: int, path: str, clients: int, seconds: float, procs: int) -> dict:
    ctx = get_context("fork")
    queue = ctx.Queue()
    procs = max(1, min(procs, clients))
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    workers = [
        ctx.Process(target=_raw_worker, args=(port, path, k, seconds, i, queue))
        for i, k in enumerate(shares)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=seconds + 60) for _ in workers]
    for w in workers:
        w.join()
    lat = np.concatenate([np.asarray(r[0]) for r in results])
    bad = sum(r[1] for r in results)
    if bad:
        raise RuntimeError(f"{bad} answers were not 200")
    return {
        "requests": len(lat),
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
    }


# ---------------------------------------------------------------------- wrk client
def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(port: int, path: str, clients: int, seconds: float, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT % (KEY, 12345))
        script = fh.name
    try:
        cmd = ["wrk", "-t", str(max(1, min(threads, clients))), "-c", str(clients)]
        cmd += ["-d", f"{seconds:g}s", "--latency", "-s", script, f"http://127.0.0.1:{port}{path}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"requests": total, "p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"])}


# ---------------------------------------------------------------------- servers
@contextmanager
def postgres(url: str | None) -> Iterator[str | None]:
    """A PostgreSQL admin URL: the given one, or a temporary cluster (None if impossible)."""
    if url:
        yield url
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        yield None
        return
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="scarce-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
        prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(root / "d"), "-U", "scarce", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    port = _port()
    proc = subprocess.Popen(
        [*prefix, str(bindir / "postgres"), "-D", str(root / "d"), "-p", str(port), "-k", str(root)]
        + ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import psycopg

    _PG_PIDS.append(proc.pid)
    admin = f"postgresql://scarce@127.0.0.1:{port}/postgres"
    for _ in range(300):
        try:
            psycopg.connect(admin).close()
            break
        except psycopg.OperationalError:
            time.sleep(0.1)
    try:
        yield admin
    finally:
        _PG_PIDS.remove(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _fresh_db(target: str, tmp: Path, pg_admin: str | None, n: int) -> tuple[str, str]:
    """``(db url, sqlite synchronous mode)`` of a new, empty database."""
    if target.startswith("sqlite"):
        return f"sqlite:///{tmp / f'bench{n}.db'}", target.split("-")[1].upper()
    import psycopg

    assert pg_admin is not None
    name = f"bench{os.getpid()}_{n}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_admin.split("?")[0].rsplit("/", 1)[0] + f"/{name}"
    return (url + "?" + PG_ASYNC if target == "postgres-async" else url), "FULL"


_PG_PIDS: list[int] = []  # the temporary cluster's postmaster (none with --pg-url)


def _pg_cpu_seconds() -> float:
    """User + system CPU time of the temporary cluster's processes (postmaster and backends,
    Linux /proc; 0 with ``--pg-url``)."""
    total = 0.0
    for root in _PG_PIDS:
        for pid in (root, *_children(root)):
            try:
                total += _cpu_seconds(pid)
            except OSError:  # a backend that just exited
                pass
    return total


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.extend(int(c) for c in (task / "children").read_text().split())
    return out


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    """Return once ``proc`` accepts connections on ``port`` (an error if it exits first or never listens)."""
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


class _Plain(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body go out in two delayed segments

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(PEER_ANSWER)))
        self.end_headers()
        self.wfile.write(PEER_ANSWER)

    def log_message(self, *args: object) -> None:
        pass


async def bare_asgi(scope, receive, send):  # type: ignore[no-untyped-def]
    """The peer ``bare-asgi``: read the body, answer a fixed JSON (no model, no log)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(PEER_ANSWER)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": PEER_ANSWER})


def _server_cmd(target: str, port: int, db: str, sync: str, policy: Path, workers: int) -> list:
    here = str(Path(__file__).parent)
    if target == "bare-asgi":
        code = (
            f"import sys; sys.path.insert(0, {here!r}); import uvicorn; from bench_serve import "
            f"bare_asgi; uvicorn.run(bare_asgi, port={port}, log_level='warning', access_log=False)"
        )
        return [sys.executable, "-c", code]
    if target == "http.server":
        code = (
            f"import sys; sys.path.insert(0, {here!r}); from bench_serve import _Plain; "
            "from http.server import ThreadingHTTPServer; "
            f"ThreadingHTTPServer(('127.0.0.1', {port}), _Plain).serve_forever()"
        )
        return [sys.executable, "-c", code]
    cmd = [sys.executable, "-m", "scarce.serve", "serve", "--db", db, "--policy", str(policy)]
    return cmd + ["--port", str(port), "--sqlite-sync", sync, "--workers", str(workers)]


def _numba_policy(text: str) -> str:
    """The default policy with ``backend = "numba"`` (the compiled one-case scores)."""
    return text.replace('type = "LinUCB"\n', 'type = "LinUCB"\nbackend = "numba"\n', 1)


def run_cell(target, clients, seconds, args, policy, tmp, pg, n) -> dict:  # type: ignore[no-untyped-def]
    """One measurement: a fresh database and server, a warm-up, ``seconds`` measured.
    ``STORE+numba`` serves the policy with ``backend = "numba"`` on ``STORE``."""
    port = _port()
    db, sync = ("", "FULL")
    store, _, variant = target.partition("+")
    if variant == "numba":
        policy = policy.with_name(policy.stem + "-numba.toml")
    if store not in ("bare-asgi", "http.server"):
        db, sync = _fresh_db(store, tmp, pg, n)
    env = {**os.environ, "SCARCE_API_KEYS": KEY, "OMP_NUM_THREADS": "1"}
    cmd = _server_cmd(store, port, db, sync, policy, args.workers)
    if store.startswith("sqlite"):
        cmd += args.sqlite_args.split()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = "/" if target == "http.server" else "/v1/decisions"
    try:
        wait_listening(port, proc)
        drive = (
            (lambda k, s: run_wrk(port, path, k, s, args.wrk_threads))
            if args.client == "wrk"
            else (lambda k, s: run_raw(port, path, k, s, args.client_procs))
        )
        drive(clients, min(1.0, seconds))  # warm-up (and the first decisions' set-up)
        pids = [proc.pid, *_children(proc.pid)]
        cpu0, db0 = sum(_cpu_seconds(p) for p in pids), _pg_cpu_seconds()
        res = drive(clients, seconds)
        cpu = sum(_cpu_seconds(p) for p in pids) - cpu0
        db_cpu = _pg_cpu_seconds() - db0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "target": target,
        "clients": clients,
        "rate": res["requests"] / seconds,
        "p50_ms": res["p50_ms"],
        "p99_ms": res["p99_ms"],
        "server_cpu_ms": cpu / res["requests"] * 1e3,
        "db_cpu_ms": db_cpu / res["requests"] * 1e3 if target.startswith("postgres") else 0.0,
        "load": os.getloadavg()[0],
    }


# ---------------------------------------------------------------------- main
def _summary(runs: list[dict]) -> dict:
    """Medians (and ranges) of the repeats of one cell."""
    out = {k: runs[0][k] for k in ("target", "budget", "clients")}
    for k in ("rate", "p50_ms", "p99_ms", "server_cpu_ms", "db_cpu_ms", "load"):
        values = [r[k] for r in runs]
        out[k] = float(np.median(values))
        out[k + "_min"], out[k + "_max"] = min(values), max(values)
    out["repeats"] = len(runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--targets",
        default="sqlite-full,sqlite-normal,postgres,postgres-async,bare-asgi,http.server",
    )
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--budget", default="yes", help="yes, no or yes,no: the policy's budget")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs of every cell")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="2-second runs")
    ap.add_argument("--client", choices=("auto", "wrk", "raw"), default="auto")
    ap.add_argument("--client-procs", type=int, default=1, help="processes of the raw client")
    ap.add_argument("--wrk-threads", type=int, default=1, help="threads of wrk")
    ap.add_argument("--pg-url", default=None, help="admin URL of an existing PostgreSQL server")
    ap.add_argument("--workers", type=int, default=1, help="service processes")
    ap.add_argument(
        "--sqlite-args", default="", help="more `scarce serve` options for the SQLite targets"
    )
    ap.add_argument("--csv", default=None)
    ap.add_argument(
        "--policy",
        default=None,
        help="a policy TOML to serve instead of the default LinUCB (8 shared features)",
    )
    args = ap.parse_args()
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "raw"
    seconds = 2.0 if args.quick else args.seconds
    clients = [int(c) for c in args.clients.split(",")]
    targets = args.targets.split(",")
    budgets = args.budget.split(",")
    if not set(budgets) <= {"yes", "no"} or (args.policy and budgets != ["yes"]):
        ap.error("--budget: yes, no or yes,no (and only with the default policy)")
    cells = []
    for t in targets:
        for b in budgets if t not in ("bare-asgi", "http.server") else ["-"]:
            cells.extend((t, b, k) for k in clients)
    runs: dict[tuple[str, str, int], list[dict]] = {c: [] for c in cells}
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        postgres(args.pg_url if any(t.startswith("postgres") for t in targets) else "unused") as pg,
    ):
        tmp = Path(tmpdir)
        policies = {"yes": tmp / "budget.toml", "no": tmp / "free.toml", "-": tmp / "budget.toml"}
        policies["yes"].write_text(POLICY if args.policy is None else Path(args.policy).read_text())
        policies["no"].write_text(POLICY_FREE)
        for key in ("yes", "no"):  # the STORE+numba targets' policies
            path = policies[key]
            path.with_name(path.stem + "-numba.toml").write_text(_numba_policy(path.read_text()))
        n = 0
        for rep in range(args.repeats):
            for target, budget, k in cells:
                if target.startswith("postgres") and pg in (None, "unused"):
                    if rep == 0:
                        print(f"{target}: no PostgreSQL server available, skipped", file=sys.stderr)
                    continue
                row = run_cell(target, k, seconds, args, policies[budget], tmp, pg, n)
                row["budget"] = budget
                runs[(target, budget, k)].append(row)
                n += 1
                print(
                    f"  [{rep + 1}/{args.repeats}] {target:18} budget {budget:3} {k:3} clients: "
                    f"{row['rate']:8.0f}/s, {row['server_cpu_ms']:.3f} ms CPU/decision, "
                    f"load {row['load']:.1f}",
                    file=sys.stderr,
                )
    rows = [_summary(r) for r in runs.values() if r]
    header = (
        f"{'target':18} {'budget':>6} {'clients':>7} {'decisions/s':>19} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'server CPU ms/decision':>23} {'db CPU ms':>9} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        rate = f"{r['rate']:.0f} ({r['rate_min']:.0f}-{r['rate_max']:.0f})"
        cpu = (
            f"{r['server_cpu_ms']:.3f} ({r['server_cpu_ms_min']:.3f}-{r['server_cpu_ms_max']:.3f})"
        )
        print(
            f"{r['target']:18} {r['budget']:>6} {r['clients']:7d} {rate:>19} {r['p50_ms']:7.2f} "
            f"{r['p99_ms']:7.2f} {cpu:>23} {r['db_cpu_ms']:9.3f} {r['load']:5.1f}"
        )
    load = os.getloadavg()
    print(
        f"\nclient {args.client}; {os.cpu_count()} CPUs, load average now {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f} ('load': median of the 1-minute figure after each cell); "
        f"{seconds:g} s per cell, medians of {args.repeats} interleaved run(s) (range); policy "
        + (
            f"{args.policy}"
            if args.policy
            else "LinUCB K=5 d=8, with a budget (every decision charged and logged in one "
            "transaction) or without."
        )
    )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
