"""Reliability: a live ``bascule serve`` attacked from outside, on SQLite and PostgreSQL.

    .venv/bin/python bench/reliability.py [--backend sqlite] [--backend postgresql]

On each backend, on fresh databases: paths that would slip past the gate, malformed
and hostile requests (none may reach the application), bypass tokens in URLs (never
logged), values at the ends of their ranges, a holder whose clock is minutes slow
(PostgreSQL), racing writers on two instances, outages (a refused or silent
PostgreSQL, a read-only or full SQLite file), slow and idle connections, a flood of
wrong passwords, guesses from 250 addresses at the admin's name (no lockout of a
browser that signed in), hostile Accept headers. Goals: no bypass, no 500, no lost
write, a silent database detected within 5 s, every outage recovered from without a
restart, hostile connections closed within their bound, a real login at most twice as
slow under the flood, a few hundred guesses a day at most. Writes its table into
bench/RESULTS.md (its own section) and exits 1 when a goal is missed. SQLite outages
need root (a tmpfs, a server without the privilege to ignore file modes); the clock
row needs Debian's libfaketime. Every loop is bounded; every request goes to a
loopback address.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests.conftest import basic, fresh_postgres_database, postgres_server  # noqa: E402
from tests.proxy import Proxy  # noqa: E402
from tests.proxying import HOSTILE, send_raw  # noqa: E402
from tests.serving import BASCULE, clean_env, serving, stop  # noqa: E402

PASSWORD, VIEWER_PASSWORD = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
ADMIN = basic("admin", PASSWORD)
ENV = {"BASCULE_ADMIN_PASSWORD": PASSWORD, "BASCULE_ACCESS_LOG": "false"}
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"
APP = b"the application"
SHOP_APP = f"""
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({{"type": "http.response.start", "status": 200, "headers": []}})
        await send({{"type": "http.response.body", "body": {APP!r}}})
"""


class Figures:
    """What one backend held (a row per attack), and the goals it missed."""

    def __init__(self, backend: str) -> None:
        self.backend, self.rows, self.missed = backend, {}, []

    def add(self, what: str, figure: str, met: bool = True) -> None:
        self.rows[what] = figure
        say(f"  {what}: {figure}" + ("" if met else "  (goal missed)"))
        if not met:
            self.missed.append(f"{self.backend}: {what}: {figure}")


def say(text: str) -> None:
    print(text, flush=True)


def until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until ``predicate()`` holds; None if not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(httpx.TransportError):
            if predicate():
                return time.monotonic() - start
        time.sleep(0.05)
    return None


def healthy(server) -> bool:
    return httpx.get(f"{server.url}/rest/v1/admin/health", timeout=30).status_code == 200


def secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def bascule(database_url: str, *args: str, stdin: str = "") -> None:
    environ = clean_env(BASCULE_DATABASE_URL=database_url)
    argv = [*BASCULE, *args]
    subprocess.run(
        argv, env=environ, input=stdin, text=True, capture_output=True, timeout=60, check=True
    )


# -- the attacks ----------------------------------------------------------------------------

OPEN_PATHS = ["/rest/v1/maintenance", "/rest/latest/maintenance/log", "/rest/maintenance",
              "/login", "/logout", "/rest/v1/auth/status", "/rest/v1/admin/health",
              "/rest/v1/ui/", "/rest/v1/openapi.json", "/maintenance"]  # fmt: skip
TRICKS = ["{}/../shop", "{}/%2e%2e/shop", "{}%2F..%2Fshop", "{}/..%2fshop", "/{}", "{}%00",
          "{};jsessionid=1", "{}%20", "/shop{}", "/shop/..{}", "{}/./shop", "{}x", "{}.json",
          "{}\\..\\shop", "/shop?{}"]  # fmt: skip


def disguises(path: str) -> list[str]:
    """The ways a request line could dress ``path`` up to reach the application instead."""
    encoded = "".join(f"%{ord(c):02X}" if c.isalpha() else c for c in path)
    changed = [path.replace("/", "//"), path.upper(), encoded, path.replace("e", "%65")]
    return [t.format(path) for t in TRICKS] + changed + [path.rstrip("/") + "/"]


def raw_body(url: str, target: str, method: str) -> bytes:
    """Send a request line exactly as given (no client-side normalisation); the body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2]


