"""The small middleware in front of the API, each placed in connexion's stack where it
needs to be, and each refusing by raising ``Refusal``: errors.py answers it, as it
answers every other error."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bascule import spec
from bascule.answers import CROSS_ORIGIN, MAX_BODY, TOO_LARGE, Code
from bascule.auth import DEVICE_COOKIE
from bascule.errors import Refusal
from bascule.exchange import NOT_FRAMED, route_path, without_cookie

if TYPE_CHECKING:
    from bascule.service import Services

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AttachServices:
    """Makes the application's services reachable from the request's handlers, and what
    routing finds reachable from the error handlers."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            self.services.attach(scope)
            # Routing records the operation in scope["extensions"], in a copy of the scope,
            # making that dict when the server gave none (uvicorn gives none): made here,
            # before any copy, it is the one the error handlers see too.
            scope.setdefault("extensions", {})
        await self.app(scope, receive, send)


class NotFramed:
    """Adds the NOT_FRAMED headers to every answer under ``prefix`` (connexion's Swagger UI)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not route_path(scope, scope["path"]).startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_not_framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *NOT_FRAMED]}
            await send(message)

        await self.app(scope, receive, send_not_framed)


class RefuseCrossOrigin:
    """Refuses a browser's request that a page of another site sent to change something:
    a session cookie must not let any page act with the user's rights."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and cross_origin(scope["headers"])
        ):
            raise Refusal(403, Code.UNAUTHORIZED, CROSS_ORIGIN)
        await self.app(scope, receive, send)


class ReadBody:
    """Reads an operation's body whole, at most MAX_BODY bytes, before connexion does.

    Hand-written because connexion reads only bodies sent with a Content-Length
    (connexion #2020): a chunked one is read here, and handed on with its length. A
    body sent without Content-Type is given the operation's declared one, as connexion's
    validation reads it. A client that leaves mid-body is logged in one line and gets
    no answer. Placed after routing: the operation connexion found says what it takes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        routing = scope.get("extensions", {}).get("connexion_routing", {})
        media_types = consumes(routing.get("operation_id"))
        if scope["type"] != "http" or not media_types:
            await self.app(scope, receive, send)
            return
        declared = content_length(scope)
        if declared is not None and declared > MAX_BODY:
            raise Refusal(413, Code.BAD_PARAMETER, TOO_LARGE)
        body = await read_body(receive, MAX_BODY)
        if body is None:
            log.info(
                "%s %s: the client left before sending its whole body",
                scope["method"],
                scope["path"],
            )
            return
        if len(body) > MAX_BODY:
            raise Refusal(413, Code.BAD_PARAMETER, TOO_LARGE)
        headers = scope["headers"]
        if declared is None:
            headers = [*headers, (b"content-length", str(len(body)).encode())]
        if not any(name == b"content-type" for name, _ in headers):
            headers = [*headers, (b"content-type", media_types[0].encode())]
        await self.app({**scope, "headers": headers}, replay(body, receive), send)


@functools.cache
def consumes(operation_id: str | None) -> tuple[str, ...]:
    """The media types the routed operation takes as its body (none for no operation)."""
    return tuple(spec.consumes(operation_id)) if operation_id else ()


def without_session_cookie(app: ASGIApp) -> ASGIApp:
    """``app``, never handed Bascule's session cookie, nor the device cookie of a browser
    that signed in: they are credentials for Bascule, which a mounted application has no
    use for and must not be able to log or replay."""
    cookies = (spec.SESSION_COOKIE.encode(), DEVICE_COOKIE.encode())
    markers = tuple(cookie + b"=" for cookie in cookies)

    def route(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain call, like the gate's route: no coroutine of its own per request.
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        for name, value in headers:
            if name == b"cookie" and (value.find(markers[0]) != -1 or value.find(markers[1]) != -1):
                for cookie in cookies:
                    headers = without_cookie(headers, cookie)
                scope = {**scope, "headers": headers}
                break
        return app(scope, receive, send)

    return route


def cross_origin(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a browser says that a page of another origin sent this request.

    ``Sec-Fetch-Site`` when the browser sends it (current ones do, to HTTPS and
    localhost), else ``Origin`` against ``Host`` or a proxy's ``X-Forwarded-Host``
    (a page cannot set either on a request to another site); a client that is not
    a browser sends neither ``Sec-Fetch-Site`` nor ``Origin``.
    """
    fetch_site = origin = None
    hosts = set()
    for name, value in headers:
        if name == b"sec-fetch-site":
            fetch_site = value
        elif name == b"origin":
            origin = value
        elif name == b"host":
            hosts.add(value.decode("latin-1").strip().lower())
        elif name == b"x-forwarded-host":
            hosts.add(value.decode("latin-1").split(",")[0].strip().lower())
    if fetch_site is not None:
        return fetch_site not in (b"same-origin", b"none")
    if origin is None:
        return False
    return urlsplit(origin.decode("latin-1")).netloc.lower() not in hosts


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or its first ``limit + 1`` bytes when it is longer;
    None when the client left before sending all of it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)[: limit + 1]


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` whole, then whatever the server sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_again() -> Message:
        return pending.pop() if pending else await receive()

    return receive_again


def content_length(scope: Scope) -> int | None:
    """The declared Content-Length, if any and well-formed."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
