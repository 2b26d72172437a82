"""bascule proxy-follow: the switch of a recipe in step with what Bascule's watch says,
kept as it is when Bascule does not answer, and one line for each turn of that."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bascule.proxies import Recipe, follow_command, write
from bascule.proxies.follow import Follower
from tests.serving import clean_env
from tests.waiting import until

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@contextmanager
def bascule_saying(switch: dict, wait: float = 0) -> Iterator[str]:
    """A stand-in for Bascule whose watch answers ``switch`` (changed by the test): at
    once without a version, after ``wait`` seconds with one."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "version=" in self.path:
                time.sleep(wait)
            body = json.dumps({"data": dict(switch), "error": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def flags(directory: Path) -> set[str]:
    return {path.name for path in (directory / "switch").iterdir()}


def test_the_switch_follows_the_watch_and_holds_without_it(tmp_path, caplog):
    switch = {"version": 1, "enabled": False, "mode": None}
    caplog.set_level(logging.INFO, logger="bascule.proxy-follow")
    with bascule_saying(switch) as url:
        directory = tmp_path / "caddy"
        write("caddy", Recipe("127.0.0.1", 8080, "http://127.0.0.1:3000", url), directory)
        assert flags(directory) == {"all", "writes"}  # as written: asks about everything
        follower = Follower(directory)
        with httpx.Client(timeout=5) as client:
            follower.step(client)
            assert flags(directory) == set()
            switch.update(version=2, enabled=True, mode="read-only")
            follower.step(client)
            assert flags(directory) == {"writes"}
            switch.update(version=3, mode="full")
            follower.step(client)
            assert flags(directory) == {"all", "writes"}

            follower.bascule = UNREACHABLE  # Bascule gone: the switch holds, one line
            follower.stopping.set()  # no wait between tries
            follower.step(client)
            follower.step(client)
            assert flags(directory) == {"all", "writes"}
            follower.bascule = url
            follower.step(client)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == [
        "caddy asks Bascule about no requests",
        "caddy asks Bascule about the writing (not GET, HEAD, OPTIONS) requests",
        "caddy asks Bascule about all requests",
    ]
    (gone,) = [line for line in lines if "does not answer" in line]
    assert gone.startswith(f"Bascule at {UNREACHABLE} does not answer (")
    assert "keeps its last state (asks about all requests)" in gone
    assert "go through after the recipe's timeout (failing open)" in gone
    assert lines[-1] == f"Bascule at {url} answers again"


@pytest.mark.parametrize("content", ["", "{}", '{"proxy": "squid", "bascule": "x"}'])
def test_a_directory_without_a_recipe_is_refused(tmp_path, content):
    if content:
        (tmp_path / "bascule-follow.json").write_text(content)
    with pytest.raises(ValueError, match=r"no recipe of `bascule proxy-config`|the proxies are"):
        Follower(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_follower_stops_at_once_in_the_middle_of_a_watch(tmp_path, sig):
    switch = {"version": 1, "enabled": True, "mode": "read-only"}
    with bascule_saying(switch, wait=30) as url:
        directory = tmp_path / "haproxy"
        write("haproxy", Recipe("127.0.0.1", 8080, "http://127.0.0.1:3000", url), directory)
        log = tmp_path / "follow.log"
        with log.open("w") as out:
            follower = subprocess.Popen(
                follow_command(directory), stdout=out, stderr=subprocess.STDOUT, env=clean_env()
            )
        try:
            until(lambda: "asks Bascule about" in log.read_text(), 20, "the switch set")
            time.sleep(0.3)  # waiting on the watch now
            asked = time.monotonic()
            follower.send_signal(sig)
            assert follower.wait(timeout=5) == 0
            assert time.monotonic() - asked < 1.5
        finally:
            follower.kill()
    assert (directory / "switch.map").read_text() == "asks writes\n"
    # One line per turn of the switch, none per watch.
    assert "HTTP Request" not in log.read_text(), log.read_text()
