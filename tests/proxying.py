"""A real reverse proxy in front of a small application, asking a live Bascule: the
scenario every recipe of ``bascule proxy-config`` must pass, end to end through it."""

from __future__ import annotations

import contextlib
import importlib
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from bascule.proxies import Recipe, follow_command, write
from tests.conftest import ADMIN_PASSWORD, basic
from tests.serving import BASCULE, Server, clean_env, free_port, serving, stop
from tests.waiting import until

ADMIN = basic("admin", ADMIN_PASSWORD)
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API_CLIENT = {"Accept": "application/json"}
APP_PAGE = "the shop is open"


@contextmanager
def small_application(tmp_path: Path) -> Iterator[str]:
    """A static site served by Python's http.server (any HTTP server would do): its URL."""
    site = tmp_path / "site"
    (site / "shop").mkdir(parents=True)
    (site / "shop" / "index.html").write_text(f"<p>{APP_PAGE}</p>")
    (site / "healthz").write_text("ok")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=site,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: answers(url), 10.0, "the application to listen")
        yield url
    finally:
        stop(process)


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


@dataclass
class Proxied:
    """The proxy's URL, and the Bascule it asks."""

    url: str
    bascule: Server
    output: Path
    process: subprocess.Popen[bytes]


@contextmanager
def behind(proxy: str, tmp_path: Path, **env: str) -> Iterator[Proxied]:
    """The application behind ``proxy``, configured by ``bascule proxy-config``, asking a
    Bascule (on SQLite) that keeps /healthz open."""
    database_url = f"sqlite:///{tmp_path}/bascule.db"
    with (
        ExitStack() as stack,
        small_application(tmp_path) as upstream,
        serving(
            database_url,
            tmp_path,
            "--allow",
            "/healthz",
            env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD},
        ) as bascule,
    ):
        port = free_port()
        config = stack.enter_context(recipe_directory(proxy, tmp_path, proxy))
        written = subprocess.run(
            [
                *BASCULE,
                "proxy-config",
                proxy,
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                upstream,
                "--bascule",
                bascule.url,
                "--output-dir",
                str(config),
            ],
            capture_output=True,
            text=True,
            env=clean_env(),
            check=True,
        )
        *_, follow, run = written.stdout.strip().splitlines()
        assert follow.endswith(" &"), written.stdout  # in the background, as pasted
        stack.enter_context(following(shlex.split(follow.removesuffix(" &")), tmp_path))
        log = tmp_path / f"{proxy}.log"
        process = stack.enter_context(running(proxy, shlex.split(run), config, port, log, env))
        yield Proxied(f"http://127.0.0.1:{port}", bascule, log, process)


