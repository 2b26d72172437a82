"""Configurations of the reverse proxies that ask Bascule's decision endpoint
(GET /rest/v1/gate) about every request of the application behind them.

Each module writes every file its proxy needs into a directory and says the one
command that runs the proxy on them, in the foreground. Every recipe fails open: a
Bascule that does not answer within ``timeout`` seconds lets the request through, so
that Bascule being down never takes the site down.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import sys
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

    @property
    def timeout_ms(self) -> int:
        """The timeout in whole milliseconds, at least one."""
        return max(1, round(self.timeout * 1000))

    def values(self, directory: Path) -> dict[str, str]:
        """What the templates of the recipes name alike: the directory, both URLs as
        given and as HOST:PORT, the timeout (as ``250ms``) and the decision's path."""
        return {
            "dir": str(directory),
            "bascule_url": self.bascule,
            "upstream_url": self.upstream,
            "bascule": url_address(self.bascule),
            "upstream": url_address(self.upstream),
            "timeout": f"{self.timeout_ms}ms",
            "decision": DECISION_PATH,
        }

    @staticmethod
    def host_port(url: str) -> tuple[str, int]:
        """The host and port of an http:// URL (nothing but a host and a port: they are
        written into the proxy's configuration)."""
        parts = urlsplit(url)
        try:
            port = parts.port  # None when not given; a port out of range raises
        except ValueError:
            port = 0
        if (
            parts.scheme != "http"
            or not parts.hostname
            or not host(parts.hostname)
            or (parts.path not in ("", "/"))
            or parts.query
            or parts.fragment
            or parts.username
            or port == 0
            or parts.netloc.endswith(":")  # a port left out after its colon
        ):
            raise ValueError(f"give an http://HOST:PORT URL, a port from 1 to 65535, not {url!r}")
        return parts.hostname, port or 80


# A DNS name: letters, digits, '-' and '.'; nothing a configuration could read as syntax.
_NAME = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def address(host: str, port: int) -> str:
    """HOST:PORT as most proxies read it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_address(url: str) -> str:
    """The HOST:PORT of an http:// URL (see ``address``)."""
    return address(*Recipe.host_port(url))


def program(name: str) -> str:
    """``name`` next to this Python (a virtual environment's bin/, where the PyPI wheels
    of Envoy and Traefik put theirs), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def host(text: str) -> bool:
    """Whether ``text`` is an IP address or a DNS name."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_NAME.fullmatch(text))
    return True


def write(proxy: str, recipe: Recipe, directory: Path) -> list[str]:
    """Write the configuration of ``proxy`` into ``directory``; the command that runs it."""
    if proxy not in PROXIES:
        raise ValueError(f"the proxies are {', '.join(PROXIES)}, not {proxy!r}")
    if not host(recipe.listen_host) or not 0 < recipe.listen_port < 65536:
        raise ValueError(f"give a HOST:PORT to listen on, not {recipe.listen_host!r}")
    if not re.fullmatch(r"[A-Za-z0-9/._+-]+", str(directory.resolve())):
        raise ValueError(
            "the configuration is written in a directory whose path holds only letters,"
            " digits and / . _ + -"
        )
    Recipe.host_port(recipe.upstream)
    Recipe.host_port(recipe.bascule)
    directory.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"bascule.proxies.{proxy}")
    command: list[str] = module.write(recipe, directory.resolve())
    return command
