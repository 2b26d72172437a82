"""The ASGI exchange, as the gate and what stands behind it need it: the request's path
as sent, and answers sent whole. Standard library and Starlette's types only."""

from __future__ import annotations

import json
from typing import AnyStr

from starlette.types import Receive, Scope, Send

WEBSOCKET_TRY_AGAIN_LATER = 1013
WEBSOCKET_MAX_REASON = 123
# "?" as an int: ``int in bytes`` is a plain byte search, where ``bytes in bytes`` makes
# CPython raise and clear a TypeError first (about 1,700 instructions, on every request).
QUERY_MARK = ord("?")

# Every HTML answer: never inside another site's frame, never sniffed as another type.
NOT_FRAMED = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


def request_path(scope: Scope) -> bytes:
    """The path exactly as the client sent it, without the query string."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        path: str = scope["path"]
        return path.encode("utf-8", "surrogateescape")
    return raw.partition(b"?")[0] if QUERY_MARK in raw else raw  # some servers keep the query


def route_path(scope: Scope, path: AnyStr) -> AnyStr:
    """``path`` without the server's ``root_path`` (the prefix a proxy in front removed)."""
    root: str = scope.get("root_path") or ""
    if not root:
        return path
    if isinstance(path, str):
        tail = path.removeprefix(root)
        return tail if len(tail) < len(path) and tail[:1] == "/" else path
    raw_tail = path.removeprefix(root.encode("utf-8", "surrogateescape"))
    return raw_tail if len(raw_tail) < len(path) and raw_tail[:1] == b"/" else path


def without_cookie(
    headers: list[tuple[bytes, bytes]], cookie: bytes, drop: tuple[bytes, ...] = ()
) -> list[tuple[bytes, bytes]]:
    """``headers`` without the cookie named ``cookie`` (a Cookie header left empty goes)
    and without the headers named in ``drop``."""
    kept = []
    for name, value in headers:
        if name in drop:
            continue
        if name == b"cookie" and value.find(cookie) != -1:
            pairs = [p for p in value.split(b";") if p.partition(b"=")[0].strip() != cookie]
            if not pairs:
                continue
            value = b";".join(pairs).strip()
        kept.append((name, value))
    return kept


async def send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """Send a whole answer."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def refuse_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    close_code: int,
) -> None:
    """Refuse a WebSocket handshake with an HTTP answer, where the server can send one.

    Through the ASGI denial-response extension (uvicorn has it) the client reads
    ``status``, ``headers`` and ``body``; elsewhere the connection is accepted and
    closed at once with ``close_code``, since closing before accepting reaches the
    client as a bare 403.
    """
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    reason = json.loads(body)["error"]["message"]
    # A close frame carries at most 123 bytes of reason.
    reason = reason.encode()[:WEBSOCKET_MAX_REASON].decode(errors="ignore")
    await send({"type": "websocket.close", "code": close_code, "reason": reason})