def bypass(url: str, tmp: Path, figures: Figures) -> None:
    (tmp / "shopapp.py").write_text(SHOP_APP)
    with serving(url, tmp, "--app", "shopapp:app", env=ENV) as server:
        assert httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN).status_code == 201
        tried = [
            (target, method)
            for path in OPEN_PATHS
            for target in disguises(path)
            if target.split("?")[0] not in OPEN_PATHS  # a disguise that undid itself
            for method in ("GET", "POST")
        ]
        # Let through: answered by the application (not by Bascule, not refused).
        passed = sum(raw_body(server.url, t, m) == APP for t, m in tried)
    figures.add("bypass attempts / let through", f"{len(tried)} / {passed}", passed == 0)


def malformed_requests() -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body): each must get a 4xx in the envelope, nothing else."""
    bodies = [b"[" * 1000 + b"]" * 1000, b'{"message": ' + b"{" * 60_000, b"[]", b'"text"',
              b'{"progressPercentage": ' + b"9" * 5000 + b"}", b"null", b"", b"{not json",
              *(b'{"progressPercentage": %s}' % v for v in (b"1e999", b"NaN", b'"40"', b"101",
                                                             b"-1", b"2147483648")),
              *(b'{"message": %s}' % v for v in (b'""', b'"   "', b'"\\ud800"', b'"a\\u0000b"',
                                                  b"42", b'"\xff"')),
              b'{"message": "a"' * 1000,
              '{"message": "\u200b\ufeff\u202e"}'.encode(), b'{"colour": "red"}', b"x" * 70_000,
              b'{"message": ' + json.dumps("x" * 2001).encode() + b"}"]  # fmt: skip
    update, json_type = "/rest/v1/maintenance", {"Content-Type": "application/json"}
    cases = [("PUT", update, json_type, body) for body in bodies]
    for kind in ("application/json; charset=latin-1", "application/json; charset=nope",
                 "text/plain", "multipart/form-data; boundary=x"):  # fmt: skip
        cases.append(("PUT", update, {"Content-Type": kind}, b'{"message": "m"}'))
    cases.append(("PATCH", update, {}, b""))
    for query in ("offset=" + "1" * 5000, "limit=abc", "limit=0", "offset=-1"):
        cases.append(("GET", f"{update}/log?{query}", {}, b""))
    form = "application/x-www-form-urlencoded"
    for kind, body in ((form, b"username=admin"), (form, b"username=a%00b&password=x"),
                       (form, b"username=" + b"a" * 300 + b"&password=x"),
                       (form, b"username=%ff&password=%fe"),
                       ("application/json", b'{"username": "a"}'),
                       (form + "; charset=utf-16", b"username=admin&password=x")):  # fmt: skip
        cases.append(("POST", "/login", {"Content-Type": kind}, body))
    for value in ("Basic YWRtaW46$$$", "Basic !!!!", "Basic " + "a" * 5000, "Basic", "Bearer x",
                  "Basic YWRtaW4="):  # fmt: skip
        cases.append(("GET", update, {"Authorization": value}, b""))
    return cases


def malformed(url: str, tmp: Path, figures: Figures) -> None:
    with serving(url, tmp, env=ENV) as server, httpx.Client(timeout=30) as client:
        api = f"{server.url}/rest/v1/maintenance"
        assert client.post(api, headers=ADMIN).status_code == 201
        before = client.get(api, headers=ADMIN).json()
        answers = [
            client.request(method, server.url + path, headers={**ADMIN, **headers}, content=body)
            for method, path, headers, body in malformed_requests()
        ]
        unchanged = client.get(api, headers=ADMIN).json() == before
    errors = sum(answer.status_code >= 500 for answer in answers)
    clean = sum(enveloped(answer) for answer in answers)
    figures.add(
        "malformed requests / clean 4xx / 500s",
        f"{len(answers)} / {clean} / {errors}" + ("" if unchanged else " (the state changed!)"),
        clean == len(answers) and unchanged,
    )


def enveloped(answer: httpx.Response) -> bool:
    """A 4xx whose body is the envelope: no data, an error with a code."""
    try:
        error, data = answer.json()["error"], answer.json()["data"]
        return 400 <= answer.status_code < 500 and data is None and isinstance(error["code"], int)
    except (ValueError, TypeError, KeyError):
        return False


def races(url: str, tmp: Path, figures: Figures) -> None:
    with (
        serving(url, tmp, env=ENV) as a,
        serving(url, tmp, env=ENV) as b,
        httpx.Client(headers=ADMIN, timeout=60) as client,
        concurrent.futures.ThreadPoolExecutor(20) as pool,
    ):
        apis = [f"{server.url}/rest/v1/maintenance" for server in (a, b)]
        for api in apis:
            client.get(api)  # the credentials verified once on each instance
        messages = [f"writer {i}" for i in range(60)]

        def each(method: str, count: int, body: Callable[[int], object] = lambda i: None):
            call = lambda i: client.request(method, apis[i % 2], json=body(i)).status_code  # noqa: E731
            return list(pool.map(call, range(count)))

        enables = each("POST", 20)
        puts = each("PUT", len(messages), lambda i: {"message": messages[i]})
        log = client.get(f"{apis[0]}/log", params={"limit": 1000}).json()["data"]["log"]
        disables = each("DELETE", 20)
    kept = {entry["message"] for entry in log}
    lost = sum(status == 201 and messages[i] not in kept for i, status in enumerate(puts))
    one_winner = enables.count(201) == 1 and disables.count(200) == 1
    figures.add(
        "races run / one winner each / lost writes",
        f"3 (100 requests on 2 instances) / {'yes' if one_winner else 'no'} / {lost}",
        one_winner and puts.count(201) == len(messages) and lost == 0,
    )


def outage(figures: Figures, what: str, server, cause: Callable, cure: Callable, **options):
    """Cause an outage, time its detection by health (``since`` a time, or the cause), cure
    it, time the recovery; detection within ``goal`` seconds."""
    started, goal = options.get("since", time.monotonic()), options.get("goal", 15.0)
    cause()
    detected = until(lambda: not healthy(server), 15)
    detected = None if detected is None else time.monotonic() - started
    cure()
    recovered = until(lambda: healthy(server), 30)
    met = detected is not None and detected <= goal and recovered is not None
    figures.add(
        f"outage: {what} / detected / recovered", f"{secs(detected)} / {secs(recovered)}", met
    )


def outages(url: str, tmp: Path, figures: Figures) -> None:
    if url.startswith("postgresql"):
        parsed = make_url(url)
        for kind, goal in (("refused", 2.0), ("silent", 5.0)):
            proxy = Proxy(parsed.host or "127.0.0.1", parsed.port or 5432)
            through = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            cause, cure = (
                (proxy.cut, proxy.restore) if kind == "refused" else (proxy.freeze, proxy.thaw)
            )
            with contextlib.closing(proxy), serving(through, tmp, env=ENV) as server:
                outage(figures, f"{kind} database", server, cause, cure, goal=goal)
    elif os.geteuid() != 0:
        figures.add("outages of a SQLite file", "not run: needs root")
    else:
        file_outages(tmp, figures)


def file_outages(tmp: Path, figures: Figures) -> None:
    """A file read-only from the start, for a server without the privilege to ignore file
    modes (its connections must not stay read-only once the file is writable); a full disk."""
    database = tmp / "readonly.db"
    add_admin = ["users", "add", "admin", "--role", "ADMIN", "--password-stdin"]
    bascule(f"sqlite:///{database}", *add_admin, stdin=PASSWORD)
    database.chmod(0o444)
    wrapper = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
    started, ready = time.monotonic(), "/rest/v1/auth/status"
    with serving(f"sqlite:///{database}", tmp, wrapper=wrapper, env=ENV, ready=ready) as server:
        writable = functools.partial(database.chmod, 0o644)
        outage(
            figures, "read-only file (from start)", server, lambda: None, writable, since=started
        )
    disk = tmp / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        with serving(f"sqlite:///{disk}/full.db", tmp, env=ENV) as server:
            api = f"{server.url}/rest/v1/maintenance"
            httpx.post(api, headers=ADMIN)
            full = functools.partial(fill, disk / "filler", api)
            outage(figures, "full disk", server, full, (disk / "filler").unlink)
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def fill(filler: Path, api: str) -> None:
    """Fill the disk (6.4 MB at most: more than it holds), then write until a write fails."""
    with filler.open("wb") as f, contextlib.suppress(OSError):
        for _ in range(100):
            f.write(b"\0" * 65536)
            f.flush()
    for _ in range(50):
        if httpx.put(api, headers=ADMIN, json={"message": "x" * 2000}).status_code == 503:
            break


def hostile(url: str, tmp: Path, figures: Figures) -> None:
    timeout = 10.0  # BASCULE_HEADER_TIMEOUT's default
    with serving(url, tmp, env=ENV) as server:
        host, port = server.url.removeprefix("http://").split(":")
        socks = [socket.create_connection((host, int(port)), timeout=30) for _ in range(200)]
        for sock in socks[1::2]:  # half trickle their headers, half send nothing at all
            sock.sendall(b"GET /rest/v1/admin/health HTTP/1.1\r\nHost: x\r\n")
        for sock in socks:
            sock.setblocking(False)
        start, health_times, still_open = time.monotonic(), [], set(range(len(socks)))
        while still_open and time.monotonic() - start < timeout + 20:
            for i in list(still_open):
                try:
                    if i % 2:
                        socks[i].sendall(f"X-{int(time.monotonic())}: y\r\n".encode())
                    if socks[i].recv(65536) == b"":
                        still_open.discard(i)
                except BlockingIOError:
                    continue  # nothing to read yet: still open
                except OSError:
                    still_open.discard(i)
            started = time.monotonic()
            healthy(server)
            health_times.append(time.monotonic() - started)
            time.sleep(0.5)
        closed_in = time.monotonic() - start
        for sock in socks:
            sock.close()
    figures.add(
        "slow and idle connections / all closed within / slowest health meanwhile",
        f"200 / {closed_in:.1f} s / {max(health_times) * 1000:.0f} ms",
        not still_open and closed_in <= timeout + 3,
    )


RECORDING_APP = """
import json, pathlib
REACHED = pathlib.Path(__file__).with_name("reached.jsonl")
async def app(scope, receive, send):
    if scope["type"] == "http":
        with REACHED.open("a") as log:
            log.write(json.dumps([scope["method"], scope["raw_path"].decode("latin-1")]) + "\\n")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"the application"})
