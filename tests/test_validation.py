"""Bad input of every kind: a clear 4xx in the envelope, never a 500, nothing changed,
and no message that repeats what was sent."""

from __future__ import annotations

import base64

import pytest

from bascule.validation import MAX_DEPTH, MAX_DIGITS, NOT_UTF8
from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.test_api import error, ok

# The HTTP layer: the database's backend changes nothing here (test_api runs on both).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

JSON = {**ADMIN, "Content-Type": "application/json"}


@pytest.fixture
def on(client):
    """Maintenance on; what a refused request must leave as it is."""
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    return ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)


def unchanged(client, before) -> None:
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200) == before


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"[" * 1000 + b"]" * 1000, f"nested deeper than {MAX_DEPTH} levels"),
        (b'{"message": ' + b"{" * 60_000, f"nested deeper than {MAX_DEPTH} levels"),
        (b'{"m": ' + b'[{"a": ' * 17 + b"1" + b"}]" * 17 + b"}", f"deeper than {MAX_DEPTH}"),
        (b'{"progressPercentage": ' + b"1" * 5000 + b"}", f"more than {MAX_DIGITS} digits"),
        (b'{"progressPercentage": -' + b"9" * 65 + b"}", f"more than {MAX_DIGITS} digits"),
        (b'{"progressPercentage": 1.' + b"0" * 65 + b"}", f"more than {MAX_DIGITS} digits"),
    ],
    ids=["deep-array", "unclosed-objects", "mixed", "5000-digits", "negative", "fraction"],
)
def test_bodies_nested_too_deep_or_with_numbers_too_long_get_400(client, on, content, rule):
    assert rule in error(
        client.put("/rest/v1/maintenance", content=content, headers=JSON), 400, 501
    )
    unchanged(client, on)


@pytest.mark.parametrize(
    "message",
    ["1" * 1999, "[" * 1999, '{"[\\"' * 300, "\\" + "[" * 100, "a" * 5 + "{" * 40],
    ids=["digits", "brackets", "quotes", "escape", "braces"],
)
def test_digits_and_brackets_inside_a_message_are_only_text(client, on, message):
    ok(client.put("/rest/v1/maintenance", json={"message": message}, headers=ADMIN), 201)
    assert ok(client.get("/rest/v1/maintenance", headers=ADMIN), 200)["log"][-1]["message"] == (
        message
    )


def test_the_shape_check_is_linear_in_the_body(client, on):
    # Quotes that each open a string never closed: a naive string matcher is quadratic.
    content = b'{"message": "' + b'\\"' * 30_000 + b"}"
    error(client.put("/rest/v1/maintenance", content=content, headers=JSON), 400, 501)
    unchanged(client, on)


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "ascii", "nope", '"iso-8859-1"'])
def test_a_charset_other_than_utf8_gets_415(client, on, charset):
    headers = {**ADMIN, "Content-Type": f"application/json; charset={charset}"}
    response = client.put("/rest/v1/maintenance", content=b'{"message": "x"}', headers=headers)
    error(response, 415, 501, NOT_UTF8)
    unchanged(client, on)


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", '"utf-8"'])
def test_utf8_may_be_named_as_it_likes(client, on, charset):
    headers = {**ADMIN, "Content-Type": f"application/json;charset={charset}"}
    body = '{"message": "déjà"}'.encode()
    ok(client.put("/rest/v1/maintenance", content=body, headers=headers), 201)


def test_a_login_form_in_another_charset_gets_415(client):
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"}
    body = f"username=admin&password={ADMIN_PASSWORD}".encode()
    error(client.post("/login", content=body, headers=headers), 415, 501, NOT_UTF8)


def test_a_content_type_not_taken_is_not_repeated(client, on):
    headers = {**ADMIN, "Content-Type": "text/x-secret-stuff"}
    response = client.put("/rest/v1/maintenance", content=b"x", headers=headers)
    error(response, 415, 501, "The body must be application/json.")
    response = client.post("/login", json={"username": "admin", "password": "x"})
    error(response, 415, 501, "The body must be application/x-www-form-urlencoded.")


def test_the_media_type_is_named_under_a_server_that_gives_no_extensions(app, on):
    # uvicorn's scope has no "extensions" (the test client's has): what routing records
    # there must still reach the error handlers.
    import asyncio

    import httpx

    async def put() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            headers = {**ADMIN, "Content-Type": "text/plain"}
            return await c.put("/rest/v1/maintenance", content=b"{}", headers=headers)

    error(asyncio.run(put()), 415, 501, "The body must be application/json.")


@pytest.mark.parametrize("value", ["1" * 5000, "abc", "s3cr3t-value", "-5", "9" * 20])
def test_query_parameter_errors_name_the_parameter_not_the_value(client, on, value):
    message = error(client.get(f"/rest/v1/maintenance/log?offset={value}", headers=ADMIN), 400, 501)
    assert message.startswith("offset ")
    assert value not in message


@pytest.mark.parametrize(
    "message",
    [
        "\u200b",
        "\u200b\ufeff\u202e",
        "\u2060\u2061\u2062",
        "\u00ad\u034f\u061c",
        "\u3164\u115f\uffa0",
        "\u2800",
        "\ufe0f\u200d",
        " \u3000\u00a0\t\n",
        "\x01\x7f",
    ],
)
def test_a_message_of_nothing_visible_is_refused(client, on, message):
    response = client.put("/rest/v1/maintenance", json={"message": message}, headers=ADMIN)
    assert "visible" in error(response, 400, 501)
    unchanged(client, on)


@pytest.mark.parametrize("message", ["\u200bx", "é", "\u0600", "😀", "中"])
def test_one_visible_character_is_enough(client, on, message):
    ok(client.put("/rest/v1/maintenance", json={"message": message}, headers=ADMIN), 201)


def basic_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Basic {token}"}


VALID = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()


@pytest.mark.parametrize(
    "token", [VALID + "$$$", "!" + VALID, VALID[:4] + " " + VALID[4:], VALID + "=", VALID + "\x7f"]
)
def test_basic_credentials_must_be_exactly_base64(client, token):
    error(client.get("/rest/v1/maintenance", headers=basic_header(token)), 401, 101)


def test_exact_basic_credentials_still_work(client):
    ok(client.get("/rest/v1/maintenance", headers=basic_header(VALID)), 200)
