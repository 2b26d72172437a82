"""The gate: an ASGI middleware that refuses requests with 503 while maintenance is on.

Wrap any ASGI application in two lines::

    from bascule.gate import MaintenanceGate
    app = MaintenanceGate(app, "sqlite:///bascule.db")

The hot path reads one attribute of an in-memory monitor: no database query per
request. The monitor follows changes made by other processes in the background.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import string
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, AnyStr, cast

from starlette.types import ASGIApp, Receive, Scope, Send

from bascule import spec
from bascule.errors import MAINTENANCE_BODY

if TYPE_CHECKING:
    from bascule.maintenance import MaintenanceState
    from bascule.monitor import Monitor

WEBSOCKET_TRY_AGAIN_LATER = 1013
# How much of a request the refusal reads to choose between the page and the envelope.
ACCEPT_PREFIX = 1024
SCANNED_HEADERS = 64
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

DOCS_PREFIX = "/rest/v1"
DEFAULT_PAGE = Path(__file__).with_name("templates") / "maintenance.html"
# The operator console: its page at CONSOLE_PATH, its files at CONSOLE_PATH/<name>.
CONSOLE_DIR = Path(__file__).with_name("console")
CONSOLE_PATH = "/maintenance"
DEFAULT_MESSAGE = "Maintenance is in progress."
# A path segment made only of safe characters, never "." or "..".
_SEGMENT = re.compile(rb"[A-Za-z0-9_\-][A-Za-z0-9._\-]*")


class PathSet:
    """A set of paths matched whole: exact paths, plus prefixes followed by clean segments.

    Paths are compared as the client sent them (ASGI ``raw_path``), so percent-encoded
    forms, empty segments (``//``) and dot segments never match anything.
    """

    def __init__(self, exact: Iterable[str] = (), prefixes: Iterable[str] = ()) -> None:
        self.exact = frozenset(p.encode() for p in exact)
        self.prefixes = tuple(p.encode() for p in prefixes)
        for prefix in self.prefixes:
            if not prefix.endswith(b"/"):
                raise ValueError(f"a prefix must end with '/': {prefix!r}")
        # What every prefix starts with, for a first look cheaper than ``startswith`` with
        # a tuple: ``path[head_span] == head``. With no prefix, no head (nothing equals
        # None); prefixes that share no more than "/" let nearly every path past it.
        common = cast(bytes, os.path.commonprefix(self.prefixes))  # noqa: RUF071 (bytes, not paths)
        self.head: bytes | None = common if self.prefixes else None
        self.head_span = slice(0, len(common))

    def __contains__(self, path: bytes) -> bool:
        if path in self.exact:
            return True
        if not path.startswith(self.prefixes):  # one test for all prefixes: the usual case
            return False
        for prefix in self.prefixes:
            if path.startswith(prefix):
                tail = path[len(prefix) :]
                segments = tail.split(b"/")
                if segments[-1] == b"":  # one trailing slash is fine ("/ui/")
                    segments.pop()
                return all(_SEGMENT.fullmatch(s) for s in segments)
        return False


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


def bascule_paths() -> PathSet:
    """The paths Bascule answers itself, all of them open during maintenance."""
    exact = [*spec.served_paths(), f"{DOCS_PREFIX}/openapi.json", f"{DOCS_PREFIX}/openapi.yaml"]
    exact += [f"{DOCS_PREFIX}/ui", *console_files()]
    prefixes = [f"{base}/auth/" for base in spec.API_BASES] + [f"{DOCS_PREFIX}/ui/"]
    return PathSet(exact, prefixes)


def console_files() -> dict[str, Path]:
    """The console's files by the path they are served at (its page at CONSOLE_PATH)."""
    files = {CONSOLE_PATH: CONSOLE_DIR / "index.html"}
    files.update(
        {f"{CONSOLE_PATH}/{f.name}": f for f in sorted(CONSOLE_DIR.iterdir()) if f.is_file()}
    )
    return files


class MaintenanceGate:
    """ASGI middleware: while maintenance is on, answer 503 to every request not allowed.

    Built from a database URL, it follows that database from a thread of its own;
    given a monitor, whoever made the monitor starts and stops it.
    """

    def __init__(
        self,
        app: ASGIApp,
        database_url: str | None = None,
        *,
        monitor: Monitor | None = None,
        allow: Iterable[str] | PathSet = (),
        allow_prefixes: Iterable[str] = (),
        retry_after: int = 120,
        poll_interval: float = 0.25,
        page_template: str | Path | None = None,
        elsewhere: ASGIApp | None = None,
    ) -> None:
        page = Page(Path(page_template) if page_template else DEFAULT_PAGE, retry_after)
        if monitor is None:
            from bascule.service import follow

            monitor = follow(database_url, poll_interval)
        self.app = app
        # Where requests for paths not allowed go while maintenance is off (``app`` unless
        # told; the lifespan always goes to ``app``): routing here spares every such
        # request a second look at its path.
        self.elsewhere = app if elsewhere is None else elsewhere
        self.monitor = monitor
        if isinstance(allow, PathSet) and allow_prefixes:
            raise ValueError("allow_prefixes goes with a list of paths; a PathSet has its own")
        self._allowed = allow if isinstance(allow, PathSet) else PathSet(allow, allow_prefixes)
        # The hot path reads these without going through the PathSet (fewer lookups).
        self._exact = self._allowed.exact
        self._head, self._head_span = self._allowed.head, self._allowed.head_span
        self.page = page
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(MAINTENANCE_BODY)).encode()),
            (b"retry-after", str(retry_after).encode()),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.route(scope, receive, send)

    def route(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The awaitable that answers the request: the application's, or the refusal.

        The gate as an ASGI 3 callable of its own, for a server told so (uvicorn's
        ``interface="asgi3"``, as ``bascule serve`` does): a plain call that hands the
        server the answer's coroutine, instead of a coroutine of the gate's own that
        awaits it and that every await of the application passes through.
        """
        # The hot path of every request of the application behind. Kept flat on purpose:
        # each Python call here costs about 1% of a bare application's request.
        if scope["type"] == "lifespan":
            return self.app(scope, receive, send)
        path = scope.get("raw_path")
        if path is None or 63 in path:  # 63: QUERY_MARK, a literal here (no global lookup)
            path = request_path(scope)
        if path in self._exact or (path[self._head_span] == self._head and path in self._allowed):
            return self.app(scope, receive, send)
        if scope.get("root_path") and route_path(scope, path) in self._allowed:
            return self.app(scope, receive, send)
        if self.monitor.state is None:
            return self.elsewhere(scope, receive, send)
        if scope["type"] == "http":
            return self.refuse(scope, send)
        if scope["type"] == "websocket":
            return refuse_websocket(
                scope,
                receive,
                send,
                503,
                self._headers,
                MAINTENANCE_BODY,
                WEBSOCKET_TRY_AGAIN_LATER,
            )
        return self.elsewhere(scope, receive, send)

    async def refuse(self, scope: Scope, send: Send) -> None:
        """Answer 503: the maintenance page to a browser, the envelope to anyone else."""
        # Browsers send Accept among their first headers; a request with thousands of
        # headers (a server that lets them through) costs no more than one with a few.
        for name, value in scope["headers"][:SCANNED_HEADERS]:
            if name == b"accept":
                if prefers_html(value):
                    await self.refuse_with_page(scope, send)
                    return
                break
        await send({"type": "http.response.start", "status": 503, "headers": self._headers})
        await send(
            {
                "type": "http.response.body",
                "body": b"" if scope["method"] == "HEAD" else MAINTENANCE_BODY,
            }
        )

    def close(self) -> None:
        """Stop following the database (for a gate built from a URL)."""
        self.monitor.stop()
        self.monitor.store.close()

    async def refuse_with_page(self, scope: Scope, send: Send) -> None:
        """Send the 503 maintenance page (for a browser; API clients get the envelope)."""
        state = self.monitor.state
        body = self.page.render(state) if state is not None else MAINTENANCE_BODY
        media_type = b"text/html; charset=utf-8" if state is not None else b"application/json"
        headers = [
            (b"content-type", media_type),
            (b"content-length", str(len(body)).encode()),
            *self._headers[2:],
            *NOT_FRAMED,
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


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


def prefers_html(accept: bytes) -> bool:
    """Whether an Accept header ranks text/html above JSON (as browsers' do).

    ``*/*`` alone, no Accept, or JSON ranked as high all mean an API client. Only the
    first ACCEPT_PREFIX bytes are read (browsers send a few hundred), so that the cost
    is bounded whatever the header.
    """
    accept = accept[:ACCEPT_PREFIX]
    if accept.lower().find(b"html") == -1:  # not "in": see QUERY_MARK
        return False
    from werkzeug.datastructures import MIMEAccept
    from werkzeug.http import parse_accept_header

    ranked = parse_accept_header(accept.decode("latin-1"), MIMEAccept)
    html_q = max(ranked.quality("text/html"), ranked.quality("application/xhtml+xml"))
    json_q = max(
        [ranked.quality("application/json")]
        + [q for media, q in ranked if media.lower().endswith("+json")]
    )
    return html_q > 0 and html_q > json_q


class Page:
    """The maintenance page for browsers: a template, rendered once per state."""

    def __init__(self, template: Path, retry_after: int) -> None:
        try:
            self.template = string.Template(template.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read the page template {template}: {exc.strerror}") from None
        self.retry_after = retry_after
        self._cache: tuple[object, bytes] | None = None

    def render(self, state: MaintenanceState) -> bytes:
        """The page for ``state`` (rendered again only when the state changes)."""
        cached = self._cache
        if cached is not None and cached[0] is state:
            return cached[1]
        since = datetime.datetime.fromtimestamp(state.started_at / 1000, tz=datetime.UTC)
        progress = state.progress_percent
        minutes = max(1, round(self.retry_after / 60))
        values = {
            "message": state.log[-1].message if state.log else DEFAULT_MESSAGE,
            "progress": str(progress or 0),
            "progress_text": f"{progress}%" if progress is not None else "unknown",
            "since_iso": since.isoformat(timespec="seconds"),
            "since_text": since.strftime("%Y-%m-%d %H:%M UTC"),
            "retry_after": str(self.retry_after),
            "retry_after_text": f"{minutes} minute{'s' if minutes > 1 else ''}",
            "poll_seconds": str(max(1, min(5, self.retry_after))),
        }
        body = self.template.safe_substitute(
            {name: html.escape(value) for name, value in values.items()}
        ).encode()
        self._cache = (state, body)
        return body
