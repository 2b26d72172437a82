"""nginx's recipe, through the real nginx: the scenario, what Bascule is asked, the
application's own refusals and errors passed through as they are, and failing open."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bascule.proxies import Recipe, write
from tests.conftest import ADMIN_PASSWORD
from tests.proxying import ADMIN, API_CLIENT, behind, exercise, get, listening
from tests.serving import Server, clean_env, free_port, serving, stop
from tests.waiting import until

pytestmark = pytest.mark.slow

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

        do_GET = do_POST = do_HEAD = handle_one

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
    proxy: str, tmp_path: Path, upstream: str, bascule: str, timeout: float = 1.0
) -> Iterator[str]:
    """``proxy`` run on its recipe in front of ``upstream``, asking ``bascule``: its URL."""
    port = free_port()
    directory = tmp_path / f"{proxy}-{port}"
    command = write(proxy, Recipe("127.0.0.1", port, upstream, bascule, timeout), directory)
    log = tmp_path / f"{proxy}-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=clean_env(), cwd=directory
        )
    try:
        until(
            lambda: process.poll() is None and listening(port),
            20.0,
            f"{proxy} to listen ({log.read_text()[-2000:]})",
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@contextmanager
def live_bascule(tmp_path: Path) -> Iterator[Server]:
    with serving(
        f"sqlite:///{tmp_path}/bascule.db",
        tmp_path,
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
            },
            content=b"quantity=2",
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        assert "x-bascule-bypassed" not in answer.headers
        (question,) = bascule.seen
        (request,) = app.seen
        return question, request


def test_the_scenario(tmp_path):
    with behind("nginx", tmp_path) as proxied:
        exercise(proxied)


def test_what_bascule_is_asked(tmp_path):
    question, request = asked("nginx", tmp_path)
    assert (question.method, question.target) == ("GET", "/rest/v1/gate?deny=403")
    assert question.headers["x-original-uri"] == "/cart/add?item=7"
    assert question.headers["x-original-method"] == "POST"
    assert "x-forwarded-uri" not in question.headers
    assert question.headers["accept"] == "text/html"
    assert question.headers["cookie"] == "bascule-bypass=abc; other=1"
    assert question.headers["x-bascule-bypass"] == "token"
    assert question.body == b"" and "content-length" not in question.headers
    assert (request.method, request.target, request.body) == (
        "POST",
        "/cart/add?item=7",
        b"quantity=2",
    )
    assert "x-bascule-bypass" not in request.headers
    assert "x-bascule-bypassed" not in request.headers


def test_the_applications_answers_pass_through(tmp_path):
    check_application_answers("nginx", tmp_path)


def test_a_slow_bascule_fails_open(tmp_path):
    check_slow_bascule("nginx", tmp_path)
