"""The gate, in front of tiny inline ASGI apps."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from dataclasses import replace
from urllib.parse import unquote

import pytest

from bascule import MaintenanceGate
from bascule.app import bascule_paths
from bascule.bypass import TokenSet
from bascule.exchange import refuse_websocket
from bascule.gate import Gate
from bascule.maintenance import Maintenance
from bascule.model import STARTED_MESSAGE, Actor, LogEntry, MaintenanceState, now_ms
from bascule.spec import served_paths

OPEN_PATHS = [
    *(path.replace("{name}", "testers").replace("{id}", "3") for path in served_paths()),
    "/login",
    "/logout",
    "/rest/v1/openapi.json",
    "/rest/v1/openapi.yaml",
    "/rest/v1/ui",
    "/rest/v1/ui/",
    "/rest/v1/ui/swagger-ui.css",
    "/rest/v1/ui/index.html",
    "/rest/latest/auth/status",
    "/rest/auth/other",
]

BYPASS_ATTEMPTS = [
    "/rest/v1/x/rest/v1/maintenance",
    "/x/rest/v1/maintenance",
    "/rest/v1/maintenance/../x",
    "/rest/v1/maintenance/..",
    "/rest/v1/maintenance/./x",
    "//rest/v1/x",
    "//rest/v1/maintenance",
    "/rest/v1//maintenance",
    "/rest/v1/%6daintenance",
    "/rest/v1/maintenance%2F..%2Fx",
    "/rest/v1/maintenance%00",
    "/rest/v1/maintenance/",
    "/rest/v1/maintenance;jsessionid=1",
    "/rest/v1/maintenancex",
    "/rest/v1/maintenance.json",
    "/REST/V1/MAINTENANCE",
    "/rest/v1/ui/../../x",
    "/rest/v1/ui/%2e%2e/x",
    "/rest/v1/ui/..%2F..%2Fx",
    "/rest/v1/ui//x",
    "/rest/v1/auth/../../x",
    "/rest/v1/auth/./x",
    "/rest/v1/auth/.hidden",
    "/rest/v2/maintenance",
    "/login/x",
    "/loginx",
    "/",
    "/anything",
]


# How call() enters a gate: set for each test by the entry_point fixture.
ENTRY_POINT = "__call__"


@pytest.fixture(autouse=True, params=["__call__", "route"])
def entry_point(request, monkeypatch):
    """Every test twice: through the gate as an ASGI application, and through its
    ``route``, the plain call returning the answer's awaitable (what ``bascule serve``
    hands uvicorn)."""
    monkeypatch.setattr(sys.modules[__name__], "ENTRY_POINT", request.param)


class Recorder:
    """A downstream ASGI app that answers 200 and remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.seen.append(scope)
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"downstream"})


def call(
    app,
    raw_path: str,
    method: str = "GET",
    scope_type: str = "http",
    raw_path_with_query: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
    **more_scope,
):
    """Send one request through an ASGI app (a gate: by ENTRY_POINT); the messages it sent back."""
    path = raw_path.split("?", 1)[0]
    scope = {
        "type": scope_type,
        "method": method,
        "path": unquote(path),
        "raw_path": (raw_path if raw_path_with_query else path).encode(),
        "query_string": raw_path.partition("?")[2].encode(),
        "headers": headers or [],
        **more_scope,
    }
    sent: list[dict] = []

    async def receive():
        if scope_type == "lifespan":
            return {"type": "lifespan.startup"}
        if scope_type == "websocket":
            return {"type": "websocket.connect"}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    target = getattr(app, ENTRY_POINT) if isinstance(app, Gate) else app

    async def request():
        await target(scope, receive, send)

    asyncio.run(request())
    return sent


class Holder:
    """What the gate reads of a monitor: the state and the valid bypass tokens, here set
    by the test itself; and the uses of tokens it counts."""

    def __init__(self) -> None:
        self.state: MaintenanceState | None = None
        self.bypass = TokenSet()
        self.uses: list[str] = []

    def note_bypass(self, name: str) -> None:
        self.uses.append(name)

    def now(self) -> int:
        return now_ms()


