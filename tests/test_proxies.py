"""Each recipe of ``bascule proxy-config``, through the real proxy: the scenario a
visitor lives (tests/proxying.py), what Bascule is asked and what the application is
handed, the application's own answers passed through as they are, and failing open
when Bascule is stuck."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx
import pytest

from bascule.proxies import Recipe, write
from tests.proxying import (
    ADMIN,
    application,
    asked,
    behind,
    check_application_answers,
    check_hostile_requests,
    check_slow_bascule,
    check_switch,
    check_tokens_not_logged,
    exercise,
    live_bascule,
    proxy_in_front,
    recording,
)
from tests.waiting import until

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Asks:
    """How a recipe names the visitor's request to Bascule."""

    target: str  # the decision endpoint's path and query
    uri: str  # the header that names the visitor's path and query
    method: str  # the header that names its method
    marks_bypass: bool = True  # whether the visitor's answer says that a token let it in
    # Whether Bascule is told only what it decides on, and of the cookies only the bypass
    # token's (Caddy 2.6 cannot take away a header it does not name; Traefik passes or
    # drops a header whole).
    only_needed: bool = True
    whole_cookie: bool = False


RECIPES = {
    "nginx": Asks("/rest/v1/gate?deny=403", "x-original-uri", "x-original-method"),
    "caddy": Asks(
        "/rest/v1/gate",
        "x-forwarded-uri",
        "x-forwarded-method",
        only_needed=False,
        whole_cookie=True,
    ),
    "haproxy": Asks("/rest/v1/gate", "x-original-uri", "x-original-method"),
    "envoy": Asks("/rest/v1/gate", "x-original-uri", "x-original-method"),
    # Traefik cannot put a header of the auth answer on the visitor's answer: it marks
    # the application's request instead (see bascule/proxies/traefik.py).
    "traefik": Asks(
        "/rest/v1/gate", "x-forwarded-uri", "x-forwarded-method", False, whole_cookie=True
    ),
}
parametrized = pytest.mark.parametrize("proxy", list(RECIPES))


@parametrized
def test_the_scenario(proxy, tmp_path):
    with behind(proxy, tmp_path) as proxied:
        exercise(proxied, marks_bypass=RECIPES[proxy].marks_bypass)


@parametrized
def test_what_bascule_is_asked_and_the_application_handed(proxy, tmp_path):
    expected = RECIPES[proxy]
    question, request = asked(proxy, tmp_path)
    assert (question.method, question.target) == ("GET", expected.target)
    # the visitor's own request, whatever X-Original-URI or X-Forwarded-Uri it sent
    assert question.headers[expected.uri] == "/cart/add?item=7"
    other = {"x-original-uri", "x-forwarded-uri"} - {expected.uri}
    assert not other & set(question.headers)
    assert question.headers[expected.method] == "POST"
    assert question.headers["accept"] == "text/html"
    cookie = "bascule-bypass=abc; other=1" if expected.whole_cookie else "bascule-bypass=abc"
    assert question.headers["cookie"] == cookie
    assert ("x-visitor-padding" in question.headers) is not expected.only_needed
    assert question.headers["x-bascule-bypass"] == "token"
    assert question.body == b""
    assert (request.method, request.target, request.body) == (
        "POST",
        "/cart/add?item=7",
        b"quantity=2",
    )
    assert "x-bascule-bypass" not in request.headers  # the token stays with Bascule
    assert "x-bascule-bypassed" not in request.headers  # the visitor's own claim


@parametrized
def test_the_applications_answers_pass_through(proxy, tmp_path):
    check_application_answers(proxy, tmp_path, marks_bypass=RECIPES[proxy].marks_bypass)


@parametrized
@pytest.mark.parametrize("mode", ["full", "read-only"])
def test_no_hostile_request_reaches_the_application(proxy, mode, tmp_path):
    with (
        recording(application) as app,
        live_bascule(tmp_path, "--allow", "/healthz") as bascule,
        proxy_in_front(proxy, tmp_path, app.url, bascule.url, follow=True) as url,
    ):
        api = f"{bascule.url}/rest/v1/maintenance"
        assert httpx.post(api, headers=ADMIN, json={"mode": mode}).status_code == 201
        until(lambda: httpx.post(f"{url}/admin").status_code == 503, 1.0, "the refusal")
        check_hostile_requests(url, lambda: [(s.method, s.target) for s in app.seen], mode)


@parametrized
def test_no_proxy_logs_a_bypass_token(proxy, tmp_path):
    check_tokens_not_logged(proxy, tmp_path)


@parametrized
def test_a_slow_bascule_fails_open(proxy, tmp_path):
    check_slow_bascule(proxy, tmp_path)


def test_caddy_keeps_what_it_saves_in_the_directory_it_was_given(tmp_path):
    with behind("caddy", tmp_path) as proxied:
        assert proxied.url
    assert (tmp_path / "caddy" / "config" / "caddy" / "autosave.json").exists()


@parametrized
def test_the_switch_spares_visitors_and_holds(proxy, tmp_path):
    check_switch(proxy, tmp_path)


def test_nginx_refuses_a_directory_its_workers_cannot_search(tmp_path):
    """Started as root, nginx runs its workers as nobody: in a private directory they
    would never see the switch, and never ask. Started as anyone else, they are that
    user, who can."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    recipe = Recipe("127.0.0.1", 8080, "http://127.0.0.1:8000", "http://127.0.0.1:9000")
    if os.geteuid() != 0:
        assert write("nginx", recipe, private / "nginx")
        return
    with pytest.raises(ValueError, match=f"cannot search {private}"):
        write("nginx", recipe, private / "nginx")
    assert not (private / "nginx").exists()