"""


def hostile_requests(url: str, tmp: Path, figures: Figures) -> None:
    """The tests' hostile requests (control bytes, too many or too large headers, long
    methods, fragments...) sent to the gate in full and in read-only maintenance: how
    many reached the application that they should not have."""
    (tmp / "userapp.py").write_text(RECORDING_APP)
    reached = tmp / "reached.jsonl"

    def seen() -> list[tuple[str, str]]:
        lines = reached.read_text().splitlines() if reached.exists() else []
        return [tuple(json.loads(line)) for line in lines]

    sent, let_through = 0, 0
    args = ("--app", "userapp:app", "--allow", "/healthz")
    with serving(url, tmp, *args, env=ENV) as server:
        for mode in ("full", "read-only"):
            api = f"{server.url}/rest/v1/maintenance"
            httpx.post(api, headers=ADMIN, json={"mode": mode}, timeout=30)
            for request in HOSTILE.values():
                before = len(seen())
                send_raw(server.url, request)
                sent += 1
                for method, target in seen()[before:]:
                    allowed = (
                        method in ("GET", "HEAD", "OPTIONS")
                        if mode == "read-only"
                        else (target == "/healthz")
                    )
                    let_through += not allowed
            httpx.delete(api, headers=ADMIN, timeout=30)
    figures.add(
        "hostile requests (full, read-only) / reaching the application",
        f"{sent} / {let_through}",
        let_through == 0,
    )


def tokens_and_bounds(url: str, tmp: Path, figures: Figures) -> None:
    """A bypass token in a URL, maintenance off, on and read-only: taken out, and never
    in the access log; values at the end of their ranges: taken or refused, nothing
    broken."""
    with serving(url, tmp, env={**ENV, "BASCULE_ACCESS_LOG": "true"}) as server:
        api = f"{server.url}/rest/v1/maintenance"
        token = httpx.post(f"{api}/bypass", headers=ADMIN, json={"name": "t"}).json()["data"]
        redirected = 0
        for mode in (None, "full", "read-only"):
            if mode:
                httpx.post(api, headers=ADMIN, json={"mode": mode})
            answer = httpx.get(f"{server.url}/shop?bascule-bypass={token['token']}&page=2")
            redirected += answer.status_code == 303
            if mode:
                httpx.delete(api, headers=ADMIN)
        last = {"start": "9999-12-31T23:59:59.999999Z", "message": "the last moment"}
        refused = [httpx.post(f"{api}/schedule", headers=ADMIN, json=last).status_code]
        for n in range(101):  # a window an hour each, from the year 2999 on
            window = {"start": f"2999-01-{1 + n // 24:02d}T{n % 24:02d}:00:00Z", "message": "m"}
            window["end"] = window["start"].replace(":00:00Z", ":30:00Z")
            refused.append(httpx.post(f"{api}/schedule", headers=ADMIN, json=window).status_code)
        listed = httpx.get(f"{api}/schedule", headers=ADMIN).status_code
        feed = httpx.get(f"{api}/schedule.ics", headers=ADMIN).status_code
        stop(server.process)
        logged = token["token"] in server.output()
    figures.add(
        "a URL token, off / on / read-only: taken out / in a log",
        f"{redirected} of 3 / {'yes' if logged else 'no'}",
        redirected == 3 and not logged,
    )
    # The last moment, to its millisecond, is a time like another (it was a 500, saved,
    # and every list after it a 500 too).
    figures.add(
        "a window at 9999-12-31T23:59:59.999999Z / the 101st / the list and feed after",
        f"{refused[0]} / {refused[-1]} / {listed}, {feed}",
        refused[0] == 201 and refused[-1] == 409 and (listed, feed) == (200, 200),
    )


# A process holding automatic maintenance, with a lease of 10 s, on a host whose clock is
# two minutes slow (libfaketime), for 12 s.
HOLDER = """
import sys, threading
from bascule import automatic_maintenance
with automatic_maintenance(sys.argv[1], "deploy", lease_ttl=10):
    print("on", flush=True)
    threading.Event().wait(12)