class Switch:
    """Changes the state a Holder holds, as the monitor does once the database changed."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder

    def enable(self, actor: Actor) -> None:
        now = now_ms()
        started = (LogEntry(now, actor.name, STARTED_MESSAGE),)
        self.holder.state = MaintenanceState(actor.name, True, None, now, started, 1)

    def update(self, actor: Actor, message: str | None = None, progress: int | None = None):
        state = self.holder.state
        assert state is not None
        log = state.log + ((LogEntry(now_ms(), actor.name, message),) if message else ())
        self.holder.state = replace(
            state,
            progress_percent=state.progress_percent if progress is None else progress,
            log=log,
            log_size=len(log),
        )


@pytest.fixture
def monitor():
    return Holder()


@pytest.fixture
def maintenance(monitor):
    return Switch(monitor)


@pytest.fixture
def gate(monitor):
    return MaintenanceGate(Recorder(), monitor=monitor, own=bascule_paths(), retry_after=30)


def switch_on(maintenance, monitor):
    maintenance.enable(Actor.operator("root"))


def test_everything_passes_while_off(gate):
    for path in [*OPEN_PATHS, *BYPASS_ATTEMPTS]:
        assert call(gate, path)[0]["status"] == 200, path


def test_refusal_is_the_maintenance_envelope(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    start, body = call(gate, "/anything")
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"retry-after"] == b"30"
    assert headers[b"cache-control"] == b"no-store"
    refusal = json.loads(body["body"])
    # Alien4Cloud's refusal, and beside it what a browser's page says, for API clients.
    assert (refusal["data"], refusal["error"]) == (
        None,
        {"code": 0, "message": "Maintenance mode is enabled."},
    )
    state = monitor.state
    assert refusal["maintenance"] == {
        "message": STARTED_MESSAGE,
        "mode": "full",
        "since": state.started_at,
        "plannedEnd": None,
        "retryAfter": 30,
        "progress": state.progress_percent,
    }
    assert int(headers[b"content-length"]) == len(body["body"])
    assert gate.app.seen == []


@pytest.mark.parametrize("path", OPEN_PATHS)
def test_bascule_paths_stay_open(gate, maintenance, monitor, path):
    switch_on(maintenance, monitor)
    assert call(gate, path)[0]["status"] == 200
    assert call(gate, path + "?x=1")[0]["status"] == 200


@pytest.mark.parametrize("path", BYPASS_ATTEMPTS)
def test_bypass_attempts_are_refused(gate, maintenance, monitor, path):
    switch_on(maintenance, monitor)
    assert call(gate, path)[0]["status"] == 503
    assert gate.app.seen == []


def test_query_string_does_not_open_a_path(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    assert call(gate, "/x?/rest/v1/maintenance")[0]["status"] == 503


def test_a_raw_path_that_keeps_the_query_is_matched_without_it(gate, maintenance, monitor):
    # Some servers put the query string in raw_path too.
    switch_on(maintenance, monitor)
    scope_path = "/rest/v1/maintenance?x=/shop"
    assert call(gate, scope_path, raw_path_with_query=True)[0]["status"] == 200
    assert call(gate, "/shop?/rest/v1/maintenance", raw_path_with_query=True)[0]["status"] == 503


def test_paths_not_allowed_go_elsewhere_while_off(monitor, maintenance):
    own, other = Recorder(), Recorder()
    gate = MaintenanceGate(own, monitor=monitor, own=bascule_paths(), elsewhere=other)
    assert call(gate, "/rest/v1/maintenance")[0]["status"] == 200
    assert call(gate, "/shop")[0]["status"] == 200
    assert [s["raw_path"] for s in own.seen] == [b"/rest/v1/maintenance"]
    assert [s["raw_path"] for s in other.seen] == [b"/shop"]
    switch_on(maintenance, monitor)
    assert call(gate, "/shop")[0]["status"] == 503
    assert call(gate, "/rest/v1/maintenance")[0]["status"] == 200
    assert len(other.seen) == 1 and len(own.seen) == 2
    call(gate, "/", scope_type="lifespan")
    assert own.seen[-1]["type"] == "lifespan" and len(other.seen) == 1


@pytest.mark.parametrize(
    ("allow", "prefixes", "open_paths", "refused"),
    [
        # No prefix at all, as in the two-line usage.
        (["/health"], [], ["/health"], ["/health/", "/health/x", "/healthz", "/", "/shop"]),
        # Prefixes that share nothing but "/".
        (
            ["/"],
            ["/static/", "/assets/"],
            ["/", "/static/app.css", "/assets/img/logo.png", "/static/"],
            ["/static", "/static/../x", "/static//x", "/assets/%2e%2e/x", "/shop", "//static/x"],
        ),
        # Prefixes that share a longer head, and an exact path inside it.
        (
            ["/api/v1/ping"],
            ["/api/v1/auth/", "/api/v2/auth/"],
            ["/api/v1/ping", "/api/v1/auth/login", "/api/v2/auth/x"],
            ["/api/v1/pin", "/api/v3/auth/x", "/api/", "/api", "/a"],
        ),
    ],
)
def test_allow_lists_of_every_shape(monitor, maintenance, allow, prefixes, open_paths, refused):
    app = Recorder()
    gate = MaintenanceGate(app, monitor=monitor, allow=allow, allow_prefixes=prefixes)
    switch_on(maintenance, monitor)
    assert {p: call(gate, p)[0]["status"] for p in open_paths} == dict.fromkeys(open_paths, 200)
    assert {p: call(gate, p)[0]["status"] for p in refused} == dict.fromkeys(refused, 503)
    assert [s["raw_path"] for s in app.seen] == [p.encode() for p in open_paths]


def test_head_gets_no_body(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    start, body = call(gate, "/anything", method="HEAD")
    assert start["status"] == 503
    assert body["body"] == b""


def test_websockets_get_the_503_where_the_server_can_send_it(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    extensions = {"websocket.http.response": {}}
    start, body = call(gate, "/ws", scope_type="websocket", extensions=extensions)
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 503
    assert dict(start["headers"])[b"retry-after"] == b"30"
    assert body["type"] == "websocket.http.response.body"
    assert json.loads(body["body"])["error"] == {
        "code": 0,
        "message": "Maintenance mode is enabled.",
    }
    assert gate.app.seen == []


def test_websockets_are_closed_with_try_again_later_elsewhere(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    accept, close = call(gate, "/ws", scope_type="websocket")
    assert accept == {"type": "websocket.accept"}
    assert close == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "Maintenance mode is enabled.",
    }
    assert gate.app.seen == []


def test_a_websocket_close_reason_fits_in_its_frame():
    message = "No such path: /" + "é" * 200
    body = json.dumps({"data": None, "error": {"code": 504, "message": message}}).encode()

    def refusing(scope, receive, send):
        return refuse_websocket(scope, receive, send, 404, [], body, 4404)

    accept, close = call(refusing, "/x", scope_type="websocket")
    assert accept == {"type": "websocket.accept"}
    assert close["code"] == 4404
    assert len(close["reason"].encode()) <= 123
    assert message.startswith(close["reason"])


@pytest.mark.parametrize("path", ["/healthz", "/rest/v1/maintenance", "/rest/v1/auth/status"])
def test_paths_are_matched_after_the_servers_root_path(monitor, maintenance, path):
    allow, prefixes = ["/healthz", "/rest/v1/maintenance"], ["/rest/v1/auth/"]
    gate = MaintenanceGate(Recorder(), monitor=monitor, allow=allow, allow_prefixes=prefixes)
    switch_on(maintenance, monitor)
    assert call(gate, f"/svc{path}", root_path="/svc")[0]["status"] == 200
    assert call(gate, f"/svcx{path}", root_path="/svc")[0]["status"] == 503
    assert call(gate, f"/svc/svc{path}", root_path="/svc")[0]["status"] == 503
    assert call(gate, f"/svc{path}/../x", root_path="/svc")[0]["status"] == 503


def test_lifespan_passes_through(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    sent = call(gate, "/", scope_type="lifespan")
    assert sent == [{"type": "lifespan.startup.complete"}]


def test_standalone_gate_in_two_lines_follows_other_processes(database_url, store):
    downstream = Recorder()
    app = MaintenanceGate(
        downstream,
        database_url,
        allow=["/healthz"],
        allow_prefixes=["/static/"],
        poll_interval=0.05,
    )
    try:
        assert call(app, "/page")[0]["status"] == 200
        Maintenance(store).enable(Actor.process("deploy"))  # as another process would
        deadline = time.monotonic() + 5
        while call(app, "/page")[0]["status"] != 503:
            assert time.monotonic() < deadline, "the gate did not see maintenance go on"
            time.sleep(0.02)
        assert call(app, "/healthz")[0]["status"] == 200
        assert call(app, "/static/site.css")[0]["status"] == 200
        assert call(app, "/healthz/x")[0]["status"] == 503
        assert call(app, "/static/../x")[0]["status"] == 503
        # Bascule's own paths are the wrapped application's here: not open
        assert call(app, "/login")[0]["status"] == 503
        assert call(app, "/rest/v1/maintenance")[0]["status"] == 503
        Maintenance(store).disable(Actor.process("deploy"))
        while call(app, "/page")[0]["status"] != 200:
            assert time.monotonic() < deadline, "the gate did not see maintenance go off"
            time.sleep(0.02)
    finally:
        app.close()


def test_standalone_gate_on_a_new_database_creates_it_and_says_so(tmp_path, caplog):
    url = f"sqlite:///{tmp_path}/new.db"
    app = MaintenanceGate(Recorder(), url)
    try:
        assert call(app, "/page")[0]["status"] == 200
        assert (tmp_path / "new.db").is_file()
        assert f"no Bascule database at {url} yet: created one" in caplog.text
    finally:
        app.close()


def test_standalone_gate_refuses_to_start_blind(tmp_path):
    with pytest.raises(ValueError, match="URL"):
        MaintenanceGate(Recorder())
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    with pytest.raises(ValueError, match="no Bascule schema revision"):
        MaintenanceGate(Recorder(), f"sqlite:///{other}")
    with pytest.raises(ValueError, match="cannot read"):
        MaintenanceGate(Recorder(), "postgresql://nobody@127.0.0.1:9/none")


# -- the page for browsers --------------------------------------------------------------------

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def call_accepting(app, accept: str | None, path: str = "/shop", method: str = "GET"):
    """One request with that Accept header (none for None): status, headers and body."""
    headers = [(b"accept", accept.encode())] if accept is not None else []
    start, body = call(app, path, method=method, headers=headers)
    return start["status"], dict(start["headers"]), body["body"]


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("Text/HTML", True),  # media types are case-insensitive
        ("application/xhtml+xml", True),
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html", False),
        ("text/html;q=0.5, application/json", False),
        ("application/json;q=0.1, text/html", True),
        ("text/html;q=0", False),
        ("text/html;Q=0", False),  # parameter names too
        ("application/problem+json, text/html;q=0.9", False),
    ],
)
def test_browsers_get_a_page_and_api_clients_the_envelope(gate, maintenance, monitor, accept, html):
    switch_on(maintenance, monitor)
    status, headers, body = call_accepting(gate, accept)
    assert status == 503
    assert headers[b"retry-after"] == b"30"
    if html:
        assert headers[b"content-type"] == b"text/html; charset=utf-8"
        assert (headers[b"x-frame-options"], headers[b"x-content-type-options"]) == (
            b"DENY",
            b"nosniff",
        )
        assert headers[b"content-security-policy"] == b"frame-ancestors 'none'"
        assert body.startswith(b"<!doctype html>")
        assert int(headers[b"content-length"]) == len(body)
    else:
        assert headers[b"content-type"] == b"application/json"
        assert json.loads(body)["error"]["code"] == 0


def test_what_the_page_or_envelope_choice_reads_is_bounded():
    from bascule.page import ACCEPT_PREFIX, prefers_html

    assert prefers_html(b"text/html")
    # Past the first ACCEPT_PREFIX bytes nothing is read, so nothing costs more.
    assert not prefers_html(b"a," * 500_000 + b"text/html")
    assert not prefers_html(b" " * ACCEPT_PREFIX + b"text/html")
    assert prefers_html(b"x/y," * 100 + b"text/html")


def test_an_accept_header_among_too_many_headers_is_not_looked_for(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    noise = [(f"x-{i}".encode(), b"y") for i in range(20_000)]
    start, _ = call(gate, "/page", headers=[*noise, (b"accept", b"text/html")])
    assert (start["status"], dict(start["headers"])[b"content-type"]) == (503, b"application/json")


def test_the_page_shows_message_progress_and_start_escaped(gate, maintenance, monitor):
    actor = Actor.operator("root")
    maintenance.enable(actor)
    maintenance.update(actor, message="Moving <databases> & files", progress=42)
    _, _, body = call_accepting(gate, BROWSER)
    page = body.decode()
    assert "Moving &lt;databases&gt; &amp; files" in page
    assert 'value="42"' in page and "42%" in page
    started = monitor.state.started_at / 1000
    assert time.strftime("%Y-%m-%dT%H:%M", time.gmtime(started)) in page
    assert "about 1 minute" in page  # Retry-After 30 s, rounded up to a minute
    assert "http://" not in page and "https://" not in page  # no external asset
    maintenance.update(actor, progress=43)
    assert 'value="43"' in call_accepting(gate, BROWSER)[2].decode()


def test_a_custom_page_template(tmp_path, maintenance, monitor):
    template = tmp_path / "page.html"
    template.write_text("<p>$message ($progress_text) back in $retry_after s $unknown</p>")
    gate = MaintenanceGate(Recorder(), monitor=monitor, retry_after=60, page_template=template)
    switch_on(maintenance, monitor)
    _, _, body = call_accepting(gate, "text/html")
    assert body == b"<p>Maintenance operation started. (none posted yet) back in 60 s $unknown</p>"


def test_a_missing_page_template_is_refused_at_once(monitor):
    with pytest.raises(ValueError, match="cannot read the page template"):
        MaintenanceGate(Recorder(), monitor=monitor, page_template="/no/such/page.html")


def test_read_only_lets_what_changes_nothing_through(gate, maintenance, monitor):
    switch_on(maintenance, monitor)
    monitor.state = replace(monitor.state, mode="read-only")
    for method in ("GET", "HEAD", "OPTIONS"):
        assert call(gate, "/shop", method=method)[0]["status"] == 200, method
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        start, body = call(gate, "/shop", method=method)
        assert start["status"] == 503, method
        assert "read-only" in json.loads(body["body"])["error"]["message"]
    status, _, page = call_accepting(gate, BROWSER, method="POST")
    assert status == 503 and b"still browse" in page
    # A WebSocket may change anything: refused too.
    closed = call(gate, "/live", scope_type="websocket")[-1]
    assert (closed["type"], closed["code"]) == ("websocket.close", 1013)


def test_refusals_are_counted_by_what_was_sent_and_nothing_is_forged_in_the_log(caplog):
    from bascule.gate import RefusalLog

    refusals = RefusalLog()
    refusals.count(b"/shop/a")
    refusals.count(b"/%0aWARNING:forged")
    refusals.count(b"/\nWARNING:forged line")
    with caplog.at_level("INFO", logger="bascule.gate"):
        refusals.flush(force=True)
    (line,) = caplog.messages
    assert "\n" not in line and line.startswith("refused 3 requests")
    assert "/shop/ 1" in line


def test_one_refusal_is_logged_as_one_request(caplog):
    from bascule.gate import RefusalLog

    refusals = RefusalLog()
    refusals.count(b"/shop")
    with caplog.at_level("INFO", logger="bascule.gate"):
        refusals.flush(force=True)
    assert caplog.messages[0].startswith("refused 1 request in the last ")
