"""Bascule's benchmark: every figure a ratio measured side by side in the same run.

    .venv/bin/python bench/run.py [--duration 10] [--repeats 5] [--scenarios 1 2 3 5 6]

Starts every server itself (uvicorn, one worker each, on free loopback ports, pinned
with taskset to the first CPU while the load generator runs on the second), drives
them from a separate process (wrk when installed, else bench/loadgen.py), runs the
two sides of each comparison interleaved (A, B, A, B ...), prints a table of medians
and ratios, and writes bench/RESULTS.md. See bench/README.md for what each scenario
measures. It is not a test: it asserts nothing, it reports.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.apps import USERS  # noqa: E402  (the baseline's credentials are Bascule's too)

HOST = "127.0.0.1"
ADMIN = "admin"
ADMIN_PASSWORD = USERS[ADMIN]
BASIC = "Basic " + base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
STATE_PATH = "/rest/v1/maintenance"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ALL_SCENARIOS = (1, 2, 3, 5, 6)  # 3 also runs 4, 7 and the settings variants
UPDATE_BODY = json.dumps({"message": "Benchmark update: copying files."})


# -- small helpers ------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value == value else "n/a"


def per_cpu_ratio(baseline: dict[str, Any], bascule: dict[str, Any]) -> float:
    """Requests per CPU-second of ``bascule`` over those of ``baseline``."""
    if not baseline["req_per_cpu_s"] or baseline["req_per_cpu_s"] != baseline["req_per_cpu_s"]:
        return float("nan")
    return float(bascule["req_per_cpu_s"]) / float(baseline["req_per_cpu_s"])


def fmt_ratio(value: float) -> str:
    return f"{value:.3f}x" if value == value else "n/a"


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


def proc_status(pid: int, key: str) -> int | None:
    """A ``kB`` figure of /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def cpu_ticks(cpu: int | None) -> tuple[int, int]:
    """(all ticks, stolen ticks) of one CPU (or all) so far, from /proc/stat."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields[0] == name:
                values = [int(x) for x in fields[1:9]]
                return sum(values), values[7]
    return 0, 0


def is_loopback_host(host: str | None) -> bool:
    if not host or host.startswith("/"):  # a Unix socket is local too
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    timeout: float = 30.0,
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def login(port: int) -> str:
    """Log the admin in on the server at ``port``: the JSESSIONID cookie's value."""
    form = urlencode({"username": ADMIN, "password": ADMIN_PASSWORD})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, resp_headers, body = request(port, "POST", "/login", headers, form)
    if status != 200:
        raise RuntimeError(f"login on port {port}: {status} {body[:200]!r}")
    for name, value in resp_headers:
        if name.lower() == "set-cookie" and value.startswith("JSESSIONID="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise RuntimeError(f"login on port {port}: no JSESSIONID cookie")


# -- servers ------------------------------------------------------------------------------


class Server:
    """One server process (one uvicorn worker), its log in the work directory."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log
        self.port = int(argv[argv.index("--port") + 1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_at_rest: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the benchmark, which stops it
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                request(self.port, "GET", "/", timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def rss(self) -> int | None:
        return proc_status(self.pid, "VmRSS")

    def hwm(self) -> int | None:
        return proc_status(self.pid, "VmHWM")

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def stop(self, grace: float = 10) -> None:
        """Ctrl-C, and ``grace`` seconds to shut down cleanly; then SIGTERM, then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class Target:
    """One side of a comparison: a server and the request sent to it over and over."""

    label: str
    server: Server
    path: str
    expect: int
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    connections: int | None = None
    cpu_bound: bool = True  # a run where the server got less CPU than that was disturbed


@dataclass
class Row:
    """One line of the summary table."""

    scenario: str
    goal: str
    baseline: str
    bascule: str
    ratio: str
    met: bool | None  # None: reported, no goal


# -- the benchmark ------------------------------------------------------------------------


class Bench:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.work = Path(tempfile.mkdtemp(prefix="bascule-bench-"))
        self.servers: list[Server] = []
        self.pg_databases: list[str] = []
        self.pg_admin_url: str | None = None
        self.pg_version = "not used"
        self.rows: list[Row] = []
        self.sections: list[str] = []
        self.warnings: list[str] = []
        self.memory: list[tuple[str, int | None, int | None, int | None]] = []
        self.retried = 0
        self.paired_runs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        self.started = datetime.datetime.now(datetime.UTC)
        self.loadavg_start = loadavg()
        cpus = sorted(os.sched_getaffinity(0))
        self.taskset = shutil.which("taskset") if not opts.no_pin else None
        if opts.server_cpu is not None and opts.server_cpu not in cpus:
            raise SystemExit(f"--server-cpu {opts.server_cpu}: not one of this process's {cpus}")
        if self.taskset and len(cpus) >= 2:
            server_cpu = cpus[0] if opts.server_cpu is None else opts.server_cpu
            load_cpu = next(cpu for cpu in cpus if cpu != server_cpu)
            self.server_cpu: int | None = server_cpu
            self.load_cpu: int | None = load_cpu
            with contextlib.suppress(OSError):  # the benchmark itself stays off the servers' CPU
                os.sched_setaffinity(0, {load_cpu})
        else:
            self.server_cpu = self.load_cpu = None
        wrk = shutil.which("wrk")
        if opts.loadgen == "wrk" and not wrk:
            raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install -y wrk)")
        self.loadgen = "wrk" if (opts.loadgen in ("auto", "wrk") and wrk) else "python"
        self.source_at_start = self.bascule_source()

    # -- processes --------------------------------------------------------------------------

    def pinned(self, argv: list[str], cpu: int | None) -> list[str]:
        if self.taskset and cpu is not None:
            return [self.taskset, "-c", str(cpu), *argv]
        return argv

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASCULE_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def _launch(self, name: str, argv: list[str], env: dict[str, str]) -> Server:
        server = Server(name, self.pinned(argv, self.server_cpu), env, self.work / f"{name}.log")
        self.servers.append(server)
        server.start()
        server.wait_ready()
        return server

    def bascule(
        self,
        name: str,
        database_url: str,
        *,
        app: str | None = None,
        access_log: bool = False,
        validate_responses: bool = False,
    ) -> Server:
        """``bascule serve`` with production settings unless told otherwise."""
        exe = Path(sys.executable).with_name("bascule")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "bascule.cli"]
        argv = [*command, "serve", "--host", HOST, "--port", str(free_port())]
        argv += ["--database-url", database_url]
        argv.append("--access-log" if access_log else "--no-access-log")
        argv.append("--validate-responses" if validate_responses else "--no-validate-responses")
        if app:
            argv += ["--app", app]
        env = self._env()
        env["BASCULE_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        return self._launch(name, argv, env)

    def baseline(self, name: str, kind: str) -> Server:
        argv = [sys.executable, str(BENCH / "apps.py"), kind, "--port", str(free_port())]
        return self._launch(name, argv, self._env())

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{self.work / name}.db"

    def postgres(self, name: str) -> str | None:
        """A fresh PostgreSQL database (dropped at the end), or None without PostgreSQL."""
        if self.pg_admin_url is None:
            return None
        import psycopg
        from psycopg import sql

        db = f"bascule_bench_{os.getpid()}_{name}"
        with psycopg.connect(self.pg_admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(db))
            )
        self.pg_databases.append(db)
        return self._pg_url(db)

    def _pg_url(self, db: str) -> str:
        from sqlalchemy.engine import make_url

        assert self.pg_admin_url is not None
        return make_url(self.pg_admin_url).set(database=db).render_as_string(hide_password=False)

    def setup_postgres(self) -> None:
        url = self.opts.postgres_url
        if not url:
            self.pg_version = "not used (--postgres-url '')"
            return
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if not is_loopback_host(parsed.host):
            raise SystemExit(f"--postgres-url must be on this machine (loopback): {parsed.host}")
        try:
            import psycopg

            candidates = [url, make_url(url).set(database="postgres").render_as_string(False)]
            for candidate in candidates:
                try:
                    libpq = make_url(candidate).set(drivername="postgresql")
                    admin = libpq.render_as_string(hide_password=False)
                    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                        row = conn.execute("SHOW server_version").fetchone()
                    self.pg_admin_url = admin
                    self.pg_version = f"PostgreSQL {row[0] if row else '?'}"
                    return
                except psycopg.OperationalError as exc:
                    error = exc
            raise error
        except Exception as exc:
            self.pg_version = f"unreachable ({type(exc).__name__}): PostgreSQL parts not run"
            self.warn(f"PostgreSQL at {parsed.host}:{parsed.port} unreachable; skipped its parts")

    def cleanup(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        if self.pg_admin_url and self.pg_databases:
            import psycopg
            from psycopg import sql

            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            try:
                with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                    for db in self.pg_databases:
                        conn.execute(drop.format(sql.Identifier(db)))
            except psycopg.Error as exc:
                say(f"could not drop the databases {self.pg_databases}: {exc}")
        if self.opts.keep:
            say(f"kept the work directory (server logs, SQLite files): {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        say(f"  WARNING: {text}")

    # -- HTTP set-up calls ------------------------------------------------------------------

    def enable(self, server: Server) -> None:
        status, _, body = request(
            server.port, "POST", STATE_PATH, {"Authorization": BASIC, "Content-Length": "0"}
        )
        if status != 201:
            raise RuntimeError(f"enabling maintenance on {server.name}: {status} {body[:200]!r}")

    def disable(self, server: Server) -> None:
        status, _, body = request(server.port, "DELETE", STATE_PATH, {"Authorization": BASIC})
        if status != 200:
            raise RuntimeError(f"disabling maintenance on {server.name}: {status} {body[:200]!r}")

    def state(self, server: Server) -> dict[str, Any]:
        status, _, body = request(server.port, "GET", STATE_PATH, {"Authorization": BASIC})
        if status != 200:
            raise RuntimeError(f"reading the state on {server.name}: {status}")
        data: dict[str, Any] = json.loads(body)["data"]
        return data

    def probe(self, target: Target) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = dict(target.headers)
        if target.body is not None:
            headers.setdefault("Content-Length", str(len(target.body.encode())))
        return request(target.server.port, target.method, target.path, headers, target.body)

    # -- load -------------------------------------------------------------------------------

    def drive(
        self,
        target: Target,
        duration: float,
        *,
        max_requests: int | None = None,
        tool: str | None = None,
    ) -> dict[str, Any]:
        """One bounded run of the load generator against one target."""
        tool = tool or self.loadgen
        max_requests = max_requests or self.opts.max_requests
        connections = target.connections or self.opts.connections
        url = f"http://{HOST}:{target.server.port}{target.path}"
        if tool == "wrk":
            seconds = max(1, round(duration))
            argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
            argv += ["-s", str(BENCH / "wrk_report.lua")]
            for name, value in target.headers.items():
                argv += ["-H", f"{name}: {value}"]
            argv.append(url)
            env = dict(os.environ)
            env.update(
                BENCH_METHOD=target.method,
                BENCH_BODY=target.body or "",
                BENCH_EXPECT=str(target.expect),
                BENCH_MAX_PER_THREAD=str(max_requests),
            )
            limit = seconds + 60
        else:
            argv = [sys.executable, str(BENCH / "loadgen.py"), "--url", url]
            argv += ["--method", target.method, "--connections", str(connections)]
            argv += ["--duration", str(duration), "--max-requests", str(max_requests)]
            argv += ["--expect", str(target.expect)]
            for name, value in target.headers.items():
                argv += ["--header", f"{name}: {value}"]
            if target.body is not None:
                argv += ["--body", target.body]
            env = dict(os.environ)
            limit = duration + 60
        cpu_before = target.server.cpu_seconds()
        ticks_before, steal_before = cpu_ticks(self.server_cpu)
        proc = subprocess.run(
            self.pinned(argv, self.load_cpu),
            env=env,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
        cpu = target.server.cpu_seconds() - cpu_before
        ticks_after, steal_after = cpu_ticks(self.server_cpu)
        ticks = ticks_after - ticks_before
        line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"{tool} gave no result for {target.label}:\n{proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(line.split(" ", 1)[1])
        result["rps"] = result["requests"] / result["duration_s"] if result["duration_s"] else 0
        result["server_cpu_s"] = cpu
        result["cpu_util"] = cpu / result["duration_s"] if result["duration_s"] else 0
        result["req_per_cpu_s"] = result["requests"] / cpu if cpu > 0 else float("nan")
        # Time the hypervisor gave the servers' CPU to someone else (a VM's steal time).
        result["steal"] = (steal_after - steal_before) / ticks if ticks > 0 else 0.0
        problems = []
        if result["bad"]:
            problems.append(
                f"{result['bad']} answers not {target.expect} (last {result['last_bad_status']})"
            )
        if result["socket_errors"] or result["timeouts"]:
            problems.append(
                f"{result['socket_errors']} socket errors, {result['timeouts']} timeouts"
            )
        if result["requests"] >= max_requests and tool == "wrk":
            problems.append("stopped by the request bound: its rate is underestimated")
        if problems:
            self.warn(f"{target.label}: " + "; ".join(problems))
        return result

    def disturbed(self, result: dict[str, Any]) -> bool:
        return bool(result["cpu_util"] < self.opts.min_cpu or result["steal"] > self.opts.max_steal)

    def measured(self, target: Target) -> dict[str, Any]:
        """One run; run again (at most --retries times) while the server got too little CPU.

        A CPU-bound server that got less than --min-cpu of its core, or whose core the
        hypervisor took away for more than --max-steal of the run, was preempted by
        something else: that run measures the machine, not the server.
        The same rule applies to every target; the retries are counted in the report.
        """
        result = self.drive(target, self.opts.duration)
        tries = 0
        while target.cpu_bound and self.disturbed(result) and tries < self.opts.retries:
            tries += 1
            self.retried += 1
            again = self.drive(target, self.opts.duration)
            if again["cpu_util"] - again["steal"] > result["cpu_util"] - result["steal"]:
                result = again
        result["tries"] = tries + 1
        return result

    def interleaved(self, title: str, targets: list[Target]) -> dict[str, list[dict[str, Any]]]:
        """Warm each target up, then run them in turn: A, B, ..., A, B, ... (repeats)."""
        opts = self.opts
        before = loadavg()
        say(
            f"\n== {title}: {len(targets)} targets x {opts.repeats} repeats x {opts.duration} s "
            f"(load generator: {self.loadgen}, load average {before})"
        )
        for target in targets:
            if opts.warmup > 0:
                self.drive(target, opts.warmup)
        results: dict[str, list[dict[str, Any]]] = {t.label: [] for t in targets}
        for rep in range(opts.repeats):
            for target in targets:
                result = self.measured(target)
                results[target.label].append(result)
                retried = f"  ({result['tries']} tries)" if result["tries"] > 1 else ""
                say(
                    f"  [{rep + 1}/{opts.repeats}] {target.label:<48} {result['rps']:>9,.0f} req/s"
                    f"  p99 {result['p99_ms']:7.2f} ms  server CPU {result['cpu_util']:4.0%}"
                    f"  steal {result['steal']:4.0%}{retried}"
                )
        self.sections.append(self.group_table(title, targets, results, before))
        return results

    def paired(self, title: str, pairs: list[tuple[Target, Target]]) -> None:
        """Each pair's two servers loaded at the same time, by two load generators at once.

        Both servers are pinned on the one CPU of the servers, so they run under the
        same conditions, whatever speed that CPU has from second to second. The
        result of a run is the ratio of the requests each served per second of CPU
        time it used: the inverse ratio of their costs per request, even when one of
        them got a larger share of the CPU. The median of the runs is the result; the
        ratio of their rates is shown beside it.
        """
        opts = self.opts
        before = loadavg()
        say(
            f"\n== {title}, same CPU, paired: {len(pairs)} pairs x {opts.repeats} runs x "
            f"{opts.duration} s (load generator: {self.loadgen} x 2, load average {before})"
        )
        runs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {
            b.label: [] for _, b in pairs
        }
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for rep in range(opts.repeats):
                for a, b in pairs:
                    ra, rb = pool.map(lambda t: self.drive(t, opts.duration), (a, b))
                    runs[b.label].append((ra, rb))
                    say(
                        f"  [{rep + 1}/{opts.repeats}] {b.label:<40} {rb['rps']:>8,.0f} req/s"
                        f" / {a.label}: {ra['rps']:>8,.0f}; per CPU-s "
                        f"{per_cpu_ratio(ra, rb):.3f}  CPU {rb['cpu_util']:4.0%} / "
                        f"{ra['cpu_util']:4.0%}  steal {rb['steal']:4.0%}"
                    )
        lines = [
            f"### {title}: the same CPU, paired",
            "",
            f"Load average before / after: {before} / {loadavg()}. Each pair's two servers "
            "share the servers' CPU and are loaded at the same time, by one load generator "
            "each. Ratio: requests per CPU-second of the Bascule side over the baseline's, "
            "in the same run.",
            "",
            "| Bascule | baseline | median ratio per CPU-s | min-max | median ratio of req/s "
            "| Bascule median req/s | baseline median req/s | CPU share (Bascule / baseline) "
            "| steal | non-matching answers |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a, b in pairs:
            done = runs[b.label]
            ratios = [per_cpu_ratio(ra, rb) for ra, rb in done]
            bad = sum(r["bad"] + r["socket_errors"] + r["timeouts"] for pr in done for r in pr)
            rate_ratios = [rb["rps"] / ra["rps"] for ra, rb in done if ra["rps"]]
            lines.append(
                f"| {b.label} | {a.label} | {median(ratios):.3f}x "
                f"| {min(ratios):.3f}-{max(ratios):.3f} "
                f"| {median(rate_ratios):.3f}x "
                f"| {fmt_rate(median([rb['rps'] for _, rb in done]))} "
                f"| {fmt_rate(median([ra['rps'] for ra, _ in done]))} "
                f"| {median([rb['cpu_util'] for _, rb in done]):.0%} / "
                f"{median([ra['cpu_util'] for ra, _ in done]):.0%} "
                f"| {median([rb['steal'] for _, rb in done]):.1%} | {bad} |"
            )
        self.sections.append("\n".join(lines))
        self.paired_runs.update(runs)

    def compare_paired(self, scenario: str, b: str, a: str, goal: float) -> None:
        done = self.paired_runs[b]
        values = [per_cpu_ratio(ra, rb) for ra, rb in done]
        value = median(values)
        self.rows.append(
            Row(
                f"{scenario} (same CPU, paired)",
                f">= {goal}x",
                f"{fmt_rate(median([ra['req_per_cpu_s'] for ra, _ in done]))} per CPU-s ({a})",
                f"{fmt_rate(median([rb['req_per_cpu_s'] for _, rb in done]))} per CPU-s ({b})",
                f"{fmt_ratio(value)} (runs {min(values):.2f}-{max(values):.2f}; per CPU-s)",
                value >= goal,
            )
        )

    def group_table(
        self,
        title: str,
        targets: list[Target],
        results: dict[str, list[dict[str, Any]]],
        before: str,
    ) -> str:
        tries = sum(r["tries"] - 1 for rs in results.values() for r in rs)
        lines = [
            f"### {title}",
            "",
            f"Load average before / after: {before} / {loadavg()}. Connections per run: "
            + ", ".join(sorted({str(t.connections or self.opts.connections) for t in targets}))
            + f". Runs repeated because the server got less than {self.opts.min_cpu:.0%} of "
            f"its CPU or more than {self.opts.max_steal:.0%} of it was stolen: {tries}.",
            "",
            "| target | request | median req/s | min-max req/s | p50 ms | p99 ms "
            "| server CPU | steal | req per CPU-s | non-matching answers |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for t in targets:
            rs = results[t.label]
            rates = [r["rps"] for r in rs]
            auth = ""
            if "Authorization" in t.headers:
                auth = " (Basic)"
            elif "Cookie" in t.headers:
                auth = " (cookie)"
            lines.append(
                f"| {t.label} | `{t.method} {t.path}`{auth} → {t.expect} "
                f"| {fmt_rate(median(rates))} | {fmt_rate(min(rates))}-{fmt_rate(max(rates))} "
                f"| {median([r['p50_ms'] for r in rs]):.2f} "
                f"| {median([r['p99_ms'] for r in rs]):.2f} "
                f"| {median([r['cpu_util'] for r in rs]):.0%} "
                f"| {median([r['steal'] for r in rs]):.1%} "
                f"| {fmt_rate(median([r['req_per_cpu_s'] for r in rs]))} "
                f"| {sum(r['bad'] + r['socket_errors'] + r['timeouts'] for r in rs)} |"
            )
        return "\n".join(lines)

    def ratio(
        self, results: dict[str, list[dict[str, Any]]], b: str, a: str
    ) -> tuple[float, float, float, float]:
        """Median(B)/median(A); min and max of the per-repeat ratios; the CPU-normalised one."""
        rb = [r["rps"] for r in results[b]]
        ra = [r["rps"] for r in results[a]]
        pairs = [x / y for x, y in zip(rb, ra, strict=True) if y]
        cb = median([r["req_per_cpu_s"] for r in results[b]])
        ca = median([r["req_per_cpu_s"] for r in results[a]])
        return median(rb) / median(ra), min(pairs), max(pairs), cb / ca

    def compare(
        self,
        results: dict[str, list[dict[str, Any]]],
        scenario: str,
        b: str,
        a: str,
        goal: float | None,
    ) -> float:
        value, low, high, per_cpu = self.ratio(results, b, a)
        met = None if goal is None else value >= goal
        self.rows.append(
            Row(
                scenario,
                f">= {goal}x" if goal is not None else "report",
                f"{fmt_rate(median([r['rps'] for r in results[a]]))} ({a})",
                f"{fmt_rate(median([r['rps'] for r in results[b]]))} ({b})",
                f"{fmt_ratio(value)} (repeats {low:.2f}-{high:.2f}; per CPU-s {per_cpu:.2f})",
                met,
            )
        )
        return value

    # -- scenarios --------------------------------------------------------------------------

    def scenario_1(self) -> None:
        """The gate refusing: Bascule in maintenance vs a bare callable answering the same."""
        bascule = self.bascule("s1-bascule", self.sqlite_url("s1"))
        self.enable(bascule)
        bare = self.baseline("s1-bare", "refuse")
        a = Target("bare ASGI 503", bare, "/shop", 503)
        b = Target("Bascule gate 503", bascule, "/shop", 503)
        sa, ha, body_a = self.probe(a)
        sb, hb, body_b = self.probe(b)
        strip = {"date"}
        same = (sa, body_a, [h for h in ha if h[0].lower() not in strip]) == (
            sb,
            body_b,
            [h for h in hb if h[0].lower() not in strip],
        )
        if not same:
            self.warn(
                f"scenario 1: the two answers differ: {sa} {ha} {body_a!r} / {sb} {hb} {body_b!r}"
            )
        results = self.interleaved("Scenario 1: the gate refusing (maintenance on)", [a, b])
        self.sections.append(
            f"Same status, headers (but Date) and body on both sides: {'yes' if same else 'NO'} "
            f"({sb}, {len(body_b)} bytes)."
        )
        self.compare(results, "1. Gate refusing, GET /shop", b.label, a.label, 0.9)
        if self.opts.paired:
            self.paired("Scenario 1: the gate refusing", [(a, b)])
            self.compare_paired("1. Gate refusing, GET /shop", b.label, a.label, 0.9)
        self.memory.append(
            ("Bascule, scenario 1 (gate refusing)", None, bascule.rss(), bascule.hwm())
        )

    def scenario_2(self) -> None:
        """The gate letting through to a mounted application vs that application alone."""
        raw_gated = self.bascule(
            "s2-gated-raw", self.sqlite_url("s2raw"), app="bench.apps:downstream"
        )
        raw_alone = self.baseline("s2-alone-raw", "downstream")
        star_gated = self.bascule(
            "s2-gated-starlette", self.sqlite_url("s2star"), app="bench.apps:starlette_app"
        )
        star_alone = self.baseline("s2-alone-starlette", "starlette")
        targets = [
            Target("raw ASGI app alone", raw_alone, "/shop", 200),
            Target("raw ASGI app behind Bascule", raw_gated, "/shop", 200),
            Target("Starlette app alone", star_alone, "/shop", 200),
            Target("Starlette app behind Bascule", star_gated, "/shop", 200),
        ]
        for alone, gated in ((targets[0], targets[1]), (targets[2], targets[3])):
            if self.probe(alone)[2] != self.probe(gated)[2]:
                self.warn(f"scenario 2: {gated.label} does not answer what {alone.label} does")
        results = self.interleaved(
            "Scenario 2: the gate letting through (maintenance off)", targets
        )
        self.compare(
            results, "2a. Gate open, raw ASGI app", targets[1].label, targets[0].label, 0.95
        )
        self.compare(
            results, "2b. Gate open, Starlette app", targets[3].label, targets[2].label, 0.95
        )
        if self.opts.paired:
            pairs = [(targets[0], targets[1]), (targets[2], targets[3])]
            self.paired("Scenario 2: the gate letting through", pairs)
            for (alone, gated), name in zip(
                pairs, ("2a. Gate open, raw ASGI app", "2b. Gate open, Starlette app"), strict=True
            ):
                self.compare_paired(name, gated.label, alone.label, 0.95)

    def scenario_3(self) -> None:
        """The API: GET the state with Basic and with the cookie, vs bare connexion."""
        bare = self.baseline("s3-connexion", "connexion")
        prod = self.bascule("s3-bascule", self.sqlite_url("s3"))
        validating = self.bascule("s3-validate", self.sqlite_url("s3v"), validate_responses=True)
        logging_ = self.bascule("s3-accesslog", self.sqlite_url("s3l"), access_log=True)
        for server in (bare, prod):
            server.rss_at_rest = server.rss()
        auth = {"Authorization": BASIC}
        cookie = {"Cookie": f"JSESSIONID={login(prod.port)}"}
        targets = [
            Target("connexion baseline (Basic)", bare, STATE_PATH, 200, headers=auth),
            Target("Bascule (Basic)", prod, STATE_PATH, 200, headers=auth),
            Target("Bascule (session cookie)", prod, STATE_PATH, 200, headers=cookie),
            Target("Bascule, response validation on", validating, STATE_PATH, 200, headers=auth),
            Target("Bascule, access log on", logging_, STATE_PATH, 200, headers=auth),
        ]
        bodies = {t.label: self.probe(t) for t in targets}
        reference = json.loads(bodies[targets[0].label][2])
        for label, (status, _, body) in bodies.items():
            if status != 200 or json.loads(body) != reference:
                self.warn(f"scenario 3: {label} answers {status} {body[:120]!r}")
        for t in targets[1:]:  # every Bascule side refuses wrong credentials
            wrong = Target(
                t.label,
                t.server,
                STATE_PATH,
                401,
                headers={"Authorization": "Basic " + base64.b64encode(b"admin:x").decode()},
            )
            if self.probe(wrong)[0] != 401:
                self.warn(f"scenario 3: {t.label} does not refuse wrong credentials")
        results = self.interleaved(
            "Scenario 3/4: GET /rest/v1/maintenance (maintenance off), and the settings", targets
        )
        base = targets[0].label
        self.compare(results, "3. GET state, HTTP Basic", targets[1].label, base, 0.9)
        self.compare(results, "4. GET state, session cookie", targets[2].label, base, 0.9)
        self.compare(
            results, "3v. Response validation on (vs off)", targets[3].label, targets[1].label, None
        )
        self.compare(
            results, "3l. Access log on (vs off)", targets[4].label, targets[1].label, None
        )
        if self.opts.paired:
            pairs = [(targets[0], targets[1]), (targets[0], targets[2])]
            self.paired("Scenario 3/4: GET /rest/v1/maintenance", pairs)
            self.compare_paired("3. GET state, HTTP Basic", targets[1].label, base, 0.9)
            self.compare_paired("4. GET state, session cookie", targets[2].label, base, 0.9)
        # Scenario 7: memory of one worker, at rest and after the runs.
        for name, server in (
            ("Bascule (scenario 3/4 worker)", prod),
            ("bare connexion baseline", bare),
        ):
            self.memory.append((name, server.rss_at_rest, server.rss(), server.hwm()))
        for name, server in (
            ("Bascule, validation on", validating),
            ("Bascule, access log on", logging_),
        ):
            self.memory.append((name, None, server.rss(), server.hwm()))
        rest = (prod.rss_at_rest or 0) / (bare.rss_at_rest or 1)
        after = (prod.rss() or 0) / (bare.rss() or 1)
        self.rows.append(
            Row(
                "7. Memory of one worker (VmRSS)",
                "report",
                f"{(bare.rss_at_rest or 0) / 1024:.1f} MiB at rest, "
                f"{(bare.rss() or 0) / 1024:.1f} MiB after (bare connexion)",
                f"{(prod.rss_at_rest or 0) / 1024:.1f} MiB at rest, "
                f"{(prod.rss() or 0) / 1024:.1f} MiB after",
                f"{rest:.2f}x at rest, {after:.2f}x after",
                None,
            )
        )

    def scenario_5(self) -> None:
        """Writes on SQLite and PostgreSQL, then reading the state after many updates."""
        opts = self.opts
        backends: list[tuple[str, Callable[[str], str | None]]] = [("SQLite", self.sqlite_url)]
        if self.pg_admin_url:
            backends.append(("PostgreSQL", self.postgres))
        servers: dict[tuple[str, str], Server] = {}
        for backend, make in backends:
            for stage in ("writes", "enabled", "100", "many"):
                url = make(f"s5_{backend.lower()}_{stage}")
                assert url is not None
                server = self.bascule(f"s5-{backend.lower()}-{stage}", url)
                self.enable(server)
                servers[(backend, stage)] = server
        write_headers = {"Authorization": BASIC, "Content-Type": "application/json"}

        def writer(backend: str, stage: str) -> Target:
            return Target(
                f"PUT, {backend}",
                servers[(backend, stage)],
                STATE_PATH,
                201,
                method="PUT",
                headers=write_headers,
                body=UPDATE_BODY,
                connections=opts.write_connections,
                cpu_bound=False,
            )

        # Writes, interleaved between the backends, on servers of their own: the logs
        # read below then hold exactly the counts their titles give.
        writers = [writer(backend, "writes") for backend, _ in backends]
        sizes_before = {t.label: self.state(t.server)["logSize"] for t in writers}
        results = self.interleaved("Scenario 5: writes (PUT a message, as admin)", writers)
        sizes_after = {t.label: self.state(t.server)["logSize"] for t in writers}
        self.sections.append(
            "Log size during the write runs: "
            + "; ".join(f"{k}: {sizes_before[k]} → {sizes_after[k]} entries" for k in sizes_before)
            + f". {opts.write_connections} connections, each PUT appends one entry."
        )
        for t in writers:
            rs = results[t.label]
            self.rows.append(
                Row(
                    f"5. Writes, {t.label.split(', ')[1]}",
                    "report",
                    "",
                    f"{fmt_rate(median([r['rps'] for r in rs]))} req/s, "
                    f"p99 {median([r['p99_ms'] for r in rs]):.1f} ms",
                    "",
                    None,
                )
            )
        if len(writers) == 2:
            value, low, high, _ = self.ratio(results, writers[1].label, writers[0].label)
            self.rows[-1].ratio = f"{fmt_ratio(value)} of SQLite (repeats {low:.2f}-{high:.2f})"

        # Bring the logs to 100 and to `updates` updates, bounded in count and time.
        for backend, _ in backends:
            for stage, wanted in (("100", 100), ("many", opts.updates)):
                target = writer(backend, stage)
                missing = wanted + 1 - self.state(target.server)["logSize"]
                if missing > 0:
                    say(f"  {backend}: {missing} more updates for the {wanted}-update server")
                    self.drive(target, opts.topup_timeout, max_requests=missing, tool="python")
        readable = {k: s for k, s in servers.items() if k[1] != "writes"}
        sizes = {k: self.state(s)["logSize"] for k, s in readable.items()}
        tails = {k: len(self.state(s)["log"]) for k, s in readable.items()}
        # Reading the state: just enabled, after 100 updates, after many.
        read = {"Authorization": BASIC}
        readers = []
        for backend, _ in backends:
            for stage in ("enabled", "100", "many"):
                key = (backend, stage)
                readers.append(
                    Target(
                        f"GET, {backend}, log of {sizes[key]:,} (tail {tails[key]})",
                        servers[key],
                        STATE_PATH,
                        200,
                        headers=read,
                    )
                )
        body_sizes = {t.label: len(self.probe(t)[2]) for t in readers}
        results = self.interleaved("Scenario 5: GET the state as the log grows", readers)
        self.sections.append(
            "Body sizes: " + "; ".join(f"{k}: {v:,} bytes" for k, v in body_sizes.items()) + "."
        )
        for i, (backend, _) in enumerate(backends):
            enabled, hundred, many = readers[3 * i : 3 * i + 3]
            count = sizes[(backend, "many")] - 1
            self.compare(
                results,
                f"5. GET after {count:,} updates vs just enabled, {backend} "
                "(a 100-entry tail against a 1-entry one)",
                many.label,
                enabled.label,
                None,
            )
            self.compare(
                results,
                f"5. GET after {count:,} updates vs after 100, {backend}",
                many.label,
                hundred.label,
                0.9,
            )
        for (backend, stage), server in servers.items():
            if stage == "many":
                self.memory.append(
                    (
                        f"Bascule, {backend}, after {sizes[(backend, stage)] - 1:,} updates",
                        None,
                        server.rss(),
                        server.hwm(),
                    )
                )

    def scenario_6(self) -> None:
        """Propagation: enable/disable on A, poll B's gated path until it flips."""
        backends: list[tuple[str, str | None]] = [("SQLite file", self.sqlite_url("s6"))]
        if self.pg_admin_url:
            backends.append(("PostgreSQL", self.postgres("s6")))
        lines = [
            "### Scenario 6: propagation between two `bascule serve` on one database",
            "",
            f"{self.opts.flips} flips each way; the delay runs from A's answer to the first "
            "answer of B that shows the change (B polled about every millisecond on one "
            "keep-alive connection, GET /page). Default settings: poll interval 0.25 s on SQLite; "
            "LISTEN/NOTIFY on PostgreSQL.",
            "",
            "| database | change | p50 ms | p99 ms | max ms | not seen within 10 s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for backend, url in backends:
            assert url is not None
            key = backend.split()[0].lower()
            a = self.bascule(f"s6-{key}-a", url)
            b = self.bascule(f"s6-{key}-b", url)
            say(f"\n== Scenario 6: propagation, {backend}: {self.opts.flips} flips")
            delays: dict[str, list[float]] = {"enable": [], "disable": []}
            missed = {"enable": 0, "disable": 0}
            conn = http.client.HTTPConnection(HOST, b.port, timeout=5)
            rng = random.Random(6)
            try:
                for _ in range(self.opts.flips):
                    for change, act, refused in (
                        ("enable", self.enable, True),
                        ("disable", self.disable, False),
                    ):
                        time.sleep(rng.uniform(0, 0.3))  # no phase lock with the poll timer
                        act(a)
                        seen = time.perf_counter()
                        delay = self.wait_flip(conn, refused, seen + 10.0)
                        if delay is None:
                            missed[change] += 1
                        else:
                            delays[change].append(delay * 1000)
            finally:
                conn.close()
            for change, values in delays.items():
                values.sort()
                if values:
                    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
                    lines.append(
                        f"| {backend} | {change} | {median(values):.1f} | {p99:.1f} "
                        f"| {values[-1]:.1f} | {missed[change]} |"
                    )
                    self.rows.append(
                        Row(
                            f"6. Propagation, {backend}, {change}",
                            "p99 <= 1000 ms (README)",
                            "",
                            f"p50 {median(values):.0f} ms, p99 {p99:.0f} ms (n={len(values)})",
                            f"{p99 / 1000:.2f}x of the 1 s bound",
                            p99 <= 1000 and not missed[change],
                        )
                    )
            a.stop()
            b.stop()
        self.sections.append("\n".join(lines))

    @staticmethod
    def wait_flip(conn: http.client.HTTPConnection, refused: bool, deadline: float) -> float | None:
        start = time.perf_counter()
        polls = 0
        while time.perf_counter() < deadline and polls < 20000:
            polls += 1
            try:
                conn.request("GET", "/page")
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()  # reopened by the next request
                continue
            if (resp.status == 503) == refused:
                return time.perf_counter() - start
            time.sleep(0.001)
        return None

    # -- the report -------------------------------------------------------------------------

    def summary_table(self) -> str:
        lines = [
            "| scenario | goal | baseline req/s | Bascule req/s | ratio | met |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            met = "—" if row.met is None else ("yes" if row.met else "**NO**")
            lines.append(
                f"| {row.scenario} | {row.goal} | {row.baseline} | {row.bascule} "
                f"| {row.ratio} | {met} |"
            )
        return "\n".join(lines)

    def console_table(self) -> str:
        out = []
        for row in self.rows:
            met = "-" if row.met is None else ("met" if row.met else "MISSED")
            out.append(f"{row.scenario:<52} {row.goal:<24} {met:<7} {row.ratio}")
            detail = "; ".join(x for x in (row.baseline, row.bascule) if x)
            out.append(f"{'':<4}{detail}")
        return "\n".join(out)

    def bascule_source(self) -> str:
        """Where the servers import Bascule from, and its git commit (read-only git calls)."""
        probe = "import bascule, pathlib; print(pathlib.Path(bascule.__file__).parent.parent)"
        found = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=ROOT,
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        source = found.stdout.strip() or "unknown"
        head = subprocess.run(
            ["git", "-C", source, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        if head.returncode != 0:
            return f"{source} (not a git work tree)"
        changed = subprocess.run(
            ["git", "-C", source, "diff", "--name-only", "HEAD", "--", "bascule", "handlers"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        state = f"modified: {', '.join(changed)}" if changed else "clean"
        return f"{source}, commit {head.stdout.strip()} ({state})"

    def machine(self) -> list[str]:
        cpu = "unknown"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        mem = ""
        with contextlib.suppress(OSError, IndexError):
            kib = int(Path("/proc/meminfo").read_text().split()[1])
            mem = f", {kib / 1024 / 1024:.1f} GiB of memory"

        def version(name: str) -> str:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return "not installed"

        wrk = "not installed"
        if shutil.which("wrk"):
            out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
            wrk = ((out.stdout or out.stderr).splitlines() or ["?"])[0].split("[")[0].strip()
        pinning = (
            f"servers on CPU {self.server_cpu}, load generator on CPU {self.load_cpu} (taskset)"
            if self.server_cpu is not None
            else "none (no taskset or one CPU)"
        )
        return [
            f"- Machine: {cpu}, {os.cpu_count()} cores{mem}; kernel {platform.release()} "
            f"({platform.machine()})",
            f"- Python {platform.python_version()}; uvicorn {version('uvicorn')} "
            f"(uvloop {version('uvloop')}, httptools {version('httptools')}); connexion "
            f"{version('connexion')}; starlette {version('starlette')}; SQLAlchemy "
            f"{version('SQLAlchemy')}; psycopg {version('psycopg')}; "
            f"Bascule {version('bascule')}",
            f"- Bascule code: {self.source_at_start}",
            f"- Database servers: SQLite {__import__('sqlite3').sqlite_version}; {self.pg_version}",
            f"- Load generator: {self.loadgen}"
            + (f" ({wrk}, 1 thread)" if self.loadgen == "wrk" else " (bench/loadgen.py)"),
            f"- Pinning: {pinning}",
            f"- Date: {self.started.isoformat(timespec='seconds')} (UTC), "
            f"{(datetime.datetime.now(datetime.UTC) - self.started).total_seconds() / 60:.1f} "
            "minutes",
            f"- Load average at start / end: {self.loadavg_start} / {loadavg()}",
            f"- Command: `{shlex.join([sys.executable, *sys.argv])}` (run from {Path.cwd()})",
            f"- Each run: {self.opts.duration} s (bound: {self.opts.max_requests:,} requests), "
            f"{self.opts.repeats} repeats interleaved after a {self.opts.warmup} s warm-up; "
            f"{self.opts.connections} keep-alive connections "
            f"({self.opts.write_connections} for writes); runs disturbed by other processes "
            f"(server CPU < {self.opts.min_cpu:.0%} or steal > {self.opts.max_steal:.0%}) "
            f"run again up to {self.opts.retries} times: {self.retried} extra runs in all",
        ]

    def report(self) -> str:
        source_now = self.bascule_source()
        if source_now != self.source_at_start:
            self.warn(f"Bascule's code changed during the run: now {source_now}")
        memory = [
            "### Scenario 7: memory of one worker (VmRSS, /proc/<pid>/status)",
            "",
            "| worker | at rest | after its runs | peak (VmHWM) |",
            "|---|---:|---:|---:|",
        ]

        def mib(kib: int | None) -> str:
            return f"{kib / 1024:.1f} MiB" if kib else "—"

        for name, rest, after, hwm in self.memory:
            memory.append(f"| {name} | {mib(rest)} | {mib(after)} | {mib(hwm)} |")
        parts = [
            "# Benchmark results",
            "",
            "Generated by `bench/run.py` (see bench/README.md); do not edit by hand.",
            "",
            *self.machine(),
            "",
            "Production settings for Bascule in every run unless said otherwise: "
            "`BASCULE_ACCESS_LOG=false`, `BASCULE_VALIDATE_RESPONSES=false`. "
            "Ratios are Bascule / baseline of the median requests per second of "
            'interleaved runs; "repeats" gives the range of the per-repeat ratios and '
            '"per CPU-s" the ratio of requests per second of server CPU time (less '
            "sensitive to other processes on the machine).",
            "",
            "## Summary",
            "",
            self.summary_table(),
            "",
        ]
        if self.warnings:
            parts += ["## Warnings", "", *[f"- {w}" for w in self.warnings], ""]
        parts += ["## Details", ""]
        for section in self.sections:
            parts += [section, ""]
        if self.memory:
            parts += ["\n".join(memory), ""]
        return "\n".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Bascule's benchmark (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument(
        "--write-connections",
        type=int,
        default=4,
        help="connections for the write runs (scenario 5)",
    )
    parser.add_argument(
        "--max-requests", type=int, default=5_000_000, help="upper bound on the requests of one run"
    )
    parser.add_argument(
        "--updates",
        type=int,
        default=10_000,
        help="logged updates before the last GET comparison (scenario 5)",
    )
    parser.add_argument(
        "--topup-timeout",
        type=float,
        default=300.0,
        help="time bound of the updates that bring the log to --updates",
    )
    parser.add_argument("--flips", type=int, default=30, help="flips each way (scenario 6)")
    parser.add_argument(
        "--min-cpu",
        type=float,
        default=0.85,
        help="a run of a CPU-bound server that got less of its CPU than this "
        "was disturbed by other processes: run it again",
    )
    parser.add_argument(
        "--max-steal",
        type=float,
        default=0.05,
        help="a run during which the hypervisor took more of the servers' CPU than this "
        "(steal time) was disturbed: run it again",
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="at most this many extra runs for a disturbed run"
    )
    parser.add_argument(
        "--scenarios",
        type=int,
        nargs="+",
        default=list(ALL_SCENARIOS),
        choices=[1, 2, 3, 4, 5, 6, 7],
        help="scenarios to run (4 and 7 run with 3)",
    )
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk when installed (auto), or bench/loadgen.py",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL server on this machine where databases may be "
        "created and dropped ('' to skip PostgreSQL)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--no-paired",
        dest="paired",
        action="store_false",
        help="skip the paired runs of scenarios 1-4 (each Bascule server and its baseline "
        "loaded at the same time, sharing the servers' CPU)",
    )
    parser.add_argument(
        "--server-cpu",
        type=int,
        help="the CPU the servers are pinned on (default: the first this process may use); "
        "the load generator runs on another",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="the report")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (server logs, SQLite files)"
    )
    opts = parser.parse_args(argv)
    if opts.duration <= 0 or opts.repeats <= 0 or opts.connections <= 0:
        parser.error("--duration, --repeats and --connections must be positive")
    opts.scenarios = sorted({3 if s in (4, 7) else s for s in opts.scenarios})
    return opts


@contextlib.contextmanager
def running(opts: argparse.Namespace) -> Iterator[Bench]:
    bench = Bench(opts)
    try:
        yield bench
    finally:
        bench.cleanup()


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    # Stopped from outside (a timeout, kill): stop the servers and clean up all the same.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with running(opts) as bench:
        say(f"Bascule benchmark: scenarios {opts.scenarios}, work directory {bench.work}")
        say(
            f"load generator: {bench.loadgen}; servers on CPU {bench.server_cpu}, "
            f"load on CPU {bench.load_cpu}"
        )
        if 5 in opts.scenarios or 6 in opts.scenarios:
            bench.setup_postgres()
        for number in opts.scenarios:
            getattr(bench, f"scenario_{number}")()
            # Servers of a finished scenario are idle but stop them anyway: fewer threads.
            for server in bench.servers:
                if server.proc is not None and server.proc.poll() is None:
                    server.stop()
        text = bench.report()
        opts.out.write_text(text, encoding="utf-8")
        say("\n" + bench.console_table())
        say(f"\nwrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
