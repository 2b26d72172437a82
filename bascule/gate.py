"""The gate: an ASGI middleware that refuses requests with 503 while maintenance is on.

Wrap any ASGI application in two lines::

    from bascule.gate import MaintenanceGate
    app = MaintenanceGate(app, "sqlite:///bascule.db")

The hot path reads one attribute of an in-memory monitor: no database query per
request. The monitor follows changes made by other processes in the background.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import string
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, AnyStr, cast
from urllib.parse import quote, unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bascule import spec
from bascule.config import MAX_RETRY_AFTER
from bascule.errors import MAINTENANCE_BODY, READ_ONLY_BODY
from bascule.model import READ_METHODS, READ_ONLY, now_ms, utc

if TYPE_CHECKING:
    from bascule.bypass import TokenSet, Valid
    from bascule.model import MaintenanceState
    from bascule.monitor import Monitor

log = logging.getLogger(__name__)

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

    def __init__(
        self,
        exact: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        parameters: Iterable[str] = (),
    ) -> None:
        self.exact = frozenset(p.encode() for p in exact)
        # Prefixes followed by one segment of any characters: those of a path parameter
        # of Bascule's own API (a token's name), which only ever reaches Bascule's router.
        self.parameters = tuple(p.encode() for p in parameters)
        self.prefixes = tuple(p.encode() for p in prefixes) + self.parameters
        for prefix in self.prefixes:
            if not prefix.endswith(b"/"):
                raise ValueError(f"a prefix must end with '/': {prefix!r}")

    def __contains__(self, path: bytes) -> bool:
        return path in self.exact or self.under_prefix(path)

    def under_prefix(self, path: bytes) -> bool:
        """Whether ``path`` is one of the prefixes followed by clean segments."""
        if not path.startswith(self.prefixes):  # one test for all prefixes: the usual case
            return False
        for prefix in self.parameters:
            if path.startswith(prefix) and path.find(b"/", len(prefix)) == -1:
                return len(path) > len(prefix)
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
    """The paths Bascule answers itself, all of them open during maintenance (a path
    with a parameter, such as a token's name, opens the prefix before it)."""
    served = spec.served_paths()
    exact = [p for p in served if "{" not in p]
    exact += [f"{DOCS_PREFIX}/openapi.json", f"{DOCS_PREFIX}/openapi.yaml"]
    exact += [f"{DOCS_PREFIX}/ui", *console_files()]
    prefixes = [f"{base}/auth/" for base in spec.API_BASES] + [f"{DOCS_PREFIX}/ui/"]
    parameters = sorted({p.partition("{")[0] for p in served if "{" in p})
    return PathSet(exact, prefixes, parameters)


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
    given a monitor, whoever made the monitor starts and stops it. ``allow`` and
    ``allow_prefixes`` keep paths of the application open; a request with a valid
    bypass token passes too, and its answer says so (``X-Bascule-Bypassed``).
    """

    def __init__(
        self,
        app: ASGIApp,
        database_url: str | None = None,
        *,
        monitor: Monitor | None = None,
        allow: Iterable[str] = (),
        allow_prefixes: Iterable[str] = (),
        retry_after: int = 120,
        poll_interval: float = 0.25,
        page_template: str | Path | None = None,
        elsewhere: ASGIApp | None = None,
        own: PathSet | None = None,
        decision_paths: Iterable[str] = (),
        refusals: RefusalLog | None = None,
    ) -> None:
        page = Page(Path(page_template) if page_template else DEFAULT_PAGE, retry_after)
        if monitor is None:
            from bascule.service import follow

            monitor = follow(database_url, poll_interval)
        self.app = app
        # Where requests for paths not open go while maintenance is off, and those of the
        # application's open paths always (``app`` unless told; ``app`` gets ``own``
        # paths and the lifespan): routing here spares each request a second look.
        self.elsewhere = app if elsewhere is None else elsewhere
        self.monitor = monitor
        self.open = PathSet(allow, allow_prefixes)  # the application's own open paths
        self.own = own or PathSet()  # the paths ``app`` answers itself (Bascule's)
        # One lookup for an exact path: who answers it.
        self._exact: dict[bytes, Callable[..., Awaitable[None]]] = dict.fromkeys(
            self.open.exact, self.elsewhere
        )
        self._exact.update(dict.fromkeys(self.own.exact, app))
        self._exact.update(dict.fromkeys((p.encode() for p in decision_paths), self.decide))
        # What every prefix starts with: a first look cheaper than ``startswith`` with a
        # tuple (``path[head_span] == head``); with no prefix, no head (nothing equals None).
        prefixes = (*self.own.prefixes, *self.open.prefixes)
        common = cast(bytes, os.path.commonprefix(prefixes))  # noqa: RUF071 (bytes, not paths)
        self._head: bytes | None = common if prefixes else None
        self._head_span = slice(0, len(common))
        self.page = page
        self.refusals = refusals
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(MAINTENANCE_BODY)).encode()),
            (b"retry-after", str(retry_after).encode()),
            (b"cache-control", b"no-store"),
        ]
        self._read_only_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(READ_ONLY_BODY)).encode()),
            *self._headers[2:],
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
        if (
            self.monitor.bypass.by_hash  # tokens exist: a URL may hold one
            and scope["type"] == "http"
            and scope["query_string"].find(BYPASS_PARAM) != -1
        ):
            taken = self.take_url_token(scope)
            if taken is not None:
                return send_whole(send, *taken)
        path = scope.get("raw_path")
        if path is None or 63 in path:  # 63: QUERY_MARK, a literal here (no global lookup)
            path = request_path(scope)
        target = self._exact.get(path)
        if target is None and path[self._head_span] == self._head:
            target = self._prefixed(path)
        if target is None and scope.get("root_path"):
            tail = route_path(scope, path)
            target = self._exact.get(tail) or self._prefixed(tail)
        if target is not None:
            return target(scope, receive, send)
        state = self.monitor.state
        if state is None:
            return self.elsewhere(scope, receive, send)
        if scope["type"] == "http":
            if state.mode == READ_ONLY and scope["method"] in READ_METHODS:
                return self.elsewhere(
                    {**scope, "headers": without_bypass(scope["headers"])}, receive, send
                )
            return self.refuse(scope, receive, send, path)
        if scope["type"] == "websocket":
            return refuse_websocket(
                scope,
                receive,
                send,
                503,
                self._timed(state, self._headers),
                MAINTENANCE_BODY,
                WEBSOCKET_TRY_AGAIN_LATER,
            )
        return self.elsewhere(scope, receive, send)

    def _prefixed(self, path: bytes) -> Callable[..., Awaitable[None]] | None:
        if self.own.under_prefix(path):
            return self.app
        if self.open.under_prefix(path):
            return self.elsewhere
        return None

    def take_url_token(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """The 303 that takes a valid bypass token out of the request's URL, back to the
        same URL with the token in a cookie; None when the URL holds no valid token.

        Whatever the mode, maintenance on or off, an open path or not: the token never
        reaches the application, nor an access log (the request's query is replaced)."""
        found, token, query = url_bypass(scope["query_string"], self.monitor.bypass)
        if found is None:
            return None
        self.monitor.note_bypass(found.name)
        scope["query_string"] = query  # the access log must not show the token
        root = (scope.get("root_path") or "").encode()
        location = root + request_path(scope) + (b"?" + query if query else b"")
        secure = scope.get("scheme") == "https"
        return bypass_redirect(location, token, found, secure, self.monitor.bypass.clock())

    async def refuse(self, scope: Scope, receive: Receive, send: Send, path: bytes) -> None:
        """Answer 503 (the page to a browser, the envelope to anyone else), unless the
        request carries a valid bypass token in a header or a cookie: then it goes
        through. ``path`` is the request's, as sent."""
        bypass = self.monitor.bypass
        if bypass.by_hash:  # tokens exist: look for one (never logged)
            found = header_bypass(scope["headers"][:SCANNED_HEADERS], bypass)
            if found is not None:
                self.monitor.note_bypass(found.name)
                await self.elsewhere(
                    {**scope, "headers": without_bypass(scope["headers"])},
                    receive,
                    marked(send, found.name),
                )
                return
        if self.refusals is not None:
            self.refusals.count(path)
            scope["bascule.refused"] = True  # for the access log: counted, not written
        status, headers, body = self.refusal(scope["headers"], scope["method"] == "HEAD")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def refusal(
        self, headers: list[tuple[bytes, bytes]], head: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The 503 a visitor sees: the page to a browser, the envelope to anyone else."""
        state = self.monitor.state
        # Browsers send Accept among their first headers; a request with thousands of
        # headers (a server that lets them through) costs no more than one with a few.
        for name, value in headers[:SCANNED_HEADERS]:
            if name == b"accept":
                if state is not None and prefers_html(value):
                    body = self.page.render(state, self.monitor.now)
                    page_headers = [
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        *self._timed(state, self._headers[2:]),
                        *NOT_FRAMED,
                    ]
                    return 503, page_headers, b"" if head else body
                break
        if state is not None and state.mode == READ_ONLY:
            return 503, self._timed(state, self._read_only_headers), b"" if head else READ_ONLY_BODY
        return 503, self._timed(state, self._headers), b"" if head else MAINTENANCE_BODY

    def _timed(
        self, state: MaintenanceState | None, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """``headers``, with the time left to a planned end as Retry-After, if any."""
        if state is None or state.planned_end is None:
            return headers
        seconds = retry_after(state, self.page.retry_after, self.monitor.now())
        return [(n, str(seconds).encode() if n == b"retry-after" else v) for n, v in headers]

    def decide(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The decision endpoint: whether a reverse proxy may let the request it names
        (``X-Original-URI`` or ``X-Forwarded-Uri``) through; the same decision as the
        gate's for that request, with the answer a visitor must see when it does not.
        A plain call returning the answer's coroutine, as ``route``: it is as hot."""
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD"):
            return send_whole(send, 405, *not_allowed())
        monitor, query = self.monitor, scope["query_string"]
        state = monitor.state
        if query in PLAIN_QUERIES and (
            state is None
            or (
                not (self.open.exact or self.open.prefixes or monitor.bypass.by_hash)
                and state.mode != READ_ONLY
            )
        ):
            # The common cases, kept short: maintenance off, or on with nothing that could
            # let this request through: the answer does not depend on the request named,
            # once its headers are within what the contract allows.
            named = b"/"
            for name, value in scope["headers"]:
                if name in TOLD:
                    if len(value) > TOLD[name]:
                        return send_whole(send, *self.decision(scope))
                    if name[-3:] == b"uri":
                        named = value
            if state is None:
                if monitor.bypass.by_hash and named.find(BYPASS_PARAM) != -1:
                    return send_whole(send, *self.decision(scope))  # a token to take out
                return send_whole(send, 200, ALLOWED_OFF, b"")
            if self.refusals is not None:
                self.refusals.count(split_uri(named)[0])
                scope["bascule.refused"] = True
            if query:
                return send_whole(send, int(query[-3:]), DENIED, b"")
            status, headers, body = self.refusal(scope["headers"], scope["method"] == "HEAD")
            return send_whole(send, status, headers, body)
        status, headers, body = self.decision(scope)
        if status in (401, 403, 503) and self.refusals is not None:
            scope["bascule.refused"] = True  # counted by decision(), not written one by one
        return send_whole(send, status, headers, b"" if scope["method"] == "HEAD" else body)

    def decision(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """What the decision endpoint answers (see ``decide``)."""
        # Every header (the server bounds their number): a proxy may sort them, and a
        # visitor's padding must not push the one that names the request out of sight.
        headers = scope["headers"]
        uris: set[bytes] = set()
        methods: set[bytes] = set()
        forwarded_https = False
        deny = None
        for name, value in headers:
            if name in (b"x-original-method", b"x-forwarded-method"):
                if len(value) > MAX_METHOD:
                    return 400, *bad_request(METHOD_TOO_LONG)
                methods.add(value.strip().upper())
            elif name in (b"x-original-uri", b"x-forwarded-uri"):
                if len(value) > MAX_URI:
                    return 400, *bad_request(URI_TOO_LONG)
                uris.add(value.strip())
            elif name == b"x-forwarded-proto":
                forwarded_https = value.strip().lower() == b"https"
        # Told twice, and not the same: a visitor's header beside the proxy's. Then the
        # method is unknown (a read-only maintenance refuses it) and the path not open.
        method = methods.pop() if len(methods) == 1 else b""
        uri = uris.pop() if len(uris) == 1 else None
        for key, _, value in (p.partition(b"=") for p in scope["query_string"].split(b"&")):
            if key == b"deny":
                if value not in (b"401", b"403"):
                    return 400, *bad_request(BAD_DENY)
                deny = int(value)
        path, query = split_uri(b"/" if uri is None and not uris else uri or b"")
        monitor = self.monitor
        bypass = monitor.bypass
        # A valid token in the URL is taken out of it in every mode, maintenance on or
        # off: the application and the logs behind the proxy never see it. Asked with
        # ``deny``, the proxy is refused first: it asks again without, for the 303.
        if bypass.by_hash and query.find(BYPASS_PARAM) != -1:
            found, token, rest = url_bypass(query, bypass)
            if found is not None:
                if deny is not None:
                    return deny, DENIED, b""
                monitor.note_bypass(found.name)  # counted once: on the answer that uses it
                location = path + (b"?" + rest if rest else b"")
                return bypass_redirect(location, token, found, forwarded_https, bypass.clock())
        state = monitor.state
        if state is None:
            return 200, ALLOWED_OFF, b""
        # A URI holding "#" (which no browser sends) opens no path: the application may
        # read it whole, where Bascule would read up to the "#".
        if uri is not None and uri.find(b"#") == -1 and path in self.open:
            return 200, ALLOWED, b""
        if state.mode == READ_ONLY and method.decode("latin-1") in READ_METHODS:
            return 200, ALLOWED, b""
        if bypass.by_hash:
            found = header_bypass(headers, bypass)
            if found is not None:
                monitor.note_bypass(found.name)
                return 200, [*ALLOWED, (BYPASSED, found.name.encode())], b""
        if deny is not None:
            return deny, DENIED, b""
        if self.refusals is not None:
            self.refusals.count(path)
        return self.refusal(scope["headers"], False)

    def close(self) -> None:
        """Stop following the database (for a gate built from a URL)."""
        self.monitor.stop()
        self.monitor.store.close()


# The decision endpoint's answers: let through, refused (for a proxy that asked for a
# status it honours), and a question it cannot answer.
BYPASSED = b"x-bascule-bypassed"
ALLOWED = DENIED = [(b"content-length", b"0"), (b"cache-control", b"no-store")]
# Let through because maintenance is off: the one answer that holds for any request,
# which nginx's recipe keeps for a tenth of a second at most (its cache key changes
# that often). X-Accel-Expires comes first: nginx 1.22 obeys it over no-store only then;
# other caches still read no-store. Every other answer has no X-Accel-Expires, and nginx
# keeps nothing without it.
ALLOWED_OFF = [(b"x-accel-expires", b"1"), *ALLOWED]
MAX_URI = 8192
MAX_METHOD = 32
# The queries that ask nothing of the decision but, at most, the status of a refusal.
PLAIN_QUERIES = frozenset({b"", b"deny=401", b"deny=403"})
# The headers that name the request to decide on, and the longest each may be.
TOLD = dict.fromkeys((b"x-original-uri", b"x-forwarded-uri"), MAX_URI)
TOLD |= dict.fromkeys((b"x-original-method", b"x-forwarded-method"), MAX_METHOD)
METHOD_TOO_LONG = f"The method to decide on is longer than {MAX_METHOD} bytes."
BAD_DENY = "deny takes 401 or 403: the status a refusal gets instead of 503."
URI_TOO_LONG = f"The URI to decide on is longer than {MAX_URI} bytes."
BYPASS_HEADER = b"x-bascule-bypass"
BYPASS_COOKIE = b"bascule-bypass"
BYPASS_PARAM = b"bascule-bypass"


def split_uri(uri: bytes) -> tuple[bytes, bytes]:
    """The path and the query of a request's URI, as a proxy names it: its path and
    query (a path not starting with '/' read as if it did), or its whole URL."""
    uri = uri.strip()
    scheme, sep, rest = uri.partition(b"://")
    if sep and scheme.isalpha():
        uri = b"/" + rest.partition(b"/")[2]
    path, _, query = uri.partition(b"?")
    path = path.partition(b"#")[0]
    return path if path.startswith(b"/") else b"/" + path, query


def not_allowed() -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of the decision endpoint's 405."""
    from bascule.errors import NOT_ALLOWED

    headers, body = bad_request(NOT_ALLOWED)
    return [*headers, (b"allow", b"GET, HEAD")], body


def bad_request(message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a 400 in the envelope."""
    from bascule.errors import Code, encoded, error_envelope

    body = encoded(error_envelope(Code.BAD_PARAMETER, message))
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))], body


def header_bypass(headers: list[tuple[bytes, bytes]], tokens: TokenSet) -> Valid | None:
    """The valid bypass token a request carries in the X-Bascule-Bypass header or the
    bascule-bypass cookie, if any."""
    for name, value in headers:
        found = None
        if name == BYPASS_HEADER:
            found = tokens.find(value.strip())
        elif name == b"cookie" and value.find(BYPASS_COOKIE) != -1:
            for pair in value.split(b";"):
                key, _, token = pair.strip().partition(b"=")
                if key == BYPASS_COOKIE:
                    found = tokens.find(token)
                    break
        if found is not None:
            return found
    return None


def url_bypass(query: bytes, tokens: TokenSet) -> tuple[Valid | None, bytes, bytes]:
    """The valid bypass token of a query's bascule-bypass parameter, if any; with the
    token as it was written there, and the query without it."""
    pairs = query.split(b"&")
    for index, pair in enumerate(pairs):
        key, _, token = pair.partition(b"=")
        if key == BYPASS_PARAM:
            found = tokens.find(unquote_to_bytes(token))
            if found is not None:
                return found, token, b"&".join(pairs[:index] + pairs[index + 1 :])
    return None, b"", query


def bypass_redirect(
    location: bytes, token: bytes, found: Valid, secure: bool, now: int
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer to a token in a URL: back to the URL without it, with a cookie that
    lets the browser walk the whole application until the token expires."""
    location = b"/" + location.lstrip(b"/")  # "//evil.example/x" is another site
    max_age = max(0, (found.expires_at - now) // 1000)
    cookie = b"%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax" % (
        BYPASS_COOKIE,
        unquote_to_bytes(token),
        max_age,
    )
    headers = [
        (b"location", location),
        (b"set-cookie", cookie + (b"; Secure" if secure else b"")),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),  # the URL held the token
        (BYPASSED, found.name.encode()),
        (b"content-length", b"0"),
    ]
    return 303, headers, b""


def without_bypass(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers without its bypass token (and without a visitor's own
    X-Bascule-Bypassed): the application has no use for the token and must not be able
    to log or replay it."""
    return without_cookie(headers, BYPASS_COOKIE, (BYPASS_HEADER, BYPASSED))


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


def marked(send: Send, name: str) -> Send:
    """A ``send`` that says, in the answer's headers, which bypass token let it through."""
    header = (BYPASSED, name.encode())

    async def send_marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return send_marked


async def send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """Send a whole answer."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def shown(raw_path: bytes) -> str:
    """A path as sent, fit for a log line: quoted (no line of its own can be forged)."""
    return quote(raw_path[:64].decode("latin-1"), safe="/%()")


class RefusalLog:
    """Counts refusals by path prefix, and logs them as one line per interval: while
    maintenance is on, a line per refused request would cost more than the refusal."""

    MAX_PREFIXES = 50

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.counts: dict[bytes, int] = {}
        self.since = time.monotonic()

    def count(self, raw_path: bytes) -> None:
        """One refusal of ``raw_path``, as sent, counted under its first segment (written
        out, quoted, only when the counts are logged: this runs on every refusal)."""
        end = raw_path.find(b"/", 1)
        prefix = raw_path[: end + 1] if end != -1 else raw_path
        counts = self.counts
        seen = counts.get(prefix)
        if seen is None and len(counts) >= self.MAX_PREFIXES:
            prefix, seen = b"(other)", counts.get(b"(other)")
        counts[prefix] = (seen or 0) + 1

    def flush(self, force: bool = False) -> None:
        """Log the counts once the interval is over (or now, with ``force``)."""
        now = time.monotonic()
        if not force and now - self.since < self.interval:
            return
        counts, self.counts = self.counts, {}
        elapsed, self.since = now - self.since, now
        # list(): one step the event loop's thread cannot come between (a count lost
        # to the swap above is a count; a dict changed under a sort is an error).
        counted = list(counts.items())
        if counted:
            ranked = sorted(counted, key=lambda item: (-item[1], item[0]))
            log.info(
                "refused %d requests in the last %.0f s (maintenance is on): %s",
                sum(n for _, n in counted),
                elapsed,
                ", ".join(f"{shown(prefix)} {n}" for prefix, n in ranked),
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


READ_ONLY_TEXT = "You can still browse this service meanwhile, but not change anything."


class Page:
    """The maintenance page for browsers: a template, rendered once per state."""

    def __init__(self, template: Path, retry_after: int) -> None:
        try:
            self.template = string.Template(template.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read the page template {template}: {exc.strerror}") from None
        self.retry_after = retry_after
        self._cache: tuple[MaintenanceState, tuple[int, bool], bytes] | None = None

    def render(self, state: MaintenanceState, clock: Callable[[], int] = now_ms) -> bytes:
        """The page for ``state`` (rendered again only when the state changes, or, in a
        planned window, the minute left to its end by ``clock``, the database's)."""
        now = 0 if state.planned_end is None else clock()  # only a planned end needs it
        seconds = retry_after(state, self.retry_after, now)
        minutes = max(1, round(seconds / 60))
        late = state.planned_end is not None and state.planned_end <= now
        cached = self._cache
        if cached is not None and cached[0] is state and cached[1] == (minutes, late):
            return cached[2]
        since = utc(state.started_at)
        progress = state.progress_percent
        planned = ""
        if state.planned_end is not None:
            planned = f"Planned to end at {utc(state.planned_end):%Y-%m-%d %H:%M} UTC"
            planned += "; it is taking longer than planned." if late else "."
        values = {
            "message": state.log[-1].message if state.log else DEFAULT_MESSAGE,
            "progress": str(progress or 0),
            "progress_text": f"{progress}%" if progress is not None else "unknown",
            "since_iso": since.isoformat(timespec="seconds"),
            "since_text": since.strftime("%Y-%m-%d %H:%M UTC"),
            "retry_after": str(seconds),
            "retry_after_text": f"{minutes} minute{'s' if minutes > 1 else ''}",
            "poll_seconds": str(max(1, min(5, self.retry_after))),
            "mode_text": READ_ONLY_TEXT if state.read_only else "",
            "planned_text": planned,
        }
        body = self.template.safe_substitute(
            {name: html.escape(value) for name, value in values.items()}
        ).encode()
        self._cache = (state, (minutes, late), body)
        return body


def retry_after(state: MaintenanceState, configured: int, now: int) -> int:
    """The seconds a refusal announces: the time left to a planned end (a day at most),
    else (none, or overrunning) the configured value."""
    if state.planned_end is None or state.planned_end <= now:
        return configured
    return min(MAX_RETRY_AFTER, -(-(state.planned_end - now) // 1000))
