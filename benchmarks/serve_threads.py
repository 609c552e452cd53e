"""Where the decision service's CPU goes, per thread: user and system CPU time per decision of
the event-loop thread (the process's main thread: HTTP parsing, the key check, validation, the
policy's choice, the answer) and of every other thread (the group-commit writer: SQLite
statements, commits and their fsyncs), at 8 keep-alive connections driven by ``wrk``, every
decision charged and logged (the policy and client of ``bench_serve.py``).

``--src`` takes one or more source trees (``PYTHONPATH`` of the server) and ``--variants`` one
or more sets of ``scarce serve`` options (comma-separated; an empty item: none), measured in
turn, ``--repeats`` times, interleaved: a before/after comparison in the same minutes.

Usage::

    python benchmarks/serve_threads.py --sync FULL,NORMAL --src /path/a/src,/path/b/src
    python benchmarks/serve_threads.py --variants=,--commit-in-loop
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_serve import KEY, POLICY, WRK_SCRIPT, wait_listening

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """``{thread id: (user s, system s)}`` of a process's threads (Linux /proc)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a thread that just ended
            continue
        out[int(task.name)] = (int(fields[11]) / _TICK, int(fields[12]) / _TICK)
    return out


def wrk(port: int, seconds: float, script: str, clients: int) -> int:
    """Requests answered by ``wrk`` in ``seconds`` (every answer must be a 2xx)."""
    cmd = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds:g}s", "-s", script]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/v1/decisions"], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    return int(out.split(" requests in")[0].split()[-1])


def measure(
    src: str, sync: str, extra: str, seconds: float, clients: int, tmp: Path, n: int
) -> dict:
    """One server on a fresh SQLite file: warm-up, then ``seconds`` measured."""
    port = free_port()
    policy = tmp / "policy.toml"
    script = tmp / "wrk.lua"
    db = tmp / f"t{n}.db"
    env = {**os.environ, "SCARCE_API_KEYS": KEY, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}
    cmd = [sys.executable, "-m", "scarce.serve", "serve", "--db", f"sqlite:///{db}"]
    cmd += ["--policy", str(policy), "--port", str(port), "--sqlite-sync", sync, *extra.split()]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(port, proc)
        wrk(port, 1.0, str(script), clients)  # warm-up (and the writer thread's start)
        before = thread_cpu(proc.pid)
        done = wrk(port, seconds, str(script), clients)
        after = thread_cpu(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    loop = (0.0, 0.0)
    others = (0.0, 0.0)
    for tid, (u, s) in after.items():
        u0, s0 = before.get(tid, (0.0, 0.0))
        if tid == proc.pid:
            loop = (u - u0, s - s0)
        else:
            others = (others[0] + u - u0, others[1] + s - s0)
    per = 1e3 / done
    return {
        "decisions/s": done / seconds,
        "loop user": loop[0] * per,
        "loop sys": loop[1] * per,
        "other user": others[0] * per,
        "other sys": others[1] * per,
        "total": (sum(loop) + sum(others)) * per,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--sync", default="FULL", help="SQLite synchronous modes: FULL,NORMAL")
    ap.add_argument("--variants", default="", help="`scarce serve` option sets, comma-separated")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="scarce-threads-") as name:
        tmp = Path(name)
        (tmp / "policy.toml").write_text(POLICY)
        (tmp / "wrk.lua").write_text(WRK_SCRIPT % (KEY, 12345))
        n = 0
        variants = args.variants.split(",")
        for _ in range(args.repeats):
            for sync in args.sync.split(","):
                for src, extra in [(s, v) for s in args.src.split(",") for v in variants]:
                    n += 1
                    r = measure(src, sync, extra, args.seconds, args.clients, tmp, n)
                    print(
                        f"{sync:6} {src} [{extra}]: {r['decisions/s']:6.0f}/s  "
                        f"ms CPU/decision: loop "
                        f"{r['loop user']:.3f} user + {r['loop sys']:.3f} sys, other threads "
                        f"{r['other user']:.3f} user + {r['other sys']:.3f} sys, total "
                        f"{r['total']:.3f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
