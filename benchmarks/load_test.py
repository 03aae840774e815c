"""Bounded load test of ``opencrop serve`` on loopback: throughput and latency at 1/4/16 clients, then the same
4-client load with slow and hostile clients beside it.

The script starts its own server on 127.0.0.1 (a free port; it never targets another host), sends a fixed number
of requests per level (``--requests``) within a time limit (``--seconds``), and prints a Markdown table:

* levels 1, 4, 16: closed-loop clients, each on one keep-alive connection, POSTing examples/astronaut.jpg to
  ``/crop?ratio=16:9&ratio=1:1`` (JSON). 503s (queue full) are counted apart; latency is of the 200s.
  A client answered 503 waits ``Retry-After`` seconds and sends the request again.
* "4 + 2 slow uploads": the 4-client load while two clients trickle an upload one byte every 5 ms (until the
  server's body deadline answers 408); "4 + 2 hostile": the same while two clients loop, 20 times a second each,
  ``Content-Length: 10^12`` followed by garbage, and random bytes as a request; then the plain 4-client load
  once more, to show the run-to-run noise. Everything (server, 2 workers, clients) shares the machine's CPUs.

    python benchmarks/load_test.py [--requests 80] [--seconds 60] [--workers 2] [--no-cues]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only
PATH = "/crop?ratio=16:9&ratio=1:1"


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "opencrop", "serve", "--host", HOST, "--port", "0", "--no-access-log",
           "--workers", str(args.workers), "--body-timeout", str(args.body_timeout), "--log-level", "warning"]
    if args.no_cues:
        cmd.append("--no-cues")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep it drained
            return proc, int(m.group(1))
    raise RuntimeError(f"the server did not start (exit code {proc.wait()})")


class Load:
    """``clients`` closed-loop clients sharing a budget of ``requests`` requests and a deadline."""

    def __init__(self, port: int, body: bytes, clients: int, requests: int, seconds: float) -> None:
        self.port, self.body, self.clients = port, body, clients
        self.left = requests
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.latency: list[float] = []
        self.status: Counter[int | str] = Counter()

    def _take(self) -> bool:
        with self.lock:
            if self.left <= 0 or time.monotonic() > self.deadline:
                return False
            self.left -= 1
            return True

    def _client(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        while self._take():
            t0 = time.perf_counter()
            try:
                conn.request("POST", PATH, body=self.body, headers={"Content-Type": "image/jpeg"})
                r = conn.getresponse()
                r.read()
                code: int | str = r.status
                retry = r.getheader("retry-after")
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as e:
                code, retry = type(e).__name__, None
                conn.close()
            dt = time.perf_counter() - t0
            with self.lock:
                self.status[code] += 1
                if code == 200:
                    self.latency.append(dt)
                elif code == 503:
                    self.left += 1  # a polite client: wait as told, then send the same request again
            if code == 503:
                time.sleep(float(retry or 1))
        conn.close()

    def run(self) -> float:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=self._client) for _ in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0


def trickler(port: int, body: bytes, stop: threading.Event, out: Counter[str]) -> None:
    """Upload ``body`` one byte every 5 ms (TCP_NODELAY: one packet per byte) until the server answers (its body
    deadline) or ``stop``; note the answer's status line."""
    s = socket.create_connection((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    t0 = time.monotonic()
    try:
        for b in body:
            if stop.is_set():
                out["slow: still sending at the end"] += 1
                return
            if select.select([s], [], [], 0)[0]:  # the server has answered
                break
            s.send(bytes([b]))
            time.sleep(0.005)
        s.settimeout(5)
        head = s.recv(200).split(b"\r\n")[0].decode("latin-1") or "connection closed"
    except OSError as e:
        head = type(e).__name__
    finally:
        s.close()
    out[f"slow: {head} after {time.monotonic() - t0:.1f} s"] += 1


def hostile(port: int, kind: str, stop: threading.Event, out: Counter[str]) -> None:
    """Loop one kind of bad request until ``stop``: ``huge`` (Content-Length 10^12, then garbage) or ``garbage``
    (random bytes as a request line); note the status lines it got."""
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, port), timeout=10) as s:
                if kind == "huge":
                    s.sendall(b"POST /crop HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
                    with contextlib.suppress(OSError):
                        s.sendall(os.urandom(65536))
                else:
                    s.sendall(os.urandom(2048) + b"\r\n\r\n")
                head = s.recv(200).split(b"\r\n")[0].decode("latin-1") or "connection closed"
        except OSError as e:
            head = type(e).__name__
        out[f"{kind}: {head}"] += 1
        time.sleep(0.05)


def row(name: str, load: Load, wall: float) -> str:
    lat = sorted(load.latency)
    ok = load.status.get(200, 0)
    p = (lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
    other = ", ".join(f"{k}: {v}" for k, v in sorted(load.status.items(), key=str) if k != 200) or "none"
    p50 = 1000 * statistics.median(lat) if lat else float("nan")
    return f"| {name} | {ok} | {other} | {ok / wall:.1f} | {p50:.0f} | {p(0.99):.0f} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=80, help="requests per level")
    ap.add_argument("--seconds", type=float, default=60.0, help="time limit per level")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--body-timeout", type=float, default=5.0, help="the server's --body-timeout")
    ap.add_argument("--no-cues", action="store_true")
    args = ap.parse_args(argv)
    body = (REPO / "examples" / "astronaut.jpg").read_bytes()
    load_before = os.getloadavg()[0]
    proc, port = start_server(args)
    lines = []
    try:
        Load(port, body, 2, 8, 30).run()  # warm-up, not reported
        for clients in (1, 4, 16):
            load = Load(port, body, clients, args.requests, args.seconds)
            lines.append(row(f"{clients} client{'s' if clients > 1 else ''}", load, load.run()))
        seen: Counter[str] = Counter()
        for name, side_kinds in (("4 clients + 2 slow uploads", ("slow", "slow")),
                                 ("4 clients + 2 hostile", ("huge", "garbage"))):
            stop = threading.Event()
            side = [threading.Thread(target=trickler, args=(port, body, stop, seen)) if k == "slow" else
                    threading.Thread(target=hostile, args=(port, k, stop, seen)) for k in side_kinds]
            for t in side:
                t.start()
            time.sleep(0.5)
            load = Load(port, body, 4, args.requests, args.seconds)
            wall = load.run()
            for t, k in zip(side, side_kinds, strict=True):
                if k == "slow":
                    t.join(args.body_timeout + 10)  # the trickling clients meet the server's body deadline
            stop.set()
            for t in side:
                t.join(30)
            lines.append(row(name, load, wall))
        load = Load(port, body, 4, args.requests, args.seconds)
        lines.append(row("4 clients again (noise)", load, load.run()))
    finally:
        proc.terminate()
        proc.wait(60)
    cues = "no cues" if args.no_cues else "default cues"
    sys.path.insert(0, str(REPO / "benchmarks"))
    from latency import machine

    print(f"Machine: {machine()}; {datetime.date.today().isoformat()}; load average before the run "
          f"{load_before:.2f}.")
    print(f"Server: `opencrop serve --workers {args.workers} --body-timeout {args.body_timeout:g}` ({cues}; "
          f"queue {4 * args.workers}); request: examples/astronaut.jpg (512×512 JPEG) → `{PATH}`; "
          f"{args.requests} requests per row (limit {args.seconds:g} s).\n")
    print("| clients | 200 | other answers | throughput (req/s) | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    print("\nWhat the slow and hostile clients got: " + ", ".join(f"{k} × {v}" for k, v in sorted(seen.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