"""
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def clocks(url: str, tmp: Path, figures: Figures) -> None:
    """A holder two minutes slow, asked to be released every second by a host five
    minutes fast: how many releases went through (PostgreSQL: SQLite's instances share
    one host's clock)."""
    if not url.startswith("postgresql"):
        return

    def skewed(seconds: int) -> dict[str, str]:
        return clean_env(
            LD_PRELOAD=LIBFAKETIME,
            FAKETIME=f"{seconds:+d}",
            FAKETIME_DONT_FAKE_MONOTONIC="1",
            BASCULE_DATABASE_URL=url,
        )

    argv = [sys.executable, "-c", HOLDER, url]
    with subprocess.Popen(argv, env=skewed(-120), stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "on\n"
        released = 0
        for _ in range(8):
            time.sleep(1)
            release = [*BASCULE, "maintenance", "release", "--reason", "looks dead"]
            done = subprocess.run(release, env=skewed(300), capture_output=True, timeout=60)
            released += done.returncode == 0
        holder.wait(timeout=30)
    figures.add(
        "a live holder 2 min slow, released by a host 5 min fast / times",
        f"8 tries / {released}",
        released == 0,
    )


# Wrong passwords from 127.0.0.2, from a process of their own (not to slow the measuring
# one down), until its deadline or its count: prints how each was answered.
FLOOD = """
import collections, concurrent.futures, json, sys, time, httpx
url, seconds, authorization = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline, answers = time.monotonic() + seconds, collections.Counter()
client = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=60)
def guess(_):
    while time.monotonic() < deadline and sum(answers.values()) < 20000:
        try:
            answers[client.get(url, headers={"Authorization": authorization}).status_code] += 1
        except httpx.TransportError:
            answers["transport error"] += 1
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(guess, range(16)))
print(json.dumps(answers))
"""


def guessing(url: str, tmp: Path, figures: Figures) -> None:
    with serving(url, tmp, env=ENV) as server:
        bascule(url, "users", "add", "viewer", "--password-stdin", stdin=VIEWER_PASSWORD + "\n")
        form = {"username": "viewer", "password": VIEWER_PASSWORD}

        def login() -> float:
            start = time.monotonic()
            assert httpx.post(f"{server.url}/login", data=form, timeout=60).status_code == 200
            return time.monotonic() - start

        quiet = statistics.median(login() for _ in range(7))
        wrong = basic("admin", "not-the-password")["Authorization"]
        argv = [sys.executable, "-c", FLOOD, f"{server.url}/rest/v1/maintenance", "15", wrong]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as flood:
            # Past the limit (its first guesses are checked: a second or two of Argon2),
            # every guess is refused unchecked.
            time.sleep(3.0)
            during = statistics.median(login() for _ in range(7))
            answers = json.loads(flood.communicate(timeout=60)[0])
    total, throttled = sum(answers.values()), answers.get("429", 0)
    figures.add(
        "wrong passwords / answered 429 unchecked / a real login, slower by",
        f"{total} / {throttled} / {during / quiet:.2f}x",
        throttled >= total - 40 and during / quiet <= 2.0,
    )


# Wrong passwords for one name from many loopback addresses (127.0.1.N), a few each:
# prints how each was answered.
SPREAD = """
import collections, json, sys, httpx
url, authorization, addresses, each = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
answers = collections.Counter()
for n in range(addresses):
    local = httpx.HTTPTransport(local_address=f"127.0.1.{n + 1}")
    with httpx.Client(transport=local, timeout=60) as client:
        for _ in range(each):
            answers[client.get(url, headers={"Authorization": authorization}).status_code] += 1
print(json.dumps(answers))
"""


def lockout(url: str, tmp: Path, figures: Figures) -> None:
    """Guesses at the admin's name from 250 addresses, the admin's own among them: how
    many were checked, and whether the admin's browser still signs in (on a fresh
    instance, with nothing in its caches) and switches maintenance."""
    form = {"username": "admin", "password": PASSWORD}
    with serving(url, tmp, env=ENV) as server:
        own = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.1.7"), timeout=60)
        with own:
            assert own.post(f"{server.url}/login", data=form).status_code == 200
            device = own.cookies["bascule-device"]
        wrong = basic("admin", "not-the-password")["Authorization"]
        argv = [
            sys.executable,
            "-c",
            SPREAD,
            f"{server.url}/rest/v1/maintenance",
            wrong,
            "250",
            "3",
        ]
        answers = json.loads(
            subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        )
    with serving(url, tmp, env=ENV) as fresh:
        # First (a right password verified is remembered, and then let in from anywhere).
        stranger = httpx.post(f"{fresh.url}/login", data=form, timeout=60).status_code
        own = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.1.7"), timeout=60)
        with own:
            own.cookies.set("bascule-device", device)
            signed_in = own.post(f"{fresh.url}/login", data=form).status_code == 200
            switched = own.post(f"{fresh.url}/rest/v1/maintenance").status_code == 201
    total, checked = sum(answers.values()), answers.get("401", 0)
    locked_out = not (signed_in and switched)
    figures.add(
        "guesses at the admin's name from 250 addresses / checked / the admin's browser locked out",
        f"{total} / {checked} / {'yes' if locked_out else 'no'} (a browser never signed in:"
        f" {stranger})",
        checked <= 200 and not locked_out and stranger == 429,
    )


def accept_cost(url: str, tmp: Path, figures: Figures) -> None:
    with serving(url, tmp, env=ENV) as server, httpx.Client(timeout=30) as client:
        client.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN)

        def p50(accept: str) -> float:
            times = []
            for _ in range(300):
                start = time.perf_counter()
                assert (
                    client.get(f"{server.url}/shop", headers={"Accept": accept}).status_code == 503
                )
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        normal, largest = p50("application/json"), p50("a," * 7000)  # 14 KB: as much as taken
    figures.add(
        "gated request with a 14 KB Accept, slower by",
        f"{largest / normal:.2f}x ({normal * 1000:.2f} ms normally)",
        largest / normal <= 3.0,  # the 14 KB cross the network and the parser; the gate reads 1 KiB
    )


ATTACKS = [
    bypass,
    malformed,
    hostile_requests,
    tokens_and_bounds,
    clocks,
    races,
    outages,
    hostile,
    guessing,
    lockout,
    accept_cost,
]


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp}/bascule.db"
        return
    server = postgres_server()
    if not server:
        raise SystemExit("no PostgreSQL server answers: set BASCULE_TEST_DATABASE_URL")
    with fresh_postgres_database(server) as url:
        yield url


