"""Bascule's benchmark: every goal a ratio of two servers sharing one CPU at the same time.

    .venv/bin/python bench/run.py [--runs 5] [--duration 5] [--goals 1 2 3 5]
    .venv/bin/python bench/run.py --instructions

Each pair (Bascule and its baseline, one uvicorn worker each, served alike) is pinned
with taskset on one CPU and loaded at the same time by two wrk processes pinned on
another; the result of a run is the ratio of the requests each server answered per
second of CPU time it used, in those seconds. Writes bench/RESULTS.md, keeping
bench/reliability.py's section. --instructions counts instead the instructions per
request of the gate refusing and of a bare 503 under valgrind, and writes nothing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import http.client
import itertools
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

from bascule.proxies import DECISION_PATH, PROXIES

ROOT = Path(__file__).resolve().parent.parent
APPS = [sys.executable, str(ROOT / "bench" / "apps.py")]
BASCULE = [str(Path(sys.executable).with_name("bascule"))]
HOST, PASSWORD = "127.0.0.1", "bench-admin-password"  # bench/apps.py's admin has it too
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
WRONG = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
STATE, UPDATE = "/rest/v1/maintenance", json.dumps({"message": "Copying files."})
PRODUCTION = {"BASCULE_ACCESS_LOG": "false", "BASCULE_VALIDATE_RESPONSES": "false"}
SECTION = "<!-- reliability:start -->"  # bench/reliability.py's part of RESULTS.md
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MAX_RESPONSES, TOP_UP_SECONDS, WRITERS = 5_000_000, 300, 4  # bounds of a run, of a top-up
ASKS = {"X-Original-URI": "/shop"}  # the decision endpoint's question, as nginx asks it
GOALS = [1, 2, 3, 5, 6, 7, 8, 9, 10]
SCRAPES, SCRAPE_GOAL_MS = 200, 50  # goal 9's scrapes of /metrics, and the p99 they must meet
PACKAGES = ["bascule", "uvicorn", "uvloop", "httptools", "connexion", "starlette", "psycopg"]


def say(text: str) -> None:
    print(text, flush=True)


class Receiver:
    """A webhook receiver on a loopback port of this process (not the servers' CPU),
    answering 204 to every delivery; how many it got."""

    def __init__(self) -> None:
        import http.server
        import threading

        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.got += 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.got = 0
        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Updates:
    """While in its ``with``: an update of each server's maintenance every ``every``
    seconds (at most an hour's worth), so that each has a change to tell."""

    def __init__(self, servers: list[Any], every: float) -> None:
        import threading

        self.servers, self.every, self.stop = servers, every, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        headers = {**BASIC, "Content-Type": "application/json"}
        for _ in range(int(3600 / self.every)):
            if self.stop.wait(self.every):
                return
            for server in self.servers:
                call(server.port, "PUT", STATE, headers, UPDATE)

    def __enter__(self) -> Updates:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


# Headers that differ from one answer to the next of the same server: not compared.
VOLATILE = frozenset({"date", "x-envoy-upstream-service-time"})


def call(port: int, method: str, path: str, headers: dict[str, str], body: str = "") -> Any:
    """One request on a connection of its own: status, headers but VOLATILE ones, body."""
    with contextlib.closing(http.client.HTTPConnection(HOST, port, timeout=30)) as conn:
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        kept = [(k.lower(), v) for k, v in answer.getheaders() if k.lower() not in VOLATILE]
        return answer.status, kept, answer.read()


# free_port's ranges: eight workers' of 1,200 ports each, below the kernel's ephemeral
# ports (32768 and up, which outgoing connections take).
PORTS_FROM, PORTS_PER_WORKER = 22000, 1200
# Where each process starts in its range (its pid): a process and those it starts differ.
_TURNS = itertools.count(os.getpid() % PORTS_PER_WORKER)


def free_port() -> int:
    """A loopback port free now, from a range of this pytest worker's own.

    The port is bound later, by another process, seconds later under valgrind: the
    kernel's bind(0) may meanwhile hand the same port to another worker's test, whose
    requests would then reach this one's server. Each worker (PYTEST_XDIST_WORKER gwN,
    inherited by the processes it starts) takes the ports of its own range, below the
    kernel's ephemeral ones, in turn, skipping those in use. ``TEST_PORT_SLOT=N`` moves
    a whole run N ranges on, so that two checkouts can be tested at once.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    slot = int(worker[2:]) if worker[2:].isdigit() else 0
    slot += int(os.environ.get("TEST_PORT_SLOT", "0") or 0)  # two runs at once
    first = PORTS_FROM + PORTS_PER_WORKER * (slot % 8)
    for _ in range(PORTS_PER_WORKER):
        port = first + next(_TURNS) % PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port from {first} to {first + PORTS_PER_WORKER - 1}")


class Server:
    """One server process on a loopback port (a free one, given as --host and --port,
    unless its configuration names one); its output in the work directory."""

    def __init__(self, name: str, argv: list[str], work: Path, port: int = 0, **settings: str):
        self.name, self.port, self.log = name, port or free_port(), work / f"{name}.log"
        # Without the caller's BASCULE_* settings; bench/ importable (--app bench.apps:...).
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
        env |= {"PYTHONPATH": str(ROOT), **settings}
        argv = argv if port else [*argv, "--host", HOST, "--port", str(self.port)]
        with self.log.open("wb") as out:  # a session of its own: Ctrl-C is the benchmark's
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
            )

    def ready(self, timeout: float = 60, path: str = "/", expect: int = 0) -> Server:
        """Once it answers ``path`` (with ``expect``, if given: Traefik answers 404 until
        its routes are loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                status = call(self.port, "GET", path, {})[0]
                if status == expect or not expect:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def cpu(self) -> float:
        """User and system CPU time of the process and its children (nginx's worker), all
        their threads, in seconds."""
        ticks, pids = 0, [self.proc.pid]
        while pids:
            pid = pids.pop()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            pids += Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss(self) -> float:
        """Resident memory (VmRSS), in MiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(status.split("VmRSS:", 1)[1].split()[0]) / 1024

    def stop(self, grace: float = 10) -> None:
        """Ctrl-C and ``grace`` seconds to exit cleanly; then SIGTERM, then SIGKILL."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(wait)


@dataclass
class Side:
    """One side of a pair: a server, and the request its load generator sends over and over
    (by default, the admin's GET of the state)."""

    label: str
    server: Server
    path: str = STATE
    expect: int = 200
    headers: dict[str, str] = field(default_factory=lambda: dict(BASIC))
    method: str = "GET"
    body: str = ""
    connections: int = 0  # 0: --connections
    also: list[Server] = field(default_factory=list)  # the rest of its processes

    def cpu(self) -> float:
        return sum(server.cpu() for server in (self.server, *self.also))


def nearest_p99(seconds: list[float]) -> float:
    """The 99th percentile of durations, by the nearest rank."""
    return sorted(seconds)[max(0, -(-99 * len(seconds) // 100) - 1)]


def per_cpu_second(figures: dict[str, Any]) -> float:
    return float(figures["requests"] / figures["cpu_s"])


def per_second(figures: dict[str, Any]) -> float:
    return float(figures["requests"] / figures["seconds"])


def spread(ratios: list[float]) -> str:
    return f"{median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f})"


class Bench:
    """The servers and databases of one benchmark, their load, and its report's rows."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts, self.work = opts, Path(tempfile.mkdtemp(prefix="bascule-bench-"))
        # Searchable, not readable: nginx's worker (nobody, under root) writes its cache in
        # a directory of it.
        self.work.chmod(0o711)
        self.servers: list[Server] = []
        self.databases: list[str] = []
        self.rows: list[list[str]] = []
        cpus = sorted(os.sched_getaffinity(0))
        self.server_cpu, self.load_cpu = cpus[0], cpus[-1]  # the same one if there is one
        os.sched_setaffinity(0, {self.load_cpu})  # this process stays off the servers' CPU
        self.pg, self.pg_note = postgres_server(opts.postgres_url)

    def launch(self, name: str, argv: list[str], port: int = 0, **settings: str) -> Server:
        pinned = ["taskset", "-c", str(self.server_cpu), *argv]
        self.servers.append(Server(name, pinned, self.work, port, **settings))
        return self.servers[-1].ready(**({"path": "/shop", "expect": 200} if port else {}))

    def bascule(self, name: str, database: str = "", **settings: str) -> Server:
        """``bascule serve`` on a database of its own (SQLite unless given), in production
        settings unless ``settings`` say otherwise."""
        url = database or f"sqlite:///{self.work}/{name}.db"
        settings = {**PRODUCTION, "BASCULE_DATABASE_URL": url, **settings}
        return self.launch(name, [*BASCULE, "serve"], BASCULE_ADMIN_PASSWORD=PASSWORD, **settings)

    def postgres(self, name: str) -> str:
        """A fresh PostgreSQL database, dropped at the end."""
        import psycopg

        self.databases.append(f"bascule_bench_{os.getpid()}_{name}")
        with psycopg.connect(self.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.databases[-1]}" TEMPLATE template0')
        return urlsplit(self.pg)._replace(path="/" + self.databases[-1]).geturl()

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        if self.databases:
            import psycopg

            with psycopg.connect(self.pg, autocommit=True) as conn:
                for database in self.databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(self.work, ignore_errors=True)

    def enable(self, server: Server) -> Server:
        if call(server.port, "POST", STATE, BASIC)[0] != 201:
            raise RuntimeError(f"{server.name} did not enable maintenance")
        return server

    def log_size(self, server: Server) -> int:
        return int(json.loads(call(server.port, "GET", STATE, BASIC)[2])["data"]["logSize"])

    def same_answers(self, a: Side, b: Side, headers: bool = True) -> None:
        """Refuse to compare servers that answer differently (status, body, headers)."""
        answers = []
        for side in (a, b):
            status, head, body = call(side.server.port, side.method, side.path, side.headers)
            with contextlib.suppress(ValueError):
                body = json.loads(body)  # the same JSON, whatever its spacing
            with contextlib.suppress(AttributeError, TypeError, KeyError):
                del body["maintenance"]["since"]  # each server's own start, a moment apart
            answers.append((status, head if headers else None, body))
        if answers[0] != answers[1] or answers[0][0] != a.expect:
            raise RuntimeError(f"{a.label} and {b.label} answer differently: {answers}")

    def top_up(self, side: Side, updates: int) -> None:
        """Send ``side``'s PUT until the log holds ``updates`` updates after its enable, on
        four connections: that many requests at most, within TOP_UP_SECONDS."""
        deadline = time.monotonic() + TOP_UP_SECONDS
        missing = updates + 1 - self.log_size(side.server)

        def put(count: int) -> None:
            conn = http.client.HTTPConnection(HOST, side.server.port, timeout=30)
            with contextlib.closing(conn):
                for _ in range(count):
                    conn.request(side.method, side.path, side.body, side.headers)
                    conn.getresponse().read()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{side.label}: {updates} updates not done in time")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, [missing // 4 + (i < missing % 4) for i in range(4)]))
        if self.log_size(side.server) < updates + 1:
            raise RuntimeError(f"{side.label}: fewer than {updates} updates logged")

    # -- the paired runs --------------------------------------------------------------------

    def wrk(self, side: Side, seconds: int) -> subprocess.Popen[str]:
        """One load generator on the load CPU, bounded in time and in responses."""
        argv = ["taskset", "-c", str(self.load_cpu), "wrk", "-t1", f"-d{seconds}s"]
        argv += [f"-c{side.connections or self.opts.connections}", "--timeout", "5s"]
        argv += ["-s", str(ROOT / "bench" / "wrk_report.lua")]
        argv += [f"-H{name}: {value}" for name, value in side.headers.items()]
        argv.append(f"http://{HOST}:{side.server.port}{side.path}")
        env = {"BENCH_METHOD": side.method, "BENCH_BODY": side.body}
        env |= {"BENCH_EXPECT": str(side.expect), "BENCH_MAX": str(MAX_RESPONSES)}
        return subprocess.Popen(argv, env=os.environ | env, stdout=subprocess.PIPE, text=True)

    def run(self, a: Side, b: Side, seconds: int) -> list[dict[str, Any]]:
        """Both sides loaded at once: each one's wrk figures and its server's CPU time."""
        cpu = [a.cpu(), b.cpu()]
        procs = [self.wrk(a, seconds), self.wrk(b, seconds)]
        try:
            outputs = [proc.communicate(timeout=seconds + 30)[0] for proc in procs]
        finally:
            for proc in procs:
                proc.kill()  # gone already, unless it outlived its bound
        figures = []
        for side, output, before in zip((a, b), outputs, cpu, strict=True):
            line = next((x for x in output.splitlines() if x.startswith("BENCH_JSON ")), "")
            if not line:
                raise RuntimeError(f"wrk gave no figures for {side.label}:\n{output[-2000:]}")
            figures.append({**json.loads(line[11:]), "cpu_s": side.cpu() - before})
        return figures

    def runs(self, a: Side, b: Side, measure: Any) -> tuple[list[float], list[list[Any]]]:
        """A warm-up (its answers checked, its figures dropped), then --runs runs: the ratio
        of each (b over a), and every run's figures."""
        warmup = self.run(a, b, self.opts.warmup)
        done = [self.run(a, b, self.opts.duration) for _ in range(self.opts.runs)]
        ratios = [measure(figures[1]) / measure(figures[0]) for figures in done]
        say(f"  {b.label} / {a.label}: " + ", ".join(f"{r:.3f}x" for r in ratios))
        return ratios, [warmup, *done]

    def pair(self, name: str, a: Side, b: Side, goal: float = 0, rate: bool = False) -> None:
        """Measure a pair and add its row. One that misses its goal is measured once more
        (another program can slow one side down), and the row says so."""
        measure = per_second if rate else per_cpu_second
        ratios, done = self.runs(a, b, measure)
        again, checked = "", done
        if median(ratios) < goal:
            again = f"; first {spread(ratios)}, then run again"
            ratios, done = self.runs(a, b, measure)
            checked = checked + done
        unexpected = sum(side["bad"] + side["errors"] for figures in checked for side in figures)
        cells = [name]
        for i, side in enumerate((a, b)):
            rates = median(per_second(figures[i]) for figures in done[1:])
            if rate:
                p99 = median(figures[i]["p99_ms"] for figures in done[1:])
                cells.append(f"{side.label}: {rates:,.0f} req/s, p99 {p99:.0f} ms")
            else:
                cost = median(per_cpu_second(figures[i]) for figures in done[1:])
                cells.append(f"{side.label}: {cost:,.0f} req/CPU-s ({rates:,.0f} req/s)")
        met = ("yes" if median(ratios) >= goal else "**NO**") + f" (>= {goal}x)"
        self.row(*cells, spread(ratios) + again, met if goal else "report", unexpected)

    def row(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])
        say("| " + " | ".join(self.rows[-1]) + " |")

    # -- the goals --------------------------------------------------------------------------

    def goal_1(self) -> None:
        """The gate refusing, against a bare ASGI callable answering the same bytes."""
        bascule = self.enable(self.bascule("refusing"))
        b = Side("Bascule, maintenance on", bascule, "/shop", 503)
        # The bare callable answers the bytes Bascule answers now (they tell its state).
        refusal = call(bascule.port, "GET", "/shop", {})[2]
        bare = self.launch("refuse", [*APPS, "refuse"], BENCH_REFUSAL=refusal.decode())
        a = Side("bare ASGI 503", bare, "/shop", 503)
        self.same_answers(a, b)
        self.pair("1. Gate refusing: GET /shop, 503", a, b, 0.9)

    def goal_2(self) -> None:
        """The gate open, against the application it lets requests through to, alone."""
        for goal, what, app in (("2a", "raw ASGI app", "downstream"),
                                ("2b", "Starlette app", "starlette_app")):  # fmt: skip
            alone = Side(f"{what} alone", self.launch(app, [*APPS, app]), "/shop")
            gated = self.bascule(f"gated-{app}", BASCULE_APP=f"bench.apps:{app}")
            behind = Side(f"{what} behind Bascule", gated, "/shop")
            self.same_answers(alone, behind)
            self.pair(f"{goal}. Gate open, {what}: GET /shop, 200", alone, behind, 0.95)

    def goal_3(self) -> None:
        """The API, with Basic and the cookie, against bare connexion; two settings' costs."""
        bare, bascule = self.launch("connexion", [*APPS, "connexion"]), self.bascule("api")
        validating = self.bascule("validating", BASCULE_VALIDATE_RESPONSES="true")
        logging = self.bascule("logging", BASCULE_ACCESS_LOG="true")
        rest = bare.rss(), bascule.rss()
        form = urlencode({"username": "admin", "password": PASSWORD})
        _, head, _ = call(bascule.port, "POST", "/login", FORM, form)
        cookie = next(v.split(";")[0] for k, v in head if v.startswith("JSESSIONID="))
        base, basic = Side("bare connexion, Basic", bare), Side("Bascule, Basic", bascule)
        session = Side("Bascule, session cookie", bascule, headers={"Cookie": cookie})
        valid = Side("Bascule, response validation on", validating)
        logged = Side("Bascule, access log on", logging)
        for side in (basic, session, valid, logged):  # each password verified once, here
            self.same_answers(base, side, headers=False)
        if {call(s.port, "GET", STATE, WRONG)[0] for s in (bare, bascule)} != {401}:
            raise RuntimeError("a wrong password is accepted")
        self.pair("3. GET state, HTTP Basic", base, basic, 0.9)
        self.pair("4. GET state, session cookie", base, session, 0.9)
        self.pair("3v. Response validation on vs off", basic, valid)
        self.pair("3l. Access log on vs off", basic, logged)
        after = bare.rss(), bascule.rss()
        sides = zip(("bare connexion", "Bascule"), rest, after, strict=True)
        cells = [f"{side}: {r:.1f} MiB at rest, {a:.1f} MiB after its runs" for side, r, a in sides]
        ratio = f"{rest[1] / rest[0]:.2f}x at rest, {after[1] / after[0]:.2f}x after"
        self.row("3m. Memory of one worker (VmRSS)", *cells, ratio, "report", "—")

    def goal_5(self) -> None:
        """Writes on PostgreSQL against SQLite; GET after --updates updates against after 100."""
        many, backends = self.opts.updates, ["SQLite", "PostgreSQL"] if self.pg else ["SQLite"]
        puts = {}  # (backend, updates): the PUT of a server of its own
        for backend, updates in itertools.product(backends, (100, many)):
            name = f"log-{backend.lower()}-{updates}"
            database = self.postgres(name) if backend == "PostgreSQL" else ""
            server = self.enable(self.bascule(name, database))
            put = Side(f"PUT on {backend}", server, expect=201, method="PUT", body=UPDATE)
            put.headers["Content-Type"], put.connections = "application/json", WRITERS
            puts[backend, updates] = put
        if self.pg:  # these writes count among the --updates
            writes = puts["SQLite", many], puts["PostgreSQL", many]
            self.pair("5w. Write rate, PostgreSQL vs SQLite", *writes, rate=True)
        else:
            self.row("5w. Write rate, PostgreSQL vs SQLite", "—", "—", self.pg_note, "—", "—")
        with ThreadPoolExecutor(len(puts)) as pool:
            list(pool.map(self.top_up, puts.values(), [updates for _, updates in puts]))
        for backend in ("SQLite", "PostgreSQL"):
            name = f"5. GET after {many:,} updates vs after 100, {backend}"
            if backend not in backends:
                self.row(name, "—", "—", self.pg_note, "—", "—")
                continue
            servers = [puts[backend, updates].server for updates in (100, many)]
            a, b = (Side(f"log of {self.log_size(s):,} entries", s) for s in servers)
            self.pair(name, a, b, 0.9)

    def goal_6(self) -> None:
        """The decision endpoint, allowing and refusing, against bare ASGI callables."""
        for kind, status, state, row in (("allow", 200, "off", "6a"), ("refuse", 503, "on", "6r")):
            server = self.bascule(f"deciding-{state}")
            answered = {}
            if status == 503:  # the bare callable answers the bytes Bascule answers now
                self.enable(server)
                refusal = call(server.port, "GET", DECISION_PATH, dict(ASKS))[2]
                answered["BENCH_REFUSAL"] = refusal.decode()
            bare = self.launch(kind, [*APPS, kind], **answered)
            a = Side(f"bare ASGI {status}", bare, DECISION_PATH, status, dict(ASKS))
            b = Side(f"Bascule, maintenance {state}", server, DECISION_PATH, status, dict(ASKS))
            self.same_answers(a, b)
            doing = f"{row}. Decision endpoint {'allowing' if status == 200 else 'refusing'}"
            self.pair(f"{doing}: GET {DECISION_PATH}, {status}", a, b, 0.9)

    def goal_7(self) -> None:
        """The default ``bascule serve`` (access log on) refusing, against the log off."""
        off = Side("access log off", self.enable(self.bascule("quiet")), "/shop", 503)
        # The same database, so the same maintenance: the refusal tells when it started.
        same = f"sqlite:///{self.work}/quiet.db"
        default = self.bascule("default", same, BASCULE_ACCESS_LOG="true")
        on = Side("access log on (the default)", default, "/shop", 503)
        self.same_answers(off, on)
        self.pair("7. Gate refusing, access log on vs off: GET /shop, 503", off, on, 0.8)

    def goal_8(self) -> None:
        """Each proxy with Bascule (its recipe, its follower), maintenance off, against the
        same proxy alone, counting the proxy tier only (not the app behind both); with
        maintenance on, its refusals against Bascule's own gate refusing; how soon a
        change reaches a visitor through it, on SQLite and on PostgreSQL."""
        for kind in self.opts.proxies:
            bascule = self.bascule(f"{kind}-bascule")
            plain = self.proxied(kind, None)
            recipe, follower = self.proxied(kind, bascule), self.servers[-1]
            a = Side(f"{kind} alone", plain, "/shop", headers={})
            b = Side(f"{kind} with Bascule, off", recipe, "/shop", headers={}, also=[bascule])
            b.also.append(follower)
            self.same_answers(a, b)
            self.pair(f"8. {kind} with Bascule vs alone, maintenance off: GET /shop, 200",
                      a, b, 0.95)  # fmt: skip
            self.enable(bascule)
            self.until_status(recipe, 503)
            gate = Side("Bascule's gate", bascule, "/shop", 503, headers={})
            refusing = Side(f"{kind} and Bascule", recipe, "/shop", 503, headers={},
                            also=[bascule, follower])  # fmt: skip
            self.same_answers(gate, refusing, headers=False)
            self.pair(f"8on. {kind} refusing vs Bascule's gate: GET /shop, 503", gate, refusing)
            self.propagation(kind, recipe, bascule, "SQLite", 0.3)
            if self.pg:
                on_pg = self.bascule(f"{kind}-bascule-pg", self.postgres(f"{kind}_proxy"))
                self.propagation(kind, self.proxied(kind, on_pg), on_pg, "PostgreSQL", 0.1)
            else:
                name = f"8p. Propagation through {kind}, PostgreSQL"
                self.row(name, "—", "—", self.pg_note, "—", "—")
            for server in self.servers:
                server.stop()

    def until_status(self, server: Server, status: int, timeout: float = 5) -> None:
        """Once ``server`` answers GET /shop with ``status``."""
        deadline = time.monotonic() + timeout
        while call(server.port, "GET", "/shop", {})[0] != status:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not answer {status} within {timeout} s")
            time.sleep(0.05)

    def proxied(self, kind: str, bascule: Server | None) -> Server:
        """``kind`` configured by ``bascule proxy-config`` in front of the Starlette app,
        with ``bascule`` and its follower (the last server launched); or (None) the same
        proxy, with the same settings, alone: no switch, no question."""
        app = self.launch(f"{kind}-app-{len(self.servers)}", [*APPS, "starlette_app"])
        port, directory = free_port(), self.work / f"{kind}-{len(self.servers)}"
        urls = [f"http://{HOST}:{server.port}" for server in (app, bascule or app)]
        argv = [*BASCULE, "proxy-config", kind, "--listen", f"{HOST}:{port}", "--upstream"]
        argv += [urls[0], "--bascule", urls[1], "--output-dir", str(directory)]
        *_, follow, command = subprocess.run(
            argv, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if bascule is None:
            without_bascule(kind, directory)
        proxy = self.launch(directory.name, shlex.split(command), port)
        if bascule is not None:
            self.follow(directory.name, shlex.split(follow.removesuffix(" &")))
            self.until_status(proxy, 200)
        return proxy

    def follow(self, name: str, argv: list[str]) -> Server:
        """The follower: started, and once it set the switch."""
        pinned = ["taskset", "-c", str(self.server_cpu), *argv]
        self.servers.append(Server(f"{name}-follow", pinned, self.work, port=-1))
        follower, deadline = self.servers[-1], time.monotonic() + 30
        while "asks Bascule about" not in follower.log.read_text():
            if follower.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}'s follower:\n{follower.log.read_text()[-3000:]}")
            time.sleep(0.05)
        return follower

    def propagation(
        self, kind: str, front: Server, bascule: Server, database: str, goal: float
    ) -> None:
        """The seconds from each change sent to Bascule (maintenance on, then off, in
        turn) to the first answer through ``front`` that shows it: a visitor asking again
        and again, between the changes too, and for 2 s at most after each. Its row:
        their p99 against ``goal``."""
        seen, missed = [], 0
        visitor = http.client.HTTPConnection(HOST, front.port, timeout=5)

        def visit() -> int:
            visitor.request("GET", "/shop")
            answer = visitor.getresponse()
            answer.read()
            return answer.status

        for i in range(self.opts.changes):
            # A pause (any phase of Bascule's polls) visited all along: a change comes
            # under traffic, as it would.
            pause = time.monotonic() + random.uniform(0, 0.3)
            while time.monotonic() < pause:
                visit()
            start, (method, status) = time.monotonic(), (("POST", 503), ("DELETE", 200))[i % 2]
            call(bascule.port, method, STATE, BASIC)
            while (took := time.monotonic() - start) < 2:
                if visit() == status:
                    break
            seen.append(took)
            missed += took >= 2
        visitor.close()
        p99 = nearest_p99(seen)
        figures = f"p99 {p99 * 1000:.0f} ms (median {median(seen) * 1000:.0f} ms, n={len(seen)})"
        met = ("yes" if p99 <= goal else "**NO**") + f" (<= {goal * 1000:.0f} ms)"
        self.row(f"8p. Propagation through {kind}, {database}", "—",
                 "maintenance on, then off, via the API", figures, met, missed)  # fmt: skip

    def goal_9(self) -> None:
        """GET /metrics as Prometheus scrapes it (Basic, one connection), two workers,
        maintenance on and a window planned: its latency, against 50 ms."""
        server = self.enable(self.bascule("metrics", BASCULE_WORKERS="2"))
        window = json.dumps({"start": "2999-01-01T00:00:00Z", "message": "Upgrade"})
        headers = {**BASIC, "Content-Type": "application/json"}
        if call(server.port, "POST", f"{STATE}/schedule", headers, window)[0] != 201:
            raise RuntimeError("metrics: the window could not be planned")
        took, unexpected = [], 0
        scraper = http.client.HTTPConnection(HOST, server.port, timeout=5)
        for _ in range(SCRAPES):
            start = time.perf_counter()
            scraper.request("GET", "/metrics", headers=BASIC)
            answer = scraper.getresponse()
            body = answer.read()
            took.append(time.perf_counter() - start)
            unexpected += answer.status != 200 or b"bascule_maintenance_active 1.0" not in body
        scraper.close()
        p99 = nearest_p99(took)
        figures = f"p99 {p99 * 1000:.1f} ms (median {median(took) * 1000:.1f} ms, n={SCRAPES})"
        met = ("yes" if p99 * 1000 < SCRAPE_GOAL_MS else "**NO**") + f" (< {SCRAPE_GOAL_MS} ms)"
        self.row("9. GET /metrics, 2 workers, maintenance on", "—",
                 "scraped with Basic, one connection", figures, met, unexpected)  # fmt: skip

    def goal_10(self) -> None:
        """The gate refusing with three webhooks (two live receivers, one that never
        answers), against none; both told of a change every 2 s meanwhile, so that
        one side delivers (and retries) while it refuses."""
        hooked, bare = self.bascule("webhooks"), self.bascule("no-webhooks")
        live, dead = Receiver(), socket.create_server((HOST, 0), backlog=64)  # never accepts
        urls = [live.url, live.url, f"http://{HOST}:{dead.getsockname()[1]}/hook"]
        headers = {**BASIC, "Content-Type": "application/json"}
        for url in urls:
            if (
                call(hooked.port, "POST", f"{STATE}/webhooks", headers, json.dumps({"url": url}))[0]
                != 201
            ):
                raise RuntimeError("webhooks: one could not be added")
        a = Side("no webhook", self.enable(bare), "/shop", 503)
        b = Side("3 webhooks, 1 dead", self.enable(hooked), "/shop", 503)
        self.same_answers(a, b)
        with live, dead, Updates([bare, hooked], every=2.0):
            self.pair("10. Gate refusing, 3 webhooks (1 dead) vs none: GET /shop, 503", a, b, 0.95)
        if not live.got:
            raise RuntimeError("webhooks: the live receivers got nothing")

    # -- the report -------------------------------------------------------------------------

    def report(self, started: datetime.datetime, load: str) -> str:
        minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        versions = ", ".join(f"{name} {metadata.version(name)}" for name in PACKAGES)
        o = self.opts
        return "\n".join(
            [
                "# Benchmark results",
                "",
                "Written by `bench/run.py`; [README.md](README.md) says what each goal "
                "compares. A ratio is Bascule's requests per CPU-second over its baseline's, "
                "both measured at once on one CPU (for the writes: of requests per second): "
                "the median run, and the range of the runs.",
                "",
                f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}",
                f"- Versions: Python {platform.python_version()}, {versions}; "
                f"{wrk.stdout.split(' [')[0]}; SQLite {sqlite3.sqlite_version}; {self.pg_note}"
                f" ({len(self.databases)} databases made and dropped)",
                f"- Bascule's code: {source()}",
                f"- Date: {started:%Y-%m-%d %H:%M} UTC, {minutes:.1f} minutes; load average "
                f"{load} at the start, {loadavg()} at the end",
                f"- Command: `{shlex.join([sys.executable, *sys.argv])}` (in {Path.cwd()})",
                f"- Servers on CPU {self.server_cpu}, wrk on CPU {self.load_cpu}; per pair a "
                f"{o.warmup} s warm-up, then {o.runs} runs of {o.duration} s; "
                f"{o.connections} connections per side ({WRITERS} for writes)",
                "",
                "| goal | baseline | Bascule | ratio (runs) | met | unexpected answers |",
                "|---|---|---|---|---|---|",
                *("| " + " | ".join(row) + " |" for row in self.rows),
                "",
            ]
        )


def without_bascule(kind: str, directory: Path) -> None:
    """Rewrite the recipe in ``directory`` into the same proxy, with the same settings,
    alone: no switch and no question, every request proxied to the application."""
    if kind == "envoy":  # the router alone, without the Lua filter, the switch's routes
        path = directory / "envoy.yaml"
        config = yaml.safe_load(path.read_text())
        del config["layered_runtime"]
        listener = config["static_resources"]["listeners"][0]
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        manager["http_filters"] = manager["http_filters"][-1:]
        host = manager["route_config"]["virtual_hosts"][0]
        host["routes"] = [{"match": {"prefix": "/"}, "route": host["routes"][-1]["route"]}]
        path.write_text(yaml.safe_dump(config))
    elif kind == "traefik":  # the application's one router, without a middleware
        config = yaml.safe_load((directory / "switches" / "none.yaml").read_text())
        routers = config["http"]["routers"]
        del routers["application-token"], routers["application"]["middlewares"]
        (directory / "routes" / "dynamic.yaml").write_text(yaml.safe_dump(config))
    elif kind == "caddy":  # the route without the switch's routes
        path = directory / "Caddyfile"
        asked = re.compile(r"\n\t\troute @\w+ \{\n\t\t\timport bascule_asks\n\t\t\}")
        path.write_text(asked.sub("", path.read_text()))
    elif kind == "nginx":  # the location without the switch
        path = directory / "nginx.conf"
        asked = re.compile(r"\n *if \([^)]*\) \{\n *return 418;\n *\}")
        path.write_text(asked.sub("", path.read_text()))
    else:  # the lines that switch and ask
        path = directory / "haproxy.cfg"
        drop = re.compile(r"lua|bascule_asks|acl (reads|url_token)|stats socket")
        path.write_text("".join(x for x in path.read_text().splitlines(True) if not drop.search(x)))


def postgres_server(url: str) -> tuple[str, str]:
    """The PostgreSQL server where databases are made ('' if none), and a word on it."""
    host = urlsplit(url).hostname or "localhost"  # no host: a Unix socket, local too
    if not url:
        return "", "not run: no PostgreSQL (--postgres-url '')"
    if host not in ("localhost", "127.0.0.1", "::1"):
        raise SystemExit(f"--postgres-url: {host} is not a loopback address")
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        return "", f"not run: PostgreSQL unreachable ({type(exc).__name__})"
    return url, f"PostgreSQL {version[0] if version else '?'}"


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    return next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), "?")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def source() -> str:
    """The commit of the code the servers ran, and the files of it that differ."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = [*git, "status", "--porcelain", "--", "bascule", "handlers"]
    changed = subprocess.run(status, capture_output=True, text=True).stdout.splitlines()
    changed = [line[3:] for line in changed]
    state = f"modified: {', '.join(changed)}" if changed else "clean"
    return f"commit {head.stdout.strip() or '?'} ({state})"


def instructions(opts: argparse.Namespace) -> int:
    """The gate refusing against the bare 503, in instructions per request (callgrind): each
    server run twice, for each of --counts requests; the difference of the totals over
    the difference of the counts leaves start-up and shut-down out. Goal: < 1.25x."""
    # The monitor's polls follow the clock (and valgrind slows the server fifty times); the
    # hash seed fixes the dictionaries' layouts; with no bytecode written, both runs of a
    # server compile the same modules (the files others edit meanwhile, say).
    settings = {**PRODUCTION, "BASCULE_POLL_INTERVAL": "60", "PYTHONHASHSEED": "0"}
    settings["PYTHONDONTWRITEBYTECODE"] = "1"
    sides = {"bare ASGI 503": [*APPS, "refuse"], "Bascule, maintenance on": [*BASCULE, "serve"]}
    counts = {}
    with tempfile.TemporaryDirectory(prefix="bascule-instructions-") as tmp:
        settings["BASCULE_DATABASE_URL"] = f"sqlite:///{tmp}/gate.db"
        env = os.environ | settings | {"PYTHONPATH": str(ROOT)}  # this Bascule, not another
        # The admin made beforehand: a first start would hash a password of its own.
        for command in (["users", "add", "admin", "--password-stdin"], ["maintenance", "on"]):
            subprocess.run([*BASCULE, *command], env=env, input=PASSWORD, text=True, check=True)
        for label, argv in sides.items():
            small, large = (count(argv, Path(tmp), n, settings) for n in opts.counts)
            counts[label] = (large - small) / (opts.counts[1] - opts.counts[0])
            say(f"{label}: {counts[label]:,.0f} instructions per request")
    ratio = counts["Bascule, maintenance on"] / counts["bare ASGI 503"]
    met = 0 < ratio < 1.25
    say(f"ratio: {ratio:.3f}x (goal: < 1.25x): {'met' if met else 'NOT MET'}")
    return 0 if met else 1


def count(argv: list[str], work: Path, requests: int, settings: dict[str, str]) -> int:
    """The instructions of a server's whole life, having answered ``requests`` GET /shop."""
    out = work / f"callgrind-{len(list(work.glob('*.log')))}.out"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    server = Server(out.stem, [*valgrind, *argv], work, **settings)
    try:
        conn = http.client.HTTPConnection(HOST, server.ready(timeout=300).port, timeout=300)
        for _ in range(requests):
            conn.request("GET", "/shop")
            answer = conn.getresponse()
            answer.read()
            if answer.status != 503:
                raise RuntimeError(f"{server.name}: GET /shop answered {answer.status}")
    finally:
        server.stop(grace=300)  # callgrind writes its counts at exit
    totals = (line for line in out.read_text().splitlines() if line.startswith("totals:"))
    return int(next(totals).split()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--runs", type=int, default=5, help="measured runs per pair (default 5)")
    add("--duration", type=int, default=5, help="seconds per run (5)")
    add("--warmup", type=int, default=1, help="seconds of warm-up per pair (1)")
    add("--connections", type=int, default=16, help="keep-alive connections per side (16)")
    add("--updates", type=int, default=10_000, help="updates before goal 5's GET (10,000)")
    add("--goals", type=int, nargs="+", choices=GOALS, default=GOALS)
    add("--changes", type=int, default=20, help="changes timed through each proxy (20)")
    add("--proxies", nargs="+", choices=PROXIES, default=PROXIES, help="goal 8's (all)")
    add("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    add("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    add("--instructions", action="store_true", help="count instructions instead (valgrind)")
    add("--counts", type=int, nargs=2, default=[300, 2300], help="requests of each count")
    opts = parser.parse_args(argv)
    if min(opts.runs, opts.duration, opts.warmup, opts.connections, opts.changes) <= 0:
        parser.error("--runs, --duration, --warmup, --connections, --changes: > 0")
    if opts.updates <= 100:
        parser.error("--updates: > 100")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: clean up all the same
    if opts.instructions:
        return instructions(opts)
    started, load, bench = datetime.datetime.now(datetime.UTC), loadavg(), Bench(opts)
    try:
        for goal in opts.goals:
            say(f"goal {goal}: {getattr(Bench, f'goal_{goal}').__doc__}")
            getattr(bench, f"goal_{goal}")()
            for server in bench.servers:  # idle now, but their threads would still run
                server.stop()
    finally:
        bench.close()
    kept = opts.out.read_text() if opts.out.exists() else ""
    kept = "\n" + kept[kept.index(SECTION) :] if SECTION in kept else ""
    opts.out.write_text(bench.report(started, load) + kept)
    say(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
