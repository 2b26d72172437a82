"""Traefik (3.x): a ``forwardAuth`` middleware asks the decision endpoint about the
requests the switch names, through a route of Traefik's own that fails open.

The switch is the routes themselves: ``routes/dynamic.yaml``, which Traefik watches,
replaced at once by one of the three written beside it in ``switches/``. Maintenance
off, no router of the application's has the middleware but the one for a query that
holds a bypass token (Bascule takes it out of the URL); read-only, GET, HEAD and
OPTIONS have a router without it; on, every request goes through it.

Traefik gives the visitor any non-2xx answer of the auth service as it is (status,
headers with Set-Cookie, body; ``preserveLocationHeader`` keeps the 303's Location
relative to the visitor's site, not Bascule's), and sends the application Bascule's
X-Bascule-Bypassed (``authResponseHeaders``, which also drops a visitor's own). It
sends the visitor's Accept, Cookie and X-Bascule-Bypass, and its own X-Forwarded-*
(``trustForwardHeader: false``): X-Forwarded-Uri from the request itself, and
X-Forwarded-Proto from Traefik's connection, so behind a TLS terminator the bypass
cookie of a 303 lacks Secure. Nothing else of the visitor's (their own X-Original-URI
or X-Forwarded-Uri would name another request).

Fail open: forwardAuth has no timeout of its own (30 s) and answers 500 when it
cannot reach its address, so it asks Traefik itself, on a path of the same
entrypoint that only this configuration knows, routed to Bascule with the recipe's
timeout to connect and to answer; there an ``errors`` middleware turns Traefik's 502
(Bascule refused) or 504 (too slow) into an empty 200 (from ``noop@internal``): the
request goes through. Anything Bascule answers is the visitor's.

What Traefik cannot do: put X-Bascule-Bypassed on the visitor's answer. Only cookies
of a 2xx auth answer reach it (``addAuthCookiesToResponse``); response headers set by
a middleware are constants.

Traefik listens before it has loaded the routes (404 until then): ``GET
/.bascule-gate/ready`` from the loopback answers 204 once it has them.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import yaml

from bascule.proxies import (
    ALL,
    ASKS,
    DECISION_PATH,
    NONE,
    TOKEN_PARAM,
    WRITES,
    Recipe,
    address,
    program,
    replace_file,
)

# The headers of the visitor's the decision depends on.
ASKED = ["Accept", "Cookie", "X-Bascule-Bypass"]
# Where the loopback learns that Traefik has loaded the routes.
READY_PATH = "/.bascule-gate/ready"
LOOPBACK = "ClientIP(`127.0.0.1/32`) || ClientIP(`::1/128`)"
READS = "PathPrefix(`/`) && (Method(`GET`) || Method(`HEAD`) || Method(`OPTIONS`))"
TOKEN_RULE = f"PathPrefix(`/`) && QueryRegexp(`{TOKEN_PARAM}`, `.*`)"
# The switch: the routes Traefik reads, and the three they are copied from.
ROUTES = "routes/dynamic.yaml"
SWITCHES = "switches"


def loopback(host: str) -> str:
    """Where Traefik reaches its own entrypoint listening on ``host``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (a host to reach, not to bind)
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def static(recipe: Recipe, dynamic: Path) -> dict[str, Any]:
    """Traefik's static configuration: one entrypoint, the file provider, logs to stdout."""
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "web": {
                "address": address(recipe.listen_host, recipe.listen_port),
                # The questions forwardAuth asks Traefik itself come from the loopback:
                # their X-Forwarded-Uri and -Proto are kept for Bascule.
                "forwardedHeaders": {"trustedIPs": ["127.0.0.1/32", "::1/128"]},
            }
        },
        # The routes as soon as the file is read or replaced, not two seconds later.
        "providers": {
            "file": {"directory": str(dynamic.parent), "watch": True},
            "providersThrottleDuration": "0s",
        },
        "log": {"level": "ERROR"},
        # Without the path and query: a bypass token in a URL is never written (Bascule
        # takes it out with a 303; the first request would be logged as it came), and
        # Traefik cannot mask a part of a field.
        "accessLog": {"fields": {"names": {"RequestPath": "drop"}}},
    }


def application_routers(asks: str) -> dict[str, Any]:
    """The application's routers while the switch says ``asks``."""

    def router(rule: str, priority: int, asked: bool) -> dict[str, Any]:
        middlewares = ["bascule", "bascule-token-kept"] if asked else ["bascule-unasked"]
        return {
            "entryPoints": ["web"],
            "rule": rule,
            "priority": priority,
            "middlewares": middlewares,
            "service": "application",
        }

    routers = {"application": router("PathPrefix(`/`)", 1, asked=asks != NONE)}
    if asks == WRITES:
        routers["application-reads"] = router(READS, 2, asked=False)
    if asks != ALL:
        routers["application-token"] = router(TOKEN_RULE, 3, asked=True)
    return routers