def section(results: list[Figures]) -> str:
    """The Markdown of RESULTS.md's reliability section."""
    missed = [goal for figures in results for goal in figures.missed]
    verdict = "goals missed: " + "; ".join(missed) if missed else "every goal met"
    lines = [f"Written by `bench/reliability.py` on {time.strftime('%Y-%m-%d')}: {verdict}."]
    lines += ["", "| what was tried | " + " | ".join(f.backend for f in results) + " |"]
    lines.append("|---|" + "---|" * len(results))
    for what in dict.fromkeys(what for figures in results for what in figures.rows):
        lines.append(f"| {what} | " + " | ".join(f.rows.get(what, "n/a") for f in results) + " |")
    return "## Reliability\n\n" + "\n".join(lines)


def write_section(text: str, path: Path) -> None:
    """Replace the reliability section of ``path`` with ``text`` (or add it at the end)."""
    old = path.read_text() if path.exists() else ""
    before = old.split(START)[0].rstrip("\n")
    after = old.split(END, 1)[1] if END in old else "\n"
    path.write_text(f"{before}\n\n{START}\n{text}\n{END}{after}".lstrip("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    opts = parser.parse_args(argv)
    results = []
    for backend in opts.backend or ["sqlite", "postgresql"]:
        results.append(Figures(backend))
        for attack in ATTACKS:
            say(f"{backend}: {attack.__name__}")
            with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
                attack(url, Path(tmp), results[-1])
    write_section(section(results), opts.out)
    say(f"wrote the reliability section of {opts.out}")
    return 1 if any(figures.missed for figures in results) else 0


if __name__ == "__main__":
    sys.exit(main())
