"""A real reverse proxy in front of a small application, asking a live Bascule: the
scenario every recipe of ``bascule proxy-config`` must pass, end to end through it."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD, basic
from tests.serving import BASCULE, Server, clean_env, free_port, serving, stop
from tests.waiting import until

ADMIN = basic("admin", ADMIN_PASSWORD)
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API_CLIENT = {"Accept": "application/json"}
APP_PAGE = "the shop is open"


@contextmanager
def small_application(tmp_path: Path) -> Iterator[str]:
    """A static site served by Python's http.server (any HTTP server would do): its URL."""
    site = tmp_path / "site"
    (site / "shop").mkdir(parents=True)
    (site / "shop" / "index.html").write_text(f"<p>{APP_PAGE}</p>")
    (site / "healthz").write_text("ok")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=site,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: answers(url), 10.0, "the application to listen")
        yield url
    finally:
        stop(process)


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


@dataclass
class Proxied:
    """The proxy's URL, and the Bascule it asks."""

    url: str
    bascule: Server
    output: Path


@contextmanager
def behind(proxy: str, tmp_path: Path, **env: str) -> Iterator[Proxied]:
    """The application behind ``proxy``, configured by ``bascule proxy-config``, asking a
    Bascule (on SQLite) that keeps /healthz open."""
    database_url = f"sqlite:///{tmp_path}/bascule.db"
    with (
        small_application(tmp_path) as upstream,
        serving(
            database_url,
            tmp_path,
            "--allow",
            "/healthz",
            env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD},
        ) as bascule,
    ):
        port = free_port()
        config = tmp_path / proxy
        written = subprocess.run(
            [
                *BASCULE,
                "proxy-config",
                proxy,
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                upstream,
                "--bascule",
                bascule.url,
                "--output-dir",
                str(config),
            ],
            capture_output=True,
            text=True,
            env=clean_env(),
            check=True,
        )
        command = shlex.split(written.stdout.strip().splitlines()[-1])
        log = tmp_path / f"{proxy}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=clean_env(**env), cwd=config
            )
        url = f"http://127.0.0.1:{port}"
        try:
            until(
                lambda: process.poll() is None and listening(port),
                20.0,
                f"{proxy} to listen ({log.read_text()[-2000:]})",
            )
            yield Proxied(url, bascule, log)
        finally:
            stop(process)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, timeout=5, follow_redirects=False, **kwargs)


def exercise(proxied: Proxied, *, marks_bypass: bool = True) -> None:
    """Off, on, the bypass, off again, and Bascule gone: what a visitor sees through it."""
    shop, api = f"{proxied.url}/shop/", f"{proxied.bascule.url}/rest/v1/maintenance"
    assert APP_PAGE in get(shop).text  # maintenance off: the application answers

    assert httpx.post(api, headers=ADMIN).status_code == 201
    until(lambda: get(shop).status_code == 503, 1.0, "the refusal, within a second")
    page = get(shop, headers=BROWSER)
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "120" and "<!doctype html>" in page.text.lower()
    refused = get(shop, headers=API_CLIENT)
    assert (refused.status_code, refused.headers["content-type"]) == (503, "application/json")
    assert refused.json()["error"] == {"code": 0, "message": "Maintenance mode is enabled."}
    assert get(f"{proxied.url}/healthz").text == "ok"  # --allow /healthz

    created = httpx.post(f"{api}/bypass", headers=ADMIN, json={"name": "testers"})
    token = created.json()["data"]["token"]
    passed = get(shop, headers={"X-Bascule-Bypass": token})
    assert passed.status_code == 200 and APP_PAGE in passed.text
    if marks_bypass:
        assert passed.headers["x-bascule-bypassed"] == "testers"
    assert get(shop, headers={"X-Bascule-Bypass": token + "x"}).status_code == 503

    sent_back = get(f"{shop}?page=2&bascule-bypass={token}")
    assert sent_back.status_code == 303, sent_back.text
    assert sent_back.headers["location"].endswith("/shop/?page=2")
    cookie = sent_back.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    walking = {"Cookie": f"bascule-bypass={token}"}
    assert APP_PAGE in get(shop, headers=walking).text  # the browser walks the site

    assert httpx.delete(f"{api}/bypass/testers", headers=ADMIN).status_code == 200
    until(lambda: get(shop, headers=walking).status_code == 503, 1.0, "the revocation")

    assert httpx.delete(api, headers=ADMIN).status_code == 200
    until(lambda: get(shop).status_code == 200, 1.0, "the reopening, within a second")

    # Read-only: what changes nothing goes through (the proxy tells Bascule the method).
    assert httpx.post(api, headers=ADMIN, json={"mode": "read-only"}).status_code == 201
    until(lambda: httpx.post(shop).status_code == 503, 1.0, "the read-only refusal")
    assert APP_PAGE in get(shop).text
    assert httpx.delete(api, headers=ADMIN).status_code == 200
    until(lambda: httpx.post(shop).status_code != 503, 1.0, "the reopening")

    # Bascule gone: the recipe fails open, the site stays up.
    assert httpx.post(api, headers=ADMIN).status_code == 201
    until(lambda: get(shop).status_code == 503, 1.0, "the refusal")
    stop(proxied.bascule.process)
    until(lambda: APP_PAGE in get(shop).text, 5.0, "the application, with Bascule down")
