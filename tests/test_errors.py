"""Every error path answers the RestResponse envelope with a status the spec declares."""

from __future__ import annotations

import pytest

from bascule import spec
from bascule.model import Actor
from tests.conftest import ADMIN, VIEWER, basic, break_database

# The HTTP layer: the database's backend changes nothing here (test_api runs on both).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# (method, path, request kwargs, setup, expected status, expected error code)
ERROR_PATHS = [
    ("get", "/rest/v1/maintenance", {}, None, 401, 100),
    ("get", "/rest/v1/maintenance", {"headers": basic("admin", "wrong")}, None, 401, 101),
    ("post", "/rest/v1/maintenance", {"headers": VIEWER}, None, 403, 102),
    ("post", "/rest/v1/maintenance", {"headers": ADMIN}, "on", 409, 502),
    ("put", "/rest/v1/maintenance", {"headers": ADMIN, "json": {"message": "x"}}, None, 404, 504),
    ("put", "/rest/v1/maintenance", {"headers": ADMIN, "json": {"message": "x"}}, "auto", 409, 505),
    ("put", "/rest/v1/maintenance", {"headers": ADMIN, "json": {"x": 1}}, "on", 400, 501),
    (
        "put",
        "/rest/v1/maintenance",
        {"headers": {**ADMIN, "Content-Type": "application/json"}, "content": b'"\xff"'},
        "on",
        400,
        501,
    ),
    (
        "put",
        "/rest/v1/maintenance",
        {"headers": {**ADMIN, "Content-Type": "text/plain"}, "content": b"x"},
        "on",
        415,
        501,
    ),
    ("put", "/rest/v1/maintenance", {"headers": VIEWER, "json": {"message": "x"}}, "on", 403, 102),
    ("delete", "/rest/v1/maintenance", {"headers": ADMIN}, None, 404, 504),
    ("delete", "/rest/v1/maintenance", {"headers": ADMIN}, "auto", 409, 505),
    ("delete", "/rest/v1/maintenance", {"headers": VIEWER}, "on", 403, 102),
    ("get", "/rest/v1/maintenance/log", {"headers": VIEWER}, None, 404, 504),
    ("get", "/rest/v1/maintenance/log?limit=5000", {"headers": VIEWER}, "on", 400, 501),
    ("post", "/login", {"data": {"username": "admin", "password": "wrong"}}, None, 401, 101),
    ("post", "/login", {"data": {"username": "admin"}}, None, 400, 501),
    ("post", "/login", {"json": {"username": "admin", "password": "x"}}, None, 415, 501),
    (
        "put",
        "/rest/v1/maintenance",
        {"headers": ADMIN, "json": {"message": "x"}},
        "db-gone",
        503,
        503,
    ),
    ("get", "/rest/v1/maintenance", {"headers": ADMIN}, "crash", 500, 500),
    ("get", "/rest/v1/no-such-thing", {}, None, 404, 504),
    ("patch", "/rest/v1/maintenance", {"headers": ADMIN}, None, 405, 501),
    ("get", "/rest/v1/maintenance", {"headers": ADMIN}, "guessed", 429, 103),
    ("post", "/login", {"data": {"username": "admin", "password": "x"}}, "guessed", 429, 103),
]


def declared_statuses(method: str, path: str) -> set[int] | None:
    for base_path, op_method, operation in spec.operations():
        for base in spec.path_bases(spec._load()["paths"][base_path]):
            if base + base_path == path.split("?")[0] and op_method == method:
                return {int(s) for s in operation["responses"]}
    return None


@pytest.mark.parametrize(("method", "path", "kwargs", "setup", "status", "code"), ERROR_PATHS)
def test_error_shape(client, app, monkeypatch, method, path, kwargs, setup, status, code):
    if setup == "on":
        app.services.maintenance.enable(Actor.operator("root"))
    elif setup == "auto":
        app.services.maintenance.enable(Actor.process("migration"))
    elif setup == "db-gone":
        app.services.maintenance.enable(Actor.operator("root"))
        client.get("/rest/v1/maintenance", headers=ADMIN)  # credentials cached
        break_database(app.services.store)
    elif setup == "guessed":  # as many wrong passwords from this address as allowed
        for _ in range(app.services.throttle.per_address):
            client.get("/rest/v1/maintenance", headers=basic("admin", "wrong"))
    elif setup == "crash":
        import handlers.maintenance

        def crash():
            raise RuntimeError("secret internals")

        monkeypatch.setattr(handlers.maintenance, "current", crash)
        client = app.test_client(raise_server_exceptions=False)
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"data", "error"}
    assert body["data"] is None
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text and "secret internals" not in response.text
    declared = declared_statuses(method, path)
    if declared is not None:  # an operation of the spec: the status must be declared
        assert status in declared
