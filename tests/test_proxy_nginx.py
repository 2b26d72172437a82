"""nginx's recipe, through the real nginx: the scenario, what Bascule is asked, the
application's own refusals and errors passed through as they are, and failing open."""

from __future__ import annotations

import pytest

from tests.proxying import asked, behind, check_application_answers, check_slow_bascule, exercise

pytestmark = pytest.mark.slow


def test_the_scenario(tmp_path):
    with behind("nginx", tmp_path) as proxied:
        exercise(proxied)


def test_what_bascule_is_asked(tmp_path):
    question, request = asked("nginx", tmp_path)
    assert (question.method, question.target) == ("GET", "/rest/v1/gate?deny=403")
    assert question.headers["x-original-uri"] == "/cart/add?item=7"
    assert question.headers["x-original-method"] == "POST"
    assert "x-forwarded-uri" not in question.headers
    assert question.headers["accept"] == "text/html"
    assert question.headers["cookie"] == "bascule-bypass=abc; other=1"
    assert question.headers["x-bascule-bypass"] == "token"
    assert question.body == b"" and "content-length" not in question.headers
    assert (request.method, request.target, request.body) == (
        "POST",
        "/cart/add?item=7",
        b"quantity=2",
    )
    assert "x-bascule-bypass" not in request.headers
    assert "x-bascule-bypassed" not in request.headers


def test_the_applications_answers_pass_through(tmp_path):
    check_application_answers("nginx", tmp_path)


def test_a_slow_bascule_fails_open(tmp_path):
    check_slow_bascule("nginx", tmp_path)
