"""The gate: an ASGI middleware that refuses requests with 503 while maintenance is on.

The hot path reads one attribute of an in-memory monitor: no database query per
request. Whoever builds the gate gives it the monitor (``bascule.MaintenanceGate`` builds
one that follows a database from a thread of its own), and its pieces stand beside it:
the decision endpoint (decision.py), what a refused visitor sees (page.py), the ASGI
exchange (exchange.py), bypass tokens (bypass.py), the answers' bytes (answers.py).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from bascule.bypass import (
    BYPASS_PARAM,
    bypass_redirect,
    header_bypass,
    marked,
    url_bypass,
    without_bypass,
)
from bascule.decision import Decision
from bascule.exchange import (
    WEBSOCKET_TRY_AGAIN_LATER,
    refuse_websocket,
    request_path,
    route_path,
    send_whole,
)
from bascule.model import DECISIONS, READ_METHODS, READ_ONLY, plural
from bascule.page import DEFAULT_PAGE, SCANNED_HEADERS, Page, Refusals

if TYPE_CHECKING:
    from bascule.model import MaintenanceState
    from bascule.monitor import Monitor

log = logging.getLogger(__name__)

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


class Gate:
    """ASGI middleware: while maintenance is on, answer 503 to every request not allowed.

    ``monitor`` holds the state it enforces (whoever made the monitor starts and stops
    it). ``allow`` and ``allow_prefixes`` keep paths of the application open; a request
    with a valid bypass token passes too, and its answer says so (``X-Bascule-Bypassed``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        monitor: Monitor,
        allow: Iterable[str] = (),
        allow_prefixes: Iterable[str] = (),
        retry_after: int = 120,
        page_template: str | Path | None = None,
        elsewhere: ASGIApp | None = None,
        own: PathSet | None = None,
        decision_paths: Iterable[str] = (),
        refusals: RefusalLog | None = None,
    ) -> None:
        page = Page(Path(page_template) if page_template else DEFAULT_PAGE, retry_after)
        self.app = app
        # Where requests for paths not open go while maintenance is off, and those of the
        # application's open paths always (``app`` unless told; ``app`` gets ``own``
        # paths and the lifespan): routing here spares each request a second look.
        self.elsewhere = app if elsewhere is None else elsewhere
        self.monitor = monitor
        self.open = PathSet(allow, allow_prefixes)  # the application's own open paths
        self.own = own or PathSet()  # the paths ``app`` answers itself (Bascule's)
        self.refusals = refusals
        self.refuser = Refusals(page, monitor.now)
        # How many requests got each of DECISIONS (let through with maintenance off, let
        # through by the read-only mode, by a bypass token, refused): plain integers, the
        # cheapest count there is (metrics.py adds them to Prometheus's, off this path).
        self.decisions = [0] * len(DECISIONS)
        decision = Decision(app, monitor, self.open, self.refuser, refusals, self.decisions)
        # One lookup for an exact path: who answers it.
        self._exact: dict[bytes, Callable[..., Awaitable[None]]] = dict.fromkeys(
            self.open.exact, self.elsewhere
        )
        self._exact.update(dict.fromkeys(self.own.exact, app))
        self._exact.update(dict.fromkeys((p.encode() for p in decision_paths), decision.decide))
        # What every prefix starts with: a first look cheaper than ``startswith`` with a
        # tuple (``path[head_span] == head``); with no prefix, no head (nothing equals None).
        prefixes = (*self.own.prefixes, *self.open.prefixes)
        common = cast(bytes, os.path.commonprefix(prefixes))  # noqa: RUF071 (bytes, not paths)
        self._head: bytes | None = common if prefixes else None
        self._head_span = slice(0, len(common))

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
                self.decisions[2] += 1  # bypassed
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
            self.decisions[0] += 1  # allowed; a literal index: no global lookup here
            return self.elsewhere(scope, receive, send)
        if scope["type"] == "http":
            if state.mode == READ_ONLY and scope["method"] in READ_METHODS:
                self.decisions[1] += 1  # read_only
                return self.elsewhere(
                    {**scope, "headers": without_bypass(scope["headers"])}, receive, send
                )
            return self.refuse(scope, receive, send, path, state)
        if scope["type"] == "websocket":
            self.decisions[3] += 1  # refused
            return refuse_websocket(
                scope, receive, send, 503, *self.refuser.envelope(state), WEBSOCKET_TRY_AGAIN_LATER
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

    async def refuse(
        self, scope: Scope, receive: Receive, send: Send, path: bytes, state: MaintenanceState
    ) -> None:
        """Answer 503 (the page to a browser, the envelope to anyone else), unless the
        request carries a valid bypass token in a header or a cookie: then it goes
        through. ``path`` is the request's, as sent."""
        bypass = self.monitor.bypass
        if bypass.by_hash:  # tokens exist: look for one (never logged)
            found = header_bypass(scope["headers"][:SCANNED_HEADERS], bypass)
            if found is not None:
                self.monitor.note_bypass(found.name)
                self.decisions[2] += 1  # bypassed
                await self.elsewhere(
                    {**scope, "headers": without_bypass(scope["headers"])},
                    receive,
                    marked(send, found.name),
                )
                return
        self.decisions[3] += 1  # refused
        if self.refusals is not None:
            self.refusals.count(path)
            scope["bascule.refused"] = True  # for the access log: counted, not written
        status, headers, body = self.refuser.answer(
            state, scope["headers"], scope["method"] == "HEAD"
        )
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
                "refused %s in the last %.0f s (maintenance is on): %s",
                plural(sum(n for _, n in counted), "request"),
                elapsed,
                ", ".join(f"{shown(prefix)} {n}" for prefix, n in ranked),
            )
