"""The REST contract through the real ASGI app, with response validation on.

One test per row of the reference tables (operations, errors and codes), on
every prefix Alien4Cloud answers on.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bascule.answers import CANNOT_READ, NOT_ALLOWED
from bascule.model import STARTED_MESSAGE
from bascule.validation import NOT_UTF8
from tests.conftest import ADMIN, ADMIN_PASSWORD, VIEWER, basic, break_database

PREFIXES = ["/rest/v1", "/rest/latest", "/rest"]


def ok(response, status: int):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] is None
    return body["data"]


def error(response, status: int, code: int, message: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["data"] is None
    assert body["error"]["code"] == code
    if message is not None:
        assert body["error"]["message"] == message
    return body["error"]["message"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_get_when_off(client, prefix):
    assert ok(client.get(f"{prefix}/maintenance", headers=VIEWER), 200) is None


@pytest.mark.parametrize("prefix", PREFIXES)
def test_enable_update_read_disable(client, prefix):
    url = f"{prefix}/maintenance"
    assert ok(client.post(url, headers=ADMIN), 201) is None
    update = {"message": "Upgrading the database", "progressPercentage": 40}
    assert ok(client.put(url, json=update, headers=ADMIN), 201) is None
    state = ok(client.get(url, headers=VIEWER), 200)
    assert state["id"] == "mms_id"
    assert state["user"] == "admin"
    assert state["userTriggered"] is True
    assert state["progressPercent"] == 40
    assert state["logSize"] == 2
    first, second = state["log"]
    assert (first["user"], first["message"]) == ("admin", STARTED_MESSAGE)
    assert (second["user"], second["message"]) == ("admin", "Upgrading the database")
    assert isinstance(second["date"], int) and second["date"] >= first["date"] > 1.6e12
    assert ok(client.delete(url, headers=ADMIN), 200) is None
    assert ok(client.get(url, headers=VIEWER), 200) is None


def test_enable_sets_progress_to_one(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    assert client.get("/rest/v1/maintenance", headers=ADMIN).json()["data"]["progressPercent"] == 1


def test_enable_twice(client):
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    error(
        client.post("/rest/latest/maintenance", headers=ADMIN),
        409,
        502,
        "The posted object already exist.",
    )


@pytest.mark.parametrize("body", [{}, {"message": None, "progressPercentage": None}])
def test_empty_update_changes_nothing(client, body):
    error(client.put("/rest/v1/maintenance", json=body, headers=ADMIN), 404, 504)
    client.post("/rest/v1/maintenance", headers=ADMIN)
    before = client.get("/rest/v1/maintenance", headers=ADMIN).json()
    ok(client.put("/rest/v1/maintenance", json=body, headers=ADMIN), 201)
    assert client.get("/rest/v1/maintenance", headers=ADMIN).json() == before


def test_update_with_nulls_keeps_what_is_null(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    client.put("/rest/v1/maintenance", json={"progressPercentage": 30}, headers=ADMIN)
    payload = {"message": "only a message", "progressPercentage": None}
    ok(client.put("/rest/v1/maintenance", json=payload, headers=ADMIN), 201)
    ok(
        client.put(
            "/rest/v1/maintenance", json={"message": None, "progressPercentage": 70}, headers=ADMIN
        ),
        201,
    )
    state = client.get("/rest/v1/maintenance", headers=ADMIN).json()["data"]
    assert state["progressPercent"] == 70
    assert [e["message"] for e in state["log"]] == [STARTED_MESSAGE, "only a message"]


@pytest.mark.parametrize("method", ["put", "delete"])
def test_update_or_disable_when_off(client, method):
    kwargs = {"json": {"message": "x"}} if method == "put" else {}
    response = getattr(client, method)("/rest/v1/maintenance", headers=ADMIN, **kwargs)
    error(response, 404, 504, "Maintenance mode is not enabled.")


@pytest.mark.parametrize(("method", "verb"), [("put", "update"), ("delete", "disable")])
def test_automatic_maintenance_is_refused_through_the_api(client, app, method, verb):
    from bascule.model import Actor

    app.services.maintenance.enable(Actor.process("schema-migration"))
    kwargs = {"json": {"message": "x"}} if method == "put" else {}
    response = getattr(client, method)("/rest/v1/maintenance", headers=ADMIN, **kwargs)
    error(
        response,
        409,
        505,
        f"Automatic maintenance cannot be {verb}d through rest api.",
    )
    state = ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)
    assert state["userTriggered"] is False
    assert state["user"] == "schema-migration"
    assert len(state["log"]) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/rest/v1/maintenance"),
        ("post", "/rest/latest/maintenance"),
        ("put", "/rest/maintenance"),
        ("delete", "/rest/v1/maintenance"),
        ("get", "/rest/v1/maintenance/log"),
    ],
)
def test_anonymous_gets_401_code_100_naming_the_path(client, method, path):
    kwargs = {"json": {"message": "x"}} if method == "put" else {}
    response = getattr(client, method)(path, **kwargs)
    error(response, 401, 100, f"Authentication required for this request : {path}")
    assert response.headers["www-authenticate"] == 'Basic realm="Bascule"'


def test_no_challenge_for_browser_scripts(client):
    response = client.get("/rest/v1/maintenance", headers={"X-Requested-With": "XMLHttpRequest"})
    assert response.status_code == 401
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    "headers",
    [
        basic("admin", "wrong-password"),
        basic("nobody", "whatever-1"),
        basic("admin", ""),
        basic("ad\x00min", "whatever-1"),
    ],
)
def test_wrong_credentials_get_401_code_101(client, headers):
    error(
        client.get("/rest/v1/maintenance", headers=headers),
        401,
        101,
        "Authentication failed, check username and password.",
    )


def test_malformed_authorization_header(client):
    response = client.get("/rest/v1/maintenance", headers={"Authorization": "Basic %%%"})
    error(response, 401, 100)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [("post", {}), ("put", {"json": {"message": "x"}}), ("delete", {})],
)
def test_non_admin_gets_403_code_102(client, app, method, kwargs):
    from bascule.model import Actor

    if method != "post":
        app.services.maintenance.enable(Actor.operator("root"))
    before = client.get("/rest/v1/maintenance", headers=VIEWER).json()
    response = getattr(client, method)("/rest/v1/maintenance", headers=VIEWER, **kwargs)
    error(response, 403, 102, "Current user has no sufficient rights.")
    assert client.get("/rest/v1/maintenance", headers=VIEWER).json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"progressPercentage": "x"}, "progressPercentage"),
        ({"progressPercentage": 101}, "progressPercentage"),
        ({"progressPercentage": -1}, "progressPercentage"),
        ({"progressPercentage": 12.5}, "progressPercentage"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 2001}, "message"),
        ({"message": 42}, "message"),
        ({"message": "x", "colour": "red"}, "colour"),
        ([], "object"),
        ("text", "object"),
    ],
)
def test_invalid_update_bodies_get_400_code_501_naming_the_field(client, body, field):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    before = client.get("/rest/v1/maintenance", headers=ADMIN).json()
    message = error(client.put("/rest/v1/maintenance", json=body, headers=ADMIN), 400, 501)
    assert field in message
    assert client.get("/rest/v1/maintenance", headers=ADMIN).json() == before


@pytest.mark.parametrize("content", [b"{not json", b"", b"null"])
def test_malformed_json_gets_400(client, content):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    headers = {**ADMIN, "Content-Type": "application/json"}
    error(client.put("/rest/v1/maintenance", content=content, headers=headers), 400, 501)


def test_wrong_content_type_gets_415(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    headers = {**ADMIN, "Content-Type": "text/plain"}
    error(client.put("/rest/v1/maintenance", content=b"hello", headers=headers), 415, 501)


def test_unknown_route_and_method(client):
    error(
        client.get("/rest/v1/nothing-here", headers=ADMIN),
        404,
        504,
        "No such path.",
    )
    response = client.patch("/rest/v1/maintenance", headers=ADMIN)
    error(response, 405, 501, NOT_ALLOWED)
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {
        "GET",
        "POST",
        "PUT",
        "DELETE",
    }


def test_log_pages(client):
    error(client.get("/rest/v1/maintenance/log", headers=VIEWER), 404, 504)
    client.post("/rest/v1/maintenance", headers=ADMIN)
    for i in range(5):
        client.put("/rest/v1/maintenance", json={"message": f"m{i}"}, headers=ADMIN)
    page = ok(client.get("/rest/v1/maintenance/log?offset=2&limit=2", headers=VIEWER), 200)
    assert page["total"] == 6
    assert page["offset"] == 2
    assert [e["message"] for e in page["log"]] == ["m1", "m2"]
    error(client.get("/rest/v1/maintenance/log?limit=0", headers=VIEWER), 400, 501)
    error(client.get("/rest/v1/maintenance/log?offset=-1", headers=VIEWER), 400, 501)


# -- login, sessions, who am I ------------------------------------------------------------


def login(client, user="admin", password=ADMIN_PASSWORD, path="/login"):
    form = {"username": user, "password": password, "submit": "Login"}
    return client.post(path, data=form)


def test_login_sets_a_session_cookie_that_authenticates(client, settings):
    response = login(client)
    status = ok(response, 200)
    assert status["isLogged"] is True
    assert status["username"] == "admin"
    assert status["roles"] == ["ADMIN"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("JSESSIONID=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert f"max-age={settings.session_ttl}" in cookie.lower()
    assert "secure" not in attributes
    ok(client.post("/rest/v1/maintenance"), 201)
    assert ok(client.get("/rest/v1/maintenance"), 200)["user"] == "admin"


def test_the_session_cookie_is_secure_on_https(app):
    with app.test_client(base_url="https://testserver") as client:
        cookie = login(client).headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert "secure" in attributes


@pytest.mark.parametrize("path", ["/login", "/rest/v1/login", "/rest/latest/login", "/rest/login"])
def test_login_answers_on_every_prefix(client, path):
    assert ok(login(client, path=path), 200)["isLogged"] is True


def test_login_failure(client):
    response = login(client, password="nope-nope")
    error(response, 401, 101, "Authentication failed, check username and password.")
    assert "set-cookie" not in response.headers
    error(client.get("/rest/v1/maintenance"), 401, 100)


@pytest.mark.parametrize(
    ("user", "password"),
    [("ad\x00min", "nope-nope"), ("admin", "nope\x00nope"), ("ad min", "nope-nope")],
)
def test_login_with_characters_no_user_has_is_a_plain_failure(client, user, password):
    response = login(client, user=user, password=password)
    error(response, 401, 101, "Authentication failed, check username and password.")


def test_login_with_missing_fields(client):
    message = error(client.post("/login", data={"username": "admin"}), 400, 501)
    assert "password" in message


def test_logout_revokes_the_session(client, app):
    login(client)
    token = client.cookies["JSESSIONID"]
    response = client.post("/logout")
    ok(response, 200)
    assert "max-age=0" in response.headers["set-cookie"].lower()
    client.cookies.clear()
    error(client.get("/rest/v1/maintenance", headers={"Cookie": f"JSESSIONID={token}"}), 403, 100)
    # revoked in the database too, not only in this process's cache
    assert app.services.auth.check_session(token) is None


def test_logout_without_session(client):
    ok(client.post("/logout"), 200)


def test_expired_session(client, app):
    login(client)
    token = client.cookies["JSESSIONID"]
    clock = app.services.auth.clock
    app.services.auth.clock = lambda: clock() + app.services.settings.session_ttl * 1000 + 1
    error(
        client.get("/rest/v1/maintenance", headers={"Cookie": f"JSESSIONID={token}"}),
        403,
        100,
        "Authentication required for this request : /rest/v1/maintenance",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/rest/v1/maintenance"),
        ("get", "/rest/latest/maintenance/log"),
        ("post", "/rest/maintenance"),
        ("delete", "/rest/v1/maintenance"),
    ],
)
def test_a_session_that_ended_is_a_403_for_clients_to_log_in_again(client, method, path):
    # Alien4Cloud's own clients log in again when a call answers 403, and only then.
    cookie = {"Cookie": "JSESSIONID=forged"}
    error(getattr(client, method)(path, headers=cookie), 403, 100)
    error(getattr(client, method)(path), 401, 100)  # no credentials at all: 401
    assert client.get("/rest/v1/maintenance").status_code == 401
    assert client.get("/rest/v1/maintenance", headers=ADMIN).json()["data"] is None  # nothing done


def test_valid_basic_credentials_beside_a_dead_session_cookie_are_enough(client):
    ok(client.get("/rest/v1/maintenance", headers={"Cookie": "JSESSIONID=x", **ADMIN}), 200)


def test_wrong_basic_credentials_beside_a_dead_session_cookie_ask_for_new_ones(client):
    response = client.get(
        "/rest/v1/maintenance", headers={"Cookie": "JSESSIONID=x", **basic("admin", "no")}
    )
    error(response, 401, 101)
    assert response.headers["www-authenticate"] == 'Basic realm="Bascule"'


def test_auth_status_with_a_dead_session_cookie_is_anonymous(client):
    status = ok(client.get("/rest/v1/auth/status", headers={"Cookie": "JSESSIONID=x"}), 200)
    assert status["isLogged"] is False


def test_viewer_session_reads_but_cannot_change(client):
    ok(login(client, "viewer", "viewer-secret-1"), 200)
    ok(client.get("/rest/v1/maintenance"), 200)
    error(client.post("/rest/v1/maintenance"), 403, 102)


def test_password_change_revokes_sessions_and_cached_credentials(client, app):
    ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)  # cached now
    login(client)
    app.services.auth.set_password("admin", "a-new-password")
    client_cookie = client.cookies["JSESSIONID"]
    client.cookies.clear()
    error(client.get("/rest/v1/maintenance", headers=ADMIN), 401, 101)
    error(
        client.get("/rest/v1/maintenance", headers={"Cookie": f"JSESSIONID={client_cookie}"}),
        403,
        100,
    )
    ok(client.get("/rest/v1/maintenance", headers=basic("admin", "a-new-password")), 200)


def test_removed_user_is_refused_at_once(client, app):
    ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    app.services.auth.remove_user("viewer")
    error(client.get("/rest/v1/maintenance", headers=VIEWER), 401, 101)


def test_auth_status(client):
    anonymous = ok(client.get("/rest/v1/auth/status"), 200)
    assert anonymous == {
        "isLogged": False,
        "username": None,
        "githubUsername": None,
        "roles": [],
        "groups": [],
        "authSystem": "bascule",
    }
    assert ok(client.get("/rest/latest/auth/status", headers=VIEWER), 200)["username"] == "viewer"
    login(client)
    status = ok(client.get("/rest/auth/status"), 200)
    assert (status["isLogged"], status["username"], status["roles"]) == (True, "admin", ["ADMIN"])


def test_utf8_basic_credentials(client, app):
    app.services.auth.add_user("zoë", "pässwörd-123", ["ADMIN"])
    import base64

    token = base64.b64encode("zoë:pässwörd-123".encode()).decode()
    ok(client.post("/rest/v1/maintenance", headers={"Authorization": f"Basic {token}"}), 201)
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)["user"] == "zoë"


def test_health(client):
    report = ok(client.get("/rest/v1/admin/health"), 200)
    age = report.pop("stateAge")
    assert report == {
        "status": "UP",
        "database": "UP",
        "read": "UP",
        "write": "UP",
        "maintenance": False,
        "alertmanager": None,  # none configured
    }
    assert 0 <= age < 1.5  # confirmed at least every second
    client.post("/rest/v1/maintenance", headers=ADMIN)
    assert ok(client.get("/rest/latest/admin/health"), 200)["maintenance"] is True


def test_health_when_the_database_is_gone(client, app):
    break_database(app.services.store)
    deadline = time.monotonic() + 3  # the monitor looks at least once a second
    while (response := client.get("/rest/v1/admin/health")).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == {"code": 503, "message": CANNOT_READ}
    assert (body["data"]["status"], body["data"]["read"]) == ("DOWN", "DOWN")


def test_logout_and_auth_status_tell_when_the_database_is_gone(client, app):
    # A session this process has not seen: only the database can tell.
    token = app.services.auth.login("admin", ADMIN_PASSWORD).token
    app.services.auth.forget_sessions()
    break_database(app.services.store)
    cookie = {"Cookie": f"JSESSIONID={token}"}
    error(client.post("/logout", headers=cookie), 503, 503, "The database is unavailable.")
    error(client.get("/rest/v1/auth/status", headers=cookie), 503, 503)


def test_logout_with_a_cookie_of_no_session_writes_nothing(client, app):
    versions = app.services.store.versions()
    ok(client.post("/logout", headers={"Cookie": "JSESSIONID=nothing"}), 200)
    assert app.services.store.versions() == versions  # no process drops its sessions


def test_logout_revokes_the_cookie_sent_whatever_the_credentials(client, app):
    token = app.services.auth.login("admin", ADMIN_PASSWORD).token
    ok(client.post("/logout", headers={"Cookie": f"JSESSIONID={token}", **VIEWER}), 200)
    assert app.services.auth.check_session(token) is None


CROSS_SITE = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver:8080"},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
]
SAME_SITE = [
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "http://TestServer"},
    {"Origin": "https://maint.example", "X-Forwarded-Host": "maint.example"},
    {},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_browser_page_of_another_site_cannot_change_anything(client, headers):
    refused = "Cross-origin request refused: a page of another site may not change anything here."
    error(client.post("/rest/v1/maintenance", headers={**ADMIN, **headers}), 403, 102, refused)
    assert ok(client.get("/rest/v1/maintenance", headers={**ADMIN, **headers}), 200) is None
    client.post("/rest/v1/maintenance", headers=ADMIN)
    update = {"message": "from elsewhere"}
    error(client.put("/rest/v1/maintenance", json=update, headers={**ADMIN, **headers}), 403, 102)
    error(client.delete("/rest/v1/maintenance", headers={**ADMIN, **headers}), 403, 102)
    form = {"username": "admin", "password": ADMIN_PASSWORD}
    error(client.post("/login", data=form, headers=headers), 403, 102)
    error(client.post("/logout", headers=headers), 403, 102)
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)["logSize"] == 1


@pytest.mark.parametrize("headers", SAME_SITE)
def test_the_same_site_and_clients_that_are_not_browsers_may(client, headers):
    ok(client.post("/rest/v1/maintenance", headers={**ADMIN, **headers}), 201)
    ok(client.delete("/rest/v1/maintenance", headers={**ADMIN, **headers}), 200)


def test_the_spec_and_its_ui_are_served(client):
    spec = client.get("/rest/v1/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "Bascule"
    assert client.get("/rest/v1/openapi.yaml").status_code == 200
    for page in ("/rest/v1/ui/", "/rest/v1/ui/index.html", "/rest/v1/ui/swagger-ui.css"):
        ui = client.get(page)
        assert ui.status_code == 200
        # never inside another site's frame (a click-jacked "Try it out")
        assert ui.headers["x-frame-options"] == "DENY"
        assert ui.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert ui.headers["x-content-type-options"] == "nosniff"
    assert "swagger" in client.get("/rest/v1/ui/").text.lower()


# -- hostile and odd input ------------------------------------------------------------------


def test_a_body_without_content_type_is_read_as_the_declared_type(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    response = client.put(
        "/rest/v1/maintenance", content=b'{"progressPercentage": 5}', headers=ADMIN
    )
    ok(response, 201)
    assert client.get("/rest/v1/maintenance", headers=ADMIN).json()["data"]["progressPercent"] == 5
    form = f"username=admin&password={ADMIN_PASSWORD}".encode()
    ok(client.post("/login", content=form), 200)


def test_bodies_are_limited_to_64_kib(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    huge = b'{"message": "' + b"x" * 70000 + b'"}'
    response = client.put(
        "/rest/v1/maintenance", content=huge, headers={**ADMIN, "Content-Type": "application/json"}
    )
    error(response, 413, 501, "The request body is larger than 65536 bytes.")

    def chunks():
        yield huge[:40000]
        yield huge[40000:]

    # without a Content-Length (chunked), the same limit
    response = client.put(
        "/rest/v1/maintenance",
        content=chunks(),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    error(response, 413, 501, "The request body is larger than 65536 bytes.")
    assert len(client.get("/rest/v1/maintenance", headers=ADMIN).json()["data"]["log"]) == 1


@pytest.mark.parametrize(
    "framing", [(b"transfer-encoding", b"chunked"), (b"content-length", b"1000")]
)
def test_a_client_that_leaves_in_the_middle_of_its_body_changes_nothing(
    client, app, caplog, framing
):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    caplog.set_level("INFO")
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": "/rest/v1/maintenance",
        "raw_path": b"/rest/v1/maintenance",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            framing,
            *((k.lower().encode(), v.encode()) for k, v in ADMIN.items()),
        ],
    }
    messages = iter(
        [
            {"type": "http.request", "body": b'{"message": "half', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict] = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    caplog.clear()
    asyncio.run(app(scope, receive, send))
    assert sent == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "PUT /rest/v1/maintenance: the client left before sending its whole body")
    ]
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)["logSize"] == 1


def test_an_unknown_charset_is_refused(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    headers = {**ADMIN, "Content-Type": "application/json;charset=nope"}
    response = client.put("/rest/v1/maintenance", content=b'{"message": "m"}', headers=headers)
    error(response, 415, 501, NOT_UTF8)
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)["logSize"] == 1


def test_a_chunked_body_is_read_like_any_other(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)

    def chunks():
        yield b'{"message": "Copy'
        yield b'ing files", "progressPercentage": 30}'

    headers = {**ADMIN, "Content-Type": "application/json"}
    ok(client.put("/rest/v1/maintenance", content=chunks(), headers=headers), 201)
    state = ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)
    assert (state["log"][-1]["message"], state["progressPercent"]) == ("Copying files", 30)
    form = iter([b"username=admin&", f"password={ADMIN_PASSWORD}".encode()])
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    ok(client.post("/login", content=form, headers=headers), 200)


@pytest.mark.parametrize("raw", [rb'{"message": "\ud800"}', rb'{"message": "a\u0000b"}'])
def test_unstorable_messages_are_refused(client, raw):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    headers = {**ADMIN, "Content-Type": "application/json"}
    message = error(client.put("/rest/v1/maintenance", content=raw, headers=headers), 400, 501)
    assert "message" in message


def test_a_password_is_never_echoed_nor_logged(client, caplog):
    secret = "S3cret-" + "p" * 1100
    with caplog.at_level("DEBUG"):
        response = client.post("/login", data={"username": "admin", "password": secret})
        bad_type = client.post("/login", data={"username": "admin", "password": ""})
    assert secret[:20] not in response.text
    assert response.status_code in (400, 401)
    assert bad_type.status_code == 400
    assert secret[:20] not in caplog.text


def test_failed_form_login_sends_no_basic_challenge(client):
    response = client.post("/login", data={"username": "admin", "password": "wrong-one"})
    assert response.status_code == 401
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("path", ["/rest/v1/maintenance/", "/rest/v1//maintenance", "/nothing"])
def test_near_miss_paths_get_a_404_envelope_not_a_redirect(client, path):
    error(client.get(path, headers=ADMIN, follow_redirects=False), 404, 504)


def test_huge_offsets_are_refused(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    response = client.get("/rest/v1/maintenance/log?offset=9223372036854775808", headers=ADMIN)
    error(response, 400, 501)


def test_the_contract_file_itself_is_served(client):
    import json

    from bascule import spec

    assert client.get("/rest/v1/openapi.yaml").content == spec.SPEC_FILE.read_bytes()
    assert client.get("/rest/v1/openapi.json").json() == json.loads(spec.as_json())
    assert client.get("/rest/v1/openapi.json").json()["servers"][1]["url"] == "/rest/latest"


def test_behind_a_proxy_prefix_the_contract_names_urls_under_it(app, client):
    import yaml
    from openapi_spec_validator import validate

    from bascule import spec

    # uvicorn --root-path /svc: the proxy took /svc off, uvicorn puts it back in the path.
    root = "/svc"
    with app.test_client(root_path=root) as behind:
        document = behind.get(f"{root}/rest/v1/openapi.json").json()
        as_yaml = yaml.safe_load(behind.get(f"{root}/rest/v1/openapi.yaml").content)
        ui = behind.get(f"{root}/rest/v1/ui/").text
    assert as_yaml == document
    validate(document)
    bases = ["/rest/v1", "/rest/latest", "/rest"]
    assert [server["url"] for server in document["servers"]] == [root + b for b in bases]
    for path in ("/login", "/logout", "/metrics"):  # also at the root
        urls = [server["url"] for server in document["paths"][path]["servers"]]
        assert urls == [root + b for b in ["/", *bases]]
    original = spec.load()
    for moved in (document, original):  # nothing else differs
        for holder in (moved, *moved["paths"].values()):
            holder.pop("servers", None)
    assert document == original
    assert f'url: "{root}/rest/v1/openapi.json"' in ui  # where Swagger UI reads the contract
    # Served without the prefix, the contract is the file itself still.
    assert client.get("/rest/v1/openapi.yaml").content == spec.SPEC_FILE.read_bytes()
    assert client.get("/rest/v1/openapi.json").json()["servers"][0]["url"] == "/rest/v1"


def test_a_logout_does_not_forget_other_users_credentials(client, app):
    ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    login(client)
    ok(client.post("/logout"), 200)
    assert app.services.auth.cached_credentials("viewer", "viewer-secret-1") is not None


def test_a_stronger_hash_setting_upgrades_the_hash_without_logging_out(client, app):
    from argon2 import PasswordHasher

    auth = app.services.auth
    login(client)
    auth.hasher = PasswordHasher(time_cost=4)
    auth.forget_users()
    ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)  # rehashed on the way
    with app.services.store.read() as tx:
        stored = tx.get_user("admin").password_hash
    assert "t=4" in stored
    ok(client.get("/rest/v1/maintenance"), 200)  # the session survived


def test_the_console_is_served_and_stays_open_during_maintenance(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    page = client.get("/maintenance")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/maintenance/nothing.js").status_code == 503  # not one of its files


def test_read_only_maintenance_lets_reads_through(client):
    ok(client.post("/rest/v1/maintenance", headers=ADMIN, json={"mode": "read-only"}), 201)
    state = ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)
    assert state["mode"] == "read-only"
    # No application is mounted: a read goes through to the 404 of "no such path".
    assert client.get("/shop").status_code == 404
    assert client.head("/shop").status_code == 404
    refused = client.post("/shop")
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert "read-only" in refused.json()["error"]["message"]
    assert client.put("/shop", json={}).status_code == 503


def test_enable_without_a_body_is_full_maintenance_as_alien4cloud_sends_it(client):
    ok(client.post("/rest/v1/maintenance", headers=ADMIN, content=b""), 201)
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)["mode"] == "full"
    assert client.get("/shop").status_code == 503


@pytest.mark.parametrize(
    ("body", "status"),
    [({"mode": "half"}, 400), ({"mode": "read-only", "extra": 1}, 400), ({"message": " "}, 400)],
)
def test_a_bad_enable_body_changes_nothing(client, body, status):
    assert client.post("/rest/v1/maintenance", headers=ADMIN, json=body).status_code == status
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200) is None


def test_a_first_message_with_the_mode(client):
    body = {"mode": "read-only", "message": "Moving the database"}
    ok(client.post("/rest/v1/maintenance", headers=ADMIN, json=body), 201)
    state = ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)
    assert [entry["message"] for entry in state["log"]][1:] == ["Moving the database"]
