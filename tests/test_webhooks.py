"""Webhooks and the events they carry: signed deliveries to a real local receiver, retries
under one webhook-id, one instance per delivery, a dead receiver that delays nothing,
addresses refused, and the audit trail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from standardwebhooks import Webhook

from bascule import receivers
from bascule.app import create_app
from bascule.config import Settings
from bascule.maintenance import Maintenance
from bascule.model import Actor
from bascule.store import Store
from bascule.windows import Windows
from tests.conftest import ADMIN, ADMIN_PASSWORD, VIEWER
from tests.test_api import error, ok
from tests.waiting import until

HOOKS = "/rest/v1/maintenance/webhooks"
EVENTS = "/rest/v1/maintenance/events"


@dataclass
class Receiver:
    """A webhook receiver on a loopback port: what it got, and how it answers."""

    port: int = 0
    got: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 204
    delay: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/bascule?team=ops"

    def types(self) -> list[str]:
        return [json.loads(body)["type"] for _, body, _ in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _receiver()


@pytest.fixture
def slow_receiver() -> Iterator[Receiver]:
    yield from _receiver()


def _receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            time.sleep(state.delay)
            with lock:
                state.got.append((dict(self.headers), body, time.monotonic()))
                status = state.statuses.pop(0) if state.statuses else 204
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def add(client, url: str, events: list[str] | None = None) -> dict:
    body = {"url": url} if events is None else {"url": url, "events": events}
    return ok(client.post(HOOKS, json=body, headers=ADMIN), 201)


def test_a_webhook_receives_each_transition_signed(client, receiver):
    hook = add(client, receiver.url)
    assert hook["secret"].startswith("whsec_") and hook["events"] is None
    ok(client.post("/rest/v1/maintenance", json={"message": "Upgrading"}, headers=ADMIN), 201)
    body = {"message": "Half way", "progressPercentage": 50}
    ok(client.put("/rest/v1/maintenance", json=body, headers=ADMIN), 201)
    ok(client.delete("/rest/v1/maintenance", headers=ADMIN), 200)
    until(lambda: len(receiver.got) == 4, 10, "four deliveries")
    delivered = lambda: ok(client.get(HOOKS, headers=ADMIN), 200)[0]["deliveries"]["delivered"]  # noqa: E731
    until(lambda: delivered() == 4, 5, "four deliveries recorded")
    assert receiver.types() == [
        "webhook.added",
        "maintenance.started",
        "maintenance.updated",
        "maintenance.ended",
    ]
    for headers, raw, _ in receiver.got:
        headers = {k.lower(): v for k, v in headers.items()}
        # Standard Webhooks' own verifier, and the signature computed here by hand.
        payload = Webhook(hook["secret"]).verify(raw, headers)
        key = base64.b64decode(hook["secret"].removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
        mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert headers["webhook-signature"] == f"v1,{mac}"
        assert headers["webhook-id"].startswith("msg_")
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
        assert set(payload) == {"type", "timestamp", "data", "text"}
    started = json.loads(receiver.got[1][1])
    assert started["text"] == "Maintenance started by admin: Upgrading"
    assert started["data"]["message"] == "Upgrading" and started["data"]["actor"] == "admin"
    updated = json.loads(receiver.got[2][1])
    assert updated["data"]["progress"] == 50 and updated["data"]["newMessage"] == "Half way"
    # Each delivery is its own event: four webhook-ids.
    assert len({h["webhook-id"] for h, _, _ in receiver.got}) == 4
    listed = ok(client.get(HOOKS, headers=ADMIN), 200)
    assert listed[0]["deliveries"] == {"pending": 0, "delivered": 4, "failed": 0}
    assert listed[0]["recent"][0]["lastResult"] == "HTTP 204"
    assert hook["secret"] not in json.dumps(listed)  # shown once only


def test_a_webhook_takes_only_the_types_it_asked_for(client, receiver):
    add(client, receiver.url, ["maintenance.ended"])
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    ok(client.delete("/rest/v1/maintenance", headers=ADMIN), 200)
    until(lambda: receiver.got, 10, "a delivery")
    time.sleep(0.5)
    assert receiver.types() == ["maintenance.ended"]


def test_a_failure_is_tried_again_under_the_same_id(client, receiver):
    receiver.statuses = [500]
    add(client, receiver.url, ["maintenance.started"])
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    until(lambda: len(receiver.got) == 2, 15, "a retry")
    (first, _, at1), (second, _, at2) = receiver.got
    assert first["webhook-id"] == second["webhook-id"]
    assert 4 <= at2 - at1 < 10  # the first retry comes within 10 s
    recent = ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]
    until(
        lambda: ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]["status"] == "delivered",
        5,
    )
    recent = ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]
    assert (recent["attempts"], recent["lastResult"]) == (2, "HTTP 204")


def test_a_dead_receiver_delays_nothing_else(client, receiver, slow_receiver, monkeypatch):
    monkeypatch.setattr(receivers, "TIMEOUT", 3.0)
    slow_receiver.delay = 5.0  # past the timeout: a receiver that never answers in time
    add(client, slow_receiver.url, ["maintenance.started"])
    add(client, receiver.url, ["maintenance.started"])
    started = time.monotonic()
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    assert time.monotonic() - started < 1.0  # the API does not wait for receivers
    assert until(lambda: receiver.got, 3, "the live receiver's delivery") < 2.5
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)["user"] == "admin"
    listed = ok(client.get(HOOKS, headers=ADMIN), 200)
    until(lambda: ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]["lastResult"], 6)
    dead = ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]
    assert dead["status"] == "pending" and dead["lastResult"] == "no answer within 3 s"
    assert listed[1]["deliveries"]["delivered"] == 1


def test_one_instance_delivers_each_event(settings, receiver):
    apps = [create_app(settings), create_app(settings)]
    clients = [a.test_client() for a in apps]
    try:
        for c in clients:
            c.__enter__()
        add(clients[0], receiver.url)
        for turn in range(6):
            c = clients[turn % 2]
            ok(c.post("/rest/v1/maintenance", headers=ADMIN), 201)
            ok(c.delete("/rest/v1/maintenance", headers=ADMIN), 200)
        until(lambda: len(receiver.got) >= 13, 20, "13 deliveries")
        time.sleep(1.5)  # any second copy would have come by now
        ids = [h["webhook-id"] for h, _, _ in receiver.got]
        assert len(ids) == len(set(ids)) == 13
    finally:
        for c in clients:
            c.__exit__(None, None, None)
        for a in apps:
            a.services.close()


def test_an_event_waits_in_the_outbox_for_a_server(settings, receiver):
    first = create_app(settings)
    with first.test_client() as client:
        add(client, receiver.url, ["maintenance.started", "maintenance.ended"])
    first.services.close()
    # No server runs: a command switches maintenance on and off.
    operator = Actor.operator("ops")
    store = Store(settings.database_url)
    Maintenance(store).enable(operator, message="From the command line")
    Maintenance(store).disable(operator)
    store.close()
    second = create_app(settings)
    with second.test_client():
        until(lambda: len(receiver.got) == 2, 10, "the two events kept meanwhile")
    second.services.close()
    started = json.loads(receiver.got[0][1])
    assert started["data"]["actor"] == "ops" and started["data"]["origin"].startswith("host ")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.100.100.200/",
        "http://0.0.0.0:8080/",
        "http://224.0.0.1/",
    ],
)
def test_link_local_and_metadata_receivers_are_refused(client, url):
    err = error(client.post(HOOKS, json={"url": url}, headers=ADMIN), 400, 501)
    assert "url refused" in err
    assert ok(client.get(HOOKS, headers=ADMIN), 200) == []


def test_a_setting_lets_webhooks_reach_link_local_addresses(database_url):
    settings = Settings.from_env(
        {}, database_url=database_url, admin_password=ADMIN_PASSWORD, webhook_allow_link_local=True
    )
    app = create_app(settings)
    with app.test_client() as client:
        add(client, "http://169.254.169.254/hook")
        # What is never a receiver stays refused.
        error(client.post(HOOKS, json={"url": "http://0.0.0.0/"}, headers=ADMIN), 400, 501)
    app.services.close()


def test_a_name_that_resolves_elsewhere_later_is_refused_at_delivery(client, receiver, monkeypatch):
    add(client, f"http://localhost:{receiver.port}/", ["maintenance.started"])
    real = socket.getaddrinfo

    def rebound(host, *args, **kwargs):
        if host == "localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(receivers.socket, "getaddrinfo", rebound)
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    until(lambda: ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]["lastResult"], 5)
    recent = ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]
    assert recent["lastResult"].startswith("refused: localhost is 169.254.169.254")
    assert recent["status"] == "pending" and not receiver.got


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://127.0.0.1/"},
        {"url": "http://user:secret@127.0.0.1/"},
        {"url": "http://127.0.0.1/#part"},
        {"url": "http://127.0.0.1:99999/"},
        {"url": "http://127.0.0.1/a b"},
        {"url": "http://no-such-host.invalid/"},
        {"url": "http://127.0.0.1/", "events": []},
        {"url": "http://127.0.0.1/", "events": ["maintenance.exploded"]},
        {"url": "http://127.0.0.1/", "extra": 1},
        {"url": "http://127.0.0.1/" + "a" * 2048},
    ],
)
def test_bad_webhooks_are_refused_and_change_nothing(client, body):
    err = error(client.post(HOOKS, json=body, headers=ADMIN), 400, 501)
    assert "secret" not in err
    assert ok(client.get(HOOKS, headers=ADMIN), 200) == []
    assert ok(client.get(EVENTS + "?type=webhook.", headers=ADMIN), 200)["total"] == 0


def test_webhooks_and_events_are_for_admins(client, receiver):
    hook = add(client, receiver.url)
    for method, path in [
        ("get", HOOKS),
        ("post", HOOKS),
        ("delete", f"{HOOKS}/{hook['id']}"),
        ("post", f"{HOOKS}/{hook['id']}/test"),
        ("get", EVENTS),
    ]:
        kwargs = {"json": {"url": receiver.url}} if path == HOOKS and method == "post" else {}
        error(getattr(client, method)(path, headers=VIEWER, **kwargs), 403, 102)
        error(getattr(client, method)(path, **kwargs), 401, 100)
    error(client.delete(f"{HOOKS}/999", headers=ADMIN), 404, 504)
    error(client.post(f"{HOOKS}/999/test", headers=ADMIN), 404, 504)


def test_a_test_delivery_and_a_removal(client, receiver):
    hook = add(client, receiver.url, ["maintenance.ended"])
    sent = ok(client.post(f"{HOOKS}/{hook['id']}/test", headers=ADMIN), 202)
    until(lambda: receiver.got, 5, "the test event")
    headers, raw, _ = receiver.got[0]
    assert headers["webhook-id"] == sent["id"]
    assert json.loads(raw)["type"] == "webhook.test"  # whatever types it takes
    ok(client.delete(f"{HOOKS}/{hook['id']}", headers=ADMIN), 200)
    assert ok(client.get(HOOKS, headers=ADMIN), 200) == []
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    ok(client.delete("/rest/v1/maintenance", headers=ADMIN), 200)
    time.sleep(1.5)
    assert len(receiver.got) == 1


def test_the_audit_trail_says_who_did_what_from_where(client, app):
    app.services.auth.add_user("carol", "carol-secret-1", ["ADMIN"], by=Actor.operator("root"))
    body = {"name": "testers", "expiresIn": 3600}
    ok(client.post("/rest/v1/maintenance/bypass", json=body, headers=ADMIN), 201)
    ok(client.delete("/rest/v1/maintenance/bypass/testers", headers=ADMIN), 200)
    app.services.auth.set_password("carol", "carol-secret-2", by=Actor.operator("root"))
    app.services.auth.remove_user("carol", by=Actor.operator("root"))
    page = ok(client.get(EVENTS, headers=ADMIN), 200)
    events = {e["type"]: e for e in reversed(page["events"])}  # the newest of each type
    assert events["token.created"]["actor"] == "admin"
    assert events["token.created"]["origin"] == "testclient"  # the client's address
    assert events["token.created"]["data"]["name"] == "testers"
    assert "token" not in events["token.created"]["data"]  # never a token's value
    assert events["user.added"]["text"] == "root added the user carol with the roles ADMIN."
    assert events["user.added"]["origin"].startswith("host ")
    assert events["user.password_changed"]["data"]["user"] == "carol"
    assert events["user.removed"]["actor"] == "root"
    assert "carol-secret" not in json.dumps(page)
    only = ok(client.get(EVENTS + "?type=token.", headers=ADMIN), 200)
    assert [e["type"] for e in only["events"]] == ["token.revoked", "token.created"]
    assert ok(client.get(EVENTS + "?limit=1&offset=1", headers=ADMIN), 200)["total"] > 5


def test_signing_out_is_in_the_audit_trail(client):
    from tests.conftest import ADMIN_PASSWORD as password

    logged = client.post("/login", data={"username": "admin", "password": password})
    assert logged.status_code == 200
    ok(client.post("/logout"), 200)
    revoked = ok(client.get(EVENTS + "?type=session.", headers=ADMIN), 200)["events"]
    assert [(e["actor"], e["data"]["user"]) for e in revoked] == [("admin", "admin")]


def test_a_coming_window_and_a_lost_lease_are_told_once(settings, receiver, database_url):
    settings = Settings.from_env(
        {},
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        upcoming_notice=3600,
        poll_interval=0.05,
    )
    apps = [create_app(settings), create_app(settings)]
    clients = [a.test_client().__enter__() for a in apps]
    try:
        add(clients[0], receiver.url, ["window.upcoming", "window.planned", "lease.expired"])
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1800))
        plan = {"start": start, "message": "Database upgrade"}
        ok(clients[0].post("/rest/v1/maintenance/schedule", json=plan, headers=ADMIN), 201)
        store = apps[0].services.store
        process = Actor.process("deploy")
        state = Maintenance(store).enable(process, lease_ttl=10)
        Maintenance(store).holder_ended(process, state.window_id, "exited with status 3", "Failed")
        until(lambda: len(receiver.got) >= 3, 10, "three events")
        time.sleep(1.0)  # two instances see both: each is told once
        assert sorted(receiver.types()) == ["lease.expired", "window.planned", "window.upcoming"]
        upcoming = next(json.loads(b) for _, b, _ in receiver.got if b"upcoming" in b)
        assert upcoming["data"]["start"] == start
        expired = next(json.loads(b) for _, b, _ in receiver.got if b"lease.expired" in b)
        assert expired["data"]["outcome"] == "exited with status 3"
    finally:
        for c in clients:
            c.__exit__(None, None, None)
        for a in apps:
            a.services.close()


def test_the_outbox_is_pruned_with_the_history_but_not_what_is_pending(store):
    windows = Windows(store)
    operator = Actor.operator("ops")
    Maintenance(store).enable(operator)
    Maintenance(store).disable(operator)
    with store.read() as tx:
        assert tx.event_page(0, 10)[0] == 2
    windows.clock = lambda: store.now() + 3 * 86_400_000
    windows.prune(1)
    with store.read() as tx:
        assert tx.event_page(0, 10)[0] == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hoök",  # not ASCII: http.client could not send it
        "http://[::1/",
        "http://[abc]/x",
        "http://127.0.0.1:0/",
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[2002:a9fe:a9fe::]/",  # 6to4 of it
        "http://[::a9fe:a9fe]/",  # IPv4-compatible
    ],
)
def test_more_urls_are_refused_clearly(client, url):
    error(client.post(HOOKS, json={"url": url}, headers=ADMIN), 400, 501)
    assert ok(client.get(HOOKS, headers=ADMIN), 200) == []


def test_a_type_filter_of_any_characters_is_a_clear_error(client):
    error(client.get(EVENTS + "?type=%00", headers=ADMIN), 400, 501)


def test_a_receiver_that_trickles_is_cut_at_the_deadline(client, monkeypatch):
    monkeypatch.setattr(receivers, "TIMEOUT", 2.0)
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:  # accepts, then sends its status line a byte at a time
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 204 No Content\r\n":
                if stop.wait(0.3):
                    return
                conn.sendall(bytes([byte]))

    threading.Thread(target=trickle, daemon=True).start()
    add(client, f"http://127.0.0.1:{server.getsockname()[1]}/", ["maintenance.started"])
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    first = lambda: ok(client.get(HOOKS, headers=ADMIN), 200)[0]["recent"][0]  # noqa: E731
    waited = until(lambda: first()["lastResult"], 6, "the delivery's outcome")
    stop.set()
    server.close()
    assert first()["lastResult"] == "no answer within 2 s" and waited < 4


def test_chat_servers_get_the_text_escaped(client, receiver):
    add(client, receiver.url, ["maintenance.started"])
    body = {"message": "<!channel> see <https://evil.example|the docs> & more"}
    ok(client.post("/rest/v1/maintenance", json=body, headers=ADMIN), 201)
    until(lambda: receiver.got, 5, "a delivery")
    text = json.loads(receiver.got[0][1])["text"]
    assert "<" not in text and "&lt;!channel&gt;" in text and "&amp; more" in text
    kept = ok(client.get(EVENTS + "?type=maintenance.", headers=ADMIN), 200)["events"][0]
    assert kept["text"].endswith(body["message"])  # kept as said


def test_a_dead_receiver_is_tried_once_per_step_not_once_per_event(client, monkeypatch):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()  # nothing listens there: refused at once
    add(client, f"http://127.0.0.1:{port}/", ["maintenance.updated"])
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    for n in range(5):
        ok(client.put("/rest/v1/maintenance", json={"message": f"m{n}"}, headers=ADMIN), 201)
    time.sleep(2.5)
    hook = ok(client.get(HOOKS, headers=ADMIN), 200)[0]
    tries = sum(d["attempts"] for d in hook["recent"])
    assert hook["deliveries"]["pending"] == 5 and tries <= 2, hook
    assert {d["lastResult"] for d in hook["recent"] if d["attempts"]} == {"connection refused"}
