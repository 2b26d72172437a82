"""Bypass tokens and the decision endpoint, through the real application: a way in for
the team while maintenance is on, and the same decision for a reverse proxy."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, VIEWER
from tests.test_api import error, ok

BROWSER = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
API = "/rest/v1/maintenance"


@pytest.fixture
def on(client):
    ok(client.post(API, headers=ADMIN), 201)


def new_token(client, name: str = "testers", **body) -> str:
    created = ok(client.post(f"{API}/bypass", headers=ADMIN, json={"name": name, **body}), 201)
    assert created["name"] == name and created["createdBy"] == "admin"
    assert created["uses"] == 0 and created["lastUsedAt"] is None
    return str(created["token"])


def decide(client, uri: str, headers: dict[str, str] | None = None, query: str = ""):
    return client.get(
        f"/rest/v1/gate{query}",
        headers={"X-Original-URI": uri, **(headers or {})},
        follow_redirects=False,
    )


def test_a_token_is_shown_once_and_listed_without_its_value(client):
    token = new_token(client, expiresIn=7200)
    listed = ok(client.get(f"{API}/bypass", headers=ADMIN), 200)
    assert [t["name"] for t in listed] == ["testers"]
    assert "token" not in listed[0] and token not in str(listed)
    assert listed[0]["expiresAt"] - listed[0]["createdAt"] == 7200 * 1000
    assert listed[0]["expired"] is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "../x"}, "name is not valid"),
        ({"name": "ok", "expiresIn": 10}, "at least 60"),
        ({"name": "ok", "expiresIn": 10**9}, "at most 31536000"),
    ],
)
def test_bad_tokens_are_refused_and_change_nothing(client, body, message):
    response = client.post(f"{API}/bypass", headers=ADMIN, json=body)
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert ok(client.get(f"{API}/bypass", headers=ADMIN), 200) == []


def test_names_are_unique_and_only_admins_manage_tokens(client):
    new_token(client)
    error(client.post(f"{API}/bypass", headers=ADMIN, json={"name": "testers"}), 409, 502)
    error(client.post(f"{API}/bypass", headers=VIEWER, json={"name": "other"}), 403, 102)
    error(client.get(f"{API}/bypass", headers=VIEWER), 403, 102)
    error(client.delete(f"{API}/bypass/testers", headers=VIEWER), 403, 102)
    error(client.delete(f"{API}/bypass/nobody", headers=ADMIN), 404, 504)
    error(client.get(f"{API}/bypass"), 401, 100)


def test_a_token_lets_its_bearer_through_the_gate_and_says_so(client, app, on):
    token = new_token(client)  # enforced by this process at once: no refresh needed
    assert client.get("/shop").status_code == 503
    for credentials in ({"X-Bascule-Bypass": token}, {"Cookie": f"bascule-bypass={token}"}):
        passed = client.get("/shop", headers=credentials)
        # No application is mounted: the gate let it through to the 404 of "no such path".
        assert passed.status_code == 404, credentials
        assert passed.headers["x-bascule-bypassed"] == "testers"
    for wrong in (token[:-1] + "x", token + "x", "", "x" * 5000, "%E9"):
        assert client.get("/shop", headers={"X-Bascule-Bypass": wrong}).status_code == 503


def test_a_token_in_the_url_is_traded_for_a_cookie(client, app, on):
    token = new_token(client)
    app.services.monitor.refresh()
    sent_back = client.get(f"/shop/cart?page=2&bascule-bypass={token}", follow_redirects=False)
    assert sent_back.status_code == 303
    assert sent_back.headers["location"] == "/shop/cart?page=2"
    cookie = sent_back.headers["set-cookie"]
    assert cookie.startswith(f"bascule-bypass={token};")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert sent_back.headers["referrer-policy"] == "no-referrer"
    client.cookies.clear()  # the test client keeps cookies, as a browser would
    wrong = client.get("/shop?bascule-bypass=nope", follow_redirects=False)
    assert wrong.status_code == 503


def test_a_revoked_or_expired_token_is_refused_like_none(client, app, on, monkeypatch):
    token = new_token(client)
    app.services.monitor.refresh()
    assert client.get("/shop", headers={"X-Bascule-Bypass": token}).status_code == 404
    ok(client.delete(f"{API}/bypass/testers", headers=ADMIN), 200)
    app.services.monitor.refresh()
    assert client.get("/shop", headers={"X-Bascule-Bypass": token}).status_code == 503
    other = new_token(client, "later")
    app.services.monitor.refresh()
    tokens = app.services.monitor.bypass
    real_now = tokens.clock
    monkeypatch.setattr(tokens, "clock", lambda: real_now() + 86400 * 1000 + 1)
    assert client.get("/shop", headers={"X-Bascule-Bypass": other}).status_code == 503


def test_uses_are_counted(client, app, on):
    token = new_token(client)
    app.services.monitor.refresh()
    for _ in range(3):
        client.get("/shop", headers={"X-Bascule-Bypass": token})
    app.services.monitor.flush_uses()
    listed = ok(client.get(f"{API}/bypass", headers=ADMIN), 200)
    assert listed[0]["uses"] == 3 and listed[0]["lastUsedAt"] is not None


def test_the_decision_is_the_gates(client, app):
    assert (decide(client, "/shop").status_code, decide(client, "/shop").text) == (200, "")
    ok(client.post(API, headers=ADMIN), 201)
    refused = decide(client, "/shop?x=1")
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"] == {"code": 0, "message": "Maintenance mode is enabled."}
    page = decide(client, "/shop", BROWSER)
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert decide(client, "/shop", query="?deny=403").status_code == 403
    assert decide(client, "/shop", query="?deny=403").content == b""
    token = new_token(client)
    app.services.monitor.refresh()
    passed = decide(client, "/shop", {"X-Bascule-Bypass": token})
    assert passed.status_code == 200 and passed.headers["x-bascule-bypassed"] == "testers"
    traded = decide(client, f"/shop?bascule-bypass={token}")
    assert traded.status_code == 303 and traded.headers["location"] == "/shop"
    client.cookies.clear()
    assert decide(client, f"/shop?bascule-bypass={token}", query="?deny=403").status_code == 403
    # Traefik's and Caddy's header; a whole URL; a path without its slash
    forwarded = client.get("/rest/v1/gate", headers={"X-Forwarded-Uri": "/shop"})
    assert forwarded.status_code == 503
    assert decide(client, "http://example.test/shop").status_code == 503


def test_the_decision_endpoint_refuses_what_it_cannot_read(client):
    error(decide(client, "/shop", query="?deny=500"), 400, 501)
    error(decide(client, "/" + "x" * 9000), 400, 501)
    refused = client.post("/rest/v1/gate", headers={"X-Original-URI": "/"})
    error(refused, 405, 501)
    assert refused.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("mode", [None, "full", "read-only"])
def test_a_token_in_a_url_is_taken_out_of_it_whatever_the_mode(app_with_allow, mode):
    # Maintenance off, read-only (a GET goes through), on, an open path: the token never
    # reaches the application nor a log behind, neither through the gate nor a proxy.
    client = app_with_allow
    token = new_token(client)
    if mode is not None:
        ok(client.post(API, headers=ADMIN, json={"mode": mode}), 201)
    client.app.services.monitor.refresh()
    for path in ["/shop?bascule-bypass={}&page=2", "/healthz?bascule-bypass={}"]:
        sent_back = client.get(path.format(token), follow_redirects=False)
        assert sent_back.status_code == 303, (mode, path)
        assert sent_back.headers["location"] == path.split("?")[0] + (
            "?page=2" if "page" in path else ""
        )
        assert sent_back.headers["set-cookie"].startswith(f"bascule-bypass={token};")
        client.cookies.clear()
        asked = decide(client, path.format(token))
        assert (
            asked.status_code == 303 and asked.headers["location"] == sent_back.headers["location"]
        )
        first = decide(client, path.format(token), query="?deny=403")
        assert first.status_code == 403, "asked again without deny, for the 303"
    client.app.services.monitor.flush_uses()
    listed = ok(client.get(f"{API}/bypass", headers=ADMIN), 200)
    assert listed[0]["uses"] == 4, "each 303 counted once, a refusal with deny not at all"


def test_a_uri_with_a_fragment_opens_no_path(app_with_allow):
    client = app_with_allow
    ok(client.post(API, headers=ADMIN), 201)
    for uri in ["/healthz#/../admin", "/healthz#", "/static/site.css#x"]:
        assert decide(client, uri).status_code == 503, uri


def test_paths_the_application_keeps_open(app_with_allow):
    client = app_with_allow
    ok(client.post(API, headers=ADMIN), 201)
    assert decide(client, "/healthz").status_code == 200
    assert decide(client, "/static/site.css").status_code == 200
    assert decide(client, "/static/../x").status_code == 503
    assert decide(client, "/healthz/x").status_code == 503
    assert client.get("/healthz").status_code == 404  # through the gate, to "no such path"
    assert client.get("/shop").status_code == 503


@pytest.fixture
def app_with_allow(settings):
    import dataclasses

    from bascule.app import create_app

    app = create_app(
        dataclasses.replace(settings, allow=("/healthz",), allow_prefixes=("/static/",))
    )
    try:
        with app.test_client() as client:
            yield client
    finally:
        app.services.close()


def test_a_read_only_decision_needs_the_method(client):
    ok(client.post(API, headers=ADMIN, json={"mode": "read-only"}), 201)
    for header in ("X-Original-Method", "X-Forwarded-Method"):
        for method, status in (("GET", 200), ("head", 200), ("OPTIONS", 200), ("POST", 503)):
            assert decide(client, "/shop", {header: method}).status_code == status, method
    assert decide(client, "/shop").status_code == 503  # not told: not let through
    refused = decide(client, "/shop", {"X-Original-Method": "DELETE"})
    assert "read-only" in refused.json()["error"]["message"]
    error(decide(client, "/shop", {"X-Original-Method": "X" * 40}), 400, 501)


def test_a_visitor_cannot_speak_for_the_proxy(client):
    ok(client.post(API, headers=ADMIN, json={"mode": "read-only"}), 201)
    # a POST the proxy names, beside a visitor's own "GET": not let through
    both = {"X-Original-Method": "POST", "X-Forwarded-Method": "GET"}
    assert decide(client, "/shop", both).status_code == 503
    # two different requests named: none of them is an open path
    assert decide(client, "/healthz", {"X-Forwarded-Uri": "/shop"}).status_code == 503
    # the header that names the request is read however many come before it
    padded = [(f"x-pad-{i}", "x") for i in range(80)] + [("x-original-method", "GET")]
    response = client.get("/rest/v1/gate", headers=padded)
    assert response.status_code == 200


def test_a_token_in_the_url_never_sends_the_visitor_to_another_site(client, app, on):
    # (the in-process gate builds its redirect with the same function)
    token = new_token(client)
    traded = decide(client, f"//evil.example/x?bascule-bypass={token}")
    assert traded.status_code == 303 and traded.headers["location"] == "/evil.example/x"


def test_the_application_never_gets_the_token_nor_a_visitors_claim(settings, tmp_path):
    import dataclasses
    import json

    from bascule.app import create_app

    app_file = tmp_path / "echo_app.py"
    app_file.write_text(
        "import json\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    body = json.dumps([[k.decode(), v.decode()] for k, v in scope['headers']])\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body.encode()})\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        app = create_app(dataclasses.replace(settings, app="echo_app:app"))
        with app.test_client() as client:
            token = new_token(client)
            headers = {"X-Bascule-Bypass": token, "X-Bascule-Bypassed": "me", "Cookie": "a=1"}
            for body in (None, {"mode": "read-only"}):
                ok(client.post(API, headers=ADMIN, json=body), 201)
                seen = dict(json.loads(client.get("/shop", headers=headers).text))
                assert "x-bascule-bypass" not in seen and "x-bascule-bypassed" not in seen
                assert seen["cookie"] == "a=1"
                ok(client.delete(API, headers=ADMIN), 200)
        app.services.close()
    finally:
        sys.path.remove(str(tmp_path))


def test_no_decision_may_be_kept_by_a_cache(app_with_allow):
    # "Let it through, maintenance is off" is the same whatever the request named or
    # carried, and, as every other answer, no cache may keep it (a change would not show).
    client = app_with_allow
    token = new_token(client)
    off = [("content-length", "0"), ("cache-control", "no-store")]
    for uri, headers, query in [
        ("/shop", {}, ""),
        ("/shop", BROWSER, ""),
        ("/shop", {}, "?deny=403"),
        ("/shop", {}, "?deny=401"),
        ("/shop", {}, "?deny=403&other=1"),  # not the short way
        ("/healthz", {}, ""),
        ("/rest/v1/maintenance", {}, ""),  # Bascule's own
        ("/shop", {"X-Bascule-Bypass": token, "Cookie": f"bascule-bypass={token}"}, ""),
        ("/shop", {"X-Original-Method": "DELETE", "X-Forwarded-Uri": "/healthz"}, ""),
    ]:
        answer = decide(client, uri, headers, query)
        assert (answer.status_code, answer.content) == (200, b""), (uri, headers, query)
        assert answer.headers.multi_items() == off, (uri, headers, query)
    head = client.head("/rest/v1/gate", headers={"X-Original-URI": "/shop"})
    assert (head.status_code, head.headers.multi_items()) == (200, off)

    ok(client.post(API, headers=ADMIN), 201)
    others = [
        decide(client, "/shop"),
        decide(client, "/shop", BROWSER),
        decide(client, "/shop", query="?deny=403"),
        decide(client, "/healthz"),  # an open path
        decide(client, "/shop", {"X-Bascule-Bypass": token}),
        decide(client, f"/shop?bascule-bypass={token}"),
    ]
    client.cookies.clear()
    ok(client.delete(API, headers=ADMIN), 200)
    ok(client.post(API, headers=ADMIN, json={"mode": "read-only"}), 201)
    others += [
        decide(client, "/shop", {"X-Original-Method": "GET"}),
        decide(client, "/shop", {"X-Original-Method": "POST"}),
    ]
    ok(client.delete(API, headers=ADMIN), 200)
    others += [
        decide(client, "/shop", query="?deny=500"),
        decide(client, "/" + "x" * 9000),
        client.post("/rest/v1/gate", headers={"X-Original-URI": "/shop"}),
        decide(client, f"/shop?bascule-bypass={token}"),  # off: taken out all the same
    ]
    statuses = [answer.status_code for answer in others]
    assert statuses == [503, 503, 403, 200, 200, 303, 200, 503, 400, 400, 405, 303]
    decisions = [answer for answer in others if answer.status_code in (200, 403, 503)]
    assert all(answer.headers["cache-control"] == "no-store" for answer in decisions)
