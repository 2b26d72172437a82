"""Configurations of the reverse proxies that ask Bascule's decision endpoint
(GET /rest/v1/gate) about every request of the application behind them.

Each module writes every file its proxy needs into a directory and says the one
command that runs the proxy on them, in the foreground. Every recipe fails open: a
Bascule that does not answer within ``timeout`` seconds lets the request through, so
that Bascule being down never takes the site down.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROXIES = ("nginx", "caddy", "haproxy", "traefik", "envoy")
# Where the decision endpoint answers, under Bascule's URL.
DECISION_PATH = "/rest/v1/gate"


@dataclass(frozen=True)
class Recipe:
    """What a proxy is told: where it listens, where the application and Bascule are."""

    listen_host: str
    listen_port: int
    upstream: str  # the application's URL, http://HOST:PORT
    bascule: str  # Bascule's URL, http://HOST:PORT
    timeout: float = 1.0  # seconds Bascule has to answer before the request goes through

    @staticmethod
    def host_port(url: str) -> tuple[str, int]:
        """The host and port of an http:// URL."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"give an http://HOST:PORT URL, not {url!r}")
        return parts.hostname, parts.port or 80


def write(proxy: str, recipe: Recipe, directory: Path) -> list[str]:
    """Write the configuration of ``proxy`` into ``directory``; the command that runs it."""
    if proxy not in PROXIES:
        raise ValueError(f"the proxies are {', '.join(PROXIES)}, not {proxy!r}")
    Recipe.host_port(recipe.upstream)
    Recipe.host_port(recipe.bascule)
    directory.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"bascule.proxies.{proxy}")
    command: list[str] = module.write(recipe, directory.resolve())
    return command
