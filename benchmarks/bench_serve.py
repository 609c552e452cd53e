"""Decision-service throughput and latency: decisions/s and p50/p99 latency at 1, 8 and 32
concurrent clients, every decision durably logged.

Modes
-----
* ``inproc``: requests go through the FastAPI app in this process (httpx ``ASGITransport``,
  N concurrent asyncio clients): app + validation + policy + event store, no sockets.
* ``loopback``: ``python -m scarce.serve serve`` (uvicorn) in a subprocess, N client threads
  with keep-alive httpx connections over 127.0.0.1.

Stores: SQLite (WAL; ``synchronous=FULL``, i.e. an fsync per commit, and ``NORMAL``, durable
across process crashes but not power loss) and PostgreSQL (a temporary cluster started from
``/usr/lib/postgresql/*/bin`` when present, or ``--pg-url``). Peer: a plain single-process
``http.server`` answering a fixed JSON (no model, no log) on loopback.

Usage::

    python benchmarks/bench_serve.py                  # all modes, stores, 1/8/32 clients
    python benchmarks/bench_serve.py --quick          # shorter runs
    python benchmarks/bench_serve.py --modes loopback --stores sqlite-full --clients 8
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
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
# every action costs 1: every decision reads the budget, is charged and logged in one
# transaction (an untrained LinUCB breaks its ties towards action 0, so a free action 0 would
# leave the budget path unmeasured)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(rng: np.random.Generator) -> dict:
    return {"context": rng.normal(size=8).round(6).tolist()}


# ---------------------------------------------------------------------- stores
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
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _fresh_db(store: str, tmp: Path, pg_admin: str | None, n: int) -> tuple[str, str]:
    """``(db url, sqlite synchronous mode)`` of a new, empty database."""
    if store.startswith("sqlite"):
        return f"sqlite:///{tmp / f'bench{n}.db'}", store.split("-")[1].upper()
    import psycopg

    assert pg_admin is not None
    name = f"bench{os.getpid()}_{n}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_admin.rsplit("/", 1)[0] + f"/{name}", "FULL"


# ---------------------------------------------------------------------- drivers
def _threads(url: str, path: str, clients: int, seconds: float, headers: dict) -> list[float]:
    lat: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[int] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine = []
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                r = c.post(path, json=_body(rng), headers=headers)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(r.status_code)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:3]}")
    return lat


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Child processes (uvicorn workers) of ``pid``."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        out.extend(int(c) for c in children)
    return out


def run_loopback(
    db: str, sync: str, policy: Path, clients: int, seconds: float, workers: int = 1
) -> tuple[list[float], float]:
    port = _port()
    env = {**os.environ, "SCARCE_API_KEYS": KEY, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "scarce.serve", "serve", "--db", db, "--policy", str(policy)]
    cmd += ["--port", str(port), "--sqlite-sync", sync, "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        _threads(url, "/v1/decisions", clients, min(1.0, seconds), {"X-API-Key": KEY})  # warm-up
        pids = [proc.pid, *_children(proc.pid)]
        cpu0 = sum(_cpu_seconds(p) for p in pids)
        lat = _threads(url, "/v1/decisions", clients, seconds, {"X-API-Key": KEY})
        return lat, sum(_cpu_seconds(p) for p in pids) - cpu0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def run_inproc(
    db: str, sync: str, policy: Path, clients: int, seconds: float
) -> tuple[list[float], float]:
    from scarce.serve import DecisionService, EventStore, load_config
    from scarce.serve.app import create_app
    from scarce.serve.auth import KeyVerifier, hash_key

    store = EventStore(db, sqlite_synchronous=sync)
    service = DecisionService(load_config(policy), store)
    app = create_app(service, keys=KeyVerifier([hash_key(KEY)]))

    async def main(duration: float) -> list[float]:
        lat: list[float] = []
        deadline = time.perf_counter() + duration
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:

            async def client(seed: int) -> None:
                rng = np.random.default_rng(seed)
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    r = await c.post("/v1/decisions", json=_body(rng), headers={"X-API-Key": KEY})
                    lat.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        raise RuntimeError(r.text)

            await asyncio.gather(*(client(i) for i in range(clients)))
        return lat

    try:
        asyncio.run(main(min(1.0, seconds)))
        cpu0 = time.process_time()  # includes the in-process client's share
        lat = asyncio.run(main(seconds))
        return lat, time.process_time() - cpu0
    finally:
        store.close()


class _Plain(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body go out in two delayed segments
    payload = json.dumps({"event_id": "x", "action": 0, "probability": 1.0}).encode()

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args: object) -> None:
        pass


def run_plain_http(clients: int, seconds: float) -> tuple[list[float], float]:
    """Peer: stdlib http.server in a subprocess (its own process, like the service)."""
    port = _port()
    here = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); from bench_serve import _Plain; "
        "from http.server import ThreadingHTTPServer; "
        f"ThreadingHTTPServer(('127.0.0.1', {port}), _Plain).serve_forever()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.post(url + "/", json={}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        cpu0 = _cpu_seconds(proc.pid)
        lat = _threads(url, "/", clients, seconds, {})
        return lat, _cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--modes", default="inproc,loopback")
    ap.add_argument("--stores", default="sqlite-full,sqlite-normal,postgres")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="2-second runs")
    ap.add_argument("--pg-url", default=None, help="admin URL of an existing PostgreSQL server")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="service processes (loopback mode)")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    clients = [int(c) for c in args.clients.split(",")]
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        postgres(args.pg_url if "postgres" in args.stores else "unused") as pg,
    ):
        tmp = Path(tmpdir)
        policy = tmp / "policy.toml"
        policy.write_text(POLICY)
        n = 0
        for mode in args.modes.split(","):
            for store in args.stores.split(","):
                if store == "postgres" and pg in (None, "unused"):
                    print("postgres: no server available, skipped", file=sys.stderr)
                    continue
                for k in clients:
                    n += 1
                    db, sync = _fresh_db(store, tmp, pg, n)
                    if mode == "inproc":
                        lat, cpu = run_inproc(db, sync, policy, k, seconds)
                    else:
                        lat, cpu = run_loopback(db, sync, policy, k, seconds, args.workers)
                    rows.append((mode, store, k, len(lat) / seconds, np.array(lat), cpu / len(lat)))
                    print(
                        f"  {mode:8} {store:13} {k:3} clients: {len(lat) / seconds:8.0f}/s",
                        file=sys.stderr,
                    )
        if not args.no_peer:
            for k in clients:
                lat, cpu = run_plain_http(k, seconds)
                rows.append(
                    (
                        "loopback",
                        "peer:http.server",
                        k,
                        len(lat) / seconds,
                        np.array(lat),
                        cpu / len(lat),
                    )
                )
    header = (
        f"{'mode':9} {'store':17} {'clients':>7} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server CPU ms/req':>18}"
    )
    print(header)
    print("-" * len(header))
    out = []
    for mode, store, k, rate, lat, cpu in rows:
        p50, p99 = np.percentile(lat, 50) * 1e3, np.percentile(lat, 99) * 1e3
        print(f"{mode:9} {store:17} {k:7d} {rate:12.0f} {p50:8.2f} {p99:8.2f} {cpu * 1e3:18.2f}")
        out.append(
            {
                "mode": mode,
                "store": store,
                "clients": k,
                "rate": rate,
                "p50_ms": p50,
                "p99_ms": p99,
                "server_cpu_ms_per_request": cpu * 1e3,
            }
        )
    load = os.getloadavg()
    print(
        f"\n{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{seconds:g} s per cell; policy LinUCB K=5 d=8 with a budget (every decision charged "
        "and logged in one transaction).\nserver CPU ms/req: CPU time the server process spent "
        "per request (in-process mode: the whole process, client included); 1000 / it is the "
        "rate one free core would sustain."
    )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(out[0]))
            w.writeheader()
            w.writerows(out)


if __name__ == "__main__":
    main()
