"""``bascule proxy-follow DIR``: keeps the switch of the recipe in DIR in step with the
Bascule it names, over HTTP (GET /rest/v1/maintenance/watch, a blocking query: a
change arrives as it happens), with no database credentials.

It sets the switch again at every answer, at least every PUSH_INTERVAL seconds (a
proxy that restarted, or forgot a runtime change, gets it back). When Bascule cannot
be reached, the switch keeps its last state, and one line says so; one more says when
Bascule answers again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bascule.proxies import FOLLOWED, asks, module

log = logging.getLogger("bascule.proxy-follow")

WATCH_PATH = "/rest/v1/maintenance/watch"
# The longest a watch waits for a change, and so the longest between two pushes.
PUSH_INTERVAL = 5.0
# How long to wait before trying again an unreachable Bascule.
RETRY_INTERVAL = 1.0


class Follower:
    """Follows one Bascule for the recipe written in ``directory``."""

    def __init__(self, directory: Path, *, push_interval: float = PUSH_INTERVAL) -> None:
        try:
            followed = json.loads((directory / FOLLOWED).read_text())
            self.proxy, self.bascule = str(followed["proxy"]), str(followed["bascule"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{directory} holds no recipe of `bascule proxy-config` ({FOLLOWED}: {exc})"
            ) from None
        self.directory = directory
        self.switch: Callable[[Path, str], None] = module(self.proxy).switch
        self.push_interval = push_interval
        self.asks: str | None = None  # as last set
        self.version: int | None = None
        self.reachable: bool | None = None
        self.stopping = threading.Event()
        self.switching = False  # a change of the switch under way

    def step(self, client: httpx.Client) -> None:
        """One watch: the switch set from its answer, or kept when there is none."""
        params = {"wait": self.push_interval}
        if self.version is not None:
            params["version"] = self.version
        try:
            answer = client.get(self.bascule + WATCH_PATH, params=params)
            answer.raise_for_status()
            data = answer.json()["data"]
            version, wanted = int(data["version"]), asks(bool(data["enabled"]), data["mode"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if self.reachable is not False:
                kept = f"asks about {SAID[self.asks]} requests" if self.asks else "as written"
                failing = (
                    ""
                    if self.asks == "none"
                    else (
                        "; the requests it asks about go through after the recipe's timeout"
                        " (failing open) until Bascule answers"
                    )
                )
                log.warning(
                    "Bascule at %s does not answer (%s): the switch keeps its last state (%s)%s",
                    self.bascule,
                    describe(exc),
                    kept,
                    failing,
                )
            self.reachable = False
            self.stopping.wait(RETRY_INTERVAL)
            return
        if self.reachable is False:
            log.warning("Bascule at %s answers again", self.bascule)
        self.reachable = True
        try:
            self.switching = True
            self.switch(self.directory, wanted)
        except OSError as exc:
            log.error("the switch of %s could not be set: %s", self.proxy, exc)
            self.stopping.wait(RETRY_INTERVAL)
            return
        finally:
            self.switching = False
        if wanted != self.asks:
            log.warning("%s asks Bascule about %s requests", self.proxy, SAID[wanted])
        self.asks, self.version = wanted, version

    def run(self) -> None:
        """Follow until ``stopping`` is set."""
        timeout = httpx.Timeout(self.push_interval + 5.0, connect=2.0)
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            while not self.stopping.is_set():
                started = time.monotonic()
                self.step(client)
                # An answer at once every time (a clock apart, a proxy in between that
                # does not wait): never more than ten questions a second.
                self.stopping.wait(max(0.0, 0.1 - (time.monotonic() - started)))


# How the log says what the switch asks about.
SAID = {"none": "no", "writes": "the writing (not GET, HEAD, OPTIONS)", "all": "all"}


def describe(exc: Exception) -> str:
    """A short reason, without a traceback."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
