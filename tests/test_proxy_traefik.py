"""Traefik's recipe (forwardAuth to the decision endpoint, through a route of its own
that fails open), through the real Traefik: the scenario, what Bascule is asked, the
application's own answers passed through as they are, and failing open when Bascule
is gone or stuck. Traefik cannot mark a bypass on the visitor's answer (see
bascule/proxies/traefik.py): the application's request is marked, not the answer."""

from __future__ import annotations

import pytest

from tests.proxying import asked, behind, check_application_answers, check_slow_bascule, exercise

pytestmark = pytest.mark.slow


def test_the_scenario(tmp_path) -> None:
    with behind("traefik", tmp_path) as proxied:
        exercise(proxied, marks_bypass=False)


def test_what_bascule_is_asked(tmp_path) -> None:
    question, request = asked("traefik", tmp_path)
    assert (question.method, question.target) == ("GET", "/rest/v1/gate")
    assert question.headers["x-forwarded-uri"] == "/cart/add?item=7"  # the visitor's, not theirs
    assert "x-original-uri" not in question.headers
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
    assert "x-bascule-bypassed" not in request.headers


def test_the_applications_answers_pass_through(tmp_path) -> None:
    check_application_answers("traefik", tmp_path, marks_bypass=False)


def test_a_slow_bascule_fails_open(tmp_path) -> None:
    check_slow_bascule("traefik", tmp_path)
