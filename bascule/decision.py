"""The decision endpoint (GET /rest/v1/gate) a reverse proxy asks about each request it
is about to pass on: the gate's decision, for a request the proxy names, with the answer
the visitor must see when it is refused."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from bascule.answers import NOT_ALLOWED, Code, error_answer
from bascule.bypass import BYPASS_PARAM, BYPASSED, bypass_redirect, header_bypass, url_bypass
from bascule.exchange import send_whole
from bascule.model import READ_METHODS, READ_ONLY

if TYPE_CHECKING:
    from bascule.gate import PathSet, RefusalLog
    from bascule.monitor import Monitor
    from bascule.page import Refusals

# The decision endpoint's answers: let through, refused (for a proxy that asked for a
# status it honours), and a question it cannot answer.
ALLOWED = DENIED = [(b"content-length", b"0"), (b"cache-control", b"no-store")]
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


class Decision:
    """Answers the decision endpoint, as the gate would the request named."""

    def __init__(
        self,
        app: ASGIApp,
        monitor: Monitor,
        open_paths: PathSet,
        refusal: Refusals,
        refusals: RefusalLog | None,
        decisions: list[int],
    ) -> None:
        self.app, self.monitor, self.open = app, monitor, open_paths
        self.refuser, self.refusals = refusal, refusals
        # The gate's tally (of model.DECISIONS): a proxy's question is a request decided on.
        self.decisions = decisions

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
                self.decisions[0] += 1  # allowed
                return send_whole(send, 200, ALLOWED, b"")
            self.decisions[3] += 1  # refused
            if self.refusals is not None:
                self.refusals.count(split_uri(named)[0])
                scope["bascule.refused"] = True
            if query:
                return send_whole(send, int(query[-3:]), DENIED, b"")
            status, headers, body = self.refuser.answer(
                state, scope["headers"], scope["method"] == "HEAD"
            )
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
                self.decisions[2] += 1  # bypassed
                location = path + (b"?" + rest if rest else b"")
                return bypass_redirect(location, token, found, forwarded_https, bypass.clock())
        state = monitor.state
        if state is None:
            self.decisions[0] += 1  # allowed
            return 200, ALLOWED, b""
        # A URI holding "#" (which no browser sends) opens no path: the application may
        # read it whole, where Bascule would read up to the "#".
        if uri is not None and uri.find(b"#") == -1 and path in self.open:
            return 200, ALLOWED, b""  # an open path: not decided on, as in the gate
        if state.mode == READ_ONLY and method.decode("latin-1") in READ_METHODS:
            self.decisions[1] += 1  # read_only
            return 200, ALLOWED, b""
        if bypass.by_hash:
            found = header_bypass(headers, bypass)
            if found is not None:
                monitor.note_bypass(found.name)
                self.decisions[2] += 1  # bypassed
                return 200, [*ALLOWED, (BYPASSED, found.name.encode())], b""
        self.decisions[3] += 1  # refused
        if deny is not None:
            return deny, DENIED, b""
        if self.refusals is not None:
            self.refusals.count(path)
        return self.refuser.answer(state, scope["headers"], False)


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
    headers, body = bad_request(NOT_ALLOWED)
    return [*headers, (b"allow", b"GET, HEAD")], body


def bad_request(message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of a 400 in the envelope."""
    return error_answer(Code.BAD_PARAMETER, message)
