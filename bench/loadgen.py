"""The benchmark's own HTTP/1.1 load generator, for machines without wrk.

    python bench/loadgen.py --url http://127.0.0.1:PORT/path [--method PUT] [--header 'N: v']...
        [--body TEXT] [--connections 16] [--duration 10] [--max-requests N] [--expect 200]

Keep-alive connections on raw asyncio sockets (uvloop when installed), one request in
flight per connection (no pipelining), every response read whole (Content-Length or
chunked) and its status checked. It stops at the first of: the duration, the request
count; requests still unanswered 5 seconds after that count as timeouts. It talks to
loopback addresses only. It prints one line, ``BENCH_JSON {...}``, with the same keys
as bench/wrk_report.lua.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import sys
import time
from array import array
from urllib.parse import urlsplit

GRACE = 5.0  # seconds to wait for the answers still in flight at the end


class Run:
    """Shared counters of one run."""

    def __init__(self, request: bytes, expect: int, max_requests: int, deadline: float) -> None:
        self.request = request
        self.expect = expect
        self.max_requests = max_requests
        self.deadline = deadline
        self.sent = 0
        self.ok = 0
        self.bad = 0
        self.last_bad = 0
        self.socket_errors = 0
        self.latencies = array("d")
        self.last_done = 0.0
        self.idle: asyncio.Event = asyncio.Event()
        self.active = 0

    def may_send(self) -> bool:
        return self.sent < self.max_requests and time.perf_counter() < self.deadline


class Connection(asyncio.Protocol):
    """One keep-alive connection sending the same request again and again."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.started = 0.0
        self.waiting = False
        self.head_end = -1
        self.length = -1  # body length, -1 while unknown, -2 for chunked
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.active += 1
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if not self.run.may_send():
            self.finish()
            return
        self.run.sent += 1
        self.waiting = True
        self.buffer.clear()
        self.head_end = -1
        self.started = time.perf_counter()
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.head_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_end = end + 4
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            self.length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    self.length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    self.length = -2
        if self.length == -2:
            if not self.buffer.endswith(b"0\r\n\r\n"):
                return
        elif len(self.buffer) - self.head_end < self.length:
            return
        self.complete()

    def complete(self) -> None:
        run = self.run
        now = time.perf_counter()
        run.latencies.append(now - self.started)
        run.last_done = now
        if self.status == run.expect:
            run.ok += 1
        else:
            run.bad += 1
            run.last_bad = self.status
        self.waiting = False
        self.send()

    def finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiting:
            self.run.socket_errors += 1
            self.waiting = False
        self.transport = None
        self.run.active -= 1
        if self.run.active == 0:
            self.run.idle.set()


def build_request(url: str, method: str, headers: list[str], body: str | None) -> bytes:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += headers
    payload = (body or "").encode()
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def check_loopback(host: str) -> None:
    for info in socket.getaddrinfo(host, None):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            sys.exit(f"loadgen: {host} is not a loopback address; refusing")


async def drive(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    check_loopback(host)
    request = build_request(args.url, args.method, args.header, args.body)
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    run = Run(request, args.expect, args.max_requests, start + args.duration)
    connections = min(args.connections, args.max_requests)
    for _ in range(connections):
        try:
            await loop.create_connection(lambda: Connection(run), host, port)
        except OSError:
            run.socket_errors += 1
    timeouts = 0
    if run.active:
        try:
            await asyncio.wait_for(run.idle.wait(), args.duration + GRACE)
        except TimeoutError:
            timeouts = run.active
    elapsed = (run.last_done or time.perf_counter()) - start
    latencies = sorted(run.latencies)

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1000

    return {
        "requests": len(latencies),
        "duration_s": round(elapsed, 6),
        "ok": run.ok,
        "bad": run.bad,
        "last_bad_status": run.last_bad,
        "socket_errors": run.socket_errors,
        "timeouts": timeouts,
        "p50_ms": round(pct(50), 3),
        "p90_ms": round(pct(90), 3),
        "p99_ms": round(pct(99), 3),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--body", default=None)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (bound)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="count (bound)")
    parser.add_argument("--expect", type=int, default=200, help="expected status")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.max_requests <= 0 or args.connections <= 0:
        parser.error("duration, max-requests and connections must be positive")
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(drive(args))
    else:
        result = uvloop.run(drive(args))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
