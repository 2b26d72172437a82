"""Hostile clients against `bascule serve`: headers too large or too many get a clear 431,
and connections that do not finish their request within the bound are closed."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time

import httpx
import pytest

from bascule.protocol import MAX_HEADER_BYTES, MAX_HEADERS
from tests.serving import serving

TIMEOUT = 1.0  # BASCULE_HEADER_TIMEOUT for these tests (10 s by default)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(database_url, tmp_path):
    env = {"BASCULE_ADMIN_PASSWORD": "admin-secret-1", "BASCULE_HEADER_TIMEOUT": str(TIMEOUT)}
    with serving(database_url, tmp_path, env=env) as server:
        yield server


def connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def answer(sock: socket.socket) -> tuple[int, bytes, float]:
    """Read until the server closes: the status, the body, and how long it took."""
    start = time.monotonic()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    took = time.monotonic() - start
    if not data:
        return 0, b"", took
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, took


def request(*headers: str, path: str = "/rest/v1/admin/health") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    "headers",
    [
        ["X-Big: " + "a" * 1_000_000],
        ["X-Big: " + "a" * (MAX_HEADER_BYTES + 1)],
        [f"X-{i}: y" for i in range(20_000)],
        [f"X-{i}: y" for i in range(MAX_HEADERS + 1)],
        [*(f"X-{i}: y" for i in range(MAX_HEADERS)), "Content-Length: 2"],
        ["Accept: " + "a," * 20_000],
    ],
    ids=["1-MB", "just-over", "20000-headers", "one-too-many", "with-a-body", "huge-accept"],
)
def test_headers_too_large_or_too_many_get_431_in_the_envelope(server, headers):
    with connect(server) as sock:
        # refused before all of it was sent: the answer is waiting anyway
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request(*headers) + (b"{}" if "Content-Length: 2" in headers else b""))
        status, body, _ = answer(sock)
    assert status == 431
    assert json.loads(body)["error"]["code"] == 501
    assert httpx.get(f"{server.url}/rest/v1/admin/health").status_code == 200  # unhurt
    assert "WARNING" not in server.output() and "ERROR" not in server.output()


@pytest.mark.parametrize(
    "headers",
    [["X-A: a\x01b"], ["Accept: text/html\x7f"], ["X_Underscore: \x00"]],
    ids=["control-byte", "del", "nul"],
)
def test_a_request_that_is_not_http_gets_400_in_the_envelope(server, headers):
    with connect(server) as sock:
        sock.sendall(request(*headers))
        status, body, _ = answer(sock)
    assert status == 400
    assert json.loads(body)["error"] == {
        "code": 501,
        "message": "The request is not valid HTTP/1.1.",
    }


def test_headers_within_the_bounds_are_served(server):
    big = "X-Big: " + "a" * (MAX_HEADER_BYTES - 500)
    many = [f"X-{i}: y" for i in range(MAX_HEADERS - 5)]
    for headers in ([big], many):
        with connect(server) as sock:
            sock.sendall(request(*headers))
            assert answer(sock)[0] == 200


def test_a_client_trickling_its_headers_is_closed_at_the_bound(server):
    with connect(server) as sock:
        sock.sendall(b"GET /rest/v1/admin/health HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        for i in range(int(TIMEOUT * 10)):  # a header line every 0.3 s, for 3 s at most
            try:
                sock.sendall(f"X-{i}: y\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                break  # closed by the server
            if select.select([sock], [], [], 0.3)[0]:
                break  # the server answered (and closes)
        status, _, _ = answer(sock)
        closed = time.monotonic() - start
    assert closed < TIMEOUT + 1.0
    assert status in (408, 0)  # 0: the 408 was lost to the reset of a client still writing


def test_a_connection_that_sends_nothing_is_closed_at_the_bound(server):
    with connect(server) as sock:
        status, body, took = answer(sock)
    assert status == 408
    assert json.loads(body)["error"]["code"] == 501
    assert TIMEOUT - 0.2 < took < TIMEOUT + 1.0


def test_a_body_that_does_not_come_is_closed_at_the_bound(server):
    with connect(server) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            b"username=ad"
        )
        status, _, took = answer(sock)
    assert status == 0  # closed: the client is gone for Bascule, nothing is answered
    assert took < TIMEOUT + 2.0


def test_keep_alive_connections_are_not_cut(server):
    with httpx.Client(timeout=10) as client:
        for _ in range(3):  # one connection, kept alive over pauses within uvicorn's 5 s
            assert client.get(f"{server.url}/rest/v1/admin/health").status_code == 200
            time.sleep(TIMEOUT * 0.8)


SLOW_APP = f"""
import asyncio

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep({TIMEOUT * 2})  # slower than the bound, before reading the body
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": str(size).encode()}})
"""


def test_an_application_slower_than_the_bound_is_not_cut(database_url, tmp_path):
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    env = {"BASCULE_ADMIN_PASSWORD": "admin-secret-1", "BASCULE_HEADER_TIMEOUT": str(TIMEOUT)}
    with serving(database_url, tmp_path, "--app", "slowapp:app", env=env) as server:
        body = b"x" * 300_000  # more than uvicorn buffers: reading pauses until the app reads
        response = httpx.post(f"{server.url}/upload", content=body, timeout=30)
        assert (response.status_code, response.text) == (200, str(len(body)))
