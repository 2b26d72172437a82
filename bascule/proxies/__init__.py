"""Configurations of the reverse proxies that ask Bascule's decision endpoint
(GET /rest/v1/gate) about the requests of the application behind them, while
maintenance is on.

Each module writes every file its proxy needs into a directory and says the one
command that runs the proxy on them, in the foreground. Each recipe holds a local
switch that the proxy reads without a network call, and that ``bascule proxy-follow``
keeps in step with Bascule (``switch`` of each module): what the proxy asks Bascule
about (ASKS). Maintenance off, it asks about nothing but a request whose URL holds a
bypass token (which Bascule takes out of it); on, about every request; read-only,
about those that may change something (not GET, HEAD nor OPTIONS). Every recipe
fails open: a Bascule that does not answer within ``timeout`` seconds lets the
request through, so that Bascule being down never takes the site down.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bascule.bypass import BYPASS_PARAM
from bascule.model import READ_ONLY

PROXIES = ("nginx", "caddy", "haproxy", "traefik", "envoy")
# Where the decision endpoint answers, under Bascule's URL.
DECISION_PATH = "/rest/v1/gate"
# What a proxy asks Bascule about: no request (maintenance off), those that may change
# something (read-only), every request (on). A recipe starts asking about every one,
# as if maintenance were on, until its follower says otherwise: never less than it must.
NONE, WRITES, ALL = "none", "writes", "all"
ASKS = (NONE, WRITES, ALL)
# What the follower reads in a recipe's directory: the proxy, and the Bascule it follows.
FOLLOWED = "bascule-follow.json"
# The query parameter that carries a bypass token in a URL (asked about in every state).
TOKEN_PARAM = BYPASS_PARAM.decode()


def asks(enabled: bool, mode: str | None) -> str:
    """What a proxy asks Bascule about, maintenance on (``enabled``) in ``mode`` or off."""
    if not enabled:
        return NONE
    return WRITES if mode == READ_ONLY else ALL


def replace_file(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` at once (a reader sees the old file or the new one,
    never half of it), unless it holds that already; whether it changed."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return False
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.chmod(0o644)  # the proxy's workers may run as another user
    os.replace(temporary, path)
    return True


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


def set_flags(directory: Path, asks: str) -> None:
    """The switch as flag files in ``directory/switch`` (nginx's and Caddy's): ``writes``
    while the proxy asks about the requests that may change something, ``all`` too while
    it asks about every one. Turned on, ``writes`` comes first; turned off, ``all``: no
    state between asks less than the old state and the new one. Readable by anyone (a
    proxy's workers may run as another user)."""
    flags = directory / "switch"
    flags.mkdir(exist_ok=True)
    flags.chmod(0o755)
    wanted = {NONE: (), WRITES: ("writes",), ALL: ("writes", "all")}[asks]
    for name in ("writes", "all"):
        if name in wanted:
            (flags / name).touch(mode=0o644)
    for name in ("all", "writes"):
        if name not in wanted:
            (flags / name).unlink(missing_ok=True)


def module(proxy: str):  # type: ignore[no-untyped-def]
    """The module of ``proxy``'s recipe."""
    if proxy not in PROXIES:
        raise ValueError(f"the proxies are {', '.join(PROXIES)}, not {proxy!r}")
    return importlib.import_module(f"bascule.proxies.{proxy}")


def write(proxy: str, recipe: Recipe, directory: Path) -> list[str]:
    """Write the configuration of ``proxy`` into ``directory``, its switch asking about
    every request, and what its follower reads; the command that runs the proxy."""
    recipe_module = module(proxy)
    if not host(recipe.listen_host) or not 0 < recipe.listen_port < 65536:
        shown = address(recipe.listen_host, recipe.listen_port)
        raise ValueError(f"give a HOST:PORT to listen on (a host name or address), not {shown!r}")
    if not re.fullmatch(r"[A-Za-z0-9/._+-]+", str(directory.resolve())):
        raise ValueError(
            "the configuration is written in a directory whose path holds only letters,"
            " digits and / . _ + -"
        )
    Recipe.host_port(recipe.upstream)
    Recipe.host_port(recipe.bascule)
    getattr(recipe_module, "check_directory", lambda _directory: None)(directory.resolve())
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    command: list[str] = recipe_module.write(recipe, directory)
    recipe_module.switch(directory, ALL)
    followed = {"proxy": proxy, "bascule": recipe.bascule}
    replace_file(directory / FOLLOWED, json.dumps(followed, indent=2) + "\n")
    return command


def follow_command(directory: Path) -> list[str]:
    """The command that keeps the switch of the recipe in ``directory`` in step."""
    return [program("bascule"), "proxy-follow", str(directory.resolve())]
