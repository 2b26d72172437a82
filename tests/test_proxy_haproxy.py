"""HAProxy's recipe (bascule.lua asking the decision endpoint), through the real
HAProxy: the scenario, what Bascule is asked, the application's own answers passed
through as they are, and failing open when Bascule is gone or stuck."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import tests.proxying
from tests.proxying import behind, exercise
from tests.test_proxy_nginx import asked, check_application_answers, check_slow_bascule
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
def bascule_knows_new_tokens(monkeypatch) -> Iterator[None]:
    """The scenario with a pause after it creates a bypass token, until Bascule itself
    honours it: Bascule learns of a new token from the database's change counters, a
    moment later (~0.15 s), and the scenario uses it at once. The pause is Bascule's,
    not the proxy's: the question goes straight to Bascule."""

    def post(url: str, **kwargs: Any) -> httpx.Response:
        answer = httpx.post(url, **kwargs)
        if url.endswith("/rest/v1/maintenance/bypass") and answer.status_code == 201:
            gate = url.removesuffix("/maintenance/bypass") + "/gate"
            token = answer.json()["data"]["token"]
            asked = {"X-Bascule-Bypass": token, "X-Original-URI": "/"}
            until(
                lambda: httpx.get(gate, headers=asked, timeout=5).status_code == 200,
                5.0,
                "Bascule to honour the new token",
            )
        return answer

    shim = SimpleNamespace(**{name: getattr(httpx, name) for name in dir(httpx)})
    shim.post = post
    monkeypatch.setattr(tests.proxying, "httpx", shim)
    yield


@pytest.mark.usefixtures("bascule_knows_new_tokens")
def test_the_scenario(tmp_path) -> None:
    with behind("haproxy", tmp_path) as proxied:
        exercise(proxied)


def test_what_bascule_is_asked(tmp_path) -> None:
    question, request = asked("haproxy", tmp_path)
    assert (question.method, question.target) == ("GET", "/rest/v1/gate")
    assert question.headers["x-original-uri"] == "/cart/add?item=7"  # the visitor's, not theirs
    assert "x-forwarded-uri" not in question.headers
    assert question.headers["accept"] == "text/html"
    assert question.headers["cookie"] == "bascule-bypass=abc; other=1"
    assert question.headers["x-bascule-bypass"] == "token"
    assert question.headers["x-forwarded-proto"] == "http"
    assert question.body == b""
    assert (request.method, request.target, request.body) == (
        "POST",
        "/cart/add?item=7",
        b"quantity=2",
    )
    assert "x-bascule-bypass" not in request.headers


def test_the_applications_answers_pass_through(tmp_path) -> None:
    check_application_answers("haproxy", tmp_path)


def test_a_slow_bascule_fails_open(tmp_path) -> None:
    check_slow_bascule("haproxy", tmp_path)
