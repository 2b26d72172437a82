"""HAProxy's recipe (bascule.lua asking the decision endpoint), through the real
HAProxy: the scenario, what Bascule is asked, the application's own answers passed
through as they are, and failing open when Bascule is gone or stuck."""

from __future__ import annotations

import pytest

from tests.proxying import asked, behind, check_application_answers, check_slow_bascule, exercise

pytestmark = pytest.mark.slow


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
    assert "x-bascule-bypassed" not in request.headers  # the visitor's own claim


def test_the_applications_answers_pass_through(tmp_path) -> None:
    check_application_answers("haproxy", tmp_path)


def test_a_slow_bascule_fails_open(tmp_path) -> None:
    check_slow_bascule("haproxy", tmp_path)