def dynamic(recipe: Recipe, gate_path: str, asks: str) -> dict[str, Any]:
    """The routers, middlewares and services: the application (behind forwardAuth as
    ``asks`` says), and the route forwardAuth asks through."""
    timeout = f"{recipe.timeout_ms}ms"
    own = f"http://{address(loopback(recipe.listen_host), recipe.listen_port)}"
    return {
        "http": {
            "routers": {
                **application_routers(asks),
                # forwardAuth's questions: a path no visitor knows, tried first.
                "bascule-gate": {
                    "entryPoints": ["web"],
                    "rule": f"Path(`{gate_path}`)",
                    "priority": 1000,
                    "middlewares": ["bascule-fails-open", "bascule-gate"],
                    "service": "bascule",
                },
                # From the loopback, a 204 once the routes are loaded (Traefik listens
                # before it has them, and answers 404 in the meantime).
                "bascule-ready": {
                    "entryPoints": ["web"],
                    "rule": f"Path(`{READY_PATH}`) && ({LOOPBACK})",
                    "priority": 1000,
                    "middlewares": ["bascule-ready"],
                    "service": "noop@internal",
                },
            },
            "middlewares": {
                # noop@internal answers 418, made a 204 (the page: noop@internal's, empty).
                "bascule-ready": {
                    "errors": {
                        "status": ["418"],
                        "statusRewrites": {"418": 204},
                        "service": "noop@internal",
                        "query": "/",
                    }
                },
                "bascule": {
                    "forwardAuth": {
                        "address": own + gate_path,
                        # X-Forwarded-* of forwardAuth's own, from the request: a
                        # visitor's X-Forwarded-Uri, passed on by a proxy in front,
                        # would name a path Bascule keeps open.
                        "trustForwardHeader": False,
                        "authRequestHeaders": ASKED,
                        "authResponseHeaders": ["X-Bascule-Bypassed"],
                        "preserveLocationHeader": True,
                        "maxResponseBodySize": 1 << 20,
                    }
                },
                # The application has no use for the token, and must not be able to
                # log it (after forwardAuth, which sent it to Bascule).
                "bascule-token-kept": {
                    "headers": {"customRequestHeaders": {"X-Bascule-Bypass": ""}}
                },
                # Not asked about: neither the token nor a visitor's claim to a bypass.
                "bascule-unasked": {
                    "headers": {
                        "customRequestHeaders": {"X-Bascule-Bypass": "", "X-Bascule-Bypassed": ""}
                    }
                },
                "bascule-gate": {"replacePath": {"path": DECISION_PATH}},
                # No answer from Bascule (Traefik's own 502, refused or cut; 504, too
                # slow): an empty 200, which lets the request through. Whatever Bascule
                # answers is a decision, a question it cannot read a refusal.
                "bascule-fails-open": {
                    "errors": {
                        "status": ["502", "504"],
                        "statusRewrites": {"502": 200, "504": 200},
                        "service": "noop@internal",
                        "query": "/",
                    }
                },
            },
            "services": {
                "application": {"loadBalancer": {"servers": [{"url": recipe.upstream}]}},
                "bascule": {
                    "loadBalancer": {
                        "servers": [{"url": recipe.bascule}],
                        "passHostHeader": False,
                        "serversTransport": "bascule",
                    }
                },
            },
            "serversTransports": {
                # Refused or late, Bascule's answer is Traefik's 502 or 504 within the
                # recipe's timeout.
                "bascule": {
                    "forwardingTimeouts": {"dialTimeout": timeout, "responseHeaderTimeout": timeout}
                }
            },
        }
    }


def write(recipe: Recipe, directory: Path) -> list[str]:
    """Write traefik.yaml and the routes of each state of the switch into ``directory``;
    the command that runs Traefik."""
    gate_path = f"/.bascule-gate/{secrets.token_urlsafe(16)}"
    (directory / SWITCHES).mkdir(exist_ok=True)
    for asks in ASKS:
        routes = dynamic(recipe, gate_path, asks)
        text = f"{HEADER}# The routes while the switch asks about {asks}.\n"
        replace_file(
            directory / SWITCHES / f"{asks}.yaml", text + yaml.safe_dump(routes, sort_keys=False)
        )
    (directory / ROUTES).parent.mkdir(exist_ok=True)
    config = directory / "traefik.yaml"
    config.write_text(HEADER + yaml.safe_dump(static(recipe, directory / ROUTES), sort_keys=False))
    return [program("traefik"), f"--configFile={config}"]


def switch(directory: Path, asks: str) -> None:
    """Give Traefik the routes that ask Bascule about ``asks`` (it sees the new file
    within a fraction of a second, and reads it when it starts)."""
    replace_file(directory / ROUTES, (directory / SWITCHES / f"{asks}.yaml").read_text())


HEADER = "# Written by `bascule proxy-config traefik`: the application behind Traefik.\n"