@contextmanager
def following(command: list[str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``bascule proxy-follow`` run until the block ends, once it set the switch."""
    log = tmp_path / f"follow-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=clean_env(), text=True
        )
    try:
        until(
            lambda: "asks Bascule about" in log.read_text() or process.poll() is not None,
            20.0,
            "the follower to set the switch",
        )
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        stop(process)


@contextmanager
def running(
    proxy: str, command: list[str], directory: Path, port: int, log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """``proxy`` run on its recipe until the block ends, once it serves."""
    with log.open("a") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=clean_env(**env), cwd=directory
        )
    try:
        until(
            lambda: process.poll() is None and started(proxy, port),
            20.0,
            f"{proxy} to listen ({log.read_text()[-2000:]})",
        )
        yield process
    finally:
        stop(process)


@contextmanager
def recipe_directory(proxy: str, tmp_path: Path, name: str) -> Iterator[Path]:
    """Where ``proxy``'s recipe is written: ``tmp_path / name``, but for nginx, whose
    workers must see the switch (nginx started as root runs them as nobody, and pytest's
    directories are private), ``name`` in a directory that anyone can search; and for
    HAProxy, whose switch socket needs a path shorter than pytest's (107 bytes)."""
    if proxy not in ("nginx", "haproxy"):
        yield tmp_path / name
        return
    with tempfile.TemporaryDirectory(prefix=f"bascule-{proxy}-") as searchable:
        Path(searchable).chmod(0o711)
        yield Path(searchable) / name


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def started(proxy: str, port: int) -> bool:
    """Whether ``proxy`` serves on ``port``: listening, and, for a proxy that listens
    before its routes are loaded (Traefik), answering 204 at its recipe's READY_PATH."""
    if not listening(port):
        return False
    ready = getattr(importlib.import_module(f"bascule.proxies.{proxy}"), "READY_PATH", None)
    if ready is None:
        return True
    try:
        return httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 204
    except httpx.TransportError:
        return False


def get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, timeout=5, follow_redirects=False, **kwargs)


def exercise(proxied: Proxied, *, marks_bypass: bool = True) -> None:
    """Off, on, the bypass, off again, and Bascule gone: what a visitor sees through it."""
    shop, api = f"{proxied.url}/shop/", f"{proxied.bascule.url}/rest/v1/maintenance"
    assert APP_PAGE in get(shop).text  # maintenance off: the application answers

    assert httpx.post(api, headers=ADMIN).status_code == 201
    until(lambda: get(shop).status_code == 503, 1.0, "the refusal, within a second")
    page = get(shop, headers=BROWSER)
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "120" and "<!doctype html>" in page.text.lower()
    refused = get(shop, headers=API_CLIENT)
    assert (refused.status_code, refused.headers["content-type"]) == (503, "application/json")
    assert refused.json()["error"] == {"code": 0, "message": "Maintenance mode is enabled."}
    assert get(f"{proxied.url}/healthz").text == "ok"  # --allow /healthz

    created = httpx.post(f"{api}/bypass", headers=ADMIN, json={"name": "testers"})
    token = created.json()["data"]["token"]
    passed = get(shop, headers={"X-Bascule-Bypass": token})
    assert passed.status_code == 200 and APP_PAGE in passed.text
    if marks_bypass:
        assert passed.headers["x-bascule-bypassed"] == "testers"
    assert get(shop, headers={"X-Bascule-Bypass": token + "x"}).status_code == 503

    sent_back = get(f"{shop}?page=2&bascule-bypass={token}")
    assert sent_back.status_code == 303, sent_back.text
    assert sent_back.headers["location"].endswith("/shop/?page=2")
    cookie = sent_back.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    walking = {"Cookie": f"bascule-bypass={token}"}
    assert APP_PAGE in get(shop, headers=walking).text  # the browser walks the site

    assert httpx.delete(f"{api}/bypass/testers", headers=ADMIN).status_code == 200
    until(lambda: get(shop, headers=walking).status_code == 503, 1.0, "the revocation")

    assert httpx.delete(api, headers=ADMIN).status_code == 200
    until(lambda: get(shop).status_code == 200, 1.0, "the reopening, within a second")

    # Read-only: what changes nothing goes through (the proxy tells Bascule the method).
    assert httpx.post(api, headers=ADMIN, json={"mode": "read-only"}).status_code == 201
    until(lambda: httpx.post(shop).status_code == 503, 1.0, "the read-only refusal")
    assert APP_PAGE in get(shop).text
    assert httpx.delete(api, headers=ADMIN).status_code == 200
    until(lambda: httpx.post(shop).status_code != 503, 1.0, "the reopening")

    # Bascule gone: the recipe fails open, the site stays up.
    assert httpx.post(api, headers=ADMIN).status_code == 201
    until(lambda: get(shop).status_code == 503, 1.0, "the refusal")
    stop(proxied.bascule.process)
    until(lambda: APP_PAGE in get(shop).text, 5.0, "the application, with Bascule down")


# -- a recording application and Bascule, for what each recipe asks and passes on -----

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    """A request a test server received."""

    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Recorder:
    """A small HTTP/1.1 server (keep-alive) that answers with ``answer`` and keeps what
    it was asked."""

    url: str
    seen: list[Seen] = field(default_factory=list)

    def hits(self, target: str) -> int:
        return sum(s.target == target for s in self.seen)


@contextmanager
def recording(answer: Callable[[Seen], Answer]) -> Iterator[Recorder]:
    port = free_port()
    recorder = Recorder(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            recorder.seen.append(seen)
            status, headers, body = answer(seen)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def __getattr__(self, name: str) -> Callable[[], None]:
            if name.startswith("do_"):  # any method, a made-up one too, is recorded
                return self.handle_one
            raise AttributeError(name)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


def application(seen: Seen) -> Answer:
    """An application with a page that forbids and one that breaks."""
    if seen.target == "/forbidden":
        return 403, {"Content-Type": "text/plain"}, b"the application forbids"
    if seen.target == "/broken":
        return 500, {"Content-Type": "text/plain"}, b"the application broke"
    return 200, {"Content-Type": "text/plain"}, f"the application at {seen.target}".encode()


def letting_through(_seen: Seen) -> Answer:
    """A stand-in for Bascule that lets everything through."""
    return 200, {"Cache-Control": "no-store"}, b""


@contextmanager
def silent() -> Iterator[str]:
    """A server that accepts connections and never answers (a Bascule stuck): its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
        for connection in held:
            connection.close()


@contextmanager
def proxy_in_front(
    proxy: str,
    tmp_path: Path,
    upstream: str,
    bascule: str,
    timeout: float = 1.0,
    follow: bool = False,
) -> Iterator[str]:
    """``proxy`` run on its recipe in front of ``upstream``, asking ``bascule``: its URL
    (its files in ``recipe_directory``). With ``follow``, its follower runs too (and
    ``bascule`` must be a Bascule); otherwise the switch stays as written: asking about
    every request."""
    port = free_port()
    with ExitStack() as stack:
        directory = stack.enter_context(recipe_directory(proxy, tmp_path, f"{proxy}-{port}"))
        command = write(proxy, Recipe("127.0.0.1", port, upstream, bascule, timeout), directory)
        if follow:
            stack.enter_context(following(follow_command(directory), tmp_path))
        log = tmp_path / f"{proxy}-{port}.log"
        stack.enter_context(running(proxy, command, directory, port, log, {}))
        url = f"http://127.0.0.1:{port}"
        WRITTEN[url] = (directory, log)
        yield url


# Where proxy_in_front wrote each proxy's recipe, and its output, by the proxy's URL.
WRITTEN: dict[str, tuple[Path, Path]] = {}


def proxy_logs(url: str) -> str:
    """Everything the proxy at ``url`` wrote: its output, and the logs of its recipe."""
    directory, output = WRITTEN[url]
    logs = [output, *sorted(directory.glob("*.log"))]
    return "".join(path.read_text(errors="replace") for path in logs)


def check_tokens_not_logged(proxy: str, tmp_path: Path) -> None:
    """A bypass token in a URL, maintenance on or off: the visitor is sent back to the
    URL without it (a cookie holding it), the application never sees it, and no log of
    the proxy's shows it."""
    with (
        recording(application) as app,
        live_bascule(tmp_path) as bascule,
        proxy_in_front(proxy, tmp_path, app.url, bascule.url) as url,
    ):
        api = f"{bascule.url}/rest/v1/maintenance"
        token = httpx.post(f"{api}/bypass", headers=ADMIN, json={"name": "t"}).json()["data"]
        for mode in ("off", "full", "read-only"):
            if mode != "off":
                assert httpx.post(api, headers=ADMIN, json={"mode": mode}).status_code == 201
            until(
                lambda m=mode: (
                    httpx.get(
                        f"{bascule.url}/rest/v1/gate", headers={"X-Original-Method": "POST"}
                    ).status_code
                    == (200 if m == "off" else 503)
                ),
                1.0,
                mode,
            )
            sent_back = get(f"{url}/shop?bascule-bypass={token['token']}&page=2")
            assert sent_back.status_code == 303, (mode, sent_back.text)
            assert sent_back.headers["location"].endswith("/shop?page=2")
            if mode != "off":
                assert httpx.delete(api, headers=ADMIN).status_code == 200
        # Behind a TLS terminator that says so, the cookie holding the token is Secure.
        behind_tls = get(
            f"{url}/shop?bascule-bypass={token['token']}", headers={"X-Forwarded-Proto": "https"}
        )
        assert behind_tls.status_code == 303
        secure = "; Secure" in behind_tls.headers["set-cookie"]
        assert secure is (proxy != "traefik"), behind_tls.headers["set-cookie"]
        until(lambda: proxy_logs(url).count("303") >= 4, 5.0, "the requests logged")
        assert all(token["token"] not in s.target for s in app.seen)
        assert token["token"] not in proxy_logs(url)


@contextmanager
def live_bascule(tmp_path: Path, *args: str) -> Iterator[Server]:
    with serving(
        f"sqlite:///{tmp_path}/bascule.db",
        tmp_path,
        *args,
        env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD},
    ) as bascule:
        yield bascule


def check_application_answers(proxy: str, tmp_path: Path, marks_bypass: bool = True) -> None:
    """The application's 403 and 500 reach the visitor as they are, asked once, whether
    Bascule lets them through, lets a bypass through, or is gone; the token stays
    Bascule's business."""
    with (
        recording(application) as app,
        live_bascule(tmp_path) as bascule,
        proxy_in_front(proxy, tmp_path, app.url, bascule.url) as url,
    ):
        for path, status, body in [
            ("/forbidden", 403, "the application forbids"),
            ("/broken", 500, "the application broke"),
        ]:
            answer = get(f"{url}{path}")
            assert (answer.status_code, answer.text) == (status, body)
            assert app.hits(path) == 1, "asked once"

        api = f"{bascule.url}/rest/v1/maintenance"
        assert httpx.post(api, headers=ADMIN).status_code == 201
        until(lambda: get(f"{url}/shop").status_code == 503, 1.0, "the refusal")
        assert app.hits("/shop") == 0
        assert get(f"{url}/forbidden").status_code == 503
        assert get(f"{url}/broken").status_code == 503
        assert (app.hits("/forbidden"), app.hits("/broken")) == (1, 1)
        posted = httpx.post(f"{url}/cart", content=b"quantity=2", headers=API_CLIENT, timeout=5)
        assert (posted.status_code, posted.headers["content-type"]) == (503, "application/json")
        assert app.hits("/cart") == 0
        created = httpx.post(f"{api}/bypass", headers=ADMIN, json={"name": "testers"})
        token = {"X-Bascule-Bypass": created.json()["data"]["token"]}
        until(lambda: get(f"{url}/shop", headers=token).status_code == 200, 1.0, "the token")
        for path, status, body in [
            ("/forbidden", 403, "the application forbids"),
            ("/broken", 500, "the application broke"),
            ("/shop", 200, "the application at /shop"),
        ]:
            answer = get(f"{url}{path}", headers=token)
            assert (answer.status_code, answer.text) == (status, body)
            if marks_bypass:
                assert answer.headers["x-bascule-bypassed"] == "testers"
                assert app.seen[-1].headers["x-bascule-bypassed"] == "testers"
        assert (app.hits("/forbidden"), app.hits("/broken")) == (2, 2)
        assert all("x-bascule-bypass" not in s.headers for s in app.seen)

        stop(bascule.process)  # gone: the application answers, its errors as they are
        answer = get(f"{url}/broken")
        assert (answer.status_code, answer.text) == (500, "the application broke")
        assert app.hits("/broken") == 3, "asked once"
        answer = get(f"{url}/forbidden")
        assert (answer.status_code, answer.text) == (403, "the application forbids")
        assert app.hits("/forbidden") == 3, "asked once"
        posted = httpx.post(f"{url}/cart", content=b"quantity=2", timeout=5)
        assert (posted.status_code, posted.text) == (200, "the application at /cart")
        assert (app.seen[-1].method, app.seen[-1].body) == ("POST", b"quantity=2")


def check_slow_bascule(proxy: str, tmp_path: Path) -> None:
    """A Bascule that accepts and never answers: the application answers, once, within
    the recipe's timeout (and a little)."""
    with (
        recording(application) as app,
        silent() as bascule,
        proxy_in_front(proxy, tmp_path, app.url, bascule, timeout=0.3) as url,
    ):
        for n in (1, 2):
            start = time.monotonic()
            answer = get(f"{url}/shop?n={n}")
            took = time.monotonic() - start
            assert (answer.status_code, answer.text) == (200, f"the application at /shop?n={n}")
            assert 0.25 < took < 1.5, took
            assert app.hits(f"/shop?n={n}") == 1


def asked(proxy: str, tmp_path: Path) -> tuple[Seen, Seen]:
    """What Bascule (a stand-in letting everything through) is asked about a visitor's
    POST with a body, and what the application receives."""
    with (
        recording(application) as app,
        recording(letting_through) as bascule,
        proxy_in_front(proxy, tmp_path, app.url, bascule.url) as url,
    ):
        answer = httpx.post(
            f"{url}/cart/add?item=7",
            headers={
                "Accept": "text/html",
                "Cookie": "bascule-bypass=abc; other=1",
                "X-Bascule-Bypass": "token",
                "X-Original-URI": "/healthz",  # the visitor's own: never believed
                "X-Forwarded-Uri": "/healthz",
                "X-Bascule-Bypassed": "anyone",  # nor its claim to a bypass
                "X-Visitor-Padding": "none of Bascule's business",
            },
            content=b"quantity=2",
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        assert "x-bascule-bypassed" not in answer.headers
        (question,) = bascule.seen
        (request,) = app.seen
        return question, request


# -- the switch ----------------------------------------------------------------------


def timed_get(url: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    answer = get(url)
    return answer, time.monotonic() - start


def check_switch(proxy: str, tmp_path: Path) -> None:
    """What the switch spares visitors and keeps: maintenance off, a Bascule stopped
    costs them nothing; read-only, their reads pass without asking it; on, a restarted
    proxy refuses at once, and a stopped follower leaves the switch as it was."""
    with (
        recording(application) as app,
        live_bascule(tmp_path) as bascule,
        ExitStack() as stack,
    ):
        port = free_port()
        url, api = f"http://127.0.0.1:{port}", f"{bascule.url}/rest/v1/maintenance"
        directory = stack.enter_context(recipe_directory(proxy, tmp_path, proxy))
        command = write(proxy, Recipe("127.0.0.1", port, app.url, bascule.url), directory)
        follower = stack.enter_context(following(follow_command(directory), tmp_path))
        log = tmp_path / f"{proxy}.log"
        proxied = stack.enter_context(running(proxy, command, directory, port, log, {}))

        # Off, Bascule stopped: 20 visitors, each answered by the application at once.
        bascule.process.send_signal(signal.SIGSTOP)
        try:
            for n in range(20):
                answer, took = timed_get(f"{url}/shop?n={n}")
                assert (answer.status_code, answer.text) == (200, f"the application at /shop?n={n}")
                assert took < 0.3, (n, took)
        finally:
            bascule.process.send_signal(signal.SIGCONT)

        # Read-only, Bascule stopped: a GET passes at once; a POST waits for Bascule,
        # and is refused once it answers.
        assert httpx.post(api, headers=ADMIN, json={"mode": "read-only"}).status_code == 201
        until(lambda: httpx.post(f"{url}/cart").status_code == 503, 1.0, "the switch")
        carts = app.hits("/cart")  # those let through before the switch turned
        bascule.process.send_signal(signal.SIGSTOP)
        try:
            answer, took = timed_get(f"{url}/shop")
            assert answer.status_code == 200 and took < 0.3, took
            posted: list[int] = []
            poster = threading.Thread(
                target=lambda: posted.append(httpx.post(f"{url}/cart", timeout=5).status_code)
            )
            poster.start()
            time.sleep(0.2)
            assert not posted  # waiting for Bascule
        finally:
            bascule.process.send_signal(signal.SIGCONT)
        poster.join(timeout=5)
        assert posted == [503]
        assert app.hits("/cart") == carts

        # On; the proxy restarted: it refuses within 2 s of starting.
        assert httpx.put(api, headers=ADMIN, json={"mode": "full"}).status_code == 201
        until(lambda: get(f"{url}/shop").status_code == 503, 1.0, "the switch")
        stop(proxied)
        restarted = stack.enter_context(running(proxy, command, directory, port, log, {}))
        until(lambda: get(f"{url}/shop").status_code == 503, 2.0, "a refusal after a restart")
        assert restarted.poll() is None

        # The follower stopped: the switch keeps its state (the proxy asks, Bascule refuses).
        stop(follower)
        time.sleep(0.5)
        assert get(f"{url}/shop").status_code == 503
        # Followed again, and off: the application within a second.
        stack.enter_context(following(follow_command(directory), tmp_path))
        assert httpx.delete(api, headers=ADMIN).status_code == 200
        until(lambda: get(f"{url}/shop").status_code == 200, 1.0, "the reopening")


# -- hostile requests ------------------------------------------------------------------


def raw_request(
    method: bytes = b"POST",
    target: bytes = b"/admin",
    headers: tuple[bytes, ...] = (),
    body: bytes = b"x=1",
) -> bytes:
    """An HTTP/1.1 request, byte for byte, with a Content-Length when it has a body."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: shop.example", *headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# Requests that a server in front may pass on as they are, and that Bascule's own HTTP
# server may refuse to read: none of them may reach an application during maintenance.
HOSTILE: dict[str, bytes] = {
    "a control byte in any header": raw_request(headers=(b"X-A: a\x01b",)),
    "a control byte in Accept": raw_request(headers=(b"Accept: text/html\x01",)),
    "a control byte in a cookie": raw_request(headers=(b"Cookie: a=\x01",)),
    "a control byte in the bypass header": raw_request(headers=(b"X-Bascule-Bypass: a\x01",)),
    "DEL in a header": raw_request(headers=(b"X-A: a\x7fb",)),
    "bytes that are not UTF-8": raw_request(headers=(b"X-A: \xff\xfe",)),
    "101 headers and a body": raw_request(headers=tuple(b"X-H%d: v" % i for i in range(101))),
    "18 KB of headers": raw_request(headers=tuple(b"X-H%d: " % i + b"v" * 3000 for i in range(6))),
    "a huge Accept": raw_request(headers=(b"Accept: " + b"text/html," * 1700,)),
    "a method of 33 bytes": raw_request(method=b"A" * 33, body=b""),
    "a method of 33 bytes and a body": raw_request(method=b"A" * 33),
    "a lower-case method": raw_request(method=b"post"),
    "a fragment after an open path": raw_request(b"GET", b"/healthz#/../admin", body=b""),
    "an encoded fragment": raw_request(b"GET", b"/healthz%23/../admin", body=b""),
    "a dot segment after an open path": raw_request(b"GET", b"/healthz/../admin", body=b""),
    "a URI of 9 KB": raw_request(b"GET", b"/admin?" + b"a" * 9000, body=b""),
    "an absolute URI": raw_request(b"GET", b"http://elsewhere.example/admin", body=b""),
    "a NUL byte, encoded": raw_request(b"GET", b"/admin%00", body=b""),
    "bytes that are not UTF-8 in the path": raw_request(b"GET", b"/\xff", body=b""),
    "its own X-Original-URI": raw_request(headers=(b"X-Original-URI: /healthz",)),
    "its own X-Forwarded-Uri": raw_request(headers=(b"X-Forwarded-Uri: /healthz",)),
    "an underscore X_Original_URI": raw_request(headers=(b"X_Original_URI: /healthz",)),
    "a folded header": raw_request(headers=(b"X-A: a", b" folded")),
    "two bypass headers": raw_request(headers=(b"X-Bascule-Bypass: a", b"X-Bascule-Bypass: b")),
    "a malformed bypass in the URL": raw_request(b"GET", b"/admin?bascule-bypass=%zz", body=b""),
    "sixty cookies": raw_request(headers=tuple(b"Cookie: c%d=v" % i for i in range(60))),
    "a chunked body": b"POST /admin HTTP/1.1\r\nHost: shop.example\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "HTTP/1.0 without a host": b"POST /admin HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    "OPTIONS *": b"OPTIONS * HTTP/1.1\r\nHost: shop.example\r\n\r\n",
    "CONNECT": b"CONNECT shop.example:80 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
    "HEAD": raw_request(b"HEAD", body=b""),
    "DELETE": raw_request(b"DELETE", body=b""),
}


def send_raw(url: str, request: bytes) -> bytes:
    """Send ``request`` as it is on a new connection to ``url``; the status line of the
    answer (empty when the server closed without one)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while b"\r\n" not in answer:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
    return answer.partition(b"\r\n")[0]


def check_hostile_requests(url: str, seen: Callable[[], list[tuple[str, str]]], mode: str) -> None:
    """Every HOSTILE request sent to ``url`` during maintenance in ``mode``: what reaches
    the application (``seen()``: method and target of each request it got) is at most an
    open path (/healthz), or, read-only, a request that changes nothing."""
    for name, request in HOSTILE.items():
        before = len(seen())
        status = send_raw(url, request)
        reached = seen()[before:]
        if mode == "read-only":
            allowed = [(m, t) for m, t in reached if m in ("GET", "HEAD", "OPTIONS")]
        else:
            allowed = [(m, t) for m, t in reached if t == "/healthz"]
        assert reached == allowed, f"{name}: {reached} reached the application ({status!r})"
